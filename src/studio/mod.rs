//! The template studio: a page served on a listener of its own, where a template is edited and
//! every destination kind's message for a chosen event is previewed as it is typed, rendered and
//! checked by the relay's own code ([`crate::render::render_texts`]). The page is HTML, CSS and JS
//! written here and embedded in the binary; it fetches nothing from elsewhere.
//!
//! The API under `/api/` answers JSON. Every POST needs the page's CSRF token in `X-CSRF-Token`
//! and, when the browser says where it comes from (`Origin`, `Sec-Fetch-Site`), this origin.
//! Template files are named by kind, stem and part, each checked against the lists the relay
//! knows, so that no request can name a path outside the template tree.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::auth::{Auth, AuthConfig, BasicCredential};
use crate::deliver::{DestinationKind, Message, Outgoing, Part};
use crate::error::ConfigError;
use crate::event::{Event, EventKind, SourceKind, Sources};
use crate::http::{Body, HttpRequest, HttpResponse, error, json_response};
use crate::memory::Memory;
use crate::outbox::Outbox;
use crate::relay::Live;
use crate::render::{self, Situation};
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

/// How many of the events the store keeps the page offers.
const RECENT_EVENTS: usize = 50;
/// The largest request the API takes: an event and a template.
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/studio.js");
const STYLE: &str = include_str!("page/studio.css");

/// How many rendered email bodies the studio keeps for its preview frames: the latest renders of
/// the pages open at once.
const PREVIEWS_KEPT: usize = 32;

/// An email preview's policy: the inline styles email HTML needs, no script, nothing fetched
/// (an image only from `data:`), framed only by the studio's page, and a sandbox of its own.
const PREVIEW_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                           base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox";

/// No inline script or style, nothing from another origin; the email preview is a sandboxed
/// frame served from its own URL under [`PREVIEW_CSP`].
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

pub struct Studio {
    live: Arc<Live>,
    outbox: Arc<Outbox>,
    /// The budget shared with ingest and the workers; previews render within it.
    memory: Arc<Memory>,
    /// The main template tree, where `Save` writes.
    templates_dir: PathBuf,
    write: bool,
    auth: Option<Auth>,
    /// Put in the page; every POST must send it back.
    csrf: String,
    /// Its listen port, and the names it answers to besides its address (`hosts`, lowercase).
    port: u16,
    names: Vec<String>,
    /// The latest email previews, each by a random token (see [`PREVIEWS_KEPT`]).
    previews: std::sync::Mutex<std::collections::VecDeque<(String, String)>>,
}

impl Studio {
    pub fn new(
        config: &StudioConfig,
        base_dir: &std::path::Path,
        templates_dir: PathBuf,
        live: Arc<Live>,
        outbox: Arc<Outbox>,
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
            memory,
            templates_dir,
            write: config.write,
            port: config.listen.port(),
            names: config
                .hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            auth,
            csrf: token.iter().map(|b| format!("{b:02x}")).collect(),
            previews: Default::default(),
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
            (&Method::GET, "/") => self.page(),
            (&Method::GET, "/studio.js") => asset(SCRIPT, "text/javascript; charset=utf-8"),
            (&Method::GET, "/studio.css") => asset(STYLE, "text/css; charset=utf-8"),
            (&Method::GET, "/api/catalog") => self.catalog().await,
            (&Method::GET, "/api/event") => self.event(&query).await,
            (&Method::GET, "/api/template") => self.template(&query),
            (&Method::GET, preview) if preview.starts_with("/preview/") => {
                self.preview(&preview["/preview/".len()..])
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
                    "/api/save" => self.save(body),
                    _ => self.send(body).await,
                }
            }
            (
                _,
                "/" | "/studio.js" | "/studio.css" | "/api/catalog" | "/api/event"
                | "/api/template" | "/api/render" | "/api/save" | "/api/send",
            ) => error(StatusCode::METHOD_NOT_ALLOWED, "not with this method"),
            _ => error(StatusCode::NOT_FOUND, "no such page"),
        }
    }

    fn page(&self) -> HttpResponse {
        let page = PAGE.replace("{{csrf}}", &self.csrf);
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
        if !token_ok || cross_site || foreign_origin {
            return Err(Refused(
                StatusCode::FORBIDDEN,
                "this request does not come from the studio page (CSRF token or origin)",
            ));
        }
        Ok(())
    }

    /// What the page offers: events, template files, destinations.
    async fn catalog(&self) -> HttpResponse {
        let mut events: Vec<Value> = crate::samples::SAMPLES
            .iter()
            .map(|s| json!({ "id": format!("sample:{}", s.file), "label": format!("sample: {}", s.file) }))
            .collect();
        match self.outbox.recent_events(RECENT_EVENTS).await {
            Ok(recent) => events.extend(recent.iter().map(|e| {
                let at = chrono::DateTime::from_timestamp_millis(e.received_at)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default();
                json!({ "id": format!("recent:{}", e.id), "label": format!("received {at}: {}", e.event_id) })
            })),
            Err(e) => warn!(error = %e, "the studio cannot list the events the store keeps"),
        }
        let templates: Vec<Value> = TemplateId::all()
            .map(|id| {
                let source = id.source(&self.templates_dir);
                json!({ "id": id.name(), "kind": id.kind.as_str(), "file": source.file })
            })
            .collect();
        let relay = self.live.current();
        let destinations: Vec<Value> = relay
            .destinations
            .iter()
            .map(|(name, target)| json!({ "name": name, "kind": target.kind.as_str() }))
            .collect();
        json_response(
            StatusCode::OK,
            &json!({ "events": events, "templates": templates, "destinations": destinations, "write": self.write }),
        )
    }

    /// One event's JSON: a bundled sample or one the store keeps.
    async fn event(&self, query: &str) -> HttpResponse {
        let id = query_value(query, "id").unwrap_or_default();
        let found = if let Some(file) = id.strip_prefix("sample:") {
            crate::samples::SAMPLES
                .iter()
                .find(|s| s.file == file)
                .map(|s| (s.body.as_bytes().to_vec(), s.kind().as_str().to_owned()))
        } else if let Some(row) = id.strip_prefix("recent:").and_then(|n| n.parse().ok()) {
            match self.outbox.event_body(row).await {
                Ok(stored) => stored.map(|(body, normalized)| {
                    // The source that accepted it, as the store kept the event.
                    let source = Event::stored_origin(normalized.as_deref()).map_or_else(
                        |_| SourceKind::Thousandeyes.as_str().to_owned(),
                        |origin| origin.name,
                    );
                    (body, source)
                }),
                Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            }
        } else {
            None
        };
        let Some((body, source)) = found else {
            return error(StatusCode::NOT_FOUND, "no such event");
        };
        let text = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        json_response(StatusCode::OK, &json!({ "json": text, "source": source }))
    }

    /// One template file's text, or the built-in one when there is no file.
    fn template(&self, query: &str) -> HttpResponse {
        let Some(id) = query_value(query, "id").and_then(|id| TemplateId::parse(&id)) else {
            return error(StatusCode::NOT_FOUND, "no such template");
        };
        let source = id.source(&self.templates_dir);
        json_response(
            StatusCode::OK,
            &json!({ "id": id.name(), "text": source.text, "source": source.name, "file": source.file }),
        )
    }

    /// Every destination kind's message for the event, the edited template standing for its file.
    async fn render(&self, request: Value) -> HttpResponse {
        let edit = match Edit::from_request(&request) {
            Ok(edit) => edit,
            Err(refused) => return refused.response(),
        };
        // Under the memory budget the ingest path and the workers share, and off the threads
        // that serve requests: a large preview waits for room and never holds up an accept.
        let _room = self.reserve(&edit.event).await;
        let (relay, dir) = (self.live.current(), self.templates_dir.clone());
        let rendered =
            tokio::task::spawn_blocking(move || edit.render_every_kind(&relay.sources, &dir));
        let (previews, context) = match rendered.await {
            Ok(Ok(rendered)) => rendered,
            Ok(Err(reason)) => {
                return json_response(StatusCode::OK, &json!({ "event_error": reason }));
            }
            Err(e) => {
                warn!(error = %e, "a studio preview failed");
                return error(StatusCode::INTERNAL_SERVER_ERROR, "the preview failed");
            }
        };
        let mut shown = serde_json::Map::new();
        for preview in previews {
            let mut json = json!({ "templates": preview.templates });
            match preview.rendered {
                Ok(message) => json["message"] = self.message_json(&message),
                Err((failure, fallback)) => {
                    json["failure"] = json!({
                        "template": failure.template,
                        "line": failure.line,
                        "column": failure.column,
                        "reason": failure.reason,
                        "text": failure.to_string(),
                    });
                    json["fallback"] = self.message_json(&fallback);
                }
            }
            shown.insert(preview.kind.as_str().to_owned(), json);
        }
        json_response(
            StatusCode::OK,
            &json!({ "previews": shown, "context": context }),
        )
    }

    /// Room in the events budget for rendering the event `text` is: what it takes parsed, times
    /// the copies a rendering makes, and the messages.
    async fn reserve(&self, text: &str) -> Option<crate::memory::Reservation<'_>> {
        let shape = crate::event::measure(text.as_bytes()).ok()?.shape;
        let bytes = shape.parsed_bytes() * crate::memory::RENDER_COPIES
            + text.len() * DestinationKind::all().count();
        Some(self.memory.events.reserve(bytes).await)
    }

    /// Writes the edited template into the main tree; the relay's reloader then picks it up (and
    /// refuses it, keeping the previous templates, if the relay would not render with it).
    fn save(&self, request: Value) -> HttpResponse {
        if !self.write {
            return error(
                StatusCode::FORBIDDEN,
                "saving is off: set [studio] write = true to let the studio write templates",
            );
        }
        let parsed = match Edit::from_request(&request) {
            Ok(parsed) => parsed,
            Err(refused) => return refused.response(),
        };
        let path = parsed.id.path(&self.templates_dir);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, &parsed.text));
        match written {
            Ok(()) => {
                info!(template = %path.display(), "the studio saved a template");
                json_response(
                    StatusCode::OK,
                    &json!({ "saved": path.display().to_string() }),
                )
            }
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot write {}: {e}", path.display()),
            ),
        }
    }

    /// Delivers the preview to one destination now, and says what it answered.
    async fn send(&self, request: Value) -> HttpResponse {
        let parsed = match Edit::from_request(&request) {
            Ok(parsed) => parsed,
            Err(refused) => return refused.response(),
        };
        let relay = self.live.current();
        let name = request["destination"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some(target) = relay.destinations.get(&name) else {
            return error(
                StatusCode::NOT_FOUND,
                &format!("no destination named {name:?}"),
            );
        };
        // Read and rendered as a preview is: within the budget, off the serving threads.
        let _room = self.reserve(&parsed.event).await;
        let (kind, dir, sources) = (target.kind, self.templates_dir.clone(), relay.clone());
        let destination = name.clone();
        let rendered = tokio::task::spawn_blocking(move || {
            let event = parsed.event(&sources.sources)?;
            let texts = parsed.texts(kind, event.kind, &dir);
            let message =
                render::render_texts(kind, &event, &destination, &texts, Situation::default());
            Ok::<_, String>((event, message))
        })
        .await;
        let (event, message) = match rendered {
            Ok(Ok((event, Ok(message)))) => (event, message),
            Ok(Ok((_, Err(failure)))) => {
                return json_response(
                    StatusCode::OK,
                    &json!({ "ok": false, "answer": format!("not sent: template {failure}") }),
                );
            }
            Ok(Err(reason)) => return error(StatusCode::BAD_REQUEST, &reason),
            Err(e) => {
                warn!(error = %e, "a studio test message failed to render");
                return error(StatusCode::INTERNAL_SERVER_ERROR, "the rendering failed");
            }
        };
        // Paced as any delivery to it: a test message takes a turn the workers would have used.
        if let Err(wait) = target.take_turn(SEND_WAIT).await {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "not sent: {name} is paced (rate_limit); the next message may go in {}",
                    humantime::format_duration(Duration::from_secs(wait.as_secs() + 1))
                ),
            );
        }
        let answer = tokio::time::timeout(
            relay.timeout,
            target.destination.deliver(&Outgoing::new(&event, message)),
        )
        .await
        .unwrap_or(Err(crate::deliver::DeliveryError::Timeout));
        info!(
            destination = name,
            ok = answer.is_ok(),
            "the studio sent a test message"
        );
        let (ok, answer) = match answer {
            Ok(sent) => (true, sent.receipt.0),
            Err(e) => (false, e.to_string()),
        };
        json_response(StatusCode::OK, &json!({ "ok": ok, "answer": answer }))
    }
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

/// One template file, named as the relay looks it up: `<kind>/<stem><part suffix>`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TemplateId {
    kind: DestinationKind,
    /// `default` or an event kind.
    stem: &'static str,
    part: Part,
}

impl TemplateId {
    fn all() -> impl Iterator<Item = TemplateId> {
        DestinationKind::all().flat_map(|kind| {
            std::iter::once("default")
                .chain(EventKind::ALL.map(EventKind::as_str))
                .flat_map(move |stem| {
                    kind.facts()
                        .parts()
                        .iter()
                        .map(move |&part| TemplateId { kind, stem, part })
                })
        })
    }

    fn name(&self) -> String {
        format!("{}/{}{}", self.kind.as_str(), self.stem, self.part.suffix())
    }

    /// Only a name from [`TemplateId::all`]: nothing else can become a path.
    fn parse(name: &str) -> Option<TemplateId> {
        Self::all().find(|id| id.name() == name)
    }

    fn path(&self, dir: &std::path::Path) -> PathBuf {
        dir.join(self.kind.as_str())
            .join(format!("{}{}", self.stem, self.part.suffix()))
    }

    fn source(&self, dir: &std::path::Path) -> render::Source {
        let event_kind = EventKind::parse(self.stem).unwrap_or(EventKind::Unknown);
        render::source(dir, self.kind, event_kind, self.part, Some(self.stem))
    }
}

/// A render, save or send request: the template being edited, its text, the event and the
/// source that reads it.
struct Edit {
    id: TemplateId,
    text: String,
    event: String,
    source: String,
}

impl Edit {
    fn from_request(request: &Value) -> Result<Self, Refused> {
        let id = request["template"]
            .as_str()
            .and_then(TemplateId::parse)
            .ok_or(Refused(
                StatusCode::BAD_REQUEST,
                "template names no template file",
            ))?;
        let text = request["text"]
            .as_str()
            .ok_or(Refused(StatusCode::BAD_REQUEST, "text is missing"))?
            .to_owned();
        Ok(Self {
            id,
            text,
            event: request["event"].as_str().unwrap_or_default().to_owned(),
            source: request["source"]
                .as_str()
                .unwrap_or(SourceKind::Thousandeyes.as_str())
                .to_owned(),
        })
    }

    /// The event the edited JSON is, read as `source` reads it: a configured source by name, or
    /// a source kind (the bundled samples); the first event of a body holding several.
    fn event(&self, sources: &Sources) -> Result<Event, String> {
        sources
            .read(&self.source, self.event.as_bytes(), chrono::Utc::now())?
            .into_iter()
            .next()
            .ok_or_else(|| "the body holds no event".to_owned())
    }

    /// What every destination kind would receive for the event, and the context of the edited
    /// template's kind; or why the event cannot be read.
    fn render_every_kind(
        &self,
        sources: &Sources,
        dir: &std::path::Path,
    ) -> Result<(Vec<Preview>, Value), String> {
        let event = self.event(sources)?;
        let previews = DestinationKind::all()
            .map(|kind| {
                let destination = format!("studio_{}", kind.as_str());
                let texts = self.texts(kind, event.kind, dir);
                let rendered =
                    render::render_texts(kind, &event, &destination, &texts, Situation::default())
                        .map_err(|failure| (failure, kind.facts().fallback(&event)));
                Preview {
                    kind,
                    templates: texts.into_iter().map(|(name, _)| name).collect(),
                    rendered,
                }
            })
            .collect();
        let context = render::context(
            &event,
            &format!("studio_{}", self.id.kind.as_str()),
            self.id.kind,
            Situation::default(),
        );
        Ok((previews, context))
    }

    /// The templates a destination of `kind` renders an `event_kind` event with: the edited
    /// text for the part it stands for, the relay's lookup for the others.
    fn texts(
        &self,
        kind: DestinationKind,
        event_kind: EventKind,
        dir: &std::path::Path,
    ) -> Vec<(String, String)> {
        kind.facts()
            .parts()
            .iter()
            .map(|&part| {
                if kind == self.id.kind && part == self.id.part {
                    (self.id.name(), self.text.clone())
                } else {
                    let source = render::source(dir, kind, event_kind, part, None);
                    (source.name, source.text)
                }
            })
            .collect()
    }
}

impl Studio {
    /// A message as the page shows it; an email's HTML is kept for its frame, at `html_url`.
    fn message_json(&self, message: &Message) -> Value {
        let mut shown = message_json(message);
        if let Message::Email(email) = message {
            shown["html_url"] = json!(format!("/preview/{}", self.keep_preview(&email.html)));
        }
        shown
    }

    /// Keeps `html` for a preview frame; its token.
    fn keep_preview(&self, html: &str) -> String {
        let mut token = [0u8; 16];
        // The system's random source does not fail on the systems the relay runs on.
        let _ = aws_lc_rs::rand::fill(&mut token);
        let token = crate::tls::hex(&token);
        let mut previews = self.previews.lock().unwrap_or_else(|e| e.into_inner());
        if previews.len() >= PREVIEWS_KEPT {
            previews.pop_front();
        }
        previews.push_back((token.clone(), html.to_owned()));
        token
    }

    /// `GET /preview/TOKEN`: a kept email body, under its own policy.
    fn preview(&self, token: &str) -> HttpResponse {
        let previews = self.previews.lock().unwrap_or_else(|e| e.into_inner());
        let Some((_, html)) = previews.iter().find(|(kept, _)| kept == token) else {
            return error(
                StatusCode::NOT_FOUND,
                "no such preview: it was replaced by later ones",
            );
        };
        let mut response = asset(html.clone(), "text/html; charset=utf-8");
        response.headers_mut().insert(
            "content-security-policy",
            HeaderValue::from_static(PREVIEW_CSP),
        );
        response
    }
}

/// One kind's preview: the templates it used, and its message, or why they failed and the
/// message the relay would send instead.
struct Preview {
    kind: DestinationKind,
    templates: Vec<String>,
    rendered: Result<Message, (render::TemplateFailure, Message)>,
}

fn message_json(message: &Message) -> Value {
    match message {
        Message::Json(value) => json!({ "json": value }),
        // Checked to be JSON when it was rendered.
        Message::JsonText(text) => json!({
            "json": serde_json::from_str::<Value>(text).unwrap_or_else(|_| json!(text))
        }),
        Message::Email(email) => {
            json!({ "subject": email.subject, "text": email.text, "html": email.html })
        }
        Message::Text(text) => json!({ "text": text }),
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
