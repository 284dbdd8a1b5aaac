//! Runs the real `pingtower` binary in a folder of its own.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pingtower")
}

/// A command with a clean environment (no PINGTOWER_* from the caller) in `dir`.
pub fn command(dir: &Path) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

/// A port that was free a moment ago, and never handed out before in this test process: tests
/// run in parallel, and two servers started on the same port meant one test talked to the
/// other's server (which then went away with its test).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn postgres_base_url() -> String {
    std::env::var("PINGTOWER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A PostgreSQL database of its own, dropped on `drop_now`.
pub struct PgDb {
    pub url: String,
    name: String,
}

impl PgDb {
    pub async fn create() -> Self {
        use sqlx::Connection;
        let base = postgres_base_url();
        let name = format!("pingtower_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let mut url = url::Url::parse(&base).unwrap();
        url.set_path(&name);
        Self {
            url: url.to_string(),
            name,
        }
    }

    pub async fn drop_now(self) {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&postgres_base_url())
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}

/// A running `pingtower serve`.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
    pub started: Instant,
    log: PathBuf,
}

impl Server {
    /// Starts `pingtower serve` in `dir` with extra arguments and environment.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = dir.join(format!("server-{port}.log"));
        let mut c = command(dir);
        c.arg("serve").arg("--listen").arg(&listen).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let started = Instant::now();
        let child = c
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            base: format!("http://{listen}"),
            dir: dir.to_owned(),
            started,
            log,
        }
    }

    /// Waits until `/healthz` answers 200; returns the time since start.
    pub async fn wait_healthy(&mut self, within: Duration) -> Duration {
        let client = http();
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send().await
                && r.status() == 200
            {
                return self.started.elapsed();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("server exited early with {status}:\n{}", self.log());
            }
            assert!(
                self.started.elapsed() < within,
                "no /healthz within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion.
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = command(dir);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An HTTP client for the tests (TLS through ring, as in the binary).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// The first account `Server::with_admin` creates.
pub const ADMIN: (&str, &str) = ("admin@example.test", "a-long-password");

/// The scrape token of `Server::with_admin` (which shows per-monitor series on `/metrics`).
#[allow(dead_code, reason = "not every test binary scrapes /metrics")]
pub const METRICS_TOKEN: &str = "scrape-token-0123456789";

impl Server {
    /// `pingtower serve` in `dir` with the first account from `ADMIN`, answering health.
    pub async fn with_admin(dir: &Path) -> Self {
        let mut server = Self::start(
            dir,
            &[],
            &[
                ("PINGTOWER_ADMIN_EMAIL", ADMIN.0),
                ("PINGTOWER_ADMIN_PASSWORD", ADMIN.1),
                ("PINGTOWER_METRICS_TOKEN", METRICS_TOKEN),
                ("PINGTOWER_METRICS_MONITORS", "true"),
            ],
        );
        server.wait_healthy(Duration::from_secs(10)).await;
        server
    }

    /// A login token of the `ADMIN` account.
    pub async fn admin_token(&self) -> String {
        let r = http()
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&serde_json::json!({"email": ADMIN.0, "password": ADMIN.1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }
}
