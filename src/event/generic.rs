//! Any JSON object, read through a mapping from normalized fields to JSON Pointers (RFC 6901):
//! `[sources.NAME.map]` with `title` (required), `id`, `key`, `severity`, `link`, `started_at`,
//! `description`, and `state = { pointer, triggered = [...], cleared = [...] }`.
//!
//! A body must hold what the map points at for `title`, `id` and `state` (400 naming the pointer
//! otherwise); the other fields are left out when absent. Without `state` every event is a
//! trigger; a state value in neither list makes an `unknown` event.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map as Object, Value};

use super::error::EventError;
use super::fields::{body_id, is_http_url, parse_date, rfc3339, text_value};
use super::normal::{Arrival, Event, EventKind, Origin, State, Summary};
use crate::error::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapConfig {
    pub title: Option<String>,
    pub id: Option<String>,
    pub key: Option<String>,
    pub severity: Option<String>,
    pub link: Option<String>,
    pub started_at: Option<String>,
    pub description: Option<String>,
    pub state: Option<StateConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    pub pointer: String,
    #[serde(default)]
    pub triggered: Vec<String>,
    #[serde(default)]
    pub cleared: Vec<String>,
}

/// A checked map.
#[derive(Debug)]
pub(super) struct Map {
    /// `sources.NAME.map`, named in refusals.
    key: String,
    title: String,
    id: Option<String>,
    correlation: Option<String>,
    severity: Option<String>,
    link: Option<String>,
    started_at: Option<String>,
    description: Option<String>,
    state: Option<StateConfig>,
}

impl MapConfig {
    /// Checks every pointer; `key` is the map's place in the config.
    pub(super) fn compile(&self, key: &str) -> Result<Map, ConfigError> {
        let pointer =
            |field: &str, value: &Option<String>| -> Result<Option<String>, ConfigError> {
                match value {
                    Some(p) => check_pointer(p)
                        .map(|()| Some(p.clone()))
                        .map_err(|reason| ConfigError::new(format!("{key}.{field}"), reason)),
                    None => Ok(None),
                }
            };
        let title = pointer("title", &self.title)?.ok_or_else(|| {
            ConfigError::new(
                format!("{key}.title"),
                "is required: where the body holds the alert's title",
            )
        })?;
        if let Some(state) = &self.state {
            check_pointer(&state.pointer)
                .map_err(|reason| ConfigError::new(format!("{key}.state.pointer"), reason))?;
            if let Some(both) = state
                .triggered
                .iter()
                .find(|t| state.cleared.iter().any(|c| c.eq_ignore_ascii_case(t)))
            {
                return Err(ConfigError::new(
                    format!("{key}.state"),
                    format!("{both:?} is listed as both triggered and cleared"),
                ));
            }
        }
        Ok(Map {
            key: key.to_owned(),
            title,
            id: pointer("id", &self.id)?,
            correlation: pointer("key", &self.key)?,
            severity: pointer("severity", &self.severity)?,
            link: pointer("link", &self.link)?,
            started_at: pointer("started_at", &self.started_at)?,
            description: pointer("description", &self.description)?,
            state: self.state.as_ref().map(|s| StateConfig {
                pointer: s.pointer.clone(),
                triggered: s.triggered.clone(),
                cleared: s.cleared.clone(),
            }),
        })
    }
}

/// Why `pointer` is not a JSON Pointer (RFC 6901), if it is not: it is empty (the whole body) or
/// starts with `/`, and every `~` is followed by `0` or `1`.
fn check_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(format!(
            "{pointer:?} is not a JSON Pointer: it must start with / (\"/incident/id\")"
        ));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "{pointer:?} is not a JSON Pointer: ~ must be followed by 0 or 1"
            ));
        }
    }
    Ok(())
}

impl Map {
    /// Normalizes one body; its dedup key is the source, `id` and the state value.
    pub(super) fn arrival(
        &self,
        raw: Object<String, Value>,
        body: &[u8],
        origin: &Origin,
        received_at: DateTime<Utc>,
    ) -> Result<Arrival, EventError> {
        let body_value = Value::Object(raw);
        let at = |pointer: &Option<String>| {
            pointer
                .as_deref()
                .and_then(|p| body_value.pointer(p))
                .and_then(text_value)
        };
        let required = |field: &str, pointer: &str| {
            body_value
                .pointer(pointer)
                .and_then(text_value)
                .ok_or_else(|| {
                    EventError::Invalid(format!(
                        "body has no text or number at {pointer} ({}.{field})",
                        self.key
                    ))
                })
        };
        let title = required("title", &self.title)?;
        let id = match &self.id {
            Some(pointer) => required("id", pointer)?,
            None => body_id(body),
        };
        let (kind, event_type) = match &self.state {
            Some(state) => {
                let value = required("state.pointer", &state.pointer)?;
                let listed = |list: &[String]| list.iter().any(|v| v.eq_ignore_ascii_case(&value));
                let kind = if listed(&state.triggered) {
                    EventKind::AlertTrigger
                } else if listed(&state.cleared) {
                    EventKind::AlertClear
                } else {
                    EventKind::Unknown
                };
                (kind, value)
            }
            None => (EventKind::AlertTrigger, "event".to_owned()),
        };
        let summary = Summary {
            state: match kind {
                EventKind::Unknown => State::Unknown,
                other => other.state(),
            },
            title,
            description: at(&self.description),
            severity: at(&self.severity),
            alert_id: at(&self.correlation),
            started_at: self
                .started_at
                .as_deref()
                .and_then(|p| body_value.pointer(p))
                .and_then(parse_date)
                .map(rfc3339),
            link: at(&self.link).filter(|l| is_http_url(l)),
            ..Summary::default()
        };
        let raw = match body_value {
            Value::Object(raw) => raw,
            _ => Object::new(),
        };
        Ok(Arrival {
            key: match &self.state {
                Some(_) => format!("generic:{}:{id}:{event_type}", origin.name),
                None => format!("generic:{}:{id}", origin.name),
            },
            event: Event {
                id,
                event_type,
                kind,
                received_at,
                source: origin.clone(),
                raw,
                summary,
            },
            body: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::check_pointer;

    #[test]
    fn pointers_as_rfc_6901_writes_them() {
        for good in ["", "/", "/incident/id", "/a~1b/m~0n", "/alerts/0/labels"] {
            assert!(check_pointer(good).is_ok(), "{good}");
        }
        for bad in ["incident/id", "/a~2", "/a~", "$.incident.id"] {
            assert!(check_pointer(bad).is_err(), "{bad}");
        }
    }
}
