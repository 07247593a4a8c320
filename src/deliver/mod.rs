//! Delivery: the [`Destination`] trait, the errors an attempt can end in and whether each is worth
//! retrying, and one file per destination kind, all of the same shape.
//!
//! [`KINDS`] is the registry: a destination kind is its module (its config, its destination, its
//! [`Facts`], and a `KIND` naming them) plus one line there. Everything else (the config loader,
//! the templates, pacing, the workers, the studio) reads the kinds from that table.

mod config;
pub mod console;
pub mod email;
pub mod escape;
pub mod message;
pub mod pace;
pub mod slack;
mod target;
pub mod teams;
pub mod webhook;

use crate::acted::Offer;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::Value;

use crate::error::ConfigError;
use crate::event::Event;
pub use config::{DestinationConfig, Kind, Options, Place};
pub use escape::Escape;
pub use message::{EmailMessage, Message, Part};
pub use pace::{CommonOptions, Pace, RateLimit, limiter};
use target::HttpTarget;
pub use target::{MAX_ANSWER_BYTES, MAX_ANSWER_CHARS, parse_retry_after};

/// Every destination kind, in the order the studio shows them.
pub static KINDS: &[&Kind] = &[
    &slack::KIND,
    &teams::KIND,
    &email::KIND,
    &webhook::KIND,
    &console::KIND,
    #[cfg(test)]
    &tests::pigeon::KIND,
];

/// A destination kind, as written in `kind = "…"` and in template directory names: one entry of
/// [`KINDS`].
#[derive(Clone, Copy)]
pub struct DestinationKind(&'static Kind);

impl DestinationKind {
    /// Every kind of [`KINDS`].
    pub fn all() -> impl Iterator<Item = DestinationKind> {
        KINDS.iter().map(|kind| DestinationKind(kind))
    }

    /// The kind written `name`.
    pub fn named(name: &str) -> Option<DestinationKind> {
        Self::all().find(|kind| kind.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    pub fn facts(self) -> &'static dyn Facts {
        self.0.facts
    }
}

impl PartialEq for DestinationKind {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for DestinationKind {}

impl std::hash::Hash for DestinationKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::fmt::Debug for DestinationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks the destinations' names and pacing: what serde cannot.
pub fn validate_names(
    destinations: &BTreeMap<String, DestinationConfig>,
) -> Result<(), ConfigError> {
    for (name, destination) in destinations {
        if !valid_name(name) {
            return Err(ConfigError::new(
                format!("destinations.{name}"),
                "destination names use lowercase letters, digits and _ only",
            ));
        }
        if destination.common.burst == Some(0) {
            return Err(ConfigError::new(
                format!("destinations.{name}.burst"),
                "must be at least 1",
            ));
        }
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// One place messages go. Implementations send one delivery per call (one rendered message, or
/// for a clear the update and the reply of its trigger's message) and say how it went; retrying
/// and pacing are the worker's job.
pub trait Destination {
    /// What a delivery of `event` sends, given what this destination kept of its trigger's
    /// message (`thread`, for a clear whose trigger it delivered). One new message unless the
    /// kind threads.
    fn steps(&self, _event: &Event, _thread: Option<&Value>) -> Vec<Step> {
        vec![Step::New]
    }

    fn deliver(
        &self,
        outgoing: &Outgoing<'_>,
    ) -> impl Future<Output = Result<Sent, DeliveryError>> + Send;

    /// Asks the peer whether the credentials work, for kinds that can tell (a Slack bot token),
    /// and says who they are; sends no message. `None` when there is nothing to ask.
    fn check_online(&self) -> impl Future<Output = Option<Result<String, DeliveryError>>> + Send {
        async { None }
    }

    /// What an alert's message here offers people to do (buttons), for kinds whose messages can
    /// be acted on and whose config asks for it.
    fn offers(&self) -> &[Offer] {
        &[]
    }
}

/// A future of a destination's, boxed so that destinations of every kind are one type.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Any configured destination, whatever its kind: what [`Destination`] is, as an object.
pub trait AnyDestination: Send + Sync {
    fn steps(&self, event: &Event, thread: Option<&Value>) -> Vec<Step>;

    fn deliver<'a>(&'a self, outgoing: &'a Outgoing<'a>) -> Boxed<'a, Result<Sent, DeliveryError>>;

    fn check_online(&self) -> Boxed<'_, Option<Result<String, DeliveryError>>>;

    fn offers(&self) -> &[Offer];
}

impl<D: Destination + Send + Sync> AnyDestination for D {
    fn steps(&self, event: &Event, thread: Option<&Value>) -> Vec<Step> {
        Destination::steps(self, event, thread)
    }

    fn deliver<'a>(&'a self, outgoing: &'a Outgoing<'a>) -> Boxed<'a, Result<Sent, DeliveryError>> {
        Box::pin(Destination::deliver(self, outgoing))
    }

    fn check_online(&self) -> Boxed<'_, Option<Result<String, DeliveryError>>> {
        Box::pin(Destination::check_online(self))
    }

    fn offers(&self) -> &[Offer] {
        Destination::offers(self)
    }
}

/// How one message of a delivery stands to the earlier messages of the same alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A message of its own: a trigger, a test, a clear whose trigger is not known here.
    New,
    /// Replaces the trigger's message (Slack `chat.update`), which then shows the clear.
    Update,
    /// Answers in the trigger's thread (a Slack thread reply, an email with `In-Reply-To`).
    Reply,
}

/// One delivery, as its destination sends it.
pub struct Outgoing<'a> {
    pub event: &'a Event,
    /// The messages in the order they go, each rendered for its step.
    pub messages: Vec<(Step, Message)>,
    /// What this destination kept of the trigger's message, for a clear (see [`Sent::thread`]).
    pub thread: Option<Value>,
    /// Whether an earlier attempt of this delivery may have reached the destination: a kind that
    /// can look for its message first does.
    pub doubt: Doubt,
}

/// Why a delivery's message may already be at its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doubt {
    /// No earlier attempt: it is not.
    None,
    /// An earlier attempt failed, or its relay died during it (`outbox::Claim::unsure`): it may
    /// be, posted since that attempt.
    Attempted,
    /// The relay stopped during its attempts, and this event came before it started again: it may
    /// be, posted before this start (for all such deliveries, one look back serves).
    Restarted,
}

impl<'a> Outgoing<'a> {
    /// One new message.
    pub fn new(event: &'a Event, message: Message) -> Self {
        Self {
            event,
            messages: vec![(Step::New, message)],
            thread: None,
            doubt: Doubt::None,
        }
    }

    /// The first message: all that kinds which never thread send.
    pub fn first(&self) -> Result<&Message, DeliveryError> {
        self.messages
            .first()
            .map(|(_, message)| message)
            .ok_or_else(|| DeliveryError::Rejected("nothing to send".into()))
    }
}

/// What came of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub receipt: Receipt,
    /// What to keep of a new message so that its alert's clear can update it or answer it (a
    /// Slack channel and `ts`, an email's `Message-ID` and subject); `None` when the destination
    /// does not thread.
    pub thread: Option<Value>,
}

impl From<Receipt> for Sent {
    fn from(receipt: Receipt) -> Self {
        Self {
            receipt,
            thread: None,
        }
    }
}

/// What the peer said when it took the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt(pub String);

/// Why an attempt failed. [`DeliveryError::is_retryable`] decides what happens next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within the delivery timeout")]
    Timeout,
    #[error("HTTP {status}: {answer}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
        answer: String,
    },
    #[error("SMTP: {message}")]
    Smtp { permanent: bool, message: String },
    /// The message cannot be sent as it is (a bad address, a body the destination cannot take).
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    Io(String),
    /// An API that answers errors by name (Slack's Web API: HTTP 200 with `ok: false`).
    #[error("{method}: {code}{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Api {
        method: &'static str,
        code: String,
        retryable: bool,
        /// What the operator can do about it.
        hint: Option<&'static str>,
    },
}

impl DeliveryError {
    /// Connect errors, timeouts, 408, 429 and 5xx may pass; any other answer will not change.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Timeout | Self::Io(_) => true,
            Self::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            Self::Smtp { permanent, .. } => !permanent,
            Self::Api { retryable, .. } => *retryable,
            Self::Rejected(_) => false,
        }
    }

    /// How long the peer asked us to wait (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What a destination kind is, besides where it sends: how its messages are written (the parts,
/// each part's escaping, the built-in templates), what it accepts, what it falls back to, how fast
/// it may be sent to. One implementation per kind, in the kind's own module.
pub trait Facts: Sync {
    /// The parts of a message, each rendered by a template of its own.
    fn parts(&self) -> &'static [Part] {
        &[Part::Body]
    }

    /// How `{{value}}` is escaped in `part`, so that event data stays data there.
    fn escape(&self, part: Part) -> Escape;

    /// The templates built into the binary, by file name (`default.hbs`, `default.subject.hbs`).
    fn builtin(&self) -> &'static [(&'static str, &'static str)];

    /// The message that `texts` (one per part, rendered) make, or why the destination would
    /// refuse it.
    fn message(&self, texts: Vec<String>) -> Result<Message, String>;

    /// A short message built in code, which the destination takes whatever the event holds: the
    /// last resort when the templates fail.
    fn fallback(&self, event: &Event) -> Message;

    /// How fast it may be sent to, unless `rate_limit` says otherwise.
    fn pace(&self) -> Pace;

    /// What `message` is on the wire for `event`, when the kind wraps it (a Teams card in its
    /// envelope): what the studio shows as sent.
    fn sent(&self, _message: &Message, _event: &Event) -> Option<Value> {
        None
    }
}

/// The one rendered text of a JSON kind, parsed.
fn json_body(texts: Vec<String>) -> Result<Value, String> {
    let text = one_part(texts)?;
    serde_json::from_str(&text).map_err(not_json)
}

/// The one rendered text of a JSON kind, checked to be one JSON value and kept as written.
fn json_text(texts: Vec<String>) -> Result<String, String> {
    let text = one_part(texts)?;
    serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(not_json)?;
    Ok(text)
}

fn one_part(texts: Vec<String>) -> Result<String, String> {
    let [text] = <[String; 1]>::try_from(texts).map_err(|_| "one part expected".to_owned())?;
    Ok(text)
}

fn not_json(e: serde_json::Error) -> String {
    format!("not valid JSON: {e}")
}

/// Long enough for any rule and test name, short enough for every destination's limits.
const MAX_TITLE_CHARS: usize = 140;

/// What every fallback message says: `[STATE] title`, the title cut to what every kind takes.
pub(crate) fn headline(event: &Event) -> String {
    let s = &event.summary;
    let title: String = s.title.chars().take(MAX_TITLE_CHARS).collect();
    format!("[{}] {title}", s.state.as_str().to_uppercase())
}

#[cfg(test)]
mod tests {
    pub mod pigeon;

    use super::*;

    #[test]
    fn destination_names() {
        assert!(valid_name("ops_slack2"));
        assert!(!valid_name("Ops"));
        assert!(!valid_name("ops-slack"));
        assert!(!valid_name(""));
    }
}
