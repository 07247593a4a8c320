//! The HTTP client the relay sends with, and how much of an answer it reads; the answers the
//! relay's servers give.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

/// Every answer the relay's HTTP servers give (ingest, OAuth and studio).
pub type HttpResponse = Response<Full<Bytes>>;

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
