//! The relay's one normalized event, whatever sent it: a kind that picks the template, a summary
//! so that templates need not know any payload's quirks, a correlation key that ties a clear to
//! its trigger, and a dedup key. Each sender's body is read by its own module ([`source`] names
//! them: ThousandEyes classic and custom webhooks, Alertmanager, Grafana, any JSON with a
//! mapping); all of them measure the body first (`shape`).
//!
//! The files, from the ground floor up (each imports only files listed before it; the test
//! `imports` checks that they have no circle):
//! - `error.rs`: why a body is refused, and the limits it is measured against;
//! - `fields.rs`: reading texts, dates and links out of a body;
//! - `normal.rs`: the normalized event and its vocabulary (kind, state, summary, phase, the
//!   source that accepted it, what an accepted body becomes);
//! - `shape.rs`: measuring a body before it is parsed;
//! - `thousandeyes.rs`, `custom.rs`, `alertmanager.rs`, `generic.rs`: one module per source kind;
//! - `group.rs`: the relay's own group notifications, read as events of kind `group`;
//! - `source.rs`: `[sources]`, and reading a body or a stored event with its kind's module;
//! - this file: what the rest of the relay uses.

mod alertmanager;
mod custom;
mod error;
mod fields;
mod generic;
pub mod group;
mod normal;
mod shape;
pub mod source;
mod thousandeyes;

pub use error::{EventError, MAX_DEPTH, MAX_STRING_BYTES, MAX_VALUES};
pub use fields::{is_http_url, parse_date};
pub use normal::{
    Arrival, Correlation, Event, EventKind, Link, MAX_TARGETS, Origin, Phase, SourceKind, State,
    Summary, Target,
};
pub use shape::{Measured, Shape, measure};
pub use source::{Source, SourceConfig, Sources, Unread, WITHOUT_MAP};
