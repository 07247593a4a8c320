//! Storm benchmark: 1,000 ThousandEyes triggers over 10 tests, posted as fast as the relay takes
//! them, into one Slack Web API destination paced as shipped (1 message a second, bursts of 3),
//! once routed with `group_by = ["test"]` (the default `group_wait` of 30 s and `group_interval`
//! of 5 m) and once without groups. Slack is a loopback fake of the Web API (answers as
//! <https://docs.slack.dev/reference/methods/chat.postMessage> and `chat.update` document:
//! `ok`, `channel`, `ts`) that reads every message and thread reply it is sent. Reports, for
//! each run, the time from the first post until every alert has been named in the channel (in a
//! message or a thread reply: its rule, `Latency-N`, is its own), and the Slack calls made by
//! then.
//!
//! Run: `cargo bench --bench storm` (`BENCH_STORM_ALERTS=N`, `BENCH_STORM_TESTS=N` to change the
//! storm; `BENCH_STORM_RUNS=grouped` or `ungrouped` for one run only: the ungrouped run takes
//! about a second per alert, as Slack's pace demands).

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

mod common;

use common::{free_addr, wait_until_ready};

const RELAY: &str = env!("CARGO_BIN_EXE_alert-relay");

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let alerts = number("BENCH_STORM_ALERTS", 1000);
    let tests = number("BENCH_STORM_TESTS", 10);
    let runs = std::env::var("BENCH_STORM_RUNS").unwrap_or_else(|_| "grouped,ungrouped".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "storm: {alerts} ThousandEyes triggers over {tests} tests into one Slack channel paced at 1/s (burst 3)"
    );
    println!(
        "| run | time until every alert is named | Slack calls by then (posts, updates) | posting took |"
    );
    println!("|---|---|---|---|");
    for run in runs.split(',') {
        let grouped = match run.trim() {
            "grouped" => true,
            "ungrouped" => false,
            other => panic!("BENCH_STORM_RUNS: unknown run {other:?}"),
        };
        let result = runtime.block_on(storm(alerts, tests, grouped));
        println!(
            "| {} | {:.1} s | {} ({}, {}) | {:.2} s |",
            if grouped {
                "group_by = [\"test\"]"
            } else {
                "no groups"
            },
            result.shown.as_secs_f64(),
            result.posts + result.updates,
            result.posts,
            result.updates,
            result.posting.as_secs_f64(),
        );
    }
}

struct Outcome {
    shown: Duration,
    posting: Duration,
    posts: usize,
    updates: usize,
}

/// What the fake Slack has been sent.
#[derive(Default)]
struct Channel {
    /// The alerts not yet named in any message or reply.
    unseen: HashSet<usize>,
    posts: usize,
    updates: usize,
    /// When the last unseen alert was named, with the calls by then.
    done: Option<(Instant, usize, usize)>,
    next_ts: u64,
}

impl Channel {
    /// Takes a Web API call: its message's words name alerts.
    fn call(&mut self, method: &str, body: &Value) -> Value {
        match method {
            "chat.postMessage" => self.posts += 1,
            "chat.update" => self.updates += 1,
            "conversations.history" => {
                return json!({"ok": true, "messages": [], "has_more": false});
            }
            "auth.test" => return json!({"ok": true, "user": "bench", "team": "bench"}),
            _ => return json!({"ok": false, "error": "unknown_method"}),
        }
        let mut words = Vec::new();
        strings(body, &mut words);
        for text in words {
            for word in text.split(|c: char| !c.is_ascii_alphanumeric() && c != '-') {
                if let Some(n) = word.strip_prefix("Latency-").and_then(|n| n.parse().ok()) {
                    self.unseen.remove(&n);
                }
            }
        }
        if self.unseen.is_empty() && self.done.is_none() {
            self.done = Some((Instant::now(), self.posts, self.updates));
        }
        let ts = match body.get("ts").and_then(Value::as_str) {
            Some(ts) => ts.to_owned(),
            None => {
                self.next_ts += 1;
                format!("1765000000.{:06}", self.next_ts)
            }
        };
        json!({"ok": true, "channel": "C0BENCH", "ts": ts})
    }
}

fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The fake Slack on a loopback port: `/api/<method>`.
async fn slack(channel: Arc<Mutex<Channel>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let channel = channel.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let channel = channel.clone();
                    async move {
                        let method = request
                            .uri()
                            .path()
                            .rsplit('/')
                            .next()
                            .unwrap_or("")
                            .to_owned();
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let answer = channel.lock().unwrap().call(&method, &body);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                            answer.to_string(),
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn storm(alerts: usize, tests: usize, grouped: bool) -> Outcome {
    let channel = Arc::new(Mutex::new(Channel {
        unseen: (0..alerts).collect(),
        ..Channel::default()
    }));
    let slack = slack(channel.clone()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let group = match grouped {
        true => "group_by = [\"test\"]\n",
        false => "",
    };
    let config = format!(
        "[storage]\npath = \"store.db\"\n[log]\nlevel = \"warn\"\n\
         [destinations.ops]\nkind = \"slack\"\ntoken = \"xoxb-bench\"\nchannel = \"C0BENCH\"\n\
         api_url = \"http://{slack}/api\"\n\
         [[routes]]\nto = [\"ops\"]\n{group}"
    );
    std::fs::write(dir.path().join("config.toml"), config).expect("config");
    let addr = free_addr();
    let _relay = Killed(
        Command::new(RELAY)
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .env("ALERT_RELAY_SERVER__LISTEN", addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alert-relay"),
    );
    wait_until_ready(addr).await;

    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut posters = Vec::new();
    for _ in 0..16 {
        let next = next.clone();
        posters.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.expect("connect");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= alerts {
                    return;
                }
                let body = format!(
                    r#"{{"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": "storm-{i}", "alert": {{"ruleName": "Latency-{i}", "testName": "t{}", "alertId": "{i}", "type": "HTTP Server", "severity": "Major"}}}}"#,
                    i % tests
                );
                let request = Request::post("/")
                    .header("host", "bench")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .expect("request");
                let response = sender.send_request(request).await.expect("post");
                assert_eq!(response.status(), 200, "alert {i} accepted");
                let _ = response.into_body().collect().await;
            }
        }));
    }
    for poster in posters {
        poster.await.expect("poster");
    }
    let posting = started.elapsed();
    // A generous bound: the ungrouped storm needs a second per alert.
    let deadline = started + Duration::from_secs(alerts as u64 * 2 + 120);
    loop {
        if let Some((at, posts, updates)) = channel.lock().unwrap().done {
            return Outcome {
                shown: at - started,
                posting,
                posts,
                updates,
            };
        }
        let unseen = channel.lock().unwrap().unseen.len();
        assert!(Instant::now() < deadline, "{unseen} alerts never named");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
