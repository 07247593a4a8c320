//! `[sources.NAME]`: who may post where, and how their bodies read. Each source has its own
//! ingest path and a kind, whose module turns the body into normalized events:
//! - `thousandeyes`: ThousandEyes classic webhooks (`thousandeyes.rs`);
//! - `thousandeyes-custom`: what `docs/thousandeyes-custom-webhook.hbs` makes ThousandEyes send
//!   from a custom webhook (`custom.rs`);
//! - `alertmanager` and `grafana`: Prometheus Alertmanager's webhook (version 4) and Grafana's
//!   webhook contact point, one event per alert (`alertmanager.rs`);
//! - `generic`: any JSON object, read through JSON Pointers from `[sources.NAME.map]`
//!   (`generic.rs`).
//!
//! Without a `[sources]` table, one ThousandEyes source named `thousandeyes` listens at
//! `server.ingest_path`, as before sources existed.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{EventError, NO_EVENT_TYPE};
use super::normal::{Arrival, Event, Origin, SourceKind};
use super::shape::{Measured, measure};
use super::{alertmanager, custom, generic, group, thousandeyes};
use crate::error::ConfigError;

/// Paths the relay answers itself.
const RESERVED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
/// The OAuth endpoints live under this prefix.
const RESERVED_PREFIX: &str = "/oauth/";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// Where this source posts; each source has its own.
    pub path: String,
    /// For `generic` sources: where each normalized field is in the body.
    pub map: Option<generic::MapConfig>,
}

/// One configured source, ready to read bodies.
#[derive(Debug)]
pub struct Source {
    pub origin: Origin,
    pub path: String,
    map: Option<generic::Map>,
}

impl Source {
    /// A source of `kind` that no config names (never `generic`, which needs a map): what the
    /// bundled samples are read with.
    pub fn of_kind(kind: SourceKind) -> Self {
        Self {
            origin: Origin {
                name: kind.as_str().to_owned(),
                kind,
            },
            path: String::new(),
            map: None,
        }
    }

    /// The body as this source's kind reads it (a custom webhook's strings escaped as JSON; see
    /// `custom.rs`): what is measured, read and stored.
    pub fn prepare<'a>(&self, body: &'a [u8]) -> Cow<'a, [u8]> {
        match self.origin.kind {
            SourceKind::ThousandeyesCustom => custom::prepare(body),
            _ => Cow::Borrowed(body),
        }
    }

    /// The events `measured` holds, normalized. Each one's dedup key is its kind's, within this
    /// source (`<source name>:<key>`): the same event from two sources is two events.
    pub fn events(
        &self,
        measured: Measured<'_>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Arrival>, EventError> {
        let raw = object(measured.body)?;
        let (origin, body) = (&self.origin, measured.body);
        let mut arrivals = match origin.kind {
            SourceKind::Thousandeyes => {
                vec![thousandeyes::arrival(raw, body, origin, received_at)?]
            }
            SourceKind::ThousandeyesCustom => vec![custom::arrival(raw, origin, received_at)?],
            SourceKind::Alertmanager | SourceKind::Grafana => {
                alertmanager::events(raw, body.len(), origin, received_at)?
            }
            SourceKind::Generic => match &self.map {
                Some(map) => vec![map.arrival(raw, body, origin, received_at)?],
                None => return Err(EventError::Invalid("this source has no map".into())),
            },
        };
        for arrival in &mut arrivals {
            arrival.key = format!("{}:{}", origin.name, arrival.key);
        }
        Ok(arrivals)
    }

    /// The events of a body from outside a request, normalized.
    fn read(&self, body: &[u8], received_at: DateTime<Utc>) -> Result<Vec<Event>, EventError> {
        let body = self.prepare(body);
        Ok(self
            .events(measure(&body)?, received_at)?
            .into_iter()
            .map(|arrival| arrival.event)
            .collect())
    }
}

/// Every configured source.
#[derive(Debug)]
pub struct Sources(Vec<Source>);

impl Sources {
    /// The sources `configs` describe, or the one ThousandEyes source at `ingest_path` when there
    /// are none.
    pub fn new(
        configs: &BTreeMap<String, SourceConfig>,
        ingest_path: &str,
    ) -> Result<Self, ConfigError> {
        if configs.is_empty() {
            return Ok(Self(vec![Source {
                origin: Origin::thousandeyes(),
                path: ingest_path.to_owned(),
                map: None,
            }]));
        }
        let mut sources: Vec<Source> = Vec::new();
        for (name, config) in configs {
            let key = |field: &str| format!("sources.{name}.{field}");
            // A source's name leads its events' dedup keys (`<name>:<key>`).
            let valid = !name.is_empty()
                && (name.bytes())
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b));
            if !valid {
                return Err(ConfigError::new(
                    format!("sources.{name}"),
                    "source names use lowercase letters, digits, - and _ only",
                ));
            }
            if name == group::SOURCE {
                return Err(ConfigError::new(
                    format!("sources.{name}"),
                    "group is the name of the relay's own group notifications; choose another",
                ));
            }
            check_path(&config.path).map_err(|reason| ConfigError::new(key("path"), reason))?;
            if let Some(other) = sources.iter().find(|s| s.path == config.path) {
                return Err(ConfigError::new(
                    key("path"),
                    format!(
                        "{} is already the path of source {}",
                        config.path, other.origin.name
                    ),
                ));
            }
            let map = match (config.kind, &config.map) {
                (SourceKind::Generic, Some(map)) => Some(map.compile(&key("map"))?),
                (SourceKind::Generic, None) => {
                    return Err(ConfigError::new(
                        key("map"),
                        "a generic source needs a map: where its bodies hold at least the title",
                    ));
                }
                (_, Some(_)) => {
                    return Err(ConfigError::new(
                        key("map"),
                        "only generic sources take a map",
                    ));
                }
                (_, None) => None,
            };
            sources.push(Source {
                origin: Origin {
                    name: name.clone(),
                    kind: config.kind,
                },
                path: config.path.clone(),
                map,
            });
        }
        Ok(Self(sources))
    }

    /// The source that posts to `path`.
    pub fn at(&self, path: &str) -> Option<&Source> {
        self.0.iter().find(|s| s.path == path)
    }

    /// The source named `name`.
    pub fn named(&self, name: &str) -> Option<&Source> {
        self.0.iter().find(|s| s.origin.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Source> {
        self.0.iter()
    }

    /// The events `body` holds, read as `source` reads it: the source of that name, else a
    /// source of that kind (not `generic`, which needs a map); for tools that take a body from
    /// outside a request (the `render` and `send` commands, the studio). Refused, it says which
    /// source would read the body, when one would.
    pub fn read(
        &self,
        source: &str,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Event>, Unread> {
        let of_kind;
        let source = match self.named(source) {
            Some(named) => named,
            // The relay's own group notifications, for previews of group templates.
            None if source == group::SOURCE => {
                let read = measure(body).and_then(|m| object(m.body));
                return read
                    .and_then(|raw| group::event(raw, received_at))
                    .map(|event| vec![event])
                    .map_err(|e| Unread {
                        reason: format!("not a group notification: {e}"),
                        reader: self.reader_of(body),
                    });
            }
            None => {
                let kind = serde_json::from_value::<SourceKind>(source.into())
                    .ok()
                    .filter(|kind| *kind != SourceKind::Generic)
                    .ok_or_else(|| Unread {
                        reason: format!("no source named {source:?}"),
                        reader: None,
                    })?;
                of_kind = Source::of_kind(kind);
                &of_kind
            }
        };
        source.read(body, received_at).map_err(|e| {
            // The tool names the source to read it with: the hint for senders does not apply.
            let e = match e {
                EventError::NoEventType => NO_EVENT_TYPE.to_owned(),
                e => e.to_string(),
            };
            Unread {
                reason: format!(
                    "not an event the {} source accepts: {e}",
                    source.origin.name
                ),
                reader: self.reader_of(body),
            }
        })
    }

    /// The source that reads `body`, judged by its sender: a configured source of that kind,
    /// else the kind itself.
    fn reader_of(&self, body: &[u8]) -> Option<String> {
        let kind = sender_of(body)?;
        Some(
            (self.0.iter())
                .find(|s| s.origin.kind == kind)
                .map_or_else(|| kind.as_str().to_owned(), |s| s.origin.name.clone()),
        )
    }
}

/// The source kinds that read a body with no config of their own (a generic source needs its
/// map): the ones a body from outside a request may be read as.
pub const WITHOUT_MAP: [SourceKind; 4] = [
    SourceKind::Thousandeyes,
    SourceKind::ThousandeyesCustom,
    SourceKind::Alertmanager,
    SourceKind::Grafana,
];

/// The kind of sender whose body `body` is: the first kind that reads it, Grafana rather than
/// Alertmanager where the body has Grafana's `orgId` (each reads the other's body).
fn sender_of(body: &[u8]) -> Option<SourceKind> {
    let grafana = serde_json::from_slice::<Map<String, Value>>(body)
        .is_ok_and(|object| object.contains_key("orgId"));
    let mut kinds = WITHOUT_MAP.to_vec();
    kinds.retain(|kind| match kind {
        SourceKind::Alertmanager => !grafana,
        SourceKind::Grafana => grafana,
        _ => true,
    });
    (kinds.into_iter()).find(|&kind| Source::of_kind(kind).read(body, Utc::now()).is_ok())
}

/// A body that the source asked for does not read.
#[derive(Debug)]
pub struct Unread {
    pub reason: String,
    /// The source that reads it, if one does.
    pub reader: Option<String>,
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Reading an event: a body, or what the store kept, by the module of its source kind.
impl Event {
    /// Parses a ThousandEyes classic webhook body (a UTF-8 byte order mark in front is ignored),
    /// after measuring it against the limits of [`Shape`](super::Shape).
    pub fn parse(body: &[u8], received_at: DateTime<Utc>) -> Result<Self, EventError> {
        let measured = measure(body)?;
        let raw = object(measured.body)?;
        thousandeyes::arrival(raw, measured.body, &Origin::thousandeyes(), received_at)
            .map(|arrival| arrival.event)
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
        Event::from_stored_form(normalized, raw, received_at)
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

/// Why `path` cannot be an ingest path, if it cannot.
pub fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("must start with /".into());
    }
    if RESERVED.contains(&path) || path.starts_with(RESERVED_PREFIX) {
        return Err(format!("{path} is reserved"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Phase};
    use chrono::Utc;

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
