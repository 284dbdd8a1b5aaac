//! Serving the router on a TCP listener, with every answer a problem.
//!
//! hyper answers a request whose head it cannot take by itself, before any handler runs, with an
//! empty body: 414 for a request URI over [`MAX_URI_BYTES`] (a fixed limit of hyper's HTTP/1
//! parser) and 431 for a head over its read buffer or with too many header fields. The
//! connections [`serve`] accepts rewrite exactly those answers (recognised by their shape: an
//! HTTP/1 status line of one of those codes, `connection: close` and `content-length: 0`, as
//! nothing else here answers) into `application/problem+json` that names the limit.

use crate::Problem;
use axum::Router;
use axum::http::StatusCode;
use axum::serve::ListenerExt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The longest request URI hyper's HTTP/1 parser takes (`MAX_URI_LEN` in hyper's `role.rs`).
pub const MAX_URI_BYTES: usize = u16::MAX as usize - 1;
/// hyper's default limit of a request head, in bytes (its default read buffer).
pub const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
/// hyper's default limit of header fields in a request.
pub const MAX_HEADERS: usize = 100;

/// Serves `app` on `listener` until `shutdown` completes; handlers see the client's address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // `tap_io` only so that axum gives the client's address to handlers of a listener of ours.
    let listener = ProblemListener(listener).tap_io(|_: &mut ProblemIo<TcpStream>| {});
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A TCP listener whose connections rewrite hyper's own error answers.
struct ProblemListener(TcpListener);

impl axum::serve::Listener for ProblemListener {
    type Io = ProblemIo<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's accept loop: it retries and backs off on errors.
        let (stream, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (ProblemIo::new(stream), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection that replaces hyper's empty 414 and 431 answers by problem details.
pub struct ProblemIo<S> {
    inner: S,
    /// A replacement answer still to write, and how much of it is written.
    pending: Vec<u8>,
    written: usize,
}

impl<S> ProblemIo<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<S: AsyncWrite + Unpin> ProblemIo<S> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ProblemIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProblemIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        if let Some(answer) = replacement(buf) {
            // Taken whole: written out by the next write, flush or shutdown.
            this.pending = answer;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        // hyper's own answers are a head alone, in one slice.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next())
            && let Some(answer) = replacement(only)
        {
            this.pending = answer;
            return Poll::Ready(Ok(only.len()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The problem answer that replaces `head`, when `head` is hyper's own answer to a request head
/// it could not take.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    const EMPTY: &[u8] = b"\r\ncontent-length: 0\r\n";
    if head.len() > 512 || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let (status_line, rest) = head.split_at(line_end);
    let version = status_line.get(..9)?;
    if version != b"HTTP/1.1 " && version != b"HTTP/1.0 " {
        return None;
    }
    let problem = match status_line.get(9..12)? {
        b"414" => Problem::new(StatusCode::URI_TOO_LONG, "uri-too-long", "URI too long")
            .with_detail(format!(
                "the request URI is longer than {MAX_URI_BYTES} bytes, the server's limit"
            )),
        b"431" => Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request-head-too-large",
            "Request header fields too large",
        )
        .with_detail(format!(
            "the request line and headers are longer than {MAX_HEAD_BYTES} bytes, or have more \
             than {MAX_HEADERS} fields: the server's limits"
        )),
        _ => return None,
    };
    let empty_at = rest.windows(EMPTY.len()).position(|w| w == EMPTY)?;
    let closes = rest
        .windows(b"\r\nconnection: close\r\n".len())
        .any(|w| w == b"\r\nconnection: close\r\n");
    if !closes {
        return None;
    }
    let body = serde_json::to_vec(&problem).ok()?;
    let mut out = Vec::with_capacity(head.len() + body.len() + 64);
    out.extend_from_slice(status_line);
    out.extend_from_slice(&rest[..empty_at]);
    out.extend_from_slice(
        format!(
            "\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&rest[empty_at + EMPTY.len()..]);
    out.extend_from_slice(&body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_own_empty_answers_are_replaced() {
        let hyper = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sat, 05 Dec 2026 10:12:01 GMT\r\n\r\n";
        let out = String::from_utf8(replacement(hyper).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        assert!(head.contains("\r\ndate: Sat, 05 Dec 2026"), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/problem+json\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())),
            "{head}"
        );
        assert!(!head.contains("content-length: 0"), "{head}");
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 414);
        assert!(problem["detail"].as_str().unwrap().contains("65534 bytes"));

        let big = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(replacement(big).unwrap()).unwrap();
        assert!(out.contains("\"status\":431"), "{out}");

        // Anything else goes through as it is: other statuses, answers with a body, a body
        // chunk, an answer that keeps the connection.
        for other in [
            &b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 414 URI Too Long\r\ncontent-type: application/problem+json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n",
            b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n",
            b"{\"status\":414}\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ] {
            assert!(
                replacement(other).is_none(),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[tokio::test]
    async fn a_replaced_answer_is_written_whole() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(16);
        let mut io = ProblemIo::new(server);
        let hyper = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut out = Vec::new();
            client.read_to_end(&mut out).await.unwrap();
            out
        });
        io.write_all(hyper).await.unwrap();
        io.shutdown().await.unwrap();
        drop(io);
        let out = String::from_utf8(reader.await.unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{out}");
        assert!(out.ends_with('}'), "{out}");
    }
}
