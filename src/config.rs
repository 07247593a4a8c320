//! The one config loader: built-in defaults, then `config.toml`, then `ALERT_RELAY_…` environment
//! variables (`__` between levels), then validation. Every key is documented once, in the shipped
//! `config.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::auth::Auth;
use crate::deliver::DestinationConfig;
pub use crate::error::ConfigError;
use crate::event::{SourceConfig, Sources};
use crate::logs::LogConfig;
use crate::noise::WindowConfig;
use crate::outbox::StorageConfig;
use crate::relay::{Relay, Target};
use crate::render::Renderer;
use crate::render::TemplatesConfig;
use crate::route::{RouteConfig, Router};
use crate::server::ServerConfig;
use crate::studio::StudioConfig;
use crate::worker::DeliveryConfig;

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "ALERT_RELAY_";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub templates: TemplatesConfig,
    /// Who posts where; none means one ThousandEyes source at `server.ingest_path`.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    #[serde(default)]
    pub destinations: BTreeMap<String, DestinationConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// `[[maintenance]]`: windows that silence what they match while open.
    #[serde(default)]
    pub maintenance: Vec<WindowConfig>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub studio: StudioConfig,
    /// Clicks on the buttons of Slack messages (`actions`): Socket Mode or a Request URL.
    pub slack_app: Option<crate::slack_app::SlackAppConfig>,
    /// The config file, watched for changes.
    #[serde(skip)]
    pub file: PathBuf,
    /// Directory of the config file: relative paths in the config are relative to it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl Config {
    /// Loads `path`, applies `ALERT_RELAY_` environment overrides and validates the result.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        if !path.is_file() {
            anyhow::bail!("config file {} not found", path.display());
        }
        check_syntax(path)?;
        let figment = Figment::new()
            .merge(Toml::file_exact(path))
            .merge(Env::prefixed(ENV_PREFIX).ignore(&["CONFIG"]).split("__"));
        let mut config: Config = figment.extract().map_err(|e| {
            let all: Vec<String> = e.into_iter().map(describe).collect();
            anyhow::anyhow!(all.join("\n"))
        })?;
        config.file = path.to_path_buf();
        let dir = path.parent().unwrap_or(Path::new("."));
        config.base_dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir.to_path_buf()
        };
        config
            .validate()
            .with_context(|| format!("invalid config {}", path.display()))?;
        Ok(config)
    }

    /// Builds the relay this config describes. Templates that do not compile are not an error
    /// here (they fall back at render time); see [`Relay::problems`].
    pub fn relay(&self) -> Result<Relay, ConfigError> {
        let config = self;
        let http = crate::http::client(config.delivery.timeout);
        let destinations = config
            .destinations
            .iter()
            .map(|(name, destination)| {
                let target = Target {
                    kind: destination.kind,
                    destination: destination.build(name, &config.base_dir, &http)?,
                    pace: crate::deliver::limiter(destination.kind, &destination.common),
                };
                Ok((name.clone(), target))
            })
            .collect::<Result<BTreeMap<String, Target>, ConfigError>>()?;
        if config.slack_app.is_none()
            && let Some((name, _)) =
                (destinations.iter()).find(|(_, target)| !target.destination.offers().is_empty())
        {
            return Err(ConfigError::new(
                format!("destinations.{name}.actions"),
                "needs [slack_app]: how the clicks on the buttons reach the relay (Socket Mode or a Request URL)",
            ));
        }
        let server = &config.server;
        let metrics_token = match (&server.metrics_token, &server.metrics_token_file) {
            (None, None) => None,
            (token, file) => Some(
                crate::secret::from_value_or_file(
                    "metrics_token",
                    token.as_ref(),
                    file.as_ref().map(|f| config.path(f)).as_deref(),
                )
                .map_err(|reason| ConfigError::new("server", reason))?,
            ),
        };
        let tls = match &server.tls {
            Some(tls) => Some(crate::tls::acceptor(
                &config.path(&tls.cert),
                &config.path(&tls.key),
            )?),
            None => None,
        };
        let templates_dir = config.path(&config.templates.dir);
        let renderer = Renderer::new(
            templates_dir.clone(),
            config.destinations.iter().map(|(name, destination)| {
                let own_dir = (destination.common.templates.as_ref()).map(|dir| config.path(dir));
                (name.as_str(), destination.kind, own_dir)
            }),
        );
        let sources = config.sources()?;
        Ok(Relay {
            auth: Auth::new(&server.auth, &config.base_dir, &http)?,
            tls,
            router: Router::new(&config.routes, config.destinations.keys(), &sources)?,
            sources,
            renderer,
            templates_dir,
            windows: crate::noise::window::windows(&config.maintenance)?,
            destinations,
            metrics_token,
            timeout: config.delivery.timeout,
            max_age: config.delivery.max_age,
        })
    }

    /// `[slack_app]` as the relay uses it (its secret files read), if set; it takes effect at
    /// start, and `check` builds it to say what is wrong.
    pub fn slack_app(&self) -> Result<Option<crate::slack_app::SlackApp>, ConfigError> {
        let Some(app) = &self.slack_app else {
            return Ok(None);
        };
        let app = crate::slack_app::SlackApp::new(app, &self.base_dir)?;
        if let Some(path) = app.request_path()
            && let Some(source) = self.sources()?.at(path)
        {
            return Err(ConfigError::new(
                "slack_app.path",
                format!(
                    "{path} is already the path of source {}",
                    source.origin.name
                ),
            ));
        }
        Ok(Some(app))
    }

    /// The sources this config describes.
    pub fn sources(&self) -> Result<Sources, ConfigError> {
        Sources::new(&self.sources, &self.server.ingest_path)
    }

    /// Resolves a path from the config against the config file's directory.
    pub fn path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// Checks what serde cannot: names, references between tables, value ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.log.validate()?;
        self.delivery.validate()?;
        self.studio.validate()?;
        self.storage.postgres_url(&self.base_dir)?;
        if !self.sources.is_empty()
            && self.server.ingest_path != ServerConfig::default().ingest_path
        {
            return Err(ConfigError::new(
                "server.ingest_path",
                "is not used once [sources] are set: give the ThousandEyes source that path instead",
            ));
        }
        crate::deliver::validate_names(&self.destinations)?;
        crate::route::Router::new(&self.routes, self.destinations.keys(), &self.sources()?)?;
        crate::noise::window::windows(&self.maintenance)?;
        if self.destinations.is_empty() {
            // Refused at start and on reload alike: a half-written config.toml read during a
            // reload must not turn the relay into one that acknowledges alerts and sends nothing.
            return Err(ConfigError::new(
                "destinations",
                "none is configured: every event would be accepted and sent nowhere",
            ));
        }
        Ok(())
    }
}

/// Reports a TOML syntax error by its line and column only: the parser's own message quotes the
/// line, which may hold a webhook URL or a password.
fn check_syntax(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let Err(error) = toml::from_str::<toml::Table>(&text) else {
        return Ok(());
    };
    let at = error.span().map_or(0, |span| span.start).min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    anyhow::bail!(
        "{}: TOML syntax error at line {line}, column {column}: {}",
        path.display(),
        error.message().trim()
    )
}

/// One figment error as `key: problem (where it came from)`. A string found where another type
/// was expected is not quoted: it may be a secret written under the wrong key.
fn describe(error: figment::Error) -> String {
    let key = error.path.join(".");
    let origin = match &error.metadata {
        Some(metadata) => match &metadata.source {
            Some(source) => format!(" (in {source})"),
            None => format!(" (from {})", metadata.name),
        },
        None => String::new(),
    };
    let problem = crate::error::value_problem(&error.kind);
    if key.is_empty() {
        format!("{problem}{origin}")
    } else {
        format!("{key}: {problem}{origin}")
    }
}
