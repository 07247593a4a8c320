//! Generic webhooks: the rendered JSON body is POSTed with the configured headers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::escape::Escape;
use super::{
    AnyDestination, DeliveryError, Destination, Facts, HttpTarget, Kind, Message, Options,
    Outgoing, Pace, Part, Place, Sent,
};
use crate::error::ConfigError;
use crate::event::Event;
use crate::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: Option<Secret>,
    pub url_file: Option<PathBuf>,
    /// Extra request headers (`Authorization = "Token …"`); values are secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
}

pub static KIND: Kind = Kind::new::<WebhookConfig>("webhook", &FACTS);

impl Options for WebhookConfig {
    fn build(&self, at: &Place<'_>) -> Result<Box<dyn AnyDestination>, ConfigError> {
        Ok(Box::new(Webhook::new(self, at)?))
    }
}

pub struct Webhook {
    target: HttpTarget,
}

impl Webhook {
    pub fn new(config: &WebhookConfig, at: &Place<'_>) -> Result<Self, ConfigError> {
        let key = &at.key;
        let target = HttpTarget::new(
            key,
            config.url.as_ref(),
            config.url_file.as_deref(),
            at.base_dir,
            at.http,
        )?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let header_key = format!("{key}.headers.{name}");
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| ConfigError::new(&header_key, "is not a valid header name"))?;
            let mut value = HeaderValue::try_from(value.expose())
                .map_err(|_| ConfigError::new(&header_key, "is not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Self {
            target: target.with_headers(headers),
        })
    }
}

impl Destination for Webhook {
    async fn deliver(&self, outgoing: &Outgoing<'_>) -> Result<Sent, DeliveryError> {
        let Message::JsonText(body) = outgoing.first()? else {
            return Err(DeliveryError::Rejected(
                "a webhook takes a JSON body".into(),
            ));
        };
        Ok(self.target.post_json(body.clone()).await?.into())
    }
}

/// A generic webhook: any JSON body, every `{{value}}` as JSON string content, unpaced.
pub struct WebhookFacts;

pub static FACTS: WebhookFacts = WebhookFacts;

impl Facts for WebhookFacts {
    fn escape(&self, _: Part) -> Escape {
        Escape::Json
    }

    fn builtin(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "default.hbs",
                include_str!("../../templates/webhook/default.hbs"),
            ),
            (
                "group.hbs",
                include_str!("../../templates/webhook/group.hbs"),
            ),
        ]
    }

    fn message(&self, texts: Vec<String>) -> Result<Message, String> {
        super::json_text(texts).map(Message::JsonText)
    }

    fn fallback(&self, event: &Event) -> Message {
        Message::JsonText(
            json!({
                "event": { "id": event.id, "type": event.event_type, "kind": event.kind },
                "summary": event.summary,
                "payload": Value::Object(event.raw.clone()),
            })
            .to_string(),
        )
    }

    fn pace(&self) -> Pace {
        Pace::UNLIMITED
    }
}
