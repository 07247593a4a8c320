//! Groups: a route's `group_by` puts the alerts that share those fields' values into one group
//! per destination, sent as group notifications (the first after `group_wait`, changes at most
//! every `group_interval`, at once when every alert has cleared) instead of a message per event.
//! Here: which group an alert joins and what the notifications show of it. The store keeps the
//! groups and their alerts.

use serde_json::{Value, json};

use super::silence::rfc3339;
use crate::event::Event;
use crate::event::group::{Changes, GroupBody};
use crate::outbox::{DueGroup, GroupNotification, Joining, Member};
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

/// The notification of `group` at `now`: every alert (firing first, in the order they joined;
/// then cleared, the latest first) and what changed since the last notification.
pub fn notification(group: &DueGroup, now: i64) -> GroupNotification {
    let shown = |member: &Member| {
        let mut alert =
            serde_json::from_str::<Value>(&member.summary).unwrap_or_else(|_| json!({}));
        if let Some(fields) = alert.as_object_mut() {
            fields.insert(
                "state".into(),
                json!(if member.firing { "firing" } else { "cleared" }),
            );
            fields.insert("joined_at".into(), json!(rfc3339(member.joined_at)));
            fields.insert(
                "cleared_at".into(),
                match member.firing {
                    true => Value::Null,
                    false => json!(rfc3339(member.changed_at)),
                },
            );
        }
        alert
    };
    let mut firing: Vec<&Member> = group.members.iter().filter(|m| m.firing).collect();
    firing.sort_by_key(|m| (m.joined_at, m.correlation.clone()));
    let mut cleared: Vec<&Member> = group.members.iter().filter(|m| !m.firing).collect();
    cleared.sort_by_key(|m| (std::cmp::Reverse(m.changed_at), m.correlation.clone()));
    let changes = Changes {
        // Joined, or fired again, since the last notification; and those that came and went
        // between two, so that every alert is named.
        joined: (firing.iter().chain(&cleared))
            .filter(|m| match m.notified {
                None => true,
                Some(notified) => m.firing && !notified,
            })
            .map(|m| shown(m))
            .collect(),
        cleared: (cleared.iter())
            .filter(|m| m.notified != Some(false))
            .map(|m| shown(m))
            .collect(),
    };
    let body = GroupBody {
        id: group.id,
        key: group.key.clone(),
        labels: serde_json::from_str(&group.labels).unwrap_or_default(),
        notification: u32::try_from(group.notifications + 1).unwrap_or(u32::MAX),
        state: (if firing.is_empty() {
            "cleared"
        } else {
            "firing"
        })
        .to_owned(),
        started_at: rfc3339(group.started_at),
        count: group.members.len(),
        firing: firing.len(),
        cleared: cleared.len(),
        alerts: firing.iter().chain(&cleared).map(|m| shown(m)).collect(),
        changes,
    };
    let raw = match serde_json::to_value(&body) {
        Ok(Value::Object(raw)) => raw,
        _ => serde_json::Map::new(),
    };
    let received_at = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
    let normalized = crate::event::group::event(raw.clone(), received_at)
        .map(|event| event.stored_form())
        .unwrap_or_default();
    GroupNotification {
        body: Value::Object(raw).to_string().into_bytes(),
        normalized,
    }
}
