//! OAuth bearer tokens: JWTs signed with RS256 or ES256, checked against configured public keys or
//! a JWKS URL, with issuer, audience, expiry and not-before enforced.
//!
//! The JWKS is fetched at start and cached. Once it is older than `refresh`, the next token
//! starts one refresh in the background and is checked against the cached keys meanwhile, so that
//! a slow or hanging identity provider never holds a request. A token naming a key id the cache
//! does not know waits for a fetch (the provider may have rotated its keys), but such fetches
//! happen at most every `MIN_REFETCH`, and a failed fetch is not tried again before that either.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::error::ConfigError;

/// A token naming an unknown key makes the relay fetch the JWKS again, at most this often, so that
/// a stream of forged tokens cannot turn the relay against the identity provider; a failed fetch
/// waits as long before the next one.
const MIN_REFETCH: Duration = Duration::from_secs(30);
/// Fetching the JWKS may take this long before the token is refused.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A JWKS holds a few keys of a few KB; a larger answer is not read past this.
const MAX_JWKS_BYTES: usize = 256 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Where the identity provider publishes its signing keys.
    pub jwks_url: Option<String>,
    /// Public keys (PEM, RSA or EC P-256), for providers without a JWKS URL.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// Tokens must name one of these in `aud`: a token minted for another application is refused.
    pub audience: Vec<String>,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default = "default_refresh", with = "humantime_serde")]
    pub refresh: Duration,
    /// Clock difference tolerated on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}

fn default_refresh() -> Duration {
    Duration::from_secs(600)
}

fn default_leeway() -> Duration {
    Duration::from_secs(60)
}

/// Why a token was refused; logged at debug level, never sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("not a JWT: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} is not allowed")]
    Algorithm(Algorithm),
    #[error("no key matches the token")]
    NoKey,
    #[error("{0}")]
    Invalid(String),
}

pub struct JwtVerifier {
    allowed: Vec<Algorithm>,
    /// Issuer, audience, expiry; its algorithm is set per token (jsonwebtoken checks that every
    /// algorithm of a validation belongs to the key's family).
    validation: Validation,
    keys: Vec<DecodingKey>,
    jwks: Option<Arc<Jwks>>,
}

struct Jwks {
    url: String,
    http: reqwest::Client,
    refresh: Duration,
    state: RwLock<JwksState>,
    /// Held while a fetch runs: one at a time.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct JwksState {
    keys: Vec<(Option<String>, DecodingKey)>,
    /// When the last fetch started, and whether it succeeded.
    tried_at: Option<Instant>,
    succeeded: bool,
}

impl JwtVerifier {
    pub fn new(
        config: &JwtConfig,
        base_dir: &Path,
        http: &reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let key = |field: &str| format!("server.auth.jwt.{field}");
        if config.jwks_url.is_none() && config.keys.is_empty() {
            return Err(ConfigError::new("server.auth.jwt", "set jwks_url or keys"));
        }
        if config.audience.is_empty() {
            return Err(ConfigError::new(
                key("audience"),
                "name at least one audience",
            ));
        }
        let algorithms = config
            .algorithms
            .iter()
            .map(|name| match name.as_str() {
                "RS256" => Ok(Algorithm::RS256),
                "ES256" => Ok(Algorithm::ES256),
                other => Err(ConfigError::new(
                    key("algorithms"),
                    format!("{other:?} is not RS256 or ES256"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if algorithms.is_empty() {
            return Err(ConfigError::new(
                key("algorithms"),
                "allow at least one algorithm",
            ));
        }
        let mut validation = Validation::new(algorithms[0]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&config.audience);
        validation.leeway = config.leeway.as_secs();
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        let keys = config
            .keys
            .iter()
            .map(|path| {
                let path = base_dir.join(path);
                let pem = std::fs::read(&path).map_err(|e| {
                    ConfigError::new(key("keys"), format!("cannot read {}: {e}", path.display()))
                })?;
                DecodingKey::from_rsa_pem(&pem)
                    .or_else(|_| DecodingKey::from_ec_pem(&pem))
                    .map_err(|e| {
                        ConfigError::new(
                            key("keys"),
                            format!("{} is not an RSA or EC public key: {e}", path.display()),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        let jwks = config.jwks_url.as_ref().map(|url| {
            Arc::new(Jwks {
                url: url.clone(),
                http: http.clone(),
                refresh: config.refresh,
                state: RwLock::default(),
                fetching: tokio::sync::Mutex::default(),
            })
        });
        Ok(Self {
            allowed: algorithms,
            validation,
            keys,
            jwks,
        })
    }

    /// Fetches the JWKS now, so that the first event does not wait for it. A failure is logged
    /// and tried again when a token arrives.
    pub async fn prefetch(&self) {
        if let Some(jwks) = &self.jwks {
            jwks.fetch().await;
        }
    }

    /// Checks the signature, algorithm, issuer, audience and expiry of `token`.
    pub async fn verify(&self, token: &str) -> Result<(), JwtError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
        if !self.allowed.contains(&header.alg) {
            return Err(JwtError::Algorithm(header.alg));
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let mut last = JwtError::NoKey;
        for key in &self.keys {
            match decode(token, key, &validation) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        if let Some(jwks) = &self.jwks {
            for key in jwks.keys_for(header.kid.as_deref()).await {
                match decode(token, &key, &validation) {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e,
                }
            }
        }
        Err(last)
    }
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<(), JwtError> {
    jsonwebtoken::decode::<serde_json::Value>(token, key, validation)
        .map(|_| ())
        .map_err(|e| JwtError::Invalid(e.to_string()))
}

impl Jwks {
    /// The keys that may have signed a token with `kid` (all of them when it names none). A stale
    /// set is refreshed in the background; a `kid` the set does not know waits for a fetch, if
    /// one is due.
    async fn keys_for(self: &Arc<Self>, kid: Option<&str>) -> Vec<DecodingKey> {
        let keys = self.matching(kid);
        if !keys.is_empty() {
            if self.due(false) {
                let jwks = self.clone();
                tokio::spawn(async move {
                    // One refresh at a time; a token arriving while it runs needs nothing more.
                    if let Ok(_fetching) = jwks.fetching.try_lock()
                        && jwks.due(false)
                    {
                        jwks.fetch_now().await;
                    }
                });
            }
            return keys;
        }
        self.fetch_if_due(true).await;
        self.matching(kid)
    }

    fn matching(&self, kid: Option<&str>) -> Vec<DecodingKey> {
        self.read()
            .keys
            .iter()
            .filter(|(id, _)| kid.is_none() || id.as_deref() == kid)
            .map(|(_, key)| key.clone())
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, JwksState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a fetch should start now: never tried yet; the last one failed at least
    /// [`MIN_REFETCH`] ago; the keys are older than `refresh`; or, for a key id the set does not
    /// know, the last fetch is at least [`MIN_REFETCH`] old.
    fn due(&self, unknown_kid: bool) -> bool {
        let state = self.read();
        let Some(tried_at) = state.tried_at else {
            return true;
        };
        let age = tried_at.elapsed();
        if !state.succeeded {
            return age >= MIN_REFETCH;
        }
        age >= self.refresh || (unknown_kid && age >= MIN_REFETCH)
    }

    /// Fetches unless another fetch runs (then waits for it) or none is due any more.
    async fn fetch_if_due(&self, unknown_kid: bool) {
        let _fetching = self.fetching.lock().await;
        if self.due(unknown_kid) {
            self.fetch_now().await;
        }
    }

    /// Fetches the set now (at start), whatever the last fetch was.
    async fn fetch(&self) {
        let _fetching = self.fetching.lock().await;
        self.fetch_now().await;
    }

    async fn fetch_now(&self) {
        let started = Instant::now();
        let fetched = async {
            let response = self
                .http
                .get(&self.url)
                .timeout(FETCH_TIMEOUT)
                .send()
                .await
                .map_err(|e| e.without_url().to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status().as_u16()));
            }
            let text = crate::http::read_capped(response, MAX_JWKS_BYTES)
                .await
                .map_err(|e| e.without_url().to_string())?;
            serde_json::from_str::<JwkSet>(&text).map_err(|e| format!("not a JWKS: {e}"))
        }
        .await;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.tried_at = Some(started);
        state.succeeded = fetched.is_ok();
        match fetched {
            Ok(set) => {
                state.keys = set
                    .keys
                    .iter()
                    .filter_map(|jwk| match DecodingKey::from_jwk(jwk) {
                        Ok(key) => Some((jwk.common.key_id.clone(), key)),
                        Err(e) => {
                            debug!(kid = ?jwk.common.key_id, error = %e, "skipping a JWKS key");
                            None
                        }
                    })
                    .collect();
                debug!(keys = state.keys.len(), "fetched the JWKS");
            }
            Err(e) => {
                warn!(error = %e, "cannot fetch the JWKS; tokens are checked against the keys already known")
            }
        }
    }
}
