//! What the benchmarks share: free loopback addresses, and waiting for a server to listen or a
//! relay to be ready.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("address")
}

pub async fn wait_until_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{addr} never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the relay at `addr` answers `GET /readyz` with 200 (its store is open).
pub async fn wait_until_ready(addr: SocketAddr) {
    wait_until_listening(addr).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = async {
            let stream = TcpStream::connect(addr).await.ok()?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .ok()?;
            tokio::spawn(conn);
            let request = Request::get("/readyz")
                .header("host", "bench")
                .body(Full::new(Bytes::new()))
                .ok()?;
            let response = sender.send_request(request).await.ok()?;
            Some(response.status() == 200)
        };
        if ready.await == Some(true) {
            return;
        }
        assert!(Instant::now() < deadline, "{addr} never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
