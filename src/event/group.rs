//! Group notifications as events. When the relay sends a group (see `noise::group`), it stores
//! the notification as an event of kind `group`: its body ([`GroupBody`]) is the group as it
//! stands, which templates read as `group`; its summary says it in one line, for the fallback
//! message and the log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::EventError;
use super::normal::{Event, EventKind, Origin, SourceKind, State, Summary};

/// What a group notification's body is read as: `--source group`, and the name its events go by.
pub const SOURCE: &str = "group";

/// A group as one notification shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupBody {
    /// The group's id in the store.
    pub id: i64,
    /// Its fields and values as one text (`test=checkout`).
    pub key: String,
    /// Its fields and values (`{"test": "checkout"}`).
    pub labels: Map<String, Value>,
    /// 1 for the group's first notification, then 2, 3, …
    pub notification: u32,
    /// `firing` while any of its alerts fires, then `cleared`: the group has ended.
    pub state: String,
    /// RFC 3339.
    pub started_at: String,
    pub count: usize,
    pub firing: usize,
    pub cleared: usize,
    /// Every alert, firing first (the latest first), then cleared; each with `state`.
    pub alerts: Vec<Value>,
    /// What changed since the last notification (everything, in the first).
    pub changes: Changes,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Changes {
    /// Alerts that joined (or fired again) since the last notification.
    pub joined: Vec<Value>,
    /// Alerts that cleared since the last notification.
    pub cleared: Vec<Value>,
}

/// The event a group notification's body is.
pub fn event(raw: Map<String, Value>, received_at: DateTime<Utc>) -> Result<Event, EventError> {
    let body: GroupBody = serde_json::from_value(Value::Object(raw.clone()))
        .map_err(|e| EventError::Invalid(format!("not a group notification: {e}")))?;
    let title = match (body.firing, body.cleared) {
        (0, cleared) => format!("{}: all {cleared} cleared", body.key),
        (firing, 0) => format!("{}: {firing} firing", body.key),
        (firing, cleared) => format!("{}: {firing} firing, {cleared} cleared", body.key),
    };
    let label = |name: &str| {
        body.labels
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let summary = Summary {
        state: match body.firing {
            0 => State::Cleared,
            _ => State::Triggered,
        },
        title,
        rule: label("rule"),
        test: label("test"),
        severity: label("severity"),
        alert_type: label("type"),
        alert_id: Some(format!("group:{}", body.id)),
        started_at: Some(body.started_at.clone()),
        labels: (body.labels.iter())
            .map(|(field, value)| format!("{field}={}", value.as_str().unwrap_or_default()))
            .collect(),
        ..Summary::default()
    };
    Ok(Event {
        id: format!("group {} #{}", body.id, body.notification),
        event_type: SOURCE.to_owned(),
        kind: EventKind::Group,
        received_at,
        source: Origin {
            name: SOURCE.to_owned(),
            kind: SourceKind::Generic,
        },
        raw,
        summary,
    })
}
