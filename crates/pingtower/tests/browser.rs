//! The web dashboard in a real browser: Debian's Chromium, driven through chromedriver
//! (WebDriver, with fantoccini), against `pingtower serve` and an HTTP target, all on loopback.
//!
//! One journey, as a new user lives it: first-run setup; a monitor created through the form
//! (after the form has shown the API's message for a bad URL); the monitor turning UP live, then
//! DOWN live with its incident appearing once the target stops, all without a reload; the
//! incident acknowledged; the overview; the monitor edited; a note on the incident's timeline;
//! an API key shown once (and working); a webhook channel made through its form and its test
//! message received; a rule and a maintenance window made through theirs (with a field error
//! first), and the rule edited through the same form; a status page built through its form,
//! with a group and a public name for its monitor, and read logged out.
//! Screenshots of the overview, the monitor page and the status page are saved under
//! `target/browser-artifacts/`.
//!
//! Needs `chromium` and `chromedriver` (scripts/test.sh installs Debian's packages); their
//! paths can be given in `PINGTOWER_TEST_CHROMIUM` and `PINGTOWER_TEST_CHROMEDRIVER`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, free_port, http};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EMAIL: &str = "owner@example.test";
const PASSWORD: &str = "correct-horse-battery";

/// chromedriver on a port of its own, killed on drop.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(env: &str, name: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| name.to_owned())
}

async fn start_driver() -> Driver {
    let port = free_port();
    let bin = tool("PINGTOWER_TEST_CHROMEDRIVER", "chromedriver");
    let child = Command::new(&bin)
        .arg(format!("--port={port}"))
        // The browser's time zone (its children inherit it): pages show times in the viewer's
        // zone, 5:30 ahead of UTC here, so a time left in UTC is seen.
        .env("TZ", "Asia/Kolkata")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start `{bin}` ({e}); scripts/test.sh installs chromium-driver")
        });
    let driver = Driver(child, port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": tool("PINGTOWER_TEST_CHROMIUM", "/usr/bin/chromium"),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--no-first-run", "--no-default-browser-check",
                     "--disable-background-networking", "--disable-sync", "--disable-extensions",
                     "--disable-component-update", "--disable-default-apps",
                     format!("--user-data-dir={}", profile.display())],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("a Chromium session through chromedriver")
}

/// An HTTP target on loopback answering 200 until its task is aborted (then: refused).
async fn target() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (format!("http://{addr}/health"), task)
}

/// A webhook receiver on loopback: every request's head goes to the channel.
async fn hook() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16_384];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = s
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (format!("http://{addr}/hook"), rx)
}

/// Waits until the element's text satisfies `pred`.
async fn wait_text(c: &Client, css: &str, within: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
        {
            if pred(&t) {
                return t;
            }
            last = t;
        }
        assert!(
            Instant::now() < deadline,
            "`{css}` never matched; last text: {last:?}; page: {}",
            c.current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_url(c: &Client, within: Duration, pred: impl Fn(&url::Url) -> bool) -> url::Url {
    let deadline = Instant::now() + within;
    loop {
        let u = c.current_url().await.unwrap();
        if pred(&u) {
            return u;
        }
        assert!(Instant::now() < deadline, "still at {u}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn fill(c: &Client, css: &str, value: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

/// Sets a field's value as a picker would (date-time pickers take no typed text).
async fn set_value(c: &Client, css: &str, value: &str) {
    c.execute(
        "var e = document.querySelector(arguments[0]); e.value = arguments[1]; \
         e.dispatchEvent(new Event('input', {bubbles: true}));",
        vec![json!(css), json!(value)],
    )
    .await
    .unwrap();
}

/// Opens the edit form of the first object of a list page.
async fn open_first_edit_form(c: &Client) {
    click(c, "table.resources a.button").await;
    wait_url(c, Duration::from_secs(5), |u| u.path().ends_with("/edit")).await;
}

/// A form field's current value.
async fn value_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(artifacts().join(name), png).unwrap();
}

/// Whether the page is still the one the marker was set on (no reload happened).
/// Text on a coloured ground (status pills, primary buttons, the status page's banner) under
/// 4.5:1 contrast (WCAG AA) in the light or the dark theme: what fails, said in words.
async fn low_contrast(c: &Client) -> Vec<String> {
    let script = r#"
        function lum(rgb) {
          var v = rgb.match(/[\d.]+/g).slice(0, 3).map(function (x) {
            x = Number(x) / 255;
            return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
          });
          return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
        }
        var root = document.documentElement, was = root.dataset.theme, bad = [];
        ["light", "dark"].forEach(function (theme) {
          root.dataset.theme = theme;
          document.querySelectorAll(".status, button[type=submit], .overall").forEach(function (el) {
            var st = getComputedStyle(el), bg = st.backgroundColor;
            if (el.closest("[hidden]") || /rgba\(.*, 0\)$/.test(bg) || bg === "transparent") return;
            var a = lum(st.color), b = lum(bg);
            var ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
            if (ratio < 4.5) bad.push(theme + ": '" + el.textContent.trim() + "' " + st.color + " on " + bg + " = " + ratio.toFixed(2));
          });
        });
        if (was) root.dataset.theme = was; else delete root.dataset.theme;
        return bad;
    "#;
    let found = c.execute(script, vec![]).await.unwrap();
    serde_json::from_value(found).unwrap()
}

/// An API call with a token: its status and JSON answer (`Null` when it has none).
async fn call(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = http().request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// A token for the API, as the test's user.
async fn api_login(base: &str) -> String {
    let login: serde_json::Value = http()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["token"].as_str().unwrap().to_owned()
}

async fn same_page(c: &Client) -> bool {
    c.execute("return window.__ptMarker === 42;", vec![])
        .await
        .unwrap()
        .as_bool()
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_watches_a_monitor_go_up_and_down_live_and_publishes_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[], &[]);
    server.wait_healthy(Duration::from_secs(10)).await;
    let driver = start_driver().await;
    let c = browser(&driver, &dir.path().join("chromium")).await;
    let outcome = journey(&c, &server).await;
    let _ = c.close().await;
    if let Err(e) = outcome {
        panic!("{e}\nserver log:\n{}", server.log());
    }
}

async fn journey(c: &Client, server: &Server) -> Result<(), String> {
    let base = &server.base;
    let (target_url, target_task) = target().await;

    // A fresh installation sends the first visitor to setup.
    c.goto(&format!("{base}/")).await.unwrap();
    wait_url(c, Duration::from_secs(5), |u| u.path() == "/setup").await;
    fill(c, "#f-email", EMAIL).await;
    fill(c, "#f-password", "short").await;
    click(c, "button[type=submit]").await;
    // The API's message, next to the field it is about.
    let msg = wait_text(
        c,
        "[data-field-error=password]",
        Duration::from_secs(5),
        |t| !t.is_empty(),
    )
    .await;
    assert!(msg.contains('8'), "{msg}");
    fill(c, "#f-password", PASSWORD).await;
    click(c, "button[type=submit]").await;
    wait_url(c, Duration::from_secs(10), |u| u.path() == "/").await;
    wait_text(c, "h1", Duration::from_secs(5), |t| {
        t.starts_with("Overview")
    })
    .await;

    // A monitor through the form: a bad URL first, then the local target.
    c.find(Locator::LinkText("New monitor"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(c, Duration::from_secs(5), |u| u.path() == "/monitors/new").await;
    // An HTTP monitor's form shows no other kind's fields.
    for other in ["#f-host", "#f-port", "#f-query", "#f-resolver", "#f-grace"] {
        let shown = c
            .find(Locator::Css(other))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap();
        assert!(!shown, "{other} is shown on an HTTP monitor's form");
    }
    fill(c, "#f-name", "Checkout API").await;
    fill(c, "#f-url", "not a url").await;
    fill(c, "#f-interval", "1").await;
    fill(c, "#f-timeout", "1").await;
    fill(c, "#f-assertions", "status == 200\n\nbody contains").await;
    fill(c, "#f-tags", "prod, shop").await;
    click(c, "button[type=submit]").await;
    let msg = wait_text(c, "[data-field-error=url]", Duration::from_secs(5), |t| {
        !t.is_empty()
    })
    .await;
    assert!(!msg.is_empty());
    assert_eq!(
        c.find(Locator::Css("#f-url"))
            .await
            .unwrap()
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    // The broken assertion is named by its line, with the parser's position.
    let msg = wait_text(
        c,
        "[data-field-error=assertions]",
        Duration::from_secs(5),
        |t| !t.is_empty(),
    )
    .await;
    assert!(
        msg.starts_with("line 3: ") && msg.contains("position"),
        "{msg}"
    );
    fill(c, "#f-assertions", "status == 200").await;
    fill(c, "#f-url", &target_url).await;
    click(c, "button[type=submit]").await;
    let detail = wait_url(c, Duration::from_secs(10), |u| {
        u.path().starts_with("/monitors/") && u.path() != "/monitors/new"
    })
    .await;
    let monitor_id = detail.path().trim_start_matches("/monitors/").to_owned();

    // UP, live: the page is not reloaded.
    c.execute("window.__ptMarker = 42;", vec![]).await.unwrap();
    wait_text(c, "h1 [data-status]", Duration::from_secs(20), |t| {
        t == "up"
    })
    .await;
    wait_text(c, "[data-results] tr", Duration::from_secs(10), |t| {
        t.contains("up")
    })
    .await;
    if !same_page(c).await {
        return Err("the page reloaded to show UP".into());
    }

    // The target stops: DOWN and an incident, live.
    target_task.abort();
    let _ = target_task.await;
    wait_text(c, "h1 [data-status]", Duration::from_secs(20), |t| {
        t == "down"
    })
    .await;
    // The beat bar took the DOWN results as they came, with their reason on hover.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let down = c
            .execute(
                "var r = document.querySelector('[data-beats] rect.b-down title'); \
                 return r ? r.textContent : '';",
                vec![],
            )
            .await
            .unwrap();
        if down
            .as_str()
            .is_some_and(|t| t.contains("down · ") && t.contains("connect"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no DOWN beat: {down}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_text(
        c,
        "[data-incidents] [data-incident-status]",
        Duration::from_secs(10),
        |t| t == "open",
    )
    .await;
    if !same_page(c).await {
        return Err("the page reloaded to show DOWN".into());
    }
    click(c, "button[data-ack]").await;
    wait_text(
        c,
        "[data-incidents] [data-incident-status]",
        Duration::from_secs(5),
        |t| t == "acknowledged",
    )
    .await;
    // The acknowledgement is stored, not only shown.
    c.refresh().await.unwrap();
    wait_text(
        c,
        "[data-incidents] [data-incident-status]",
        Duration::from_secs(5),
        |t| t == "acknowledged",
    )
    .await;
    // Who acknowledged is said as such: once the system resolves the incident, it must not
    // read "resolved by" them.
    wait_text(
        c,
        "[data-incidents] [data-acknowledged]",
        Duration::from_secs(5),
        |t| t.starts_with("acknowledged by owner@example.test"),
    )
    .await;
    let bad = low_contrast(c).await;
    assert!(bad.is_empty(), "low contrast on the monitor page: {bad:?}");
    // A monitor made a minute ago opens on its last hour, and already has a latency chart.
    wait_text(
        c,
        "nav.windows a[aria-current=page]",
        Duration::from_secs(5),
        |t| t == "1h",
    )
    .await;
    let line = c
        .find(Locator::Css("svg.chart path.p50"))
        .await
        .unwrap()
        .attr("d")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(line.contains('L'), "no latency line: {line:?}");
    screenshot(c, "monitor.png").await;

    // The overview lists it, DOWN, with its tags; the header counts it.
    c.goto(&format!("{base}/")).await.unwrap();
    let row = format!("tr[data-monitor=\"{monitor_id}\"]");
    wait_text(c, &row, Duration::from_secs(5), |t| {
        t.contains("Checkout API") && t.contains("down") && t.contains("prod")
    })
    .await;
    wait_text(c, "[data-count=down] .n", Duration::from_secs(5), |t| {
        t == "1"
    })
    .await;
    // Its latest checks, a beat each: up, then down.
    let beats = c
        .execute(
            &format!(
                "return Array.from(document.querySelectorAll('{row} [data-beats] rect'))\
                 .map(function (r) {{ return r.getAttribute('class') || 'b-up'; }});"
            ),
            vec![],
        )
        .await
        .unwrap();
    let beats: Vec<String> = serde_json::from_value(beats).unwrap();
    assert!(
        beats.contains(&"b-up".to_owned()) && beats.last().map(String::as_str) == Some("b-down"),
        "{beats:?}"
    );
    // Down first, with its reason and when it was last checked; a monitor made since, and
    // named before it, comes after (pending), unless the newest are asked for first.
    let token = api_login(base).await;
    let (status, made) = call(
        reqwest::Method::POST,
        format!("{base}/api/v1/monitors"),
        &token,
        Some(
            json!({"name": "Aardvark nightly job", "kind": "heartbeat", "interval_seconds": 86400}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    c.goto(&format!("{base}/")).await.unwrap();
    let first = "table.monitors tbody tr:first-child";
    wait_text(c, first, Duration::from_secs(5), |t| {
        t.contains("Checkout API")
    })
    .await;
    let reason = wait_text(
        c,
        &format!("{row} [data-reason]"),
        Duration::from_secs(5),
        |t| !t.is_empty(),
    )
    .await;
    assert!(reason.contains("connect"), "{reason}");
    wait_text(
        c,
        &format!("{row} [data-checked] time"),
        Duration::from_secs(5),
        |t| t.ends_with(" ago") || t == "just now",
    )
    .await;
    wait_text(
        c,
        "table.monitors tbody tr:nth-child(2)",
        Duration::from_secs(5),
        |t| t.contains("Aardvark nightly job") && t.contains("pending"),
    )
    .await;
    // Many at once: every row ticked and tagged, then untagged; one paused.
    click(c, "input[data-pick-all]").await;
    wait_text(c, "[data-bulk-count]", Duration::from_secs(5), |t| t == "2").await;
    fill(c, "[data-bulk-tag]", "bulk-test").await;
    click(c, "[data-bulk-action=tag]").await;
    wait_text(c, "[data-bulk-note]", Duration::from_secs(10), |t| {
        t == "2 of 2 tagged bulk-test."
    })
    .await;
    wait_text(c, "table.monitors", Duration::from_secs(5), |t| {
        t.matches("bulk-test").count() == 2
    })
    .await;
    screenshot(c, "overview-bulk.png").await;
    click(c, "[data-bulk-action=untag]").await;
    wait_text(c, "[data-bulk-note]", Duration::from_secs(10), |t| {
        t == "2 of 2 untagged bulk-test."
    })
    .await;
    wait_text(c, "table.monitors", Duration::from_secs(5), |t| {
        !t.contains("bulk-test") && t.contains("prod")
    })
    .await;
    click(c, "input[data-pick-all]").await;
    wait_text(c, "[data-bulk-count]", Duration::from_secs(5), |t| t == "0").await;
    click(c, "tr:nth-child(2) input[data-pick]").await;
    click(c, "[data-bulk-action=pause]").await;
    wait_text(c, "[data-bulk-note]", Duration::from_secs(10), |t| {
        t == "1 of 1 paused."
    })
    .await;
    wait_text(c, "table.monitors", Duration::from_secs(5), |t| {
        t.contains("paused")
    })
    .await;
    screenshot(c, "overview.png").await;
    c.goto(&format!("{base}/?order=newest")).await.unwrap();
    wait_text(c, first, Duration::from_secs(5), |t| t.contains("Aardvark")).await;
    c.goto(&format!("{base}/")).await.unwrap();
    // A group is one row; it opens to show its members.
    let aardvark = c
        .find(Locator::Css("tr:nth-child(2) input[data-pick]"))
        .await
        .unwrap()
        .attr("data-pick")
        .await
        .unwrap()
        .unwrap();
    let patch = |body| {
        call(
            reqwest::Method::PATCH,
            format!("{base}/api/v1/monitors/{aardvark}"),
            &token,
            Some(body),
        )
    };
    assert_eq!(patch(json!({"group": "Nightly jobs"})).await.0, 200);
    c.goto(&format!("{base}/")).await.unwrap();
    let member = format!("tr[data-monitor=\"{aardvark}\"]");
    assert!(
        !c.find(Locator::Css(&member))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    wait_text(c, "tr.group-row", Duration::from_secs(5), |t| {
        t.contains("Nightly jobs") && t.contains("1 monitor: 1 paused")
    })
    .await;
    click(c, "button[data-group-toggle]").await;
    assert!(
        c.find(Locator::Css(&member))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    screenshot(c, "overview-group.png").await;
    // A change made elsewhere redraws the page: the group stays open and the keyboard focus
    // stays on its toggle.
    assert_eq!(patch(json!({"tags": ["redrawn"]})).await.0, 200);
    wait_text(c, &member, Duration::from_secs(10), |t| {
        t.contains("redrawn")
    })
    .await;
    assert!(
        c.find(Locator::Css(&member))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    let focus = c
        .execute(
            "var e = document.activeElement; return e && e.dataset ? (e.dataset.groupName || '') : '';",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        focus,
        json!("Nightly jobs"),
        "the focus was lost in the redraw"
    );

    // Edit it through the same form, filled with what is stored.
    c.goto(&format!("{base}/monitors/{monitor_id}/edit"))
        .await
        .unwrap();
    let url_field = c.find(Locator::Css("#f-url")).await.unwrap();
    assert_eq!(
        url_field.prop("value").await.unwrap().as_deref(),
        Some(target_url.as_str())
    );
    assert_eq!(
        c.find(Locator::Css("#f-tags"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("prod, shop")
    );
    fill(c, "#f-name", "Checkout API v2").await;
    // An advanced setting: a request header, sent as an object.
    click(c, "details.advanced summary").await;
    fill(c, "#f-headers", "X-Probe: pingtower").await;
    click(c, "button[type=submit]").await;
    wait_url(c, Duration::from_secs(10), |u| {
        u.path() == format!("/monitors/{monitor_id}")
    })
    .await;
    wait_text(c, "h1", Duration::from_secs(5), |t| {
        t.starts_with("Checkout API v2")
    })
    .await;
    c.goto(&format!("{base}/monitors/{monitor_id}/edit"))
        .await
        .unwrap();
    // Headers are credentials: stored, said to be set, never shown again.
    let headers = c.find(Locator::Css("#f-headers")).await.unwrap();
    assert_eq!(headers.prop("value").await.unwrap().as_deref(), Some(""));
    assert_eq!(
        headers.attr("placeholder").await.unwrap().as_deref(),
        Some("set: leave blank to keep"),
        "stored as a header"
    );

    // The incident's page: its timeline takes a note.
    c.goto(&format!("{base}/incidents")).await.unwrap();
    click(c, "[data-incident] a").await;
    wait_url(c, Duration::from_secs(5), |u| {
        u.path().starts_with("/incidents/")
    })
    .await;
    fill(c, "#f-message", "Restarting the target").await;
    click(c, "button[type=submit]").await;
    wait_text(c, "[data-timeline]", Duration::from_secs(5), |t| {
        t.contains("Restarting the target") && t.contains(EMAIL)
    })
    .await;
    // Times in the viewer's zone (Asia/Kolkata, UTC+5:30), UTC on hover.
    let opened = c
        .execute(
            "var t = document.querySelector('time[data-local]'); \
             return [t.textContent, t.getAttribute('title'), t.getAttribute('datetime')];",
            vec![],
        )
        .await
        .unwrap();
    let opened: Vec<String> = serde_json::from_value(opened).unwrap();
    let utc: pingtower_core::Timestamp = serde_json::from_value(json!(opened[2])).unwrap();
    let kolkata = utc.add_millis(330 * 60_000).to_datetime();
    assert_eq!(
        opened[1],
        utc.to_datetime()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string()
    );
    assert!(
        opened[0].starts_with(&kolkata.format("%Y-%m-%d %H:%M:%S").to_string())
            && !opened[0].contains("UTC"),
        "{opened:?}"
    );
    // The target comes back (the monitor is pointed at a new one through the API): the open
    // incident page shows it resolved, without a reload.
    c.execute("window.__ptMarker = 42;", vec![]).await.unwrap();
    let (back_url, back_task) = target().await;
    let r = http()
        .patch(format!("{base}/api/v1/monitors/{monitor_id}"))
        .bearer_auth(&token)
        // Its stored header goes to the new server only when given again.
        .json(&json!({ "url": back_url, "headers": {"X-Probe": "pingtower"} }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(status.is_success(), "{status}: {}", r.text().await.unwrap());
    wait_text(
        c,
        "[data-live-incident] [data-incident-status]",
        Duration::from_secs(20),
        |t| t == "resolved",
    )
    .await;
    // A note someone adds elsewhere appears on it too.
    let incident_id = c
        .find(Locator::Css("[data-live-incident]"))
        .await
        .unwrap()
        .attr("data-live-incident")
        .await
        .unwrap()
        .unwrap();
    let r = http()
        .post(format!("{base}/api/v1/incidents/{incident_id}/comments"))
        .bearer_auth(&token)
        .json(&json!({ "message": "Back after a restart" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    wait_text(c, "[data-timeline]", Duration::from_secs(10), |t| {
        t.contains("Back after a restart")
    })
    .await;
    assert!(same_page(c).await, "the incident page reloaded");
    screenshot(c, "incident.png").await;
    // A monitor made elsewhere appears on an open overview, without a reload.
    c.goto(&format!("{base}/")).await.unwrap();
    c.execute("window.__ptMarker = 42;", vec![]).await.unwrap();
    let made: serde_json::Value = http()
        .post(format!("{base}/api/v1/monitors"))
        .bearer_auth(&token)
        .json(&json!({"name": "made elsewhere", "kind": "http", "url": back_url, "interval_seconds": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let made_id = made["id"].as_str().unwrap().to_owned();
    wait_text(
        c,
        &format!("tr[data-monitor=\"{made_id}\"]"),
        Duration::from_secs(10),
        |t| t.contains("made elsewhere"),
    )
    .await;
    assert!(same_page(c).await, "the overview reloaded");
    back_task.abort();

    // An API key, shown once.
    c.goto(&format!("{base}/settings")).await.unwrap();
    fill(c, "#k-name", "ci").await;
    c.find(Locator::Css("#k-role"))
        .await
        .unwrap()
        .select_by_value("admin")
        .await
        .unwrap();
    click(c, "form[data-show-secret] button[type=submit]").await;
    let shown = wait_text(c, "[data-secret]", Duration::from_secs(5), |t| {
        t.contains("ptk_")
    })
    .await;
    let key = shown.rsplit(' ').next().unwrap().to_owned();
    let r = http()
        .get(format!("{base}/api/v1/monitors"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the key shown works");
    let key_owner = key;

    // A member added, then given another role in place.
    fill(c, "#u-email", "oncall@example.test").await;
    fill(c, "#u-password", "another-long-password").await;
    click(c, "#member-form button[type=submit]").await;
    wait_text(c, "body", Duration::from_secs(5), |t| {
        t.contains("oncall@example.test")
    })
    .await;
    c.find(Locator::Css("select[data-member-role]"))
        .await
        .unwrap()
        .select_by_value("editor")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let members: serde_json::Value = http()
            .get(format!("{base}/api/v1/users"))
            .bearer_auth(&key_owner)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let role = members["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["email"] == "oncall@example.test")
            .map(|m| m["role"].clone());
        if role == Some(json!("editor")) {
            break;
        }
        assert!(Instant::now() < deadline, "role never changed: {members}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // An email without a password: an invitation, whose link is shown once.
    fill(c, "#u-email", "later@example.test").await;
    fill(c, "#u-password", "").await;
    click(c, "#member-form button[type=submit]").await;
    let shown = wait_text(
        c,
        "#member-form [data-secret]",
        Duration::from_secs(5),
        |t| t.contains("/invite/"),
    )
    .await;
    assert!(shown.contains("later@example.test"), "{shown}");
    screenshot(c, "settings.png").await;

    // A webhook channel made through its form, and its test message received. The form shows
    // the webhook's fields only, named as people name them; its URL is no password box.
    let (hook_url, mut hook_hits) = hook().await;
    c.goto(&format!("{base}/channels/new")).await.unwrap();
    let shown = |css: &'static str| async move {
        c.find(Locator::Css(css))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    };
    assert!(shown("#f-url").await && shown("#f-hmac_secret").await);
    for other in [
        "#f-smtp_host",
        "#f-bot_token",
        "#f-routing_key",
        "#f-url-secret",
    ] {
        assert!(!shown(other).await, "{other} is shown on a webhook's form");
    }
    let url_box = c.find(Locator::Css("#f-url")).await.unwrap();
    assert_ne!(
        url_box.attr("type").await.unwrap().as_deref(),
        Some("password")
    );
    let label = c
        .find(Locator::Css("label[for=f-hmac_secret]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(label, "HMAC signing secret");
    let bad = low_contrast(c).await;
    assert!(bad.is_empty(), "low contrast on the channel form: {bad:?}");
    // A Slack channel's URL holds its token: a password box, the webhook's URL hidden.
    c.find(Locator::Css("#f-kind option[value=slack]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(shown("#f-url-secret").await && !shown("#f-url").await);
    c.find(Locator::Css("#f-kind option[value=webhook]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(c, "#f-name", "ops hook").await;
    fill(c, "#f-url", &hook_url).await;
    fill(c, "#f-hmac_secret", "browser-s3cret").await;
    click(c, "button[type=submit]").await;
    wait_url(c, Duration::from_secs(5), |u| u.path() == "/channels").await;
    click(c, "button[data-done]").await;
    wait_text(c, "[data-notice]", Duration::from_secs(10), |t| {
        t.contains("Test message sent to ops hook")
    })
    .await;
    let request = tokio::time::timeout(Duration::from_secs(5), hook_hits.recv())
        .await
        .expect("the webhook was called")
        .unwrap();
    assert!(request.starts_with("POST "), "{request}");
    let signed = |r: &str| r.to_lowercase().contains("x-pingtower-signature: sha256=");
    assert!(signed(&request), "{request}");
    // Renamed through its edit form, which shows no credential: the one left blank is kept,
    // so the next message is still signed.
    open_first_edit_form(c).await;
    assert_eq!(
        value_of(c, "#f-hmac_secret").await,
        "",
        "a credential was put in the page"
    );
    fill(c, "#f-name", "ops webhook").await;
    click(c, "button[type=submit]").await;
    wait_url(c, Duration::from_secs(5), |u| u.path() == "/channels").await;
    click(c, "button[data-done]").await;
    wait_text(c, "[data-notice]", Duration::from_secs(10), |t| {
        t.contains("Test message sent to ops webhook")
    })
    .await;
    let request = tokio::time::timeout(Duration::from_secs(5), hook_hits.recv())
        .await
        .expect("the webhook was called again")
        .unwrap();
    assert!(signed(&request), "the stored secret was lost: {request}");
    // A channel whose endpoint does not answer: its test says so, in red, with the reason.
    c.goto(&format!("{base}/channels/new")).await.unwrap();
    fill(c, "#f-name", "dead hook").await;
    fill(
        c,
        "#f-url",
        &format!("http://127.0.0.1:{}/gone", free_port()),
    )
    .await;
    click(c, "button[type=submit]").await;
    wait_url(c, Duration::from_secs(5), |u| u.path() == "/channels").await;
    click(c, "button[data-done*='dead hook']").await;
    let said = wait_text(c, "[data-notice]", Duration::from_secs(15), |t| {
        t.contains("test failed")
    })
    .await;
    assert!(!said.contains("sent"), "{said}");
    let class = c
        .find(Locator::Css("[data-notice]"))
        .await
        .unwrap()
        .attr("class")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(class.contains("failed"), "{class}");
    screenshot(c, "channel-test-failed.png").await;
    // Every page has an icon; browsers asking for /favicon.ico get it too.
    let icon = http()
        .get(format!("{base}/favicon.ico"))
        .send()
        .await
        .unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    c.find(Locator::Css("link[rel=icon]")).await.unwrap();

    // A heartbeat monitor shows its whole push URL (to copy, with a curl example) right after
    // it is made, and a call to that URL is taken.
    c.goto(&format!("{base}/monitors/new")).await.unwrap();
    c.find(Locator::Css("#f-kind option[value=heartbeat]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(c, "#f-name", "nightly backup").await;
    fill(c, "#f-interval", "3600").await;
    click(c, "button[type=submit]").await;
    let nightly = wait_url(c, Duration::from_secs(5), |u| {
        u.path().starts_with("/monitors/") && u.path() != "/monitors/new"
    })
    .await
    .path()
    .to_owned();
    let push = value_of(c, "#push-url").await;
    assert!(push.starts_with(&format!("{base}/api/v1/push/")), "{push}");
    let example = wait_text(c, "[data-push-example]", Duration::from_secs(5), |t| {
        !t.is_empty()
    })
    .await;
    assert!(
        example.starts_with("curl ") && example.ends_with(&push),
        "{example}"
    );
    c.find(Locator::Css("button[data-copy]")).await.unwrap();
    let pinged = http().post(&push).send().await.unwrap();
    assert!(pinged.status().is_success(), "{}", pinged.status());
    screenshot(c, "heartbeat.png").await;

    // A rule sending DOWN and UP to it, through its form.
    c.goto(&format!("{base}/rules/new")).await.unwrap();
    fill(c, "#f-name", "page ops").await;
    fill(c, "#f-monitors", "prod").await;
    click(c, "input[name=channels]").await;
    // Flap control and escalation are in the form too; half a flap setting is refused there.
    fill(c, "#f-flap-failures", "3").await;
    fill(c, "#f-escalate-after", "15").await;
    click(c, "input[name=escalate][data-path='escalate.channels']").await;
    click(c, "button[type=submit]").await;
    wait_text(c, "[data-field-error=flap]", Duration::from_secs(5), |t| {
        t.contains("within_minutes")
    })
    .await;
    fill(c, "#f-flap-within", "10").await;
    click(c, "button[type=submit]").await;
    wait_url(c, Duration::from_secs(5), |u| u.path() == "/rules").await;
    let rules = || async {
        call(
            reqwest::Method::GET,
            format!("{base}/api/v1/rules"),
            &token,
            None,
        )
        .await
        .1
    };
    let listed = rules().await;
    let rule = &listed["items"][0];
    assert_eq!(
        rule["flap"],
        json!({"failures": 3, "within_minutes": 10}),
        "{rule}"
    );
    assert_eq!(rule["escalate"]["after_minutes"], 15, "{rule}");
    assert_eq!(
        rule["escalate"]["channels"].as_array().map(Vec::len),
        Some(1),
        "{rule}"
    );
    wait_text(c, "table.resources", Duration::from_secs(5), |t| {
        t.contains("page ops") && t.contains("down, up")
    })
    .await;
    // Edited through the same form, filled with what is stored.
    open_first_edit_form(c).await;
    assert_eq!(
        value_of(c, "#f-monitors").await,
        "prod",
        "the form shows the stored tags"
    );
    assert_eq!(value_of(c, "#f-flap-within").await, "10");
    assert_eq!(value_of(c, "#f-escalate-after").await, "15");
    fill(c, "#f-name", "page ops on call").await;
    click(c, "input[name=events][value=up]").await;
    // No escalation any more: emptied, it is removed.
    fill(c, "#f-escalate-after", "").await;
    click(c, "input[name=escalate][data-path='escalate.channels']").await;
    click(c, "button[type=submit]").await;
    wait_url(c, Duration::from_secs(5), |u| u.path() == "/rules").await;
    wait_text(c, "table.resources", Duration::from_secs(5), |t| {
        t.contains("page ops on call") && t.contains("events: down;")
    })
    .await;
    let listed = rules().await;
    let rule = &listed["items"][0];
    assert!(rule.get("escalate").is_none_or(|e| e.is_null()), "{rule}");
    assert_eq!(rule["flap"]["failures"], 3, "{rule}");

    // Who is notified, chosen on the monitor's own form: kept as its rule, which the rules
    // page lists; unticked, the rule goes.
    c.goto(&format!("{base}{nightly}/edit")).await.unwrap();
    click(c, "input[data-notify-channel]").await;
    click(c, "button[type=submit]").await;
    wait_url(c, Duration::from_secs(5), |u| u.path() == nightly).await;
    let own = |rules: &serde_json::Value| -> Option<serde_json::Value> {
        rules["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "nightly backup: notifications")
            .cloned()
    };
    let rule = own(&rules().await).expect("the monitor's own rule");
    let nightly_id = nightly.trim_start_matches("/monitors/");
    assert_eq!(rule["monitors"], json!([nightly_id]), "{rule}");
    assert_eq!(rule["events"], json!(["down", "up"]), "{rule}");
    assert_eq!(rule["channels"].as_array().map(Vec::len), Some(1), "{rule}");
    c.goto(&format!("{base}/rules")).await.unwrap();
    wait_text(c, "table.resources", Duration::from_secs(5), |t| {
        t.contains("nightly backup: notifications")
    })
    .await;
    c.goto(&format!("{base}{nightly}/edit")).await.unwrap();
    let ticked = c
        .find(Locator::Css("input[data-notify-channel]"))
        .await
        .unwrap()
        .prop("checked")
        .await
        .unwrap();
    assert_eq!(
        ticked.as_deref(),
        Some("true"),
        "the form shows who is notified"
    );
    click(c, "input[data-notify-channel]").await;
    click(c, "button[type=submit]").await;
    wait_url(c, Duration::from_secs(5), |u| u.path() == nightly).await;
    assert!(own(&rules().await).is_none(), "the rule stayed");

    // A maintenance window, picked in the viewer's time zone: an end before the start is
    // refused where it was picked.
    c.goto(&format!("{base}/maintenance/new")).await.unwrap();
    // (ICU may name the zone by its older name.)
    wait_text(c, "label[for=f-starts]", Duration::from_secs(5), |t| {
        t.contains("Asia/Kolkata") || t.contains("Asia/Calcutta")
    })
    .await;
    fill(c, "#f-name", "db upgrade").await;
    set_value(c, "#f-starts", "2099-01-01T04:00").await;
    set_value(c, "#f-ends", "2099-01-01T02:00").await;
    click(c, "button[type=submit]").await;
    wait_text(
        c,
        "[data-field-error=ends_at]",
        Duration::from_secs(5),
        |t| t.contains("after starts_at"),
    )
    .await;
    set_value(c, "#f-ends", "2099-01-01T06:00").await;
    click(c, "button[type=submit]").await;
    wait_url(c, Duration::from_secs(5), |u| u.path() == "/maintenance").await;
    // Stored in UTC, 5:30 earlier; shown back as picked.
    wait_text(c, "table.resources", Duration::from_secs(5), |t| {
        t.contains("db upgrade") && t.contains("2098-12-31T22:30:00")
    })
    .await;
    open_first_edit_form(c).await;
    assert_eq!(value_of(c, "#f-starts").await, "2099-01-01T04:00");
    assert_eq!(value_of(c, "#f-ends").await, "2099-01-01T06:00");

    // A status page built through its form, then read logged out.
    c.goto(&format!("{base}/status-pages/new")).await.unwrap();
    fill(c, "#f-name", "Shop status").await;
    fill(c, "#f-slug", "shop").await;
    fill(c, "#f-description", "Checkout and payments").await;
    click(c, &format!("input[name=monitors][value=\"{monitor_id}\"]")).await;
    fill(
        c,
        &format!("input[name=groups][data-monitor=\"{monitor_id}\"]"),
        "Shop",
    )
    .await;
    fill(
        c,
        &format!("input[name=public_names][data-monitor=\"{monitor_id}\"]"),
        "Checkout",
    )
    .await;
    click(c, "button[type=submit]").await;
    wait_url(c, Duration::from_secs(5), |u| u.path() == "/status-pages").await;
    wait_text(c, "table.resources", Duration::from_secs(5), |t| {
        t.contains("Shop status") && t.contains("/status/shop")
    })
    .await;
    // An alert on the tenant's own events, through the monitor form.
    c.goto(&format!("{base}/monitors/new")).await.unwrap();
    c.find(Locator::Css("#f-kind"))
        .await
        .unwrap()
        .select_by_value("event")
        .await
        .unwrap();
    fill(c, "#f-name", "Payments failing").await;
    fill(c, "#f-event-names", "payment_failed").await;
    fill(c, "#f-condition-threshold", "100").await;
    fill(c, "#f-condition-minutes", "5").await;
    fill(c, "#f-interval", "30").await;
    click(c, "button[type=submit]").await;
    wait_url(c, Duration::from_secs(10), |u| {
        u.path().starts_with("/monitors/") && !u.path().ends_with("/new")
    })
    .await;
    wait_text(c, "main", Duration::from_secs(5), |t| {
        t.contains("payment_failed above 100 in 5 min")
    })
    .await;
    screenshot(c, "event-monitor.png").await;
    let here = c.current_url().await.unwrap();
    c.goto(&format!("{}/edit", here.as_str().trim_end_matches('/')))
        .await
        .unwrap();
    wait_url(c, Duration::from_secs(5), |u| u.path().ends_with("/edit")).await;
    assert_eq!(value_of(c, "#f-event-names").await, "payment_failed");
    assert_eq!(value_of(c, "#f-condition-threshold").await, "100");
    assert_eq!(value_of(c, "#f-condition-op").await, "above");
    // The tenant's own events: sent through the API, seen on the Events page, charted, and
    // an alert made from the chart.
    let token: serde_json::Value = http()
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let now = pingtower_engine::now().as_millis();
    let events: Vec<serde_json::Value> = (0..40)
        .map(|i| {
            json!({"name": if i % 4 == 0 { "payment_failed" } else { "order_placed" },
                   "timestamp": now - i * 45_000, "distinct_id": format!("u{}", i % 7),
                   "properties": {"plan": if i % 2 == 0 { "pro" } else { "free" }, "amount": i}})
        })
        .collect();
    let r = http()
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(&token)
        .json(&json!({ "events": events }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    c.goto(&format!(
        "{base}/events?name=order_placed&bucket=minute&range=1h&breakdown=plan"
    ))
    .await
    .unwrap();
    wait_text(c, "[data-events-tail]", Duration::from_secs(5), |t| {
        t.contains("payment_failed") && t.contains("order_placed")
    })
    .await;
    wait_text(c, ".legend", Duration::from_secs(5), |t| {
        t.contains("pro") && t.contains("free")
    })
    .await;
    screenshot(c, "events.png").await;
    // Saved as a bar chart, put on a new dashboard, which redraws as events arrive.
    c.goto(&format!(
        "{base}/events?name=order_placed&bucket=minute&range=1h&breakdown=plan&style=bar"
    ))
    .await
    .unwrap();
    fill(c, "#s-name", "Orders by plan").await;
    click(c, "form[aria-label='Save this chart'] button[type=submit]").await;
    wait_url(c, Duration::from_secs(5), |u| {
        u.path() == "/events/dashboards"
    })
    .await;
    fill(c, "#d-name", "Shop").await;
    click(c, "form[aria-label='New dashboard'] button[type=submit]").await;
    wait_url(c, Duration::from_secs(5), |u| {
        u.path().starts_with("/events/dashboards/")
    })
    .await;
    wait_text(c, ".dash-cell", Duration::from_secs(5), |t| {
        t.contains("Orders by plan") && t.contains("10 in all") && t.contains("20 in all")
    })
    .await;
    let more: Vec<serde_json::Value> = (0..5)
        .map(|i| json!({"name": "order_placed", "timestamp": now - i * 1_000, "properties": {"plan": "pro"}}))
        .collect();
    let r = http()
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(&token)
        .json(&json!({ "events": more }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_text(c, ".dash-cell", Duration::from_secs(15), |t| {
        t.contains("15 in all")
    })
    .await;
    screenshot(c, "dashboard.png").await;
    c.goto(&format!(
        "{base}/events?name=payment_failed&bucket=minute&range=1h"
    ))
    .await
    .unwrap();
    c.find(Locator::LinkText("Create an alert from this chart"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_url(c, Duration::from_secs(5), |u| u.path() == "/monitors/new").await;
    assert_eq!(value_of(c, "#f-kind").await, "event");
    assert_eq!(value_of(c, "#f-event-names").await, "payment_failed");
    click(c, "button[data-logout]").await;
    wait_url(c, Duration::from_secs(5), |u| u.path() == "/login").await;
    c.goto(&format!("{base}/")).await.unwrap();
    wait_url(c, Duration::from_secs(5), |u| u.path() == "/login").await;
    c.goto(&format!("{base}/status/shop")).await.unwrap();
    wait_text(c, "h1", Duration::from_secs(5), |t| t == "Shop status").await;
    wait_text(c, "[data-overall]", Duration::from_secs(5), |t| {
        t == "Some systems are down"
    })
    .await;
    // Under its group, by the name the page gives it.
    wait_text(c, "[data-public-group]", Duration::from_secs(5), |t| {
        t == "Shop"
    })
    .await;
    wait_text(c, "[data-public-monitor]", Duration::from_secs(5), |t| {
        t.contains("Checkout") && !t.contains("Checkout API") && t.contains("Outage")
    })
    .await;
    // It keeps itself current without reloading (here every 5 seconds rather than 30).
    let url = c.current_url().await.unwrap();
    c.goto(&format!("{url}?refresh=5")).await.unwrap();
    c.execute("window.__ptMarker = 42;", vec![]).await.unwrap();
    let first = wait_text(c, "[data-updated]", Duration::from_secs(5), |t| {
        !t.is_empty()
    })
    .await;
    wait_text(c, "[data-updated]", Duration::from_secs(15), |t| t != first).await;
    assert!(
        same_page(c).await,
        "the status page reloaded rather than refreshed"
    );
    screenshot(c, "status-page.png").await;
    let bad = low_contrast(c).await;
    assert!(bad.is_empty(), "low contrast on the status page: {bad:?}");
    // And the same page in the dark theme, to look at.
    c.execute("document.documentElement.dataset.theme = 'dark'", vec![])
        .await
        .unwrap();
    screenshot(c, "status-page-dark.png").await;
    let status_page = c.current_url().await.unwrap().to_string();

    // A phone, 390 px wide: the navigation folds behind a button, and no page is wider than
    // the screen.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/login")).await.unwrap();
    fill(c, "#f-email", EMAIL).await;
    fill(c, "#f-password", PASSWORD).await;
    click(c, "button[type=submit]").await;
    wait_url(c, Duration::from_secs(5), |u| u.path() == "/").await;
    for page in [
        format!("{base}/"),
        format!("{base}/incidents"),
        format!("{base}/settings"),
        format!("{base}/monitors/{monitor_id}"),
        format!("{base}/channels/new"),
        status_page.clone(),
    ] {
        c.goto(&page).await.unwrap();
        assert!(
            !c.current_url().await.unwrap().path().starts_with("/login"),
            "{page} sent to the login page"
        );
        let sizes = c
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth]",
                vec![],
            )
            .await
            .unwrap();
        let (wide, screen) = (sizes[0].as_f64().unwrap(), sizes[1].as_f64().unwrap());
        assert!(screen <= 400.0, "the window is {screen} px wide");
        if wide > screen {
            // Say which elements stick out, innermost first.
            let out = c
                .execute(
                    "return Array.from(document.querySelectorAll('body *')).filter(function (e) { \
                       return e.getBoundingClientRect().right > window.innerWidth + 1 && \
                         !Array.from(e.children).some(function (k) { return k.getBoundingClientRect().right > window.innerWidth + 1; }); \
                     }).slice(0, 5).map(function (e) { return e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right); });",
                    vec![],
                )
                .await
                .unwrap();
            panic!("{page} is {wide} px wide on a {screen} px screen: {out}");
        }
    }
    c.goto(&format!("{base}/")).await.unwrap();
    let nav = c.find(Locator::Css("#main-nav")).await.unwrap();
    assert!(
        !nav.is_displayed().await.unwrap(),
        "the menu is open on a phone"
    );
    let share = c
        .execute(
            "return document.querySelector('header.top').offsetHeight / window.innerHeight",
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(share < 0.15, "the header takes {share:.2} of the screen");
    screenshot(c, "phone.png").await;
    click(c, "button[data-menu-toggle]").await;
    assert!(nav.is_displayed().await.unwrap(), "the menu does not open");
    screenshot(c, "phone-menu.png").await;
    c.set_window_size(1280, 1000).await.unwrap();

    // No serious or critical accessibility problem (axe-core's rules: WCAG 2.1 A and AA) on
    // the pages people use most, in either theme.
    c.goto(&format!("{base}/incidents")).await.unwrap();
    let incident = c
        .find(Locator::Css("[data-incident] a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_default();
    // The check finds what it should: an image without a text alternative is critical.
    c.execute(
        "var i = document.createElement('img'); i.src = '/assets/favicon.svg'; \
         document.querySelector('main').appendChild(i);",
        vec![],
    )
    .await
    .unwrap();
    let found = accessibility_violations(c, "light").await;
    assert!(
        found.iter().any(|v| v.starts_with("image-alt (critical)")),
        "axe-core did not see a missing alt text: {found:?}"
    );
    let mut problems = Vec::new();
    for page in [
        "/".to_owned(),
        format!("/monitors/{monitor_id}"),
        "/monitors/new".to_owned(),
        format!("/monitors/{monitor_id}/edit"),
        "/incidents".to_owned(),
        incident,
        "/channels".to_owned(),
        "/channels/new".to_owned(),
        "/rules/new".to_owned(),
        "/maintenance/new".to_owned(),
        "/status-pages/new".to_owned(),
        "/deliveries".to_owned(),
        "/settings".to_owned(),
        "/events".to_owned(),
        "/api/v1/docs".to_owned(),
        status_page.trim_start_matches(base.as_str()).to_owned(),
    ] {
        c.goto(&format!("{base}{page}")).await.unwrap();
        for theme in ["light", "dark"] {
            for v in accessibility_violations(c, theme).await {
                problems.push(format!("{page} ({theme}): {v}"));
            }
        }
        // Each page as checked (in the dark theme, the last), to look at.
        let name: String = page
            .trim_matches('/')
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
            .take(40)
            .collect();
        screenshot(
            c,
            &format!(
                "page-{}.png",
                if name.is_empty() { "overview" } else { &name }
            ),
        )
        .await;
    }
    assert!(
        problems.is_empty(),
        "accessibility problems:\n{}",
        problems.join("\n")
    );

    Ok(())
}

/// axe-core (from the npm registry; scripts/test.sh installs it) run on the page as it is, in
/// `theme`: each serious or critical violation of WCAG 2.1 A or AA, said in words with where.
async fn accessibility_violations(c: &Client, theme: &str) -> Vec<String> {
    let path = std::env::var("PINGTOWER_TEST_AXE")
        .unwrap_or_else(|_| "/var/tmp/pingtower-axe/node_modules/axe-core/axe.min.js".into());
    let axe = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read axe-core at {path} ({e}); scripts/test.sh installs it")
    });
    c.execute(&axe, vec![]).await.unwrap();
    c.execute(
        "document.documentElement.dataset.theme = arguments[0];",
        vec![json!(theme)],
    )
    .await
    .unwrap();
    let found = c
        .execute_async(
            r#"var done = arguments[arguments.length - 1];
               axe.run(document, {
                 runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
                 resultTypes: ["violations"]
               }).then(function (r) {
                 done(r.violations
                   .filter(function (v) { return v.impact === "serious" || v.impact === "critical"; })
                   .map(function (v) {
                     return v.id + " (" + v.impact + "): " + v.help + " at " +
                       v.nodes.slice(0, 5).map(function (n) {
                         return n.target.join(" ") + (n.failureSummary ? " [" + n.failureSummary.replace(/\s+/g, " ") + "]" : "");
                       }).join("; ");
                   }));
               }, function (e) { done(["axe failed: " + e]); });"#,
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}
