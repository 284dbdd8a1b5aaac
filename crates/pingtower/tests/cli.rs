//! Bad input on the command line: clear messages, the documented exit codes, nothing
//! half-created.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::Duration;

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let v = run(dir.path(), &["--version"], &[]);
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("pingtower "));
    let h = run(dir.path(), &["serve", "--help"], &[]);
    assert!(h.status.success());
    let help = String::from_utf8_lossy(&h.stdout);
    for flag in [
        "--listen",
        "--data-dir",
        "--database",
        "--broker",
        "--roles",
        "--region",
        "--config",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    let unknown = run(dir.path(), &["frobnicate"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn invalid_settings_exit_2_naming_each_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        dir.path(),
        &[
            "serve",
            "--listen",
            "nowhere",
            "--database",
            "mysql://127.0.0.1/x",
        ],
        &[("PINGTOWER_REGION", "eu west"), ("PINGTOWER_LISTN", "typo")],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    for needle in [
        "`listen` (from flag --listen)",
        "`database_url` (from flag --database)",
        "`region`",
        "PINGTOWER_LISTN",
        "unknown setting",
    ] {
        assert!(err.contains(needle), "{needle} missing from:\n{err}");
    }
    assert!(
        !dir.path().join("pingtower-data").exists(),
        "nothing created on invalid settings"
    );
}

#[test]
fn a_malformed_or_unknown_config_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "listen: [unclosed\n").unwrap();
    let o = run(dir.path(), &["serve", "--config", "bad.yaml"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("malformed YAML"), "{}", stderr(&o));
    std::fs::write(
        dir.path().join("typo.toml"),
        "databse_url = \"sqlite://x.db\"\n",
    )
    .unwrap();
    let o = run(dir.path(), &["serve", "--config", "typo.toml"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("`databse_url`"), "{}", stderr(&o));
    assert!(!dir.path().join("pingtower-data").exists());
}

#[test]
fn split_roles_on_the_embedded_default_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["serve", "--roles", "api,worker"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("`roles`"), "{}", stderr(&o));
}

#[tokio::test]
async fn a_port_in_use_exits_1_before_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = run(dir.path(), &["serve", "--listen", &addr], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("cannot listen on {addr}")),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("pingtower-data").exists());
}

#[test]
fn an_unusable_data_dir_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), "x").unwrap();
    let port = free_port().to_string();
    let o = run(
        dir.path(),
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            "a-file/data",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("data dir `a-file/data`: cannot create it"),
        "{}",
        stderr(&o)
    );
    let o = run(
        dir.path(),
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            "a-file",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not a directory"), "{}", stderr(&o));
}

#[test]
fn an_unreachable_postgres_exits_1_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let started = std::time::Instant::now();
    let o = run(
        dir.path(),
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database",
            "postgres://postgres:hunter2@127.0.0.1:1/nowhere",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("database postgres://postgres:****@127.0.0.1:1/nowhere"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the password is never printed:\n{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        !dir.path().join("pingtower-data").exists(),
        "the data dir made for this start is removed"
    );
    // Folders made above the data dir for this start go too.
    let o = run(
        dir.path(),
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            "made/for/this",
            "--database",
            "postgres://postgres@127.0.0.1:1/nowhere",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(!dir.path().join("made").exists(), "nothing half-created");
}

#[test]
fn an_unreachable_broker_exits_1_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let o = run(
        dir.path(),
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--broker",
            "amqp://guest:hunter2@127.0.0.1:1/%2f",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("broker amqp://guest:****@127.0.0.1:1/%2f"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the password is never printed:\n{err}"
    );
    assert!(
        !dir.path().join("pingtower-data").exists(),
        "nothing is created before the broker answers"
    );
}

#[tokio::test]
async fn migrate_applies_migrations_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["migrate"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("pingtower-data/pingtower.db").is_file());
    let again = run(dir.path(), &["migrate"], &[]);
    assert!(
        again.status.success(),
        "migrate is idempotent: {}",
        stderr(&again)
    );
    let db = PgDb::create().await;
    let o = run(dir.path(), &["migrate", "--database", &db.url], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    db.drop_now().await;
}

/// A one-thread HTTP server on loopback that answers every request with `status`.
fn http_target(status: u16) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "{\"status\":\"UP\"}";
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn check_prints_the_outcome_and_exits_by_status() {
    let dir = tempfile::tempdir().unwrap();
    let up = http_target(200);
    let o = run(
        dir.path(),
        &[
            "check",
            &format!("http://{up}/health"),
            "--assert",
            "json.status == \"UP\"",
        ],
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.starts_with("UP "), "{out}");
    for line in ["connect", "ttfb", "total", "✓ json.status == \"UP\""] {
        assert!(out.contains(line), "{line} missing:\n{out}");
    }
    let down = http_target(503);
    let o = run(
        dir.path(),
        &["check", &format!("http://{down}/"), "--json"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["reason"].as_str()),
        (Some("down"), Some("HTTP 503"))
    );
    let o = run(
        dir.path(),
        &["check", &up.to_string(), "--kind", "tcp"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(
        dir.path(),
        &["check", "http://127.0.0.1:1/", "--assert", "status = 200"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("assertions[0]: `status = 200`: at position 8: expected an operator"),
        "{}",
        stderr(&o)
    );
    let o = run(dir.path(), &["check", "ftp://127.0.0.1/"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("url: must be an http:// or https:// URL"),
        "{}",
        stderr(&o)
    );
}
