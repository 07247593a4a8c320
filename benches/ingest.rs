//! Ingest benchmark: 32 keep-alive connections post the ThousandEyes trigger sample (a fresh
//! `eventId` each time) for a fixed time against
//!   (a) the release `alert-relay` binary with durable accept, delivering to a loopback webhook
//!       sink with pacing off, and
//!   (b) a bare hyper server from this file that only reads the body and answers 200,
//! each in its own process, one after the other in the same run. Reports accepted events/s for
//! both and their ratio, p50 and p99 accept latency, end-to-end deliveries/s and the relay's peak
//! RSS.
//!
//! Run: `cargo bench --bench ingest` (`BENCH_SECONDS=N` to change the 10 s per server).

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

const CONNECTIONS: usize = 32;
/// Set in the environment of the child that plays the bare server.
const BARE_SERVER_ENV: &str = "ALERT_RELAY_BENCH_BARE_SERVER";
const SAMPLE: &str = include_str!("../tests/fixtures/thousandeyes/alert_trigger.json");

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

/// Reads each request's body and answers 200: the ceiling for any HTTP ingest on this machine.
async fn bare_server(addr: SocketAddr) {
    let listener = TcpListener::bind(addr).await.expect("bind bare server");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(|request: Request<hyper::body::Incoming>| async move {
                let _ = request.into_body().collect().await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                    b"{\"status\":\"accepted\"}",
                ))))
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

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("address")
}

async fn wait_until_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{addr} never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Load {
    accepted: u64,
    other: u64,
    latencies_micros: Vec<u64>,
    elapsed: Duration,
}

/// `CONNECTIONS` keep-alive connections posting for `duration`; counts 200 answers.
async fn load(addr: SocketAddr, duration: Duration, run: &str) -> Load {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for connection in 0..CONNECTIONS {
        let run = run.to_owned();
        tasks.spawn(async move {
            let stream = TcpStream::connect(addr).await.expect("connect");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let (mut accepted, mut other, mut latencies) = (0u64, 0u64, Vec::new());
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let body =
                    SAMPLE.replacen("\"49-35541\"", &format!("\"{run}-{connection}-{n}\""), 1);
                let request = Request::post("/")
                    .header("host", "bench")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .expect("request");
                let sent = Instant::now();
                sender.ready().await.expect("connection ready");
                let response = sender.send_request(request).await.expect("response");
                let status = response.status();
                let _ = response.into_body().collect().await;
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
    let mut total = Load {
        accepted: 0,
        other: 0,
        latencies_micros: Vec::new(),
        elapsed: Duration::ZERO,
    };
    while let Some(result) = tasks.join_next().await {
        let (accepted, other, latencies) = result.expect("load task");
        total.accepted += accepted;
        total.other += other;
        total.latencies_micros.extend(latencies);
    }
    total.elapsed = started.elapsed();
    total.latencies_micros.sort_unstable();
    total
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
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

/// Starts the relay binary on `destinations` (TOML), loads it for `duration`, and, when `delivers`,
/// waits until the sink has every accepted event. Returns the load, the relay's peak RSS, and the
/// deliveries with the time from the first post to the last delivery.
async fn measure_relay(
    duration: Duration,
    destinations: &str,
    delivers: bool,
    sink: &Sink,
    run: &str,
) -> (Load, f64, u64, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay_addr = free_addr();
    std::fs::write(
        dir.path().join("config.toml"),
        format!("[server]\nlisten = \"{relay_addr}\"\n{destinations}"),
    )
    .expect("write config");
    let relay = Stopped(
        Command::new(env!("CARGO_BIN_EXE_alert-relay"))
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alert-relay"),
    );
    wait_until_listening(relay_addr).await;
    let before = sink.received.load(Ordering::SeqCst);
    let first_post = sink.started.elapsed();
    let load = load(relay_addr, duration, run).await;
    let mut delivered = 0;
    let mut seconds = 0.0;
    if delivers {
        let deadline = Instant::now() + Duration::from_secs(120);
        while sink.received.load(Ordering::SeqCst) - before < load.accepted
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        delivered = sink.received.load(Ordering::SeqCst) - before;
        seconds =
            sink.last_at_micros.load(Ordering::SeqCst) as f64 / 1e6 - first_post.as_secs_f64();
    }
    let rss = peak_rss_mb(&relay.0);
    (load, rss, delivered, seconds)
}

async fn run(duration: Duration) {
    let sink = sink().await;
    let webhook = format!(
        "[destinations.sink]\nkind = \"webhook\"\nurl = \"http://{}/hook\"\nrate_limit = \"unlimited\"\n",
        sink.addr
    );
    let (relay_load, rss, delivered, e2e_seconds) =
        measure_relay(duration, &webhook, true, &sink, "relay").await;
    // A relay needs a destination; routed only test events, it delivers none of the triggers.
    let nowhere =
        format!("{webhook}[[routes]]\nmatch = {{ kind = [\"test\"] }}\nto = [\"sink\"]\n");
    let (accept_only, accept_only_rss, _, _) =
        measure_relay(duration, &nowhere, false, &sink, "accept-only").await;

    let bare_addr = free_addr();
    let bare = Stopped(
        Command::new(std::env::current_exe().expect("this binary"))
            .env(BARE_SERVER_ENV, bare_addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the bare server"),
    );
    wait_until_listening(bare_addr).await;
    let bare_load = load(bare_addr, duration, "bare").await;
    let bare_rss = peak_rss_mb(&bare.0);
    drop(bare);

    let rate = |l: &Load| l.accepted as f64 / l.elapsed.as_secs_f64();
    println!(
        "ingest benchmark: {CONNECTIONS} connections, {} s per server, {} cores",
        duration.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| server | accepted/s | ratio to bare | p50 ms | p99 ms | non-200 | peak RSS MB |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, l, rss) in [
        (
            "alert-relay, durable accept, delivering to a webhook",
            &relay_load,
            rss,
        ),
        (
            "alert-relay, durable accept, routed nowhere",
            &accept_only,
            accept_only_rss,
        ),
        (
            "bare hyper (reads the body, answers 200)",
            &bare_load,
            bare_rss,
        ),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.1} |",
            rate(l),
            rate(l) / rate(&bare_load),
            percentile(&l.latencies_micros, 0.50),
            percentile(&l.latencies_micros, 0.99),
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
}
