//! The integration tests, in one binary: each module drives the relay from outside (real HTTP in,
//! recorded requests, real SMTP and a real store out). The figment `Jail` tests of the config
//! loader change the process's environment and run apart, in `tests/config.rs`.

mod browser;
mod common;

mod classify;
mod cli;
mod connections;
mod docs;
mod durable;
mod faults;
mod fuzz;
mod groups;
mod http;
mod imports;
mod jwt;
mod lifecycle;
mod logs;
mod memory;
mod metrics;
mod noise;
mod oauth;
mod relay;
mod reload;
mod replicas;
mod retry;
mod routing;
mod secrets;
mod silences;
mod slack_app;
mod sources;
mod studio;
mod studio_page;
mod templates;
mod tls;
