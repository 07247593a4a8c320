//! The one config loader: built-in defaults, then `config.toml`, then `ALERT_RELAY_…` environment
//! variables (`__` between levels), then validation. Every key is documented once, in the shipped
//! `config.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::deliver::{
    console::ConsoleConfig, email::EmailConfig, slack::SlackConfig, teams::TeamsConfig,
    webhook::WebhookConfig,
};
pub use crate::error::ConfigError;
use crate::secret::Secret;

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
    #[serde(default)]
    pub destinations: BTreeMap<String, DestinationConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub log: LogConfig,
    /// The config file, watched for changes.
    #[serde(skip)]
    pub file: PathBuf,
    /// Directory of the config file: relative paths in the config are relative to it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where ThousandEyes posts events.
    pub ingest_path: String,
    /// ThousandEyes bodies are a few KB; a megabyte leaves room for large agent lists while
    /// keeping a hostile client from filling memory.
    pub max_body_bytes: usize,
    /// A new connection that sends nothing for this long is closed; until its first byte it
    /// holds no connection slot.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A client must send its request headers within this time, so that slow clients cannot
    /// hold connections open; a kept-alive connection must start its next request within it.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A whole request (headers, body, storing the event) must finish within this time.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Connections with a request under way (or kept alive) at once; connections that have sent
    /// nothing yet wait without a slot, up to four times as many.
    pub max_connections: usize,
    /// When set, `GET /metrics` requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<Secret>,
    pub metrics_token_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain and key (PEM), without a proxy in front.
    pub tls: Option<crate::tls::TlsConfig>,
    pub auth: AuthConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ingest_path: "/".into(),
            max_body_bytes: 1024 * 1024,
            idle_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            metrics_token: None,
            metrics_token_file: None,
            tls: None,
            auth: AuthConfig::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub basic: Vec<BasicCredential>,
    pub bearer: Vec<Secret>,
    /// Source CIDRs allowed to post; empty means anyone.
    pub allow_from: Vec<ipnet::IpNet>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// OAuth: bearer JWTs checked against a JWKS URL or configured keys.
    pub jwt: Option<crate::auth::jwt::JwtConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicCredential {
    pub username: String,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Embedded store for the outbox, dedup and thread state.
    pub path: PathBuf,
    /// How long delivered and dead deliveries, and the events behind them, are kept; an event id
    /// is recognised as a duplicate for this long. ThousandEyes re-posts for an hour.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: "data/alert-relay.db".into(),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Upper bound on one attempt, so a hung peer cannot hold a destination.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a delivery is retried before it is dead; ThousandEyes itself gives up after an hour.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Attempts in flight at once for each destination (pacing still applies).
    pub concurrency: usize,
    /// On SIGTERM, how long attempts in flight may take to finish before the relay exits; what is
    /// left stays in the store for the next start.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_age: Duration::from_secs(3600),
            concurrency: 8,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a full filter (`alert_relay=debug`);
    /// `RUST_LOG` wins when set.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Auto,
        }
    }
}

/// Human-readable lines on a terminal, JSON lines for log collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    Auto,
    Text,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesConfig {
    pub dir: PathBuf,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        Self {
            dir: "templates".into(),
        }
    }
}

/// One `[destinations.NAME]` table; `kind` picks the variant and the keys it accepts.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DestinationConfig {
    Slack(SlackConfig),
    Teams(TeamsConfig),
    Email(EmailConfig),
    Webhook(WebhookConfig),
    Console(ConsoleConfig),
}

/// The destination kinds, as written in `kind = "…"` and in template directory names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DestinationKind {
    Slack,
    Teams,
    Email,
    Webhook,
    Console,
}

impl DestinationKind {
    pub const ALL: [DestinationKind; 5] = [
        Self::Slack,
        Self::Teams,
        Self::Email,
        Self::Webhook,
        Self::Console,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Teams => "teams",
            Self::Email => "email",
            Self::Webhook => "webhook",
            Self::Console => "console",
        }
    }
}

/// Options every destination kind accepts.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonOptions {
    /// A template tree of this destination's own, searched before the main one.
    pub templates: Option<PathBuf>,
    pub rate_limit: Option<RateLimit>,
    pub burst: Option<u32>,
}

impl DestinationConfig {
    pub fn kind(&self) -> DestinationKind {
        match self {
            Self::Slack(_) => DestinationKind::Slack,
            Self::Teams(_) => DestinationKind::Teams,
            Self::Email(_) => DestinationKind::Email,
            Self::Webhook(_) => DestinationKind::Webhook,
            Self::Console(_) => DestinationKind::Console,
        }
    }

    pub fn common(&self) -> CommonOptions {
        match self {
            Self::Slack(c) => c.common(),
            Self::Teams(c) => c.common(),
            Self::Email(c) => c.common(),
            Self::Webhook(c) => c.common(),
            Self::Console(c) => c.common(),
        }
    }
}

/// How fast a destination may be sent to: `"N/s"`, `"N/m"` or `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub enum RateLimit {
    Unlimited,
    PerPeriod { count: u32, period: Duration },
}

impl TryFrom<String> for RateLimit {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text == "unlimited" {
            return Ok(Self::Unlimited);
        }
        let invalid = || format!("rate_limit {text:?} is not \"N/s\", \"N/m\" or \"unlimited\"");
        let (count, unit) = text.split_once('/').ok_or_else(invalid)?;
        let count: u32 = count.trim().parse().map_err(|_| invalid())?;
        let period = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            _ => return Err(invalid()),
        };
        if count == 0 {
            return Err(format!("rate_limit {text:?}: the count must be at least 1"));
        }
        Ok(Self::PerPeriod { count, period })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default, rename = "match")]
    pub matches: MatchConfig,
    pub to: Vec<String>,
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
}

/// Conditions of one route; every one that is set must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    pub kind: Option<Vec<String>>,
    pub rule: Option<String>,
    pub test: Option<String>,
    #[serde(rename = "type")]
    pub alert_type: Option<Vec<String>>,
    pub severity: Option<Vec<String>>,
    pub label: Option<Vec<String>>,
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
        if !self.server.ingest_path.starts_with('/') {
            return Err(ConfigError::new("server.ingest_path", "must start with /"));
        }
        if ["/healthz", "/readyz", "/metrics"].contains(&self.server.ingest_path.as_str()) {
            return Err(ConfigError::new(
                "server.ingest_path",
                format!("{} is reserved", self.server.ingest_path),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(ConfigError::new(
                "server.max_connections",
                "must be at least 1",
            ));
        }
        if self.server.idle_timeout.is_zero()
            || self.server.header_timeout.is_zero()
            || self.server.request_timeout.is_zero()
        {
            return Err(ConfigError::new(
                "server.header_timeout",
                "idle_timeout, header_timeout and request_timeout must be longer than 0s",
            ));
        }
        if self
            .server
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.expose().is_empty())
        {
            return Err(ConfigError::new(
                "server.metrics_token",
                "is empty; set a token or leave the key out",
            ));
        }
        if self
            .server
            .auth
            .bearer
            .iter()
            .any(|t| t.expose().is_empty())
        {
            return Err(ConfigError::new(
                "server.auth.bearer",
                "holds an empty token, which anyone could present",
            ));
        }
        if self.server.metrics_token.is_some() && self.server.metrics_token_file.is_some() {
            return Err(ConfigError::new(
                "server.metrics_token",
                "set metrics_token or metrics_token_file, not both",
            ));
        }
        if self.server.max_body_bytes == 0 {
            return Err(ConfigError::new(
                "server.max_body_bytes",
                "must be at least 1",
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(ConfigError::new(
                "log.level",
                format!(
                    "{:?} is not a level or filter (error, warn, info, debug, trace)",
                    self.log.level
                ),
            ));
        }
        if self.delivery.concurrency == 0 {
            return Err(ConfigError::new(
                "delivery.concurrency",
                "must be at least 1",
            ));
        }
        if self.delivery.timeout.is_zero() {
            return Err(ConfigError::new(
                "delivery.timeout",
                "must be longer than 0s",
            ));
        }
        for (name, destination) in &self.destinations {
            if !valid_name(name) {
                return Err(ConfigError::new(
                    format!("destinations.{name}"),
                    "destination names use lowercase letters, digits and _ only",
                ));
            }
            if destination.common().burst == Some(0) {
                return Err(ConfigError::new(
                    format!("destinations.{name}.burst"),
                    "must be at least 1",
                ));
            }
        }
        for (i, credential) in self.server.auth.basic.iter().enumerate() {
            if credential.password.is_some() == credential.password_file.is_some() {
                return Err(ConfigError::new(
                    format!("server.auth.basic[{i}]"),
                    "set password or password_file (one of them)",
                ));
            }
            if credential
                .password
                .as_ref()
                .is_some_and(|p| p.expose().is_empty())
            {
                return Err(ConfigError::new(
                    format!("server.auth.basic[{i}].password"),
                    "is empty, which anyone could present",
                ));
            }
        }
        crate::route::Router::new(&self.routes, self.destinations.keys())?;
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
    use figment::error::{Actual, Kind};
    let problem = match &error.kind {
        Kind::InvalidType(Actual::Str(_), expected) => {
            format!("invalid type: found a string, expected {expected}")
        }
        Kind::InvalidValue(Actual::Str(_), expected) => {
            format!("invalid value: a string, expected {expected}")
        }
        other => other.to_string(),
    };
    if key.is_empty() {
        format!("{problem}{origin}")
    } else {
        format!("{key}: {problem}{origin}")
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse() {
        assert_eq!(
            RateLimit::try_from("unlimited".to_string()),
            Ok(RateLimit::Unlimited)
        );
        assert_eq!(
            RateLimit::try_from("2/s".to_string()),
            Ok(RateLimit::PerPeriod {
                count: 2,
                period: Duration::from_secs(1)
            })
        );
        assert!(RateLimit::try_from("0/s".to_string()).is_err());
        assert!(RateLimit::try_from("5/h".to_string()).is_err());
        assert!(RateLimit::try_from("fast".to_string()).is_err());
    }

    #[test]
    fn destination_names() {
        assert!(valid_name("ops_slack2"));
        assert!(!valid_name("Ops"));
        assert!(!valid_name("ops-slack"));
        assert!(!valid_name(""));
    }
}
