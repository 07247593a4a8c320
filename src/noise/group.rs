//! Groups: a route's `group_by` puts the alerts that share those fields' values into one group
//! per destination, sent as group notifications (the first after `group_wait`, changes at most
//! every `group_interval`, at once when every alert has cleared) instead of a message per event.
//! Here: which group an alert joins and what the notifications show of it. The store keeps the
//! groups and their alerts.

use serde_json::{Value, json};

use crate::event::Event;
use crate::outbox::Joining;
use crate::route::Grouping;

/// The group `grouping` puts `event` into at a destination, and what its notifications show of
/// this alert.
pub fn joining(grouping: &Grouping, event: &Event) -> Joining {
    let labels = grouping.labels(event);
    let key = (labels.iter())
        .map(|(field, value)| format!("{field}={value}"))
        .collect::<Vec<_>>()
        .join(", ");
    let labels: serde_json::Map<String, Value> = labels
        .into_iter()
        .map(|(field, value)| (field, Value::String(value)))
        .collect();
    Joining {
        key,
        labels: Value::Object(labels).to_string(),
        wait_ms: millis(grouping.wait),
        interval_ms: millis(grouping.interval),
        member: member(event).to_string(),
    }
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What a group notification shows of one alert: enough to name it and link to it, not its
/// agents or body (a group may hold thousands).
pub fn member(event: &Event) -> Value {
    let s = &event.summary;
    json!({
        "id": s.alert_id,
        "event": event.id,
        "title": s.title,
        "rule": s.rule,
        "test": s.test,
        "type": s.alert_type,
        "severity": s.severity,
        "started_at": s.started_at,
        "link": s.link,
        "source": event.source.label(),
    })
}
