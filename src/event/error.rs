//! Why a body is refused, and the limits it is measured against (`shape.rs` measures it).

/// ThousandEyes bodies nest four levels deep; anything far deeper is not an alert.
pub const MAX_DEPTH: usize = 32;
/// Longer than any rule, test or metric text; bounds what a template may be asked to render.
pub const MAX_STRING_BYTES: usize = 64 * 1024;
/// JSON values (objects, arrays, strings, numbers, booleans, nulls) in one body. An alert with
/// 3,000 agents holds about 25,000; each value costs about 110 bytes parsed, whatever its text.
pub const MAX_VALUES: usize = 100_000;

/// A body without `eventType`; to a sender, with a hint about `[sources]`; to a tool that is told
/// the source, without.
pub(super) const NO_EVENT_TYPE: &str =
    "body has no string field \"eventType\": not a ThousandEyes classic webhook";

/// Why a body was refused; the message goes back to the sender in a 400.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("body is not valid JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("body must be a JSON object")]
    NotObject,
    #[error("{NO_EVENT_TYPE} (other senders need a [sources] entry of their kind)")]
    NoEventType,
    #[error("body nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("body has a string longer than {MAX_STRING_BYTES} bytes")]
    StringTooLong,
    #[error("body holds more than {MAX_VALUES} JSON values")]
    TooManyValues,
    /// The body is JSON but not what its source sends: the message names what is wrong.
    #[error("{0}")]
    Invalid(String),
}

impl EventError {
    /// Whether the body is refused for its size (413) rather than its content (400).
    pub fn too_large(&self) -> bool {
        matches!(self, Self::TooManyValues)
    }
}
