//! The relay's own OAuth 2.0 authorization server, for ThousandEyes' "OAuth" webhook auth
//! (`[server.auth.oauth]`): ThousandEyes is a client; the people listed as `operators` approve
//! its consent.
//!
//! - `GET /oauth/authorize` (`response_type=token`, the implicit grant ThousandEyes' classic
//!   webhooks use, or `code`): the client and its `redirect_uri` (an exact match) are checked
//!   first, and nothing is redirected before they are; then an operator signs in (HTTP Basic)
//!   and sees a consent page; approving redirects with the token in the fragment, or with a
//!   one-use code valid for [`CODE_LIFETIME`]. `state` is optional and echoed. A code may be
//!   bound to a PKCE challenge (RFC 7636, `S256` only), and is then exchanged only with its
//!   `code_verifier`.
//! - `POST /oauth/token`: `authorization_code` and `client_credentials` (custom webhooks), the
//!   client authenticated by HTTP Basic or `client_id` and `client_secret` in the form; answers
//!   and errors as RFC 6749 section 5 says.
//!
//! Tokens are JWTs (HS256) signed with a key the relay generates and keeps in the store (shared
//! by replicas), or one read from `signing_key_file`. The store keeps each token's id, client,
//! approver and times, never the token; a code only as its SHA-256. Every use of a token looks it
//! up, so `alert-relay tokens revoke ID` refuses it from the next request on.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, PRAGMA,
    WWW_AUTHENTICATE,
};
use hyper::{Method, Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use super::throttle::Throttle;
use super::{BasicCredential, basic_matches};
use crate::error::ConfigError;
use crate::http::{HttpRequest, HttpResponse, json_response, method_not_allowed};
use crate::outbox::{AuthorizationCode, IssuedToken, Outbox, StoreError, now_ms};
use crate::secret::{self, Secret};

/// ThousandEyes receives tokens at these (classic webhooks, and the integrations page).
const THOUSANDEYES_CALLBACKS: [&str; 2] = [
    "https://app.thousandeyes.com/webhooks-oauth-callback/",
    "https://app.thousandeyes.com/namespace/integrations/AuthCallbackPage.html",
];
/// An authorization code must be exchanged within this time.
pub const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// A consent page must be answered within this time.
const CONSENT_LIFETIME: Duration = Duration::from_secs(600);
/// The `kid` of the relay's own tokens, which tells them from an identity provider's.
const KID: &str = "alert-relay";
const ISSUER: &str = "alert-relay";
const AUDIENCE: &str = "alert-relay ingest";
const CONSENT_AUDIENCE: &str = "alert-relay consent";
/// Forms are a few hundred bytes.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// A signing key file must hold at least this many bytes (HS256 wants 256 bits).
const MIN_KEY_BYTES: usize = 32;
const REALM: &str = "Basic realm=\"alert-relay OAuth\", charset=\"UTF-8\"";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    pub clients: Vec<ClientConfig>,
    /// The people who may approve a consent.
    #[serde(default)]
    pub operators: Vec<BasicCredential>,
    /// ThousandEyes never refreshes a token: it uses one until it fails.
    #[serde(default = "default_lifetime", with = "humantime_serde")]
    pub token_lifetime: Duration,
    /// At least 32 bytes to sign tokens with, instead of the key kept in the store.
    pub signing_key_file: Option<PathBuf>,
}

fn default_lifetime() -> Duration {
    Duration::from_secs(365 * 86_400)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub id: String,
    /// Required for the token endpoint (codes and client credentials); a client without one may
    /// only use the implicit grant.
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
    #[serde(default = "default_redirect_uris")]
    pub redirect_uris: Vec<String>,
}

fn default_redirect_uris() -> Vec<String> {
    THOUSANDEYES_CALLBACKS.map(str::to_owned).to_vec()
}

struct Client {
    id: String,
    secret: Option<Secret>,
    redirect_uris: Vec<String>,
}

/// The authorization server one config describes. Its signing key is read once, at first use.
pub struct OAuth {
    clients: Vec<Client>,
    operators: Vec<(String, Secret)>,
    lifetime: Duration,
    key_file: Option<Secret>,
    key: tokio::sync::OnceCell<Vec<u8>>,
    /// Failed client and operator sign-ins, by client, operator and address.
    throttle: Throttle,
}

/// What a relay token says.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    /// The client it was issued to.
    sub: String,
    jti: String,
    iat: i64,
    exp: i64,
    /// A mark of the client's secret when the token was issued (see [`OAuth::secret_mark`]): the
    /// token is refused once the client's secret is another. Tokens issued before it existed
    /// have none, and are checked for their client only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sec: Option<String>,
}

/// What a consent page asks, signed so that the form cannot be forged or changed, and bound to
/// the operator who saw it.
#[derive(Debug, Serialize, Deserialize)]
struct Consent {
    aud: String,
    exp: i64,
    operator: String,
    client_id: String,
    redirect_uri: String,
    response_type: String,
    state: Option<String>,
    /// PKCE (RFC 7636): the S256 challenge the code is bound to, for `response_type=code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code_challenge: Option<String>,
    /// Makes the form one-use: the store keeps it, as a code, until it is answered.
    #[serde(default)]
    nonce: String,
}

impl OAuth {
    pub fn new(config: &OAuthConfig, base_dir: &Path) -> Result<Self, ConfigError> {
        let key = |field: &str| format!("server.auth.oauth.{field}");
        if config.clients.is_empty() {
            return Err(ConfigError::new(
                key("clients"),
                "name at least one client (ThousandEyes)",
            ));
        }
        let mut clients: Vec<Client> = Vec::new();
        for (i, client) in config.clients.iter().enumerate() {
            let at = |field: &str| key(&format!("clients[{i}].{field}"));
            if client.id.trim().is_empty() {
                return Err(ConfigError::new(at("id"), "is empty"));
            }
            if clients.iter().any(|c| c.id == client.id) {
                return Err(ConfigError::new(
                    at("id"),
                    format!("{:?} is listed twice", client.id),
                ));
            }
            if client.redirect_uris.is_empty() {
                return Err(ConfigError::new(
                    at("redirect_uris"),
                    "name at least one, or leave the key out for ThousandEyes' callbacks",
                ));
            }
            if let Some(bad) = client.redirect_uris.iter().find(|u| !is_redirect_uri(u)) {
                return Err(ConfigError::new(
                    at("redirect_uris"),
                    format!("{bad:?} is not an absolute http(s) URL without a fragment"),
                ));
            }
            let secret = match (&client.secret, &client.secret_file) {
                (None, None) => None,
                (value, file) => Some(
                    secret::from_value_or_file(
                        "secret",
                        value.as_ref(),
                        file.as_ref().map(|f| base_dir.join(f)).as_deref(),
                    )
                    .map_err(|reason| ConfigError::new(key(&format!("clients[{i}]")), reason))?,
                ),
            };
            clients.push(Client {
                id: client.id.clone(),
                secret,
                redirect_uris: client.redirect_uris.clone(),
            });
        }
        let operators = super::basic_credentials(&config.operators, base_dir, &key("operators"))?;
        if let Some(client) = clients.iter().find(|c| c.secret.is_none())
            && operators.is_empty()
        {
            return Err(ConfigError::new(
                key("operators"),
                format!(
                    "name at least one: client {:?} has no secret, so only an operator's consent can give it a token",
                    client.id
                ),
            ));
        }
        let key_file = match &config.signing_key_file {
            Some(file) => {
                let path = base_dir.join(file);
                let text = secret::from_value_or_file("signing_key", None, Some(&path))
                    .map_err(|reason| ConfigError::new(key("signing_key_file"), reason))?;
                if text.expose().len() < MIN_KEY_BYTES {
                    return Err(ConfigError::new(
                        key("signing_key_file"),
                        format!("holds fewer than {MIN_KEY_BYTES} bytes"),
                    ));
                }
                Some(text)
            }
            None => None,
        };
        if config.token_lifetime.is_zero() {
            return Err(ConfigError::new(
                key("token_lifetime"),
                "must be longer than 0s",
            ));
        }
        Ok(Self {
            clients,
            operators,
            lifetime: config.token_lifetime,
            key_file,
            key: tokio::sync::OnceCell::new(),
            throttle: Throttle::default(),
        })
    }

    /// The signing key: the configured file's, or the one kept in the store (made now if the
    /// store has none).
    async fn key(&self, store: &Outbox) -> Result<&[u8], StoreError> {
        self.key
            .get_or_try_init(|| async {
                if let Some(file) = &self.key_file {
                    return Ok(file.expose().as_bytes().to_vec());
                }
                let kept = store.signing_key(STANDARD.encode(random::<32>())).await?;
                Ok(STANDARD
                    .decode(kept.as_bytes())
                    .unwrap_or_else(|_| kept.into_bytes()))
            })
            .await
            .map(Vec::as_slice)
    }

    /// `claims` signed with the relay's key (HS256, the relay's `kid`).
    async fn sign(&self, claims: &impl Serialize, store: &Outbox) -> Result<String, StoreError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(KID.into());
        let key = EncodingKey::from_secret(self.key(store).await?);
        // HMAC signing of claims that serialize (all of the relay's do) does not fail.
        jsonwebtoken::encode(&header, claims, &key)
            .map_err(|e| StoreError::Write(format!("cannot sign: {e}")))
    }

    /// A mark of `client`'s secret as it is now, put in its tokens: an HMAC with the signing key,
    /// so that a token tells nothing of the secret, and changes with it (or with a secret added
    /// or removed).
    async fn secret_mark(&self, client: &Client, store: &Outbox) -> Result<String, StoreError> {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.key(store).await?);
        let secret = client.secret.as_ref().map_or("", |s| s.expose());
        let tag = aws_lc_rs::hmac::sign(&key, format!("client secret:{secret}").as_bytes());
        Ok(crate::tls::hex(&tag.as_ref()[..16]))
    }

    /// What `signed` says, if the relay signed it (its `kid`, HS256, the key) for `audience`, and
    /// it has not expired. `Err` when the key cannot be read from the store.
    async fn verify<T: DeserializeOwned>(
        &self,
        signed: &str,
        audience: &str,
        store: &Outbox,
    ) -> Result<Option<T>, StoreError> {
        let ours = jsonwebtoken::decode_header(signed)
            .is_ok_and(|h| h.kid.as_deref() == Some(KID) && h.alg == Algorithm::HS256);
        if !ours {
            return Ok(None);
        }
        let key = DecodingKey::from_secret(self.key(store).await?);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        Ok(jsonwebtoken::decode::<T>(signed, &key, &validation)
            .ok()
            .map(|data| data.claims))
    }

    /// Whether `token` is one this relay issued, still valid and not revoked. `Err` when the store
    /// cannot say.
    pub async fn accepts(&self, token: &str, store: &Outbox) -> Result<bool, StoreError> {
        let Some(claims) = self.verify::<Claims>(token, AUDIENCE, store).await? else {
            return Ok(false);
        };
        if claims.iss != ISSUER {
            return Ok(false);
        }
        // Only while its client is configured, with the secret it was issued under.
        let Some(client) = self.clients.iter().find(|c| c.id == claims.sub) else {
            return Ok(false);
        };
        if let Some(mark) = &claims.sec {
            let now = self.secret_mark(client, store).await?;
            if !bool::from(mark.as_bytes().ct_eq(now.as_bytes())) {
                return Ok(false);
            }
        }
        Ok(match store.token(&claims.jti).await? {
            Some(kept) => kept.revoked_at.is_none() && kept.client == claims.sub,
            None => false,
        })
    }

    /// Answers a request under `/oauth/` from `peer`.
    pub async fn handle(&self, request: HttpRequest, peer: IpAddr, store: &Outbox) -> HttpResponse {
        let path = request.uri().path().to_owned();
        let at = Caller { peer, store };
        match (request.method().clone(), path.as_str()) {
            (Method::GET, "/oauth/authorize") => {
                let query = request.uri().query().unwrap_or("").to_owned();
                self.authorize(&params(query.as_bytes()), request.headers(), &at)
                    .await
            }
            (Method::POST, "/oauth/authorize") => {
                let headers = request.headers().clone();
                match read_form(request).await {
                    Some(form) => self.decide(&form, &headers, &at).await,
                    None => unreadable_form(),
                }
            }
            (Method::POST, "/oauth/token") => {
                let headers = request.headers().clone();
                match read_form(request).await {
                    Some(form) => self.token(&form, &headers, &at).await,
                    None => unreadable_form(),
                }
            }
            (_, "/oauth/authorize") => method_not_allowed("GET, POST"),
            (_, "/oauth/token") => method_not_allowed("POST"),
            _ => crate::http::error(StatusCode::NOT_FOUND, "no such path"),
        }
    }

    /// `GET /oauth/authorize`: checks the request, then asks an operator to sign in and approve.
    async fn authorize(
        &self,
        params: &[(String, String)],
        headers: &HeaderMap,
        at: &Caller<'_>,
    ) -> HttpResponse {
        let store = at.store;
        let (client, redirect_uri) = match self.client_and_redirect(params) {
            Ok(found) => found,
            Err(response) => return *response,
        };
        let state = param(params, "state").map(str::to_owned);
        let response_type = param(params, "response_type").unwrap_or("");
        let back = Redirect {
            uri: redirect_uri.clone(),
            state: state.clone(),
            fragment: response_type == "token",
        };
        match response_type {
            "token" => {}
            "code" if client.secret.is_some() => {}
            "code" => {
                return back.error(
                    "unauthorized_client",
                    "this client has no secret, so it may only use response_type=token",
                );
            }
            _ => {
                return back.error(
                    "unsupported_response_type",
                    "response_type must be token or code",
                );
            }
        }
        let code_challenge = match (response_type, pkce_challenge(params)) {
            ("code", Ok(challenge)) => challenge,
            ("code", Err(problem)) => return back.error("invalid_request", problem),
            _ => None,
        };
        let operator = match self.operator(headers, at.peer) {
            Ok(operator) => operator,
            Err(refused) => return *refused,
        };
        let consent = Consent {
            aud: CONSENT_AUDIENCE.into(),
            exp: (now_ms() / 1000) + CONSENT_LIFETIME.as_secs() as i64,
            operator: operator.clone(),
            client_id: client.id.clone(),
            redirect_uri: redirect_uri.clone(),
            response_type: response_type.to_owned(),
            state,
            code_challenge,
            nonce: URL_SAFE_NO_PAD.encode(random::<16>()),
        };
        let kept = store
            .keep_code(AuthorizationCode {
                hash: consent_key(&consent.nonce),
                client: client.id.clone(),
                redirect_uri: redirect_uri.clone(),
                operator: operator.clone(),
                expires_at: now_ms() + CONSENT_LIFETIME.as_millis() as i64,
            })
            .await;
        if let Err(e) = kept {
            return unavailable(&e);
        }
        match self.sign(&consent, store).await {
            Ok(signed) => consent_page(&consent, &signed),
            Err(e) => unavailable(&e),
        }
    }

    /// `POST /oauth/authorize`: the operator's answer to a consent page.
    async fn decide(
        &self,
        form: &[(String, String)],
        headers: &HeaderMap,
        at: &Caller<'_>,
    ) -> HttpResponse {
        let store = at.store;
        let operator = match self.operator(headers, at.peer) {
            Ok(operator) => operator,
            Err(refused) => return *refused,
        };
        let consent = match self
            .verify::<Consent>(
                param(form, "consent").unwrap_or(""),
                CONSENT_AUDIENCE,
                store,
            )
            .await
        {
            Ok(consent) => consent.filter(|consent| consent.operator == operator),
            Err(e) => return unavailable(&e),
        };
        let Some(consent) = consent else {
            return page(
                StatusCode::BAD_REQUEST,
                "This approval is not valid",
                "<p>The form is older than ten minutes, was changed, or was shown to another \
                 operator. Start again from ThousandEyes.</p>",
            );
        };
        // One answer per form: the store gives its nonce back once, on any replica.
        match store.take_code(&consent_key(&consent.nonce)).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return page(
                    StatusCode::BAD_REQUEST,
                    "This approval was already answered",
                    "<p>Each consent form is answered once. Start again from ThousandEyes for \
                     another token.</p>",
                );
            }
            Err(e) => return unavailable(&e),
        }
        let Some(client) = self.clients.iter().find(|c| c.id == consent.client_id) else {
            return page(
                StatusCode::BAD_REQUEST,
                "This client is gone",
                "<p>The relay no longer lists this client.</p>",
            );
        };
        let back = Redirect {
            uri: consent.redirect_uri.clone(),
            state: consent.state.clone(),
            fragment: consent.response_type == "token",
        };
        if param(form, "decision") != Some("approve") {
            info!(client = %client.id, %operator, "an operator denied an OAuth consent");
            return back.error("access_denied", "the operator denied the request");
        }
        if consent.response_type == "code" {
            let code = URL_SAFE_NO_PAD.encode(random::<32>());
            let kept = store
                .keep_code(AuthorizationCode {
                    hash: code_key(&code, consent.code_challenge.as_deref()),
                    client: client.id.clone(),
                    redirect_uri: consent.redirect_uri.clone(),
                    operator: operator.clone(),
                    expires_at: now_ms() + CODE_LIFETIME.as_millis() as i64,
                })
                .await;
            if let Err(e) = kept {
                return unavailable(&e);
            }
            info!(client = %client.id, %operator, "an operator approved an OAuth consent; a code was issued");
            return back.with(&[("code", &code)]);
        }
        match self.issue(client, Some(&operator), "implicit", store).await {
            Ok((token, expires_in)) => back.with(&[
                ("access_token", &token),
                ("token_type", "Bearer"),
                ("expires_in", &expires_in.to_string()),
            ]),
            Err(e) => unavailable(&e),
        }
    }

    /// `POST /oauth/token`.
    async fn token(
        &self,
        form: &[(String, String)],
        headers: &HeaderMap,
        at: &Caller<'_>,
    ) -> HttpResponse {
        let store = at.store;
        let client = match self.client_credentials(form, headers, at.peer) {
            Ok(client) => client,
            Err(response) => return *response,
        };
        let (operator, grant) = match param(form, "grant_type") {
            Some("client_credentials") => (None, "client_credentials"),
            Some("authorization_code") => {
                let Some(code) = param(form, "code") else {
                    return token_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "code is missing",
                    );
                };
                let challenge = match param(form, "code_verifier").map(pkce_s256) {
                    Some(Ok(challenge)) => Some(challenge),
                    Some(Err(problem)) => {
                        return token_error(StatusCode::BAD_REQUEST, "invalid_request", problem);
                    }
                    None => None,
                };
                let taken = match store.take_code(&code_key(code, challenge.as_deref())).await {
                    Ok(taken) => taken,
                    Err(e) => return store_unavailable(&e),
                };
                let redirect_uri = param(form, "redirect_uri");
                match taken {
                    Some(code)
                        if code.client == client.id
                            && code.expires_at > now_ms()
                            && redirect_uri.is_none_or(|uri| uri == code.redirect_uri) =>
                    {
                        (Some(code.operator), "authorization_code")
                    }
                    _ => {
                        return token_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            "the code is unknown, used, expired, was issued to another client or redirect_uri, or its code_verifier does not match",
                        );
                    }
                }
            }
            Some(_) => {
                return token_error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "grant_type must be authorization_code or client_credentials",
                );
            }
            None => {
                return token_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "grant_type is missing",
                );
            }
        };
        match self.issue(client, operator.as_deref(), grant, store).await {
            Ok((token, expires_in)) => {
                let mut response = json_response(
                    StatusCode::OK,
                    &json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}),
                );
                no_store(response.headers_mut());
                response
            }
            Err(e) => store_unavailable(&e),
        }
    }

    /// Signs a token for `client` and records it; the token and its lifetime in seconds.
    async fn issue(
        &self,
        client: &Client,
        operator: Option<&str>,
        grant: &str,
        store: &Outbox,
    ) -> Result<(String, u64), StoreError> {
        let (sec, client) = (Some(self.secret_mark(client, store).await?), &client.id);
        let now = now_ms();
        let id = crate::tls::hex(&random::<16>());
        let expires_in = self.lifetime.as_secs();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: client.to_owned(),
            jti: id.clone(),
            iat: now / 1000,
            exp: now / 1000 + expires_in as i64,
            sec,
        };
        let token = self.sign(&claims, store).await?;
        store
            .issue_token(IssuedToken {
                id: id.clone(),
                client: client.to_owned(),
                operator: operator.map(str::to_owned),
                grant: grant.to_owned(),
                issued_at: now,
                expires_at: now + expires_in as i64 * 1000,
                revoked_at: None,
            })
            .await?;
        info!(client, operator, grant, token = %id, "issued an OAuth token");
        Ok((token, expires_in))
    }

    /// The client and the redirect URI of an authorization request, or the page that says why
    /// not: these are checked before anything is redirected.
    fn client_and_redirect(
        &self,
        params: &[(String, String)],
    ) -> Result<(&Client, String), Box<HttpResponse>> {
        let refuse = |problem: &str| {
            Err(Box::new(page(
                StatusCode::BAD_REQUEST,
                "This authorization request is not valid",
                &format!("<p>{}</p>", handlebars::html_escape(problem)),
            )))
        };
        let Some(id) = param(params, "client_id") else {
            return refuse("client_id is missing.");
        };
        let Some(client) = self.clients.iter().find(|c| c.id == id) else {
            return refuse(
                "No client with this client_id is configured in server.auth.oauth.clients.",
            );
        };
        let redirect_uri = match (param(params, "redirect_uri"), &client.redirect_uris[..]) {
            (Some(uri), allowed) if allowed.iter().any(|a| a == uri) => uri.to_owned(),
            (Some(_), _) => {
                return refuse(
                    "redirect_uri is not one of this client's redirect_uris (it must match exactly).",
                );
            }
            (None, [only]) => only.clone(),
            (None, _) => return refuse("redirect_uri is missing."),
        };
        Ok((client, redirect_uri))
    }

    /// The client a token request authenticates as (HTTP Basic, or `client_id` and
    /// `client_secret` in the form), compared in constant time.
    fn client_credentials(
        &self,
        form: &[(String, String)],
        headers: &HeaderMap,
        peer: IpAddr,
    ) -> Result<&Client, Box<HttpResponse>> {
        let basic = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, encoded)| STANDARD.decode(encoded.trim()).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok())
            .and_then(|decoded| {
                let (id, secret) = decoded.split_once(':')?;
                // RFC 6749 2.3.1: both form-urlencoded before Basic encodes them.
                Some((form_decode(id), form_decode(secret)))
            });
        let in_form = param(form, "client_secret").map(|secret| {
            (
                param(form, "client_id").unwrap_or("").to_owned(),
                secret.to_owned(),
            )
        });
        let (id, secret) = match (basic, in_form) {
            (Some(_), Some(_)) => {
                return Err(Box::new(token_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "authenticate the client one way: HTTP Basic or client_secret, not both",
                )));
            }
            (Some(pair), None) | (None, Some(pair)) => pair,
            (None, None) => ("".to_owned(), "".to_owned()),
        };
        let keys = [format!("client:{id}"), format!("address:{peer}")];
        self.wait_out(&keys, || {
            token_error(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "too many failed attempts for this client or address; try again later",
            )
        })?;
        let mut found = None;
        for client in &self.clients {
            let id_ok = client.id.as_bytes().ct_eq(id.as_bytes());
            let secret_ok = match &client.secret {
                Some(kept) => kept.expose().as_bytes().ct_eq(secret.as_bytes()),
                None => subtle::Choice::from(0),
            };
            if bool::from(id_ok & secret_ok) {
                found = Some(client);
            }
        }
        found.ok_or_else(|| {
            self.throttle.failed(&keys);
            warn!(client = %id, %peer, "refused an OAuth token request: unknown client or wrong secret");
            let mut response = token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown client or wrong client secret",
            );
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
            Box::new(response)
        })
    }

    /// `Err` with `refusal` (and `Retry-After`) while one of `keys` waits out its failures.
    fn wait_out(
        &self,
        keys: &[String],
        refusal: impl FnOnce() -> HttpResponse,
    ) -> Result<(), Box<HttpResponse>> {
        let Some(wait) = self.throttle.wait(keys) else {
            return Ok(());
        };
        warn!(who = %keys.join(" "), "refused an OAuth request: too many failed attempts");
        let mut response = refusal();
        retry_after(&mut response, wait);
        Err(Box::new(response))
    }

    /// The operator signed in with HTTP Basic, or the page that asks for one: a sign-in page,
    /// or, after too many failed sign-ins for that name or from that address, a 429.
    fn operator(&self, headers: &HeaderMap, peer: IpAddr) -> Result<String, Box<HttpResponse>> {
        let credential = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .map(|(_, credential)| credential.trim());
        let Some(credential) = credential else {
            return Err(Box::new(sign_in()));
        };
        let name = STANDARD
            .decode(credential)
            .ok()
            .and_then(|decoded| String::from_utf8(decoded).ok())
            .and_then(|decoded| decoded.split_once(':').map(|(name, _)| name.to_owned()))
            .unwrap_or_default();
        let keys = [format!("operator:{name}"), format!("address:{peer}")];
        self.wait_out(&keys, || {
            page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-ins",
                "<p>Try again in a minute.</p>",
            )
        })?;
        basic_matches(&self.operators, credential).ok_or_else(|| {
            self.throttle.failed(&keys);
            warn!(operator = %name, %peer, "refused an operator's sign-in: unknown name or wrong password");
            Box::new(sign_in())
        })
    }
}

/// Who asks, and the store the answer needs.
struct Caller<'a> {
    peer: IpAddr,
    store: &'a Outbox,
}

/// What the store keeps of a consent form until it is answered (see [`Consent::nonce`]).
fn consent_key(nonce: &str) -> String {
    crate::tls::sha256_hex(format!("consent:{nonce}").as_bytes())
}

fn retry_after(response: &mut HttpResponse, wait: Duration) {
    if let Ok(value) = HeaderValue::from_str(&(wait.as_secs() + 1).to_string()) {
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, value);
    }
}

/// Where an authorization request goes back to, and how (a fragment for the implicit grant).
struct Redirect {
    uri: String,
    state: Option<String>,
    fragment: bool,
}

impl Redirect {
    /// A 303 to the redirect URI with `pairs` and the request's `state`.
    fn with(&self, pairs: &[(&str, &str)]) -> HttpResponse {
        let mut encoder = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in pairs {
            encoder.append_pair(name, value);
        }
        if let Some(state) = &self.state {
            encoder.append_pair("state", state);
        }
        let encoded = encoder.finish();
        let separator = if self.fragment {
            '#'
        } else if self.uri.contains('?') {
            '&'
        } else {
            '?'
        };
        let location = format!("{}{separator}{encoded}", self.uri);
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::SEE_OTHER;
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(LOCATION, value);
        }
        no_store(response.headers_mut());
        response
    }

    fn error(&self, code: &str, description: &str) -> HttpResponse {
        self.with(&[("error", code), ("error_description", description)])
    }
}

/// What the store keeps of a code: its SHA-256, with the PKCE challenge it is bound to (if any)
/// hashed in, so that only the matching `code_verifier` (or, for a code without one, no verifier)
/// finds it.
fn code_key(code: &str, challenge: Option<&str>) -> String {
    match challenge {
        Some(challenge) => crate::tls::sha256_hex(format!("{code}.{challenge}").as_bytes()),
        None => crate::tls::sha256_hex(code.as_bytes()),
    }
}

/// The PKCE challenge of an authorization request (RFC 7636 4.3), if it has one. Only `S256` is
/// taken: `plain` (the default when no method is named) protects nothing once the request is seen.
fn pkce_challenge(params: &[(String, String)]) -> Result<Option<String>, &'static str> {
    let Some(challenge) = param(params, "code_challenge") else {
        return match param(params, "code_challenge_method") {
            Some(_) => Err("code_challenge_method without a code_challenge"),
            None => Ok(None),
        };
    };
    if param(params, "code_challenge_method") != Some("S256") {
        return Err("code_challenge_method must be S256 (plain is not accepted)");
    }
    // The BASE64URL of a SHA-256: 43 characters.
    let decoded = URL_SAFE_NO_PAD.decode(challenge);
    if !decoded.is_ok_and(|bytes| bytes.len() == 32) {
        return Err("code_challenge is not the BASE64URL of a SHA-256 (43 characters)");
    }
    Ok(Some(challenge.to_owned()))
}

/// The S256 challenge of a `code_verifier` (RFC 7636 4.1 and 4.2): 43 to 128 unreserved
/// characters, hashed and BASE64URL-encoded.
fn pkce_s256(verifier: &str) -> Result<String, &'static str> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(unreserved) {
        return Err("code_verifier must be 43 to 128 letters, digits, '-', '.', '_' or '~'");
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    Ok(URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

fn random<const N: usize>() -> [u8; N] {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; N];
    // The system's random source does not fail on the systems the relay runs on.
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes);
    bytes
}

/// An absolute http(s) URL without a fragment (RFC 6749 3.1.2).
fn is_redirect_uri(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        matches!(u.scheme(), "https" | "http") && u.fragment().is_none() && u.has_host()
    })
}

fn params(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn form_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The form body of a request, up to [`MAX_FORM_BYTES`].
async fn read_form(request: HttpRequest) -> Option<Vec<(String, String)>> {
    let body = request.into_body().read(MAX_FORM_BYTES).await.ok()?;
    Some(params(&body))
}

fn unreadable_form() -> HttpResponse {
    token_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &format!("the form is unreadable or larger than {MAX_FORM_BYTES} bytes"),
    )
}

/// An RFC 6749 section 5.2 error.
fn token_error(status: StatusCode, code: &str, description: &str) -> HttpResponse {
    let mut response = json_response(
        status,
        &json!({"error": code, "error_description": description}),
    );
    no_store(response.headers_mut());
    response
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A 503 for the token endpoint, in its JSON.
fn store_unavailable(e: &StoreError) -> HttpResponse {
    warn!(error = %e, "the OAuth server cannot reach the store");
    let mut response = token_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "the relay's store is not available; try again in a moment",
    );
    response
        .headers_mut()
        .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("30"));
    response
}

/// A 503 for the pages an operator's browser shows.
fn unavailable(e: &StoreError) -> HttpResponse {
    warn!(error = %e, "the OAuth server cannot reach the store");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The relay cannot answer now",
        "<p>Its store is not available. Try again in a moment.</p>",
    )
}

fn sign_in() -> HttpResponse {
    let mut response = page(
        StatusCode::UNAUTHORIZED,
        "Sign in to approve",
        "<p>An operator of this relay (server.auth.oauth.operators) must sign in to approve \
         this request.</p>",
    );
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    response
}

/// The consent page: what asks for a token, where it goes, and two buttons.
fn consent_page(consent: &Consent, signed: &str) -> HttpResponse {
    let e = handlebars::html_escape;
    let grant = match consent.response_type.as_str() {
        "code" => "an authorization code, which it exchanges for a token",
        _ => "a token, in the address it is sent back to",
    };
    let body = format!(
        r#"<p><strong>{client}</strong> asks for a token to post alerts to this relay.</p>
<dl>
<dt>Signed in as</dt><dd>{operator}</dd>
<dt>It receives</dt><dd>{grant}, at <code>{redirect}</code></dd>
</dl>
<p>The token is valid until it expires or is revoked (<code>alert-relay tokens revoke ID</code>).</p>
<form method="post" action="/oauth/authorize">
<input type="hidden" name="consent" value="{signed}">
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>"#,
        client = e(&consent.client_id),
        operator = e(&consent.operator),
        redirect = e(&consent.redirect_uri),
        signed = e(signed),
    );
    page(StatusCode::OK, "Approve a token for alert-relay", &body)
}

/// A small HTML page, never cached, never framed, running no script.
fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}}
button{{font:inherit;padding:.4rem 1.2rem;margin-right:.5rem}}code{{word-break:break-all}}</style>
</head><body><main><h1>{title}</h1>
{body}
</main></body></html>"#,
        title = handlebars::html_escape(title),
    );
    let mut response = Response::new(Full::new(Bytes::from(html)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    no_store(headers);
    response
}
