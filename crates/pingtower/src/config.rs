//! Settings: flags, then `PINGTOWER_*` environment variables, then a config file (TOML or
//! YAML), then defaults. Every setting is resolved and checked before anything starts, and
//! every invalid one is reported at once, with where its value came from.

use pingtower_engine::{Role, RoleSet};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(String),
    File(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::File(path) => write!(f, "config file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// One invalid setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub setting: String,
    pub source: Option<Source>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "`{}` (from {source}): {}", self.setting, self.message),
            None => write!(f, "`{}`: {}", self.setting, self.message),
        }
    }
}

/// Every invalid setting found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

/// A value that must not be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The resolved, valid settings of `pingtower serve` (and `migrate`).
#[derive(Debug, Clone)]
#[allow(
    dead_code,
    reason = "some settings are read only by the roles that use them"
)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: the SQLite file in the data dir.
    pub database_url: Option<String>,
    /// `None`: the in-process bus.
    pub broker_url: Option<String>,
    pub roles: RoleSet,
    pub region: String,
    /// 32 bytes; `None`: generated into the data dir on first start.
    pub secret_key: Option<Secret>,
    pub admin_email: Option<String>,
    pub admin_password: Option<Secret>,
    pub oidc_issuer: Option<String>,
    pub oidc_audience: Option<String>,
    pub oidc_client_id: Option<String>,
    pub oidc_client_secret: Option<Secret>,
    /// Dotted path of the token claim that lists roles (or groups).
    pub oidc_roles_claim: String,
    /// Whether anyone may register (and get a tenant of their own).
    pub registration_open: bool,
    /// The server's address as people reach it (links in notifications).
    pub public_url: Option<String>,
    pub log: String,
    pub log_format: LogFormat,
    pub results_retention_days: u32,
    pub minute_rollups_retention_days: u32,
    pub hour_rollups_retention_days: u32,
    /// Address ranges monitors may not reach (checked on resolved addresses).
    pub blocked_networks: pingtower_checks::Blocklist,
    /// The bearer token `/metrics` asks for. `None`: `/metrics` answers anyone who reaches the
    /// port, but with the process's own figures only (never a per-monitor series), so that a
    /// fresh local `pingtower serve` can be scraped as it is; refusing everyone would leave it
    /// unscrapable, and showing every tenant's monitors to anyone is what this setting prevents.
    pub metrics_token: Option<Secret>,
    /// Whether `/metrics` shows each monitor's series (labelled by monitor and tenant) to callers
    /// with `metrics_token`; needs `metrics_token`.
    pub metrics_monitors: bool,
    /// Most monitors one tenant may have; 0: no limit (an operator hosting others sets it).
    pub tenant_max_monitors: u32,
    /// Shortest check interval a monitor may have, in seconds.
    pub min_interval_seconds: u32,
    /// The SMTP server the installation's own mail goes through (confirming emails,
    /// invitations); `None`: no such mail (links are shown to whoever asked for them).
    pub smtp_url: Option<Secret>,
    /// The sender of the installation's mail; needed with `smtp_url`.
    pub mail_from: Option<String>,
    /// Where tenants' analytics events are kept. `None`: on SQLite, `events.db` in the data
    /// dir (a file of its own, so ingesting never holds up check results); on PostgreSQL, the
    /// same database.
    pub events_database_url: Option<String>,
    /// Days analytics events are kept; `None`: kept for ever.
    pub events_retention_days: Option<u32>,
    /// Events one tenant may send per minute; 0: no limit.
    pub events_per_minute: u64,
    /// Redis for the query cache shared by several API processes; `None`: in memory.
    pub redis_url: Option<Secret>,
}

impl Settings {
    /// The analytics events' database URL.
    pub fn events_database_url(&self) -> String {
        if let Some(url) = &self.events_database_url {
            return url.clone();
        }
        let main = self.database_url();
        if main.starts_with("sqlite:") {
            format!("sqlite://{}", self.data_dir.join("events.db").display())
        } else {
            main
        }
    }

    /// The database URL to open.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("pingtower.db").display()))
    }
}

/// Flags given on the command line (strings, checked with everything else).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub listen: Option<String>,
    pub data_dir: Option<String>,
    pub database: Option<String>,
    pub broker: Option<String>,
    pub roles: Option<String>,
    pub region: Option<String>,
    pub config: Option<PathBuf>,
}

struct Def {
    key: &'static str,
    env: &'static str,
    flag: Option<&'static str>,
    secret: bool,
}

const fn def(
    key: &'static str,
    env: &'static str,
    flag: Option<&'static str>,
    secret: bool,
) -> Def {
    Def {
        key,
        env,
        flag,
        secret,
    }
}

/// Every setting: its config-file key, its environment variable and its flag.
const DEFS: &[Def] = &[
    def("listen", "PINGTOWER_LISTEN", Some("--listen"), false),
    def("data_dir", "PINGTOWER_DATA_DIR", Some("--data-dir"), false),
    def(
        "database_url",
        "PINGTOWER_DATABASE_URL",
        Some("--database"),
        true,
    ),
    def("broker_url", "PINGTOWER_BROKER_URL", Some("--broker"), true),
    def("roles", "PINGTOWER_ROLES", Some("--roles"), false),
    def("region", "PINGTOWER_REGION", Some("--region"), false),
    def("secret_key", "PINGTOWER_SECRET_KEY", None, true),
    def("admin_email", "PINGTOWER_ADMIN_EMAIL", None, false),
    def("admin_password", "PINGTOWER_ADMIN_PASSWORD", None, true),
    def("oidc_issuer", "PINGTOWER_OIDC_ISSUER", None, false),
    def("oidc_audience", "PINGTOWER_OIDC_AUDIENCE", None, false),
    def("oidc_client_id", "PINGTOWER_OIDC_CLIENT_ID", None, false),
    def(
        "oidc_client_secret",
        "PINGTOWER_OIDC_CLIENT_SECRET",
        None,
        true,
    ),
    def(
        "oidc_roles_claim",
        "PINGTOWER_OIDC_ROLES_CLAIM",
        None,
        false,
    ),
    def("registration", "PINGTOWER_REGISTRATION", None, false),
    def("public_url", "PINGTOWER_PUBLIC_URL", None, false),
    def("smtp_url", "PINGTOWER_SMTP_URL", None, true),
    def("mail_from", "PINGTOWER_MAIL_FROM", None, false),
    def(
        "events_database_url",
        "PINGTOWER_EVENTS_DATABASE_URL",
        None,
        true,
    ),
    def(
        "events_retention_days",
        "PINGTOWER_EVENTS_RETENTION_DAYS",
        None,
        false,
    ),
    def("redis_url", "PINGTOWER_REDIS_URL", None, true),
    def(
        "events_per_minute",
        "PINGTOWER_EVENTS_PER_MINUTE",
        None,
        false,
    ),
    def("log", "PINGTOWER_LOG", None, false),
    def("log_format", "PINGTOWER_LOG_FORMAT", None, false),
    def(
        "results_retention_days",
        "PINGTOWER_RESULTS_RETENTION_DAYS",
        None,
        false,
    ),
    def(
        "minute_rollups_retention_days",
        "PINGTOWER_MINUTE_ROLLUPS_RETENTION_DAYS",
        None,
        false,
    ),
    def(
        "hour_rollups_retention_days",
        "PINGTOWER_HOUR_ROLLUPS_RETENTION_DAYS",
        None,
        false,
    ),
    def(
        "blocked_networks",
        "PINGTOWER_BLOCKED_NETWORKS",
        None,
        false,
    ),
    def("metrics_token", "PINGTOWER_METRICS_TOKEN", None, true),
    def(
        "metrics_monitors",
        "PINGTOWER_METRICS_MONITORS",
        None,
        false,
    ),
    def(
        "tenant_max_monitors",
        "PINGTOWER_TENANT_MAX_MONITORS",
        None,
        false,
    ),
    def(
        "min_interval_seconds",
        "PINGTOWER_MIN_INTERVAL_SECONDS",
        None,
        false,
    ),
];

/// Environment variables with the prefix that are not server settings but are known.
const OTHER_ENV: &[&str] = &["PINGTOWER_CONFIG", "PINGTOWER_SERVER", "PINGTOWER_TOKEN"];

/// Resolves settings from flags, an environment (as key/value pairs) and the config file that
/// `--config` or `PINGTOWER_CONFIG` names.
pub fn resolve(flags: &Flags, env: &BTreeMap<String, String>) -> Result<Settings, ConfigErrors> {
    let mut errors = Vec::new();

    for var in env.keys().filter(|k| k.starts_with("PINGTOWER_")) {
        let known = DEFS.iter().any(|d| d.env == var)
            || OTHER_ENV.contains(&var.as_str())
            || var.starts_with("PINGTOWER_TEST_");
        if !known {
            errors.push(ConfigError {
                setting: var.clone(),
                source: Some(Source::Env(var.clone())),
                message: "unknown setting".to_owned(),
            });
        }
    }

    let config_path = flags.config.clone().or_else(|| {
        env.get("PINGTOWER_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let file = match &config_path {
        Some(path) => match read_file(path) {
            Ok(values) => values,
            Err(mut e) => {
                errors.append(&mut e);
                BTreeMap::new()
            }
        },
        None => BTreeMap::new(),
    };

    let flag_value = |key: &str| -> Option<String> {
        match key {
            "listen" => flags.listen.clone(),
            "data_dir" => flags.data_dir.clone(),
            "database_url" => flags.database.clone(),
            "broker_url" => flags.broker.clone(),
            "roles" => flags.roles.clone(),
            "region" => flags.region.clone(),
            _ => None,
        }
    };

    let mut raw: BTreeMap<&'static str, (String, Source)> = BTreeMap::new();
    for d in DEFS {
        let value = if let (Some(v), Some(flag)) = (flag_value(d.key), d.flag) {
            Some((v, Source::Flag(flag)))
        } else if let Some(v) = env.get(d.env).filter(|v| !v.is_empty()) {
            Some((v.clone(), Source::Env(d.env.to_owned())))
        } else {
            file.get(d.key).map(|v| {
                (
                    v.clone(),
                    Source::File(config_path.clone().unwrap_or_default()),
                )
            })
        };
        if let Some(v) = value {
            raw.insert(d.key, v);
        }
    }

    let mut r = Resolver {
        raw: &raw,
        errors: &mut errors,
    };
    let listen = r.parse("listen", "127.0.0.1:8080", |v| {
        v.parse::<SocketAddr>()
            .map_err(|_| format!("`{v}` is not an address such as 127.0.0.1:8080 or [::1]:8080"))
    });
    let data_dir = r.parse("data_dir", "./pingtower-data", |v| {
        if v.trim().is_empty() {
            Err("must not be empty".to_owned())
        } else {
            Ok(PathBuf::from(v))
        }
    });
    let database_url = r.optional("database_url", |v| match pingtower_store::scheme_of(v) {
        Ok(pingtower_store::Backend::Sqlite) => {
            let path = v.trim_start_matches("sqlite:").trim_start_matches("//");
            if path.is_empty() {
                Err("a SQLite URL needs a file: sqlite://PATH".to_owned())
            } else {
                Ok(v.to_owned())
            }
        }
        Ok(pingtower_store::Backend::Postgres) => match url::Url::parse(v) {
            Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(v.to_owned()),
            Ok(_) => {
                Err("a PostgreSQL URL needs a host: postgres://USER@HOST:PORT/DATABASE".to_owned())
            }
            Err(e) => Err(format!("malformed PostgreSQL URL: {e}")),
        },
        Err(e) => Err(e.to_string()),
    });
    let broker_url = r.optional("broker_url", |v| {
        let scheme = v.split_once("://").map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "amqp" | "amqps" => match url::Url::parse(v) {
                // The AMQP client reads the host as a name and would take `localhost` for an
                // IPv6 literal.
                Ok(u) if u.host_str().is_some_and(|h| h.starts_with('[')) => Err(
                    "an IPv6 address is not supported as the broker host; use a host name"
                        .to_owned(),
                ),
                Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => {
                    pingtower_bus::RabbitOptions::from_url(v)
                        .map(|_| v.to_owned())
                        .map_err(|e| e.to_string())
                }
                Ok(_) => Err(
                    "a broker URL needs a host: amqp://USER:PASSWORD@HOST:5672/VHOST".to_owned(),
                ),
                Err(e) => Err(format!("malformed broker URL: {e}")),
            },
            _ => Err(format!(
                "unsupported broker URL scheme `{scheme}`; expected `amqp://` or `amqps://`"
            )),
        }
    });
    let roles = r.parse("roles", "all", RoleSet::parse);
    let region = r.parse("region", "default", |v| {
        let ok = !v.is_empty()
            && v.len() <= 64
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if ok {
            Ok(v.to_owned())
        } else {
            Err("use 1 to 64 letters, digits, `-` or `_`".to_owned())
        }
    });
    let secret_key = r.optional("secret_key", |v| match hex::decode(v.trim()) {
        Ok(bytes) if bytes.len() == 32 => Ok(Secret(v.trim().to_owned())),
        _ => Err(
            "must be 64 hexadecimal digits (32 bytes); `openssl rand -hex 32` makes one".to_owned(),
        ),
    });
    let admin_email = r.optional("admin_email", |v| {
        let ok = v
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && !host.is_empty());
        if ok {
            Ok(v.trim().to_owned())
        } else {
            Err(format!("`{v}` is not an email address"))
        }
    });
    let admin_password = r.optional("admin_password", |v| {
        if v.chars().count() >= 8 {
            Ok(Secret(v.to_owned()))
        } else {
            Err("must be at least 8 characters".to_owned())
        }
    });
    let oidc_issuer = r.optional("oidc_issuer", |v| match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(v.trim_end_matches('/').to_owned()),
        _ => Err(format!("`{v}` is not an http(s) URL")),
    });
    let oidc_audience = r.optional("oidc_audience", |v| Ok(v.to_owned()));
    let oidc_client_id = r.optional("oidc_client_id", |v| Ok(v.to_owned()));
    let oidc_client_secret = r.optional("oidc_client_secret", |v| Ok(Secret(v.to_owned())));
    let log = r.parse("log", "info", |v| {
        tracing_subscriber::EnvFilter::try_new(v)
            .map(|_| v.to_owned())
            .map_err(|e| format!("invalid log filter: {e}"))
    });
    let log_format = r.parse("log_format", "text", |v| match v {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("`{v}` is not `text` or `json`")),
    });
    // Windows over a day are answered from hour rollups and over 90 days from day rollups: the
    // finer tiers must outlive that.
    let days = |min: u32| {
        move |v: &str| match v.parse::<u32>() {
            Ok(d) if (min..=3650).contains(&d) => Ok(d),
            _ => Err(format!("`{v}` is not a number of days from {min} to 3650")),
        }
    };
    let results_retention_days = r.parse("results_retention_days", "14", days(1));
    let tenant_max_monitors = r.parse("tenant_max_monitors", "0", |v| {
        v.parse::<u32>()
            .map_err(|_| format!("`{v}` is not a number of monitors (0: no limit)"))
    });
    let min_interval_seconds = r.parse("min_interval_seconds", "1", |v| match v.parse::<u32>() {
        Ok(n) if (1..=86_400).contains(&n) => Ok(n),
        _ => Err(format!("`{v}` is not a number of seconds from 1 to 86400")),
    });
    let minute_rollups_retention_days = r.parse("minute_rollups_retention_days", "30", days(2));
    let hour_rollups_retention_days = r.parse("hour_rollups_retention_days", "365", days(91));
    let oidc_roles_claim = r.parse("oidc_roles_claim", "realm_access.roles", |v| {
        let ok = !v.is_empty()
            && v.split('.').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':'))
            });
        if ok {
            Ok(v.to_owned())
        } else {
            Err(format!(
                "`{v}` is not a dotted claim path like realm_access.roles"
            ))
        }
    });
    let registration_open = r.parse("registration", "closed", |v| match v {
        "closed" => Ok(false),
        "open" => Ok(true),
        _ => Err(format!("`{v}` is not `closed` or `open`")),
    });
    let public_url = r.optional("public_url", |v| match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(v.trim_end_matches('/').to_owned())
        }
        _ => Err(format!("`{v}` is not an http:// or https:// URL")),
    });
    let smtp_url = r.optional("smtp_url", |v| match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "smtp" | "smtps") && u.host_str().is_some() => {
            Ok(Secret(v.to_owned()))
        }
        _ => Err(
            "is not an smtp:// or smtps:// URL (smtps://user:pass@host for TLS, \
                  smtp://user:pass@host:587?tls=required for STARTTLS)"
                .to_owned(),
        ),
    });
    let mail_from = r.optional("mail_from", |v| {
        let address = v.rsplit('<').next().unwrap_or(v).trim_end_matches('>');
        if address.contains('@') && !address.contains(char::is_whitespace) {
            Ok(v.to_owned())
        } else {
            Err(format!(
                "`{v}` is not an email address (`ops@example.com` or `PingTower <ops@example.com>`)"
            ))
        }
    });
    let events_database_url = r.optional("events_database_url", |v| {
        if v.starts_with("sqlite:") || v.starts_with("postgres:") || v.starts_with("postgresql:") {
            Ok(v.to_owned())
        } else {
            Err("is not a sqlite://… or postgres://… URL".to_owned())
        }
    });
    let events_retention_days = r.optional("events_retention_days", |v| {
        v.parse::<u32>()
            .ok()
            .filter(|d| (1..=36_500).contains(d))
            .ok_or_else(|| format!("`{v}` is not a number of days (1 to 36500; unset: keep)"))
    });
    let events_per_minute = r.parse("events_per_minute", "600000", |v| {
        v.parse::<u64>()
            .map_err(|_| format!("`{v}` is not a number of events (0: no limit)"))
    });
    let redis_url = r.optional("redis_url", |v| match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some() => {
            Ok(Secret(v.to_owned()))
        }
        _ => Err("is not a redis://host:port/db URL".to_owned()),
    });
    let blocked_networks = r.parse("blocked_networks", "", pingtower_checks::Blocklist::parse);
    let metrics_token = r.optional("metrics_token", |v| {
        let ok = v.len() >= 16 && v.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Secret(v.to_owned()))
        } else {
            Err("must be at least 16 visible ASCII characters (no spaces); \
                 `openssl rand -hex 32` makes one"
                .to_owned())
        }
    });
    let metrics_monitors = r.parse("metrics_monitors", "false", |v| {
        match v.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("`{v}` is not `true` or `false`")),
        }
    });

    // Rules between settings.
    if let (Some(roles), Some(database_url), Some(broker_url)) =
        (&roles, &database_url, &broker_url)
        && !roles.is_all()
    {
        let on_postgres = database_url.as_deref().is_some_and(|u| {
            pingtower_store::scheme_of(u).ok() == Some(pingtower_store::Backend::Postgres)
        });
        if !on_postgres || broker_url.is_none() {
            errors.push(ConfigError {
                setting: "roles".to_owned(),
                source: raw.get("roles").map(|(_, s)| s.clone()),
                message: format!(
                    "running only some roles (`{roles}`) needs a shared PostgreSQL database \
                     (--database postgres://…) and a RabbitMQ broker (--broker amqp://…); \
                     the embedded SQLite store and in-process bus serve one process with every role"
                ),
            });
        }
    }
    if let (Some(roles), Some(None)) = (&roles, &secret_key)
        && !roles.is_all()
    {
        errors.push(ConfigError {
            setting: "secret_key".to_owned(),
            source: None,
            message: "running only some roles needs PINGTOWER_SECRET_KEY, the same in every \
                      process (it seals channel credentials and signs logins; a generated one \
                      would differ per process): `openssl rand -hex 32` makes one"
                .to_owned(),
        });
    }
    if let (Some(Some(_)), Some(None), Some(None)) = (&oidc_issuer, &oidc_audience, &oidc_client_id)
    {
        errors.push(ConfigError {
            setting: "oidc_audience".to_owned(),
            source: None,
            message: "PINGTOWER_OIDC_ISSUER is set, so PINGTOWER_OIDC_AUDIENCE (or \
                      PINGTOWER_OIDC_CLIENT_ID) must be too: tokens are checked for it"
                .to_owned(),
        });
    }
    if let (Some(Some(_)), Some(None)) = (&admin_email, &admin_password) {
        errors.push(ConfigError {
            setting: "admin_password".to_owned(),
            source: None,
            message: "PINGTOWER_ADMIN_EMAIL is set, so PINGTOWER_ADMIN_PASSWORD must be too"
                .to_owned(),
        });
    }
    if let (Some(true), Some(None)) = (&metrics_monitors, &metrics_token) {
        errors.push(ConfigError {
            setting: "metrics_monitors".to_owned(),
            source: raw.get("metrics_monitors").map(|(_, s)| s.clone()),
            message: "per-monitor series are shown only to a scraper with the token: set \
                      PINGTOWER_METRICS_TOKEN too"
                .to_owned(),
        });
    }
    if let (Some(Some(_)), Some(None)) = (&smtp_url, &public_url) {
        errors.push(ConfigError {
            setting: "public_url".to_owned(),
            source: None,
            message: "PINGTOWER_SMTP_URL is set, so PINGTOWER_PUBLIC_URL must be too: the links \
                      the installation mails point there"
                .to_owned(),
        });
    }
    if let (Some(Some(_)), Some(None)) = (&smtp_url, &mail_from) {
        errors.push(ConfigError {
            setting: "mail_from".to_owned(),
            source: None,
            message: "PINGTOWER_SMTP_URL is set, so PINGTOWER_MAIL_FROM must be too: the \
                      address the installation's mail comes from"
                .to_owned(),
        });
    }
    if let (Some(None), Some(Some(_))) = (&admin_email, &admin_password) {
        errors.push(ConfigError {
            setting: "admin_email".to_owned(),
            source: None,
            message: "PINGTOWER_ADMIN_PASSWORD is set, so PINGTOWER_ADMIN_EMAIL must be too"
                .to_owned(),
        });
    }

    match (
        listen,
        data_dir,
        database_url,
        broker_url,
        roles,
        region,
        secret_key,
        admin_email,
        admin_password,
        oidc_issuer,
        oidc_audience,
        oidc_client_id,
        oidc_client_secret,
        log,
        log_format,
        results_retention_days,
        minute_rollups_retention_days,
        hour_rollups_retention_days,
        blocked_networks,
        oidc_roles_claim,
        registration_open,
        public_url,
        metrics_token,
        metrics_monitors,
        tenant_max_monitors,
        min_interval_seconds,
        smtp_url,
        mail_from,
        events_database_url,
        events_retention_days,
        events_per_minute,
        redis_url,
    ) {
        (
            Some(listen),
            Some(data_dir),
            Some(database_url),
            Some(broker_url),
            Some(roles),
            Some(region),
            Some(secret_key),
            Some(admin_email),
            Some(admin_password),
            Some(oidc_issuer),
            Some(oidc_audience),
            Some(oidc_client_id),
            Some(oidc_client_secret),
            Some(log),
            Some(log_format),
            Some(results_retention_days),
            Some(minute_rollups_retention_days),
            Some(hour_rollups_retention_days),
            Some(blocked_networks),
            Some(oidc_roles_claim),
            Some(registration_open),
            Some(public_url),
            Some(metrics_token),
            Some(metrics_monitors),
            Some(tenant_max_monitors),
            Some(min_interval_seconds),
            Some(smtp_url),
            Some(mail_from),
            Some(events_database_url),
            Some(events_retention_days),
            Some(events_per_minute),
            Some(redis_url),
        ) if errors.is_empty() => Ok(Settings {
            listen,
            data_dir,
            database_url,
            broker_url,
            roles,
            region,
            secret_key,
            admin_email,
            admin_password,
            oidc_issuer,
            oidc_audience,
            oidc_client_id,
            oidc_client_secret,
            log,
            log_format,
            results_retention_days,
            minute_rollups_retention_days,
            hour_rollups_retention_days,
            blocked_networks,
            oidc_roles_claim,
            registration_open,
            public_url,
            metrics_token,
            metrics_monitors,
            tenant_max_monitors,
            min_interval_seconds,
            smtp_url,
            mail_from,
            events_database_url,
            events_retention_days,
            events_per_minute,
            redis_url,
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

struct Resolver<'a> {
    raw: &'a BTreeMap<&'static str, (String, Source)>,
    errors: &'a mut Vec<ConfigError>,
}

impl Resolver<'_> {
    fn is_secret(key: &str) -> bool {
        DEFS.iter().any(|d| d.key == key && d.secret)
    }

    /// A setting with a default. `None` means invalid (and recorded).
    fn parse<T>(
        &mut self,
        key: &'static str,
        default: &str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (value, source) = self
            .raw
            .get(key)
            .map_or((default, Source::Default), |(v, s)| (v.as_str(), s.clone()));
        self.check(key, value, source, check)
    }

    /// A setting without a default. `Some(None)`: unset.
    fn optional<T>(
        &mut self,
        key: &'static str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match self.raw.get(key) {
            None => Some(None),
            Some((value, source)) => self.check(key, value, source.clone(), check).map(Some),
        }
    }

    fn check<T>(
        &mut self,
        key: &'static str,
        value: &str,
        source: Source,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match check(value) {
            Ok(v) => Some(v),
            Err(message) => {
                let message = if Self::is_secret(key) && message.contains(value) {
                    message.replace(value, "****")
                } else {
                    message
                };
                self.errors.push(ConfigError {
                    setting: key.to_owned(),
                    source: Some(source),
                    message,
                });
                None
            }
        }
    }
}

/// Reads a TOML or YAML config file into key -> value text.
fn read_file(path: &Path) -> Result<BTreeMap<String, String>, Vec<ConfigError>> {
    let file_error = |message: String| {
        vec![ConfigError {
            setting: "config".to_owned(),
            source: Some(Source::File(path.to_owned())),
            message,
        }]
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| file_error(format!("cannot read: {e}")))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let value: serde_json::Value = match ext.as_str() {
        "toml" => toml::from_str::<toml::Table>(&text)
            .map_err(|e| file_error(format!("malformed TOML: {}", e.to_string().trim())))
            .and_then(|t| serde_json::to_value(t).map_err(|e| file_error(e.to_string())))?,
        "yaml" | "yml" => serde_yaml_ng::from_str::<serde_json::Value>(&text)
            .map_err(|e| file_error(format!("malformed YAML: {e}")))?,
        _ => {
            return Err(file_error(
                "the file name must end in .toml, .yaml or .yml".to_owned(),
            ));
        }
    };
    let serde_json::Value::Object(map) = value else {
        return Err(file_error("must be a table of settings".to_owned()));
    };
    let mut values = BTreeMap::new();
    let mut errors = Vec::new();
    for (key, v) in map {
        let source = Some(Source::File(path.to_owned()));
        if !DEFS.iter().any(|d| d.key == key) {
            let known: Vec<_> = DEFS.iter().map(|d| d.key).collect();
            errors.push(ConfigError {
                setting: key,
                source,
                message: format!("unknown setting; known settings are: {}", known.join(", ")),
            });
            continue;
        }
        let text = match v {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    serde_json::Value::String(s) => Some(s),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(|parts| parts.join(",")),
            _ => None,
        };
        match text {
            Some(t) => {
                values.insert(key, t);
            }
            None => errors.push(ConfigError {
                setting: key,
                source,
                message: "must be a string, a number or a list of strings".to_owned(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// The roles a process runs, for logs.
pub fn describe_roles(roles: &RoleSet) -> String {
    roles.iter().map(Role::as_str).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn settings_of(errs: Result<Settings, ConfigErrors>) -> Vec<String> {
        errs.err()
            .map(|e| e.0.into_iter().map(|e| e.setting).collect())
            .unwrap_or_default()
    }

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn defaults_need_nothing() {
        let s = resolve(&Flags::default(), &BTreeMap::new()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./pingtower-data"));
        assert_eq!(s.database_url(), "sqlite://./pingtower-data/pingtower.db");
        assert!(s.roles.is_all());
        assert_eq!(
            (s.region.as_str(), s.log.as_str(), s.log_format),
            ("default", "info", LogFormat::Text)
        );
        assert_eq!(s.results_retention_days, 14);
    }

    #[test]
    fn an_oidc_issuer_needs_an_audience_and_a_claim_path() {
        let bad = resolve(
            &Flags::default(),
            &env(&[("PINGTOWER_OIDC_ISSUER", "https://idp.test/realms/x")]),
        );
        assert_eq!(settings_of(bad), ["oidc_audience"]);
        let ok = resolve(
            &Flags::default(),
            &env(&[
                ("PINGTOWER_OIDC_ISSUER", "https://idp.test/realms/x"),
                ("PINGTOWER_OIDC_CLIENT_ID", "pingtower"),
                ("PINGTOWER_OIDC_ROLES_CLAIM", "groups"),
            ]),
        )
        .unwrap();
        assert_eq!(ok.oidc_roles_claim, "groups");
        let bad = resolve(
            &Flags::default(),
            &env(&[("PINGTOWER_OIDC_ROLES_CLAIM", "realm access..roles")]),
        );
        assert_eq!(settings_of(bad), ["oidc_roles_claim"]);
    }

    #[test]
    fn blocked_networks_are_parsed_and_checked() {
        let s = resolve(
            &Flags::default(),
            &env(&[("PINGTOWER_BLOCKED_NETWORKS", "169.254.0.0/16, fd00::/8")]),
        )
        .unwrap();
        assert!(
            s.blocked_networks
                .blocks("169.254.169.254".parse().unwrap())
                .is_some()
        );
        assert!(
            s.blocked_networks
                .blocks("10.1.1.1".parse().unwrap())
                .is_none()
        );
        let bad = resolve(
            &Flags::default(),
            &env(&[("PINGTOWER_BLOCKED_NETWORKS", "10.0.0.0/8, nonsense")]),
        );
        assert_eq!(settings_of(bad), ["blocked_networks"]);
        let none = resolve(&Flags::default(), &BTreeMap::new()).unwrap();
        assert!(
            none.blocked_networks.is_empty(),
            "nothing is blocked by default"
        );
    }

    #[test]
    fn tenant_quotas() {
        let none = resolve(&Flags::default(), &BTreeMap::new()).unwrap();
        assert_eq!(
            (none.tenant_max_monitors, none.min_interval_seconds),
            (0, 1)
        );
        let s = resolve(
            &Flags::default(),
            &env(&[
                ("PINGTOWER_TENANT_MAX_MONITORS", "500"),
                ("PINGTOWER_MIN_INTERVAL_SECONDS", "30"),
            ]),
        )
        .unwrap();
        assert_eq!((s.tenant_max_monitors, s.min_interval_seconds), (500, 30));
        let bad = resolve(
            &Flags::default(),
            &env(&[
                ("PINGTOWER_TENANT_MAX_MONITORS", "-1"),
                ("PINGTOWER_MIN_INTERVAL_SECONDS", "0"),
            ]),
        );
        let mut names = settings_of(bad);
        names.sort();
        assert_eq!(names, ["min_interval_seconds", "tenant_max_monitors"]);
    }

    #[test]
    fn the_metrics_token_and_per_monitor_series() {
        let none = resolve(&Flags::default(), &BTreeMap::new()).unwrap();
        assert!(none.metrics_token.is_none(), "no token by default");
        assert!(!none.metrics_monitors, "no per-monitor series by default");

        let token = "0123456789abcdef0123";
        let s = resolve(
            &Flags::default(),
            &env(&[
                ("PINGTOWER_METRICS_TOKEN", token),
                ("PINGTOWER_METRICS_MONITORS", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(s.metrics_token.as_ref().map(Secret::expose), Some(token));
        assert!(s.metrics_monitors);
        assert!(
            !format!("{s:?}").contains(token),
            "the token is not printed"
        );

        // In the config file too.
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            &dir,
            "m.toml",
            &format!("metrics_token = \"{token}\"\nmetrics_monitors = true\n"),
        );
        let s = resolve(
            &Flags {
                config: Some(path),
                ..Default::default()
            },
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(s.metrics_token.as_ref().map(Secret::expose), Some(token));
        assert!(s.metrics_monitors);

        // Per-monitor series need the token: nobody could see them otherwise.
        let alone = resolve(
            &Flags::default(),
            &env(&[("PINGTOWER_METRICS_MONITORS", "true")]),
        );
        assert_eq!(settings_of(alone), ["metrics_monitors"]);
        let bad = resolve(
            &Flags::default(),
            &env(&[
                ("PINGTOWER_METRICS_TOKEN", "short-s3cret"),
                ("PINGTOWER_METRICS_MONITORS", "yes"),
            ]),
        );
        let text = bad
            .as_ref()
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert_eq!(settings_of(bad), ["metrics_token", "metrics_monitors"]);
        assert!(!text.contains("short-s3cret"), "{text}");
        let spaced = resolve(
            &Flags::default(),
            &env(&[("PINGTOWER_METRICS_TOKEN", "with a space in the middle")]),
        );
        assert_eq!(settings_of(spaced), ["metrics_token"]);
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            &dir,
            "p.toml",
            "listen = \"127.0.0.1:1001\"\nregion = \"file\"\ndata_dir = \"/tmp/from-file\"\n",
        );
        let e = env(&[
            ("PINGTOWER_LISTEN", "127.0.0.1:1002"),
            ("PINGTOWER_REGION", "env"),
        ]);
        let flags = Flags {
            listen: Some("127.0.0.1:1003".into()),
            config: Some(path.clone()),
            ..Default::default()
        };
        let s = resolve(&flags, &e).unwrap();
        assert_eq!(s.listen.port(), 1003, "flag wins");
        assert_eq!(s.region, "env", "env beats file");
        assert_eq!(
            s.data_dir,
            PathBuf::from("/tmp/from-file"),
            "file beats default"
        );
        // The config file can also be named by the environment.
        let e = env(&[("PINGTOWER_CONFIG", path.to_str().unwrap())]);
        assert_eq!(resolve(&Flags::default(), &e).unwrap().listen.port(), 1001);
    }

    #[test]
    fn yaml_files_and_lists_work() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            &dir,
            "p.yaml",
            "roles: [api, scheduler, worker, notifier, stats, analytics]\nresults_retention_days: 30\n",
        );
        let s = resolve(
            &Flags {
                config: Some(path),
                ..Default::default()
            },
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(s.roles.is_all());
        assert_eq!(s.results_retention_days, 30);
    }

    #[test]
    fn every_invalid_setting_is_reported_at_once() {
        let e = env(&[
            ("PINGTOWER_LISTEN", "nope"),
            ("PINGTOWER_REGION", "eu west"),
            ("PINGTOWER_LOG_FORMAT", "xml"),
            ("PINGTOWER_SECRET_KEY", "abc"),
            ("PINGTOWER_RESULTS_RETENTION_DAYS", "0"),
            ("PINGTOWER_LISTN", "typo"),
        ]);
        let flags = Flags {
            database: Some("mysql://db/x".into()),
            ..Default::default()
        };
        let err = resolve(&flags, &e).unwrap_err();
        let settings: Vec<_> = err.0.iter().map(|e| e.setting.as_str()).collect();
        for expected in [
            "PINGTOWER_LISTN",
            "listen",
            "database_url",
            "region",
            "secret_key",
            "log_format",
            "results_retention_days",
        ] {
            assert!(
                settings.contains(&expected),
                "{expected} missing from {settings:?}"
            );
        }
        let text = err.to_string();
        assert!(
            text.contains("`listen` (from environment variable PINGTOWER_LISTEN)"),
            "{text}"
        );
        assert!(
            text.contains(
                "`database_url` (from flag --database): unsupported database URL scheme `mysql`"
            ),
            "{text}"
        );
    }

    #[test]
    fn secrets_are_not_echoed() {
        let e = env(&[("PINGTOWER_DATABASE_URL", "postgres://u:hunter2@/db")]);
        let text = resolve(&Flags::default(), &e).unwrap_err().to_string();
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn config_file_problems_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = file(&dir, "bad.toml", "listen = \n");
        let text = resolve(
            &Flags {
                config: Some(bad),
                ..Default::default()
            },
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(text.contains("malformed TOML"), "{text}");
        let unknown = file(&dir, "u.toml", "lisen = \"127.0.0.1:1\"\n");
        let err = resolve(
            &Flags {
                config: Some(unknown),
                ..Default::default()
            },
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert_eq!(err.0[0].setting, "lisen");
        assert!(
            err.0[0].message.contains("known settings are: listen"),
            "{}",
            err.0[0].message
        );
        let missing = Flags {
            config: Some(dir.path().join("missing.toml")),
            ..Default::default()
        };
        assert!(
            resolve(&missing, &BTreeMap::new())
                .unwrap_err()
                .to_string()
                .contains("cannot read")
        );
        let ini = file(&dir, "p.ini", "x=1");
        assert!(
            resolve(
                &Flags {
                    config: Some(ini),
                    ..Default::default()
                },
                &BTreeMap::new()
            )
            .is_err()
        );
        let nested = file(&dir, "n.yaml", "listen: {a: 1}\n");
        assert_eq!(
            settings_of(resolve(
                &Flags {
                    config: Some(nested),
                    ..Default::default()
                },
                &BTreeMap::new()
            )),
            ["listen"]
        );
    }

    #[test]
    fn split_roles_need_postgres_and_a_broker() {
        let flags = Flags {
            roles: Some("api,worker".into()),
            ..Default::default()
        };
        let key = env(&[("PINGTOWER_SECRET_KEY", &"ab".repeat(32))]);
        let err = resolve(&flags, &key).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].setting, "roles");
        assert!(err.0[0].message.contains("PostgreSQL"));
        let bad_role = Flags {
            roles: Some("api,pinger".into()),
            ..Default::default()
        };
        assert_eq!(settings_of(resolve(&bad_role, &BTreeMap::new())), ["roles"]);
    }

    #[test]
    fn split_roles_run_over_postgres_and_rabbitmq() {
        let key = env(&[("PINGTOWER_SECRET_KEY", &"ab".repeat(32))]);
        let flags = |broker: &str| Flags {
            roles: Some("worker".into()),
            database: Some("postgres://pt@127.0.0.1:5432/pt".into()),
            broker: Some(broker.into()),
            ..Default::default()
        };
        let ok = resolve(
            &flags("amqp://guest:guest@127.0.0.1:5672/%2f?namespace=pt-eu&expires=600"),
            &key,
        )
        .unwrap();
        assert_eq!(
            ok.broker_url.as_deref(),
            Some("amqp://guest:guest@127.0.0.1:5672/%2f?namespace=pt-eu&expires=600")
        );
        for bad in [
            "amqp:///%2f",
            "amqp://[::1]:5672/%2f",
            "amqp://127.0.0.1/?namespace=has space",
            "amqp://127.0.0.1/?namespace=a/b",
            "amqp://127.0.0.1/?expires=0",
            "amqp://127.0.0.1/?expires=soon",
            "nats://127.0.0.1:4222",
        ] {
            let errs = resolve(&flags(bad), &key).unwrap_err();
            // The broker URL is named; the password in it is not echoed.
            assert!(
                errs.0.iter().any(|e| e.setting == "broker_url"),
                "{bad}: {errs:?}"
            );
        }
        let leak = resolve(&flags("amqp://u:hunter2@/x"), &key).unwrap_err();
        assert!(!format!("{leak:?}").contains("hunter2"), "{leak:?}");
        // Without a shared secret key, the processes would not read each other's credentials.
        let no_key = resolve(
            &flags("amqp://guest:guest@127.0.0.1:5672/%2f"),
            &BTreeMap::new(),
        );
        assert_eq!(settings_of(no_key), ["secret_key"]);
    }

    #[test]
    fn the_installations_mail_needs_a_sender_and_a_public_url_and_hides_its_password() {
        let e = env(&[("PINGTOWER_SMTP_URL", "smtps://u:hunter22@mail.example.test")]);
        let errors = resolve(&Flags::default(), &e).unwrap_err();
        assert!(!errors.to_string().contains("hunter22"), "{errors}");
        let mut named = settings_of(Err(errors));
        named.sort();
        assert_eq!(named, ["mail_from", "public_url"]);
        let e = env(&[("PINGTOWER_SMTP_URL", "http://u:hunter22@mail.example.test")]);
        let errors = resolve(&Flags::default(), &e).unwrap_err();
        assert!(!errors.to_string().contains("hunter22"), "{errors}");
        assert!(settings_of(Err(errors)).contains(&"smtp_url".to_owned()));
        let e = env(&[
            ("PINGTOWER_SMTP_URL", "smtp://relay.example.test:25"),
            ("PINGTOWER_MAIL_FROM", "PingTower <ops@example.test>"),
            ("PINGTOWER_PUBLIC_URL", "https://pingtower.example.test"),
        ]);
        let s = resolve(&Flags::default(), &e).unwrap();
        assert_eq!(s.mail_from.as_deref(), Some("PingTower <ops@example.test>"));
        let e = env(&[("PINGTOWER_MAIL_FROM", "not an address")]);
        assert_eq!(settings_of(resolve(&Flags::default(), &e)), ["mail_from"]);
    }

    #[test]
    fn events_settings_have_defaults_and_clear_errors() {
        let s = resolve(&Flags::default(), &env(&[])).unwrap();
        assert_eq!(s.events_retention_days, None);
        assert_eq!(s.events_per_minute, 600_000);
        assert!(
            s.events_database_url().ends_with("events.db"),
            "{}",
            s.events_database_url()
        );
        let e = env(&[("PINGTOWER_DATABASE_URL", "postgres://pt@db/pingtower")]);
        let s = resolve(&Flags::default(), &e).unwrap();
        assert_eq!(s.events_database_url(), "postgres://pt@db/pingtower");
        let e = env(&[
            ("PINGTOWER_EVENTS_RETENTION_DAYS", "0"),
            ("PINGTOWER_EVENTS_PER_MINUTE", "lots"),
            ("PINGTOWER_EVENTS_DATABASE_URL", "mysql://x"),
        ]);
        let mut named = settings_of(resolve(&Flags::default(), &e));
        named.sort();
        assert_eq!(
            named,
            [
                "events_database_url",
                "events_per_minute",
                "events_retention_days"
            ]
        );
    }

    #[test]
    fn admin_email_and_password_go_together() {
        let e = env(&[("PINGTOWER_ADMIN_EMAIL", "ops@example.test")]);
        assert_eq!(
            settings_of(resolve(&Flags::default(), &e)),
            ["admin_password"]
        );
        let e = env(&[
            ("PINGTOWER_ADMIN_EMAIL", "ops@example.test"),
            ("PINGTOWER_ADMIN_PASSWORD", "correct horse"),
        ]);
        assert!(resolve(&Flags::default(), &e).is_ok());
    }

    #[test]
    fn broker_urls_are_checked() {
        let flags = Flags {
            broker: Some("redis://127.0.0.1".into()),
            ..Default::default()
        };
        assert_eq!(
            settings_of(resolve(&flags, &BTreeMap::new())),
            ["broker_url"]
        );
    }

    #[test]
    fn test_variables_are_not_settings() {
        let e = env(&[
            ("PINGTOWER_TEST_POSTGRES_URL", "postgres://x@127.0.0.1/y"),
            ("PINGTOWER_TOKEN", "t"),
        ]);
        assert!(resolve(&Flags::default(), &e).is_ok());
    }
}
