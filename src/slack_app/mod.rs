//! `[slack_app]`: the clicks on the buttons of the relay's Slack messages (Acknowledge,
//! Silence, and their undoing; see `acted`), received one of two ways: Socket Mode
//! (`socket.rs`: the relay opens a WebSocket to Slack, no public endpoint needed) or a Request
//! URL on the ingest listener (`signature.rs`: each request signed with the app's signing
//! secret). Either way a click is handled here (`click.rs`): kept in the store once (replicas
//! that both hear it agree there), acted on, and shown by updating its message.

pub mod click;
pub mod manifest;
pub mod signature;
pub mod socket;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ConfigError;
use crate::secret::{Secret, from_value_or_file};

/// Where the Request URL is, unless `path` says otherwise.
pub const DEFAULT_PATH: &str = "/slack/actions";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackAppConfig {
    /// Socket Mode: the app-level token (`xapp-…`, with `connections:write`); a secret.
    pub app_token: Option<Secret>,
    pub app_token_file: Option<PathBuf>,
    /// Request URL: the app's signing secret; a secret.
    pub signing_secret: Option<Secret>,
    pub signing_secret_file: Option<PathBuf>,
    /// Request URL: its path on the ingest listener.
    #[serde(default = "default_path")]
    pub path: String,
    /// Where the Web API is (`apps.connections.open`).
    pub api_url: Option<String>,
    /// The Slack user ids who may act; empty: anyone in the channel.
    #[serde(default)]
    pub allowed_users: Vec<String>,
}

fn default_path() -> String {
    DEFAULT_PATH.to_owned()
}

/// How the clicks arrive.
#[derive(Debug, Clone)]
pub enum Receiver {
    /// Socket Mode, with the app-level token.
    Socket {
        app_token: Secret,
        api_url: url::Url,
    },
    /// A Request URL at `path`, signed with the signing secret.
    RequestUrl {
        signing_secret: Secret,
        path: String,
    },
}

/// `[slack_app]` as the relay uses it.
#[derive(Debug, Clone)]
pub struct SlackApp {
    pub receiver: Receiver,
    pub allowed_users: Vec<String>,
}

impl SlackApp {
    /// The app `config` describes, its secret files read relative to `base_dir`.
    pub fn new(config: &SlackAppConfig, base_dir: &Path) -> Result<SlackApp, ConfigError> {
        let key = |field: &str| format!("slack_app.{field}");
        let socket = config.app_token.is_some() || config.app_token_file.is_some();
        let url = config.signing_secret.is_some() || config.signing_secret_file.is_some();
        let receiver = match (socket, url) {
            (true, true) => {
                return Err(ConfigError::new(
                    key("app_token"),
                    "set app_token (Socket Mode) or signing_secret (a Request URL), not both",
                ));
            }
            (false, false) => {
                return Err(ConfigError::new(
                    "slack_app",
                    "needs app_token (Socket Mode, no public endpoint) or signing_secret (a Request URL)",
                ));
            }
            (true, false) => {
                let file = config.app_token_file.as_ref().map(|f| base_dir.join(f));
                let app_token =
                    from_value_or_file("app_token", config.app_token.as_ref(), file.as_deref())
                        .map_err(|reason| ConfigError::new(key("app_token"), reason))?;
                if !app_token.expose().starts_with("xapp-") {
                    return Err(ConfigError::new(
                        key("app_token"),
                        "is not an app-level token (xapp-…): create one under Basic Information → App-Level Tokens, with connections:write",
                    ));
                }
                let api_url = config
                    .api_url
                    .as_deref()
                    .unwrap_or(crate::deliver::slack::DEFAULT_API_URL);
                let api_url = url::Url::parse(api_url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| ConfigError::new(key("api_url"), "is not an http(s) URL"))?;
                Receiver::Socket { app_token, api_url }
            }
            (false, true) => {
                let file = config
                    .signing_secret_file
                    .as_ref()
                    .map(|f| base_dir.join(f));
                let signing_secret = from_value_or_file(
                    "signing_secret",
                    config.signing_secret.as_ref(),
                    file.as_deref(),
                )
                .map_err(|reason| ConfigError::new(key("signing_secret"), reason))?;
                crate::event::source::check_path(&config.path)
                    .map_err(|reason| ConfigError::new(key("path"), reason))?;
                Receiver::RequestUrl {
                    signing_secret,
                    path: config.path.clone(),
                }
            }
        };
        if config.api_url.is_some() && url {
            return Err(ConfigError::new(
                key("api_url"),
                "is for Socket Mode (app_token) only",
            ));
        }
        if let Some(bad) = (config.allowed_users.iter()).find(|u| !is_user_id(u)) {
            return Err(ConfigError::new(
                key("allowed_users"),
                format!(
                    "{bad:?} is not a Slack user id (U… or W…, from the user's profile → Copy member ID)"
                ),
            ));
        }
        Ok(SlackApp {
            receiver,
            allowed_users: config.allowed_users.clone(),
        })
    }

    /// The Request URL's path, when clicks come that way.
    pub fn request_path(&self) -> Option<&str> {
        match &self.receiver {
            Receiver::RequestUrl { path, .. } => Some(path),
            Receiver::Socket { .. } => None,
        }
    }

    /// Whether the Slack user `id` may act.
    pub fn allows(&self, id: &str) -> bool {
        self.allowed_users.is_empty() || self.allowed_users.iter().any(|u| u == id)
    }
}

fn is_user_id(id: &str) -> bool {
    id.len() >= 3
        && (id.starts_with('U') || id.starts_with('W'))
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}
