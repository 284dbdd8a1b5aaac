//! `pingtower serve`: start-up, the roles, and an orderly shutdown.

use crate::config::{LogFormat, Settings};
use pingtower_api::AppState;
use pingtower_bus::{Bus, MemoryBus, RabbitBus, RabbitOptions};
use pingtower_engine::maintenance::RetentionConfig;
use pingtower_engine::{Metrics, ResultWriter, Role, WriterConfig};
use pingtower_store::{Store, StoreOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for in-flight work before it stops waiting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A failure to start or run; the binary maps it to exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("data dir `{}`: {message}", path.display())]
    DataDir { path: PathBuf, message: String },
    #[error("database {url}: {source}")]
    Store {
        url: String,
        source: pingtower_store::StoreError,
    },
    #[error("broker {url}: {message}")]
    Broker { url: String, message: String },
    #[error("role {role} failed: {message}")]
    Role { role: &'static str, message: String },
    #[error("cannot wait for signals: {0}")]
    Signals(std::io::Error),
}

/// Sets up logging as the settings say.
pub fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The data dir, created if missing, and the topmost folder this run created (to remove after a
/// failed start).
struct DataDir {
    path: PathBuf,
    created: Option<PathBuf>,
}

impl DataDir {
    fn prepare(path: &Path) -> Result<Self, ServeError> {
        let fail = |message: String| ServeError::DataDir {
            path: path.to_owned(),
            message,
        };
        let created = if path.exists() {
            None
        } else {
            // The outermost missing ancestor is what this run will have created.
            let mut top = path.to_path_buf();
            while let Some(parent) = top
                .parent()
                .filter(|p| !p.as_os_str().is_empty() && !p.exists())
            {
                top = parent.to_path_buf();
            }
            Some(top)
        };
        if created.is_some() {
            std::fs::create_dir_all(path).map_err(|e| fail(format!("cannot create it: {e}")))?;
        } else if !path.is_dir() {
            return Err(fail("exists and is not a directory".to_owned()));
        }
        // Permission bits say little (root ignores them, read-only mounts do not show): try.
        let probe = path.join(".pingtower-write-probe");
        let writable = std::fs::write(&probe, b"probe").and_then(|()| std::fs::remove_file(&probe));
        if let Err(e) = writable {
            let dir = Self {
                path: path.to_owned(),
                created,
            };
            dir.discard();
            return Err(fail(format!("is not writable: {e}")));
        }
        Ok(Self {
            path: path.to_owned(),
            created,
        })
    }

    /// Undoes what this run created, after a failed start.
    fn discard(&self) {
        if let Some(top) = &self.created {
            let _ = std::fs::remove_dir_all(top);
        }
    }
}

/// Reads the key that encrypts stored credentials, generating it on first start.
fn secret_key(
    settings: &Settings,
    dir: &DataDir,
) -> Result<(Vec<u8>, Option<PathBuf>), ServeError> {
    if let Some(key) = &settings.secret_key {
        return hex::decode(key.expose())
            .map(|k| (k, None))
            .map_err(|_| ServeError::DataDir {
                path: dir.path.clone(),
                message: "invalid secret key".into(),
            });
    }
    let path = dir.path.join("secret.key");
    let fail = |message: String| ServeError::DataDir {
        path: path.clone(),
        message,
    };
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let key =
            hex::decode(text.trim()).map_err(|_| fail("is not 64 hexadecimal digits".into()))?;
        if key.len() != 32 {
            return Err(fail("is not 64 hexadecimal digits".into()));
        }
        return Ok((key, None));
    }
    let key: [u8; 32] = rand::random();
    write_private(&path, hex::encode(key).as_bytes())
        .map_err(|e| fail(format!("cannot write: {e}")))?;
    tracing::info!(path = %path.display(), "generated the secret key that encrypts stored credentials; back it up");
    Ok((key.to_vec(), Some(path)))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Opens the store the settings name, creating the data dir for the embedded default.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, ServeError> {
    let url = settings.database_url();
    pingtower_store::open(&url, &StoreOptions::default())
        .await
        .map_err(|source| ServeError::Store {
            url: pingtower_store::redact_url(&url),
            source,
        })
}

/// Runs every role the settings name until SIGINT or SIGTERM, then shuts down in order.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    let roles = settings.roles.clone();
    let signals = Signals::install()?;
    // Bind first: a port in use fails before anything is created on disk.
    let listener = if roles.contains(Role::Api) {
        Some(
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| ServeError::Listen {
                    addr: settings.listen,
                    source,
                })?,
        )
    } else {
        None
    };
    // The trust store is loaded once, before anything is created.
    let checker = if roles.contains(Role::Worker) {
        Some(
            pingtower_checks::Checker::new()
                .map_err(|message| ServeError::Role {
                    role: "worker",
                    message,
                })?
                .with_blocklist(settings.blocked_networks.clone()),
        )
    } else {
        None
    };
    // The broker before anything is created on disk: a broker that is down fails the start
    // with nothing to undo.
    let bus: Arc<dyn Bus> = match &settings.broker_url {
        None => Arc::new(MemoryBus::new()),
        Some(url) => {
            let connected = match RabbitOptions::from_url(url) {
                Ok(options) => RabbitBus::connect(url, options).await,
                Err(e) => Err(e),
            };
            match connected {
                Ok(bus) => {
                    tracing::info!(broker = %pingtower_store::redact_url(url), "broker connected");
                    Arc::new(bus)
                }
                Err(e) => {
                    return Err(ServeError::Broker {
                        url: pingtower_store::redact_url(url),
                        message: e.to_string(),
                    });
                }
            }
        }
    };
    let dir = DataDir::prepare(&settings.data_dir)?;
    let (key, generated_key) = secret_key(&settings, &dir).inspect_err(|_| dir.discard())?;
    let keys = pingtower_engine::secrets::Keys::new(&key).map_err(|e| ServeError::DataDir {
        path: dir.path.clone(),
        message: e.to_string(),
    });
    let keys = keys.inspect_err(|_| dir.discard())?;
    let store = match open_store(&settings).await {
        Ok(store) => store,
        Err(e) => {
            if let Some(path) = generated_key {
                let _ = std::fs::remove_file(path);
            }
            dir.discard();
            return Err(e);
        }
    };
    tracing::info!(
        database = %pingtower_store::redact_url(&settings.database_url()),
        roles = %crate::config::describe_roles(&roles),
        region = %settings.region,
        "store open"
    );
    if let (Some(email), Some(password)) = (&settings.admin_email, &settings.admin_password) {
        match pingtower_api::bootstrap_admin(store.as_ref(), email, password.expose()).await {
            Ok(true) => tracing::info!(email = %email, "created the owner account and its tenant"),
            Ok(false) => {}
            Err(e) => {
                store.close().await;
                return Err(ServeError::Role {
                    role: "api",
                    message: format!(
                        "creating the first account failed: {}",
                        e.detail.unwrap_or(e.title)
                    ),
                });
            }
        }
    }
    let mut auth = pingtower_api::AuthState::new(keys.clone());
    auth.registration_open = settings.registration_open;
    if let (Some(url), Some(from)) = (&settings.smtp_url, &settings.mail_from) {
        let public_url = settings.public_url.clone().unwrap_or_default();
        let mailer =
            pingtower_notify::mail::Mailer::new(url.expose(), from, Duration::from_secs(10))
                .map_err(|e| ServeError::Role {
                    role: "api",
                    message: e.to_string(),
                })?;
        auth.mail = Some(pingtower_api::account_mail::AccountMail { mailer, public_url });
    } else if settings.registration_open {
        tracing::warn!(
            "registration is open without the installation's mail (PINGTOWER_SMTP_URL): \
             registered emails are not proven, and registering tells whether an email has an \
             account"
        );
    }
    auth.public_url = settings
        .public_url
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_owned());
    // Behind HTTPS (the public URL says so), session cookies are only sent over HTTPS.
    auth.secure_cookies = settings
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    if let Some(issuer) = &settings.oidc_issuer {
        let audience = settings
            .oidc_audience
            .clone()
            .or_else(|| settings.oidc_client_id.clone())
            .unwrap_or_default();
        let mut config =
            pingtower_api::oidc::OidcConfig::new(issuer, &audience, &settings.oidc_roles_claim);
        if let Some(client) = &settings.oidc_client_id {
            config = config.with_client(
                client,
                settings.oidc_client_secret.as_ref().map(|s| s.expose()),
            );
        }
        let oidc = pingtower_api::oidc::Oidc::new(config).map_err(|e| ServeError::Role {
            role: "api",
            message: e.to_string(),
        })?;
        // The provider may come up later: a failure now is reported, not fatal.
        match oidc.refresh().await {
            Ok(keys) => {
                tracing::info!(issuer = %issuer, keys, "accepting tokens of the OIDC provider")
            }
            Err(e) => {
                tracing::warn!(issuer = %issuer, error = %e, "the OIDC provider does not answer yet; will retry when a token arrives")
            }
        }
        auth = auth.with_oidc(oidc);
    }
    let metrics = Metrics::new();

    // Two stages of shutdown: roles stop taking work first, then the writer drains.
    let stop_roles = CancellationToken::new();
    let stop_writer = CancellationToken::new();
    let (writer, writer_task) = ResultWriter::spawn(
        store.clone(),
        bus.clone(),
        WriterConfig::default(),
        metrics.clone(),
        stop_writer.clone(),
    );

    // Every connection a channel makes for a tenant goes through the operator's blocklist.
    let outbound = pingtower_notify::channels::Outbound::new(settings.blocked_networks.clone())
        .map_err(|e| ServeError::Role {
            role: "notifier",
            message: e.to_string(),
        })?;
    let mut tasks: JoinSet<(&'static str, Result<(), String>)> = JoinSet::new();
    // Tenants' analytics events, in a database of their own (on SQLite, a file of its own).
    // Workers read it too: event monitors count there.
    let analytics = if roles.contains(Role::Api)
        || roles.contains(Role::Analytics)
        || roles.contains(Role::Worker)
    {
        let url = settings.events_database_url();
        Some(
            pingtower_analytics::store::open(&url)
                .await
                .map_err(|e| ServeError::Role {
                    role: "analytics",
                    message: format!("opening the events database: {e}"),
                })?,
        )
    } else {
        None
    };
    let events_retention_ms = settings
        .events_retention_days
        .map(|d| i64::from(d) * 86_400_000);
    if let (Some(events), true) = (&analytics, roles.contains(Role::Analytics)) {
        let (events, stop) = (events.clone(), stop_roles.clone());
        tasks.spawn(async move {
            pingtower_analytics::maintenance::run(
                events,
                events_retention_ms,
                stop.cancelled_owned(),
            )
            .await;
            ("analytics", Ok(()))
        });
    }
    if let (Some(listener), Some(events)) = (listener, analytics.clone()) {
        let state = AppState {
            store: store.clone(),
            bus: bus.clone(),
            writer: writer.clone(),
            metrics: metrics.clone(),
            region: Arc::from(settings.region.as_str()),
            push_clock: Arc::default(),
            auth: Arc::new(auth),
            notify_http: outbound.clone(),
            events: pingtower_api::events::EventHub::default(),
            metrics_access: pingtower_api::MetricsAccess::new(
                settings.metrics_token.as_ref().map(|t| t.expose()),
                settings.metrics_monitors,
            ),
            quotas: pingtower_api::Quotas {
                max_monitors: (settings.tenant_max_monitors > 0)
                    .then_some(settings.tenant_max_monitors),
                min_interval_ms: i64::from(settings.min_interval_seconds) * 1000,
            },
            analytics: {
                let a = pingtower_api::analytics::Analytics::new(
                    events,
                    events_retention_ms,
                    settings.events_per_minute,
                );
                match &settings.redis_url {
                    Some(url) => a.with_cache(Arc::new(
                        pingtower_analytics::cache::RedisCache::connect(url.expose())
                            .await
                            .map_err(|e| ServeError::Role {
                                role: "api",
                                message: e.to_string(),
                            })?,
                    )),
                    None => a,
                }
            },
        };
        if settings.metrics_token.is_none() && !settings.listen.ip().is_loopback() {
            tracing::warn!(
                listen = %settings.listen,
                "/metrics answers anyone with the process's own figures: set \
                 PINGTOWER_METRICS_TOKEN to require a scrape token"
            );
        }
        // Per-second totals of accepted events, for the live view.
        let (live, live_bus, stop) = (state.analytics.clone(), bus.clone(), stop_roles.clone());
        tasks.spawn(async move {
            pingtower_api::analytics::publish_live(live, live_bus, stop).await;
            ("api", Ok(()))
        });
        let hub = state.events.clone();
        let (hub_bus, stop) = (bus.clone(), stop_roles.clone());
        tasks.spawn(async move {
            (
                "api",
                hub.run(hub_bus, stop).await.map_err(|e| e.to_string()),
            )
        });
        let app = pingtower_api::router(state);
        let stop = stop_roles.clone();
        let addr = settings.listen;
        // A fresh installation: say where to set it up.
        if matches!(store.count_users().await, Ok(0)) {
            let base = settings.public_url.clone().unwrap_or_else(|| {
                if addr.ip().is_unspecified() {
                    format!("http://localhost:{}", addr.port())
                } else {
                    format!("http://{addr}")
                }
            });
            tracing::info!(
                "no account yet: open {}/setup in a browser to create the owner",
                base.trim_end_matches('/')
            );
        }
        tasks.spawn(async move {
            tracing::info!(%addr, "listening");
            // Answers hyper gives by itself (a URI too long) are problem details too.
            let served = pingtower_api::serve(listener, app, stop.cancelled_owned()).await;
            ("api", served.map_err(|e| e.to_string()))
        });
    }
    if roles.contains(Role::Scheduler) {
        let scheduler = pingtower_engine::Scheduler::new(
            store.clone(),
            bus.clone(),
            pingtower_engine::SchedulerConfig::default(),
            metrics.clone(),
        );
        let stop = stop_roles.clone();
        tasks.spawn(async move {
            (
                "scheduler",
                scheduler.run(stop).await.map_err(|e| e.to_string()),
            )
        });
        let watcher = pingtower_engine::heartbeat::HeartbeatWatcher::new(
            store.clone(),
            bus.clone(),
            writer.clone(),
            settings.region.clone(),
        );
        let stop = stop_roles.clone();
        tasks.spawn(async move {
            (
                "scheduler",
                watcher.run(stop).await.map_err(|e| e.to_string()),
            )
        });
    }
    // Present exactly when the worker role runs.
    if let Some(checker) = checker {
        let config = pingtower_engine::WorkerConfig {
            region: settings.region.clone(),
            ..Default::default()
        };
        let worker = pingtower_engine::Worker::new(
            store.clone(),
            bus.clone(),
            writer.clone(),
            checker,
            config,
            metrics.clone(),
        )
        .with_keys(keys.clone());
        let worker = match &analytics {
            Some(events) => worker.with_events(events.clone()),
            None => worker,
        };
        let stop = stop_roles.clone();
        tasks.spawn(async move { ("worker", worker.run(stop).await.map_err(|e| e.to_string())) });
    }
    if roles.contains(Role::Notifier) {
        // The state evaluator (incidents open and resolve here), the rules, and delivery.
        let evaluator = pingtower_engine::evaluator::Evaluator::new(store.clone(), bus.clone());
        let stop = stop_roles.clone();
        tasks.spawn(async move {
            (
                "notifier",
                evaluator.run(stop).await.map_err(|e| e.to_string()),
            )
        });
        let notificator = pingtower_notify::router::Notificator::new(store.clone(), bus.clone())
            .with_public_url(settings.public_url.clone());
        let stop = stop_roles.clone();
        tasks.spawn(async move {
            (
                "notifier",
                notificator.run(stop).await.map_err(|e| e.to_string()),
            )
        });
        let deliverer = pingtower_notify::delivery::Deliverer::new(
            store.clone(),
            bus.clone(),
            keys.clone(),
            pingtower_notify::delivery::DeliveryConfig::default(),
            Arc::default(),
        )
        .map_err(|e| ServeError::Role {
            role: "notifier",
            message: e.to_string(),
        })?
        .with_outbound(outbound.clone());
        let stop = stop_roles.clone();
        tasks.spawn(async move {
            (
                "notifier",
                deliverer.run(stop).await.map_err(|e| e.to_string()),
            )
        });
    }
    if roles.contains(Role::Stats) {
        // Per-monitor series only where the operator asked for them (shown with the token only).
        if settings.metrics_monitors {
            let mm = pingtower_engine::monitor_metrics::MonitorMetrics::register(&metrics);
            let (mm_bus, mm_store, stop) = (bus.clone(), store.clone(), stop_roles.clone());
            tasks.spawn(async move {
                (
                    "stats",
                    mm.run(mm_bus, mm_store, stop)
                        .await
                        .map_err(|e| e.to_string()),
                )
            });
        }
        let days = |d: u32| Duration::from_secs(u64::from(d) * 86_400);
        let retention = RetentionConfig {
            raw_results: days(settings.results_retention_days),
            minute_rollups: days(settings.minute_rollups_retention_days),
            hour_rollups: days(settings.hour_rollups_retention_days),
            ..RetentionConfig::default()
        };
        let (maint_store, stop) = (store.clone(), stop_roles.clone());
        tasks.spawn(async move {
            pingtower_engine::maintenance::run(maint_store, retention, stop).await;
            ("stats", Ok(()))
        });
        let (stats_store, stop) = (store.clone(), stop_roles.clone());
        tasks.spawn(async move {
            let config = pingtower_engine::stats::StatsConfig::default();
            pingtower_engine::stats::run(stats_store, config, stop).await;
            ("stats", Ok(()))
        });
    }
    drop(writer);

    let outcome = wait_for_stop(&mut tasks, signals).await;
    tracing::info!("shutting down: finishing in-flight work");
    stop_roles.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        let mut failure = None;
        while let Some(joined) = tasks.join_next().await {
            if let Ok((role, Err(message))) = joined {
                failure.get_or_insert(ServeError::Role { role, message });
            }
        }
        failure
    })
    .await;
    let failure = match drained {
        Ok(failure) => failure,
        Err(_) => {
            tracing::warn!("roles did not stop within {SHUTDOWN_GRACE:?}; stopping them");
            tasks.abort_all();
            None
        }
    };
    stop_writer.cancel();
    // Longer than the writer's own retries (about 30 s), so it can finish or give up first.
    if tokio::time::timeout(SHUTDOWN_GRACE * 2, writer_task)
        .await
        .is_err()
    {
        tracing::error!("the result writer did not finish within {SHUTDOWN_GRACE:?}");
    }
    // Bounded: a broker under a resource alarm takes no frames, not even a close.
    if tokio::time::timeout(Duration::from_secs(5), bus.close())
        .await
        .is_err()
    {
        tracing::warn!("the broker did not let the connection close in time");
    }
    store.close().await;
    tracing::info!("stopped");
    outcome.and(failure.map_or(Ok(()), Err))
}

/// SIGINT and SIGTERM, listened for from the first moment of start-up, so that a signal during
/// migrations or a slow database connect still ends in an orderly shutdown.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, ServeError> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt()).map_err(ServeError::Signals)?,
            term: signal(SignalKind::terminate()).map_err(ServeError::Signals)?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// Waits for SIGINT/SIGTERM, or for a role to end on its own (which is a failure).
async fn wait_for_stop(
    tasks: &mut JoinSet<(&'static str, Result<(), String>)>,
    mut signals: Signals,
) -> Result<(), ServeError> {
    let ended = async {
        match tasks.join_next().await {
            Some(Ok((role, Err(message)))) => Err(ServeError::Role { role, message }),
            Some(Ok((role, Ok(())))) => Err(ServeError::Role {
                role,
                message: "stopped unexpectedly".into(),
            }),
            Some(Err(e)) => Err(ServeError::Role {
                role: "unknown",
                message: e.to_string(),
            }),
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        name = signals.recv() => { tracing::info!("{name} received"); Ok(()) }
        failed = ended => failed,
    };
    // A second signal while shutting down stops at once.
    tokio::spawn(async move {
        signals.recv().await;
        tracing::warn!("second signal: exiting without waiting");
        std::process::exit(130);
    });
    outcome
}
