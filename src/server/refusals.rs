//! hyper answers some malformed requests itself, before the relay sees them (a request line or
//! header it cannot parse, a bad `Content-Length`: 400; headers too large: 431; a URI too long:
//! 414), with an empty body. The relay promises a JSON body naming the problem for every refusal,
//! so the connection's writes pass through [`JsonRefusals`], which replaces such a response with
//! the same status and a JSON body. The relay's own responses always have a body, so an empty one
//! can only be hyper's.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Wraps a connection's stream; see the module doc.
pub struct JsonRefusals<I> {
    inner: I,
    /// A replacement response not yet fully written.
    pending: Vec<u8>,
}

impl<I> JsonRefusals<I> {
    pub fn new(inner: I) -> Self {
        Self {
            inner,
            pending: Vec::new(),
        }
    }
}

/// The JSON response that replaces hyper's empty `head`, if `head` is one.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let (status_line, headers) = text.split_once("\r\n")?;
    if !headers
        .to_ascii_lowercase()
        .contains("content-length: 0\r\n")
    {
        return None;
    }
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let reason = match status {
        400 => "the request is not valid HTTP: a malformed request line, header or Content-Length",
        414 => "the request URI is too long",
        431 => "the request headers are too large",
        _ => return None,
    };
    let body = serde_json::json!({ "error": reason }).to_string();
    Some(
        format!(
            "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<I: AsyncWrite + Unpin> JsonRefusals<I> {
    /// Writes what is left of a replacement.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..written);
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for JsonRefusals<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for JsonRefusals<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if buf.starts_with(b"HTTP/1.1 ")
            && let Some(json) = replacement(buf)
        {
            self.pending = json;
            // The original is taken whole; its replacement is written from here and on flush.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    /// Never: hyper then writes each response head as one buffer, which [`replacement`] reads.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_refusals_are_replaced() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Fri, 27 Nov 2026 13:04:09 GMT\r\n\r\n";
        let replaced = String::from_utf8(replacement(hyper_431).unwrap()).unwrap();
        assert!(replaced.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(replaced.ends_with("{\"error\":\"the request headers are too large\"}"));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n{\"error\":\"whatever\"}";
        assert!(replacement(ours).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(replacement(ok).is_none());
    }
}
