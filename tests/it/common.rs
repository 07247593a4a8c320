//! Real peers for the tests: a loopback HTTP server that records what it receives and answers as
//! told (status, `Retry-After`, or no answer at all), a real SMTP server over TCP, and the relay
//! itself on `127.0.0.1:0`, stopped through its shutdown future.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How long a test waits for something that should happen; far above what any step needs.
pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `check` every 50 ms until it gives `Ok`; fails the test with `what` and the last `Err`
/// if that takes longer than [`WAIT`].
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => panic!("{what}: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn sample_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/thousandeyes");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// A ThousandEyes sample event from `samples/thousandeyes/`.
/// A port free on loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn sample(name: &str) -> String {
    sample_at(&format!("thousandeyes/{name}"))
}

/// A sample body from `samples/` (`alertmanager/firing.json`).
pub fn sample_at(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A request the peer received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    /// The status the peer answered with (0 when it did not answer).
    pub status: u16,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The `ts` the peer gave the message, when it played Slack's Web API and posted one.
    pub ts: Option<String>,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// How the peer answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16, &'static str),
    RetryAfter(u16, &'static str),
    Redirect(&'static str),
    /// Answers after a while.
    Delay(Duration, u16),
    /// Answers with this status and a body that repeats the request's path, query and headers,
    /// as some peers do in their error pages.
    Echo(u16),
    /// Reads the request, records it, never answers.
    Hang,
    /// Answers with this status and a body that never ends.
    Endless(u16),
    /// Plays Slack's Web API: `auth.test` names a bot and a team, `chat.postMessage` answers
    /// `ok` with a new `ts` for the channel `C0TEST`, `chat.update` answers `ok` with the `ts` it
    /// was given.
    SlackOk,
    /// Slack's Web API refusing: HTTP 200, `ok: false`, this error code.
    SlackError(&'static str),
}

impl Reply {
    fn status(&self) -> u16 {
        match self {
            Reply::Status(status, _)
            | Reply::RetryAfter(status, _)
            | Reply::Delay(_, status)
            | Reply::Echo(status)
            | Reply::Endless(status) => *status,
            Reply::Redirect(_) => 301,
            Reply::Hang => 0,
            Reply::SlackOk | Reply::SlackError(_) => 200,
        }
    }
}

/// A loopback HTTP server standing in for Slack, Teams or a webhook receiver. Answers `200 ok`
/// unless replies were queued with [`Peer::reply`].
pub struct Peer {
    pub addr: SocketAddr,
    requests: tokio::sync::Mutex<mpsc::UnboundedReceiver<Recorded>>,
    replies: Arc<Mutex<Replies>>,
    /// While true, requests are recorded but their answers wait.
    held: tokio::sync::watch::Sender<bool>,
    /// Playing Slack: the messages of its one channel, oldest first, as Slack keeps them.
    slack: Arc<Mutex<Vec<Value>>>,
    /// Playing Slack: the Socket Mode URL `apps.connections.open` gives.
    socket: Arc<Mutex<Option<String>>>,
}

/// Queued answers first, then the default one.
struct Replies {
    queue: VecDeque<Reply>,
    default: Reply,
}

impl Peer {
    pub async fn start() -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind peer");
        let addr = listener.local_addr().expect("peer address");
        let (tx, rx) = mpsc::unbounded_channel();
        let replies = Arc::new(Mutex::new(Replies {
            queue: VecDeque::new(),
            default: Reply::Status(200, "ok"),
        }));
        let queue = replies.clone();
        let slack = Arc::new(Mutex::new(Vec::new()));
        let channel = slack.clone();
        let socket: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let socket_url = socket.clone();
        let (held, gate) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                let queue = queue.clone();
                let gate = gate.clone();
                let channel = channel.clone();
                let socket_url = socket_url.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        let queue = queue.clone();
                        let mut gate = gate.clone();
                        let channel = channel.clone();
                        let socket_url = socket_url.lock().unwrap().clone();
                        async move {
                            let path = request.uri().path().to_owned();
                            let target = request.uri().to_string();
                            let headers = request.headers().clone();
                            let body = request
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let reply = {
                                let mut replies = queue.lock().unwrap();
                                replies
                                    .queue
                                    .pop_front()
                                    .unwrap_or_else(|| replies.default.clone())
                            };
                            let query = target.split_once('?').map_or("", |(_, q)| q).to_owned();
                            let slack = slack_answer(
                                &reply,
                                &path,
                                &query,
                                &body,
                                &channel,
                                socket_url.as_deref(),
                            );
                            let _ = tx.send(Recorded {
                                at: Instant::now(),
                                status: reply.status(),
                                path,
                                headers: headers.clone(),
                                body,
                                ts: slack.as_ref().and_then(|(ts, _)| ts.clone()),
                            });
                            let echo = match slack {
                                Some((_, answer)) => answer,
                                None => format!("you called {target} with {:?}", headers),
                            };
                            let _ = gate.wait_for(|held| !*held).await;
                            Ok::<_, Infallible>(answer(reply, echo).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Peer {
            addr,
            requests: tokio::sync::Mutex::new(rx),
            replies,
            held,
            slack,
            socket,
        }
    }

    /// Playing Slack: `apps.connections.open` gives `url` from now on.
    pub fn slack_socket_at(&self, url: &str) {
        *self.socket.lock().unwrap() = Some(url.to_owned());
    }

    /// Playing Slack: the messages in its channel now (thread replies left out), oldest first.
    pub fn slack_messages(&self) -> Vec<Value> {
        self.slack.lock().unwrap().clone()
    }

    /// From now on, requests are recorded as they arrive but not answered until [`Peer::release`].
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    /// Answers the requests held so far, and the next ones at once.
    pub fn release(&self) {
        self.held.send_replace(false);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Queues the answers to the next requests, in order.
    pub fn reply(&self, replies: impl IntoIterator<Item = Reply>) {
        self.replies.lock().unwrap().queue.extend(replies);
    }

    /// How the peer answers once the queue is empty (at first, `200 ok`).
    pub fn answer_by_default(&self, reply: Reply) {
        self.replies.lock().unwrap().default = reply;
    }

    /// The next request, if one arrives within `wait`.
    pub async fn next_within(&self, wait: Duration) -> Option<Recorded> {
        let mut requests = self.requests.lock().await;
        tokio::time::timeout(wait, requests.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next request received; fails the test if none comes within [`WAIT`].
    pub async fn next(&self) -> Recorded {
        let mut requests = self.requests.lock().await;
        tokio::time::timeout(WAIT, requests.recv())
            .await
            .expect("the peer received nothing in time")
            .expect("the peer stopped")
    }
}

/// A response body that never ends: 64 KiB of `x` again and again.
struct EndlessBody;

impl hyper::body::Body for EndlessBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        static CHUNK: [u8; 65536] = [b'x'; 65536];
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(
            &CHUNK,
        )))))
    }
}

/// What the Slack Web API would answer to `reply` for a call of `path` (with `query`) with `body`:
/// the `ts` of a message posted, and the answer's body; `channel` keeps the messages posted, as
/// Slack does, so that an update changes one and the history lists them. As documented at
/// <https://api.slack.com/methods/chat.postMessage>, `/methods/chat.update` and
/// `/methods/conversations.history`: an answer has `ok`, `channel` and `ts` first, then the whole
/// `message` (here, the request echoed); an update keeps the message's `metadata` unless it gives
/// one; the history lists the channel's messages newest first, after `oldest`, at most `limit`,
/// their `metadata` only with `include_all_metadata`
/// (<https://docs.slack.dev/messaging/message-metadata>). Thread replies are not in it.
fn slack_answer(
    reply: &Reply,
    path: &str,
    query: &str,
    body: &[u8],
    channel: &Mutex<Vec<Value>>,
    socket_url: Option<&str>,
) -> Option<(Option<String>, String)> {
    static NEXT_TS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    match reply {
        Reply::SlackError(code) => Some((None, json!({"ok": false, "error": code}).to_string())),
        // <https://docs.slack.dev/reference/methods/apps.connections.open>: a WebSocket URL.
        Reply::SlackOk if path.ends_with("/apps.connections.open") => Some((
            None,
            match socket_url {
                Some(url) => json!({"ok": true, "url": url}).to_string(),
                None => json!({"ok": false, "error": "internal_error"}).to_string(),
            },
        )),
        Reply::SlackOk if path.ends_with("/auth.test") => Some((
            None,
            json!({"ok": true, "user": "alertbot", "user_id": "U0BOT", "team": "Acme", "team_id": "T0ACME"})
                .to_string(),
        )),
        Reply::SlackOk if path.ends_with("/conversations.history") => {
            let param = |name: &str| {
                url::form_urlencoded::parse(query.as_bytes())
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.into_owned())
            };
            let oldest: f64 = param("oldest").and_then(|o| o.parse().ok()).unwrap_or(0.0);
            let limit: usize = param("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
            let metadata = param("include_all_metadata").as_deref() == Some("true");
            let messages: Vec<Value> = channel
                .lock()
                .unwrap()
                .iter()
                .rev()
                .filter(|m| m["ts"].as_str().and_then(|t| t.parse::<f64>().ok()) > Some(oldest))
                .take(limit)
                .map(|m| {
                    let mut m = m.clone();
                    if !metadata {
                        m.as_object_mut().unwrap().remove("metadata");
                    }
                    m
                })
                .collect();
            Some((None, json!({"ok": true, "messages": messages, "has_more": false}).to_string()))
        }
        Reply::SlackOk => {
            let request: Value = serde_json::from_slice(body).unwrap_or_default();
            if let Err(why) = slack_blocks_fit(&request) {
                // As Slack refuses a message whose blocks break its limits.
                let answer = json!({"ok": false, "error": "invalid_blocks", "errors": [why]});
                return Some((None, answer.to_string()));
            }
            let mut messages = channel.lock().unwrap();
            let ts = match request.get("ts").and_then(Value::as_str) {
                Some(updated) => {
                    if let Some(message) = messages.iter_mut().find(|m| m["ts"] == updated) {
                        for field in ["text", "blocks", "attachments", "metadata"] {
                            if let Some(value) = request.get(field) {
                                message[field] = value.clone();
                            }
                        }
                    }
                    updated.to_owned()
                }
                None => {
                    // Seconds of now, so that `oldest` (an event's arrival) means what it says.
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let ts = format!(
                        "{now}.{:06}",
                        NEXT_TS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 1_000_000
                    );
                    if request.get("thread_ts").is_none() {
                        let mut message = request.clone();
                        message["ts"] = json!(ts);
                        message.as_object_mut().unwrap().remove("channel");
                        messages.push(message);
                    }
                    ts
                }
            };
            let answer = json!({"ok": true, "channel": "C0TEST", "ts": ts, "message": request});
            Some((Some(ts), answer.to_string()))
        }
        _ => None,
    }
}

/// Whether a message's blocks keep within Slack's Block Kit limits
/// (<https://docs.slack.dev/reference/block-kit/blocks>): at most 50 blocks in a message; a
/// header's text at most 150 characters; a section's text at most 3,000 and at most 10 fields of
/// 2,000 each.
fn slack_blocks_fit(message: &Value) -> Result<(), String> {
    let blocks = message["blocks"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if blocks.len() > 50 {
        return Err(format!("{} blocks, more than 50", blocks.len()));
    }
    let chars = |text: &Value| text.as_str().map_or(0, |t| t.chars().count());
    for (i, block) in blocks.iter().enumerate() {
        let text = chars(&block["text"]["text"]);
        match block["type"].as_str() {
            Some("header") if text > 150 => return Err(format!("blocks[{i}]: header of {text}")),
            Some("section") => {
                let fields = block["fields"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if text > 3000 || fields.len() > 10 {
                    return Err(format!(
                        "blocks[{i}]: section of {text}, {} fields",
                        fields.len()
                    ));
                }
                if let Some(field) = fields.iter().find(|f| chars(&f["text"]) > 2000) {
                    return Err(format!("blocks[{i}]: field of {}", chars(&field["text"])));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

async fn answer(reply: Reply, echo: String) -> Response<BoxBody<Bytes, Infallible>> {
    if let Reply::Endless(status) = reply {
        let mut response = Response::new(EndlessBody.boxed());
        *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
        return response;
    }
    let (status, body, header): (u16, String, _) = match reply {
        Reply::Status(status, body) => (status, body.into(), None),
        Reply::RetryAfter(status, after) => {
            (status, "rate_limited".into(), Some(("retry-after", after)))
        }
        Reply::Redirect(to) => (301, String::new(), Some(("location", to))),
        Reply::Delay(wait, status) => {
            tokio::time::sleep(wait).await;
            (status, "ok".into(), None)
        }
        Reply::Echo(_) | Reply::SlackOk | Reply::SlackError(_) => (reply.status(), echo, None),
        Reply::Hang => std::future::pending().await,
        Reply::Endless(_) => unreachable!("answered above"),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    if let Some((name, value)) = header {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header"));
    }
    response
}

/// A real SMTP server (mailin) on a loopback port; every message it accepts is recorded raw.
pub struct SmtpServer {
    pub addr: SocketAddr,
    messages: tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<u8>>>,
}

#[derive(Clone)]
struct SmtpHandler {
    /// When set, every recipient is refused with this code.
    refuse: Option<u16>,
    data: Vec<u8>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

impl mailin_embedded::Handler for SmtpHandler {
    fn rcpt(&mut self, _to: &str) -> mailin_embedded::Response {
        match self.refuse {
            Some(code) => mailin_embedded::Response::custom(code, "refused by the test".into()),
            None => mailin_embedded::response::OK,
        }
    }

    fn data_start(&mut self, _: &str, _: &str, _: bool, _: &[String]) -> mailin_embedded::Response {
        self.data.clear();
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let _ = self.tx.send(std::mem::take(&mut self.data));
        mailin_embedded::response::OK
    }
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        Self::start_refusing(None)
    }

    /// An SMTP server that refuses every recipient with `code` (when set).
    pub fn start_refusing(refuse: Option<u16>) -> SmtpServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind smtp");
        let addr = listener.local_addr().expect("smtp address");
        let (tx, rx) = mpsc::unbounded_channel();
        let mut server = mailin_embedded::Server::new(SmtpHandler {
            refuse,
            data: Vec::new(),
            tx,
        });
        server
            .with_name("smtp.test")
            .with_num_threads(2)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpServer {
            addr,
            messages: tokio::sync::Mutex::new(rx),
        }
    }

    /// `smtp://…?tls=none` for this server.
    pub fn url(&self) -> String {
        format!("smtp://{}?tls=none", self.addr)
    }

    pub async fn next(&self) -> Vec<u8> {
        let mut messages = self.messages.lock().await;
        tokio::time::timeout(WAIT, messages.recv())
            .await
            .expect("the SMTP server received nothing in time")
            .expect("the SMTP server stopped")
    }
}

/// The relay running in this process on `127.0.0.1:0`, with its config in a temporary directory.
pub struct TestRelay {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

/// Writes `files` (path, content) and `config.toml` into a temporary directory.
pub fn config_dir(config: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, content) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write file");
    }
    std::fs::write(dir.path().join("config.toml"), config).expect("write config");
    dir
}

pub fn client() -> reqwest::Client {
    alert_relay::http::client(Duration::from_secs(30))
}

impl TestRelay {
    pub async fn start(config: &str) -> TestRelay {
        Self::start_with_files(config, &[]).await
    }

    pub async fn start_with_files(config: &str, files: &[(&str, &str)]) -> TestRelay {
        Self::start_in(config_dir(config, files)).await
    }

    /// Starts the relay on the config (and store) in `dir`.
    pub async fn start_in(dir: tempfile::TempDir) -> TestRelay {
        Self::start_on(dir, "127.0.0.1:0").await
    }

    /// Starts the relay on the config in `dir`, listening on `bind`.
    pub async fn start_on(dir: tempfile::TempDir, bind: &str) -> TestRelay {
        let config = alert_relay::config::Config::load(&dir.path().join("config.toml"))
            .expect("config loads");
        let listener = TcpListener::bind(bind).await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            alert_relay::run(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("relay runs");
        });
        TestRelay {
            addr,
            dir,
            stop: Some(stop),
            task,
            http: client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// POSTs `body` as JSON to the ingest path; returns the status and the JSON answer.
    pub async fn post(&self, body: &str) -> (u16, Value) {
        self.post_to("/", body).await
    }

    /// POSTs `body` as JSON to `path`; returns the status and the JSON answer.
    pub async fn post_to(&self, path: &str, body: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("relay answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("answer body");
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("answer is not JSON: {text}")),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("relay answers");
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    }

    pub async fn stop(self) {
        self.stop_keeping_dir().await;
    }

    /// Stops the relay and hands back its directory, to start it again on the same store.
    pub async fn stop_keeping_dir(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("relay stops in time")
            .expect("relay task");
        self.dir
    }
}

/// Every string anywhere in a JSON value.
pub fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(map) => map.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

pub const BIN: &str = env!("CARGO_BIN_EXE_alert-relay");

/// The relay binary as a child process.
pub struct ChildRelay {
    pub process: std::process::Child,
    pub addr: SocketAddr,
}

impl ChildRelay {
    pub async fn start(dir: &Path) -> ChildRelay {
        Self::start_with_env(dir, &[]).await
    }

    pub async fn start_with_env(dir: &Path, env: &[(&str, String)]) -> ChildRelay {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::fs::File::create(dir.join(format!("relay-{port}.log"))).unwrap();
        let process = Command::new(BIN)
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env_remove("RUST_LOG")
            .env("ALERT_RELAY_SERVER__LISTEN", addr.to_string())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start alert-relay");
        let relay = ChildRelay { process, addr };
        let http = client();
        eventually("the relay did not become ready", async || {
            match http.get(format!("http://{addr}/readyz")).send().await {
                Ok(response) if response.status() == 200 => Ok(()),
                Ok(response) => Err(response.status().to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        relay
    }

    pub async fn post(&self, body: String) -> (u16, Value) {
        let response = client()
            .post(format!("http://{}/", self.addr))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("relay answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("answer");
        (status, serde_json::from_str(&text).expect("JSON answer"))
    }

    /// The `/metrics` text, with `token` as bearer when given.
    pub async fn metrics(&self, token: Option<&str>) -> String {
        let mut request = client().get(format!("http://{}/metrics", self.addr));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub fn kill_9(mut self) {
        self.process.kill().expect("SIGKILL");
        self.process.wait().expect("reaped");
    }

    /// Sends a signal by name (`TERM`, `HUP`).
    pub fn signal(&self, name: &str) {
        signal(self.process.id(), name);
    }

    pub async fn exit_code(mut self) -> Option<i32> {
        eventually("the relay did not exit", async || {
            match self.process.try_wait() {
                Ok(Some(status)) => Ok(status.code()),
                Ok(None) => Err("still running".into()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }
}

impl Drop for ChildRelay {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

pub fn command(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(BIN)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Sends the signal `name` (`TERM`, `HUP`) to process `pid`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Reads requests until `expected` distinct ids were answered 200, then until the store holds no
/// pending delivery and the peer's queue is empty; returns how often each id was answered 200,
/// added to `counts`.
pub async fn delivered_ids(
    peer: &Peer,
    dir: &Path,
    expected: usize,
    id_of: impl Fn(&Value) -> String,
    mut counts: std::collections::HashMap<String, usize>,
) -> std::collections::HashMap<String, usize> {
    while counts.len() < expected {
        let request = peer.next().await;
        if request.status == 200 {
            *counts.entry(id_of(&request.json())).or_default() += 1;
        }
    }
    eventually("deliveries still pending", async || {
        let (_, out) = command(dir, &["deliveries", "--state", "pending"]);
        if out.contains("(none)") {
            Ok(())
        } else {
            Err(out)
        }
    })
    .await;
    while let Some(request) = peer.next_within(Duration::from_millis(200)).await {
        if request.status == 200 {
            *counts.entry(id_of(&request.json())).or_default() += 1;
        }
    }
    counts
}

/// The lines of every log the child relays wrote in `dir`.
pub fn relay_logs(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect()
}

/// The value of header `name` in a raw email, if it has one (none of those read here is folded).
pub fn email_header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    head.lines().find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}
