//! The relay's one normalized event, whatever sent it: a kind that picks the template, a summary
//! so that templates need not know any payload's quirks, a correlation key that ties a clear to
//! its trigger, and a dedup key. Each sender's body is read by its own module ([`source`] names
//! them: ThousandEyes classic and custom webhooks, Alertmanager, Grafana, any JSON with a
//! mapping); all of them measure the body first (`shape`).

mod alertmanager;
mod custom;
mod generic;
mod shape;
pub mod source;
mod thousandeyes;

use std::borrow::Cow;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use shape::{MAX_DEPTH, MAX_STRING_BYTES, MAX_VALUES, Measured, Shape, measure};
pub use source::{Arrival, Origin, Source, SourceConfig, SourceKind, Sources};

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
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        Self::Test,
        Self::AlertTrigger,
        Self::AlertClear,
        Self::AgentTrigger,
        Self::AgentClear,
        Self::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::AlertTrigger => "alert.trigger",
            Self::AlertClear => "alert.clear",
            Self::AgentTrigger => "agent.trigger",
            Self::AgentClear => "agent.clear",
            Self::Unknown => "unknown",
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
            Self::Test | Self::Unknown => None,
        }
    }

    fn is_agent(self) -> bool {
        matches!(self, Self::AgentTrigger | Self::AgentClear)
    }

    /// The state a summary of this kind shows.
    fn state(self) -> State {
        match self {
            Self::Test => State::Test,
            Self::AlertTrigger | Self::AgentTrigger => State::Triggered,
            Self::AlertClear | Self::AgentClear => State::Cleared,
            Self::Unknown => State::Unknown,
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

/// Why a body was refused; the message goes back to the sender in a 400.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("body is not valid JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("body must be a JSON object")]
    NotObject,
    #[error(
        "body has no string field \"eventType\": not a ThousandEyes classic webhook (other senders need a [sources] entry of their kind)"
    )]
    NoEventType,
    #[error("body nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("body has a string longer than {MAX_STRING_BYTES} bytes")]
    StringTooLong,
    #[error("body holds more than {MAX_VALUES} JSON values")]
    TooManyValues,
    /// The body is JSON but not what its source sends: the message names what is wrong.
    #[error("{0}")]
    Invalid(String),
}

impl EventError {
    /// Whether the body is refused for its size (413) rather than its content (400).
    pub fn too_large(&self) -> bool {
        matches!(self, Self::TooManyValues)
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
        let (key, _) = self.lifecycle()?;
        Some(Correlation {
            key,
            state: self.summary.state,
        })
    }

    /// Parses a ThousandEyes classic webhook body (a UTF-8 byte order mark in front is ignored),
    /// after measuring it against the limits of [`Shape`].
    pub fn parse(body: &[u8], received_at: DateTime<Utc>) -> Result<Self, EventError> {
        let measured = measure(body)?;
        let raw = object(measured.body)?;
        thousandeyes::arrival(raw, measured.body, &Origin::thousandeyes(), received_at)
            .map(|arrival| arrival.event)
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

    /// The event the store kept: the body as stored and, beside it, its normalized form (see
    /// [`Event::stored_form`]). Events stored before sources existed have none and are
    /// ThousandEyes classic bodies.
    pub fn from_store(
        measured: Measured<'_>,
        normalized: Option<&str>,
        received_at: DateTime<Utc>,
    ) -> Result<Self, EventError> {
        let raw = object(measured.body)?;
        let Some(normalized) = normalized else {
            return thousandeyes::arrival(raw, measured.body, &Origin::thousandeyes(), received_at)
                .map(|arrival| arrival.event);
        };
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

    /// The object a template calls `alert`: ThousandEyes' `alert` (or `agentAlert`), the one
    /// Alertmanager or Grafana alert, nothing for a generic body.
    pub fn alert(&self) -> Option<&Map<String, Value>> {
        match self.source.kind {
            SourceKind::Thousandeyes => thousandeyes::alert_object(&self.raw),
            SourceKind::ThousandeyesCustom => self.raw.get("alert").and_then(Value::as_object),
            SourceKind::Alertmanager | SourceKind::Grafana => alertmanager::alert(&self.raw),
            SourceKind::Generic => None,
        }
    }
}

/// Parses a measured body into a JSON object.
fn object(body: &[u8]) -> Result<Map<String, Value>, EventError> {
    match serde_json::from_slice(body)? {
        Value::Object(raw) => Ok(raw),
        _ => Err(EventError::NotObject),
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
    fn timed(self, started: Option<DateTime<Utc>>, ended: Option<DateTime<Utc>>) -> Self {
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

/// A non-empty string, or a number as its decimal text.
fn text_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    text_value(object.get(key)?)
}

/// A non-empty string, or a number as its decimal text.
fn text_value(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn date_field(object: &Map<String, Value>, key: &str) -> Option<DateTime<Utc>> {
    parse_date(object.get(key)?)
}

/// ThousandEyes dates: epoch seconds (old agent notifications), `"YYYY-MM-DD hh:mm:ss ZONE"`
/// (`*Zoned` fields) or `"YYYY-MM-DD hh:mm:ss"` in the account's zone, which the body does not
/// name: such times are read as UTC. RFC 3339 (Alertmanager, Grafana) is accepted too.
pub fn parse_date(value: &Value) -> Option<DateTime<Utc>> {
    if let Some(secs) = value.as_i64() {
        return Utc.timestamp_opt(secs, 0).single();
    }
    let text = value.as_str()?.trim();
    if let Ok(date) = DateTime::parse_from_rfc3339(text) {
        return Some(date.with_timezone(&Utc));
    }
    if let Some(naive) = parse_local(text) {
        return Some(naive.and_utc());
    }
    let (local, zone) = text.rsplit_once(' ')?;
    let naive = parse_local(local)?;
    if matches!(zone, "UTC" | "GMT" | "Z") {
        return Some(naive.and_utc());
    }
    if let Ok(tz) = zone.parse::<chrono_tz::Tz>() {
        return tz
            .from_local_datetime(&naive)
            .earliest()
            .map(|d| d.with_timezone(&Utc));
    }
    let offset =
        DateTime::parse_from_str(&format!("{local} {zone}"), "%Y-%m-%d %H:%M:%S %z").ok()?;
    Some(offset.with_timezone(&Utc))
}

/// `YYYY-MM-DD hh:mm:ss`, the one local format ThousandEyes sends (read by hand: this runs for
/// every date of every event, and chrono's format parser is several times slower).
fn parse_local(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    chrono::NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?
        .and_hms_opt(number(11..13)?, number(14..16)?, number(17..19)?)
}

fn rfc3339(date: DateTime<Utc>) -> String {
    date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// How long from `start` to `end`, in its two largest units, enough to read at a glance: `8m 4s`,
/// `113d 13h`, `1h`; `0s` for no time at all.
fn duration_between(start: &DateTime<Utc>, end: &DateTime<Utc>) -> Option<String> {
    let mut rest = u64::try_from((*end - *start).num_seconds()).ok()?;
    let mut parts = Vec::new();
    for (size, unit) in [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")] {
        let count = rest / size;
        rest %= size;
        if count > 0 && parts.len() < 2 {
            parts.push(format!("{count}{unit}"));
        }
    }
    Some(if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    })
}

/// Only http(s) links are offered to templates as links: an `http://` or `https://` prefix, a
/// host, and no whitespace or control character anywhere.
pub fn is_http_url(text: &str) -> bool {
    let lower = |n: usize| text.get(..n).map(str::to_ascii_lowercase);
    let rest = if lower(8).as_deref() == Some("https://") {
        &text[8..]
    } else if lower(7).as_deref() == Some("http://") {
        &text[7..]
    } else {
        return false;
    };
    !rest.is_empty()
        && !rest.starts_with('/')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The `body-` id of a body that carries none: its SHA-256, the same in every build, since it is
/// kept as a dedup key across restarts and upgrades.
fn body_id(body: &[u8]) -> String {
    format!("body-{}", crate::tls::sha256_hex(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_at_a_glance() {
        let at = |s: &str| parse_date(&json!(s)).unwrap();
        let d = |a: &str, b: &str| duration_between(&at(a), &at(b));
        assert_eq!(
            d("2014-08-24 01:01:47", "2014-08-24 01:09:51").as_deref(),
            Some("8m 4s")
        );
        assert_eq!(
            d("2016-06-29 04:46:14", "2016-10-20 18:22:28").as_deref(),
            Some("113d 13h")
        );
        assert_eq!(
            d("2016-06-29 04:46:14", "2016-06-29 05:46:14").as_deref(),
            Some("1h")
        );
        assert_eq!(d("2016-06-29 04:46:14", "2016-06-29 04:00:00"), None);
        assert_eq!(
            d("2016-06-29 04:46:14", "2016-06-30 04:51:14").as_deref(),
            Some("1d 5m")
        );
        assert_eq!(
            d("2016-06-29 04:46:14", "2016-06-29 04:46:14").as_deref(),
            Some("0s")
        );
    }

    #[test]
    fn dates_in_every_form() {
        let utc = |s: &str| parse_date(&json!(s)).map(rfc3339);
        assert_eq!(
            utc("2025-03-17 19:43:00 UTC").as_deref(),
            Some("2025-03-17T19:43:00Z")
        );
        assert_eq!(
            utc("2025-03-17 19:43:00").as_deref(),
            Some("2025-03-17T19:43:00Z")
        );
        assert_eq!(
            utc("2025-03-17 19:43:00 Europe/Paris").as_deref(),
            Some("2025-03-17T18:43:00Z")
        );
        assert_eq!(
            utc("2025-03-17 19:43:00 +0200").as_deref(),
            Some("2025-03-17T17:43:00Z")
        );
        assert_eq!(
            utc("2025-03-17T19:43:00.123+01:00").as_deref(),
            Some("2025-03-17T18:43:00Z")
        );
        assert_eq!(utc("yesterday"), None);
        assert_eq!(utc("2025-13-17 19:43:00"), None);
        assert_eq!(utc("2025-03-17 19:43:0x"), None);
    }

    #[test]
    fn only_http_links_are_links() {
        assert!(is_http_url(
            "https://app.thousandeyes.com/alerts/list?__a=11&alertId=1"
        ));
        assert!(is_http_url("HTTP://example.com"));
        for not_a_link in [
            "javascript:alert(1)",
            "https://",
            "https:///x",
            "ftp://x",
            "https://a b",
            "http://x\n",
        ] {
            assert!(!is_http_url(not_a_link), "{not_a_link}");
        }
    }

    #[test]
    fn the_stored_form_gives_back_the_event() {
        let body = br#"{"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": "e1",
            "alert": {"alertId": 7, "ruleName": "R", "testName": "T"}}"#;
        let event = Event::parse(body, Utc::now()).unwrap();
        let back = Event::from_store(
            measure(body).unwrap(),
            Some(&event.stored_form()),
            event.received_at,
        )
        .unwrap();
        assert_eq!(
            (back.id.as_str(), back.kind, back.summary.title.as_str()),
            ("e1", EventKind::AlertTrigger, "R on T")
        );
        assert_eq!(back.lifecycle(), Some(("7", Phase::Trigger)));
        let legacy = Event::from_store(measure(body).unwrap(), None, Utc::now()).unwrap();
        assert_eq!(legacy.summary.title, "R on T", "rows stored before sources");
        let mut elsewhere = Event::parse(body, Utc::now()).unwrap();
        elsewhere.source.name = "prom".into();
        elsewhere.source.kind = SourceKind::Alertmanager;
        let origin = Event::stored_origin(Some(&elsewhere.stored_form())).unwrap();
        assert_eq!(
            (origin.name.as_str(), origin.kind),
            ("prom", SourceKind::Alertmanager)
        );
        assert_eq!(
            Event::stored_origin(None).unwrap().kind,
            SourceKind::Thousandeyes
        );
        assert!(Event::stored_origin(Some("{}")).is_err());
    }
}
