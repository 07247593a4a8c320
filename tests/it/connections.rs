//! Sockets that hold connections without posting: idle ones that never send a byte and slowloris
//! ones that send their headers a byte at a time and reconnect when cut. A real post, or a real
//! page load from the studio's listener, must still be answered promptly, and the idle sockets
//! are closed by the relay. Runs the real binary, which binds with its own backlog.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{ChildRelay, sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// Connections that send nothing, and slowloris ones, against one address until lifted.
struct Siege {
    idle: Vec<TcpStream>,
    stop: Arc<AtomicBool>,
    attackers: Vec<tokio::task::JoinHandle<()>>,
}

impl Siege {
    async fn start(addr: std::net::SocketAddr, idle: usize, slow: usize) -> Siege {
        let mut sockets = Vec::with_capacity(idle);
        for _ in 0..idle {
            sockets.push(TcpStream::connect(addr).await.expect("an idle connection"));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let attackers = (0..slow)
            .map(|_| tokio::spawn(slowloris(addr, stop.clone())))
            .collect();
        Siege {
            idle: sockets,
            stop,
            attackers,
        }
    }

    fn lift(self) {
        self.stop.store(true, Ordering::Relaxed);
        for attacker in self.attackers {
            attacker.abort();
        }
    }
}

/// Whether the relay closed `socket`, which never sent a byte, within `within`.
async fn closed_by_the_relay(socket: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, socket.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// The studio's listener goes through the same front door as ingest: a page still loads at once
/// while a thousand idle sockets and two hundred slowloris ones are open, and the idle ones are
/// closed after `server.idle_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_studio_keeps_answering_under_idle_and_slowloris_sockets() {
    let studio_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = common::config_dir(
        &format!(
            "[server]\nidle_timeout = \"1s\"\nheader_timeout = \"2s\"\n\
             [studio]\nenabled = true\nlisten = \"127.0.0.1:{studio_port}\"\n\
             [destinations.console]\nkind = \"console\"\n"
        ),
        &[],
    );
    let relay = ChildRelay::start(dir.path()).await;
    let studio: std::net::SocketAddr = ([127, 0, 0, 1], studio_port).into();
    let mut siege = Siege::start(studio, 1000, 200).await;
    let http = common::client();
    let mut slowest = Duration::ZERO;
    for _ in 0..6 {
        for path in ["/", "/api/catalog"] {
            let started = tokio::time::Instant::now();
            let answer = http
                .get(format!("http://{studio}{path}"))
                .send()
                .await
                .expect("the studio answers");
            assert_eq!(answer.status(), 200, "{path}");
            answer.bytes().await.expect("the whole page");
            slowest = slowest.max(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Idle for well over server.idle_timeout by now: each was closed by the relay.
    for socket in siege.idle.iter_mut().take(20) {
        assert!(
            closed_by_the_relay(socket, Duration::from_secs(3)).await,
            "an idle socket on the studio's port is still open"
        );
    }
    siege.lift();
    drop(relay);
    assert!(
        slowest < Duration::from_secs(2),
        "with 1000 idle and 200 slowloris sockets, a studio page took {slowest:?}"
    );
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
    let siege = Siege::start(relay.addr, IDLE, SLOWLORIS).await;
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
    siege.lift();
    // Not a speed test: without the limits, posts waited 3 to 9 s here, or never connected.
    assert!(
        slowest < Duration::from_secs(2),
        "with {IDLE} idle and {SLOWLORIS} slowloris sockets, a post took {slowest:?}"
    );
}
