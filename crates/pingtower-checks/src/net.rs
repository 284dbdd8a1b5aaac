//! Name resolution and connecting, timed.

use crate::{Phase, micros};
use pingtower_core::check::IpFamily;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use tokio::net::TcpStream;

/// Resolves `host` (the system resolver: /etc/hosts, then DNS) and keeps the addresses of the
/// wanted family. Returns the addresses and the time taken (none for an IP literal).
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    family: IpFamily,
    phase: &Phase,
) -> Result<(Vec<SocketAddr>, Option<i64>), String> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        allowed(phase, host, ip)?;
        return Ok((vec![SocketAddr::new(ip, port)], None));
    }
    phase.set("resolving the host name");
    let started = Instant::now();
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let took = micros(started.elapsed());
    let mut addrs: Vec<SocketAddr> = addrs
        .filter(|a| match family {
            IpFamily::Any => true,
            IpFamily::V4 => a.is_ipv4(),
            IpFamily::V6 => a.is_ipv6(),
        })
        .collect();
    addrs.dedup();
    if let Some(refused) = phase
        .blocklist()
        .refusal_of_any(host, addrs.iter().map(SocketAddr::ip))
    {
        return Err(refused);
    }
    if addrs.is_empty() {
        return Err(format!(
            "{host} has no {} address",
            match family {
                IpFamily::V4 => "IPv4",
                IpFamily::V6 => "IPv6",
                IpFamily::Any => "",
            }
        ));
    }
    Ok((addrs, Some(took)))
}

/// `Err` when the operator's blocklist holds `ip`.
pub(crate) fn allowed(phase: &Phase, host: &str, ip: IpAddr) -> Result<(), String> {
    match phase.blocklist().refusal(host, ip) {
        Some(refused) => Err(refused),
        None => Ok(()),
    }
}

/// Connects to the first address that accepts. Returns the stream, the address and the time.
pub(crate) async fn connect(
    addrs: &[SocketAddr],
    phase: &Phase,
) -> Result<(TcpStream, SocketAddr, i64), String> {
    phase.set("connecting");
    let mut last = String::from("no address to connect to");
    for addr in addrs {
        let started = Instant::now();
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok((s, *addr, micros(started.elapsed())));
            }
            Err(e) => last = format!("cannot connect to {addr}: {}", describe_io(&e)),
        }
    }
    Err(last)
}

pub(crate) fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        std::io::ErrorKind::UnexpectedEof => "connection closed".into(),
        _ => e.to_string(),
    }
}
