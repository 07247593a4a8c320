//! `[[routes]]`: which destinations receive an event, and how: at once, after a `hold` (a trigger
//! cleared within it sends nothing), or into a group (`group_by`) whose notifications name it.
//! Routes are tried in order; the first that matches decides unless it sets `continue = true`;
//! a destination named by several matching routes goes as the first one says. No routes at all
//! sends every event everywhere, at once.

pub mod matcher;

use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::error::ConfigError;
use crate::event::{Event, EventKind, Sources};
use matcher::Field;

/// How long a new group waits for more alerts before its first notification.
pub const GROUP_WAIT: Duration = Duration::from_secs(30);
/// How often a group's later changes are sent at most.
pub const GROUP_INTERVAL: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default, rename = "match")]
    pub matches: MatchConfig,
    pub to: Vec<String>,
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// The fields whose values make a group (`test`, `label:team`, …); none: one message per
    /// event.
    pub group_by: Option<Vec<String>>,
    #[serde(default, with = "humantime_serde")]
    pub group_wait: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub group_interval: Option<Duration>,
    /// How long a trigger waits before it is sent: cleared meanwhile, neither is sent.
    #[serde(default, with = "humantime_serde")]
    pub hold: Option<Duration>,
}

/// Where one of an event's deliveries goes, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    pub destination: String,
    /// A trigger waits this long before it is sent (see [`RouteConfig::hold`]).
    pub hold: Option<Duration>,
    /// It goes into a group instead of a message of its own.
    pub group: Option<Grouping>,
}

/// A route's grouping.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    pub by: Vec<Field>,
    pub wait: Duration,
    pub interval: Duration,
}

impl Grouping {
    /// The group `event` belongs to: each field of `by` with its value.
    pub fn labels(&self, event: &Event) -> Vec<(String, String)> {
        (self.by.iter())
            .map(|field| (field.to_string(), field.value(event).into_owned()))
            .collect()
    }
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
    hold: Option<Duration>,
    group: Option<Grouping>,
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
        self.plan(event)
            .into_iter()
            .map(|routed| routed.destination)
            .collect()
    }

    /// Where `event` goes and how: each destination once, as the first matching route that
    /// names it says, in the order the routes name them.
    pub fn plan(&self, event: &Event) -> Vec<Routed> {
        let at_once = |name: &String| Routed {
            destination: name.clone(),
            hold: None,
            group: None,
        };
        if self.routes.is_empty() {
            return self.all.iter().map(at_once).collect();
        }
        let mut chosen: Vec<Routed> = Vec::new();
        for route in &self.routes {
            if !route.matches(event) {
                continue;
            }
            for name in &route.to {
                if !chosen.iter().any(|c| c.destination == *name) {
                    chosen.push(Routed {
                        hold: route.hold,
                        group: route.group.clone(),
                        ..at_once(name)
                    });
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
        let group = match &config.group_by {
            Some(fields) => {
                let by = (fields.iter())
                    .map(|f| Field::parse(f))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ConfigError::new(key("group_by"), e))?;
                if by.is_empty() {
                    return Err(ConfigError::new(
                        key("group_by"),
                        "names no field: leave it out for one message per event",
                    ));
                }
                Some(Grouping {
                    by,
                    wait: config.group_wait.unwrap_or(GROUP_WAIT),
                    interval: config.group_interval.unwrap_or(GROUP_INTERVAL),
                })
            }
            None => {
                if config.group_wait.is_some() || config.group_interval.is_some() {
                    return Err(ConfigError::new(
                        key("group_wait"),
                        "group_wait and group_interval need group_by",
                    ));
                }
                None
            }
        };
        if let Some(group) = &group
            && group.interval.is_zero()
        {
            return Err(ConfigError::new(
                key("group_interval"),
                "must be longer than 0s",
            ));
        }
        if config.hold.is_some() && group.is_some() {
            return Err(ConfigError::new(
                key("hold"),
                "does not combine with group_by: a group already waits group_wait before it is sent",
            ));
        }
        if config.hold.is_some_and(|hold| hold.is_zero()) {
            return Err(ConfigError::new(key("hold"), "must be longer than 0s"));
        }
        Ok(Self {
            hold: config.hold,
            group,
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
