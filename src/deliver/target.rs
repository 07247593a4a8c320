//! A URL that messages are POSTed to as JSON, shared by the HTTP destinations (Slack, Teams,
//! webhooks): the secret URL and headers, the POST, reading and classifying the answer, and
//! cutting every secret out of what the peer says.

use std::path::Path;
use std::time::Duration;

use super::{DeliveryError, Receipt};
use crate::error::ConfigError;
use crate::secret::{Redactor, Secret};

/// A peer's answer body is kept in errors and logs up to this many characters: enough for Slack's
/// `invalid_blocks` explanations, short enough for a log line.
pub const MAX_ANSWER_CHARS: usize = 500;
/// At most this much of a peer's answer is read; the rest is never downloaded, so that an answer
/// that does not end (or is huge) costs neither memory nor the attempt's time.
pub const MAX_ANSWER_BYTES: usize = 4096;

/// A URL that messages are POSTed to as JSON, shared by the HTTP destinations.
pub struct HttpTarget {
    /// A secret: Slack and Teams webhook URLs carry their own credentials.
    url: Secret,
    headers: reqwest::header::HeaderMap,
    http: reqwest::Client,
    /// Cuts the URL and the header values out of what the peer answers.
    redactor: Redactor,
}

impl HttpTarget {
    /// Reads the URL given as `url` or `url_file` and checks that it is an http(s) URL.
    pub fn new(
        key: &str,
        url: Option<&Secret>,
        url_file: Option<&Path>,
        base_dir: &Path,
        http: &reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let file = url_file.map(|f| base_dir.join(f));
        let url = crate::secret::from_value_or_file("url", url, file.as_deref())
            .map_err(|reason| ConfigError::new(key, reason))?;
        match url::Url::parse(url.expose()) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(Self {
                redactor: redactor(&url, &reqwest::header::HeaderMap::new()),
                url,
                headers: reqwest::header::HeaderMap::new(),
                http: http.clone(),
            }),
            // The reason names no part of the URL: it is a secret.
            _ => Err(ConfigError::new(
                format!("{key}.url"),
                "is not an http(s) URL",
            )),
        }
    }

    /// A target at `url`, already read and checked (an API endpoint built from a base URL).
    pub fn at(url: url::Url, http: &reqwest::Client) -> Self {
        let url = Secret::new(url.as_str());
        Self {
            redactor: redactor(&url, &reqwest::header::HeaderMap::new()),
            url,
            headers: reqwest::header::HeaderMap::new(),
            http: http.clone(),
        }
    }

    /// Adds headers sent with every request.
    pub fn with_headers(mut self, headers: reqwest::header::HeaderMap) -> Self {
        self.redactor = redactor(&self.url, &headers);
        self.headers = headers;
        self
    }

    /// POSTs `body` and turns any answer other than 2xx into a [`DeliveryError`]. The answer is
    /// kept for logs with the URL, and its path and query, cut out in case the peer echoes them.
    pub async fn post_json(&self, body: String) -> Result<Receipt, DeliveryError> {
        let answer = self.exchange(body, MAX_ANSWER_BYTES).await?;
        let text: String = self
            .redact(answer.text.trim())
            .chars()
            .take(MAX_ANSWER_CHARS)
            .collect();
        if (200..300).contains(&answer.status) {
            Ok(Receipt(
                format!("{} {text}", answer.status).trim_end().to_owned(),
            ))
        } else {
            Err(DeliveryError::Status {
                status: answer.status,
                retry_after: answer.retry_after,
                answer: text,
            })
        }
    }

    /// POSTs `body` (JSON text) and returns the answer, whatever its status, with at most `max`
    /// bytes of its body, as sent: redact before showing it.
    pub async fn exchange(&self, body: String, max: usize) -> Result<Answer, DeliveryError> {
        let mut headers = self.headers.clone();
        headers.entry(reqwest::header::CONTENT_TYPE).or_insert(
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        let request = self
            .http
            .post(self.url.expose())
            .headers(headers)
            .body(body);
        Self::answer(request, max).await
    }

    /// GETs the URL with `query` added, as [`HttpTarget::exchange`] POSTs.
    pub async fn get(&self, query: &[(&str, &str)], max: usize) -> Result<Answer, DeliveryError> {
        let mut headers = self.headers.clone();
        headers.remove(reqwest::header::CONTENT_TYPE);
        let mut url = url::Url::parse(self.url.expose())
            .map_err(|_| DeliveryError::Rejected("the URL is not a URL".into()))?;
        url.query_pairs_mut().extend_pairs(query);
        let request = self.http.get(url).headers(headers);
        Self::answer(request, max).await
    }

    async fn answer(request: reqwest::RequestBuilder, max: usize) -> Result<Answer, DeliveryError> {
        let response = request.send().await.map_err(request_error)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = crate::http::read_capped(response, max)
            .await
            .map_err(request_error)?;
        Ok(Answer {
            status,
            retry_after,
            text,
        })
    }

    /// `text` with every secret this target sends cut out.
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }
}

/// A peer's answer: see [`HttpTarget::exchange`].
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub text: String,
}

/// Every secret a target sends: the URL, its path and query, and header values, whole and without
/// their scheme word (`Token abc…` and `abc…`).
fn redactor(url: &Secret, headers: &reqwest::header::HeaderMap) -> Redactor {
    let url = url.expose();
    let mut secrets: Vec<String> = vec![url.to_owned()];
    // The path and query as written, from the first `/` after the host.
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    if let Some(start) = url[after_scheme..].find('/') {
        secrets.push(url[after_scheme + start..].to_owned());
    }
    if let Some((_, query)) = url.split_once('?') {
        secrets.push(query.to_owned());
    }
    for value in headers.values().filter_map(|v| v.to_str().ok()) {
        secrets.push(value.to_owned());
        if let Some((_scheme, credential)) = value.trim().split_once(char::is_whitespace) {
            secrets.push(credential.trim().to_owned());
        }
    }
    Redactor::new(secrets)
}

/// A reqwest error without its URL, which for Slack and Teams is a secret.
fn request_error(error: reqwest::Error) -> DeliveryError {
    let error = error.without_url();
    if error.is_timeout() {
        return DeliveryError::Timeout;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_connect() {
        DeliveryError::Connect(text)
    } else {
        DeliveryError::Io(text)
    }
}

/// `Retry-After` is seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_never_echo_a_secret() {
        let url =
            Secret::new("https://x.logic.azure.com/workflows/abc/triggers/manual?sig=S3CR3T&sv=1");
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("authorization", "Token T0KENT0KEN".parse().unwrap());
        headers.insert("x-short", "k3y".parse().unwrap());
        let target = HttpTarget::new(
            "d",
            Some(&url),
            None,
            Path::new("."),
            &crate::http::client(Duration::from_secs(1)),
        )
        .unwrap()
        .with_headers(headers);
        let echoed = "bad request to https://x.logic.azure.com/workflows/abc/triggers/manual?sig=S3CR3T&sv=1 \
                      (/workflows/abc/triggers/manual?sig=S3CR3T&sv=1) sig=S3CR3T&sv=1 \
                      {\"authorization\": \"Token T0KENT0KEN\", \"x-short\": \"k3y\"} T0KENT0KEN";
        let redacted = target.redact(echoed);
        for secret in ["S3CR3T", "workflows/abc", "T0KENT0KEN", "k3y"] {
            assert!(!redacted.contains(secret), "{redacted}");
        }
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
