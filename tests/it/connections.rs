//! Sockets that hold connections without posting: idle ones that never send a byte and slowloris
//! ones that send their headers a byte at a time and reconnect when cut. A real post must still
//! be answered promptly. Runs the real binary, which binds with its own backlog.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{ChildRelay, sample};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const IDLE: usize = 2000;
const SLOWLORIS: usize = 600;

/// Connects, sends the start of a request, then one header byte every half second; reconnects
/// whenever the relay closes the connection, until `stop`.
async fn slowloris(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if stream
            .write_all(b"POST / HTTP/1.1\r\nHost: relay\r\nX-Slow: ")
            .await
            .is_err()
        {
            continue;
        }
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if stream.write_all(b"a").await.is_err() {
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slowloris_sockets_do_not_delay_real_posts() {
    // Short timeouts, so that idle sockets are closed and slowloris ones cut and back within
    // the test's few seconds.
    let dir = common::config_dir(
        "[server]\nidle_timeout = \"1s\"\nheader_timeout = \"2s\"\n[destinations.console]\nkind = \"console\"\n",
        &[],
    );
    let relay = ChildRelay::start(dir.path()).await;
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(
            TcpStream::connect(relay.addr)
                .await
                .expect("an idle connection"),
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..SLOWLORIS)
        .map(|_| tokio::spawn(slowloris(relay.addr, stop.clone())))
        .collect();
    // Real posts over several seconds, while idle sockets time out and slowloris ones reconnect.
    let mut slowest = Duration::ZERO;
    for i in 0..8 {
        let body = sample("webhook_test.json").replace("1415733887743", &format!("real-{i}"));
        let started = tokio::time::Instant::now();
        let (status, answer) = relay.post(body).await;
        let took = started.elapsed();
        assert_eq!(status, 200, "{answer}");
        slowest = slowest.max(took);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.abort();
    }
    drop(idle);
    // Not a speed test: without the limits, posts waited 3 to 9 s here, or never connected.
    assert!(
        slowest < Duration::from_secs(2),
        "with {IDLE} idle and {SLOWLORIS} slowloris sockets, a post took {slowest:?}"
    );
}
