//! DNS: one query of one record type to the system's resolver or a given one, over UDP (and TCP
//! when the answer is truncated). Reports the response code and the answers as text.

use crate::{Phase, Raw, Timings, micros};
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use pingtower_core::assertion::Facts;
use pingtower_core::check::DnsSpec;
use serde_json::json;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The first `nameserver` of /etc/resolv.conf.
fn system_resolver() -> Option<SocketAddr> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next())
            .flatten()?
            .split('%')
            .next()?
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// The conventional names of response codes (`NOERROR`, `NXDOMAIN`, …).
fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

async fn exchange_udp(server: SocketAddr, query: &[u8], id: u16) -> Result<Message, String> {
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("UDP socket: {e}"))?;
    sock.connect(server)
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    sock.send(query)
        .await
        .map_err(|e| format!("sending to {server}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock
            .recv(&mut buf)
            .await
            .map_err(|e| format!("no answer from {server}: {}", crate::net::describe_io(&e)))?;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == id && m.metadata.message_type == MessageType::Response => {
                return Ok(m);
            }
            // A stray or forged datagram: keep waiting for ours.
            _ => continue,
        }
    }
}

async fn exchange_tcp(server: SocketAddr, query: &[u8]) -> Result<Message, String> {
    let mut s = TcpStream::connect(server).await.map_err(|e| {
        format!(
            "cannot connect to {server}: {}",
            crate::net::describe_io(&e)
        )
    })?;
    let len = u16::try_from(query.len()).map_err(|_| "query too long".to_owned())?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed).await.map_err(|e| e.to_string())?;
    let n = s
        .read_u16()
        .await
        .map_err(|e| format!("reading from {server}: {e}"))?;
    let mut buf = vec![0u8; usize::from(n)];
    s.read_exact(&mut buf)
        .await
        .map_err(|e| format!("reading from {server}: {e}"))?;
    Message::from_vec(&buf).map_err(|e| format!("malformed answer from {server}: {e}"))
}

pub(crate) async fn run(spec: &DnsSpec, phase: &Phase) -> Raw {
    let started = Instant::now();
    let fail = |reason: String| Raw {
        failure: Some(reason),
        facts: Facts::default(),
        timings: Timings {
            total_us: micros(started.elapsed()),
            ..Timings::default()
        },
        details: json!({}),
        default_up: Ok(()),
    };
    let Some(server) = spec.resolver.or_else(system_resolver) else {
        return fail("no resolver given and none in /etc/resolv.conf".into());
    };
    // A given resolver is a target like any other; the system's own is the operator's choice.
    if spec.resolver.is_some()
        && let Err(reason) = crate::net::allowed(phase, "the resolver", server.ip())
    {
        return fail(reason);
    }
    let fqdn = if spec.query.ends_with('.') {
        spec.query.clone()
    } else {
        format!("{}.", spec.query)
    };
    let name = match Name::from_ascii(&fqdn) {
        Ok(n) => n,
        Err(e) => return fail(format!("`{}` is not a domain name: {e}", spec.query)),
    };
    let Ok(rtype) = RecordType::from_str(&spec.record_type) else {
        return fail(format!("unknown record type {}", spec.record_type));
    };
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name, rtype));
    let id = msg.metadata.id;
    let bytes = match msg.to_vec() {
        Ok(b) => b,
        Err(e) => return fail(format!("cannot encode the query: {e}")),
    };
    phase.set("waiting for the DNS answer");
    let mut answer = match exchange_udp(server, &bytes, id).await {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let mut transport = "udp";
    if answer.metadata.truncation {
        phase.set("waiting for the DNS answer over TCP");
        answer = match exchange_tcp(server, &bytes).await {
            Ok(m) => m,
            Err(e) => return fail(e),
        };
        transport = "tcp";
    }
    let total_us = micros(started.elapsed());
    let rcode = rcode_name(answer.metadata.response_code);
    let answers: Vec<String> = answer
        .answers
        .iter()
        .filter(|r| r.record_type() == rtype)
        .map(|r| {
            let text = r.data.to_string();
            text.strip_suffix('.').map(str::to_owned).unwrap_or(text)
        })
        .collect();
    let default_up = if rcode != "NOERROR" {
        Err(format!(
            "DNS {rcode} for {} {}",
            spec.query, spec.record_type
        ))
    } else if answers.is_empty() {
        Err(format!("no {} record for {}", spec.record_type, spec.query))
    } else {
        Ok(())
    };
    let facts = Facts {
        response_time_ms: total_us as f64 / 1000.0,
        dns_answers: Some(answers.clone()),
        dns_rcode: Some(rcode.clone()),
        ..Facts::default()
    };
    Raw {
        failure: None,
        facts,
        timings: Timings {
            total_us,
            ..Timings::default()
        },
        details: json!({"dns": {"resolver": server.to_string(), "transport": transport, "rcode": rcode, "answers": answers}}),
        default_up,
    }
}
