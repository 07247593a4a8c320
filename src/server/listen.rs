//! The one front door of every listener (ingest and OAuth, the studio, what comes next):
//! [`serve`] takes a listener, its [`Limits`], a [`Handler`] and a shutdown, and owns the socket,
//! which connections may hold a slot and for how long, TLS, hyper, each request's head (checked
//! by `head.rs`), its body's bound and its time limit. A handler only turns a request into an
//! answer, so it is tested without a socket.
//!
//! A connection that has sent nothing holds no slot: it waits for its first byte for at most
//! `idle_timeout`, among at most [`WAITING_PER_SLOT`] × `max_connections` such connections; when
//! all of those are taken, the one that has waited longest is closed to make room, so that idle
//! sockets can never keep a real client out. Once a byte arrives, the connection takes one of
//! `max_connections` slots (waiting at most `header_timeout` for one) and keeps it until it closes:
//! its headers must arrive within `header_timeout`, each request must finish within
//! `request_timeout`, and a kept-alive connection that starts no new request within
//! `header_timeout` is closed.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::StatusCode;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::head::Guarded;
use crate::http::{Body, HttpRequest, HttpResponse, error};

/// Connections the kernel keeps waiting for `accept`: far above the 128 of the standard library,
/// so that a burst of sockets (or a flood of idle ones) does not turn real clients away.
pub const BACKLOG: u32 = 4096;
/// Connections waiting for their first byte, per connection slot. They cost a socket and a small
/// task each, no buffer.
pub const WAITING_PER_SLOT: usize = 4;

/// How much of the server one client may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// No request body is read past this, whatever its handler asks.
    pub max_body_bytes: usize,
    /// How long a new connection may stay silent before it is closed.
    pub idle_timeout: Duration,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
}

/// Binds `addr` with a backlog of `BACKLOG`.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Raises this process's limit on open files to the most it may have: every connection is one,
/// and the usual soft limit (1,024) is lower than what `max_connections` and the waiting
/// connections allow together.
pub fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            warn!(error = %e, "cannot raise the limit on open files");
        }
    }
}

/// Connections waiting for their first byte, oldest first; each can be told to give up.
struct Waiting {
    capacity: usize,
    entries: Mutex<(u64, BTreeMap<u64, oneshot::Sender<()>>)>,
}

impl Waiting {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<u64, oneshot::Sender<()>>)> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection, closing the one that has waited longest if there is no room.
    fn enter(&self) -> (u64, oneshot::Receiver<()>) {
        let mut guard = self.lock();
        let (next, entries) = &mut *guard;
        if entries.len() >= self.capacity
            && let Some((_, oldest)) = entries.pop_first()
        {
            let _ = oldest.send(());
        }
        let id = *next;
        *next += 1;
        let (evict, evicted) = oneshot::channel();
        entries.insert(id, evict);
        (id, evicted)
    }

    fn leave(&self, id: u64) {
        self.lock().1.remove(&id);
    }

    fn close_all(&self) {
        for (_, evict) in std::mem::take(&mut self.lock().1) {
            let _ = evict.send(());
        }
    }
}

/// What a listener answers: one request in, one answer out.
pub trait Handler: Send + Sync + 'static {
    /// Answers `request` from `peer`. Its body is read with [`Body::read`], which never reads
    /// past the listener's `max_body_bytes`; the whole answer must come within
    /// `request_timeout`, else [`serve`] answers 408.
    fn handle(
        &self,
        request: HttpRequest,
        peer: SocketAddr,
    ) -> impl Future<Output = HttpResponse> + Send;

    /// The certificate for a new connection, when the listener serves HTTPS.
    fn tls(&self) -> Option<TlsAcceptor> {
        None
    }
}

/// Serves `listener` with `handler` until `shutdown` completes, then lets requests in flight
/// finish (at most `request_timeout`).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    limits: Limits,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let waiting = Arc::new(Waiting::new(limits.max_connections * WAITING_PER_SLOT));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (id, evicted) = waiting.enter();
        let (handler, watcher) = (handler.clone(), graceful.watcher());
        let (slots, waiting) = (slots.clone(), waiting.clone());
        tokio::spawn(async move {
            // `peek` waits for a byte that is really there (`readable` may wake early).
            let mut first = [0u8; 1];
            let spoke = tokio::select! {
                peeked = tokio::time::timeout(limits.idle_timeout, stream.peek(&mut first)) => matches!(peeked, Ok(Ok(1))),
                _ = evicted => false,
            };
            waiting.leave(id);
            if !spoke {
                debug!(%peer, "closed a connection that sent nothing");
                return;
            }
            let slot = tokio::time::timeout(limits.header_timeout, slots.acquire_owned()).await;
            let Ok(Ok(_slot)) = slot else {
                debug!(%peer, "no connection slot came free in time");
                return;
            };
            serve_stream(&handler, limits, stream, peer, watcher).await;
        });
    }
    waiting.close_all();
    drop(listener);
    // No request may take longer than the request timeout anyway.
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.request_timeout) => warn!("requests still open after server.request_timeout; closing them"),
    }
}

/// Serves one accepted connection, plain or TLS as the handler says.
async fn serve_stream<H: Handler>(
    handler: &Arc<H>,
    limits: Limits,
    stream: TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
) {
    match handler.tls() {
        None => serve_http(handler, limits, stream, peer, watcher).await,
        Some(tls) => {
            // The handshake counts as part of the headers: a client that stalls is cut.
            match tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await {
                Ok(Ok(stream)) => serve_http(handler, limits, stream, peer, watcher).await,
                Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Serves HTTP/1.1 on one connection until it closes or shutdown drains it.
async fn serve_http<H: Handler, I>(
    handler: &Arc<H>,
    limits: Limits,
    io: I,
    peer: SocketAddr,
    watcher: Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let handler = handler.clone();
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let handler = handler.clone();
        async move {
            let limit = limits.request_timeout;
            let request = request.map(|body| Body::incoming(body, limits.max_body_bytes));
            let response = tokio::time::timeout(limit, handler.handle(request, peer))
                .await
                .unwrap_or_else(|_| {
                    error(
                        StatusCode::REQUEST_TIMEOUT,
                        &format!(
                            "the request took longer than {}",
                            humantime::format_duration(limit)
                        ),
                    )
                });
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // When `head.rs` ends the reading after a refused head, the answers to the requests
        // before it are still written.
        .half_close(true)
        .serve_connection(TokioIo::new(Guarded::new(io)), service);
    if let Err(e) = watcher.watch(connection).await {
        debug!(%peer, error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiting_connection_makes_room() {
        let waiting = Waiting::new(2);
        let (first, mut first_evicted) = waiting.enter();
        let (_, mut second_evicted) = waiting.enter();
        waiting.leave(first);
        let (_, mut third_evicted) = waiting.enter();
        assert!(first_evicted.try_recv().is_err(), "it had left");
        assert!(second_evicted.try_recv().is_err(), "there was room");
        let (_, mut fourth_evicted) = waiting.enter();
        assert!(second_evicted.try_recv().is_ok(), "the oldest goes");
        assert!(third_evicted.try_recv().is_err());
        waiting.close_all();
        assert!(third_evicted.try_recv().is_ok() && fourth_evicted.try_recv().is_ok());
    }
}
