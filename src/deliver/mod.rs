//! Delivery: the [`Destination`] trait, the errors an attempt can end in and whether each is worth
//! retrying, and one file per destination kind, all of the same shape.

pub mod console;
pub mod email;
pub mod escape;
pub mod message;
pub mod pace;
pub mod slack;
mod target;
pub mod teams;
pub mod webhook;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::error::ConfigError;
use crate::event::Event;
use console::ConsoleConfig;
use email::EmailConfig;
pub use escape::Escape;
pub use message::{EmailMessage, Message, Part};
pub use pace::{CommonOptions, Pace, RateLimit, limiter};
use slack::SlackConfig;
use target::HttpTarget;
pub use target::{MAX_ANSWER_BYTES, MAX_ANSWER_CHARS, parse_retry_after};
use teams::TeamsConfig;
use webhook::WebhookConfig;

/// One `[destinations.NAME]` table; `kind` picks the variant and the keys it accepts.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DestinationConfig {
    Slack(SlackConfig),
    Teams(TeamsConfig),
    Email(EmailConfig),
    Webhook(WebhookConfig),
    Console(ConsoleConfig),
}

/// The destination kinds, as written in `kind = "…"` and in template directory names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DestinationKind {
    Slack,
    Teams,
    Email,
    Webhook,
    Console,
}

impl DestinationKind {
    pub const ALL: [DestinationKind; 5] = [
        Self::Slack,
        Self::Teams,
        Self::Email,
        Self::Webhook,
        Self::Console,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Teams => "teams",
            Self::Email => "email",
            Self::Webhook => "webhook",
            Self::Console => "console",
        }
    }
}

impl DestinationConfig {
    pub fn kind(&self) -> DestinationKind {
        match self {
            Self::Slack(_) => DestinationKind::Slack,
            Self::Teams(_) => DestinationKind::Teams,
            Self::Email(_) => DestinationKind::Email,
            Self::Webhook(_) => DestinationKind::Webhook,
            Self::Console(_) => DestinationKind::Console,
        }
    }

    pub fn common(&self) -> CommonOptions {
        match self {
            Self::Slack(c) => c.common(),
            Self::Teams(c) => c.common(),
            Self::Email(c) => c.common(),
            Self::Webhook(c) => c.common(),
            Self::Console(c) => c.common(),
        }
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
        if destination.common().burst == Some(0) {
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
}

impl<'a> Outgoing<'a> {
    /// One new message.
    pub fn new(event: &'a Event, message: Message) -> Self {
        Self {
            event,
            messages: vec![(Step::New, message)],
            thread: None,
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
}

impl DestinationKind {
    pub fn facts(self) -> &'static dyn Facts {
        match self {
            Self::Slack => &slack::FACTS,
            Self::Teams => &teams::FACTS,
            Self::Email => &email::FACTS,
            Self::Webhook => &webhook::FACTS,
            Self::Console => &console::FACTS,
        }
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
fn headline(event: &Event) -> String {
    let s = &event.summary;
    let title: String = s.title.chars().take(MAX_TITLE_CHARS).collect();
    format!("[{}] {title}", s.state.as_str().to_uppercase())
}

/// Every configured destination, one variant per kind.
pub enum AnyDestination {
    Slack(slack::Slack),
    Teams(teams::Teams),
    Email(email::Email),
    Webhook(webhook::Webhook),
    Console(console::Console),
}

impl AnyDestination {
    /// Builds the destination called `name`; secrets given as files are read here.
    pub fn build(
        name: &str,
        config: &DestinationConfig,
        base_dir: &Path,
        http: &reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let key = format!("destinations.{name}");
        Ok(match config {
            DestinationConfig::Slack(c) => Self::Slack(slack::Slack::new(&key, c, base_dir, http)?),
            DestinationConfig::Teams(c) => Self::Teams(teams::Teams::new(&key, c, base_dir, http)?),
            DestinationConfig::Email(c) => Self::Email(email::Email::new(&key, name, c, base_dir)?),
            DestinationConfig::Webhook(c) => {
                Self::Webhook(webhook::Webhook::new(&key, c, base_dir, http)?)
            }
            DestinationConfig::Console(c) => Self::Console(console::Console::new(c)),
        })
    }
}

impl AnyDestination {
    /// Asks the peer whether the credentials work, for destinations that can tell (a Slack bot
    /// token); says who they are. Sends no message.
    pub async fn check_online(&self) -> Option<Result<String, DeliveryError>> {
        match self {
            Self::Slack(d) => Some(
                d.auth_test()
                    .await?
                    .map(|who| format!("Slack token is {who}")),
            ),
            Self::Teams(_) | Self::Email(_) | Self::Webhook(_) | Self::Console(_) => None,
        }
    }
}

impl Destination for AnyDestination {
    fn steps(&self, event: &Event, thread: Option<&Value>) -> Vec<Step> {
        match self {
            Self::Slack(d) => d.steps(event, thread),
            Self::Teams(d) => d.steps(event, thread),
            Self::Email(d) => d.steps(event, thread),
            Self::Webhook(d) => d.steps(event, thread),
            Self::Console(d) => d.steps(event, thread),
        }
    }

    async fn deliver(&self, outgoing: &Outgoing<'_>) -> Result<Sent, DeliveryError> {
        match self {
            Self::Slack(d) => d.deliver(outgoing).await,
            Self::Teams(d) => d.deliver(outgoing).await,
            Self::Email(d) => d.deliver(outgoing).await,
            Self::Webhook(d) => d.deliver(outgoing).await,
            Self::Console(d) => d.deliver(outgoing).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_names() {
        assert!(valid_name("ops_slack2"));
        assert!(!valid_name("Ops"));
        assert!(!valid_name("ops-slack"));
        assert!(!valid_name(""));
    }
}
