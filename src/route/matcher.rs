//! The fields of an event that silences, maintenance windows and groups look at, and matchers
//! over them: `field=value`, `field!=value`, `field=~regex`, `field!~regex`, as Alertmanager
//! writes its matchers. A field an event lacks reads as the empty text (as a missing label does
//! in Alertmanager): `severity=` matches an event without a severity, `severity!=` one with any.

use std::borrow::Cow;
use std::fmt;

use regex::{Regex, RegexBuilder};

use crate::event::Event;

/// The most a matcher's regex may compile to: enough for any real pattern, bounded for one sent
/// over HTTP.
const MAX_REGEX_BYTES: usize = 256 * 1024;

/// One field of an event, by the name matchers and `group_by` give it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    /// The `[sources]` name that accepted it.
    Source,
    /// `alert.trigger`, `alert.clear`, …
    Kind,
    Rule,
    Test,
    Type,
    Severity,
    /// The alert's correlation key (`summary.alert_id`).
    Alert,
    /// A label's value: `label:team` reads `netops` from an Alertmanager label `team=netops`; a
    /// ThousandEyes test label, which has no value, reads as its own name.
    Label(String),
}

impl Field {
    /// The names written in config, on the command line and over HTTP.
    pub const NAMES: &str = "source, kind, rule, test, type, severity, alert, label:NAME";

    pub fn parse(name: &str) -> Result<Field, String> {
        Ok(match name {
            "source" => Self::Source,
            "kind" => Self::Kind,
            "rule" => Self::Rule,
            "test" => Self::Test,
            "type" => Self::Type,
            "severity" => Self::Severity,
            "alert" => Self::Alert,
            other => match other.strip_prefix("label:") {
                Some(label) if !label.is_empty() && !label.contains(['=', '!', '~']) => {
                    Self::Label(label.to_owned())
                }
                _ => {
                    return Err(format!("unknown field {other:?} (one of {})", Self::NAMES));
                }
            },
        })
    }

    /// This field of `event`, empty when it has none.
    pub fn value<'a>(&self, event: &'a Event) -> Cow<'a, str> {
        let s = &event.summary;
        let text = |value: &'a Option<String>| Cow::Borrowed(value.as_deref().unwrap_or(""));
        match self {
            Self::Source => Cow::Borrowed(event.source.name.as_str()),
            Self::Kind => Cow::Borrowed(event.kind.as_str()),
            Self::Rule => text(&s.rule),
            Self::Test => text(&s.test),
            Self::Type => text(&s.alert_type),
            Self::Severity => text(&s.severity),
            Self::Alert => text(&s.alert_id),
            Self::Label(name) => s
                .labels
                .iter()
                .find_map(|label| match label.split_once('=') {
                    Some((key, value)) if key == name => Some(Cow::Borrowed(value)),
                    None if label == name => Some(Cow::Borrowed(label.as_str())),
                    _ => None,
                })
                .unwrap_or(Cow::Borrowed("")),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Source => f.write_str("source"),
            Self::Kind => f.write_str("kind"),
            Self::Rule => f.write_str("rule"),
            Self::Test => f.write_str("test"),
            Self::Type => f.write_str("type"),
            Self::Severity => f.write_str("severity"),
            Self::Alert => f.write_str("alert"),
            Self::Label(name) => write!(f, "label:{name}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    NotEqual,
    Matches,
    NotMatches,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Self::Equal => "=",
            Self::NotEqual => "!=",
            Self::Matches => "=~",
            Self::NotMatches => "!~",
        }
    }
}

/// `field op value`: holds for an event whose field equals (`=`), differs from (`!=`), contains a
/// match of (`=~`) or contains no match of (`!~`) the value. Regexes are not anchored, as in
/// `[[routes]]`: `rule=~^Latency` names rules that start with Latency.
#[derive(Debug, Clone)]
pub struct Matcher {
    field: Field,
    op: Op,
    value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Reads `field=value` (or `!=`, `=~`, `!~`); the value may be in double quotes.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let text = text.trim();
        let at = text.find(['=', '!']).ok_or_else(|| {
            format!("{text:?} is not a matcher: write field=value, field!=value, field=~regex or field!~regex")
        })?;
        let field = Field::parse(text[..at].trim())?;
        let rest = &text[at..];
        let op = [Op::Matches, Op::NotMatches, Op::NotEqual, Op::Equal]
            .into_iter()
            .find(|op| rest.starts_with(op.as_str()))
            .ok_or_else(|| format!("{text:?}: after the field, write =, !=, =~ or !~"))?;
        let value = rest[op.as_str().len()..].trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
            .to_owned();
        let regex = match op {
            Op::Matches | Op::NotMatches => Some(
                RegexBuilder::new(&value)
                    .size_limit(MAX_REGEX_BYTES)
                    .build()
                    .map_err(|e| format!("{text:?}: not a regex: {e}"))?,
            ),
            Op::Equal | Op::NotEqual => None,
        };
        Ok(Matcher {
            field,
            op,
            value,
            regex,
        })
    }

    pub fn matches(&self, event: &Event) -> bool {
        let value = self.field.value(event);
        match (self.op, &self.regex) {
            (Op::Equal, _) => value == self.value,
            (Op::NotEqual, _) => value != self.value,
            (Op::Matches, Some(regex)) => regex.is_match(&value),
            (Op::NotMatches, Some(regex)) => !regex.is_match(&value),
            // `parse` compiles a regex for both regex operators.
            (Op::Matches | Op::NotMatches, None) => false,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.field, self.op.as_str(), self.value)
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// Whether every one of `matchers` holds for `event` (none holds for all).
pub fn all_match(matchers: &[Matcher], event: &Event) -> bool {
    matchers.iter().all(|m| m.matches(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        let body = include_str!("../../samples/alertmanager/firing.json");
        crate::samples::SAMPLES
            .iter()
            .find(|s| s.body == body)
            .unwrap()
            .events()
            .remove(0)
    }

    #[test]
    fn matchers_read_as_alertmanager_writes_them() {
        let event = event();
        let holds = |text: &str| Matcher::parse(text).unwrap().matches(&event);
        assert!(holds("rule=HighLatency"));
        assert!(holds("rule = \"HighLatency\""));
        assert!(!holds("rule=highlatency"), "= is exact");
        assert!(holds("rule!=Other"));
        assert!(holds("rule=~^High"));
        assert!(holds("rule=~Lat"), "not anchored");
        assert!(!holds("rule!~Lat"));
        assert!(holds("label:team=netops"));
        assert!(holds("label:missing="), "a missing field reads as empty");
        assert!(holds("test!=x"));
        assert!(holds("kind=alert.trigger"));
        assert!(holds("source=alertmanager"));
        assert_eq!(
            Matcher::parse("rule=~^High").unwrap().to_string(),
            "rule=~^High"
        );
        for bad in ["rule", "colour=red", "rule=~(", "label:=x", "rule<x"] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
        assert!(
            Matcher::parse("colour=red")
                .unwrap_err()
                .contains("one of source, kind")
        );
    }
}
