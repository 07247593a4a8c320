//! alert-relay receives alert webhooks (ThousandEyes, Alertmanager, Grafana, any JSON), renders
//! each event through Handlebars templates chosen per event kind and per destination, and delivers
//! the result to Slack, Microsoft Teams, email, generic webhooks and the console.
//!
//! Data flows one way: the server accepts a request, `event` normalizes it, `route` picks the
//! destinations, the `outbox` keeps one delivery per destination, and one `worker` per destination
//! renders each delivery at send time and hands it to its `deliver` implementation, retrying what
//! can be retried.
//!
//! # Layout
//! Listed from the ground floor up: a module imports only modules listed before it (and the
//! integration test `imports` checks that the imports have no circle).
//! - [`error`]: `ConfigError`, what every component's config check returns.
//! - [`secret`]: a string that never prints itself (webhook URLs, passwords, tokens).
//! - [`tls`]: the one crypto provider (aws-lc-rs), passed to every TLS configuration; `[server.tls]`.
//! - [`http`]: the HTTP client the relay sends with, and how much of an answer it reads; what the
//!   relay's servers take (a request whose body is read, bounded, in one place) and give.
//! - [`memory`]: the budget that bounds what bodies and parsed events hold in memory at once.
//! - [`testing`]: support for the tests (a fresh PostgreSQL database); the relay does not use it.
//! - [`metrics`]: Prometheus metrics served at `/metrics`.
//! - [`logs`]: `[log]` and the log output (text on a terminal, JSON lines otherwise).
//! - [`event`]: `[sources]` and the one normalized event: each source kind's module
//!   (ThousandEyes classic and custom webhooks, Alertmanager and Grafana, generic JSON) measures
//!   a body against the limits and turns it into events with a kind, a summary, a correlation key
//!   and a dedup key.
//! - [`samples`]: the sample events of every source kind bundled for `check` and the studio.
//! - [`route`]: `[[routes]]`: which destinations receive an event; the fields of an event that
//!   matchers and groups read (`route/matcher`).
//! - [`outbox`]: the store: accepted events and one delivery per destination until each is done,
//!   each delivery's fate decided in one place (`outbox/disposition`: sent, held, silenced,
//!   flapped or grouped); SQLite (`outbox/sqlite`) or PostgreSQL (`outbox/postgres`) behind one
//!   interface; what the OAuth server keeps; silences, groups and their alerts.
//! - [`noise`]: noise control: silences (kept in the store), maintenance windows, what a group
//!   notification shows, and the task that applies silences, makes the groups' notifications
//!   when their time comes and sends what ended silences held.
//! - [`acted`]: what people did from an alert's message (Acknowledge, Silence), as templates see
//!   it: the buttons a message offers and where the alert stands.
//! - [`auth`]: who may post: Basic, Bearer and JWT credentials, the source allowlist, and the
//!   relay's own OAuth authorization server for ThousandEyes (`auth/oauth`), whose tokens the
//!   store knows.
//! - [`deliver`]: the destination kinds, one module each, with everything a kind is (its config,
//!   sending, escaping, built-in templates, validation, fallback message, pace) behind the
//!   `Destination` and `Facts` traits, registered by one line in `KINDS`; the message, escaping,
//!   pacing and shared options they all have.
//! - [`render`]: templates: lookup, the Handlebars registries and helpers, the context; the kind
//!   facts decide escaping, validation and fallback.
//! - [`relay`]: the relay's state: everything one config describes, and the one in force.
//! - [`slack_app`]: `[slack_app]`: the clicks on the buttons of the relay's Slack messages, by
//!   Socket Mode or a signed Request URL, kept once and acted on.
//! - [`server`]: the one front door every listener goes through (`serve` with a `Handler`: which
//!   connections hold a slot and for how long, each request's head checked before hyper reads it,
//!   JSON refusals), and the ingest listener's handler: each source's path, the OAuth endpoints,
//!   health, metrics.
//! - [`worker`]: one loop per destination: claim, render, deliver, record; the destination's
//!   health (pause, probe, backoff); the pool of workers.
//! - [`studio`]: the template studio, a handler on a listener of its own: edit a template in the
//!   browser and see every destination kind's message for an event, checked as the relay checks
//!   it; the silences API and page.
//! - [`config`]: the one config loader (defaults < file < `ALERT_RELAY_` env), its validation, and
//!   the relay a config describes.
//! - [`reload`]: SIGHUP and file changes load the config and templates again.
//! - [`app`]: start-up: runs the server, the workers, the reloader and the pruning.

pub mod acted;
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
pub mod noise;
pub mod outbox;
pub mod relay;
pub mod reload;
pub mod render;
pub mod route;
pub mod samples;
pub mod secret;
pub mod server;
pub mod slack_app;
pub mod studio;
#[doc(hidden)]
pub mod testing;
pub mod tls;
pub mod worker;

pub use app::run;
pub use relay::Relay;
