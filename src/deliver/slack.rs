//! Slack incoming webhooks: the rendered Block Kit message is POSTed as it is.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{CommonOptions, RateLimit};
use serde_json::{Value, json};

use super::escape::{Escape, slack_entities};
use super::{DeliveryError, Destination, Facts, HttpTarget, Message, Pace, Part, Receipt};
use crate::error::ConfigError;
use crate::event::Event;
use crate::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming webhook URL (`https://hooks.slack.com/services/…`); a secret.
    pub url: Option<Secret>,
    pub url_file: Option<PathBuf>,
    pub templates: Option<PathBuf>,
    pub rate_limit: Option<RateLimit>,
    pub burst: Option<u32>,
}

impl SlackConfig {
    pub fn common(&self) -> CommonOptions {
        CommonOptions {
            templates: self.templates.clone(),
            rate_limit: self.rate_limit,
            burst: self.burst,
        }
    }
}

pub struct Slack {
    target: HttpTarget,
}

impl Slack {
    pub fn new(
        key: &str,
        config: &SlackConfig,
        base_dir: &Path,
        http: &reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let target = HttpTarget::new(
            key,
            config.url.as_ref(),
            config.url_file.as_deref(),
            base_dir,
            http,
        )?;
        Ok(Self { target })
    }
}

impl Destination for Slack {
    /// Slack answers `200 ok`; errors come as 4xx with a reason in the body
    /// (`invalid_payload`, `channel_not_found`, …) and are permanent, 429 asks us to slow down.
    async fn deliver(&self, _event: &Event, message: &Message) -> Result<Receipt, DeliveryError> {
        let Message::Json(body) = message else {
            return Err(DeliveryError::Rejected("Slack takes a JSON message".into()));
        };
        self.target.post_json(body).await
    }
}

/// Slack refuses a message with more than 50 blocks.
const SLACK_MAX_BLOCKS: usize = 50;
/// Slack refuses section text over 3,000 characters.
const SLACK_MAX_SECTION_TEXT: usize = 3000;
/// Slack refuses a header over 150 characters.
const SLACK_MAX_HEADER_TEXT: usize = 150;
/// Slack refuses more than 10 fields in a section, each over 2,000 characters.
const SLACK_MAX_FIELDS: usize = 10;
const SLACK_MAX_FIELD_TEXT: usize = 2000;
/// Slack: Block Kit JSON, every `{{value}}` with Slack's entities (no mention, no link), about one
/// message a second per webhook with short bursts.
pub struct SlackFacts;

pub static FACTS: SlackFacts = SlackFacts;

impl Facts for SlackFacts {
    fn escape(&self, _: Part) -> Escape {
        Escape::Slack
    }

    fn builtin(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            "default.hbs",
            include_str!("../../templates/slack/default.hbs"),
        )]
    }

    fn message(&self, texts: Vec<String>) -> Result<Message, String> {
        let body = super::json_body(texts)?;
        validate(&body).map_err(|reason| format!("invalid: {reason}"))?;
        Ok(Message::Json(body))
    }

    fn fallback(&self, event: &Event) -> Message {
        let mut text = slack_entities(&super::headline(event));
        if let Some(link) = event.summary.link.as_deref() {
            text.push_str(&format!("\n<{link}|Open in ThousandEyes>"));
        }
        Message::Json(json!({ "text": text }))
    }

    /// Slack accepts about one message per second per webhook, with short bursts.
    fn pace(&self) -> Pace {
        Pace::per_second(1, Some(3))
    }
}

/// What Slack refuses: no text at all, too many blocks, texts over Slack's limits.
fn validate(body: &Value) -> Result<(), String> {
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
