//! `[[routes]]`: which destinations receive an event. Routes are tried in order; the first that
//! matches decides unless it sets `continue = true`. No routes at all sends every event everywhere.

pub mod matcher;

use regex::Regex;
use serde::Deserialize;

use crate::error::ConfigError;
use crate::event::{Event, EventKind, Sources};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default, rename = "match")]
    pub matches: MatchConfig,
    pub to: Vec<String>,
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
}

/// Conditions of one route; every one that is set must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    pub kind: Option<Vec<String>>,
    /// Names of `[sources]`.
    pub source: Option<Vec<String>>,
    pub rule: Option<String>,
    pub test: Option<String>,
    #[serde(rename = "type")]
    pub alert_type: Option<Vec<String>>,
    pub severity: Option<Vec<String>>,
    pub label: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct Router {
    routes: Vec<Route>,
    /// Every destination, for a config without `[[routes]]`.
    all: Vec<String>,
}

#[derive(Debug)]
struct Route {
    kinds: Option<Vec<EventKind>>,
    sources: Option<Vec<String>>,
    rule: Option<Regex>,
    test: Option<Regex>,
    types: Option<Vec<String>>,
    severities: Option<Vec<String>>,
    labels: Option<Vec<String>>,
    to: Vec<String>,
    continue_matching: bool,
}

impl Router {
    pub fn new<'a>(
        routes: &[RouteConfig],
        destinations: impl IntoIterator<Item = &'a String>,
        sources: &Sources,
    ) -> Result<Self, ConfigError> {
        let all: Vec<String> = destinations.into_iter().cloned().collect();
        let routes = routes
            .iter()
            .enumerate()
            .map(|(i, route)| Route::new(i, route, &all, sources))
            .collect::<Result<_, _>>()?;
        Ok(Self { routes, all })
    }

    /// The destinations for `event`, each once, in the order the routes name them.
    pub fn destinations_for(&self, event: &Event) -> Vec<String> {
        if self.routes.is_empty() {
            return self.all.clone();
        }
        let mut chosen: Vec<String> = Vec::new();
        for route in &self.routes {
            if !route.matches(event) {
                continue;
            }
            for name in &route.to {
                if !chosen.contains(name) {
                    chosen.push(name.clone());
                }
            }
            if !route.continue_matching {
                break;
            }
        }
        chosen
    }
}

impl Route {
    fn new(
        index: usize,
        config: &RouteConfig,
        destinations: &[String],
        sources: &Sources,
    ) -> Result<Self, ConfigError> {
        let key = |field: &str| format!("routes[{index}].{field}");
        let m = &config.matches;
        let regex = |field: &str, pattern: &Option<String>| {
            pattern
                .as_deref()
                .map(|p| {
                    Regex::new(p).map_err(|e| {
                        ConfigError::new(key(&format!("match.{field}")), e.to_string())
                    })
                })
                .transpose()
        };
        let kinds = m
            .kind
            .as_ref()
            .map(|kinds| {
                kinds
                    .iter()
                    .map(|k| {
                        EventKind::parse(k).ok_or_else(|| {
                            ConfigError::new(
                                key("match.kind"),
                                format!(
                                    "unknown kind {k:?} (one of test, alert.trigger, alert.clear, agent.trigger, agent.clear, unknown)"
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        if config.to.is_empty() {
            return Err(ConfigError::new(key("to"), "names no destination"));
        }
        if let Some(missing) = config.to.iter().find(|name| !destinations.contains(name)) {
            return Err(ConfigError::new(
                key("to"),
                format!("no destination named {missing:?} in [destinations]"),
            ));
        }
        if let Some(missing) = m
            .source
            .iter()
            .flatten()
            .find(|name| sources.named(name).is_none())
        {
            let known: Vec<&str> = sources.iter().map(|s| s.origin.name.as_str()).collect();
            return Err(ConfigError::new(
                key("match.source"),
                format!(
                    "no source named {missing:?} (the sources are {})",
                    known.join(", ")
                ),
            ));
        }
        Ok(Self {
            kinds,
            sources: m.source.clone(),
            rule: regex("rule", &m.rule)?,
            test: regex("test", &m.test)?,
            types: m.alert_type.clone(),
            severities: m.severity.clone(),
            labels: m.label.clone(),
            to: config.to.clone(),
            continue_matching: config.continue_matching,
        })
    }

    fn matches(&self, event: &Event) -> bool {
        let s = &event.summary;
        let regex_holds = |regex: &Option<Regex>, value: &Option<String>| match regex {
            None => true,
            Some(regex) => value.as_deref().is_some_and(|v| regex.is_match(v)),
        };
        let listed = |list: &Option<Vec<String>>, value: &Option<String>| match list {
            None => true,
            Some(list) => value
                .as_deref()
                .is_some_and(|v| list.iter().any(|l| l.eq_ignore_ascii_case(v))),
        };
        self.kinds.as_ref().is_none_or(|k| k.contains(&event.kind))
            && self
                .sources
                .as_ref()
                .is_none_or(|names| names.contains(&event.source.name))
            && regex_holds(&self.rule, &s.rule)
            && regex_holds(&self.test, &s.test)
            && listed(&self.types, &s.alert_type)
            && listed(&self.severities, &s.severity)
            && self.labels.as_ref().is_none_or(|wanted| {
                s.labels
                    .iter()
                    .any(|label| wanted.iter().any(|w| w.eq_ignore_ascii_case(label)))
            })
    }
}
