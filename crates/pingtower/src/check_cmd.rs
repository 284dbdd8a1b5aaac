//! `pingtower check TARGET`: one check now, its outcome and timings in the terminal.
//! Exit 0 when UP, 1 when DOWN or DEGRADED, 2 on bad usage.

use clap::Args;
use pingtower_core::MonitorKind;
use pingtower_core::check::CheckSpec;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// What to check: a URL for http, HOST:PORT for tcp and tls, a host for icmp, a name for dns
    target: String,
    /// The check kind [default: http for URLs, tcp for HOST:PORT]
    #[arg(long, value_parser = ["http", "tcp", "icmp", "dns", "tls"])]
    kind: Option<String>,
    /// Seconds before the check gives up
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// An assertion, such as 'status == 200' (repeatable)
    #[arg(long = "assert", value_name = "EXPR")]
    assertions: Vec<String>,
    /// An assertion that marks the check DEGRADED, such as 'response_time > 1s' (repeatable)
    #[arg(long = "degraded-when", value_name = "EXPR")]
    degraded_when: Vec<String>,
    /// HTTP method
    #[arg(long, short = 'X')]
    method: Option<String>,
    /// HTTP header 'Name: value' (repeatable)
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// HTTP request body
    #[arg(long)]
    body: Option<String>,
    /// Redirects to follow
    #[arg(long)]
    max_redirects: Option<u32>,
    /// HTTP version: auto, 1.1 or 2
    #[arg(long)]
    http_version: Option<String>,
    /// HTTP proxy, such as http://127.0.0.1:3128
    #[arg(long)]
    proxy: Option<String>,
    /// Do not verify TLS certificates
    #[arg(long, short = 'k')]
    insecure: bool,
    /// Extra trusted CA certificates (PEM file)
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// TLS server name (SNI) for tls checks
    #[arg(long)]
    server_name: Option<String>,
    /// Use IPv4 only
    #[arg(long, short = '4', conflicts_with = "ipv6")]
    ipv4: bool,
    /// Use IPv6 only
    #[arg(long, short = '6')]
    ipv6: bool,
    /// TCP: bytes to send after connecting
    #[arg(long)]
    send: Option<String>,
    /// TCP: text the reply must contain
    #[arg(long)]
    expect: Option<String>,
    /// DNS: record type
    #[arg(long)]
    record_type: Option<String>,
    /// DNS: resolver IP or IP:PORT
    #[arg(long)]
    resolver: Option<String>,
    /// ICMP: packets to send
    #[arg(long)]
    packets: Option<u32>,
    /// Print the outcome as JSON
    #[arg(long)]
    json: bool,
}

fn split_host_port(target: &str) -> Option<(String, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let port = port.parse().ok()?;
    Some((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    ))
}

fn settings(args: &CheckArgs) -> Result<(MonitorKind, Map<String, Value>), String> {
    let kind = match args.kind.as_deref() {
        Some(k) => k.parse::<MonitorKind>().map_err(|e| e.to_string())?,
        None if args.target.contains("://") => MonitorKind::Http,
        None if split_host_port(&args.target).is_some() => MonitorKind::Tcp,
        None => return Err("give --kind, or a URL, or HOST:PORT".into()),
    };
    let mut s = Map::new();
    let mut put = |k: &str, v: Value| {
        s.insert(k.to_owned(), v);
    };
    match kind {
        MonitorKind::Http => put("url", json!(args.target)),
        MonitorKind::Tcp | MonitorKind::Tls => {
            let (host, port) =
                split_host_port(&args.target).ok_or("the target must be HOST:PORT")?;
            put("host", json!(host));
            put("port", json!(port));
        }
        MonitorKind::Icmp => put("host", json!(args.target)),
        MonitorKind::Dns => put("query", json!(args.target)),
        MonitorKind::Heartbeat => {
            return Err("heartbeat monitors are pushed to, not checked".into());
        }
        MonitorKind::Event => {
            return Err(
                "event monitors count a tenant's events on the server; make one through the API"
                    .into(),
            );
        }
    }
    if !args.assertions.is_empty() {
        put("assertions", json!(args.assertions));
    }
    if !args.degraded_when.is_empty() {
        put("degraded_when", json!(args.degraded_when));
    }
    if let Some(m) = &args.method {
        put("method", json!(m));
    }
    if !args.headers.is_empty() {
        let mut h = Map::new();
        for line in &args.headers {
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| format!("header `{line}` is not `Name: value`"))?;
            h.insert(k.trim().to_owned(), json!(v.trim()));
        }
        put("headers", Value::Object(h));
    }
    if let Some(b) = &args.body {
        put("body", json!(b));
    }
    if let Some(n) = args.max_redirects {
        put("max_redirects", json!(n));
    }
    if let Some(v) = &args.http_version {
        put("http_version", json!(v));
    }
    if args.insecure {
        put("tls_verify", json!(false));
    }
    if let Some(path) = &args.ca {
        let pem =
            std::fs::read_to_string(path).map_err(|e| format!("--ca {}: {e}", path.display()))?;
        put("tls_ca_pem", json!(pem));
    }
    if let Some(n) = &args.server_name {
        put("server_name", json!(n));
    }
    if args.ipv4 {
        put("ip_family", json!("ipv4"));
    }
    if args.ipv6 {
        put("ip_family", json!("ipv6"));
    }
    for (k, v) in [
        ("proxy", &args.proxy),
        ("send", &args.send),
        ("expect", &args.expect),
        ("record_type", &args.record_type),
        ("resolver", &args.resolver),
    ] {
        if let Some(v) = v {
            put(k, json!(v));
        }
    }
    if let Some(p) = args.packets {
        put("packets", json!(p));
    }
    Ok((kind, s))
}

fn ms(us: &Value) -> String {
    us.as_i64().map_or_else(
        || "-".to_owned(),
        |us| format!("{:.1} ms", us as f64 / 1000.0),
    )
}

pub async fn run(args: CheckArgs) -> ExitCode {
    if !(args.timeout > 0.0 && args.timeout <= 3600.0) {
        eprintln!("pingtower: --timeout must be between 0 and 3600 seconds");
        return ExitCode::from(2);
    }
    let (kind, settings) = match settings(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pingtower: {e}");
            return ExitCode::from(2);
        }
    };
    let spec = match CheckSpec::parse(kind, &settings, (args.timeout * 1000.0) as i64) {
        Ok(s) => s,
        Err(errors) => {
            for (field, message) in errors {
                eprintln!("pingtower: {field}: {message}");
            }
            return ExitCode::from(2);
        }
    };
    let checker = match pingtower_checks::Checker::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pingtower: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = checker.run(&spec).await;
    if args.json {
        let out = json!({
            "target": args.target,
            "kind": kind,
            "status": outcome.status,
            "latency_ms": outcome.latency_us as f64 / 1000.0,
            "reason": outcome.reason,
            "details": outcome.details,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        print_human(&args.target, &outcome);
    }
    if outcome.status == pingtower_core::CheckStatus::Up {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_human(target: &str, o: &pingtower_checks::Outcome) {
    let d = &o.details;
    let mut head = format!("{:<8} {target}", o.status.as_str().to_uppercase());
    if let Some(status) = d["http"]["status"].as_i64() {
        head.push_str(&format!(
            "  {status} {}",
            d["http"]["version"].as_str().unwrap_or_default()
        ));
    }
    head.push_str(&format!("  {:.1} ms", o.latency_us as f64 / 1000.0));
    println!("{head}");
    if let Some(reason) = &o.reason {
        println!("  reason     {reason}");
    }
    let t = &d["timings"];
    if t.is_object() {
        for (label, key) in [
            ("dns", "dns_us"),
            ("connect", "connect_us"),
            ("tls", "tls_us"),
            ("ttfb", "ttfb_us"),
            ("total", "total_us"),
        ] {
            println!("  {label:<10} {}", ms(&t[key]));
        }
    }
    if let Some(n) = d["http"]["redirects"].as_i64().filter(|n| *n > 0) {
        println!(
            "  redirects  {n} (to {})",
            d["http"]["url"].as_str().unwrap_or_default()
        );
    }
    if let Some(bytes) = d["http"]["body_bytes"].as_i64() {
        let cut = if d["http"]["body_truncated"] == json!(true) {
            " (cut at the cap)"
        } else {
            ""
        };
        println!("  body       {bytes} bytes{cut}");
    }
    if let Some(days) = d["cert"]["expires_in_days"].as_f64() {
        println!(
            "  cert       expires in {days} days ({})",
            d["cert"]["expires_at"].as_str().unwrap_or_default()
        );
    }
    for (key, label) in [("assertions", ""), ("degraded_when", "degraded when ")] {
        if let Some(list) = d[key].as_array() {
            for a in list {
                let passed = a["passed"] == json!(true);
                let mark = if passed { "✓" } else { "✗" };
                let actual = a["actual"]
                    .as_str()
                    .filter(|_| !passed)
                    .map(|s| format!(" (got {s})"))
                    .unwrap_or_default();
                println!(
                    "  {mark} {label}{}{actual}",
                    a["assertion"].as_str().unwrap_or_default()
                );
            }
        }
    }
}
