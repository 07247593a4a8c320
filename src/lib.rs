//! alert-relay receives alert webhooks (ThousandEyes first), renders each event through Handlebars
//! templates chosen per event kind and per destination, and delivers the result to Slack,
//! Microsoft Teams, email, generic webhooks and the console.
//!
//! Data flows one way: the server accepts a request, `event` normalizes it, `route` picks the
//! destinations, the `outbox` keeps one delivery per destination, and one `worker` per destination
//! renders each delivery at send time and hands it to its `deliver` implementation, retrying what
//! can be retried.
//!
//! # Layout
//! - [`error`]: `ConfigError`, what every component's config check returns.
//! - [`config`]: the one config loader (defaults < file < `ALERT_RELAY_` env) and its validation.
//! - [`logs`]: `[log]` and the log output (text on a terminal, JSON lines otherwise).
//! - [`secret`]: a string that never prints itself (webhook URLs, passwords, tokens).
//! - [`tls`]: the one crypto provider (aws-lc-rs), passed to every TLS configuration; `[server.tls]`.
//! - [`http`]: the HTTP client the relay sends with, and how much of an answer it reads.
//! - [`server`]: the hyper HTTP server: ingest endpoint, health, metrics, JSON errors; which
//!   connections hold a slot and for how long.
//! - [`auth`]: Basic and Bearer credentials and the source allowlist for the ingest path.
//! - [`event`]: measures a ThousandEyes body against the limits, parses it and normalizes it into a
//!   kind and a summary.
//! - [`route`]: `[[routes]]` matching: which destinations receive an event.
//! - [`outbox`]: holds accepted events and one delivery per destination until they are done.
//! - [`worker`]: one loop per destination: claim, render, deliver, schedule the retry.
//! - [`render`]: templates, per-output escaping, helpers, validation and the fallback.
//! - [`deliver`]: the `Destination` trait and one file per destination kind.
//! - [`memory`]: the budget that bounds what bodies and parsed events hold in memory at once.
//! - [`metrics`]: Prometheus counters served at `/metrics`.
//! - [`samples`]: the ThousandEyes sample events bundled for `check`.
//! - [`relay`]: wires the stages together; the relay in force, swapped on reload.
//! - [`reload`]: SIGHUP and file changes load the config and templates again.

pub mod app;
pub mod auth;
pub mod config;
pub mod deliver;
pub mod error;
pub mod event;
pub mod http;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod outbox;
pub mod relay;
pub mod reload;
pub mod render;
pub mod route;
pub mod samples;
pub mod secret;
pub mod server;
pub mod tls;
pub mod worker;

pub use app::run;
pub use relay::Relay;
