//! The error every component's config check returns: the key and the problem, never the value;
//! and how a value that does not fit its key is described without showing it.

/// A configuration problem, naming the key and saying why.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// What is wrong with a value the config loader read, without quoting it: a string found where
/// another type was expected may be a secret written under the wrong key.
pub fn value_problem(kind: &figment::error::Kind) -> String {
    use figment::error::{Actual, Kind};
    match kind {
        Kind::InvalidType(Actual::Str(_), expected) => {
            format!("invalid type: found a string, expected {expected}")
        }
        Kind::InvalidValue(Actual::Str(_), expected) => {
            format!("invalid value: a string, expected {expected}")
        }
        other => other.to_string(),
    }
}
