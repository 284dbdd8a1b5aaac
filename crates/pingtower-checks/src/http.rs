//! HTTP(S), step by step so that every phase is timed: resolve, connect, TLS (reading the
//! certificate), HTTP/1.1 or HTTP/2 handshake, one request, time to first byte, and a body read
//! capped in bytes. A fresh connection per check; redirects followed up to `max_redirects`.

use crate::net::{connect, resolve};
use crate::tls::{Alpn, CertInfo, TlsContext, handshake};
use crate::{Phase, Raw, Timings, micros};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{self, HeaderValue};
use hyper_util::rt::{TokioExecutor, TokioIo};
use pingtower_core::assertion::Facts;
use pingtower_core::check::{HttpSpec, HttpVersion};
use serde_json::json;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};

const USER_AGENT: &str = concat!("PingTower/", env!("CARGO_PKG_VERSION"));

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One hop's answer.
struct Hop {
    status: u16,
    version: &'static str,
    headers: Vec<(String, String)>,
    location: Option<String>,
    body: Vec<u8>,
    body_truncated: bool,
    timings: Timings,
    cert: Option<CertInfo>,
    address: String,
}

/// Aborts the connection task when the check is done (or cancelled by its timeout).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

async fn one_hop(
    spec: &HttpSpec,
    url: &url::Url,
    method: &str,
    send_body: bool,
    tls: &TlsContext,
    phase: &Phase,
) -> Result<Hop, (String, Timings)> {
    let started = Instant::now();
    let mut timings = Timings::default();
    let fail = |reason: String, mut t: Timings| {
        t.total_us = micros(started.elapsed());
        (reason, t)
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let https = url.scheme() == "https";
    let port = url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    // Through a proxy, the connection (and its timings) is to the proxy.
    let (conn_host, conn_port) = match &spec.proxy {
        Some(p) => (
            p.host_str().unwrap_or_default().to_owned(),
            p.port_or_known_default().unwrap_or(80),
        ),
        None => (host.clone(), port),
    };
    let (addrs, dns) = resolve(&conn_host, conn_port, spec.ip_family, phase)
        .await
        .map_err(|e| fail(e, timings.clone()))?;
    timings.dns_us = dns;
    let (mut tcp, addr, connect_us) = connect(&addrs, phase)
        .await
        .map_err(|e| fail(e, timings.clone()))?;
    timings.connect_us = Some(connect_us);
    if let (Some(proxy), true) = (&spec.proxy, https) {
        tunnel(&mut tcp, proxy, &host, port, phase)
            .await
            .map_err(|e| fail(e, timings.clone()))?;
    }
    let absolute_form = spec.proxy.is_some() && !https;

    let mut cert = None;
    let (io, h2): (Box<dyn Io>, bool) = if https {
        let alpn = match spec.http_version {
            HttpVersion::Auto => Alpn::Both,
            HttpVersion::Http1 => Alpn::Http1,
            HttpVersion::Http2 => Alpn::Http2,
        };
        let config = tls
            .client_config(spec.tls_verify, spec.tls_ca_pem.as_deref(), alpn)
            .map_err(|e| fail(e, timings.clone()))?;
        let (stream, tls_us) = handshake(tcp, config, &host, phase)
            .await
            .map_err(|e| fail(e, timings.clone()))?;
        timings.tls_us = Some(tls_us);
        let (_, conn) = stream.get_ref();
        cert = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(CertInfo::of);
        let h2 = conn.alpn_protocol() == Some(b"h2");
        if spec.http_version == HttpVersion::Http2 && !h2 {
            return Err(fail("the server does not offer HTTP/2".into(), timings));
        }
        (Box::new(stream), h2)
    } else {
        // Cleartext HTTP/2 only when asked for (prior knowledge).
        (Box::new(tcp), spec.http_version == HttpVersion::Http2)
    };

    phase.set("HTTP handshake");
    let io = TokioIo::new(io);
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let authority = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let uri = if h2 || absolute_form {
        format!("{}://{authority}{path}", url.scheme())
    } else {
        path
    };
    let mut req = Request::builder().method(method).uri(uri);
    if !h2 {
        req = req.header(header::HOST, authority.as_str());
    }
    req = req
        .header(header::USER_AGENT, USER_AGENT)
        .header(header::ACCEPT, "*/*");
    // The monitor's own headers and credentials go to the monitored origin only, not to where it
    // redirects (as curl does): they may carry keys or cookies (`X-Api-Key`, `Cookie`).
    let same_origin = url.scheme() == spec.url.scheme()
        && url.host_str() == spec.url.host_str()
        && url.port_or_known_default() == spec.url.port_or_known_default();
    if same_origin {
        for (k, v) in &spec.headers {
            req = req.header(k.as_str(), v.as_str());
        }
    }
    // The proxy's credentials go to the proxy, whichever origin the request is for.
    if absolute_form && let Some(auth) = spec.proxy.as_ref().and_then(proxy_authorization) {
        req = req.header(header::PROXY_AUTHORIZATION, auth);
    }
    let credentials = match (&spec.basic_auth, &spec.bearer_token) {
        _ if !same_origin => None,
        (Some((user, password)), _) => Some(basic_auth(user, password)),
        (None, Some(token)) => Some(format!("Bearer {token}")),
        (None, None) => None,
    };
    if let Some(credentials) = credentials {
        req = req.header(header::AUTHORIZATION, credentials);
    }
    let body = if send_body {
        spec.body.clone().unwrap_or_default()
    } else {
        String::new()
    };
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| fail(format!("invalid request: {e}"), timings.clone()))?;

    let response = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| fail(format!("HTTP/2 handshake failed: {e}"), timings.clone()))?;
        let _conn = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));
        phase.set("waiting for the response");
        let sent = Instant::now();
        let r = sender
            .send_request(req)
            .await
            .map_err(|e| fail(format!("HTTP request failed: {e}"), timings.clone()))?;
        timings.ttfb_us = Some(micros(sent.elapsed()));
        read_body(r, spec.max_body_bytes, phase)
            .await
            .map(|b| (b, _conn))
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| fail(format!("HTTP handshake failed: {e}"), timings.clone()))?;
        let _conn = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));
        phase.set("waiting for the response");
        let sent = Instant::now();
        let r = sender.send_request(req).await.map_err(|e| {
            fail(
                format!("HTTP request failed: {}", describe_hyper(&e)),
                timings.clone(),
            )
        })?;
        timings.ttfb_us = Some(micros(sent.elapsed()));
        read_body(r, spec.max_body_bytes, phase)
            .await
            .map(|b| (b, _conn))
    };
    let ((status, version, headers, location, body, truncated), _conn) =
        response.map_err(|e| fail(e, timings.clone()))?;
    timings.total_us = micros(started.elapsed());
    Ok(Hop {
        status,
        version,
        headers,
        location,
        body,
        body_truncated: truncated,
        timings,
        cert,
        address: addr.to_string(),
    })
}

/// `Proxy-Authorization` from the proxy URL's credentials, if any.
fn proxy_authorization(proxy: &url::Url) -> Option<String> {
    if proxy.username().is_empty() {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Some(basic_auth(
        &decode(proxy.username()),
        &decode(proxy.password().unwrap_or_default()),
    ))
}

/// Asks the proxy for a tunnel to `host:port` (HTTP CONNECT) and reads its answer.
async fn tunnel(
    tcp: &mut tokio::net::TcpStream,
    proxy: &url::Url,
    host: &str,
    port: u16,
    phase: &Phase,
) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    phase.set("opening the proxy tunnel");
    let target = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut head =
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: {USER_AGENT}\r\n");
    if let Some(auth) = proxy_authorization(proxy) {
        head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes())
        .await
        .map_err(|e| format!("proxy: {}", crate::net::describe_io(&e)))?;
    // Read the answer's head byte by byte: nothing after it may be consumed (it is TLS).
    let mut answer = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() > 8192 {
            return Err("proxy: answer head too long".into());
        }
        match tcp.read(&mut byte).await {
            Ok(0) => return Err("proxy: closed the connection before answering CONNECT".into()),
            Ok(_) => answer.push(byte[0]),
            Err(e) => return Err(format!("proxy: {}", crate::net::describe_io(&e))),
        }
    }
    let status_line = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let code = status_line.split_whitespace().nth(1).unwrap_or_default();
    if code.len() == 3 && code.starts_with('2') {
        Ok(())
    } else {
        Err(format!("proxy refused the tunnel: {}", status_line.trim()))
    }
}

type Answer = (
    u16,
    &'static str,
    Vec<(String, String)>,
    Option<String>,
    Vec<u8>,
    bool,
);

async fn read_body(
    r: hyper::Response<hyper::body::Incoming>,
    cap: usize,
    phase: &Phase,
) -> Result<Answer, String> {
    let status = r.status().as_u16();
    let version = match r.version() {
        hyper::Version::HTTP_2 => "HTTP/2",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let location = r
        .headers()
        .get(header::LOCATION)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_owned);
    phase.set("reading the body");
    let mut body = r.into_body();
    let mut buf = Vec::new();
    let mut truncated = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the body failed: {e}"))?;
        if let Ok(data) = frame.into_data() {
            let room = cap.saturating_sub(buf.len());
            if data.len() > room {
                buf.extend_from_slice(&data[..room]);
                truncated = true;
                break;
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok((status, version, headers, location, buf, truncated))
}

fn describe_hyper(e: &hyper::Error) -> String {
    if e.is_incomplete_message() {
        "the server closed the connection before answering".into()
    } else if e.is_parse() {
        format!("the answer is not HTTP: {e}")
    } else {
        e.to_string()
    }
}

pub(crate) async fn run(spec: &HttpSpec, tls: &TlsContext, phase: &Phase) -> Raw {
    let started = Instant::now();
    let mut url = spec.url.clone();
    let mut method = spec.method.clone();
    let mut send_body = true;
    let mut redirects = 0u32;
    loop {
        let hop = match one_hop(spec, &url, &method, send_body, tls, phase).await {
            Ok(hop) => hop,
            Err((reason, mut timings)) => {
                timings.total_us = micros(started.elapsed());
                return Raw {
                    failure: Some(reason),
                    facts: Facts::default(),
                    timings,
                    details: json!({"http": {"url": url.as_str(), "redirects": redirects}}),
                    default_up: Ok(()),
                };
            }
        };
        let is_redirect =
            matches!(hop.status, 301 | 302 | 303 | 307 | 308) && hop.location.is_some();
        if is_redirect && spec.max_redirects > 0 {
            if redirects >= spec.max_redirects {
                let mut timings = hop.timings;
                timings.total_us = micros(started.elapsed());
                return Raw {
                    failure: Some(format!(
                        "too many redirects (more than {})",
                        spec.max_redirects
                    )),
                    facts: Facts::default(),
                    timings,
                    details: json!({"http": {"url": url.as_str(), "redirects": redirects}}),
                    default_up: Ok(()),
                };
            }
            let target = hop
                .location
                .as_deref()
                .and_then(|l| url.join(l).ok())
                .filter(|u| matches!(u.scheme(), "http" | "https"));
            let Some(target) = target else {
                let mut timings = hop.timings;
                timings.total_us = micros(started.elapsed());
                return Raw {
                    failure: Some(format!(
                        "invalid redirect target `{}`",
                        hop.location.unwrap_or_default()
                    )),
                    facts: Facts::default(),
                    timings,
                    details: json!({}),
                    default_up: Ok(()),
                };
            };
            if matches!(hop.status, 301..=303) && method != "HEAD" {
                method = "GET".into();
                send_body = false;
            }
            url = target;
            redirects += 1;
            continue;
        }
        let mut timings = hop.timings;
        timings.total_us = micros(started.elapsed());
        let headers: Vec<(String, String)> = hop
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        let facts = Facts {
            status: Some(hop.status),
            response_time_ms: timings.total_us as f64 / 1000.0,
            body: Some(String::from_utf8_lossy(&hop.body).into_owned()),
            headers,
            cert_expires_in_ms: hop.cert.as_ref().map(CertInfo::expires_in_ms),
            ..Facts::default()
        };
        let default_up = if hop.status < 400 {
            Ok(())
        } else {
            Err(format!("HTTP {}", hop.status))
        };
        let details = json!({
            "http": {
                "status": hop.status,
                "version": hop.version,
                "url": url.as_str(),
                "address": hop.address,
                "redirects": redirects,
                "body_bytes": hop.body.len(),
                "body_truncated": hop.body_truncated,
            },
            "cert": hop.cert.as_ref().map(CertInfo::to_json),
        });
        return Raw {
            failure: None,
            facts,
            timings,
            details,
            default_up,
        };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_auth_is_base64() {
        assert_eq!(
            super::basic_auth("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(super::basic_auth("a", ""), "Basic YTo=");
    }
}
