//! Reading the fields of a body: texts, numbers as text, the dates ThousandEyes and others send,
//! links, durations. Shared by the source kinds; knows nothing of events.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};

/// A non-empty string, or a number as its decimal text.
pub(super) fn text_field(object: &Map<String, Value>, key: &str) -> Option<String> {
    text_value(object.get(key)?)
}

/// A non-empty string, or a number as its decimal text.
pub(super) fn text_value(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn date_field(object: &Map<String, Value>, key: &str) -> Option<DateTime<Utc>> {
    parse_date(object.get(key)?)
}

/// ThousandEyes dates: epoch seconds (old agent notifications), `"YYYY-MM-DD hh:mm:ss ZONE"`
/// (`*Zoned` fields) or `"YYYY-MM-DD hh:mm:ss"` in the account's zone, which the body does not
/// name: such times are read as UTC. RFC 3339 (Alertmanager, Grafana) is accepted too.
pub fn parse_date(value: &Value) -> Option<DateTime<Utc>> {
    if let Some(secs) = value.as_i64() {
        return Utc.timestamp_opt(secs, 0).single();
    }
    let text = value.as_str()?.trim();
    if let Ok(date) = DateTime::parse_from_rfc3339(text) {
        return Some(date.with_timezone(&Utc));
    }
    if let Some(naive) = parse_local(text) {
        return Some(naive.and_utc());
    }
    let (local, zone) = text.rsplit_once(' ')?;
    let naive = parse_local(local)?;
    if matches!(zone, "UTC" | "GMT" | "Z") {
        return Some(naive.and_utc());
    }
    if let Ok(tz) = zone.parse::<chrono_tz::Tz>() {
        return tz
            .from_local_datetime(&naive)
            .earliest()
            .map(|d| d.with_timezone(&Utc));
    }
    let offset =
        DateTime::parse_from_str(&format!("{local} {zone}"), "%Y-%m-%d %H:%M:%S %z").ok()?;
    Some(offset.with_timezone(&Utc))
}

/// `YYYY-MM-DD hh:mm:ss`, the one local format ThousandEyes sends (read by hand: this runs for
/// every date of every event, and chrono's format parser is several times slower).
fn parse_local(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = text.get(range)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    chrono::NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?
        .and_hms_opt(number(11..13)?, number(14..16)?, number(17..19)?)
}

pub(super) fn rfc3339(date: DateTime<Utc>) -> String {
    date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// How long from `start` to `end`, in its two largest units, enough to read at a glance: `8m 4s`,
/// `113d 13h`, `1h`; `0s` for no time at all.
pub(super) fn duration_between(start: &DateTime<Utc>, end: &DateTime<Utc>) -> Option<String> {
    let mut rest = u64::try_from((*end - *start).num_seconds()).ok()?;
    let mut parts = Vec::new();
    for (size, unit) in [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")] {
        let count = rest / size;
        rest %= size;
        if count > 0 && parts.len() < 2 {
            parts.push(format!("{count}{unit}"));
        }
    }
    Some(if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    })
}

/// Only http(s) links are offered to templates as links: an `http://` or `https://` prefix, a
/// host, and no whitespace or control character anywhere.
pub fn is_http_url(text: &str) -> bool {
    let lower = |n: usize| text.get(..n).map(str::to_ascii_lowercase);
    let rest = if lower(8).as_deref() == Some("https://") {
        &text[8..]
    } else if lower(7).as_deref() == Some("http://") {
        &text[7..]
    } else {
        return false;
    };
    !rest.is_empty()
        && !rest.starts_with('/')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The `body-` id of a body that carries none: its SHA-256, the same in every build, since it is
/// kept as a dedup key across restarts and upgrades.
pub(super) fn body_id(body: &[u8]) -> String {
    format!("body-{}", crate::tls::sha256_hex(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_at_a_glance() {
        let at = |s: &str| parse_date(&json!(s)).unwrap();
        let d = |a: &str, b: &str| duration_between(&at(a), &at(b));
        assert_eq!(
            d("2014-08-24 01:01:47", "2014-08-24 01:09:51").as_deref(),
            Some("8m 4s")
        );
        assert_eq!(
            d("2016-06-29 04:46:14", "2016-10-20 18:22:28").as_deref(),
            Some("113d 13h")
        );
        assert_eq!(
            d("2016-06-29 04:46:14", "2016-06-29 05:46:14").as_deref(),
            Some("1h")
        );
        assert_eq!(d("2016-06-29 04:46:14", "2016-06-29 04:00:00"), None);
        assert_eq!(
            d("2016-06-29 04:46:14", "2016-06-30 04:51:14").as_deref(),
            Some("1d 5m")
        );
        assert_eq!(
            d("2016-06-29 04:46:14", "2016-06-29 04:46:14").as_deref(),
            Some("0s")
        );
    }

    #[test]
    fn dates_in_every_form() {
        let utc = |s: &str| parse_date(&json!(s)).map(rfc3339);
        assert_eq!(
            utc("2025-03-17 19:43:00 UTC").as_deref(),
            Some("2025-03-17T19:43:00Z")
        );
        assert_eq!(
            utc("2025-03-17 19:43:00").as_deref(),
            Some("2025-03-17T19:43:00Z")
        );
        assert_eq!(
            utc("2025-03-17 19:43:00 Europe/Paris").as_deref(),
            Some("2025-03-17T18:43:00Z")
        );
        assert_eq!(
            utc("2025-03-17 19:43:00 +0200").as_deref(),
            Some("2025-03-17T17:43:00Z")
        );
        assert_eq!(
            utc("2025-03-17T19:43:00.123+01:00").as_deref(),
            Some("2025-03-17T18:43:00Z")
        );
        assert_eq!(utc("yesterday"), None);
        assert_eq!(utc("2025-13-17 19:43:00"), None);
        assert_eq!(utc("2025-03-17 19:43:0x"), None);
    }

    #[test]
    fn only_http_links_are_links() {
        assert!(is_http_url(
            "https://app.thousandeyes.com/alerts/list?__a=11&alertId=1"
        ));
        assert!(is_http_url("HTTP://example.com"));
        for not_a_link in [
            "javascript:alert(1)",
            "https://",
            "https:///x",
            "ftp://x",
            "https://a b",
            "http://x\n",
        ] {
            assert!(!is_http_url(not_a_link), "{not_a_link}");
        }
    }
}
