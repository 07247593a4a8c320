//! Who may post events: Basic and Bearer credentials (several of each, for rotation), OAuth
//! bearer JWTs from an identity provider (see [`jwt`]) or from the relay's own authorization
//! server (see [`oauth`]), and the source allowlist. When any credential is configured, every
//! POST must present one.

pub mod jwt;
pub mod oauth;
mod throttle;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use hyper::HeaderMap;
use hyper::header::{AUTHORIZATION, HeaderValue};
use ipnet::IpNet;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::error::ConfigError;
use crate::outbox::Outbox;
use crate::secret::{self, Secret};

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
    pub jwt: Option<jwt::JwtConfig>,
    /// OAuth: the relay's own authorization server, issuing the tokens it accepts.
    pub oauth: Option<oauth::OAuthConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicCredential {
    pub username: String,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
}

impl AuthConfig {
    /// Every credential set: exactly one of password and password_file, never empty.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bearer.iter().any(|t| t.expose().is_empty()) {
            return Err(ConfigError::new(
                "server.auth.bearer",
                "holds an empty token, which anyone could present",
            ));
        }
        for (i, credential) in self.basic.iter().enumerate() {
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
        Ok(())
    }
}

/// Sent with every 401 so that clients know which schemes are accepted.
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"alert-relay\", Bearer realm=\"alert-relay\"";
/// Sent with the 401 for a bearer token that is refused (RFC 6750 3.1), so that a client that
/// can get a new one knows to.
pub const WWW_AUTHENTICATE_INVALID_TOKEN: &str = "Basic realm=\"alert-relay\", Bearer realm=\"alert-relay\", \
     error=\"invalid_token\", error_description=\"the token is unknown, expired or revoked\"";

#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// 401: no credential, or a wrong one.
    Unauthorized,
    /// 401: a bearer token that is not (or no longer) accepted.
    InvalidToken,
    /// 403: the source address is not allowed, or cannot be known.
    Forbidden(Source),
    /// 503: the store, which knows the tokens the relay issued, cannot say now.
    Unavailable,
}

/// Where a request comes from, as the allowlist sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Address(IpAddr),
    /// An `X-Forwarded-For` hop that is not an address (`unknown`, `_hidden`, garbage), found
    /// before any untrusted address: whoever wrote it is not known, so it is never allowed.
    Unreadable(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Address(ip) => write!(f, "{ip}"),
            Self::Unreadable(hop) => write!(f, "X-Forwarded-For hop {hop:?}"),
        }
    }
}

pub struct Auth {
    basic: Vec<(String, Secret)>,
    bearer: Vec<Secret>,
    jwt: Option<jwt::JwtVerifier>,
    oauth: Option<oauth::OAuth>,
    allow_from: Vec<IpNet>,
    trusted_proxies: Vec<IpNet>,
}

impl Auth {
    pub fn new(
        config: &AuthConfig,
        base_dir: &Path,
        http: &reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let basic = basic_credentials(&config.basic, base_dir, "server.auth.basic")?;
        let jwt = config
            .jwt
            .as_ref()
            .map(|jwt| jwt::JwtVerifier::new(jwt, base_dir, http))
            .transpose()?;
        let oauth = config
            .oauth
            .as_ref()
            .map(|oauth| oauth::OAuth::new(oauth, base_dir))
            .transpose()?;
        Ok(Self {
            basic,
            bearer: config.bearer.clone(),
            jwt,
            oauth,
            allow_from: config.allow_from.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
        })
    }

    /// Fetches what the checks need ahead of the first request (the JWKS).
    pub async fn prefetch(&self) {
        if let Some(jwt) = &self.jwt {
            jwt.prefetch().await;
        }
    }

    /// The relay's own authorization server, when `[server.auth.oauth]` is set.
    pub fn oauth(&self) -> Option<&oauth::OAuth> {
        self.oauth.as_ref()
    }

    /// Checks the source address of a request, then its credentials; `store` knows the tokens
    /// the relay issued.
    pub async fn check(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
        store: &Outbox,
    ) -> Result<(), Denied> {
        if !self.allow_from.is_empty() {
            let source = self.client_address(peer, headers);
            let allowed = match &source {
                Source::Address(ip) => self.allow_from.iter().any(|net| net.contains(ip)),
                Source::Unreadable(_) => false,
            };
            if !allowed {
                return Err(Denied::Forbidden(source));
            }
        }
        if self.basic.is_empty()
            && self.bearer.is_empty()
            && self.jwt.is_none()
            && self.oauth.is_none()
        {
            return Ok(());
        }
        let presented = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let Some((scheme, credential)) = presented.and_then(|v| v.split_once(' ')) else {
            return Err(Denied::Unauthorized);
        };
        let credential = credential.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            let accepted = any_equal(self.bearer.iter().map(Secret::expose), credential)
                || self.issued(credential, store).await?
                || self.jwt_accepts(credential).await;
            return if accepted {
                Ok(())
            } else {
                Err(Denied::InvalidToken)
            };
        }
        if scheme.eq_ignore_ascii_case("basic") && basic_matches(&self.basic, credential).is_some()
        {
            return Ok(());
        }
        Err(Denied::Unauthorized)
    }

    /// Whether `token` is one the relay's authorization server issued and has not revoked.
    async fn issued(&self, token: &str, store: &Outbox) -> Result<bool, Denied> {
        let Some(oauth) = &self.oauth else {
            return Ok(false);
        };
        oauth.accepts(token, store).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot look up a token the relay issued; answering 503");
            Denied::Unavailable
        })
    }

    async fn jwt_accepts(&self, token: &str) -> bool {
        let Some(jwt) = &self.jwt else {
            return false;
        };
        match jwt.verify(token).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "bearer token refused");
                false
            }
        }
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the last hop in
    /// `X-Forwarded-For` that is not itself a trusted proxy. Walking from the right, a hop that is
    /// not an address ends the walk: anything to its left may have been written by the client.
    /// IPv4 clients of a dual-stack listener (`::ffff:a.b.c.d`) count as IPv4.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> Source {
        let peer = peer.to_canonical();
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return Source::Address(peer);
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v: &HeaderValue| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.into_iter().rev() {
            match parse_hop(hop) {
                Some(ip) if trusted(&ip) => continue,
                Some(ip) => return Source::Address(ip),
                None => return Source::Unreadable(hop.to_owned()),
            }
        }
        Source::Address(peer)
    }
}

/// Usernames and passwords as configured at `key` (`server.auth.basic`, the OAuth operators),
/// each password read from its value or its file.
fn basic_credentials(
    list: &[BasicCredential],
    base_dir: &Path,
    key: &str,
) -> Result<Vec<(String, Secret)>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, credential)| {
            let file = credential.password_file.as_ref().map(|f| base_dir.join(f));
            secret::from_value_or_file("password", credential.password.as_ref(), file.as_deref())
                .map(|password| (credential.username.clone(), password))
                .map_err(|reason| ConfigError::new(format!("{key}[{i}]"), reason))
        })
        .collect()
}

/// The user of `list` whose name and password a Basic `credential` (base64 `user:password`)
/// holds, if one's does. Every entry is compared, in constant time, so that timing does not tell
/// which user exists.
fn basic_matches(list: &[(String, Secret)], credential: &str) -> Option<String> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credential)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    let mut found = None;
    for (name, secret) in list {
        let user_ok = name.as_bytes().ct_eq(user.as_bytes());
        let password_ok = secret.expose().as_bytes().ct_eq(password.as_bytes());
        if bool::from(user_ok & password_ok) {
            found = Some(name.clone());
        }
    }
    found
}

/// One `X-Forwarded-For` hop: an address, with or without a port (`203.0.113.9:50123`,
/// `[2001:db8::1]:443`, `[2001:db8::1]`), or `None`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })?;
    Some(ip.to_canonical())
}

fn any_equal<'a>(secrets: impl Iterator<Item = &'a str>, presented: &str) -> bool {
    let mut ok = false;
    for secret in secrets {
        ok |= bool::from(secret.as_bytes().ct_eq(presented.as_bytes()));
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(allow_from: &[&str], trusted_proxies: &[&str]) -> Auth {
        let nets = |list: &[&str]| list.iter().map(|n| n.parse().unwrap()).collect();
        let config = AuthConfig {
            allow_from: nets(allow_from),
            trusted_proxies: nets(trusted_proxies),
            ..AuthConfig::default()
        };
        let http = crate::http::client(std::time::Duration::from_secs(1));
        Auth::new(&config, Path::new("."), &http).unwrap()
    }

    fn headers(forwarded_for: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = forwarded_for {
            headers.insert("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    #[tokio::test]
    async fn allowlist_with_and_without_trusted_proxies() {
        let te = ["192.150.160.0/24", "52.52.142.26/32", "2001:db8:7e::/48"];
        let direct = auth(&te, &[]);
        let behind_proxy = auth(&te, &["10.0.0.0/8", "fd00::/8"]);
        let ip = |s: &str| Source::Address(s.parse::<IpAddr>().unwrap());
        /// (case, relay, peer address, X-Forwarded-For, expected)
        type Case<'a> = (
            &'a str,
            &'a Auth,
            &'a str,
            Option<&'a str>,
            Result<(), Denied>,
        );
        let unreadable = |s: &str| Source::Unreadable(s.to_owned());
        let cases: &[Case] = &[
            ("IPv4 inside", &direct, "192.150.160.7", None, Ok(())),
            ("IPv4 single address", &direct, "52.52.142.26", None, Ok(())),
            (
                "IPv4 outside",
                &direct,
                "52.52.142.27",
                None,
                Err(Denied::Forbidden(ip("52.52.142.27"))),
            ),
            ("IPv6 inside", &direct, "2001:db8:7e::1", None, Ok(())),
            (
                "IPv6 outside",
                &direct,
                "2001:db8:7f::1",
                None,
                Err(Denied::Forbidden(ip("2001:db8:7f::1"))),
            ),
            (
                "X-Forwarded-For from an untrusted peer is ignored",
                &direct,
                "203.0.113.9",
                Some("192.150.160.7"),
                Err(Denied::Forbidden(ip("203.0.113.9"))),
            ),
            (
                "a trusted proxy forwards an allowed client",
                &behind_proxy,
                "10.1.2.3",
                Some("192.150.160.7"),
                Ok(()),
            ),
            (
                "a trusted proxy forwards a refused client",
                &behind_proxy,
                "10.1.2.3",
                Some("198.51.100.4"),
                Err(Denied::Forbidden(ip("198.51.100.4"))),
            ),
            (
                "a spoofed first hop does not count: the last untrusted address does",
                &behind_proxy,
                "10.1.2.3",
                Some("192.150.160.7, 198.51.100.4, 10.9.9.9"),
                Err(Denied::Forbidden(ip("198.51.100.4"))),
            ),
            (
                "IPv6 through an IPv6 proxy",
                &behind_proxy,
                "fd00::5",
                Some("2001:db8:7e::9"),
                Ok(()),
            ),
            (
                "a trusted proxy without X-Forwarded-For is itself the client",
                &behind_proxy,
                "10.1.2.3",
                None,
                Err(Denied::Forbidden(ip("10.1.2.3"))),
            ),
            (
                "a hop with a port is read as its address",
                &behind_proxy,
                "10.1.2.3",
                Some("192.150.160.7, 203.0.113.9:50123"),
                Err(Denied::Forbidden(ip("203.0.113.9"))),
            ),
            (
                "an allowed hop with a port",
                &behind_proxy,
                "10.1.2.3",
                Some("192.150.160.7:443"),
                Ok(()),
            ),
            (
                "a bracketed IPv6 hop with a port is read as its address",
                &behind_proxy,
                "10.1.2.3",
                Some("2001:db8:7e::9, [2001:db8::1]:443"),
                Err(Denied::Forbidden(ip("2001:db8::1"))),
            ),
            (
                "an allowed bracketed IPv6 hop",
                &behind_proxy,
                "10.1.2.3",
                Some("[2001:db8:7e::9]"),
                Ok(()),
            ),
            (
                "an unreadable hop ends the walk: the allowed address before it is not believed",
                &behind_proxy,
                "10.1.2.3",
                Some("192.150.160.7, unknown"),
                Err(Denied::Forbidden(unreadable("unknown"))),
            ),
            (
                "an obfuscated hop ends the walk",
                &behind_proxy,
                "10.1.2.3",
                Some("192.150.160.7, _hidden, 10.9.9.9"),
                Err(Denied::Forbidden(unreadable("_hidden"))),
            ),
            (
                "an IPv4 peer seen through a dual-stack socket",
                &direct,
                "::ffff:192.150.160.7",
                None,
                Ok(()),
            ),
            (
                "a mapped IPv4 peer outside the list",
                &direct,
                "::ffff:198.51.100.4",
                None,
                Err(Denied::Forbidden(ip("198.51.100.4"))),
            ),
            (
                "a mapped IPv4 trusted proxy",
                &behind_proxy,
                "::ffff:10.1.2.3",
                Some("::ffff:192.150.160.7"),
                Ok(()),
            ),
        ];
        let peer_ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Outbox::open(&dir.path().join("store.db")).unwrap();
        for (case, auth, peer, forwarded, expected) in cases {
            let got = auth
                .check(peer_ip(peer), &headers(*forwarded), &store)
                .await;
            assert_eq!(&got, expected, "{case}");
        }
    }
}
