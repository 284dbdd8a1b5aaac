//! ICMP echo ("ping"): N packets, loss and round-trip figures. Needs root, CAP_NET_RAW, or a
//! group allowed by `net.ipv4.ping_group_range`; without them the result says so.

use crate::net::resolve;
use crate::{Phase, Raw, Timings, micros};
use pingtower_core::assertion::Facts;
use pingtower_core::check::IcmpSpec;
use serde_json::json;
use std::time::{Duration, Instant};
use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence, SurgeError};

const PAYLOAD: [u8; 32] = *b"pingtower-echo-payload-32-bytes!";

pub(crate) async fn run(spec: &IcmpSpec, timeout: Duration, phase: &Phase) -> Raw {
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
    let (addrs, dns_us) = match resolve(&spec.host, 0, spec.ip_family, phase).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let Some(target) = addrs.first().map(|a| a.ip()) else {
        return fail(format!("{} has no address", spec.host));
    };
    let config = if target.is_ipv6() {
        Config::builder().kind(ICMP::V6).build()
    } else {
        Config::default()
    };
    let client = match Client::new(&config) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return fail("ICMP needs raw sockets: run as root, give the binary CAP_NET_RAW, or allow its group in net.ipv4.ping_group_range".into());
        }
        Err(e) => return fail(format!("cannot open an ICMP socket: {e}")),
    };
    phase.set("waiting for echo replies");
    let mut pinger = client.pinger(target, PingIdentifier(rand_ident())).await;
    // Every packet gets a fair share of nine tenths of the check's time (at most a second), so
    // that even with every packet lost the figures are reported before the check times out.
    let per_packet = (timeout.mul_f64(0.9).saturating_sub(started.elapsed())
        / u32::from(spec.packets.max(1)))
    .min(Duration::from_secs(1));
    pinger.timeout(per_packet);
    let mut rtts = Vec::new();
    let mut errors = Vec::new();
    for seq in 0..spec.packets {
        match pinger.ping(PingSequence(seq), &PAYLOAD).await {
            Ok((_, rtt)) => rtts.push(rtt.as_secs_f64() * 1000.0),
            Err(SurgeError::Timeout { .. }) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    let total_us = micros(started.elapsed());
    let sent = usize::from(spec.packets);
    let received = rtts.len();
    let loss = 100.0 * (sent - received) as f64 / sent.max(1) as f64;
    let avg = if rtts.is_empty() {
        None
    } else {
        Some(rtts.iter().sum::<f64>() / rtts.len() as f64)
    };
    let min = rtts.iter().copied().reduce(f64::min);
    let max = rtts.iter().copied().reduce(f64::max);
    let details = json!({"icmp": {
        "address": target.to_string(), "sent": sent, "received": received, "loss_percent": loss,
        "rtt_min_ms": min, "rtt_avg_ms": avg, "rtt_max_ms": max,
    }});
    let default_up = if received == 0 {
        Err(match errors.first() {
            Some(e) => format!("no echo reply from {target}: {e}"),
            None => format!("no echo reply from {target} ({sent} sent)"),
        })
    } else {
        Ok(())
    };
    let rtt_us = avg.map(|ms| (ms * 1000.0) as i64);
    Raw {
        failure: None,
        facts: Facts {
            response_time_ms: avg.unwrap_or(total_us as f64 / 1000.0),
            ..Facts::default()
        },
        timings: Timings {
            dns_us,
            total_us: rtt_us.unwrap_or(total_us),
            ..Timings::default()
        },
        details,
        default_up,
    }
}

fn rand_ident() -> u16 {
    // Distinct per check so that concurrent pings of one host do not take each other's replies.
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let salt = (std::process::id() as u16).wrapping_mul(31);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .wrapping_add(salt)
}
