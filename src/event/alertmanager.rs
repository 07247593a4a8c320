//! Prometheus Alertmanager's webhook body (version 4) and Grafana's webhook contact point, which
//! is Alertmanager's plus `title`, `message`, `state` and, per alert, `dashboardURL`, `panelURL`,
//! `silenceURL`, `values` and `valueString`. One event per alert: `alert.trigger` when firing,
//! `alert.clear` when resolved; the fingerprint ties them.
//!
//! Each alert is stored as a body of its own: the group's fields with `alerts` holding that alert
//! alone, so that a template's `raw` is still an Alertmanager body and `alert` is the alert. Of
//! the group's fields each alert keeps only what fits in its share of [`GROUP_FIELDS_PER_ALERT`]
//! (the small ones: `status`, `receiver`, `externalURL`, `groupLabels`, …), so that a body of N
//! alerts is stored and held at about its own size, never N times it.

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value};

use super::error::EventError;
use super::fields::{date_field, is_http_url, text_field, text_value};
use super::normal::{Arrival, Event, EventKind, Link, Origin, SourceKind, State, Summary};

/// The most of the group's own fields one alert's stored body keeps, in bytes of JSON: the usual
/// fields and labels fit; a large field (a long Grafana `message`, big common annotations) is
/// left out. Together the alerts' copies keep at most the body's own size.
pub const GROUP_FIELDS_PER_ALERT: usize = 2 * 1024;

/// The one alert of a stored event's body.
pub(super) fn alert(raw: &Map<String, Value>) -> Option<&Map<String, Value>> {
    raw.get("alerts")?.as_array()?.first()?.as_object()
}

pub(super) fn events(
    mut raw: Map<String, Value>,
    body_bytes: usize,
    origin: &Origin,
    received_at: DateTime<Utc>,
) -> Result<Vec<Arrival>, EventError> {
    let what = origin.label();
    let alerts = match raw.remove("alerts") {
        Some(Value::Array(alerts)) if !alerts.is_empty() => alerts,
        Some(Value::Array(_)) => {
            return Err(EventError::Invalid(format!(
                "body has no alerts ({what} webhook)"
            )));
        }
        _ => {
            return Err(EventError::Invalid(format!(
                "body has no array \"alerts\": not a webhook body from {what}"
            )));
        }
    };
    let group_status = raw.get("status").and_then(Value::as_str).map(str::to_owned);
    let external_url = raw
        .get("externalURL")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let group = group_fields(
        &raw,
        (body_bytes / alerts.len()).min(GROUP_FIELDS_PER_ALERT),
    );
    let mut arrivals = Vec::with_capacity(alerts.len());
    for (i, alert) in alerts.into_iter().enumerate() {
        let Value::Object(alert) = alert else {
            return Err(EventError::Invalid(format!("alerts[{i}] is not an object")));
        };
        let summary = summarize(
            &alert,
            group_status.as_deref(),
            external_url.as_deref(),
            origin.kind,
        )
        .map_err(|problem| EventError::Invalid(format!("alerts[{i}] {problem}")))?;
        let status = if summary.state == State::Cleared {
            "resolved"
        } else {
            "firing"
        };
        let fingerprint = summary.alert_id.clone().unwrap_or_default();
        let mut id = format!(
            "{fingerprint}:{status}:{}",
            summary.started_at.as_deref().unwrap_or("")
        );
        if let Some(ended) = &summary.ended_at {
            id = format!("{id}:{ended}");
        }
        let mut stored = group.clone();
        stored.insert("alerts".into(), Value::Array(vec![Value::Object(alert)]));
        let body = serde_json::to_vec(&stored).map_err(EventError::NotJson)?;
        arrivals.push(Arrival {
            key: format!("{}:{id}", origin.kind.as_str()),
            event: Event {
                id,
                event_type: status.to_owned(),
                kind: if status == "resolved" {
                    EventKind::AlertClear
                } else {
                    EventKind::AlertTrigger
                },
                received_at,
                source: origin.clone(),
                raw: stored,
                summary,
            },
            body: Some(body),
        });
    }
    Ok(arrivals)
}

/// The group's fields (all but `alerts`), in their order, as many as fit in `budget` bytes of
/// JSON: each one that does not fit is left out.
fn group_fields(raw: &Map<String, Value>, budget: usize) -> Map<String, Value> {
    let mut left = budget;
    let mut kept = Map::new();
    for (name, value) in raw {
        let size = name.len() + serde_json::to_string(value).map_or(usize::MAX, |t| t.len());
        if size <= left {
            left -= size;
            kept.insert(name.clone(), value.clone());
        }
    }
    kept
}

/// One alert, normalized; the error names what is wrong with it.
fn summarize(
    alert: &Map<String, Value>,
    group_status: Option<&str>,
    external_url: Option<&str>,
    kind: SourceKind,
) -> Result<Summary, String> {
    let status = alert
        .get("status")
        .and_then(Value::as_str)
        .or(group_status)
        .ok_or("has no \"status\"")?;
    let state = match status {
        "firing" => State::Triggered,
        "resolved" => State::Cleared,
        other => return Err(format!("has status {other:?}, not firing or resolved")),
    };
    let labels = match alert.get("labels") {
        Some(Value::Object(labels)) => labels,
        _ => return Err("has no object \"labels\"".into()),
    };
    let empty = Map::new();
    let annotations = alert
        .get("annotations")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let fingerprint = match text_field(alert, "fingerprint") {
        Some(fingerprint) => fingerprint,
        // Alertmanager before 0.19 sent none: the labels identify the alert all the same.
        None => {
            let mut sorted: Vec<(&String, &Value)> = labels.iter().collect();
            sorted.sort_by_key(|(name, _)| *name);
            let text = serde_json::to_string(&sorted).unwrap_or_default();
            crate::tls::sha256_hex(text.as_bytes())[..16].to_owned()
        }
    };
    let started_at = date_field(alert, "startsAt").filter(is_set);
    let ended_at = date_field(alert, "endsAt")
        .filter(is_set)
        .filter(|_| state == State::Cleared);
    let name = text_field(labels, "alertname");
    let said = text_field(annotations, "summary");
    let title = match (&name, &said) {
        (Some(name), Some(said)) => format!("{name}: {said}"),
        (Some(name), None) => name.clone(),
        (None, Some(said)) => said.clone(),
        (None, None) => "Alert".to_owned(),
    };
    let link_of = |key: &str| text_field(alert, key).filter(|l| is_http_url(l));
    // Grafana's links all open Grafana. Alertmanager's `generatorURL` opens whatever evaluated
    // the rule (Prometheus' graph of its expression): the alert itself is seen in Alertmanager.
    let (link, links) = match kind {
        SourceKind::Grafana => (
            link_of("panelURL")
                .or_else(|| link_of("dashboardURL"))
                .or_else(|| link_of("generatorURL")),
            Vec::new(),
        ),
        _ => (
            external_url
                .filter(|url| is_http_url(url))
                .map(|url| alerts_page(url, labels)),
            link_of("generatorURL")
                .map(|url| Link {
                    title: "Source".into(),
                    url,
                })
                .into_iter()
                .collect(),
        ),
    };
    let summary = Summary {
        state,
        title,
        rule: name,
        expression: text_field(alert, "valueString"),
        description: text_field(annotations, "description")
            .or_else(|| text_field(annotations, "message")),
        severity: text_field(labels, "severity"),
        alert_id: Some(fingerprint),
        link,
        links,
        labels: labels
            .iter()
            .filter_map(|(name, value)| Some(format!("{name}={}", text_value(value)?)))
            .collect(),
        ..Summary::default()
    };
    Ok(summary.timed(started_at, ended_at))
}

/// Alertmanager's page of the alerts that have exactly these labels:
/// `<externalURL>/#/alerts?filter={name="value",…}`, as its UI writes a filter.
fn alerts_page(external_url: &str, labels: &Map<String, Value>) -> String {
    let matchers: Vec<String> = labels
        .iter()
        .filter_map(|(name, value)| {
            let value = text_value(value)?;
            let quoted = value.replace('\\', "\\\\").replace('"', "\\\"");
            Some(format!("{name}=\"{quoted}\""))
        })
        .collect();
    let filter = format!("{{{}}}", matchers.join(","));
    let encoded =
        percent_encoding::utf8_percent_encode(&filter, percent_encoding::NON_ALPHANUMERIC);
    format!(
        "{}/#/alerts?filter={encoded}",
        external_url.trim_end_matches('/')
    )
}

/// Alertmanager writes an unset time as the year 1 (`0001-01-01T00:00:00Z`).
fn is_set(date: &DateTime<Utc>) -> bool {
    date.year() > 1
}
