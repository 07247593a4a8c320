//! The normalized event, the vocabulary every other part of `event/` speaks: its kind and state,
//! the summary templates read, where it stands in its alert's life, which source accepted it, and
//! how the store keeps it.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::EventError;
use super::fields::{duration_between, rfc3339};

/// What an event is, which picks its template (`templates/<destination>/<kind>.hbs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "test")]
    Test,
    #[serde(rename = "alert.trigger")]
    AlertTrigger,
    #[serde(rename = "alert.clear")]
    AlertClear,
    #[serde(rename = "agent.trigger")]
    AgentTrigger,
    #[serde(rename = "agent.clear")]
    AgentClear,
    #[serde(rename = "unknown")]
    Unknown,
    /// A group's notification (see `group.rs`): the relay's own, never a sender's.
    #[serde(rename = "group")]
    Group,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        Self::Test,
        Self::AlertTrigger,
        Self::AlertClear,
        Self::AgentTrigger,
        Self::AgentClear,
        Self::Unknown,
        Self::Group,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::AlertTrigger => "alert.trigger",
            Self::AlertClear => "alert.clear",
            Self::AgentTrigger => "agent.trigger",
            Self::AgentClear => "agent.clear",
            Self::Unknown => "unknown",
            Self::Group => "group",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Where an event of this kind stands in its alert's life, if it has one.
    pub fn phase(self) -> Option<Phase> {
        match self {
            Self::AlertTrigger | Self::AgentTrigger => Some(Phase::Trigger),
            Self::AlertClear | Self::AgentClear => Some(Phase::Clear),
            Self::Test | Self::Unknown | Self::Group => None,
        }
    }

    pub(super) fn is_agent(self) -> bool {
        matches!(self, Self::AgentTrigger | Self::AgentClear)
    }

    /// The state a summary of this kind shows.
    pub(super) fn state(self) -> State {
        match self {
            Self::Test => State::Test,
            Self::AlertTrigger | Self::AgentTrigger => State::Triggered,
            Self::AlertClear | Self::AgentClear => State::Cleared,
            Self::Unknown | Self::Group => State::Unknown,
        }
    }
}

/// `summary.state`: what templates branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Triggered,
    Cleared,
    Test,
    #[default]
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Triggered => "triggered",
            Self::Cleared => "cleared",
            Self::Test => "test",
            Self::Unknown => "unknown",
        }
    }
}

/// `summary.targets` lists at most this many agents or monitors (`summary.targets_total` counts
/// them all): no message shows more, and an alert with thousands of agents must not cost thousands
/// of objects in every template context.
pub const MAX_TARGETS: usize = 50;

/// The two ends of an alert's life. A clear and its trigger share a correlation key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Trigger,
    Clear,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Clear => "clear",
        }
    }
}

/// One accepted notification, normalized.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event's id as its sender gives it (ThousandEyes' `eventId`; for Alertmanager the
    /// fingerprint, status and start), shown in answers and logs.
    pub id: String,
    /// The sender's own name for what happened (`eventType`, an Alertmanager `status`, ...).
    pub event_type: String,
    pub kind: EventKind,
    pub received_at: DateTime<Utc>,
    /// Which source accepted it.
    pub source: Origin,
    /// The body as stored, unknown fields included.
    pub raw: Map<String, Value>,
    pub summary: Summary,
}

/// What the store keeps beside a body: the event as its source normalized it, so that a worker
/// needs neither the source's config nor its parser to send it, whatever changed since.
/// Borrowed from the event when written, owned when read back.
#[derive(Debug, Serialize, Deserialize)]
struct Stored<'a> {
    source: Cow<'a, Origin>,
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    event_type: Cow<'a, str>,
    kind: EventKind,
    summary: Cow<'a, Summary>,
}

impl Event {
    /// What ties a clear to its trigger, whatever the source (for ThousandEyes, `alertId`: "unique
    /// per generated alert", so a re-fire starts a new life; for Alertmanager, the fingerprint),
    /// with where this event stands in that life; `None` for events outside any (tests, unknown
    /// types, alerts without an id).
    pub fn lifecycle(&self) -> Option<(&str, Phase)> {
        let key = self.summary.alert_id.as_deref().filter(|k| !k.is_empty())?;
        Some((key, self.kind.phase()?))
    }

    /// `{key, state}` for receivers that tie a clear to its trigger themselves (a Teams flow, a
    /// webhook consumer): the correlation key and `triggered` or `cleared`.
    pub fn correlation(&self) -> Option<Correlation<'_>> {
        let key = match self.kind {
            // A group is one life: its notifications share a key.
            EventKind::Group => self.summary.alert_id.as_deref()?,
            _ => self.lifecycle()?.0,
        };
        Some(Correlation {
            key,
            state: self.summary.state,
        })
    }

    /// The group this notification shows (`group` in templates); `None` for other events.
    pub fn group(&self) -> Option<&Map<String, Value>> {
        (self.kind == EventKind::Group).then_some(&self.raw)
    }

    /// The normalized part of this event, as the store keeps it beside the body.
    pub fn stored_form(&self) -> String {
        serde_json::to_string(&Stored {
            source: Cow::Borrowed(&self.source),
            id: Cow::Borrowed(&self.id),
            event_type: Cow::Borrowed(&self.event_type),
            kind: self.kind,
            summary: Cow::Borrowed(&self.summary),
        })
        .unwrap_or_default()
    }

    /// The event whose normalized form (see [`Event::stored_form`]) the store kept beside
    /// `raw`, its body.
    pub(super) fn from_stored_form(
        normalized: &str,
        raw: Map<String, Value>,
        received_at: DateTime<Utc>,
    ) -> Result<Self, EventError> {
        let stored: Stored = serde_json::from_str(normalized)
            .map_err(|e| EventError::Invalid(format!("its normalized form is unreadable: {e}")))?;
        Ok(Self {
            id: stored.id.into_owned(),
            event_type: stored.event_type.into_owned(),
            kind: stored.kind,
            received_at,
            source: stored.source.into_owned(),
            raw,
            summary: stored.summary.into_owned(),
        })
    }

    /// The event as its normalized form tells it, without its body: what matchers read (a
    /// silence's preview over the events the store keeps).
    pub fn from_normalized(
        normalized: &str,
        received_at: DateTime<Utc>,
    ) -> Result<Self, EventError> {
        Self::from_stored_form(normalized, Map::new(), received_at)
    }

    /// What a stored event is, from its normalized form alone: its kind and title (for a list
    /// of stored events); `None` for events stored before sources existed.
    pub fn stored_outline(normalized: &str) -> Option<(EventKind, String)> {
        let stored: Stored = serde_json::from_str(normalized).ok()?;
        Some((stored.kind, stored.summary.into_owned().title))
    }

    /// The source that accepted a stored event, from its normalized form alone (see
    /// [`Event::stored_form`]): ThousandEyes classic for events stored before sources existed.
    pub fn stored_origin(normalized: Option<&str>) -> Result<Origin, EventError> {
        #[derive(Deserialize)]
        struct Source {
            source: Origin,
        }
        match normalized {
            Some(normalized) => serde_json::from_str::<Source>(normalized)
                .map(|stored| stored.source)
                .map_err(|e| {
                    EventError::Invalid(format!("its normalized form is unreadable: {e}"))
                }),
            None => Ok(Origin::thousandeyes()),
        }
    }
}

/// See [`Event::correlation`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Correlation<'a> {
    pub key: &'a str,
    pub state: State,
}

/// Normalized fields, so templates need not know payload quirks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// `triggered`, `cleared`, `test`, or `unknown` for an event type this relay does not know.
    pub state: State,
    pub title: String,
    pub rule: Option<String>,
    pub expression: Option<String>,
    /// A longer text about the alert (an Alertmanager `description` annotation, a Grafana
    /// message).
    pub description: Option<String>,
    pub severity: Option<String>,
    pub test: Option<String>,
    #[serde(rename = "type")]
    pub alert_type: Option<String>,
    /// The correlation key: `alertId` as text for ThousandEyes (a number or a UUID), the
    /// fingerprint for Alertmanager and Grafana; it ties a clear to its trigger.
    pub alert_id: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// From start to end, for a cleared alert (`"8m 4s"`).
    pub duration: Option<String>,
    /// `active: 2`: the alert cleared because its rule or test was modified or removed.
    pub disabled: bool,
    /// Where the alert is seen in its sender (ThousandEyes, Alertmanager, Grafana): what
    /// messages call "Open in <source.label>".
    pub link: Option<String>,
    /// Other links, each named for what it opens (an Alertmanager alert's `generatorURL`, its
    /// "Source").
    pub links: Vec<Link>,
    /// ThousandEyes test label names (`testLabels`); Alertmanager and Grafana labels as
    /// `name=value`.
    pub labels: Vec<String>,
    /// The first [`MAX_TARGETS`] agents or monitors.
    pub targets: Vec<Target>,
    /// How many there are in all.
    pub targets_total: usize,
}

impl Summary {
    /// Sets when the alert started and ended (RFC 3339), and the duration between them.
    pub(super) fn timed(
        self,
        started: Option<DateTime<Utc>>,
        ended: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            duration: match (&started, &ended) {
                (Some(start), Some(end)) => duration_between(start, end),
                _ => None,
            },
            started_at: started.map(rfc3339),
            ended_at: ended.map(rfc3339),
            ..self
        }
    }
}

/// A link named for what it opens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Link {
    pub title: String,
    pub url: String,
}

/// An agent or BGP monitor that saw the problem.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Target {
    pub name: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub metrics_start: Option<String>,
    pub metrics_end: Option<String>,
    pub link: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    Thousandeyes,
    ThousandeyesCustom,
    Alertmanager,
    Grafana,
    Generic,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thousandeyes => "thousandeyes",
            Self::ThousandeyesCustom => "thousandeyes-custom",
            Self::Alertmanager => "alertmanager",
            Self::Grafana => "grafana",
            Self::Generic => "generic",
        }
    }

    /// What messages call the sender ("Open in ThousandEyes"); a generic source goes by its
    /// name.
    pub(super) fn label(self) -> Option<&'static str> {
        match self {
            Self::Thousandeyes | Self::ThousandeyesCustom => Some("ThousandEyes"),
            Self::Alertmanager => Some("Alertmanager"),
            Self::Grafana => Some("Grafana"),
            Self::Generic => None,
        }
    }

    /// Whether one body holds several alerts (answered with one entry per event).
    pub fn batches(self) -> bool {
        matches!(self, Self::Alertmanager | Self::Grafana)
    }
}

/// Which source accepted an event: its name in the config and its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub name: String,
    pub kind: SourceKind,
}

impl Origin {
    /// What messages call the sender ("Open in ThousandEyes"): the kind's product, or a generic
    /// source's name.
    pub fn label(&self) -> &str {
        self.kind.label().unwrap_or(&self.name)
    }

    /// The source a config without `[sources]` has.
    pub fn thousandeyes() -> Self {
        Self {
            name: "thousandeyes".into(),
            kind: SourceKind::Thousandeyes,
        }
    }
}

/// One event a body holds, as it is accepted: with what dedup compares (each source says what
/// it holds), and the body to store for it when that is not the body as sent (an Alertmanager
/// body holding several alerts is stored once per alert, each copy holding that alert alone).
pub struct Arrival {
    pub event: Event,
    pub key: String,
    pub body: Option<Vec<u8>>,
}
