//! The template studio: a page served on a listener of its own, where a template is edited and
//! every destination kind's message for a chosen event is previewed as it is typed, rendered and
//! checked by the relay's own code ([`crate::render::render_texts`]). The page is HTML, CSS and JS
//! written here and embedded in the binary; it fetches nothing from elsewhere.
//!
//! The API under `/api/` answers JSON. Every POST needs the page's CSRF token in `X-CSRF-Token`
//! and, when the browser says where it comes from (`Origin`, `Sec-Fetch-Site`), this origin.
//! Template files are named by kind, stem and part, each checked against the lists the relay
//! knows, so that no request can name a path outside the template tree.

mod api;
mod edit;
mod frames;
mod save;
mod silences;
mod templates;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{Auth, AuthConfig, BasicCredential};
use crate::error::ConfigError;
use crate::http::{Body, HttpRequest, HttpResponse, error};
use crate::memory::Memory;
use crate::noise::Silences;
use crate::outbox::Outbox;
use crate::relay::Live;
use crate::server::{Handler, Limits};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StudioConfig {
    pub enabled: bool,
    /// Its own address, apart from the ingest port.
    pub listen: SocketAddr,
    /// Basic users; required when `listen` is not a loopback address.
    pub auth: Vec<BasicCredential>,
    /// Whether `Save` may write template files.
    pub write: bool,
    /// Names the studio answers to besides its listen address and `localhost` (a name a proxy in
    /// front of it is reached by): any other `Host` is refused, so that a web page cannot reach
    /// it by pointing a name of its own at this address (DNS rebinding).
    pub hosts: Vec<String>,
}

impl Default for StudioConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: ([127, 0, 0, 1], 8081).into(),
            auth: Vec::new(),
            write: false,
            hosts: Vec::new(),
        }
    }
}

impl StudioConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && !self.listen.ip().is_loopback() && self.auth.is_empty() {
            return Err(ConfigError::new(
                "studio.auth",
                format!(
                    "is required when studio.listen ({}) is not a loopback address: the studio shows events and can send them",
                    self.listen
                ),
            ));
        }
        self.auth_config().validate().map_err(|e| {
            ConfigError::new(
                e.key.replacen("server.auth.basic", "studio.auth", 1),
                e.reason,
            )
        })
    }

    fn auth_config(&self) -> AuthConfig {
        AuthConfig {
            basic: self
                .auth
                .iter()
                .map(|c| BasicCredential {
                    username: c.username.clone(),
                    password: c.password.clone(),
                    password_file: c.password_file.clone(),
                })
                .collect(),
            ..AuthConfig::default()
        }
    }
}

/// How long Send test waits for its turn in the destination's pace before it says when to try
/// again.
const SEND_WAIT: Duration = Duration::from_secs(2);

/// The largest request the API takes: an event and a template.
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/studio.js");
const SILENCES_PAGE: &str = include_str!("page/silences.html");
const SILENCES_SCRIPT: &str = include_str!("page/silences.js");
const STYLE: &str = include_str!("page/studio.css");

/// No inline script or style, nothing from another origin; the email preview is a sandboxed
/// frame served from its own URL under a policy of its own (`frames.rs`).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

pub struct Studio {
    live: Arc<Live>,
    outbox: Arc<Outbox>,
    /// The silences this relay applies: one added or expired here applies at once.
    silences: Arc<Silences>,
    /// The budget shared with ingest and the workers; previews render within it.
    memory: Arc<Memory>,
    write: bool,
    auth: Option<Auth>,
    /// Put in the page; every POST must send it back.
    csrf: String,
    /// Its listen port, and the names it answers to besides its address (`hosts`, lowercase).
    port: u16,
    names: Vec<String>,
    /// The latest email previews' HTML, for their frames.
    frames: frames::Frames,
}

impl Studio {
    pub fn new(
        config: &StudioConfig,
        base_dir: &std::path::Path,
        live: Arc<Live>,
        outbox: Arc<Outbox>,
        silences: Arc<Silences>,
        memory: Arc<Memory>,
    ) -> Result<Self, ConfigError> {
        let auth = match config.auth.is_empty() {
            true => None,
            false => Some(
                Auth::new(
                    &config.auth_config(),
                    base_dir,
                    &crate::http::client(std::time::Duration::from_secs(5)),
                )
                .map_err(|e| {
                    ConfigError::new(
                        e.key.replacen("server.auth.basic", "studio.auth", 1),
                        e.reason,
                    )
                })?,
            ),
        };
        let mut token = [0u8; 32];
        aws_lc_rs::rand::fill(&mut token)
            .map_err(|_| ConfigError::new("studio", "cannot draw a random token for the page"))?;
        Ok(Self {
            live,
            outbox,
            silences,
            memory,
            write: config.write,
            port: config.listen.port(),
            names: config
                .hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            auth,
            csrf: token.iter().map(|b| format!("{b:02x}")).collect(),
            frames: frames::Frames::default(),
        })
    }

    /// The listener's limits: the ingest server's, with room for an event and a template.
    pub fn limits(server: Limits) -> Limits {
        Limits {
            max_body_bytes: MAX_REQUEST_BYTES,
            ..server
        }
    }

    /// Whether the request is for this studio: a `Host` that is an IP address or `localhost` with
    /// the listen port, or one of `hosts` (behind a proxy, on any port). A web page that rebinds a
    /// name of its own to this address sends that name, and gets nothing.
    fn for_this_studio(&self, request: &HttpRequest) -> bool {
        let authority = request
            .headers()
            .get(hyper::header::HOST)
            .and_then(|host| host.to_str().ok())
            .and_then(|host| host.parse::<hyper::http::uri::Authority>().ok());
        let Some(authority) = authority else {
            return false;
        };
        let host = authority.host().to_ascii_lowercase();
        let address = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok();
        if address || host == "localhost" {
            return authority.port_u16().unwrap_or(80) == self.port;
        }
        self.names.contains(&host)
    }

    async fn route(&self, request: HttpRequest, peer: SocketAddr) -> HttpResponse {
        if !self.for_this_studio(&request) {
            return error(
                StatusCode::FORBIDDEN,
                &format!(
                    "the studio answers only at its own address (an IP address or localhost, port {}) or a name in [studio] hosts",
                    self.port
                ),
            );
        }
        if let Some(auth) = &self.auth
            && auth
                .check(peer.ip(), request.headers(), &self.outbox)
                .await
                .is_err()
        {
            let mut response = error(StatusCode::UNAUTHORIZED, "sign in to use the studio");
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"alert-relay studio\""),
            );
            return response;
        }
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or("").to_owned();
        match (&method, path.as_str()) {
            (&Method::GET, "/") => self.page(PAGE),
            (&Method::GET, "/silences") => self.page(SILENCES_PAGE),
            (&Method::GET, "/studio.js") => asset(SCRIPT, "text/javascript; charset=utf-8"),
            (&Method::GET, "/silences.js") => {
                asset(SILENCES_SCRIPT, "text/javascript; charset=utf-8")
            }
            (&Method::GET, "/studio.css") => asset(STYLE, "text/css; charset=utf-8"),
            (&Method::GET, "/api/catalog") => self.catalog().await,
            (&Method::GET, "/api/event") => self.event(&query).await,
            (&Method::GET, "/api/template") => self.template(&query),
            // Only to the page itself (its fetch), not to a page of another site.
            (&Method::GET, "/api/token") if from_elsewhere(&request) => Refused(
                StatusCode::FORBIDDEN,
                "the studio's token is for the studio page only",
            )
            .response(),
            (&Method::GET, "/api/token") => self.token(),
            (&Method::GET, "/api/silences") => self.list_silences(&query).await,
            (&Method::GET, "/api/silences/preview") => self.preview_silence(&query).await,
            // For scripts as well as the page, without its token: a page of another site cannot
            // send a JSON POST or a DELETE here without a CORS preflight, which the studio never
            // grants, and a browser that sends one says where it comes from.
            (&Method::POST | &Method::DELETE, "/api/silences") | (&Method::DELETE, _)
                if from_elsewhere(&request) =>
            {
                Refused(
                    StatusCode::FORBIDDEN,
                    "silences are changed from the studio's own pages or from outside a browser",
                )
                .response()
            }
            (&Method::POST, "/api/silences") => {
                if !is_json(&request) {
                    return Refused(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "send the silence as JSON (Content-Type: application/json)",
                    )
                    .response();
                }
                match read_json(request.into_body()).await {
                    Ok(body) => self.add_silence(body).await,
                    Err(refused) => refused,
                }
            }
            (&Method::DELETE, silence) if silence.starts_with("/api/silences/") => {
                self.expire_silence(&silence["/api/silences/".len()..])
                    .await
            }
            (&Method::GET, preview) if preview.starts_with("/preview/") => {
                self.frames.answer(&preview["/preview/".len()..])
            }
            (&Method::POST, "/api/render" | "/api/save" | "/api/send") => {
                if let Err(refused) = self.same_origin(&request) {
                    return refused.response();
                }
                let body = match read_json(request.into_body()).await {
                    Ok(body) => body,
                    Err(refused) => return refused,
                };
                match path.as_str() {
                    "/api/render" => self.render(body).await,
                    "/api/save" => self.save(body).await,
                    _ => self.send(body).await,
                }
            }
            (
                _,
                "/"
                | "/studio.js"
                | "/studio.css"
                | "/api/catalog"
                | "/api/event"
                | "/api/template"
                | "/api/token"
                | "/api/render"
                | "/api/save"
                | "/api/send"
                | "/silences"
                | "/silences.js"
                | "/api/silences"
                | "/api/silences/preview",
            ) => error(StatusCode::METHOD_NOT_ALLOWED, "not with this method"),
            _ => error(StatusCode::NOT_FOUND, "no such page"),
        }
    }

    fn page(&self, page: &str) -> HttpResponse {
        let page = page.replace("{{csrf}}", &self.csrf);
        asset(page, "text/html; charset=utf-8")
    }

    /// A POST comes from this page: the token it was given, and no other origin.
    fn same_origin(&self, request: &HttpRequest) -> Result<(), Refused> {
        let headers = request.headers();
        let token = headers
            .get("x-csrf-token")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        let token_ok = bool::from(subtle::ConstantTimeEq::ct_eq(token, self.csrf.as_bytes()));
        if !token_ok || from_elsewhere(request) {
            return Err(Refused(
                StatusCode::FORBIDDEN,
                "this request does not come from the studio page (CSRF token or origin)",
            ));
        }
        Ok(())
    }
}

/// Whether `request` says its body is JSON.
fn is_json(request: &HttpRequest) -> bool {
    (request.headers().get(CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether the browser says `request` comes from a page of another site: a cross-site
/// `Sec-Fetch-Site`, or an `Origin` other than the studio's.
fn from_elsewhere(request: &HttpRequest) -> bool {
    let headers = request.headers();
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| !matches!(v.as_bytes(), b"same-origin" | b"none"));
    let host = headers.get("host").and_then(|h| h.to_str().ok());
    let foreign_origin = headers.get("origin").is_some_and(|origin| {
        let origin = origin.to_str().unwrap_or("");
        host.is_none_or(|host| {
            origin != format!("http://{host}") && origin != format!("https://{host}")
        })
    });
    cross_site || foreign_origin
}

impl Handler for Studio {
    async fn handle(&self, request: HttpRequest, peer: SocketAddr) -> HttpResponse {
        let mut response = self.route(request, peer).await;
        let headers = response.headers_mut();
        // The page's policy, unless the answer has its own (an email preview).
        headers
            .entry("content-security-policy")
            .or_insert(HeaderValue::from_static(CSP));
        headers.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The value of `name` in a query string, percent-decoded.
fn query_value(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

async fn read_json(body: Body) -> Result<Value, HttpResponse> {
    let bytes = body
        .read(MAX_REQUEST_BYTES)
        .await
        .map_err(|refused| refused.response())?;
    serde_json::from_slice(&bytes)
        .map_err(|_| Refused(StatusCode::BAD_REQUEST, "the request is not JSON").response())
}

/// A request the API does not take, and why.
struct Refused(StatusCode, &'static str);

impl Refused {
    fn response(self) -> HttpResponse {
        error(self.0, self.1)
    }
}

fn asset(text: impl Into<Bytes>, content_type: &'static str) -> HttpResponse {
    let mut response = Response::new(Full::new(text.into()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
