//! What a destination receives: the message rendered for it, in the parts its templates write.

use std::fmt;

use serde_json::Value;

/// What a destination receives, before it is put on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Slack message or Teams card (the envelope is added on delivery).
    Json(Value),
    /// A webhook body as its template wrote it, checked to be one JSON value: sent as it is,
    /// without being parsed into a value and written out again.
    JsonText(String),
    Email(EmailMessage),
    /// Console output.
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmailMessage {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Message {
    /// About how many bytes the message takes in memory.
    pub fn memory_bytes(&self) -> usize {
        match self {
            Self::Json(value) => crate::memory::value_bytes(value),
            Self::JsonText(text) => text.len(),
            Self::Email(email) => email.subject.len() + email.text.len() + email.html.len(),
            Self::Text(text) => text.len(),
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(value) => match serde_json::to_string_pretty(value) {
                Ok(text) => f.write_str(&text),
                Err(_) => write!(f, "{value}"),
            },
            Self::JsonText(text) => f.write_str(text),
            Self::Email(email) => write!(
                f,
                "Subject: {}\n\n--- text/plain ---\n{}\n--- text/html ---\n{}",
                email.subject, email.text, email.html
            ),
            Self::Text(text) => f.write_str(text),
        }
    }
}

/// One part of a message and the template that renders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Body,
    Subject,
    Text,
    Html,
}

impl Part {
    /// How the part's template file ends: `<event kind or default><suffix>`.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Body => ".hbs",
            Self::Subject => ".subject.hbs",
            Self::Text => ".txt.hbs",
            Self::Html => ".html.hbs",
        }
    }
}
