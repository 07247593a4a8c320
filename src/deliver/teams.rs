//! Microsoft Teams Workflows webhooks: the rendered Adaptive Card is wrapped in the message
//! envelope that the "Post to a channel when a webhook request is received" flow expects.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};

use super::escape::{Escape, teams_markdown};
use super::{
    AnyDestination, DeliveryError, Destination, Facts, HttpTarget, Kind, Message, Options,
    Outgoing, Pace, Part, Place, Sent,
};
use crate::error::ConfigError;
use crate::event::{Correlation, Event};
use crate::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The Workflows webhook URL; a secret (it carries its own signature).
    pub url: Option<Secret>,
    pub url_file: Option<PathBuf>,
}

pub static KIND: Kind = Kind::new::<TeamsConfig>("teams", &FACTS);

impl Options for TeamsConfig {
    fn build(&self, at: &Place<'_>) -> Result<Box<dyn AnyDestination>, ConfigError> {
        Ok(Box::new(Teams::new(self, at)?))
    }
}

pub struct Teams {
    target: HttpTarget,
}

impl Teams {
    pub fn new(config: &TeamsConfig, at: &Place<'_>) -> Result<Self, ConfigError> {
        let target = HttpTarget::new(
            &at.key,
            config.url.as_ref(),
            config.url_file.as_deref(),
            at.base_dir,
            at.http,
        )?;
        Ok(Self { target })
    }
}

/// The Workflows message envelope around one Adaptive Card. `correlation` (`{key, state}`) goes
/// beside the attachments when the event has a lifecycle: a Workflows webhook can neither update
/// a card nor reply to one, but a flow can use it to find the trigger's message (see the README).
pub fn envelope(card: &Value, correlation: Option<Correlation<'_>>) -> Value {
    let mut envelope = json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }]
    });
    // A key longer than any real one (ThousandEyes sends numbers and UUIDs) is left out, so that
    // the size checked in `validate` stays the size sent.
    if let Some(correlation) = correlation.filter(|c| c.key.len() <= MAX_CORRELATION_KEY) {
        envelope["correlation"] = json!(correlation);
    }
    envelope
}

/// Longest correlation key put in the envelope; `validate` keeps room for it.
const MAX_CORRELATION_KEY: usize = 256;
/// What the correlation adds at most: the key and its JSON around it.
const CORRELATION_ROOM: usize = MAX_CORRELATION_KEY + 64;

impl Destination for Teams {
    /// Workflows answer `202 Accepted`; any 2xx is success.
    async fn deliver(&self, outgoing: &Outgoing<'_>) -> Result<Sent, DeliveryError> {
        let Message::Json(card) = outgoing.first()? else {
            return Err(DeliveryError::Rejected(
                "Teams takes an Adaptive Card".into(),
            ));
        };
        let envelope = envelope(card, outgoing.event.correlation());
        Ok(self.target.post_json(envelope.to_string()).await?.into())
    }
}

/// Teams refuses a message over 28 KB, envelope included.
const TEAMS_MAX_BYTES: usize = 28 * 1024;

/// Teams: an Adaptive Card in the Workflows envelope, every `{{value}}` with markdown links broken,
/// a few messages a second.
pub struct TeamsFacts;

pub static FACTS: TeamsFacts = TeamsFacts;

impl Facts for TeamsFacts {
    fn escape(&self, _: Part) -> Escape {
        Escape::Teams
    }

    fn builtin(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "default.hbs",
                include_str!("../../templates/teams/default.hbs"),
            ),
            ("group.hbs", include_str!("../../templates/teams/group.hbs")),
        ]
    }

    fn message(&self, texts: Vec<String>) -> Result<Message, String> {
        let card = super::json_body(texts)?;
        validate(&card).map_err(|reason| format!("invalid: {reason}"))?;
        Ok(Message::Json(card))
    }

    fn fallback(&self, event: &Event) -> Message {
        let mut card = json!({
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [{ "type": "TextBlock", "text": teams_markdown(&super::headline(event)), "wrap": true, "weight": "Bolder" }]
        });
        if let Some(link) = event.summary.link.as_deref() {
            let title = format!("Open in {}", event.source.label());
            card["actions"] = json!([{ "type": "Action.OpenUrl", "title": title, "url": link }]);
        }
        Message::Json(card)
    }

    /// Teams Workflows take a few messages a second.
    fn pace(&self) -> Pace {
        Pace::per_second(4, None)
    }

    fn sent(&self, message: &Message, event: &Event) -> Option<Value> {
        match message {
            Message::Json(card) => Some(envelope(card, event.correlation())),
            _ => None,
        }
    }
}

/// What Teams refuses: not an Adaptive Card, no version, over its size.
fn validate(card: &Value) -> Result<(), String> {
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
    let size = envelope(card, None).to_string().len() + CORRELATION_ROOM;
    if size > TEAMS_MAX_BYTES {
        return Err(format!(
            "the card is {size} bytes; Teams accepts at most {TEAMS_MAX_BYTES}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_resort_card_shows_a_hostile_title_as_text() {
        let body = br#"{"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": "1",
            "alert": {"alertId": 7, "ruleName": "[click](https://evil.example) ![x](https://evil.example/x.png) [r]",
                      "testName": "t\n[r]: https://evil.example", "active": 1}}"#;
        let event = Event::parse(body, chrono::Utc::now()).unwrap();
        let Message::Json(card) = FACTS.fallback(&event) else {
            panic!("a card")
        };
        let text = card["body"][0]["text"].as_str().unwrap();
        assert!(text.contains("click"), "{text}");
        // No `]` is followed by what would close a link, an image or a reference.
        for closing in ["](", "][", "]:"] {
            assert!(!text.contains(closing), "{closing} in {text}");
        }
        validate(&card).unwrap();
    }
}
