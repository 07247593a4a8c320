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

/// Cuts known secrets out of text that comes from elsewhere (a peer's answer, a library's error
/// message), whatever their length: a short secret is still a secret.
#[derive(Debug, Clone, Default)]
pub struct Redactor(Vec<String>);

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        // Longest first, so that a whole value goes before the parts it contains.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self(secrets)
    }

    /// `text` with every secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
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
    fn redacts_every_secret_whatever_its_length() {
        let redactor = Redactor::new(["Token abc".into(), "abc".into(), String::new()]);
        assert_eq!(
            redactor.redact("got Token abc and abc, then abcd"),
            "got *** and ***, then ***d"
        );
    }

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("https://hooks.slack.com/services/T/B/XYZ");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "https://hooks.slack.com/services/T/B/XYZ");
    }
}
