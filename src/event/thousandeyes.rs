//! ThousandEyes classic webhooks: `eventType`, `eventId` and an `alert` (or, in old agent
//! notifications, `agentAlert`) object, with renamed event types, numeric or UUID alert ids,
//! three date formats, and agents or BGP monitors.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::error::EventError;
use super::fields::{body_id, date_field, is_http_url, rfc3339, text_field};
use super::normal::{Arrival, Event, EventKind, MAX_TARGETS, Origin, State, Summary, Target};

/// Normalizes one classic body. Its dedup key is `eventId` as JSON text, so that `123` and
/// `"123"` are two events, or the body hash when there is no `eventId`.
pub(super) fn arrival(
    raw: Map<String, Value>,
    body: &[u8],
    origin: &Origin,
    received_at: DateTime<Utc>,
) -> Result<Arrival, EventError> {
    let event_type = raw
        .get("eventType")
        .and_then(Value::as_str)
        .ok_or(EventError::NoEventType)?
        .to_owned();
    let (id, key) = match raw.get("eventId") {
        Some(Value::String(s)) if !s.is_empty() => (s.clone(), Value::from(s.as_str()).to_string()),
        Some(Value::Number(n)) => (n.to_string(), n.to_string()),
        _ => {
            let id = body_id(body);
            (id.clone(), id)
        }
    };
    let kind = kind_of(&event_type, &raw);
    let summary = summarize(kind, &event_type, &raw);
    Ok(Arrival {
        event: Event {
            id,
            event_type,
            kind,
            received_at,
            source: origin.clone(),
            raw,
            summary,
        },
        key,
        body: None,
    })
}

pub(super) fn alert_object(raw: &Map<String, Value>) -> Option<&Map<String, Value>> {
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
    let state = match (kind, active) {
        (EventKind::Unknown, Some(1)) => State::Triggered,
        (EventKind::Unknown, Some(0 | 2)) => State::Cleared,
        _ => kind.state(),
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
    Summary {
        state,
        title,
        rule,
        expression: text("ruleExpression"),
        description: None,
        severity: text("severity"),
        test,
        alert_type: text("type").or_else(|| kind.is_agent().then(|| "Agent".to_owned())),
        alert_id: text("alertId"),
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
        ..Summary::default()
    }
    .timed(started_at, ended_at)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MAX_STRING_BYTES;
    use serde_json::json;

    fn parse(value: Value) -> Event {
        Event::parse(value.to_string().as_bytes(), Utc::now()).expect("valid event")
    }

    /// The dedup key `value` is accepted under.
    fn key(value: Value) -> String {
        let body = value.to_string();
        let Value::Object(raw) = value else {
            panic!("an object")
        };
        arrival(raw, body.as_bytes(), &Origin::thousandeyes(), Utc::now())
            .expect("valid event")
            .key
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
        assert_ne!(
            key(json!({"eventType": "SOMETHING_NEW", "eventId": "7"})),
            key(json!({"eventType": "SOMETHING_NEW", "eventId": 7})),
            "but they are two events"
        );
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
