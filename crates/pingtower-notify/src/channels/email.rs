//! Email over SMTP (lettre): STARTTLS (default, port 587), implicit TLS (`smtp_tls: tls`, 465)
//! or none (25, for a relay on the same host), with optional login, and `tls_ca_pem` for a
//! server whose certificate a private CA signed.
//!
//! The SMTP host is resolved here, through the blocklist, and lettre connects to the address
//! that was checked (TLS still verifies the certificate against the host's name), so a name
//! that resolves into a blocked range, or changes between the check and the connection, does
//! not reach it.

use super::{Answer, Channel, Outbound, SendError, cut};
use crate::outbound::Refused;
use crate::{Notification, render};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;
use std::time::Duration;

fn permanent(e: impl std::fmt::Display) -> SendError {
    SendError::Permanent(e.to_string())
}

/// The first of `addrs` that accepts a connection (as a connection by name would try each in
/// turn), so that lettre, which takes one host, is given an address that was checked.
async fn reachable(addrs: &[std::net::SocketAddr]) -> Option<std::net::SocketAddr> {
    if let [only] = addrs {
        return Some(*only);
    }
    for addr in addrs {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Some(*addr);
        }
    }
    None
}

pub(super) async fn send(
    http: &Outbound,
    c: &Channel<'_>,
    n: &Notification,
    timeout: Duration,
) -> Result<Answer, SendError> {
    let host = c
        .text("smtp_host")
        .ok_or_else(|| permanent("the channel has no smtp_host"))?;
    let mode = c.text("smtp_tls").unwrap_or("starttls");
    let port = c
        .spec
        .get("smtp_port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(match mode {
            "tls" => 465,
            "none" => 25,
            _ => 587,
        });
    let tls = if mode == "none" {
        Tls::None
    } else {
        let mut params = TlsParameters::builder(host.to_owned());
        if let Some(pem) = c.text("tls_ca_pem") {
            params = params.add_root_certificate(
                Certificate::from_pem(pem.as_bytes())
                    .map_err(|e| permanent(format!("tls_ca_pem: {e}")))?,
            );
        }
        let params = params.build_rustls().map_err(permanent)?;
        if mode == "tls" {
            Tls::Wrapper(params)
        } else {
            Tls::Required(params)
        }
    };
    let addr = crate::outbound::resolve(http.blocklist(), host, port)
        .await
        .map_err(|e| match e {
            Refused::Blocked(why) => SendError::Permanent(why),
            Refused::Unresolved(why) => SendError::Transient(why),
        })?;
    let addr = reachable(&addr)
        .await
        .ok_or_else(|| SendError::Transient(format!("cannot connect to {host}:{port}")))?;
    let mut transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
            .port(port)
            .tls(tls)
            .timeout(Some(timeout));
    if let Some(user) = c.text("username") {
        let password = c.text("password").unwrap_or_default();
        transport = transport.credentials(Credentials::new(user.to_owned(), password.to_owned()));
    }
    let from = c.text("from").unwrap_or("PingTower <pingtower@localhost>");
    let mut message = Message::builder()
        .from(from.parse().map_err(|e| permanent(format!("from: {e}")))?)
        .subject(render::title(n))
        .header(ContentType::TEXT_PLAIN);
    let to = c
        .spec
        .get("to")
        .and_then(Value::as_array)
        .ok_or_else(|| permanent("the channel has no recipients (to)"))?;
    for addr in to.iter().filter_map(Value::as_str) {
        message = message.to(addr
            .parse()
            .map_err(|e| permanent(format!("to `{addr}`: {e}")))?);
    }
    let body = format!(
        "{}\n\nMonitor: {}\nStatus: {}\nAt: {}\n",
        render::text(n),
        n.monitor_name,
        n.status,
        n.at
    );
    let message = message.body(body).map_err(permanent)?;
    match transport.build().send(message).await {
        Ok(r) => Ok(Answer {
            status: u16::from(r.code()),
            body: cut(&r.message().collect::<Vec<_>>().join(" ")),
        }),
        Err(e) if e.is_permanent() => Err(SendError::Permanent(format!(
            "SMTP: {}",
            cut(&e.to_string())
        ))),
        Err(e) => Err(SendError::Transient(format!(
            "SMTP: {}",
            cut(&e.to_string())
        ))),
    }
}
