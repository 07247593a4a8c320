//! A string that never prints itself: webhook URLs, passwords and tokens.

use std::fmt;

use serde::Deserialize;

/// Holds a secret value. `Debug` and `Display` print `***`, so a secret cannot reach a log line,
/// an error message or `check` output by accident; [`Secret::expose`] is the only way out.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it (a request, an SMTP login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Reads a secret given either inline (`key`) or from a file (`key_file`), the way Kubernetes
/// mounts secrets. Exactly one of the two must be set. Trailing newlines in the file are dropped.
pub fn from_value_or_file(
    key: &str,
    value: Option<&Secret>,
    file: Option<&std::path::Path>,
) -> Result<Secret, String> {
    match (value, file) {
        (Some(value), None) => Ok(value.clone()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = text.trim_end_matches(['\r', '\n']);
                if text.is_empty() {
                    Err(format!("{key}_file: {} is empty", path.display()))
                } else {
                    Ok(Secret::new(text))
                }
            }
            Err(e) => Err(format!("{key}_file: cannot read {}: {e}", path.display())),
        },
        (Some(_), Some(_)) => Err(format!("set {key} or {key}_file, not both")),
        (None, None) => Err(format!("{key} (or {key}_file) is required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("https://hooks.slack.com/services/T/B/XYZ");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "https://hooks.slack.com/services/T/B/XYZ");
    }
}
