//! Ingest benchmark: 32 keep-alive connections post the ThousandEyes trigger sample (a fresh
//! `eventId` each time) for a fixed time against
//!   (a) the release `alert-relay` binary with durable accept, delivering to a loopback webhook
//!       sink with pacing off; routing the events nowhere (accept only); delivering each to 16
//!       webhooks, and
//!   (b) a bare hyper server from this file that reads the body and parses it as JSON,
//! each in its own process, one after the other in the same run, each after the disk has written
//! back what was pending (`sync`) and 2 s of load that is not counted (the relay's store grows
//! its write-ahead log then). Reports accepted events/s for
//! each and its ratio to the bare server, the CPU its process spent per accepted post during the
//! load, p50 and p99 accept latency, end-to-end deliveries/s and
//! the relay's peak RSS. Then `GET /metrics` on a store with no history and with 1,000,000
//! finished deliveries.
//!
//! Then the memory run: 32 connections each post large events (3,000 agents, 900 KB) to the relay
//! delivering to Slack, Teams and a webhook (all the sink), then one event of 100,000 empty agents;
//! and the same large events to the bare server. Reports what was answered, the time, and each
//! process's peak RSS.
//!
//! Run: `cargo bench --bench ingest` (`BENCH_SECONDS=N` to change the 10 s per server,
//! `BENCH_LARGE_POSTS=N` the large events per connection, 3 by default; `BENCH_BASELINE_BIN=PATH`
//! runs the delivering and the memory runs against an earlier build too; `BENCH_PARTS` picks
//! among `throughput,memory,metrics`, or `postgres` (the PostgreSQL runs alone: one relay, two
//! relays on one database, the baseline) or `accept` (accepting alone, against the baseline,
//! alternating); `BENCH_LOAD=wrk` makes the throughput load with `wrk`, as issue 9 measured it,
//! instead of this file's own generator; with a PostgreSQL server at `RELAY_TEST_POSTGRES`, else
//! 127.0.0.1:5432, the delivering run also runs on PostgreSQL, in a fresh database, and where
//! that server loads `pg_stat_statements` the statements it ran are counted per event).
//!
//! Each delivering run also prints the deliveries/s during the load and after it, and how idle
//! the machine was meanwhile.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

mod common;

use common::{free_addr, wait_until_listening, wait_until_ready};

const CONNECTIONS: usize = 32;
/// Load before each measured run that is not counted: the store's write-ahead log is created and
/// grows to its working size in it, as it has in a relay that has run for a while. The bare server
/// gets the same.
const WARM_UP: Duration = Duration::from_secs(2);
/// Set in the environment of the child that plays the bare server.
const BARE_SERVER_ENV: &str = "ALERT_RELAY_BENCH_BARE_SERVER";
const SAMPLE: &str = include_str!("../samples/thousandeyes/alert_trigger.json");

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(addr) = std::env::var(BARE_SERVER_ENV) {
        runtime.block_on(bare_server(addr.parse().expect("address")));
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` lists benchmarks: there is nothing to list here.
        return;
    }
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    runtime.block_on(run(Duration::from_secs(seconds)));
}

/// Reads each request's body, parses it as JSON and answers 200 (400 when it is not JSON): the
/// ceiling for any HTTP ingest of JSON on this machine.
async fn bare_server(addr: SocketAddr) {
    let listener = TcpListener::bind(addr).await.expect("bind bare server");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(|request: Request<hyper::body::Incoming>| async move {
                let body = request
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let mut response =
                    Response::new(Full::new(Bytes::from_static(b"{\"status\":\"accepted\"}")));
                if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
                    *response.status_mut() = hyper::StatusCode::BAD_REQUEST;
                }
                Ok::<_, Infallible>(response)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A loopback webhook receiver that counts deliveries and notes when the last one came.
struct Sink {
    addr: SocketAddr,
    received: Arc<AtomicU64>,
    last_at_micros: Arc<AtomicU64>,
    started: Instant,
}

async fn sink() -> Sink {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let addr = listener.local_addr().expect("sink address");
    let received = Arc::new(AtomicU64::new(0));
    let last_at_micros = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let (count, last) = (received.clone(), last_at_micros.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (count, last) = (count.clone(), last.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let (count, last) = (count.clone(), last.clone());
                    async move {
                        let _ = request.into_body().collect().await;
                        count.fetch_add(1, Ordering::SeqCst);
                        last.store(started.elapsed().as_micros() as u64, Ordering::SeqCst);
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Sink {
        addr,
        received,
        last_at_micros,
        started,
    }
}

struct Load {
    accepted: u64,
    other: u64,
    p50_ms: f64,
    p99_ms: f64,
    elapsed: Duration,
    /// CPU time the server's process spent during the load, all threads, per accepted post (see
    /// [`load_on`]; NaN where not measured).
    cpu_us_per_post: f64,
    /// Bytes the server's processes had written to storage during the load (`write_bytes` of
    /// `/proc/PID/io`: the SQLite store's; a PostgreSQL server writes its own), per accepted post.
    bytes_per_post: f64,
}

/// How long each connection keeps posting.
#[derive(Clone, Copy)]
enum Until {
    Deadline(Instant),
    Posts(u64),
}

/// `CONNECTIONS` keep-alive connections posting for `duration`; counts 200 answers. With
/// `BENCH_LOAD=wrk`, `wrk` makes the load instead of this file's own generator.
async fn load(addrs: &[SocketAddr], duration: Duration, run: &str) -> Load {
    if let [addr] = addrs
        && std::env::var("BENCH_LOAD").is_ok_and(|l| l == "wrk")
    {
        return wrk(*addr, duration, run).await;
    }
    let run = run.to_owned();
    load_with(
        addrs,
        Until::Deadline(Instant::now() + duration),
        move |connection, n| {
            SAMPLE.replacen("\"49-35541\"", &format!("\"{run}-{connection}-{n}\""), 1)
        },
    )
    .await
}

/// `CONNECTIONS` keep-alive connections, spread over `addrs`, posting `body(connection, n)` until
/// `until`; counts 200 answers.
async fn load_with(
    addrs: &[SocketAddr],
    until: Until,
    body: impl Fn(usize, u64) -> String + Send + Sync + 'static,
) -> Load {
    let started = Instant::now();
    let body = Arc::new(body);
    let mut tasks = tokio::task::JoinSet::new();
    for connection in 0..CONNECTIONS {
        let body = body.clone();
        let addr = addrs[connection % addrs.len()];
        tasks.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let mut answer = Vec::with_capacity(1024);
            let (mut accepted, mut other, mut latencies) = (0u64, 0u64, Vec::new());
            let mut n = 0u64;
            while match until {
                Until::Deadline(deadline) => Instant::now() < deadline,
                Until::Posts(posts) => n < posts,
            } {
                n += 1;
                let body = body(connection, n);
                let sent = Instant::now();
                let status = post(&mut stream, &body, &mut answer).await;
                latencies.push(sent.elapsed().as_micros() as u64);
                if status == 200 {
                    accepted += 1
                } else {
                    other += 1
                }
            }
            (accepted, other, latencies)
        });
    }
    let (mut accepted, mut other, mut latencies_micros) = (0, 0, Vec::new());
    while let Some(result) = tasks.join_next().await {
        let (a, o, latencies) = result.expect("load task");
        accepted += a;
        other += o;
        latencies_micros.extend(latencies);
    }
    latencies_micros.sort_unstable();
    Load {
        accepted,
        other,
        p50_ms: percentile(&latencies_micros, 0.50),
        p99_ms: percentile(&latencies_micros, 0.99),
        elapsed: started.elapsed(),
        cpu_us_per_post: f64::NAN,
        bytes_per_post: f64::NAN,
    }
}

/// The load issue 9 was measured with: `wrk` (2 threads, `CONNECTIONS` connections) posting the
/// trigger sample with a fresh `eventId` each time, from a Lua script. `wrk` spends more of the
/// two cores than this file's generator, so every server gets less of them.
async fn wrk(addr: SocketAddr, duration: Duration, run: &str) -> Load {
    let (before, after) = SAMPLE
        .split_once("\"49-35541\"")
        .expect("the sample's eventId");
    let lua = |s: &str| serde_json::to_string(s).expect("a string");
    let script = format!(
        "local before, after = {}, {}\n\
         local thread_id, n = 0, 0\n\
         function setup(thread) thread_id = thread_id + 1; thread:set(\"id\", thread_id) end\n\
         function request()\n\
           n = n + 1\n\
           return wrk.format(\"POST\", \"/\", {{[\"Content-Type\"] = \"application/json\"}},\n\
             before .. '\"{run}-' .. id .. '-' .. n .. '\"' .. after)\n\
         end\n",
        lua(before),
        lua(after)
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("post.lua");
    std::fs::write(&path, script).expect("write the wrk script");
    let mut command = Command::new("wrk");
    command
        .args(["-t2", &format!("-c{CONNECTIONS}"), "--latency", "-s"])
        .arg(&path)
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg(format!("http://{addr}/"));
    // Blocking: on a thread of the blocking pool, so that the sink keeps serving meanwhile.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("wrk's thread")
        .expect("run wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed: {text}");
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
    };
    let millis = |value: Option<String>| {
        let value = value.expect("a latency in wrk's output");
        let (number, factor) = if let Some(n) = value.strip_suffix("us") {
            (n, 1e-3)
        } else if let Some(n) = value.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = value.strip_suffix('s') {
            (n, 1e3)
        } else {
            (value.as_str(), 1.0)
        };
        number.parse::<f64>().expect("a number") * factor
    };
    // "123456 requests in 10.00s, 250.00MB read"
    let (requests, took) = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, rest)| Some((n.parse::<u64>().ok()?, rest.split(',').next()?.to_owned())))
        .expect("a request count in wrk's output");
    // wrk counts answers other than 2xx among its requests; its socket errors ("Socket errors:
    // connect 0, read 0, write 0, timeout 0") apart.
    let refused: u64 =
        field("Non-2xx or 3xx responses:").map_or(0, |n| n.parse().expect("a count"));
    let failed: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or(0, |errors| {
            errors
                .split(',')
                .filter_map(|e| e.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        });
    Load {
        accepted: requests.saturating_sub(refused),
        other: refused + failed,
        p50_ms: millis(field("50%")),
        p99_ms: millis(field("99%")),
        elapsed: Duration::from_secs_f64(millis(Some(took)) / 1e3),
        cpu_us_per_post: f64::NAN,
        bytes_per_post: f64::NAN,
    }
}

/// POSTs `body` as JSON on a kept-alive connection, written and read by hand (a status line,
/// headers, a `Content-Length` body) so that the load generator spends as little of the two cores
/// as it can; returns the status.
async fn post(stream: &mut TcpStream, body: &str, answer: &mut Vec<u8>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "POST / HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    answer.clear();
    loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&answer[..end]).expect("head");
            let status = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .expect("status");
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            while answer.len() < end + 4 + length {
                let mut chunk = [0u8; 4096];
                let read = stream.read(&mut chunk).await.expect("read");
                assert!(read > 0, "closed mid-answer");
                answer.extend_from_slice(&chunk[..read]);
            }
            return status;
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.expect("read");
        assert!(read > 0, "closed before answering");
        answer.extend_from_slice(&chunk[..read]);
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

/// `load` against the server processes `servers` at `addrs`, with the CPU time they spent
/// meanwhile per accepted post: what their rate costs. A relay's includes whatever it delivered
/// during the load.
async fn load_on(servers: &[&Child], addrs: &[SocketAddr], duration: Duration, run: &str) -> Load {
    let cpu = || {
        servers
            .iter()
            .map(|server| cpu_time(server))
            .sum::<Duration>()
    };
    let written = || {
        servers
            .iter()
            .map(|server| bytes_written(server))
            .sum::<u64>()
    };
    let (cpu_before, written_before) = (cpu(), written());
    let mut load = load(addrs, duration, run).await;
    let posts = load.accepted.max(1) as f64;
    load.cpu_us_per_post = cpu().saturating_sub(cpu_before).as_secs_f64() * 1e6 / posts;
    load.bytes_per_post = written().saturating_sub(written_before) as f64 / posts;
    load
}

/// The CPU time `child` has used so far, user and system, all its threads (`/proc/<pid>/stat`).
fn cpu_time(child: &Child) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
    // After the command name, which is in parentheses and may hold spaces, the fields from the
    // third on: utime and stime are the 14th and the 15th.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, fields)| {
            fields
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|t| t.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// The bytes `child` has caused to be written to storage so far (`/proc/PID/io`).
fn bytes_written(child: &Child) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/io", child.id()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The machine's idle and total CPU time so far, in ticks (`/proc/stat`'s first line).
fn machine_idle() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait …: idle and iowait are the idle time.
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (idle, ticks.iter().sum())
}

fn peak_rss_mb(child: &Child) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The release relay, in a directory of its own, and where it listens.
struct Relay {
    process: Stopped,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// This build's relay binary.
const RELAY: &str = env!("CARGO_BIN_EXE_alert-relay");

/// Has the system write back every dirty page first (`sync`): a run that starts while the disk
/// still writes what the build or the run before left behind sees each commit's flush wait for
/// that (the first relay measured straight after a build once took a third fewer posts).
fn settle_disk() {
    let _ = Command::new("sync").status();
}

/// Starts the relay binary at `binary` on the config in `dir`, on a new address.
async fn start_relay_in(binary: &str, dir: &std::path::Path) -> (Stopped, SocketAddr) {
    settle_disk();
    let addr = free_addr();
    let process = Stopped(
        Command::new(binary)
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("ALERT_RELAY_SERVER__LISTEN", addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alert-relay"),
    );
    wait_until_ready(addr).await;
    (process, addr)
}

/// Starts the relay binary at `binary` on `destinations` (TOML), in a directory of its own.
async fn start_relay_binary(binary: &str, destinations: &str) -> Relay {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("config.toml"), destinations).expect("write config");
    let (process, addr) = start_relay_in(binary, dir.path()).await;
    Relay {
        process,
        addr,
        _dir: dir,
    }
}

/// The bare server, in a process of its own.
async fn start_bare() -> (Stopped, SocketAddr) {
    settle_disk();
    let addr = free_addr();
    let bare = Stopped(
        Command::new(std::env::current_exe().expect("this binary"))
            .env(BARE_SERVER_ENV, addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the bare server"),
    );
    wait_until_listening(addr).await;
    (bare, addr)
}

/// Waits until the sink has received `count` more requests than `before` (at most 2 minutes);
/// how many it got.
async fn wait_for_sink(sink: &Sink, before: u64, count: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.received.load(Ordering::SeqCst) - before < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sink.received.load(Ordering::SeqCst) - before
}

/// Starts `replicas` relays of the binary on `destinations` (TOML; several share a PostgreSQL
/// store, one database), loads them for `duration` (the connections spread over them), and waits
/// until the sink has `per_event` deliveries of every accepted event (none to wait for when 0).
/// Returns the load (their CPU summed), the largest peak RSS, and the deliveries with the time
/// from the first post to the last delivery.
async fn measure_relays(
    replicas: usize,
    binary: &str,
    duration: Duration,
    destinations: &str,
    per_event: u64,
    sink: &Sink,
    run: &str,
) -> (Load, f64, u64, f64) {
    let mut relays = Vec::with_capacity(replicas);
    for _ in 0..replicas {
        relays.push(start_relay_binary(binary, destinations).await);
    }
    let addrs: Vec<SocketAddr> = relays.iter().map(|relay| relay.addr).collect();
    let processes: Vec<&Child> = relays.iter().map(|relay| &relay.process.0).collect();
    let before_warm = sink.received.load(Ordering::SeqCst);
    let warm = load(&addrs, WARM_UP, &format!("{run}-warm")).await;
    wait_for_sink(sink, before_warm, warm.accepted * per_event).await;
    let before = sink.received.load(Ordering::SeqCst);
    let first_post = sink.started.elapsed();
    let idle_before = machine_idle();
    let load = load_on(&processes, &addrs, duration, run).await;
    let mut delivered = 0;
    let mut seconds = 0.0;
    if per_event > 0 {
        let idle_during = machine_idle();
        let during = sink.received.load(Ordering::SeqCst) - before;
        let load_ended = sink.started.elapsed().as_secs_f64();
        delivered = wait_for_sink(sink, before, load.accepted * per_event).await;
        let idle_after = machine_idle();
        let last = sink.last_at_micros.load(Ordering::SeqCst) as f64 / 1e6;
        seconds = last - first_post.as_secs_f64();
        let idle = |(idle0, all0): (u64, u64), (idle1, all1): (u64, u64)| {
            100.0 * (idle1 - idle0) as f64 / (all1 - all0).max(1) as f64
        };
        println!(
            "  {run}: {:.0} deliveries/s during the load (machine {:.0}% idle), {:.0}/s after it ({:.0}% idle)",
            during as f64 / load.elapsed.as_secs_f64(),
            idle(idle_before, idle_during),
            (delivered - during) as f64 / (last - load_ended).max(1e-3),
            idle(idle_during, idle_after),
        );
    }
    let rss = (processes.iter())
        .map(|process| peak_rss_mb(process))
        .fold(0.0, f64::max);
    (load, rss, delivered, seconds)
}

/// How long `GET /metrics` takes with `rows` finished deliveries in the store: the median and the
/// slowest of 20 scrapes.
async fn metrics_scrape(rows: u64, sink: &Sink) -> (Duration, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[destinations.sink]\nkind = \"webhook\"\nurl = \"http://{}/hook\"\n",
            sink.addr
        ),
    )
    .expect("write config");
    // A first start creates the store; then a week of history goes in.
    drop(start_relay_in(RELAY, dir.path()).await);
    let store = rusqlite::Connection::open(dir.path().join("data/alert-relay.db")).expect("store");
    store
        .execute_batch(&format!(
            "BEGIN;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO events (event_id, received_at, body)
                 SELECT '\"history-' || i || '\"', CAST(strftime('%s', 'now') AS INTEGER) * 1000, '{{}}'
                 FROM n;
             INSERT INTO deliveries (event, destination, state, attempts, next_attempt_at, updated_at)
                 SELECT id, 'sink', 'done', 1, 0, received_at FROM events;
             COMMIT;"
        ))
        .expect("fill the store");
    drop(store);
    let (_relay, addr) = start_relay_in(RELAY, dir.path()).await;
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut times = Vec::new();
    for _ in 0..20 {
        let request = Request::get("/metrics")
            .header("host", "bench")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let started = Instant::now();
        sender.ready().await.expect("ready");
        let response = sender.send_request(request).await.expect("metrics");
        let _ = response.into_body().collect().await;
        times.push(started.elapsed());
    }
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

/// An alert with `agents` agents as ThousandEyes sends them (3,000 make 900 KB), or with that many
/// empty objects when `empty`.
fn agents_event(id: &str, agents: usize, empty: bool) -> String {
    let agent = |i: usize| {
        if empty {
            serde_json::json!({})
        } else {
            serde_json::json!({
                "dateStart": "2022-04-25 17:18:00", "active": 1,
                "metricsAtStart": "Response Code: 503, Availability: 0%, Response Time: 10,000 ms",
                "metricsAtEnd": "",
                "permalink": format!("https://app.thousandeyes.com/alerts/list/?__a=1021286&alertId=118040277&agentId={i}"),
                "agentId": i, "agentName": format!("Agent {i}, Somewhere Far Away, XX")
            })
        }
    };
    serde_json::json!({"eventType": "ALERT_NOTIFICATION_TRIGGER", "eventId": id,
        "alert": {"ruleName": "Huge", "testName": "Many agents", "type": "HTTP Server", "alertId": 1,
            "agents": (0..agents).map(agent).collect::<Vec<_>>()}})
    .to_string()
}

/// What the memory run saw for one server.
struct LargeRun {
    load: Load,
    delivered: u64,
    peak_mb: f64,
    /// The status the event of 100,000 empty agents got (relay only).
    huge: Option<u16>,
}

/// 32 connections each post `posts` events of 3,000 agents to `addr`; for the relay, then one
/// event of 100,000 empty agents, and the deliveries to the sink (three per event) are awaited.
async fn large_run(addr: SocketAddr, posts: u64, relay: Option<&Sink>) -> LargeRun {
    let template = Arc::new(agents_event("large-X", 3000, false));
    let before = relay.map(|sink| sink.received.load(Ordering::SeqCst));
    let load = load_with(&[addr], Until::Posts(posts), move |connection, n| {
        template.replacen("large-X", &format!("large-{connection}-{n}"), 1)
    })
    .await;
    let mut run = LargeRun {
        load,
        delivered: 0,
        peak_mb: 0.0,
        huge: None,
    };
    if let (Some(sink), Some(before)) = (relay, before) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let request = Request::post("/")
            .header("host", "bench")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(agents_event("huge", 100_000, true))))
            .expect("request");
        run.huge = Some(
            sender
                .send_request(request)
                .await
                .expect("answer")
                .status()
                .as_u16(),
        );
        run.delivered = wait_for_sink(sink, before, run.load.accepted * 3).await;
    }
    run
}

async fn run(duration: Duration) {
    let sink = sink().await;
    // An earlier build of the relay, for a comparison in the same run.
    let baseline = std::env::var("BENCH_BASELINE_BIN").ok();
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "throughput,memory,metrics".into());
    println!(
        "ingest benchmark: {CONNECTIONS} connections, {} s per server, {} cores",
        duration.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if parts.contains("throughput") {
        throughput(duration, &sink, baseline.as_deref()).await;
    } else if parts.contains("postgres") {
        postgres_only(duration, &sink, baseline.as_deref()).await;
    } else if parts.contains("accept") {
        accept_only(duration, &sink, baseline.as_deref()).await;
    }
    if parts.contains("memory") {
        memory(&sink, baseline.as_deref()).await;
    }
    if parts.contains("metrics") {
        println!();
        for rows in [0, 1_000_000] {
            let (median, slowest) = metrics_scrape(rows, &sink).await;
            println!(
                "GET /metrics with {rows} finished deliveries in the store: median {:.2} ms, slowest {:.2} ms",
                median.as_secs_f64() * 1e3,
                slowest.as_secs_f64() * 1e3
            );
        }
    }
}

/// The sink as one webhook destination without a pace.
fn unpaced_webhook(sink: &Sink) -> String {
    format!(
        "[destinations.sink]\nkind = \"webhook\"\nurl = \"http://{}/hook\"\nrate_limit = \"unlimited\"\n",
        sink.addr
    )
}

/// [`unpaced_webhook`] routed only test events: a relay needs a destination, and delivers none
/// of the triggers.
fn routed_nowhere(sink: &Sink) -> String {
    format!(
        "{}[[routes]]\nmatch = {{ kind = [\"test\"] }}\nto = [\"sink\"]\n",
        unpaced_webhook(sink)
    )
}

/// `BENCH_PARTS=accept`: the SQLite store's accepting alone (routed nowhere), this build and
/// `baseline` when given, alternating, twice each.
async fn accept_only(duration: Duration, sink: &Sink, baseline: Option<&str>) {
    let nowhere = routed_nowhere(sink);
    for _ in 0..2 {
        for (name, binary) in std::iter::once(("this build", RELAY))
            .chain(baseline.map(|b| ("BENCH_BASELINE_BIN", b)))
        {
            let (load, rss, _, _) =
                measure_relays(1, binary, duration, &nowhere, 0, sink, "accept").await;
            println!(
                "{name}, routed nowhere: {:.0} accepted/s, {:.0} CPU µs per post, {:.0} bytes written per post, p50 {:.2} ms, p99 {:.2} ms, peak RSS {rss:.1} MB",
                load.accepted as f64 / load.elapsed.as_secs_f64(),
                load.cpu_us_per_post,
                load.bytes_per_post,
                load.p50_ms,
                load.p99_ms,
            );
        }
    }
}

/// `BENCH_PARTS=postgres`: the PostgreSQL rows alone (this build, two relays of it on one
/// database, and `baseline` when given), each on a fresh database, delivering to one webhook.
async fn postgres_only(duration: Duration, sink: &Sink, baseline: Option<&str>) {
    let webhook = unpaced_webhook(sink);
    let runs = [
        ("this build", RELAY, 1),
        ("this build, two relays on one database", RELAY, 2),
    ]
    .into_iter()
    .chain(baseline.map(|b| ("BENCH_BASELINE_BIN", b, 1)));
    for (name, binary, replicas) in runs {
        let url = match alert_relay::testing::fresh_postgres_database().await {
            Ok(url) => url,
            Err(e) => return println!("(no PostgreSQL run: {e})"),
        };
        let config = format!("[storage]\nurl = \"{}\"\n{webhook}", url.expose());
        let (load, rss, delivered, seconds) =
            measure_relays(replicas, binary, duration, &config, 1, sink, "postgres").await;
        println!(
            "{name} on PostgreSQL: {:.0} accepted/s, {:.0} CPU µs per post, p50 {:.2} ms, p99 {:.2} ms, non-200 {}, peak RSS {rss:.1} MB; end to end {delivered} of {} in {seconds:.2} s = {:.0} deliveries/s",
            load.accepted as f64 / load.elapsed.as_secs_f64(),
            load.cpu_us_per_post,
            load.p50_ms,
            load.p99_ms,
            load.other,
            load.accepted,
            delivered as f64 / seconds
        );
        statements(&url).await;
    }
}

/// What the server's `pg_stat_statements` (when it is loaded: `shared_preload_libraries`, and
/// the extension created in the database the base URL names) counted in the fresh database at
/// `url` over the whole run (migrations, warm-up, load and drain): each statement's calls per
/// stored event and its mean time, the most called first, and all statements per event.
async fn statements(url: &alert_relay::secret::Secret) {
    let base = alert_relay::testing::postgres_server();
    let database = url
        .expose()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let connect = |url: String| async move {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .ok()?;
        tokio::spawn(connection);
        Some(client)
    };
    let (Some(server), Some(store)) = (connect(base).await, connect(url.expose().to_owned()).await)
    else {
        return println!("(no statement counts: PostgreSQL is not reachable)");
    };
    let Ok(counts) = store
        .query_one(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries WHERE state = 'done')",
            &[],
        )
        .await
    else {
        return println!("(no statement counts: the store cannot be read)");
    };
    let (events, done): (i64, i64) = (counts.get(0), counts.get(1));
    let rows = match server
        .query(
            "SELECT regexp_replace(query, '\\s+', ' ', 'g'), calls, mean_exec_time
             FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)
             ORDER BY calls DESC",
            &[&database],
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => return println!("(no statement counts: {e})"),
    };
    let total: i64 = rows.iter().map(|row| row.get::<_, i64>(1)).sum();
    let per = |calls: i64| calls as f64 / events.max(1) as f64;
    println!(
        "  pg_stat_statements: {total} statements for {events} events stored and {done} delivered: {:.2} per event",
        per(total)
    );
    for row in rows.iter().take(12) {
        let query: String = row.get(0);
        let shown: String = query.chars().take(90).collect();
        println!(
            "  {:>7.3} per event, {:>6.3} ms mean: {shown}",
            per(row.get(1)),
            row.get::<_, f64>(2)
        );
    }
}

/// Accepted events/s, latency and peak RSS of the relay (delivering to one webhook, to 16, and
/// accepting only) and of the bare server; end-to-end deliveries/s.
async fn throughput(duration: Duration, sink: &Sink, baseline: Option<&str>) {
    let webhook = unpaced_webhook(sink);
    let (relay_load, rss, delivered, e2e_seconds) =
        measure_relays(1, RELAY, duration, &webhook, 1, sink, "relay").await;
    let nowhere = routed_nowhere(sink);
    let (accept_only, accept_only_rss, _, _) =
        measure_relays(1, RELAY, duration, &nowhere, 0, sink, "accept-only").await;
    let sixteen: String = (0..16)
        .map(|i| {
            format!(
                "[destinations.sink{i}]\nkind = \"webhook\"\nurl = \"http://{}/hook\"\nrate_limit = \"unlimited\"\n",
                sink.addr
            )
        })
        .collect();
    let (sixteen_load, sixteen_rss, sixteen_delivered, sixteen_seconds) =
        measure_relays(1, RELAY, duration, &sixteen, 16, sink, "sixteen").await;
    // The same on PostgreSQL, in a fresh database, when a server is reachable.
    let postgres = match alert_relay::testing::fresh_postgres_database().await {
        Ok(url) => {
            let config = format!("[storage]\nurl = \"{}\"\n{webhook}", url.expose());
            Some(measure_relays(1, RELAY, duration, &config, 1, sink, "postgres").await)
        }
        Err(e) => {
            println!("(no PostgreSQL run: {e})");
            None
        }
    };
    let mut baseline_delivering = None;
    let mut baseline_accept_only = None;
    let mut baseline_postgres = None;
    if let Some(binary) = baseline {
        baseline_delivering =
            Some(measure_relays(1, binary, duration, &webhook, 1, sink, "baseline").await);
        baseline_accept_only = Some(
            measure_relays(
                1,
                binary,
                duration,
                &nowhere,
                0,
                sink,
                "baseline-accept-only",
            )
            .await,
        );
        if postgres.is_some()
            && let Ok(url) = alert_relay::testing::fresh_postgres_database().await
        {
            let config = format!("[storage]\nurl = \"{}\"\n{webhook}", url.expose());
            baseline_postgres = Some(
                measure_relays(1, binary, duration, &config, 1, sink, "baseline-postgres").await,
            );
        }
    }
    let (bare, bare_addr) = start_bare().await;
    load(&[bare_addr], WARM_UP, "bare-warm").await;
    let bare_load = load_on(&[&bare.0], &[bare_addr], duration, "bare").await;
    let bare_rss = peak_rss_mb(&bare.0);
    drop(bare);

    let rate = |l: &Load| l.accepted as f64 / l.elapsed.as_secs_f64();
    println!();
    println!(
        "| server | accepted/s | ratio to bare | CPU µs per post | bytes written per post | p50 ms | p99 ms | non-200 | peak RSS MB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = vec![
        (
            "alert-relay, durable accept, delivering to a webhook".to_owned(),
            &relay_load,
            rss,
        ),
        (
            "alert-relay, durable accept, delivering to 16 webhooks".to_owned(),
            &sixteen_load,
            sixteen_rss,
        ),
        (
            "alert-relay, durable accept, routed nowhere".to_owned(),
            &accept_only,
            accept_only_rss,
        ),
        (
            "bare hyper (reads and parses the body, answers 200)".to_owned(),
            &bare_load,
            bare_rss,
        ),
    ];
    if let Some((load, rss, _, _)) = &postgres {
        rows.push((
            "alert-relay on PostgreSQL, durable accept, delivering to a webhook".to_owned(),
            load,
            *rss,
        ));
    }
    if let (Some(binary), Some((load, rss, _, _))) = (baseline, &baseline_delivering) {
        rows.push((
            format!("BENCH_BASELINE_BIN ({binary}), delivering to a webhook"),
            load,
            *rss,
        ));
    }
    if let (Some(binary), Some((load, rss, _, _))) = (baseline, &baseline_accept_only) {
        rows.push((
            format!("BENCH_BASELINE_BIN ({binary}), routed nowhere"),
            load,
            *rss,
        ));
    }
    if let (Some(binary), Some((load, rss, _, _))) = (baseline, &baseline_postgres) {
        rows.push((
            format!("BENCH_BASELINE_BIN ({binary}) on PostgreSQL, delivering to a webhook"),
            load,
            *rss,
        ));
    }
    for (name, l, rss) in rows {
        println!(
            "| {name} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {:.1} |",
            rate(l),
            rate(l) / rate(&bare_load),
            l.cpu_us_per_post,
            l.bytes_per_post,
            l.p50_ms,
            l.p99_ms,
            l.other,
            rss
        );
    }
    println!();
    println!(
        "end to end: {delivered} of {} accepted events delivered to the loopback sink in {e2e_seconds:.2} s = {:.0} deliveries/s",
        relay_load.accepted,
        delivered as f64 / e2e_seconds
    );
    println!(
        "end to end, 16 webhooks: {sixteen_delivered} of {} deliveries in {sixteen_seconds:.2} s = {:.0} deliveries/s",
        sixteen_load.accepted * 16,
        sixteen_delivered as f64 / sixteen_seconds
    );
    if let Some((load, _, delivered, seconds)) = &postgres {
        println!(
            "end to end, on PostgreSQL: {delivered} of {} accepted events in {seconds:.2} s = {:.0} deliveries/s",
            load.accepted,
            *delivered as f64 / seconds
        );
    }
    if let Some((load, _, delivered, seconds)) = &baseline_postgres {
        println!(
            "end to end, BENCH_BASELINE_BIN on PostgreSQL: {delivered} of {} accepted events in {seconds:.2} s = {:.0} deliveries/s",
            load.accepted,
            *delivered as f64 / seconds
        );
    }
    if let Some((load, _, delivered, seconds)) = &baseline_delivering {
        println!(
            "end to end, BENCH_BASELINE_BIN: {delivered} of {} accepted events in {seconds:.2} s = {:.0} deliveries/s",
            load.accepted,
            *delivered as f64 / seconds
        );
    }
}

/// 32 connections posting large events to the relay and to the bare server: what was answered,
/// how long it took, and the peak RSS; then the event of 100,000 empty agents.
async fn memory(sink: &Sink, baseline: Option<&str>) {
    let posts: u64 = std::env::var("BENCH_LARGE_POSTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let three_kinds = format!(
        "[destinations.slack]\nkind = \"slack\"\nurl = \"http://{0}/s\"\nrate_limit = \"unlimited\"\n\
         [destinations.teams]\nkind = \"teams\"\nurl = \"http://{0}/t\"\nrate_limit = \"unlimited\"\n\
         [destinations.hook]\nkind = \"webhook\"\nurl = \"http://{0}/h\"\n",
        sink.addr
    );
    let relay = start_relay_binary(RELAY, &three_kinds).await;
    let mut large_relay = large_run(relay.addr, posts, Some(sink)).await;
    large_relay.peak_mb = peak_rss_mb(&relay.process.0);
    drop(relay);
    let (bare, bare_addr) = start_bare().await;
    let mut large_bare = large_run(bare_addr, posts, None).await;
    large_bare.peak_mb = peak_rss_mb(&bare.0);
    drop(bare);
    let baseline = match baseline {
        Some(binary) => {
            let relay = start_relay_binary(binary, &three_kinds).await;
            let mut run = large_run(relay.addr, posts, Some(sink)).await;
            run.peak_mb = peak_rss_mb(&relay.process.0);
            Some((binary, run))
        }
        None => None,
    };
    println!();
    println!(
        "memory: {CONNECTIONS} connections x {posts} events of 3,000 agents ({} bytes each)",
        agents_event("large-0-0", 3000, false).len()
    );
    println!();
    println!("| server | answered 200 | other | took s | delivered | peak RSS MB |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut rows = vec![
        (
            "alert-relay, delivering each to Slack, Teams and a webhook".to_owned(),
            &large_relay,
        ),
        (
            "bare hyper (reads and parses the body, answers 200)".to_owned(),
            &large_bare,
        ),
    ];
    if let Some((binary, run)) = &baseline {
        rows.push((format!("BENCH_BASELINE_BIN ({binary})"), run));
    }
    for (name, run) in rows {
        println!(
            "| {name} | {} | {} | {:.2} | {} | {:.1} |",
            run.load.accepted,
            run.load.other,
            run.load.elapsed.as_secs_f64(),
            if run.huge.is_some() {
                run.delivered.to_string()
            } else {
                "-".into()
            },
            run.peak_mb
        );
    }
    println!();
    for (name, run) in [
        ("alert-relay", Some(&large_relay)),
        ("baseline", baseline.as_ref().map(|(_, run)| run)),
    ] {
        if let Some(status) = run.and_then(|run| run.huge) {
            println!("{name}: then one event of 100,000 empty agents: HTTP {status}");
        }
    }
}
