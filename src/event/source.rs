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
use serde::{Deserialize, Serialize};

use super::{Event, EventError, Measured, alertmanager, custom, generic, object, thousandeyes};
use crate::error::ConfigError;

/// Paths the relay answers itself.
const RESERVED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
/// The OAuth endpoints live under this prefix.
const RESERVED_PREFIX: &str = "/oauth/";

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
    fn label(self) -> Option<&'static str> {
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

/// One event a body holds, as it is accepted: with what dedup compares (each source says what
/// it holds), and the body to store for it when that is not the body as sent (an Alertmanager
/// body holding several alerts is stored once per alert, each copy holding that alert alone).
pub struct Arrival {
    pub event: Event,
    pub key: String,
    pub body: Option<Vec<u8>>,
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

    /// The events `measured` holds, normalized.
    pub fn events(
        &self,
        measured: Measured<'_>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Arrival>, EventError> {
        let raw = object(measured.body)?;
        let (origin, body) = (&self.origin, measured.body);
        let one = match origin.kind {
            SourceKind::Thousandeyes => thousandeyes::arrival(raw, body, origin, received_at)?,
            SourceKind::ThousandeyesCustom => custom::arrival(raw, origin, received_at)?,
            SourceKind::Alertmanager | SourceKind::Grafana => {
                return alertmanager::events(raw, origin, received_at);
            }
            SourceKind::Generic => match &self.map {
                Some(map) => map.arrival(raw, body, origin, received_at)?,
                None => return Err(EventError::Invalid("this source has no map".into())),
            },
        };
        Ok(vec![one])
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
    /// outside a request (the `render` and `send` commands, the studio).
    pub fn read(
        &self,
        source: &str,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Event>, String> {
        let of_kind;
        let source = match self.named(source) {
            Some(named) => named,
            None => {
                let kind = serde_json::from_value::<SourceKind>(source.into())
                    .ok()
                    .filter(|kind| *kind != SourceKind::Generic)
                    .ok_or_else(|| format!("no source named {source:?}"))?;
                of_kind = Source::of_kind(kind);
                &of_kind
            }
        };
        let refused = |e: EventError| {
            format!(
                "not an event the {} source accepts: {e}",
                source.origin.name
            )
        };
        let body = source.prepare(body);
        let measured = super::measure(&body).map_err(refused)?;
        Ok(source
            .events(measured, received_at)
            .map_err(refused)?
            .into_iter()
            .map(|arrival| arrival.event)
            .collect())
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
