//! The REST API through the whole router, on a real SQLite store and the in-process bus.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod analytics;
mod harness;
mod matrix;
mod metrics;
mod monitors;
mod oidc;
mod security;
#[path = "../../../pingtower-notify/tests/support/smtp.rs"]
mod smtp_server;
mod stats;
mod web;
