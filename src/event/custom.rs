//! ThousandEyes custom webhooks. Their body is whatever the operator's Handlebars template makes
//! of ThousandEyes' notification object; this kind reads what the shipped template,
//! `docs/thousandeyes-custom-webhook.hbs`, makes: `notificationId`, `type` (`1` clear, `2`
//! trigger, from `type.id`) and an `alert` with `id`, `severity`, `firstSeen` and `timeCleared`
//! (epoch seconds), `rule {name, expression, alertType}`, `test {name, type, labels}`, `targets`
//! and `details` (how many agents or monitors).
//!
//! ThousandEyes' Handlebars writes `{{value}}` HTML-escaped (`&amp;`, `&quot;`, ...), so data never
//! ends a JSON string; the summary holds the text unescaped. It writes a backslash or a line break
//! as it is, which JSON would read as an escape (`\n`, `\u0041`) or refuse: [`prepare`] escapes
//! them first, so that a name arrives as it was written.
//!
//! The test's `targets` (what it tests: a URL, a server) are not agents: the summary lists no
//! agents (ThousandEyes documents no agent fields for custom webhooks) and counts them from
//! `details`; templates find the targets in `alert.targets`.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::error::EventError;
use super::fields::{is_http_url, parse_date, text_field, text_value};
use super::normal::{Arrival, Event, EventKind, Origin, Summary};

/// Normalizes one body; its dedup key is the notification id.
pub(super) fn arrival(
    raw: Map<String, Value>,
    origin: &Origin,
    received_at: DateTime<Utc>,
) -> Result<Arrival, EventError> {
    let invalid = |problem: &str| EventError::Invalid(problem.to_owned());
    let kind = match raw.get("type").and_then(text_value).as_deref() {
        Some("2") => EventKind::AlertTrigger,
        Some("1") => EventKind::AlertClear,
        _ => {
            return Err(invalid(
                "body has no \"type\" 1 (clear) or 2 (trigger), as ThousandEyes' type.id gives",
            ));
        }
    };
    let alert = raw
        .get("alert")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("body has no object \"alert\""))?;
    let text = |object: &Map<String, Value>, key: &str| text_field(object, key).map(unescape);
    let alert_id = text(alert, "id").ok_or_else(|| invalid("alert.id is missing or empty"))?;
    let id = text_field(&raw, "notificationId")
        .ok_or_else(|| invalid("notificationId is missing or empty"))?;
    let empty = Map::new();
    let part = |key: &str| alert.get(key).and_then(Value::as_object).unwrap_or(&empty);
    let (rule, test) = (part("rule"), part("test"));
    let epoch = |key: &str| {
        let seconds = text_field(alert, key)?.parse::<i64>().ok()?;
        parse_date(&Value::from(seconds))
    };
    let started_at = epoch("firstSeen");
    let ended_at = epoch("timeCleared").filter(|_| kind == EventKind::AlertClear);
    let rule_name = text(rule, "name");
    let test_name = text(test, "name");
    let title = match (&rule_name, &test_name) {
        (Some(rule), Some(test)) => format!("{rule} on {test}"),
        (Some(one), None) | (None, Some(one)) => one.clone(),
        (None, None) => format!("ThousandEyes alert {alert_id}"),
    };
    let strings = |value: Option<&Value>| -> Vec<String> {
        value
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(text_value).map(unescape).collect())
            .unwrap_or_default()
    };
    let summary = Summary {
        state: kind.state(),
        title,
        rule: rule_name,
        expression: text(rule, "expression"),
        severity: text(alert, "severity"),
        test: test_name,
        alert_type: text(rule, "alertType").or_else(|| text(test, "type")),
        alert_id: Some(alert_id),
        link: text(alert, "link").filter(|l| is_http_url(l)),
        labels: strings(test.get("labels")),
        targets_total: text_field(alert, "details")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        ..Summary::default()
    }
    .timed(started_at, ended_at);
    Ok(Arrival {
        key: format!("{}:{id}", origin.kind.as_str()),
        event: Event {
            event_type: match kind {
                EventKind::AlertClear => "clear".into(),
                _ => "trigger".into(),
            },
            id,
            kind,
            received_at,
            source: origin.clone(),
            raw,
            summary,
        },
        body: None,
    })
}

/// The body with every backslash and control character inside a JSON string escaped, as the data
/// they are: the shipped template writes neither, and data cannot end a string (ThousandEyes
/// writes a `"` in data as `&quot;`). Borrowed when there is nothing to escape.
pub(super) fn prepare(body: &[u8]) -> Cow<'_, [u8]> {
    let mut in_string = false;
    let mut out: Option<Vec<u8>> = None;
    for (at, &byte) in body.iter().enumerate() {
        let escaped: Option<String> = match byte {
            b'"' => {
                in_string = !in_string;
                None
            }
            b'\\' if in_string => Some("\\\\".into()),
            b'\n' if in_string => Some("\\n".into()),
            b'\r' if in_string => Some("\\r".into()),
            b'\t' if in_string => Some("\\t".into()),
            0..0x20 if in_string => Some(format!("\\u{byte:04x}")),
            _ => None,
        };
        match (escaped, &mut out) {
            (Some(escaped), Some(out)) => out.extend_from_slice(escaped.as_bytes()),
            (Some(escaped), None) => {
                let mut copy = Vec::with_capacity(body.len() + 16);
                copy.extend_from_slice(&body[..at]);
                copy.extend_from_slice(escaped.as_bytes());
                out = Some(copy);
            }
            (None, Some(out)) => out.push(byte),
            (None, None) => {}
        }
    }
    out.map_or(Cow::Borrowed(body), Cow::Owned)
}

/// Undoes Handlebars' HTML escaping (the characters both ThousandEyes' and this relay's
/// Handlebars escape).
fn unescape(text: String) -> String {
    if !text.contains('&') {
        return text;
    }
    const ENTITIES: [(&str, &str); 9] = [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&#x27;", "'"),
        ("&#39;", "'"),
        ("&#x60;", "`"),
        ("&#x3D;", "="),
        ("&#61;", "="),
        ("&amp;", "&"),
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match ENTITIES.iter().find(|(entity, _)| rest.starts_with(entity)) {
            Some((entity, character)) => {
                out.push_str(character);
                rest = &rest[entity.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn backslashes_and_line_breaks_in_strings_are_data() {
        let body = b"{\"name\": \"a\\nb \\u0041 \\ c\nd\",\n \"n\": 1}";
        let prepared = super::prepare(body);
        let value: serde_json::Value = serde_json::from_slice(&prepared).unwrap();
        assert_eq!(value["name"], "a\\nb \\u0041 \\ c\nd");
        let plain = b"{\"name\": \"x\"}";
        assert!(matches!(
            super::prepare(plain),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn html_escapes_are_undone_once() {
        assert_eq!(
            super::unescape("A &amp; B &quot;x&quot; &#x3D; &amp;lt; &nope".into()),
            "A & B \"x\" = &lt; &nope"
        );
    }
}
