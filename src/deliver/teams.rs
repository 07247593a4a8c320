//! Microsoft Teams Workflows webhooks: the rendered Adaptive Card is wrapped in the message
//! envelope that the "Post to a channel when a webhook request is received" flow expects.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{CommonOptions, RateLimit};
use super::{DeliveryError, Destination, HttpTarget, Receipt};
use crate::error::ConfigError;
use crate::event::Event;
use crate::render::Message;
use crate::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The Workflows webhook URL; a secret (it carries its own signature).
    pub url: Option<Secret>,
    pub url_file: Option<PathBuf>,
    pub templates: Option<PathBuf>,
    pub rate_limit: Option<RateLimit>,
    pub burst: Option<u32>,
}

impl TeamsConfig {
    pub fn common(&self) -> CommonOptions {
        CommonOptions {
            templates: self.templates.clone(),
            rate_limit: self.rate_limit,
            burst: self.burst,
        }
    }
}

pub struct Teams {
    target: HttpTarget,
}

impl Teams {
    pub fn new(
        key: &str,
        config: &TeamsConfig,
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

/// The Workflows message envelope around one Adaptive Card.
pub fn envelope(card: &Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }]
    })
}

impl Destination for Teams {
    /// Workflows answer `202 Accepted`; any 2xx is success.
    async fn deliver(&self, _event: &Event, message: &Message) -> Result<Receipt, DeliveryError> {
        let Message::Json(card) = message else {
            return Err(DeliveryError::Rejected(
                "Teams takes an Adaptive Card".into(),
            ));
        };
        self.target.post_json(&envelope(card)).await
    }
}
