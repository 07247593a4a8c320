//! The HTTP client the relay sends with, and how much of an answer it reads; what the relay's
//! servers take and give: a request whose body is read, bounded, in one place ([`Body::read`]),
//! and the answers.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};

/// Every answer the relay's HTTP servers give (ingest, OAuth, studio).
pub type HttpResponse = Response<Full<Bytes>>;

/// Every request the relay's HTTP servers take. A handler is a function from one to an
/// [`HttpResponse`], so that it can be tested without a socket: `Request::get("/").body(().into())`.
pub type HttpRequest = Request<Body>;

/// A request's body, not yet read: from a connection, or given whole (a test, a replay).
pub struct Body {
    source: Source,
    /// The most this body may ever be read to: the listener's bound, whatever a handler asks.
    cap: usize,
}

enum Source {
    Incoming(Incoming),
    Whole(Bytes),
}

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("cannot read the body: {0}")]
    Unreadable(String),
}

impl BodyError {
    /// 413 for a body over the limit, 400 for one that broke off.
    pub fn response(&self) -> HttpResponse {
        match self {
            Self::TooLarge(_) => error(StatusCode::PAYLOAD_TOO_LARGE, &self.to_string()),
            Self::Unreadable(_) => error(StatusCode::BAD_REQUEST, &self.to_string()),
        }
    }
}

impl Body {
    /// The body of a request on a connection, never read past `cap` bytes.
    pub fn incoming(incoming: Incoming, cap: usize) -> Self {
        Self {
            source: Source::Incoming(incoming),
            cap,
        }
    }

    /// The length the sender announced (`Content-Length`), or the length of a whole body.
    pub fn announced(&self) -> Option<u64> {
        match &self.source {
            Source::Incoming(incoming) => incoming.size_hint().exact(),
            Source::Whole(bytes) => Some(bytes.len() as u64),
        }
    }

    /// How much reading this body with a limit of `max` takes at most (what to reserve before
    /// reading it): its announced length, or the limit; refused at once when it announces more.
    pub fn room(&self, max: usize) -> Result<usize, BodyError> {
        let max = max.min(self.cap);
        match self.announced() {
            Some(n) if n > max as u64 => Err(BodyError::TooLarge(max)),
            Some(n) => Ok(n as usize),
            None => Ok(max),
        }
    }

    /// Reads the whole body, refusing it as soon as it is known to be over `max` bytes (or the
    /// listener's bound): from its announced length before reading anything, else while
    /// reading. Read into one buffer of the announced size: collecting chunks and joining them
    /// would hold the body twice.
    pub async fn read(self, max: usize) -> Result<Bytes, BodyError> {
        let room = self.room(max)?;
        let max = max.min(self.cap);
        let incoming = match self.source {
            Source::Whole(bytes) => return Ok(bytes),
            Source::Incoming(incoming) => incoming,
        };
        let mut body = Limited::new(incoming, max);
        let mut read = Vec::with_capacity(room);
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        read.extend_from_slice(&data);
                    }
                }
                Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                    return Err(BodyError::TooLarge(max));
                }
                Err(e) => return Err(BodyError::Unreadable(e.to_string())),
            }
        }
        Ok(Bytes::from(read))
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Self {
            source: Source::Whole(bytes),
            cap: usize::MAX,
        }
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Bytes::from_static(text.as_bytes()).into()
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Bytes::from(text).into()
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl From<()> for Body {
    fn from((): ()) -> Self {
        Bytes::new().into()
    }
}

/// 405 with `Allow`, naming the methods this path takes.
pub fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let verb = if allow.contains(',') { "are" } else { "is" };
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("only {allow} {verb} accepted here"),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// A JSON answer.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: &str) -> HttpResponse {
    json_response(status, &serde_json::json!({ "error": message }))
}

/// The HTTP client the relay makes requests with (destinations, the JWKS): rustls on the relay's
/// crypto provider, no redirects (a redirected webhook is a misconfiguration, and following it
/// could send the alert somewhere unintended), one timeout per request.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(crate::tls::client_config())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("alert-relay/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend is compiled in")
}

/// The first `max` bytes of an answer's body (as text, invalid UTF-8 replaced); the rest is left
/// unread and the connection closed.
pub async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<String, reqwest::Error> {
    let mut body = Vec::new();
    while body.len() < max {
        match response.chunk().await? {
            Some(chunk) => body.extend_from_slice(&chunk[..chunk.len().min(max - body.len())]),
            None => break,
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}
