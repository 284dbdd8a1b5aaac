//! A real SMTP server on loopback for tests: aiosmtpd, which `scripts/test.sh` installs into its
//! Python environment (`PINGTOWER_TEST_PYTHON` names that Python). Shared by the notifier's
//! and the API's tests (included with `#[path]`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Smtp {
    child: Child,
    pub port: u16,
    lines: mpsc::Receiver<String>,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("PINGTOWER_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Starts aiosmtpd on a free loopback port, printing every message it receives.
pub fn smtp(extra: &[&str]) -> Smtp {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(python())
        .args([
            "-u",
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-c", "aiosmtpd.handlers.Debugging"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} -m aiosmtpd: {e} (run scripts/test.sh, which installs it)",
                python()
            )
        });
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Smtp { child, port, lines };
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("aiosmtpd exited with {status}: {err} (scripts/test.sh installs it)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("aiosmtpd did not listen on {port}");
}

impl Smtp {
    /// The next message the server printed, as text.
    pub fn message(&self) -> String {
        let mut text = String::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .expect("a message at the SMTP server");
            if line.contains("END MESSAGE") {
                return text;
            }
            text.push_str(&line);
            text.push('\n');
        }
    }
}
