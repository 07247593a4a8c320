//! Parses a ThousandEyes classic webhook body and normalizes it: a kind that picks the template,
//! and a summary so that templates need not know the payload's quirks (renamed event types,
//! numeric or UUID alert ids, three date formats, agents or BGP monitors).

mod shape;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// What an event is, which picks its template (`templates/<destination>/<kind>.hbs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
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
}

/// Why a body was refused; the message goes back to the sender in a 400.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("body is not valid JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("body must be a JSON object")]
    NotObject,
    #[error("body has no string field \"eventType\"")]
    NoEventType,
    #[error("body nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("body has a string longer than {MAX_STRING_BYTES} bytes")]
    StringTooLong,
    #[error("body holds more than {MAX_VALUES} JSON values")]
    TooManyValues,
}

impl EventError {
    /// Whether the body is refused for its size (413) rather than its content (400).
    pub fn too_large(&self) -> bool {
        matches!(self, Self::TooManyValues)
    }
}

pub use shape::{MAX_DEPTH, MAX_STRING_BYTES, MAX_VALUES, Measured, Shape, measure};

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
    /// `eventId` as sent (a number is turned into its decimal text); when absent, `body-` and the
    /// SHA-256 of the body, so that an identical re-post is still recognised as a duplicate, by
    /// this build and every later one.
    pub id: String,
    /// What dedup compares: `eventId` as JSON text, so that `123` and `"123"` are two events, or
    /// the body hash when there is no `eventId`.
    pub key: String,
    /// The raw `eventType`.
    pub event_type: String,
    pub kind: EventKind,
    pub received_at: DateTime<Utc>,
    /// The whole body as sent, unknown fields included.
    pub raw: Map<String, Value>,
    pub summary: Summary,
}

impl Event {
    /// What ties a clear to its trigger, whatever the source (for ThousandEyes, `alertId`: "unique
    /// per generated alert", so a re-fire starts a new life), with where this event stands in
    /// that life; `None` for events outside any (tests, unknown types, alerts without an id).
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
}

/// See [`Event::correlation`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Correlation<'a> {
    pub key: &'a str,
    pub state: &'static str,
}

/// Normalized fields, so templates need not know payload quirks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// `triggered`, `cleared`, `test`, or `unknown` for an event type this relay does not know.
    pub state: &'static str,
    pub title: String,
    pub rule: Option<String>,
    pub expression: Option<String>,
    pub severity: Option<String>,
    pub test: Option<String>,
    #[serde(rename = "type")]
    pub alert_type: Option<String>,
    /// `alertId` as text, whether it came as a number or a UUID; it ties a clear to its trigger.
    pub alert_id: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// From start to end, for a cleared alert (`"8m 4s"`).
    pub duration: Option<String>,
    /// `active: 2`: the alert cleared because its rule or test was modified or removed.
    pub disabled: bool,
    pub link: Option<String>,
    /// Test label names (`testLabels`).
    pub labels: Vec<String>,
    /// The first [`MAX_TARGETS`] agents or monitors.
    pub targets: Vec<Target>,
    /// How many there are in all.
    pub targets_total: usize,
}

/// An agent or BGP monitor that saw the problem.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Target {
    pub name: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub metrics_start: Option<String>,
    pub metrics_end: Option<String>,
    pub link: Option<String>,
}

impl Event {
    /// Parses and normalizes one body (a UTF-8 byte order mark in front is ignored), after
    /// measuring it against the limits of [`Shape`].
    pub fn parse(body: &[u8], received_at: DateTime<Utc>) -> Result<Self, EventError> {
        Self::parse_measured(measure(body)?, received_at)
    }

    /// Parses and normalizes a body already measured.
    pub fn parse_measured(
        measured: Measured<'_>,
        received_at: DateTime<Utc>,
    ) -> Result<Self, EventError> {
        let body = measured.body;
        let value: Value = serde_json::from_slice(body)?;
        let Value::Object(raw) = value else {
            return Err(EventError::NotObject);
        };
        let event_type = raw
            .get("eventType")
            .and_then(Value::as_str)
            .ok_or(EventError::NoEventType)?
            .to_owned();
        let (id, key) = match raw.get("eventId") {
            Some(Value::String(s)) if !s.is_empty() => {
                (s.clone(), Value::from(s.as_str()).to_string())
            }
            Some(Value::Number(n)) => (n.to_string(), n.to_string()),
            _ => {
                let id = format!("body-{}", crate::tls::sha256_hex(body));
                (id.clone(), id)
            }
        };
        let kind = kind_of(&event_type, &raw);
        let summary = summarize(kind, &event_type, &raw);
        Ok(Self {
            id,
            key,
            event_type,
            kind,
            received_at,
            raw,
            summary,
        })
    }

    /// The `alert` object, or `agentAlert` when there is no `alert`.
    pub fn alert(&self) -> Option<&Map<String, Value>> {
        alert_object(&self.raw)
    }
}

fn alert_object(raw: &Map<String, Value>) -> Option<&Map<String, Value>> {
    raw.get("alert")
        .and_then(Value::as_object)
        .or_else(|| raw.get("agentAlert").and_then(Value::as_object))
}

fn kind_of(event_type: &str, raw: &Map<String, Value>) -> EventKind {
    let agent_body = raw.contains_key("agentAlert")
        || raw
            .get("alert")
            .and_then(|a| a.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("agent"));
    match event_type {
        "WEBHOOK_TEST" => EventKind::Test,
        "AGENT_ALERT_NOTIFICATION_TRIGGER" => EventKind::AgentTrigger,
        "AGENT_ALERT_NOTIFICATION_CLEAR" => EventKind::AgentClear,
        "ALERT_NOTIFICATION_TRIGGER" if agent_body => EventKind::AgentTrigger,
        "ALERT_NOTIFICATION_CLEAR" if agent_body => EventKind::AgentClear,
        "ALERT_NOTIFICATION_TRIGGER" => EventKind::AlertTrigger,
        "ALERT_NOTIFICATION_CLEAR" => EventKind::AlertClear,
        _ => EventKind::Unknown,
    }
}

fn summarize(kind: EventKind, event_type: &str, raw: &Map<String, Value>) -> Summary {
    let empty = Map::new();
    let alert = alert_object(raw).unwrap_or(&empty);
    let text = |key: &str| text_field(alert, key);
    let started_at = date_field(alert, "dateStartZoned").or_else(|| date_field(alert, "dateStart"));
    let ended_at = date_field(alert, "dateEndZoned").or_else(|| date_field(alert, "dateEnd"));
    let active = alert.get("active").and_then(Value::as_i64);
    let state = match kind {
        EventKind::Test => "test",
        EventKind::AlertTrigger | EventKind::AgentTrigger => "triggered",
        EventKind::AlertClear | EventKind::AgentClear => "cleared",
        EventKind::Unknown => match active {
            Some(1) => "triggered",
            Some(0 | 2) => "cleared",
            _ => "unknown",
        },
    };
    let targets: Vec<(&Map<String, Value>, &str)> = if kind.is_agent() {
        vec![(alert, "agentName")]
    } else if let Some(agents) = alert.get("agents").and_then(Value::as_array) {
        objects(agents).map(|a| (a, "agentName")).collect()
    } else if let Some(monitors) = alert.get("monitors").and_then(Value::as_array) {
        objects(monitors).map(|m| (m, "monitorName")).collect()
    } else {
        Vec::new()
    };
    let targets_total = targets.len();
    let targets = targets
        .into_iter()
        .take(MAX_TARGETS)
        .map(|(object, name_key)| target(object, name_key))
        .collect();
    let rule = text("ruleName");
    let test = text("testName");
    let title = match (kind, &rule) {
        (EventKind::Test, _) => "ThousandEyes webhook test".to_owned(),
        (_, Some(rule)) if kind.is_agent() => match text("agentName") {
            Some(agent) => format!("{rule}: {agent}"),
            None => rule.clone(),
        },
        (_, Some(rule)) => match &test {
            Some(test) => format!("{rule} on {test}"),
            None => rule.clone(),
        },
        (_, None) => test.clone().unwrap_or_else(|| event_type.to_owned()),
    };
    let duration = match (&started_at, &ended_at) {
        (Some(start), Some(end)) => duration_between(start, end),
        _ => None,
    };
    Summary {
        state,
        title,
        rule,
        expression: text("ruleExpression"),
        severity: text("severity"),
        test,
        alert_type: text("type").or_else(|| kind.is_agent().then(|| "Agent".to_owned())),
        alert_id: text("alertId"),
        started_at: started_at.map(rfc3339),
        ended_at: ended_at.map(rfc3339),
        duration,
        disabled: active == Some(2),
        link: text("permalink").filter(|l| is_http_url(l)),
        labels: alert
            .get("testLabels")
            .and_then(Value::as_array)
            .map(|labels| {
                objects(labels)
                    .filter_map(|l| text_field(l, "name"))
                    .collect()
            })
            .unwrap_or_default(),
        targets_total,
        targets,
    }
}

fn objects(values: &[Value]) -> impl Iterator<Item = &Map<String, Value>> {
    values.iter().filter_map(Value::as_object)
}

fn target(object: &Map<String, Value>, name_key: &str) -> Target {
    let name = text_field(object, name_key)
        .or_else(|| text_field(object, "hostname"))
        .unwrap_or_else(|| "unnamed".to_owned());
    Target {
        name,
        started_at: date_field(object, "dateStartZoned")
            .or_else(|| date_field(object, "dateStart"))
            .map(rfc3339),
        ended_at: date_field(object, "dateEndZoned")
            .or_else(|| date_field(object, "dateEnd"))
            .map(rfc3339),
        metrics_start: text_field(object, "metricsAtStart"),
        metrics_end: text_field(object, "metricsAtEnd"),
        link: text_field(object, "permalink").filter(|l| is_http_url(l)),
    }
}

/// A non-empty string, or a number as its decimal text.
fn text_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key)? {
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
/// name: such times are read as UTC. RFC 3339 is accepted too.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Event {
        Event::parse(value.to_string().as_bytes(), Utc::now()).expect("valid event")
    }

    #[test]
    fn kinds_of_both_agent_eras() {
        let old = parse(
            json!({"eventType": "AGENT_ALERT_NOTIFICATION_TRIGGER", "eventId": "1",
            "agentAlert": {"ruleName": "Offline", "agentName": "a1", "dateStart": 1476987748}}),
        );
        assert_eq!(old.kind, EventKind::AgentTrigger);
        assert_eq!(
            old.summary.started_at.as_deref(),
            Some("2016-10-20T18:22:28Z")
        );
        let renamed = parse(
            json!({"eventType": "ALERT_NOTIFICATION_CLEAR", "eventId": "2",
            "alert": {"type": "Agent", "ruleName": "Offline"}}),
        );
        assert_eq!(renamed.kind, EventKind::AgentClear);
        let other = parse(json!({"eventType": "SOMETHING_NEW", "eventId": 7}));
        assert_eq!((other.kind, other.id.as_str()), (EventKind::Unknown, "7"));
        let text = parse(json!({"eventType": "SOMETHING_NEW", "eventId": "7"}));
        assert_eq!(text.id, other.id, "both show as 7");
        assert_ne!(text.key, other.key, "but they are two events");
    }

    #[test]
    fn bgp_monitors_uuid_alert_ids_and_unknown_fields() {
        let event = parse(
            json!({"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": "b-1",
            "alert": {"alertId": "0b5c6a1e-3b8f-4c9e-9f3a-2d7c1e6b8a90", "ruleName": "BGP reachability",
                "type": "BGP", "myTeam": "netops",
                "monitors": [{"monitorName": "Seattle, WA", "prefix": "10.0.0.0/8",
                    "metricsAtStart": "Reachability: 0%", "dateStart": "2025-01-02 03:04:05"}]}}),
        );
        assert_eq!(event.kind, EventKind::AlertTrigger);
        let s = &event.summary;
        assert_eq!(
            s.alert_id.as_deref(),
            Some("0b5c6a1e-3b8f-4c9e-9f3a-2d7c1e6b8a90")
        );
        assert_eq!(
            (s.targets_total, s.targets[0].name.as_str()),
            (1, "Seattle, WA")
        );
        assert_eq!(
            s.targets[0].started_at.as_deref(),
            Some("2025-01-02T03:04:05Z")
        );
        assert_eq!(event.alert().unwrap()["myTeam"], "netops");
        let numeric =
            parse(json!({"eventType": "ALERT_NOTIFICATION_CLEAR", "alert": {"alertId": 35541}}));
        assert_eq!(numeric.summary.alert_id.as_deref(), Some("35541"));
        assert!(
            numeric.id.starts_with("body-"),
            "no eventId: the id comes from the body"
        );
        // The id of a body without eventId is its SHA-256: the same in every build, since it is
        // kept as a dedup key across restarts and upgrades.
        let stable = Event::parse(br#"{"eventType": "WEBHOOK_TEST"}"#, Utc::now()).unwrap();
        assert_eq!(
            stable.id,
            "body-ccc52e2dafa33b7045ad11cbf29d6fe2e8a5f69297e20a36ff9fcb923547c8a7"
        );
    }

    #[test]
    fn thousands_of_agents_are_counted_and_the_first_ones_listed() {
        let agents: Vec<Value> = (0..3000)
            .map(|i| json!({"agentName": format!("agent {i}")}))
            .collect();
        let event = parse(
            json!({"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": "many",
            "alert": {"ruleName": "R", "agents": agents}}),
        );
        let s = &event.summary;
        assert_eq!((s.targets_total, s.targets.len()), (3000, MAX_TARGETS));
        assert_eq!(
            s.targets[MAX_TARGETS - 1].name,
            format!("agent {}", MAX_TARGETS - 1)
        );
    }

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
    fn rejects_what_is_not_an_event() {
        let now = Utc::now();
        assert!(matches!(
            Event::parse(b"nope", now),
            Err(EventError::NotJson(_))
        ));
        assert!(matches!(
            Event::parse(b"[1]", now),
            Err(EventError::NotObject)
        ));
        assert!(matches!(
            Event::parse(br#"{"eventType": 3}"#, now),
            Err(EventError::NoEventType)
        ));
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert!(matches!(
            Event::parse(deep.as_bytes(), now),
            Err(EventError::TooDeep)
        ));
        let long = format!(
            r#"{{"eventType": "X", "s": "{}"}}"#,
            "a".repeat(MAX_STRING_BYTES + 1)
        );
        assert!(matches!(
            Event::parse(long.as_bytes(), now),
            Err(EventError::StringTooLong)
        ));
    }
}
