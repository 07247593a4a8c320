//! Socket Mode (<https://docs.slack.dev/apis/events-api/using-socket-mode>): the relay asks
//! `apps.connections.open` (with the app-level token) for a WebSocket URL, connects to it and
//! receives each interaction as an envelope, acknowledged by its `envelope_id` at once (Slack
//! waits 3 s) and handled after. Slack sends `hello` when the connection is ready and
//! `disconnect` before it closes one (to refresh it, or for a new deployment): the relay then
//! connects again at once; a dropped socket or a refused open is retried with backoff. No public
//! endpoint is needed. Several replicas may each hold a connection: Slack gives an envelope to
//! one of them, and the store keeps each click once whichever it is.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tracing::{info, warn};

use super::click::Clicks;
use crate::secret::Secret;

/// Backoff after a failed connection: from 1 s, doubled, at most a minute.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// How a connection ended without failing.
enum Ended {
    Stopped,
    /// Slack said `disconnect`: connect again.
    Disconnect(String),
}

/// Until `stop`: holds a Socket Mode connection and hands each click to `clicks`.
pub async fn run(
    clicks: Arc<Clicks>,
    app_token: Secret,
    api_url: url::Url,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    loop {
        let ended = connection(&clicks, &app_token, &api_url, &mut stop).await;
        clicks.metrics.slack_socket_connected(false);
        match ended {
            Ok(Ended::Stopped) => return,
            Ok(Ended::Disconnect(reason)) => {
                info!(reason = %reason, "Slack closes the Socket Mode connection; connecting again");
                failures = 0;
                continue;
            }
            Err(why) => {
                failures = failures.saturating_add(1);
                let wait = BACKOFF_MIN
                    .saturating_mul(2u32.saturating_pow(failures - 1))
                    .min(BACKOFF_MAX);
                warn!(error = %why, retry_in_ms = wait.as_millis() as u64, "the Socket Mode connection to Slack failed; connecting again");
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// One connection, from `apps.connections.open` to its end.
async fn connection(
    clicks: &Arc<Clicks>,
    app_token: &Secret,
    api_url: &url::Url,
    stop: &mut watch::Receiver<bool>,
) -> Result<Ended, String> {
    let url = open(&clicks.http, app_token, api_url).await?;
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(crate::tls::client_config()));
    let (mut socket, _) = tokio_tungstenite::connect_async_tls_with_config(
        url.as_str(),
        None,
        false,
        Some(connector),
    )
    .await
    .map_err(|e| format!("cannot connect to Slack's WebSocket: {e}"))?;
    loop {
        let message = tokio::select! {
            stopped = stop.wait_for(|stop| *stop) => {
                drop(stopped);
                None
            }
            message = socket.next() => Some(message),
        };
        let Some(message) = message else {
            let _ = socket.close(None).await;
            return Ok(Ended::Stopped);
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None => return Err("Slack closed the socket".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("the socket failed: {e}")),
        };
        let Ok(envelope) = serde_json::from_str::<Value>(text.as_str()) else {
            warn!("Slack sent a Socket Mode message that is not JSON; ignored");
            continue;
        };
        match envelope["type"].as_str() {
            Some("hello") => {
                clicks.metrics.slack_socket_connected(true);
                info!("Socket Mode connected: Slack sends the clicks on the relay's buttons here");
                continue;
            }
            Some("disconnect") => {
                let reason = envelope["reason"]
                    .as_str()
                    .unwrap_or("no reason")
                    .to_owned();
                return Ok(Ended::Disconnect(reason));
            }
            _ => {}
        }
        if let Some(id) = envelope["envelope_id"].as_str() {
            let ack = json!({ "envelope_id": id }).to_string();
            socket
                .send(Message::text(ack))
                .await
                .map_err(|e| format!("cannot acknowledge an envelope: {e}"))?;
        }
        if envelope["type"] == "interactive" {
            let clicks = clicks.clone();
            tokio::spawn(async move { clicks.handle(&envelope["payload"]).await });
        }
    }
}

/// `apps.connections.open`: the WebSocket URL to connect to.
async fn open(
    http: &reqwest::Client,
    app_token: &Secret,
    api_url: &url::Url,
) -> Result<String, String> {
    let mut folder = api_url.clone();
    if !folder.path().ends_with('/') {
        folder.set_path(&format!("{}/", folder.path()));
    }
    let endpoint = folder
        .join("apps.connections.open")
        .map_err(|_| "slack_app.api_url is not a base URL".to_owned())?;
    let mut authorization =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", app_token.expose()))
            .map_err(|_| "the app token has characters a header cannot carry".to_owned())?;
    authorization.set_sensitive(true);
    let response = http
        .post(endpoint)
        .header(reqwest::header::AUTHORIZATION, authorization)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .send()
        .await
        .map_err(|e| format!("apps.connections.open: {}", e.without_url()))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("apps.connections.open: {}", e.without_url()))?;
    let answer: Value = serde_json::from_slice(&body)
        .map_err(|_| format!("apps.connections.open answered HTTP {status}, not JSON"))?;
    if answer["ok"] != true {
        let error = answer["error"].as_str().unwrap_or("no error given");
        let hint = match error {
            "invalid_auth" | "not_authed" => {
                " (the app token is not valid: an xapp- token with connections:write)"
            }
            "not_allowed_token_type" => " (use the app-level token, xapp-…, not the bot token)",
            _ => "",
        };
        return Err(format!("apps.connections.open: {error}{hint}"));
    }
    answer["url"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "apps.connections.open gave no url".to_owned())
}
