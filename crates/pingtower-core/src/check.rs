//! A monitor's check, typed: the kind-specific settings parsed and validated from the
//! monitor's JSON settings, plus its assertions.

use crate::assertion::Assertion;
use crate::{Monitor, MonitorKind};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/2 when the server offers it over TLS (ALPN), else HTTP/1.1.
    Auto,
    Http1,
    Http2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    Any,
    V4,
    V6,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpSpec {
    pub url: url::Url,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub basic_auth: Option<(String, String)>,
    pub bearer_token: Option<String>,
    pub max_redirects: u32,
    pub http_version: HttpVersion,
    pub ip_family: IpFamily,
    pub tls_verify: bool,
    /// Extra trusted CA certificates (PEM) for this monitor.
    pub tls_ca_pem: Option<String>,
    /// Most body bytes read; the rest is not downloaded.
    pub max_body_bytes: usize,
    /// An HTTP proxy (`http://[user:password@]host:port`): CONNECT for https targets,
    /// absolute-form requests for http ones.
    pub proxy: Option<url::Url>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TcpSpec {
    pub host: String,
    pub port: u16,
    pub ip_family: IpFamily,
    pub send: Option<String>,
    /// A substring the reply must contain.
    pub expect: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsSpec {
    pub host: String,
    pub port: u16,
    pub ip_family: IpFamily,
    /// The name sent as SNI and matched against the certificate (default: host).
    pub server_name: String,
    pub tls_ca_pem: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DnsSpec {
    pub query: String,
    pub record_type: String,
    /// `IP` or `IP:PORT`; the system resolver when absent.
    pub resolver: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IcmpSpec {
    pub host: String,
    pub packets: u16,
    pub ip_family: IpFamily,
}

/// A cron schedule in a time zone: when a cron job is expected to ping.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    pub expression: String,
    cron: croner::Cron,
    pub tz: chrono_tz::Tz,
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.tz == other.tz
    }
}

impl CronSchedule {
    pub fn parse(expression: &str, tz: &str) -> Result<Self, (String, String)> {
        let cron = expression.parse::<croner::Cron>().map_err(|e| {
            (
                "cron".to_owned(),
                format!("`{expression}` is not a cron schedule: {e}"),
            )
        })?;
        let tz = tz.parse::<chrono_tz::Tz>().map_err(|_| {
            (
                "timezone".to_owned(),
                format!("`{tz}` is not an IANA time zone such as Europe/Berlin"),
            )
        })?;
        Ok(Self {
            expression: expression.to_owned(),
            cron,
            tz,
        })
    }

    /// The first scheduled time strictly after `after_ms` (milliseconds since the epoch).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        use chrono::TimeZone;
        let start = self.tz.timestamp_millis_opt(after_ms).single()?;
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|t| t.timestamp_millis())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatSpec {
    pub grace_ms: i64,
    /// Expected pings on a cron schedule instead of every interval.
    pub cron: Option<CronSchedule>,
}

impl HeartbeatSpec {
    /// When a monitor whose last sign of life was at `since_ms` is late: the next expected
    /// ping plus the grace period.
    pub fn deadline(&self, since_ms: i64, interval_ms: i64) -> i64 {
        let expected = match &self.cron {
            Some(c) => c.next_after(since_ms).unwrap_or(since_ms + interval_ms),
            None => since_ms + interval_ms,
        };
        expected + self.grace_ms
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKindSpec {
    Http(HttpSpec),
    Tcp(TcpSpec),
    Tls(TlsSpec),
    Dns(DnsSpec),
    Icmp(IcmpSpec),
    Heartbeat(HeartbeatSpec),
    Event(crate::event_rule::EventRule),
}

/// Everything a worker needs to run one monitor's check.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub kind: CheckKindSpec,
    pub timeout_ms: i64,
    pub assertions: Vec<Assertion>,
    /// Assertions whose failure marks the check DEGRADED instead of DOWN.
    pub degraded_when: Vec<Assertion>,
}

pub const DNS_RECORD_TYPES: &[&str] =
    &["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA"];
const DEFAULT_MAX_BODY: usize = 1 << 20;

/// Reads typed fields out of a settings object, collecting every problem.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    errors: Vec<(String, String)>,
}

impl<'a> Fields<'a> {
    fn err(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push((field.to_owned(), message.into()));
    }

    fn str(&mut self, field: &str) -> Option<&'a str> {
        match self.map.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                self.err(field, "must be a string");
                None
            }
        }
    }

    fn required_str(&mut self, field: &str) -> Option<&'a str> {
        let v = self.str(field);
        if v.is_none_or(|s| s.trim().is_empty()) && !self.errors.iter().any(|(f, _)| f == field) {
            self.err(field, "is required");
            return None;
        }
        v
    }

    fn uint(&mut self, field: &str, min: u64, max: u64) -> Option<u64> {
        match self.map.get(field) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Some(n),
                _ => {
                    self.err(field, format!("must be a whole number from {min} to {max}"));
                    None
                }
            },
        }
    }

    fn bool(&mut self, field: &str) -> Option<bool> {
        match self.map.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.err(field, "must be true or false");
                None
            }
        }
    }

    fn host(&mut self, field: &str) -> String {
        let host = self.required_str(field).unwrap_or_default().trim();
        let bad = host
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '@'));
        if bad {
            self.err(field, "must be a host name or an IP address");
        }
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned()
    }

    fn port(&mut self) -> u16 {
        match self.uint("port", 1, 65_535) {
            Some(p) => p as u16,
            None => {
                if !self.errors.iter().any(|(f, _)| f == "port") {
                    self.err("port", "is required");
                }
                0
            }
        }
    }

    fn ip_family(&mut self) -> IpFamily {
        match self.str("ip_family") {
            None | Some("any") => IpFamily::Any,
            Some("ipv4") => IpFamily::V4,
            Some("ipv6") => IpFamily::V6,
            Some(_) => {
                self.err("ip_family", "must be `any`, `ipv4` or `ipv6`");
                IpFamily::Any
            }
        }
    }

    fn assertions(&mut self, field: &str, kind: MonitorKind) -> Vec<Assertion> {
        let items = match self.map.get(field) {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.err(field, "must be a list of strings");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let name = format!("{field}[{i}]");
            let Some(src) = item.as_str() else {
                self.err(&name, "must be a string");
                continue;
            };
            match Assertion::parse(src) {
                Ok(a) => match a.check_kind(kind) {
                    Ok(()) => out.push(a),
                    Err(e) => self.err(&name, e),
                },
                Err(e) => self.err(&name, format!("`{src}`: {e}")),
            }
        }
        out
    }
}

fn parse_resolver(text: &str) -> Option<std::net::SocketAddr> {
    text.parse::<std::net::SocketAddr>().ok().or_else(|| {
        text.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| (ip, 53).into())
    })
}

/// The setting, any kind of monitor may have, naming the monitor it depends on: while that one
/// is down, this one's notifications are suppressed and its incident links to the other's.
pub const DEPENDS_ON: &str = "depends_on";

/// The monitor a monitor depends on, if it names one.
pub fn depends_on(settings: &Map<String, Value>) -> Option<crate::MonitorId> {
    settings.get(DEPENDS_ON)?.as_str()?.parse().ok()
}

/// A setting of every kind: the group a monitor is shown in (the overview shows a group as
/// one row with its worst status).
pub const GROUP: &str = "group";

/// The monitor's group, if it has one.
pub fn group_of(settings: &Map<String, Value>) -> Option<&str> {
    settings.get(GROUP)?.as_str()
}

/// The settings each kind of monitor takes (beside the fields every monitor has).
pub fn setting_names(kind: MonitorKind) -> &'static [&'static str] {
    match kind {
        MonitorKind::Http => &[
            "url",
            "method",
            "headers",
            "body",
            "basic_auth_user",
            "basic_auth_password",
            "bearer_token",
            "max_redirects",
            "http_version",
            "ip_family",
            "tls_verify",
            "tls_ca_pem",
            "proxy",
            "max_body_bytes",
            "assertions",
            "degraded_when",
        ],
        MonitorKind::Tcp => &[
            "host",
            "port",
            "ip_family",
            "send",
            "expect",
            "assertions",
            "degraded_when",
        ],
        MonitorKind::Tls => &[
            "host",
            "port",
            "ip_family",
            "server_name",
            "tls_ca_pem",
            "assertions",
            "degraded_when",
        ],
        MonitorKind::Dns => &[
            "query",
            "record_type",
            "resolver",
            "assertions",
            "degraded_when",
        ],
        MonitorKind::Icmp => &[
            "host",
            "packets",
            "ip_family",
            "assertions",
            "degraded_when",
        ],
        MonitorKind::Heartbeat => &["grace_seconds", "cron", "timezone"],
        MonitorKind::Event => &["query", "condition"],
    }
}

impl CheckSpec {
    /// Parses and validates a monitor's kind-specific settings. Returns every problem as
    /// `(field, message)`.
    pub fn parse(
        kind: MonitorKind,
        settings: &Map<String, Value>,
        timeout_ms: i64,
    ) -> Result<Self, Vec<(String, String)>> {
        let mut f = Fields {
            map: settings,
            errors: Vec::new(),
        };
        let kind_spec = match kind {
            MonitorKind::Http => {
                let url = f
                    .required_str("url")
                    .and_then(|u| match url::Url::parse(u) {
                        Ok(url)
                            if matches!(url.scheme(), "http" | "https")
                                && url.host_str().is_some() =>
                        {
                            Some(url)
                        }
                        Ok(_) => {
                            f.err("url", "must be an http:// or https:// URL with a host");
                            None
                        }
                        Err(e) => {
                            f.err("url", format!("is not a URL: {e}"));
                            None
                        }
                    });
                let method = f.str("method").unwrap_or("GET").to_ascii_uppercase();
                if !["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                    .contains(&method.as_str())
                {
                    f.err(
                        "method",
                        "must be GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS",
                    );
                }
                let mut headers = Vec::new();
                match settings.get("headers") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(h)) => {
                        for (k, v) in h {
                            match v.as_str() {
                                Some(v)
                                    if !k.is_empty()
                                        && k.bytes().all(|b| b.is_ascii_graphic() && b != b':') =>
                                {
                                    headers.push((k.clone(), v.to_owned()));
                                }
                                _ => f.err(
                                    "headers",
                                    format!(
                                        "`{k}`: names are ASCII without `:`, values are strings"
                                    ),
                                ),
                            }
                        }
                    }
                    Some(_) => f.err("headers", "must be an object of name: value"),
                }
                let body = f.str("body").map(str::to_owned);
                let basic_auth = match (f.str("basic_auth_user"), f.str("basic_auth_password")) {
                    (Some(u), p) => Some((u.to_owned(), p.unwrap_or_default().to_owned())),
                    (None, Some(_)) => {
                        f.err("basic_auth_user", "is required with basic_auth_password");
                        None
                    }
                    (None, None) => None,
                };
                let bearer_token = f.str("bearer_token").map(str::to_owned);
                let max_redirects = f.uint("max_redirects", 0, 30).unwrap_or(10) as u32;
                let http_version = match f.str("http_version") {
                    None | Some("auto") => HttpVersion::Auto,
                    Some("1.1" | "http1") => HttpVersion::Http1,
                    Some("2" | "http2") => HttpVersion::Http2,
                    Some(_) => {
                        f.err("http_version", "must be `auto`, `1.1` or `2`");
                        HttpVersion::Auto
                    }
                };
                let ip_family = f.ip_family();
                let tls_verify = f.bool("tls_verify").unwrap_or(true);
                let tls_ca_pem = f.str("tls_ca_pem").map(str::to_owned);
                let max_body_bytes = f
                    .uint("max_body_bytes", 0, 64 << 20)
                    .map_or(DEFAULT_MAX_BODY, |n| n as usize);
                let proxy = f.str("proxy").and_then(|p| match url::Url::parse(p) {
                    Ok(u) if u.scheme() == "http" && u.host_str().is_some() => Some(u),
                    _ => {
                        f.err(
                            "proxy",
                            "must be an http:// URL with a host, such as http://127.0.0.1:3128",
                        );
                        None
                    }
                });
                if proxy.is_some()
                    && http_version == HttpVersion::Http2
                    && url.as_ref().is_some_and(|u| u.scheme() == "http")
                {
                    f.err(
                        "http_version",
                        "cleartext HTTP/2 cannot go through a proxy; use https or 1.1",
                    );
                }
                url.map(|url| {
                    CheckKindSpec::Http(HttpSpec {
                        url,
                        method,
                        headers,
                        body,
                        basic_auth,
                        bearer_token,
                        max_redirects,
                        http_version,
                        ip_family,
                        tls_verify,
                        tls_ca_pem,
                        max_body_bytes,
                        proxy,
                    })
                })
            }
            MonitorKind::Tcp => {
                let host = f.host("host");
                let port = f.port();
                let ip_family = f.ip_family();
                let send = f.str("send").map(str::to_owned);
                let expect = f.str("expect").map(str::to_owned);
                Some(CheckKindSpec::Tcp(TcpSpec {
                    host,
                    port,
                    ip_family,
                    send,
                    expect,
                }))
            }
            MonitorKind::Tls => {
                let host = f.host("host");
                let port = f.port();
                let ip_family = f.ip_family();
                let server_name = f
                    .str("server_name")
                    .map_or_else(|| host.clone(), str::to_owned);
                let tls_ca_pem = f.str("tls_ca_pem").map(str::to_owned);
                Some(CheckKindSpec::Tls(TlsSpec {
                    host,
                    port,
                    ip_family,
                    server_name,
                    tls_ca_pem,
                }))
            }
            MonitorKind::Dns => {
                let query = f
                    .required_str("query")
                    .unwrap_or_default()
                    .trim_end_matches('.')
                    .to_owned();
                let record_type = f.str("record_type").unwrap_or("A").to_ascii_uppercase();
                if !DNS_RECORD_TYPES.contains(&record_type.as_str()) {
                    f.err(
                        "record_type",
                        format!("must be one of {}", DNS_RECORD_TYPES.join(", ")),
                    );
                }
                let resolver = f.str("resolver").and_then(|r| {
                    let parsed = parse_resolver(r);
                    if parsed.is_none() {
                        f.err("resolver", "must be IP or IP:PORT");
                    }
                    parsed
                });
                Some(CheckKindSpec::Dns(DnsSpec {
                    query,
                    record_type,
                    resolver,
                }))
            }
            MonitorKind::Icmp => {
                let host = f.host("host");
                let packets = f.uint("packets", 1, 20).unwrap_or(3) as u16;
                let ip_family = f.ip_family();
                Some(CheckKindSpec::Icmp(IcmpSpec {
                    host,
                    packets,
                    ip_family,
                }))
            }
            MonitorKind::Heartbeat => {
                let grace_ms = f.uint("grace_seconds", 0, 7 * 86_400).unwrap_or(60) as i64 * 1000;
                let tz = f.str("timezone").unwrap_or("UTC");
                let cron = match f.str("cron") {
                    Some(expr) => match CronSchedule::parse(expr, tz) {
                        Ok(c) => Some(c),
                        Err((field, message)) => {
                            f.err(&field, message);
                            None
                        }
                    },
                    None => None,
                };
                Some(CheckKindSpec::Heartbeat(HeartbeatSpec { grace_ms, cron }))
            }
            MonitorKind::Event => match crate::event_rule::EventRule::read(settings) {
                Ok(rule) => Some(CheckKindSpec::Event(rule)),
                Err(errors) => {
                    f.errors.extend(errors);
                    None
                }
            },
        };
        let assertions = f.assertions("assertions", kind);
        let degraded_when = f.assertions("degraded_when", kind);
        let known = setting_names(kind);
        for key in settings.keys() {
            if key == DEPENDS_ON {
                if settings[key]
                    .as_str()
                    .is_none_or(|v| v.parse::<crate::MonitorId>().is_err())
                {
                    f.err(key, "must be the id of another monitor");
                }
                continue;
            }
            if key == GROUP {
                let ok = settings[key].as_str().is_some_and(|g| {
                    g.trim() == g
                        && !g.is_empty()
                        && g.chars().count() <= 100
                        && !g.chars().any(char::is_control)
                });
                if !ok {
                    f.err(
                        key,
                        "must be a name of 1 to 100 characters, without spaces around it",
                    );
                }
                continue;
            }
            if !known.contains(&key.as_str()) {
                f.err(key, format!("is not a setting of {kind} monitors"));
            }
        }
        match kind_spec {
            Some(kind) if f.errors.is_empty() => Ok(Self {
                kind,
                timeout_ms,
                assertions,
                degraded_when,
            }),
            _ => Err(f.errors),
        }
    }

    /// The spec of a stored monitor.
    pub fn of(monitor: &Monitor) -> Result<Self, Vec<(String, String)>> {
        Self::parse(monitor.kind, &monitor.settings, monitor.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(kind: MonitorKind, v: Value) -> Result<CheckSpec, Vec<(String, String)>> {
        CheckSpec::parse(kind, v.as_object().unwrap(), 10_000)
    }

    fn fields(r: Result<CheckSpec, Vec<(String, String)>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    #[test]
    fn http_defaults() {
        let s = parse(
            MonitorKind::Http,
            json!({"url": "http://127.0.0.1:9000/health", "assertions": ["status == 200"]}),
        )
        .unwrap();
        let CheckKindSpec::Http(h) = s.kind else {
            panic!()
        };
        assert_eq!(
            (h.method.as_str(), h.max_redirects, h.tls_verify),
            ("GET", 10, true)
        );
        assert_eq!(s.assertions.len(), 1);
    }

    #[test]
    fn any_kind_may_be_in_a_group_with_a_name_of_1_to_100_characters() {
        for kind in [MonitorKind::Http, MonitorKind::Tcp] {
            let target = if kind == MonitorKind::Http {
                json!({"url": "http://127.0.0.1:9/"})
            } else {
                json!({"host": "127.0.0.1", "port": 9})
            };
            let with = |g: Value| {
                let mut v = target.clone();
                v["group"] = g;
                parse(kind, v)
            };
            assert!(with(json!("Payments")).is_ok(), "{kind}");
            for bad in [
                json!(""),
                json!(" pad "),
                json!("x".repeat(101)),
                json!(3),
                json!("a\nb"),
            ] {
                assert_eq!(fields(with(bad.clone())), ["group"], "{kind} {bad}");
            }
        }
        let mut s = Map::new();
        s.insert(GROUP.into(), json!("Payments"));
        assert_eq!(group_of(&s), Some("Payments"));
    }

    #[test]
    fn every_bad_field_is_named() {
        let r = parse(
            MonitorKind::Http,
            json!({"url": "ftp://x", "method": "BREW", "max_redirects": 99, "assertions": ["status = 200", "dns.rcode == \"X\""]}),
        );
        assert_eq!(
            fields(r),
            [
                "url",
                "method",
                "max_redirects",
                "assertions[0]",
                "assertions[1]"
            ]
        );
        assert_eq!(
            fields(parse(MonitorKind::Tcp, json!({"host": "a b"}))),
            ["host", "port"]
        );
        assert_eq!(
            fields(parse(
                MonitorKind::Dns,
                json!({"query": "x.test", "record_type": "PTRX", "resolver": "nope"})
            )),
            ["record_type", "resolver"]
        );
        assert_eq!(fields(parse(MonitorKind::Http, json!({}))), ["url"]);
    }

    #[test]
    fn heartbeat_deadlines_follow_the_interval_or_the_cron_schedule() {
        let s = parse(MonitorKind::Heartbeat, json!({"grace_seconds": 30})).unwrap();
        let CheckKindSpec::Heartbeat(h) = s.kind else {
            panic!()
        };
        assert_eq!(h.deadline(1_000_000, 60_000), 1_000_000 + 60_000 + 30_000);
        // Every day at 02:00 in Berlin; a ping on 2026-11-22 at 02:05 local (01:05 UTC).
        let s = parse(
            MonitorKind::Heartbeat,
            json!({"cron": "0 2 * * *", "timezone": "Europe/Berlin", "grace_seconds": 600}),
        )
        .unwrap();
        let CheckKindSpec::Heartbeat(h) = s.kind else {
            panic!()
        };
        let ping = chrono::DateTime::parse_from_rfc3339("2026-11-22T01:05:00Z")
            .unwrap()
            .timestamp_millis();
        let next = chrono::DateTime::parse_from_rfc3339("2026-11-23T01:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(h.deadline(ping, 86_400_000), next + 600_000);
        let bad = parse(
            MonitorKind::Heartbeat,
            json!({"cron": "61 * * * *", "timezone": "Mars/Olympus"}),
        );
        assert_eq!(fields(bad), ["cron"]);
        assert_eq!(
            fields(parse(
                MonitorKind::Heartbeat,
                json!({"cron": "0 * * * *", "timezone": "Mars/Olympus"})
            )),
            ["timezone"]
        );
    }

    #[test]
    fn resolvers_default_to_port_53() {
        let s = parse(
            MonitorKind::Dns,
            json!({"query": "a.test", "resolver": "127.0.0.1"}),
        )
        .unwrap();
        let CheckKindSpec::Dns(d) = s.kind else {
            panic!()
        };
        assert_eq!(d.resolver, Some("127.0.0.1:53".parse().unwrap()));
        let s = parse(
            MonitorKind::Dns,
            json!({"query": "a.test", "resolver": "[::1]:5353"}),
        )
        .unwrap();
        let CheckKindSpec::Dns(d) = s.kind else {
            panic!()
        };
        assert_eq!(d.resolver, Some("[::1]:5353".parse().unwrap()));
    }
}
