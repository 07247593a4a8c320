//! Checks a rendered message against what its destination accepts, so that a template that
//! renders something the peer would refuse is caught here and replaced by the fallback.

use serde_json::Value;

use super::{EmailMessage, Message};
use crate::deliver::DestinationKind;

/// Slack refuses a message with more than 50 blocks.
pub const SLACK_MAX_BLOCKS: usize = 50;
/// Slack refuses section text over 3,000 characters.
pub const SLACK_MAX_SECTION_TEXT: usize = 3000;
/// Slack refuses a header over 150 characters.
pub const SLACK_MAX_HEADER_TEXT: usize = 150;
/// Slack refuses more than 10 fields in a section, each over 2,000 characters.
pub const SLACK_MAX_FIELDS: usize = 10;
pub const SLACK_MAX_FIELD_TEXT: usize = 2000;
/// Teams refuses a message over 28 KB, envelope included.
pub const TEAMS_MAX_BYTES: usize = 28 * 1024;

pub fn validate(kind: DestinationKind, message: &Message) -> Result<(), String> {
    match (kind, message) {
        (DestinationKind::Slack, Message::Json(body)) => slack(body),
        (DestinationKind::Teams, Message::Json(card)) => teams(card),
        (DestinationKind::Webhook, Message::Json(_)) => Ok(()),
        (DestinationKind::Email, Message::Email(email)) => email_message(email),
        (DestinationKind::Console, Message::Text(_)) => Ok(()),
        (kind, _) => Err(format!("not a {} message", kind.as_str())),
    }
}

fn slack(body: &Value) -> Result<(), String> {
    let body = body
        .as_object()
        .ok_or("a Slack message must be a JSON object")?;
    let has = |key: &str| match body.get(key) {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => false,
    };
    if !has("text") && !has("blocks") && !has("attachments") {
        return Err("a Slack message needs \"text\", \"blocks\" or \"attachments\"".into());
    }
    let Some(blocks) = body.get("blocks") else {
        return Ok(());
    };
    let blocks = blocks.as_array().ok_or("\"blocks\" must be a list")?;
    if blocks.len() > SLACK_MAX_BLOCKS {
        return Err(format!(
            "{} blocks; Slack accepts at most {SLACK_MAX_BLOCKS}",
            blocks.len()
        ));
    }
    for (i, block) in blocks.iter().enumerate() {
        let kind = block
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("blocks[{i}] has no \"type\""))?;
        let text_len = |v: Option<&Value>| {
            v.and_then(|t| t.get("text"))
                .and_then(Value::as_str)
                .map_or(0, |s| s.chars().count())
        };
        let limit = match kind {
            "section" => SLACK_MAX_SECTION_TEXT,
            "header" => SLACK_MAX_HEADER_TEXT,
            _ => continue,
        };
        let len = text_len(block.get("text"));
        if len > limit {
            return Err(format!(
                "blocks[{i}] ({kind}) text has {len} characters; Slack accepts at most {limit}"
            ));
        }
        if let Some(fields) = block.get("fields").and_then(Value::as_array) {
            if fields.len() > SLACK_MAX_FIELDS {
                return Err(format!(
                    "blocks[{i}] has more than {SLACK_MAX_FIELDS} fields"
                ));
            }
            if fields
                .iter()
                .any(|f| text_len(Some(f)) > SLACK_MAX_FIELD_TEXT)
            {
                return Err(format!(
                    "blocks[{i}] has a field over {SLACK_MAX_FIELD_TEXT} characters"
                ));
            }
        }
    }
    Ok(())
}

fn teams(card: &Value) -> Result<(), String> {
    if card.get("type").and_then(Value::as_str) != Some("AdaptiveCard") {
        return Err("a Teams card must have \"type\": \"AdaptiveCard\"".into());
    }
    if card.get("version").and_then(Value::as_str).is_none() {
        return Err("a Teams card needs a \"version\" (\"1.4\")".into());
    }
    if let Some(body) = card.get("body")
        && !body.is_array()
    {
        return Err("the card's \"body\" must be a list".into());
    }
    let size = crate::deliver::teams::envelope(card).to_string().len();
    if size > TEAMS_MAX_BYTES {
        return Err(format!(
            "the card is {size} bytes; Teams accepts at most {TEAMS_MAX_BYTES}"
        ));
    }
    Ok(())
}

fn email_message(email: &EmailMessage) -> Result<(), String> {
    if email.subject.trim().is_empty() {
        return Err("the subject is empty".into());
    }
    if email.subject.contains(['\r', '\n']) {
        return Err("the subject must be one line".into());
    }
    if email.text.trim().is_empty() && email.html.trim().is_empty() {
        return Err("the email has no text and no HTML".into());
    }
    Ok(())
}
