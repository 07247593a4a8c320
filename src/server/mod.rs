//! The HTTP server (hyper 1, no framework): the one front door every listener goes through
//! (`listen.rs`, with each request's head checked by `head.rs`, so that every refusal has a JSON
//! body naming the problem), and the ingest listener's handler: each source's path, the OAuth
//! endpoints, health, metrics.

mod head;
mod listen;

pub use head::{MAX_HEAD_BYTES, MAX_HEADERS, MAX_URI_BYTES};
pub use listen::{Handler, Limits, bind, raise_open_files_limit, serve};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use crate::auth::Denied;
use crate::error::ConfigError;
use crate::event::{Arrival, EventError, Phase, Source};
use crate::memory::{Memory, Reservation};
use crate::metrics::{EventOutcome, Metrics};
use crate::noise::Silences;
use crate::outbox::{Accepted, Addressed, NewEvent, Outbox};
use crate::relay::{Live, Relay};
use crate::secret::Secret;

/// `/readyz` fails when a small write to the store takes longer than this.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// `/readyz` fails unless the store's disk has room for this many more events of
/// `max_body_bytes`: a relay that cannot store the next alerts should not get them.
const READY_ROOM_EVENTS: u64 = 4;
/// Told to clients when the relay cannot take an event now; ThousandEyes retries anyway.
const RETRY_AFTER_SECS: &str = "30";

use crate::http::{Body, BodyError, method_not_allowed};
pub use crate::http::{HttpRequest, HttpResponse, error, json_response};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where ThousandEyes posts events when no `[sources]` are configured.
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
    pub auth: crate::auth::AuthConfig,
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
            auth: crate::auth::AuthConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Checks what serde cannot: paths, ranges, tokens.
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::event::source::check_path(&self.ingest_path)
            .map_err(|reason| ConfigError::new("server.ingest_path", reason))?;
        if self.max_connections == 0 {
            return Err(ConfigError::new(
                "server.max_connections",
                "must be at least 1",
            ));
        }
        if self.idle_timeout.is_zero()
            || self.header_timeout.is_zero()
            || self.request_timeout.is_zero()
        {
            return Err(ConfigError::new(
                "server.header_timeout",
                "idle_timeout, header_timeout and request_timeout must be longer than 0s",
            ));
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.expose().is_empty())
        {
            return Err(ConfigError::new(
                "server.metrics_token",
                "is empty; set a token or leave the key out",
            ));
        }
        if self.metrics_token.is_some() && self.metrics_token_file.is_some() {
            return Err(ConfigError::new(
                "server.metrics_token",
                "set metrics_token or metrics_token_file, not both",
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::new(
                "server.max_body_bytes",
                "must be at least 1",
            ));
        }
        self.auth.validate()
    }

    /// How much of the server one client may hold.
    pub fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            idle_timeout: self.idle_timeout,
            header_timeout: self.header_timeout,
            request_timeout: self.request_timeout,
            max_connections: self.max_connections,
        }
    }
}

/// Everything the server needs, shared by all connections.
pub struct Ingest {
    /// The relay in force: routes, credentials, the ingest path and the metrics token.
    pub live: Arc<Live>,
    pub limits: Limits,
    pub outbox: Arc<Outbox>,
    pub metrics: Arc<Metrics>,
    /// Room for request bodies and parsed events, shared with the workers.
    pub memory: Arc<Memory>,
    /// What holds events back as they arrive.
    pub silences: Arc<Silences>,
    /// Where clicks on the buttons of Slack messages go, when they come to a Request URL here.
    pub slack_clicks: Option<Arc<crate::slack_app::click::Clicks>>,
    /// Set when shutdown starts: new events get 503 so that ThousandEyes posts them again later.
    pub closing: AtomicBool,
}

impl Handler for Ingest {
    async fn handle(&self, request: HttpRequest, peer: SocketAddr) -> HttpResponse {
        // The relay in force for this whole request, even if a reload happens meanwhile.
        let relay = self.live.current();
        let path = request.uri().path();
        if path.starts_with("/oauth/") {
            return match relay.auth.oauth() {
                Some(oauth) => {
                    // The client's own address behind a trusted proxy: failed sign-ins count
                    // against it.
                    let address = match relay.auth.client_address(peer.ip(), request.headers()) {
                        crate::auth::Source::Address(address) => address,
                        crate::auth::Source::Unreadable(_) => peer.ip(),
                    };
                    oauth.handle(request, address, &self.outbox).await
                }
                None => error(
                    StatusCode::NOT_FOUND,
                    "no such path: [server.auth.oauth] is not configured",
                ),
            };
        }
        if let Some(clicks) = &self.slack_clicks
            && clicks.app.request_path() == Some(path)
        {
            return match request.method() {
                &Method::POST => self.slack_click(clicks, request).await,
                _ => method_not_allowed("POST"),
            };
        }
        let source = relay.sources.at(path);
        match (request.method(), source) {
            (&Method::POST, Some(source)) => self.ingest(&relay, source, request, peer).await,
            (_, Some(_)) => method_not_allowed("POST"),
            _ => self.answer(&relay, request).await,
        }
    }

    /// The current certificate: a reload with a renewed one applies to new connections.
    fn tls(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.live.current().tls.clone()
    }
}

impl Ingest {
    /// A click on a Slack message's button, at the Request URL: refused (401, nothing done)
    /// unless Slack's signature over it holds and is recent; answered 200 at once (Slack waits
    /// 3 s), the click handled after.
    async fn slack_click(
        &self,
        clicks: &Arc<crate::slack_app::click::Clicks>,
        request: HttpRequest,
    ) -> HttpResponse {
        use crate::slack_app::{Receiver, signature};
        let Receiver::RequestUrl { signing_secret, .. } = &clicks.app.receiver else {
            return error(StatusCode::NOT_FOUND, "no such path");
        };
        let header = |name: &str| {
            (request.headers().get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (timestamp, signed) = (
            header("x-slack-request-timestamp"),
            header("x-slack-signature"),
        );
        let body = match request.into_body().read(self.limits.max_body_bytes).await {
            Ok(body) => body,
            Err(refused) => return refused.response(),
        };
        let now = chrono::Utc::now().timestamp();
        if let Err(refused) = signature::verify(
            signing_secret,
            timestamp.as_deref(),
            signed.as_deref(),
            &body,
            now,
        ) {
            self.metrics.slack_signature_refused();
            warn!(
                reason = refused.reason(),
                "a request to the Slack Request URL is refused"
            );
            return error(StatusCode::UNAUTHORIZED, refused.reason());
        }
        // `payload=<JSON>`, form-encoded.
        let payload = url::form_urlencoded::parse(&body)
            .find(|(key, _)| key == "payload")
            .and_then(|(_, value)| serde_json::from_str::<serde_json::Value>(&value).ok());
        let Some(payload) = payload else {
            return error(
                StatusCode::BAD_REQUEST,
                "the body has no payload field holding JSON",
            );
        };
        let clicks = clicks.clone();
        tokio::spawn(async move { clicks.handle(&payload).await });
        Response::new(Full::new(Bytes::new()))
    }

    /// The relay's own paths: health, readiness, metrics.
    async fn answer(&self, relay: &Relay, request: HttpRequest) -> HttpResponse {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/healthz") => json_response(StatusCode::OK, &json!({"status": "ok"})),
            (&Method::GET, "/readyz") => self.ready().await,
            (&Method::GET, "/metrics") if !may_read_metrics(relay, request.headers()) => {
                let mut response =
                    error(StatusCode::UNAUTHORIZED, "a bearer token is required here");
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"alert-relay metrics\""),
                );
                response
            }
            (&Method::GET, "/metrics") => {
                let names: Vec<String> = relay.destinations.keys().cloned().collect();
                match self.outbox.backlog(names).await {
                    Ok(counts) => self.metrics.set_backlog(counts),
                    Err(e) => warn!(error = %e, "cannot count pending deliveries for /metrics"),
                }
                match self.outbox.open_groups().await {
                    Ok(open) => self.metrics.set_groups_open(open),
                    Err(e) => warn!(error = %e, "cannot count open groups for /metrics"),
                }
                (self.metrics).set_silences_active(self.silences.active(crate::outbox::now_ms()));
                let mut response = Response::new(Full::new(Bytes::from(self.metrics.encode())));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            (_, "/healthz" | "/readyz" | "/metrics") => method_not_allowed("GET"),
            _ => error(StatusCode::NOT_FOUND, "no such path"),
        }
    }

    async fn ready(&self) -> HttpResponse {
        let room = (self.limits.max_body_bytes as u64).saturating_mul(READY_ROOM_EVENTS);
        match tokio::time::timeout(READY_PROBE_TIMEOUT, self.outbox.probe(room)).await {
            Ok(Ok(())) => json_response(StatusCode::OK, &json!({"status": "ready"})),
            Ok(Err(e)) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "not ready", "error": e.to_string()}),
            ),
            Err(_) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "not ready", "error": "the store did not answer in time"}),
            ),
        }
    }

    async fn ingest(
        &self,
        relay: &Relay,
        source: &Source,
        request: HttpRequest,
        peer: SocketAddr,
    ) -> HttpResponse {
        if self.closing.load(Ordering::SeqCst) {
            return unavailable("shutting down; post again later");
        }
        if let Err(denied) = relay
            .auth
            .check(peer.ip(), request.headers(), &self.outbox)
            .await
        {
            let outcome = match denied {
                Denied::Unavailable => EventOutcome::RejectedUnavailable,
                _ => EventOutcome::RejectedAuth,
            };
            self.metrics.event(&source.origin.name, "none", outcome);
            return match denied {
                Denied::Unauthorized => challenge(
                    "missing or wrong credentials",
                    crate::auth::WWW_AUTHENTICATE,
                ),
                Denied::InvalidToken => challenge(
                    "the bearer token is unknown, expired or revoked",
                    crate::auth::WWW_AUTHENTICATE_INVALID_TOKEN,
                ),
                Denied::Forbidden(source) => {
                    warn!(%source, "refused a post from a source not in server.auth.allow_from");
                    error(
                        StatusCode::FORBIDDEN,
                        "this source address may not post here",
                    )
                }
                Denied::Unavailable => unavailable("cannot check the token now; post again later"),
            };
        }
        if let Some(other) = not_json(request.headers().get(CONTENT_TYPE)) {
            self.metrics.event(
                &source.origin.name,
                "none",
                EventOutcome::RejectedContentType,
            );
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("Content-Type {other} is not JSON; send application/json"),
            );
        }
        let (body, _body_room) = match self
            .read_body(&source.origin.name, request.into_body())
            .await
        {
            Ok(read) => read,
            Err(response) => return response,
        };
        let body = source.prepare(&body);
        let measured = match crate::event::measure(&body) {
            Ok(measured) => measured,
            Err(e) => return self.refuse(&source.origin.name, e),
        };
        // Room for the parsed event and the copy of the body that goes to the store; a body of
        // several alerts is stored once per alert, each copy with the group's fields: about twice.
        let copies = if source.origin.kind.batches() { 2 } else { 1 };
        let _event_room = self
            .memory
            .events
            .reserve((measured.shape.parsed_bytes() + body.len()) * copies)
            .await;
        let arrivals = match source.events(measured, chrono::Utc::now()) {
            Ok(arrivals) => arrivals,
            Err(e) => return self.refuse(&source.origin.name, e),
        };
        // The events of a body go to the store together and share its commits; should the store
        // fail midway, the sender posts the body again and those already stored are recognised
        // as duplicates.
        let answers = match self.store(relay, arrivals, &body).await {
            Ok(answers) => answers,
            Err(response) => return response,
        };
        match &answers[..] {
            [only] if !source.origin.kind.batches() => json_response(StatusCode::OK, only),
            _ => json_response(
                StatusCode::OK,
                &json!({"status": "accepted", "events": answers}),
            ),
        }
    }

    /// Stores the events of one body with their deliveries (with `sent`, the body as sent, for
    /// an arrival that brings no body of its own), all handed to the store's writer at once so
    /// that they share its commits; what the sender is told of each, or the refusal.
    async fn store(
        &self,
        relay: &Relay,
        arrivals: Vec<Arrival>,
        sent: &[u8],
    ) -> Result<Vec<serde_json::Value>, HttpResponse> {
        let mut events = Vec::with_capacity(arrivals.len());
        let mut stored = Vec::with_capacity(arrivals.len());
        let now = crate::outbox::now_ms();
        for Arrival { event, key, body } in arrivals {
            let plan = relay.router.plan(&event);
            let silenced = self.silences.silencer(&relay.windows, &event, now);
            if let Some(by) = &silenced {
                self.metrics.silenced(by);
            } else if event.kind.phase() == Some(Phase::Trigger)
                && plan.iter().any(|routed| routed.hold.is_some())
            {
                self.metrics.held();
            }
            let to: Vec<String> = plan.iter().map(|r| r.destination.clone()).collect();
            let addressed = plan
                .iter()
                .map(|routed| Addressed {
                    destination: routed.destination.clone(),
                    hold_ms: routed.hold.map_or(0, |hold| {
                        i64::try_from(hold.as_millis()).unwrap_or(i64::MAX)
                    }),
                    group: (routed.group.as_ref()).map(|g| crate::noise::group::joining(g, &event)),
                })
                .collect();
            stored.push(NewEvent {
                key,
                received_at: event.received_at.timestamp_millis(),
                body: body.unwrap_or_else(|| sent.to_vec()),
                normalized: Some(event.stored_form()),
                to: addressed,
                lifecycle: event
                    .lifecycle()
                    .map(|(key, phase)| (key.to_owned(), phase)),
                silenced: silenced.clone(),
            });
            events.push((event, to, silenced));
        }
        let results = self.outbox.accept_all(stored).await;
        let mut answers = Vec::with_capacity(events.len());
        for ((event, to, silenced), result) in events.iter().zip(results) {
            let (id, kind, source) = (&event.id, event.kind.as_str(), &event.source.name);
            answers.push(match result {
                Ok(Accepted::New { deliveries: 0, .. }) => {
                    warn!(event = %id, kind, %source, "accepted, but no route matches this event: it goes nowhere");
                    self.metrics.event(source, kind, EventOutcome::Unrouted);
                    json!({"status": "accepted", "eventId": id, "deliveries": 0})
                }
                Ok(Accepted::New {
                    deliveries,
                    flapped,
                }) => {
                    if flapped {
                        self.metrics.flapped();
                    }
                    info!(event = %id, kind, %source, deliveries, destinations = %to.join(","), silenced = silenced.as_deref(), flapped, "accepted");
                    self.metrics.event(source, kind, EventOutcome::Accepted);
                    json!({"status": "accepted", "eventId": id, "deliveries": deliveries})
                }
                Ok(Accepted::Duplicate) => {
                    info!(event = %id, kind, %source, "duplicate; already accepted");
                    self.metrics.event(source, kind, EventOutcome::Duplicate);
                    json!({"status": "duplicate", "eventId": id})
                }
                Err(e) => {
                    warn!(event = %id, error = %e, "cannot store the event; answering 503");
                    self.metrics
                        .event(source, kind, EventOutcome::RejectedUnavailable);
                    return Err(unavailable("cannot store the event now; post again later"));
                }
            });
        }
        Ok(answers)
    }

    /// 413 for a body too large to parse, 400 for one that is not an event.
    fn refuse(&self, source: &str, e: EventError) -> HttpResponse {
        if e.too_large() {
            self.metrics
                .event(source, "none", EventOutcome::RejectedTooLarge);
            error(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string())
        } else {
            self.metrics
                .event(source, "none", EventOutcome::RejectedInvalid);
            error(StatusCode::BAD_REQUEST, &e.to_string())
        }
    }

    /// Reads the body, refusing it as soon as it is known to be over the limit. Room for it in
    /// the memory budget is reserved first: its announced length, or the most it may be.
    async fn read_body(
        &self,
        source: &str,
        body: Body,
    ) -> Result<(Bytes, Reservation<'_>), HttpResponse> {
        let max = self.limits.max_body_bytes;
        let refused = |refused: BodyError| {
            if matches!(refused, BodyError::TooLarge(_)) {
                self.metrics
                    .event(source, "none", EventOutcome::RejectedTooLarge);
            }
            refused.response()
        };
        let room = self
            .memory
            .bodies
            .reserve(body.room(max).map_err(refused)?)
            .await;
        let read = body.read(max).await.map_err(refused)?;
        Ok((read, room))
    }
}

fn may_read_metrics(relay: &Relay, headers: &hyper::HeaderMap) -> bool {
    let Some(token) = &relay.metrics_token else {
        return true;
    };
    let presented = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(subtle::ConstantTimeEq::ct_eq(
        presented.as_bytes(),
        token.expose().as_bytes(),
    ))
}

/// The media type, when it clearly says the body is not JSON: a form, multipart, XML, or an image,
/// audio, video or font. ThousandEyes does not document the type it sends, so anything else
/// (none, `text/plain`, `application/octet-stream`, any JSON type) is read as JSON and refused
/// only if it does not parse.
fn not_json(content_type: Option<&HeaderValue>) -> Option<String> {
    let value = content_type?.to_str().ok()?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let clearly_other = essence == "application/x-www-form-urlencoded"
        || essence.contains("xml")
        || ["multipart/", "image/", "audio/", "video/", "font/"]
            .iter()
            .any(|prefix| essence.starts_with(prefix));
    clearly_other.then_some(essence)
}

/// A 401 that says which credentials are accepted.
fn challenge(message: &str, www_authenticate: &'static str) -> HttpResponse {
    let mut response = error(StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(www_authenticate));
    response
}

fn unavailable(message: &str) -> HttpResponse {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    response
}
