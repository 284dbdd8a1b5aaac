//! `pingtower apply` and `pingtower export` against a running server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, run, stderr};
use serde_json::{Value, json};

const FILE: &str = r#"
monitors:
  - name: Public API
    kind: http
    url: http://127.0.0.1:9/health
    interval_seconds: 30
    assertions: ["status == 200"]
    tags: [prod]
    depends_on: Database
  - name: Database
    kind: tcp
    host: 127.0.0.1
    port: 5432
channels:
  - name: ops
    kind: webhook
    url: http://127.0.0.1:9/hook
  - name: pager
    kind: pagerduty
    routing_key: s3cr3t-routing-key
    base_url: http://127.0.0.1:9/pd
rules:
  - name: all
    monitors: all
    events: [down, up]
    channels: [ops, pager]
maintenance:
  - name: sunday patching
    monitors: [Database]
    cron: "0 3 * * SUN"
    duration_minutes: 60
    timezone: Europe/Berlin
status_pages:
  - name: Public
    slug: public
    monitors: [Public API, Database]
    groups:
      - name: Backend
        monitors: [Database]
    public_names:
      Database: Customer data
"#;

async fn server_and_key(dir: &std::path::Path) -> (Server, String) {
    let server = Server::with_admin(dir).await;
    let key: Value = common::http()
        .post(format!("{}/api/v1/api-keys", server.base))
        .bearer_auth(server.admin_token().await)
        .json(&json!({"name": "ci", "role": "editor"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (server, key["key"].as_str().unwrap().to_owned())
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn apply_plans_applies_is_idempotent_exports_and_prunes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = server_and_key(dir.path()).await;
    let file = dir.path().join("pingtower.yaml");
    std::fs::write(&file, FILE).unwrap();
    let f = file.to_str().unwrap();
    let env = [
        ("PINGTOWER_SERVER", server.base.as_str()),
        ("PINGTOWER_TOKEN", key.as_str()),
    ];

    let dry = run(dir.path(), &["apply", "-f", f, "--dry-run"], &env);
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let out = stdout(&dry);
    assert!(
        out.contains("plan: 7 to create, 0 to update, 0 to delete"),
        "{out}"
    );
    assert!(out.contains("+ monitor \"Public API\""), "{out}");
    assert!(out.contains("nothing was changed"), "{out}");
    let exported = run(dir.path(), &["export"], &env);
    let yaml: Value = serde_yaml_ng::from_str(&stdout(&exported)).unwrap();
    assert_eq!(yaml["monitors"], json!([]), "a dry run changed something");

    let applied = run(dir.path(), &["apply", "-f", f], &env);
    assert_eq!(applied.status.code(), Some(0), "{}", stderr(&applied));
    assert!(stdout(&applied).contains("applied"));
    let again = run(dir.path(), &["apply", "-f", f], &env);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let out = stdout(&again);
    assert!(
        out.contains("plan: 0 to create, 0 to update, 0 to delete, 7 unchanged"),
        "{out}"
    );

    // The export names references by name, holds no credentials, and applies as a no-op.
    let exported = run(dir.path(), &["export"], &env);
    assert_eq!(exported.status.code(), Some(0), "{}", stderr(&exported));
    let text = stdout(&exported);
    assert!(
        !text.contains("s3cr3t"),
        "a credential was exported:\n{text}"
    );
    let yaml: Value = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(yaml["rules"][0]["channels"], json!(["ops", "pager"]));
    assert_eq!(
        yaml["status_pages"][0]["monitors"],
        json!(["Public API", "Database"])
    );
    assert_eq!(
        yaml["status_pages"][0]["groups"],
        json!([{"name": "Backend", "monitors": ["Database"]}])
    );
    assert_eq!(
        yaml["status_pages"][0]["public_names"],
        json!({"Database": "Customer data"})
    );
    // Monitors are exported parents first, and refer to each other by name.
    let names: Vec<_> = yaml["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].clone())
        .collect();
    assert!(names.contains(&json!("Public API")) && names.contains(&json!("Database")));
    let api = yaml["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "Public API")
        .unwrap();
    assert_eq!(api["depends_on"], "Database");
    let export_file = dir.path().join("exported.yaml");
    std::fs::write(&export_file, &text).unwrap();
    let round = run(
        dir.path(),
        &["apply", "-f", export_file.to_str().unwrap()],
        &env,
    );
    assert_eq!(round.status.code(), Some(0), "{}", stderr(&round));
    assert!(
        stdout(&round).contains("0 to create, 0 to update, 0 to delete"),
        "{}",
        stdout(&round)
    );

    // A change and a removal: an update, and with --prune a delete.
    let changed = FILE
        .replace("interval_seconds: 30", "interval_seconds: 60")
        .replace("    depends_on: Database\n", "")
        .replace(
            "  - name: Database\n    kind: tcp\n    host: 127.0.0.1\n    port: 5432\n",
            "",
        )
        .replace("monitors: [Database]", "monitors: [Public API]")
        .replace("monitors: [Public API, Database]", "monitors: [Public API]")
        .replace(
            "      Database: Customer data\n",
            "      Public API: Checkout\n",
        );
    std::fs::write(&file, &changed).unwrap();
    let plan = run(
        dir.path(),
        &["apply", "-f", f, "--prune", "--dry-run"],
        &env,
    );
    let out = stdout(&plan);
    assert!(out.contains("~ monitor \"Public API\""), "{out}");
    assert!(out.contains("- monitor \"Database\""), "{out}");
    let pruned = run(dir.path(), &["apply", "-f", f, "--prune"], &env);
    assert_eq!(pruned.status.code(), Some(0), "{}", stderr(&pruned));
    let yaml: Value =
        serde_yaml_ng::from_str(&stdout(&run(dir.path(), &["export"], &env))).unwrap();
    let names: Vec<_> = yaml["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].clone())
        .collect();
    assert_eq!(names, [json!("Public API")]);
    assert_eq!(yaml["monitors"][0]["interval_seconds"], 60);
    // Credentials absent from the file were kept.
    let http = common::http();
    let channels: Value = http
        .get(format!("{}/api/v1/channels", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pager = channels["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "pager")
        .unwrap();
    assert_eq!(pager["secrets_set"], json!(["routing_key"]));
}

#[tokio::test]
async fn invalid_files_are_refused_whole_with_lines_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = server_and_key(dir.path()).await;
    let env = [
        ("PINGTOWER_SERVER", server.base.as_str()),
        ("PINGTOWER_TOKEN", key.as_str()),
    ];
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "monitors:\n  - name: ok\n    kind: http\n    url: http://127.0.0.1:9/\n  - name: broken\n    kind: http\n    url: ftp://x\n    assertions: [\"status = 200\"]\nrules:\n  - name: r\n    monitors: all\n    events: [down]\n    channels: [nowhere]\n",
    )
    .unwrap();
    let o = run(dir.path(), &["apply", "-f", file.to_str().unwrap()], &env);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("bad.yaml:7: monitors[1].url"), "{err}");
    assert!(
        err.contains("bad.yaml:8: monitors[1].assertions[0]"),
        "{err}"
    );
    assert!(err.contains("bad.yaml:13: rules[0].channels[0]"), "{err}");
    // Nothing was created, not even the valid monitor.
    let yaml: Value =
        serde_yaml_ng::from_str(&stdout(&run(dir.path(), &["export"], &env))).unwrap();
    assert_eq!(yaml["monitors"], json!([]));

    // Not YAML at all: the line of the syntax error.
    std::fs::write(&file, "monitors:\n  - name: [unclosed\n").unwrap();
    let o = run(dir.path(), &["apply", "-f", file.to_str().unwrap()], &env);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.yaml:"), "{}", stderr(&o));
    // No token: a usage error. Unreachable server: a runtime failure.
    let o = run(
        dir.path(),
        &["apply", "-f", file.to_str().unwrap()],
        &[("PINGTOWER_SERVER", server.base.as_str())],
    );
    assert_eq!(o.status.code(), Some(2));
    let port = common::free_port();
    let o = run(
        dir.path(),
        &[
            "export",
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--token",
            "x",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // A wrong token: refused, not a crash.
    let o = run(
        dir.path(),
        &["export"],
        &[
            ("PINGTOWER_SERVER", server.base.as_str()),
            ("PINGTOWER_TOKEN", "ptk_nope_nope"),
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));
}

#[tokio::test]
async fn deeply_nested_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deep.yaml");
    // Parsed as it is, this took time quadratic in the depth (15 s for 80,000 levels).
    let n = 100_000;
    std::fs::write(
        &file,
        format!("monitors: {}{}\n", "[".repeat(n), "]".repeat(n)),
    )
    .unwrap();
    let port = common::free_port();
    let server = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let o = run(
        dir.path(),
        &["apply", "-f", file.to_str().unwrap()],
        &[
            ("PINGTOWER_SERVER", server.as_str()),
            ("PINGTOWER_TOKEN", "ptk_x_y"),
        ],
    );
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("deep.yaml:1: nested deeper than 64 levels"),
        "{}",
        stderr(&o)
    );
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");

    // Block nesting too, with the line where it goes too deep.
    let block: String = (0..100)
        .map(|i| format!("{}a:\n", "  ".repeat(i)))
        .collect();
    std::fs::write(&file, block).unwrap();
    let o = run(
        dir.path(),
        &["apply", "-f", file.to_str().unwrap()],
        &[
            ("PINGTOWER_SERVER", server.as_str()),
            ("PINGTOWER_TOKEN", "ptk_x_y"),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("deep.yaml:65: nested deeper than 64 levels"),
        "{}",
        stderr(&o)
    );
}
