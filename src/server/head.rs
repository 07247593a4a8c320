//! Every request's head is read and checked here before hyper sees it, so that what hyper would
//! refuse with an empty answer (a request line or header it cannot parse, a bad `Content-Length`
//! or `Transfer-Encoding`, headers or a URI too large) is refused by the relay itself, with the
//! same status and a JSON body naming the problem. hyper then only ever parses heads that it
//! accepts; nothing it writes is touched.
//!
//! [`Guarded`] sits between the connection and hyper. It gives hyper one message at a time: a
//! head once it is complete and checked, then exactly its body (a `Content-Length`, or a chunked
//! body as far as its framing goes), so that a pipelined head is checked before hyper reads it. A
//! head that is refused ends what hyper reads; hyper answers the requests it already has, and the
//! refusal is written after them, when hyper shuts the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use hyper::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A head larger than this is refused with 431: far above what a webhook sender writes (a few
/// hundred bytes), what one slow connection may make the relay hold, and below hyper's own read
/// buffer (about 400 KB), so that hyper never meets a head too large for it.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// More headers than this is refused with 431: hyper's own default (`DEFAULT_MAX_HEADERS`),
/// which the server keeps, so that hyper never meets a head with more.
pub const MAX_HEADERS: usize = 100;
/// A request target longer than this is refused with 414; no path of the relay comes near.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// How much is read from the connection at a time.
const READ_SIZE: usize = 8 * 1024;

/// A connection whose request heads are checked before hyper reads them; see the module doc.
pub struct Guarded<I> {
    inner: I,
    /// Read from the connection, not yet given to hyper.
    buffer: BytesMut,
    /// How many bytes at the front of `buffer` are checked and may go to hyper.
    cleared: usize,
    state: State,
    /// The connection has no more to read.
    eof: bool,
    /// The refusal of a head, written once hyper has written its answers and shuts down.
    refusal: Option<Vec<u8>>,
}

enum State {
    /// Waiting for a whole head.
    Head,
    /// Giving hyper the `left` bytes of a checked head, then of what follows it.
    Pass { left: u64, then: Then },
    /// Giving hyper a chunked body as far as its framing has been read.
    Chunked(Chunk),
    /// Nothing more for hyper: a head was refused, or a chunked body broke its framing (hyper
    /// answers that request itself, from the body it could not read).
    End,
}

#[derive(Debug, Clone, Copy)]
enum Then {
    Head,
    Fixed(u64),
    Chunked,
}

/// Where a chunked body stands (RFC 9112 7.1).
#[derive(Clone, Copy)]
enum Chunk {
    /// A chunk-size line, extensions included.
    Size,
    /// `left` bytes of chunk data, then its CRLF.
    Data { left: u64 },
    /// The CRLF after a chunk's data; `seen` of its two bytes so far.
    DataEnd { seen: u8 },
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers,
}

impl<I> Guarded<I> {
    pub fn new(inner: I) -> Self {
        Self {
            inner,
            buffer: BytesMut::new(),
            cleared: 0,
            state: State::Head,
            eof: false,
            refusal: None,
        }
    }
}

/// A head hyper would refuse, as the relay answers it.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    status: StatusCode,
    reason: String,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }

    fn invalid(what: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("the request is not valid HTTP: {what}"),
        )
    }

    /// The whole answer: status, JSON body, and the connection closed after it.
    fn bytes(&self) -> Vec<u8> {
        let body = serde_json::json!({ "error": self.reason }).to_string();
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes()
    }
}

/// Checks the head at the start of `bytes`: `Ok(None)` while it is incomplete, else its length and
/// how its body is framed, or why it is refused. Refuses all that hyper's server refuses when it
/// parses a head (`proto/h1/role.rs`), and more strictly on sizes.
fn check(bytes: &[u8]) -> Result<Option<(usize, Then)>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let length = match request.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if bytes.len() > MAX_HEAD_BYTES => {
            return Err(too_large_head());
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("the request headers are too large: more than {MAX_HEADERS} headers"),
            ));
        }
        Err(httparse::Error::Version) => {
            return Err(Refusal::invalid("only HTTP/1.0 and HTTP/1.1 are served"));
        }
        Err(httparse::Error::Token) if request.method.is_none() => {
            return Err(Refusal::invalid("a malformed request method"));
        }
        Err(httparse::Error::Token) => return Err(Refusal::invalid("a malformed request target")),
        Err(httparse::Error::HeaderName) => {
            return Err(Refusal::invalid("a malformed header name"));
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(Refusal::invalid("a malformed header value"));
        }
        Err(_) => return Err(Refusal::invalid("a malformed request line or header")),
    };
    if length > MAX_HEAD_BYTES {
        return Err(too_large_head());
    }
    let target = request.path.unwrap_or_default();
    if target.len() > MAX_URI_BYTES {
        return Err(Refusal::new(
            StatusCode::URI_TOO_LONG,
            format!("the request URI is too long: more than {MAX_URI_BYTES} bytes"),
        ));
    }
    if hyper::Uri::from_maybe_shared(bytes::Bytes::copy_from_slice(target.as_bytes())).is_err() {
        return Err(Refusal::invalid("the request target is not a URI"));
    }
    if hyper::Method::from_bytes(request.method.unwrap_or_default().as_bytes()).is_err() {
        return Err(Refusal::invalid("a malformed request method"));
    }
    let http_11 = request.version == Some(1);
    let (mut chunked, mut transfer_encoding, mut content_length) = (false, false, None);
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if !http_11 {
                return Err(Refusal::invalid("Transfer-Encoding in an HTTP/1.0 request"));
            }
            transfer_encoding = true;
            // Chunked must be the last coding.
            chunked = std::str::from_utf8(header.value).is_ok_and(|value| {
                value
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            });
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let Some(length) = digits(header.value) else {
                return Err(Refusal::invalid("a Content-Length that is not a number"));
            };
            if content_length.is_some_and(|earlier| earlier != length) {
                return Err(Refusal::invalid("two Content-Lengths that differ"));
            }
            content_length = Some(length);
        }
    }
    let then = match (transfer_encoding, chunked, content_length) {
        (true, false, _) => {
            return Err(Refusal::invalid(
                "a Transfer-Encoding whose last coding is not chunked",
            ));
        }
        // A Content-Length beside chunked is ignored, as hyper does.
        (true, true, _) => Then::Chunked,
        (false, _, Some(length)) if length > 0 => Then::Fixed(length),
        (false, _, _) => Then::Head,
    };
    Ok(Some((length, then)))
}

fn too_large_head() -> Refusal {
    Refusal::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        format!("the request headers are too large: more than {MAX_HEAD_BYTES} bytes"),
    )
}

/// A `Content-Length` value: ASCII digits only, no sign, no overflow (as hyper reads it).
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |total, &b| match b {
        b'0'..=b'9' => total.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

impl<I: AsyncRead + Unpin> Guarded<I> {
    /// Reads more of the connection into the buffer; `Ready(Ok(()))` once something came or the
    /// connection ended.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Straight into the buffer's room, which is neither zeroed first nor copied after.
        self.buffer.reserve(READ_SIZE);
        let this = &mut *self;
        if ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut this.inner),
            cx,
            &mut this.buffer
        ))? == 0
        {
            self.eof = true;
        }
        Poll::Ready(Ok(()))
    }

    /// Moves through the buffer until some of it is cleared for hyper: checks a head, counts a
    /// body, follows a chunked body's framing. `Some(n)`: the next `n` buffered bytes may go to
    /// hyper; `None`: more must be read first (or nothing more goes to hyper).
    fn advance(&mut self) -> Option<usize> {
        loop {
            match self.state {
                State::End => return None,
                State::Head => match check(&self.buffer) {
                    Ok(Some((length, then))) => {
                        self.state = State::Pass {
                            left: length as u64,
                            then,
                        };
                    }
                    Ok(None) => return None,
                    Err(refusal) => {
                        tracing::debug!(status = %refusal.status, reason = %refusal.reason, "refused a request head");
                        self.refusal = Some(refusal.bytes());
                        self.state = State::End;
                        return None;
                    }
                },
                State::Pass { left: 0, then } => {
                    self.state = match then {
                        Then::Head => State::Head,
                        Then::Fixed(length) => State::Pass {
                            left: length,
                            then: Then::Head,
                        },
                        Then::Chunked => State::Chunked(Chunk::Size),
                    };
                }
                State::Pass { left, then } => {
                    let now = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(self.buffer.len());
                    if now == 0 {
                        return None;
                    }
                    self.state = State::Pass {
                        left: left - now as u64,
                        then,
                    };
                    return Some(now);
                }
                State::Chunked(chunk) => return self.chunk(chunk),
            }
        }
    }

    /// One step through a chunked body; see [`Guarded::advance`].
    fn chunk(&mut self, chunk: Chunk) -> Option<usize> {
        let broken = |guard: &mut Self| {
            tracing::debug!("a chunked body broke its framing; the connection ends there");
            guard.state = State::End;
            None
        };
        // The length of the framing line at the front (a chunk size, a trailer), once it is whole.
        let line = |guard: &mut Self| match guard.buffer.iter().position(|&b| b == b'\n') {
            Some(at) => Ok(at + 1),
            None if guard.buffer.len() > MAX_HEAD_BYTES => Err(broken(guard)),
            None => Err(None),
        };
        match chunk {
            Chunk::Size => {
                let length = match line(self) {
                    Ok(length) => length,
                    Err(wait_or_end) => return wait_or_end,
                };
                match httparse::parse_chunk_size(&self.buffer[..length]) {
                    Ok(httparse::Status::Complete((_, 0))) => {
                        self.state = State::Chunked(Chunk::Trailers);
                    }
                    Ok(httparse::Status::Complete((_, size))) => {
                        self.state = State::Chunked(Chunk::Data { left: size });
                    }
                    _ => return broken(self),
                }
                Some(length)
            }
            Chunk::Data { left } => {
                let now = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(self.buffer.len());
                if now == 0 {
                    return None;
                }
                let left = left - now as u64;
                self.state = State::Chunked(if left == 0 {
                    Chunk::DataEnd { seen: 0 }
                } else {
                    Chunk::Data { left }
                });
                Some(now)
            }
            Chunk::DataEnd { seen } => {
                let expected = b"\r\n"[usize::from(seen)];
                match self.buffer.first() {
                    None => None,
                    Some(&b) if b == expected => {
                        self.state = State::Chunked(if seen == 0 {
                            Chunk::DataEnd { seen: 1 }
                        } else {
                            Chunk::Size
                        });
                        Some(1)
                    }
                    Some(_) => broken(self),
                }
            }
            Chunk::Trailers => {
                let length = match line(self) {
                    Ok(length) => length,
                    Err(wait_or_end) => return wait_or_end,
                };
                // An empty line ends the message; a trailer field is passed on.
                if self.buffer[..length] == *b"\r\n" || self.buffer[..length] == *b"\n" {
                    self.state = State::Head;
                }
                Some(length)
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Guarded<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.cleared == 0
                && let Some(cleared) = self.advance()
            {
                self.cleared = cleared;
            }
            if self.cleared > 0 {
                let n = self.cleared.min(out.remaining());
                out.put_slice(&self.buffer[..n]);
                self.buffer.advance(n);
                self.cleared -= n;
                return Poll::Ready(Ok(()));
            }
            if matches!(self.state, State::End) || self.eof {
                // The end of what hyper reads; a head cut off by the peer is dropped with it.
                return Poll::Ready(Ok(()));
            }
            ready!(self.fill(cx))?;
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Guarded<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// hyper shuts the connection once it has written every answer it had: a refusal goes last.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(refusal) = self.refusal.as_mut().filter(|r| !r.is_empty()) {
            let refusal = std::mem::take(refusal);
            match Pin::new(&mut self.inner).poll_write(cx, &refusal) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.refusal = Some(refusal[n..].to_vec()),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.refusal = Some(refusal);
                    return Poll::Pending;
                }
            }
        }
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What hyper's server answers to `head` (followed by the end of the stream): its status and
    /// whether the answer has a body, or `None` when it answers nothing.
    fn hyper_answers(head: &[u8]) -> Option<(u16, bool)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (mut client, server) = tokio::io::duplex(1 << 20);
            let service = hyper::service::service_fn(|_request| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                    bytes::Bytes::from_static(b"ok"),
                )))
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .half_close(true)
                .serve_connection(hyper_util::rt::TokioIo::new(server), service);
            let served = tokio::spawn(connection);
            client.write_all(head).await.unwrap();
            client.shutdown().await.unwrap();
            let mut answer = Vec::new();
            let _ = client.read_to_end(&mut answer).await;
            let _ = served.await;
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut headers);
            let httparse::Status::Complete(length) = response.parse(&answer).ok()? else {
                return None;
            };
            Some((response.code?, answer.len() > length))
        })
    }

    /// Heads near valid ones: a request line, a few headers, with bytes replaced or inserted.
    fn near_heads() -> impl Strategy<Value = Vec<u8>> {
        let alphabet = prop::sample::select(b" :\r\n\t\0/,;\"{}a0\x7f\x80\xff-9Zx".to_vec());
        let header = prop::sample::select(vec![
            "Host: x",
            "Content-Length: 3",
            "Content-Length: 03",
            "Content-Length: 3, 3",
            "Transfer-Encoding: chunked",
            "Transfer-Encoding: gzip",
            "Content-Type: application/json",
            "Connection: close",
            "Expect: 100-continue",
            "Upgrade: h2c",
        ]);
        let method = prop::sample::select(vec!["GET", "POST", "PUT", "CONNECT", "OPTIONS"]);
        let target = prop::sample::select(vec!["/", "/a?b=c", "*", "http://x/y", "x:1", "/%zz"]);
        let version = prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "http/1.1"]);
        (
            method,
            target,
            version,
            prop::collection::vec(header, 0..5),
            prop::collection::vec(
                (any::<prop::sample::Index>(), alphabet, any::<bool>()),
                0..3,
            ),
        )
            .prop_map(|(method, target, version, headers, edits)| {
                let mut head = format!("{method} {target} {version}\r\n");
                for header in headers {
                    head.push_str(header);
                    head.push_str("\r\n");
                }
                head.push_str("\r\n");
                let mut head = head.into_bytes();
                for (at, byte, insert) in edits {
                    let at = at.index(head.len());
                    match insert {
                        true => head.insert(at, byte),
                        false => head[at] = byte,
                    }
                }
                head.extend_from_slice(b"abc");
                head
            })
    }

    /// What hyper reads through [`Guarded`] from a connection that sends `bytes`, in reads of
    /// `size` bytes; and the refusal written at shutdown, if any.
    fn read_through(bytes: &[u8], size: usize) -> (Vec<u8>, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (mut client, server) = tokio::io::duplex(1 << 16);
            client.write_all(bytes).await.unwrap();
            client.shutdown().await.unwrap();
            let mut guarded = Guarded::new(server);
            let (mut read, mut chunk) = (Vec::new(), vec![0u8; size]);
            loop {
                let n = guarded.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                read.extend_from_slice(&chunk[..n]);
            }
            guarded.shutdown().await.unwrap();
            let mut answer = String::new();
            client.read_to_string(&mut answer).await.unwrap();
            (read, answer)
        })
    }

    #[test]
    fn hyper_reads_each_message_whole_and_nothing_after_a_refused_head() {
        let messages = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
            POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
            3;ext=1\r\nxyz\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: t\r\n\r\n\
            GET /c HTTP/1.1\r\n\r\n";
        for size in [1, 3, 7, 4096] {
            let (read, refusal) = read_through(messages, size);
            assert_eq!(read, messages, "reads of {size}");
            assert!(refusal.is_empty());
            let mut refused = messages.to_vec();
            refused
                .extend_from_slice(b"GET / HTTP/1.1\r\nBad Header\r\n\r\nGET /d HTTP/1.1\r\n\r\n");
            let (read, refusal) = read_through(&refused, size);
            assert_eq!(read, messages, "nothing of the refused head, nor after it");
            assert!(
                refusal.starts_with("HTTP/1.1 400 Bad Request\r\n"),
                "{refusal}"
            );
            assert!(
                refusal.ends_with(
                    "\"error\":\"the request is not valid HTTP: a malformed header name\"}"
                ),
                "{refusal}"
            );
        }
        // A chunked body that breaks its framing ends what hyper reads, without a refusal: hyper
        // answers that request itself.
        let broken =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET / HTTP/1.1\r\n\r\n";
        let (read, refusal) = read_through(broken, 5);
        let head = broken.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(
            read,
            &broken[..head],
            "the head, nothing of the broken body"
        );
        assert!(refusal.is_empty());
    }

    #[test]
    fn hyper_refuses_with_an_empty_answer_what_it_cannot_parse() {
        assert_eq!(
            hyper_answers(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some((200, true))
        );
        assert_eq!(hyper_answers(b"GARBAGE\r\n\r\n"), Some((400, false)));
        assert_eq!(
            hyper_answers(b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx"),
            Some((400, false))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever head the relay lets through, hyper serves: it never has to answer a refusal
        /// of its own (an answer without a body).
        #[test]
        fn hyper_never_refuses_a_head_that_was_let_through(head in near_heads()) {
            if let Ok(Some(_)) = check(&head) {
                let answer = hyper_answers(&head);
                prop_assert!(
                    !matches!(answer, Some((400..=499, false))),
                    "{:?} let through, hyper answered {answer:?}",
                    String::from_utf8_lossy(&head)
                );
            }
        }
    }

    fn refused(head: &[u8]) -> (u16, String) {
        let refusal = check(head).expect_err("refused");
        (refusal.status.as_u16(), refusal.reason)
    }

    #[test]
    fn heads_that_hyper_would_refuse_are_refused_by_name() {
        assert!(matches!(
            check(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"),
            Ok(Some((_, Then::Fixed(2))))
        ));
        assert!(matches!(check(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None)));
        assert!(matches!(
            check(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n"
            ),
            Ok(Some((_, Then::Chunked)))
        ));
        for (head, status, says) in [
            (&b"GARBAGE\r\n\r\n"[..], 400, "not valid HTTP"),
            (b"GET / HTTP/2.0\r\n\r\n", 400, "HTTP/1.0 and HTTP/1.1"),
            (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "header name"),
            (
                b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                400,
                "Content-Length",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\n",
                400,
                "Content-Length",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
                400,
                "Content-Lengths that differ",
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                400,
                "chunked",
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
                "HTTP/1.0",
            ),
        ] {
            let (got, reason) = refused(head);
            assert_eq!(got, status, "{reason}");
            assert!(reason.contains(says), "{reason}");
        }
        let long_uri = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_BYTES));
        assert_eq!(refused(long_uri.as_bytes()).0, 414);
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            (0..=MAX_HEADERS)
                .map(|i| format!("X-{i}: a\r\n"))
                .collect::<String>()
        );
        assert_eq!(refused(many.as_bytes()).0, 431);
        let large = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(refused(large.as_bytes()).0, 431);
    }
}
