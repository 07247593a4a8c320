//! Slack incoming webhooks: the rendered Block Kit message is POSTed as it is.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{CommonOptions, RateLimit};
use super::{DeliveryError, Destination, HttpTarget, Receipt};
use crate::error::ConfigError;
use crate::event::Event;
use crate::render::Message;
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
