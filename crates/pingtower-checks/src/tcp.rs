//! TCP: connect, optionally send bytes and expect a reply containing a pattern.

use crate::net::{connect, describe_io, resolve};
use crate::{Phase, Raw, Timings, micros};
use pingtower_core::assertion::Facts;
use pingtower_core::check::TcpSpec;
use serde_json::json;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Most reply bytes read while looking for `expect`.
const MAX_REPLY: usize = 64 * 1024;

pub(crate) async fn run(spec: &TcpSpec, phase: &Phase) -> Raw {
    let started = Instant::now();
    let mut timings = Timings::default();
    let fail = |reason: String, timings: Timings| Raw {
        failure: Some(reason),
        facts: Facts::default(),
        timings,
        details: json!({}),
        default_up: Ok(()),
    };
    let (addrs, dns) = match resolve(&spec.host, spec.port, spec.ip_family, phase).await {
        Ok(r) => r,
        Err(e) => {
            return fail(
                e,
                Timings {
                    total_us: micros(started.elapsed()),
                    ..timings
                },
            );
        }
    };
    timings.dns_us = dns;
    let (mut stream, addr, connect_us) = match connect(&addrs, phase).await {
        Ok(r) => r,
        Err(e) => {
            return fail(
                e,
                Timings {
                    total_us: micros(started.elapsed()),
                    ..timings
                },
            );
        }
    };
    timings.connect_us = Some(connect_us);
    let mut reply = Vec::new();
    if let Some(send) = &spec.send {
        phase.set("sending");
        if let Err(e) = stream.write_all(send.as_bytes()).await {
            return fail(
                format!("cannot send to {addr}: {}", describe_io(&e)),
                Timings {
                    total_us: micros(started.elapsed()),
                    ..timings
                },
            );
        }
    }
    if let Some(expect) = &spec.expect {
        phase.set("waiting for the expected reply");
        let mut buf = [0u8; 4096];
        let found = loop {
            if String::from_utf8_lossy(&reply).contains(expect.as_str()) {
                break true;
            }
            if reply.len() >= MAX_REPLY {
                break false;
            }
            match stream.read(&mut buf).await {
                Ok(0) => break false,
                Ok(n) => reply.extend_from_slice(&buf[..n.min(MAX_REPLY - reply.len())]),
                Err(e) => {
                    return fail(
                        format!("reading from {addr}: {}", describe_io(&e)),
                        Timings {
                            total_us: micros(started.elapsed()),
                            ..timings
                        },
                    );
                }
            }
        };
        if !found {
            let got = String::from_utf8_lossy(&reply)
                .chars()
                .take(80)
                .collect::<String>();
            return fail(
                format!("reply does not contain `{expect}` (got `{got}`)"),
                Timings {
                    total_us: micros(started.elapsed()),
                    ..timings
                },
            );
        }
    }
    timings.total_us = micros(started.elapsed());
    let facts = Facts {
        response_time_ms: timings.total_us as f64 / 1000.0,
        ..Facts::default()
    };
    Raw {
        failure: None,
        facts,
        timings,
        details: json!({"tcp": {"address": addr.to_string(), "reply_bytes": reply.len()}}),
        default_up: Ok(()),
    }
}
