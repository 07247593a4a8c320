//! OAuth bearer tokens: JWTs signed with RS256 or ES256, checked against configured public keys or
//! a JWKS URL (fetched at start, cached, refreshed every `refresh` and when a token names a key
//! id the cache does not know), with issuer, audience and expiry enforced.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::config::ConfigError;

/// A token naming an unknown key makes the relay fetch the JWKS again, at most this often, so that
/// a stream of forged tokens cannot turn the relay against the identity provider.
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
    jwks: Option<Jwks>,
}

struct Jwks {
    url: String,
    http: reqwest::Client,
    refresh: Duration,
    state: RwLock<JwksState>,
}

#[derive(Default)]
struct JwksState {
    keys: Vec<(Option<String>, DecodingKey)>,
    fetched_at: Option<Instant>,
    tried_at: Option<Instant>,
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
        let jwks = config.jwks_url.as_ref().map(|url| Jwks {
            url: url.clone(),
            http: http.clone(),
            refresh: config.refresh,
            state: RwLock::default(),
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
    /// The keys that may have signed a token with `kid` (all of them when it names none),
    /// refreshing the set when it is stale or does not know `kid`.
    async fn keys_for(&self, kid: Option<&str>) -> Vec<DecodingKey> {
        let matching = |state: &JwksState| -> Vec<DecodingKey> {
            state
                .keys
                .iter()
                .filter(|(id, _)| kid.is_none() || id.as_deref() == kid)
                .map(|(_, key)| key.clone())
                .collect()
        };
        let (keys, stale) = {
            let state = self.state.read().await;
            let stale = state
                .fetched_at
                .is_none_or(|at| at.elapsed() > self.refresh);
            (matching(&state), stale)
        };
        if !keys.is_empty() && !stale {
            return keys;
        }
        let recently_tried = self
            .state
            .read()
            .await
            .tried_at
            .is_some_and(|at| at.elapsed() < MIN_REFETCH);
        if stale || !recently_tried {
            self.fetch().await;
        }
        matching(&*self.state.read().await)
    }

    async fn fetch(&self) {
        let mut state = self.state.write().await;
        // Another request may have fetched while this one waited for the lock.
        if state
            .tried_at
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        state.tried_at = Some(Instant::now());
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
            let text = crate::deliver::read_capped(response, MAX_JWKS_BYTES)
                .await
                .map_err(|e| e.without_url().to_string())?;
            serde_json::from_str::<JwkSet>(&text).map_err(|e| format!("not a JWKS: {e}"))
        }
        .await;
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
                state.fetched_at = Some(Instant::now());
                debug!(keys = state.keys.len(), "fetched the JWKS");
            }
            Err(e) => {
                warn!(error = %e, "cannot fetch the JWKS; tokens are checked against the keys already known")
            }
        }
    }
}
