//! Kept-alive HTTP/1 connections to upstreams, one idle set per thread and origin.
//!
//! The client is this crate's own, not hyper's: a connection has no task of its own. The
//! request that holds it writes its head (and body) and reads the response head itself, and the
//! response body reads the rest; so a request goes out to the upstream the moment its handler
//! runs, and its answer wakes the caller's task directly, without a hand-off through a
//! connection task and a channel in each direction (hyper's client needs both).
//!
//! Each gateway thread keeps its own idle connections (a `RefCell`, no lock): a request takes
//! the most recently used one, and its response body puts the connection back when the
//! upstream's response has been read to the end. A request that a reused connection could not
//! send (the upstream had closed it while idle) is sent again on a new connection; one that was
//! sent is never repeated.
//!
//! While a request body is being sent, the response is watched for: an upstream that answers
//! early (a 413 before reading a large upload) is answered at once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::{Body, BoxError};

/// Idle connections unused this long are closed rather than reused (upstreams commonly close
/// theirs after 60–75 s; reusing one the upstream is closing costs a resend).
#[cfg(not(test))]
const IDLE_TIMEOUT: Duration = Duration::from_secs(55);
#[cfg(test)]
const IDLE_TIMEOUT: Duration = Duration::from_millis(300);
/// Idle connections kept per origin and thread; more are closed when they come back.
const MAX_IDLE: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response head accepted, and the most header lines in it (hyper's limits).
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// Bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;
/// The longest chunk-size line or trailer section accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Where an integration's requests go: scheme, host and port, fixed when the API is compiled.
/// Shared: each response body keeps a copy to find its connection's way home.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(Arc<Target>);

#[derive(Debug, PartialEq, Eq, Hash)]
struct Target {
    https: bool,
    /// The host as written, without IPv6 brackets: what is resolved and, over TLS, verified.
    host: Box<str>,
    port: u16,
    /// The `Host` header the upstream receives.
    host_header: HeaderValue,
}

impl Origin {
    pub fn new(scheme: &Scheme, authority: &Authority) -> Result<Self, String> {
        let https = if *scheme == Scheme::HTTPS {
            true
        } else if *scheme == Scheme::HTTP {
            false
        } else {
            return Err(format!("{scheme} is not http or https"));
        };
        let host = authority.host();
        // `host[:port]` (user information is refused before this).
        let port = match authority.as_str().get(host.len()..).unwrap_or("") {
            "" => {
                if https {
                    443
                } else {
                    80
                }
            }
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| format!("{p:?} is not a port"))?,
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let host_header = HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?;
        Ok(Self(Arc::new(Target {
            https,
            host: host.into(),
            port,
            host_header,
        })))
    }

    pub fn host_header(&self) -> &HeaderValue {
        &self.0.host_header
    }

    fn unreachable(&self, why: &dyn std::fmt::Display) -> UpstreamError {
        UpstreamError::Connect(format!("{}: {why}", self.0.host))
    }
}

/// Why an upstream request got no response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connecting to the upstream: {0}")]
    Connect(String),
    #[error("talking to the upstream: {0}")]
    Io(#[from] std::io::Error),
    #[error("the upstream's response is not valid HTTP/1: {0}")]
    Protocol(String),
    /// The caller's request body failed (a size limit, or the caller went away).
    #[error("reading the request body: {0}")]
    Body(BoxError),
}

/// The socket of a connection, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One kept-alive connection: its socket and the bytes read from it not yet used.
struct Conn {
    io: Stream,
    buf: ReadBuffer,
}

/// Bytes read from a connection: `data[start..end]` not yet used. Allocated and zeroed once per
/// connection (reading into uninitialised memory would need `unsafe`); body pieces are copied
/// out of it.
struct ReadBuffer {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuffer {
    fn new() -> Self {
        Self {
            data: vec![0; READ_SIZE],
            start: 0,
            end: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn advance(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// The first `n` unused bytes, as a body piece.
    fn take(&mut self, n: usize) -> Bytes {
        let n = n.min(self.len());
        let piece = Bytes::copy_from_slice(&self.data[self.start..self.start + n]);
        self.advance(n);
        piece
    }

    /// As much of the `left` bytes a body (or chunk) still has as is here, and how many are
    /// still to come after it.
    fn take_of(&mut self, left: u64) -> (Bytes, u64) {
        let piece = self.take(usize::try_from(left).unwrap_or(usize::MAX));
        (piece.clone(), left - piece.len() as u64)
    }

    /// Room at the end for a read: the unused bytes moved to the front, or, for a head larger
    /// than the buffer, more space (up to [`MAX_HEAD`]).
    fn room(&mut self) -> &mut [u8] {
        if self.end == self.data.len() {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.data.len() < MAX_HEAD + READ_SIZE {
                self.data.resize(self.data.len() * 2, 0);
            }
        }
        &mut self.data[self.end..]
    }
}

impl Conn {
    fn new(io: Stream) -> Self {
        Self {
            io,
            buf: ReadBuffer::new(),
        }
    }

    /// Reads what the socket has into `buf`: `Ok(0)` at its end (or with no room left, which
    /// the head's size limit prevents).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let mut rb = ReadBuf::new(self.buf.room());
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        self.buf.end += n;
        Poll::Ready(Ok(n))
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// True when an idle connection can take a request: the upstream has neither closed it
    /// nor sent anything unasked (checked without waiting).
    fn is_usable(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.buf.is_empty() && self.poll_fill(&mut cx).is_pending()
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// One thread's idle connections.
struct IdleSet {
    by_origin: HashMap<Origin, Vec<Idle>>,
    swept: Instant,
}

thread_local! {
    static IDLE: RefCell<IdleSet> = RefCell::new(IdleSet {
        by_origin: HashMap::new(),
        swept: Instant::now(),
    });
}

/// How often a thread looks through all its idle connections for expired ones (those of an
/// origin no request goes to any more would otherwise stay open).
#[cfg(not(test))]
const SWEEP_EVERY: Duration = Duration::from_secs(10);
#[cfg(test)]
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// The most recently used idle connection to `origin` that can take a request.
fn take_idle(origin: &Origin) -> Option<Conn> {
    IDLE.with_borrow_mut(|set| {
        let list = set.by_origin.get_mut(origin)?;
        let now = Instant::now();
        while let Some(mut idle) = list.pop() {
            if now.duration_since(idle.since) < IDLE_TIMEOUT && idle.conn.is_usable() {
                return Some(idle.conn);
            }
        }
        None
    })
}

fn put_idle(origin: &Origin, conn: Conn) {
    IDLE.with_borrow_mut(|set| {
        let now = Instant::now();
        if now.duration_since(set.swept) >= SWEEP_EVERY {
            set.swept = now;
            set.by_origin.retain(|_, list| {
                list.retain(|i| now.duration_since(i.since) < IDLE_TIMEOUT);
                !list.is_empty()
            });
        }
        let list = match set.by_origin.get_mut(origin) {
            Some(list) => list,
            None => set.by_origin.entry(origin.clone()).or_default(),
        };
        // The oldest are at the front; let those past their time go.
        let expired = list
            .iter()
            .take_while(|i| now.duration_since(i.since) >= IDLE_TIMEOUT)
            .count();
        list.drain(..expired);
        if list.len() < MAX_IDLE {
            list.push(Idle { conn, since: now });
        }
    });
}

/// Sends `req` (origin-form URI, `Host` set) to `origin`: on an idle connection when there is
/// one, else on a new one. The response's body reads the rest of the response from the
/// connection, and gives it back at its end.
pub async fn send(origin: &Origin, req: Request<Body>) -> Result<Response<Body>, UpstreamError> {
    let (parts, mut body) = req.into_parts();
    let head = request_head(&parts.method, &parts.uri, &parts.headers, &body);
    let mut conn = match take_idle(origin) {
        // A write the upstream refuses (it closed the connection as we took it) sent nothing
        // it could act on: a new connection gets the request.
        Some(mut conn) => match conn.io.write_all(&head.bytes).await {
            Ok(()) => conn,
            Err(_) => new_conn(origin, &head.bytes).await?,
        },
        None => new_conn(origin, &head.bytes).await?,
    };
    let early = if head.has_body {
        send_body(&mut conn, &mut body, head.chunked, &parts.method).await?
    } else {
        None
    };
    drop(body);
    let (response, framing, reusable) = match early {
        // The rest of the request was never sent: the connection goes with this response.
        Some((response, framing, _)) => (response, framing, false),
        None => {
            conn.io.flush().await?;
            read_head(&mut conn, &parts.method).await?
        }
    };
    let (parts, ()) = response.into_parts();
    let mut body = Returning {
        conn: Some(conn),
        origin: origin.clone(),
        framing,
        reusable,
    };
    if body.framing.is_done() {
        body.release();
    }
    Ok(Response::from_parts(parts, body.boxed_unsync()))
}

async fn new_conn(origin: &Origin, head: &[u8]) -> Result<Conn, UpstreamError> {
    // Boxed: connecting (TLS included) is a large future that most requests never run, and
    // this one is moved into the integration's timeout on every request.
    let mut conn = Box::pin(connect(origin)).await?;
    conn.io.write_all(head).await?;
    Ok(conn)
}

struct RequestHead {
    bytes: Vec<u8>,
    has_body: bool,
    chunked: bool,
}

/// The request line and headers, with the body's framing: its length when known, else chunked.
fn request_head(method: &Method, uri: &http::Uri, headers: &HeaderMap, body: &Body) -> RequestHead {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let exact = body.size_hint().exact();
    let empty = body.is_end_stream() || exact == Some(0);
    let mut bytes = Vec::with_capacity(256 + headers.len() * 64);
    bytes.extend_from_slice(method.as_str().as_bytes());
    bytes.push(b' ');
    bytes.extend_from_slice(path.as_bytes());
    bytes.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        // The framing is this side's to state, from the body it sends.
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        bytes.extend_from_slice(name.as_str().as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    let mut chunked = false;
    if empty {
        // As hyper: no length for a body-less GET and the like, a zero for methods that carry
        // one or when the caller stated it.
        if headers.contains_key(header::CONTENT_LENGTH)
            || matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        {
            bytes.extend_from_slice(b"content-length: 0\r\n");
        }
    } else if let Some(n) = exact {
        bytes.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
    } else {
        chunked = true;
        bytes.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    RequestHead {
        bytes,
        has_body: !empty,
        chunked,
    }
}

/// A final response head: the response without its body, how its body is framed, and whether
/// the connection can be used again after it.
type Head = (Response<()>, Framing, bool);

/// Streams the request body to the upstream, in chunks when its length was not known, while
/// watching for the response: an upstream that answers before the body is all sent (a 413, say)
/// is answered at once, and its head returned (the connection is then not reused). Interim 1xx
/// answers (`100 Continue`) are passed over and the body goes on.
async fn send_body(
    conn: &mut Conn,
    body: &mut Body,
    chunked: bool,
    method: &Method,
) -> Result<Option<Head>, UpstreamError> {
    let mut out = Bytes::new();
    let mut ended = false;
    std::future::poll_fn(|cx| {
        loop {
            if let Poll::Ready(read) = conn.poll_fill(cx) {
                let closed = read? == 0;
                if let Some(head) = next_head(&mut conn.buf, method)? {
                    return Poll::Ready(Ok(Some(head)));
                }
                if closed || conn.buf.len() > MAX_HEAD {
                    return Poll::Ready(Err(UpstreamError::Protocol(
                        "the upstream stopped reading the request".into(),
                    )));
                }
                continue;
            }
            if !out.is_empty() {
                let n = ready!(Pin::new(&mut conn.io).poll_write(cx, &out))?;
                if n == 0 {
                    return Poll::Ready(Err(
                        std::io::Error::from(std::io::ErrorKind::WriteZero).into()
                    ));
                }
                out = out.slice(n..);
                continue;
            }
            if ended {
                return Poll::Ready(Ok(None));
            }
            match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                None => {
                    ended = true;
                    if chunked {
                        out = Bytes::from_static(b"0\r\n\r\n");
                    }
                }
                Some(Err(e)) => return Poll::Ready(Err(UpstreamError::Body(e))),
                // Trailers are not passed on.
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        out = if chunked {
                            let mut piece = format!("{:x}\r\n", data.len()).into_bytes();
                            piece.extend_from_slice(&data);
                            piece.extend_from_slice(b"\r\n");
                            piece.into()
                        } else {
                            data
                        };
                    }
                }
            }
        }
    })
    .await
}

/// Reads the response head, passing over interim 1xx responses.
async fn read_head(conn: &mut Conn, method: &Method) -> Result<Head, UpstreamError> {
    loop {
        if let Some(head) = next_head(&mut conn.buf, method)? {
            return Ok(head);
        }
        if conn.buf.len() > MAX_HEAD {
            return Err(UpstreamError::Protocol("response head too large".into()));
        }
        if conn.fill().await? == 0 {
            return Err(UpstreamError::Protocol(
                "the connection closed before a response".into(),
            ));
        }
    }
}

/// The first final response head at the front of `buf` (consumed, with any 1xx before it), or
/// `None` when more bytes are needed.
fn next_head(buf: &mut ReadBuffer, method: &Method) -> Result<Option<Head>, UpstreamError> {
    while let Some(head) = parse_head(buf, method)? {
        // The request asked for no upgrade (its `Upgrade` header stays behind).
        if head.0.status() == StatusCode::SWITCHING_PROTOCOLS {
            return Err(UpstreamError::Protocol(
                "an upgrade nobody asked for".into(),
            ));
        }
        if !head.0.status().is_informational() {
            return Ok(Some(head));
        }
    }
    Ok(None)
}

/// One response head from the front of `buf` (consumed), or `None` when more bytes are needed.
fn parse_head(buf: &mut ReadBuffer, method: &Method) -> Result<Option<Head>, UpstreamError> {
    let bad = |e: &dyn std::fmt::Display| UpstreamError::Protocol(e.to_string());
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut lines);
    let len = match parsed.parse(buf.bytes()).map_err(|e| bad(&e))? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let status = StatusCode::from_u16(parsed.code.unwrap_or(0)).map_err(|e| bad(&e))?;
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| bad(&e))?;
        let value = HeaderValue::from_bytes(h.value).map_err(|e| bad(&e))?;
        headers.append(name, value);
    }
    buf.advance(len);
    let (framing, mut reusable) = framing(&mut headers, status, method)?;
    reusable &= version == Version::HTTP_11 && !has_token(&headers, header::CONNECTION, "close");
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Some((response, framing, reusable)))
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// How the body is delimited (RFC 9112 section 6.3), and whether that leaves the connection
/// usable after it. A length beside `Transfer-Encoding` is dropped: the chunks decide.
fn framing(
    headers: &mut HeaderMap,
    status: StatusCode,
    method: &Method,
) -> Result<(Framing, bool), UpstreamError> {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Done, true));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
        let chunked_last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
        return Ok(if chunked_last {
            (Framing::Chunked(Chunk::Size), true)
        } else {
            (Framing::UntilClose, false)
        });
    }
    let mut length = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        let n = v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| UpstreamError::Protocol("an invalid Content-Length".into()))?;
        if length.is_some_and(|l| l != n) {
            return Err(UpstreamError::Protocol(
                "conflicting Content-Lengths".into(),
            ));
        }
        length = Some(n);
    }
    Ok(match length {
        Some(0) => (Framing::Done, true),
        Some(n) => (Framing::Length(n), true),
        None => (Framing::UntilClose, false),
    })
}

/// Where the response body's reader is.
#[derive(Debug)]
enum Framing {
    /// This many bytes still to come.
    Length(u64),
    Chunked(Chunk),
    /// Everything until the upstream closes the connection.
    UntilClose,
    Done,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk, this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

impl Framing {
    fn is_done(&self) -> bool {
        matches!(self, Framing::Done)
    }
}

/// The upstream's response body, read from its connection; at its end, the connection goes
/// back to the idle set. A body dropped before its end takes the connection with it (the rest
/// of the response is unread).
struct Returning {
    conn: Option<Conn>,
    origin: Origin,
    framing: Framing,
    reusable: bool,
}

fn protocol(why: &str) -> BoxError {
    Box::new(UpstreamError::Protocol(why.into()))
}

impl Returning {
    fn release(&mut self) {
        self.framing = Framing::Done;
        if let Some(conn) = self.conn.take()
            // Bytes past the response's end: the upstream said more than it was asked.
            && self.reusable
            && conn.buf.is_empty()
        {
            put_idle(&self.origin, conn);
        }
    }

    /// The next piece of the body, `None` at its end.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let buf = &mut conn.buf;
            match self.framing {
                Framing::Done => {
                    self.release();
                    return Poll::Ready(None);
                }
                Framing::Length(left) if !buf.is_empty() => {
                    // At the end, `poll_frame` gives the connection back.
                    let (data, rest) = buf.take_of(left);
                    self.framing = if rest == 0 {
                        Framing::Done
                    } else {
                        Framing::Length(rest)
                    };
                    return Poll::Ready(Some(Ok(data)));
                }
                Framing::UntilClose if !buf.is_empty() => {
                    return Poll::Ready(Some(Ok(buf.take(usize::MAX))));
                }
                Framing::Chunked(state) => match chunk_step(buf, state) {
                    Err(why) => {
                        self.conn = None;
                        return Poll::Ready(Some(Err(protocol(why))));
                    }
                    Ok(Step::Next(next, data)) => {
                        self.framing = next;
                        if let Some(data) = data {
                            return Poll::Ready(Some(Ok(data)));
                        }
                        continue;
                    }
                    Ok(Step::More) => {}
                },
                Framing::Length(_) | Framing::UntilClose => {}
            }
            // More bytes are needed.
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if matches!(self.framing, Framing::UntilClose) => {
                    self.framing = Framing::Done;
                    self.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(protocol(
                        "the connection closed before the body's end",
                    ))));
                }
                Ok(_) => {}
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
            }
        }
    }
}

enum Step {
    /// The reader's next state, and data when this step produced some.
    Next(Framing, Option<Bytes>),
    /// More bytes are needed first.
    More,
}

/// One step of reading a chunked body from `buf`.
fn chunk_step(buf: &mut ReadBuffer, state: Chunk) -> Result<Step, &'static str> {
    let line_end = |buf: &ReadBuffer| buf.bytes().windows(2).position(|w| w == b"\r\n");
    Ok(match state {
        Chunk::Size => {
            let Some(end) = line_end(buf) else {
                return if buf.len() > MAX_CHUNK_LINE {
                    Err("a chunk-size line too long")
                } else {
                    Ok(Step::More)
                };
            };
            let line =
                std::str::from_utf8(&buf.bytes()[..end]).map_err(|_| "an invalid chunk size")?;
            let hex = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(hex, 16).map_err(|_| "an invalid chunk size")?;
            buf.advance(end + 2);
            let next = if size == 0 {
                Chunk::Trailers
            } else {
                Chunk::Data(size)
            };
            Step::Next(Framing::Chunked(next), None)
        }
        Chunk::Data(left) => {
            if buf.is_empty() {
                return Ok(Step::More);
            }
            let (data, rest) = buf.take_of(left);
            let next = if rest == 0 {
                Chunk::DataEnd
            } else {
                Chunk::Data(rest)
            };
            Step::Next(Framing::Chunked(next), Some(data))
        }
        Chunk::DataEnd => {
            if buf.len() < 2 {
                return Ok(Step::More);
            }
            if &buf.bytes()[..2] != b"\r\n" {
                return Err("a chunk not followed by CRLF");
            }
            buf.advance(2);
            Step::Next(Framing::Chunked(Chunk::Size), None)
        }
        Chunk::Trailers => {
            let Some(end) = line_end(buf) else {
                return if buf.len() > MAX_CHUNK_LINE {
                    Err("a trailer line too long")
                } else {
                    Ok(Step::More)
                };
            };
            buf.advance(end + 2);
            if end == 0 {
                Step::Next(Framing::Done, None)
            } else {
                Step::Next(Framing::Chunked(Chunk::Trailers), None)
            }
        }
    })
}

impl HttpBody for Returning {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let next = ready!(self.poll_next(cx));
        // The body's end found with its last bytes: give the connection back now, as hyper's
        // server may not poll again after a body whose length it knew.
        if matches!(self.framing, Framing::Done) {
            self.release();
        }
        Poll::Ready(next.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.framing.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// TLS for https upstreams: the system's trusted certificates (`SSL_CERT_FILE` or
/// `SSL_CERT_DIR` name others), TLS 1.2 and 1.3, the host name (or IP address) verified.
static TLS: LazyLock<Option<tokio_rustls::TlsConnector>> = LazyLock::new(|| {
    let loaded = rustls_native_certs::load_native_certs();
    for e in &loaded.errors {
        tracing::warn!(error = %e, "a trusted certificate could not be read");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        tracing::warn!("no trusted certificates found: https upstreams will fail (502)");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => {
            let mut config = b.with_root_certificates(roots).with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        }
        Err(e) => {
            tracing::error!(error = %e, "no TLS for upstreams: upstream requests will fail (502)");
            None
        }
    }
});

async fn tcp(origin: &Origin) -> Result<TcpStream, UpstreamError> {
    let fail = |e: &dyn std::fmt::Display| origin.unreachable(e);
    let addrs = tokio::net::lookup_host((&*origin.0.host, origin.0.port))
        .await
        .map_err(|e| fail(&e))?;
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                s.set_nodelay(true).map_err(|e| fail(&e))?;
                return Ok(s);
            }
            Ok(Err(e)) => last = Some(fail(&e)),
            Err(_) => last = Some(fail(&"timed out")),
        }
    }
    Err(last.unwrap_or_else(|| fail(&"no address")))
}

async fn connect(origin: &Origin) -> Result<Conn, UpstreamError> {
    let stream = tcp(origin).await?;
    if !origin.0.https {
        return Ok(Conn::new(Stream::Plain(stream)));
    }
    let fail = |e: &dyn std::fmt::Display| origin.unreachable(e);
    let tls = TLS.as_ref().ok_or_else(|| fail(&"no TLS configuration"))?;
    let name = ServerName::try_from(origin.0.host.to_string()).map_err(|e| fail(&e))?;
    let stream = tls.connect(name, stream).await.map_err(|e| fail(&e))?;
    Ok(Conn::new(Stream::Tls(Box::new(stream))))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::Notify;

    use super::*;

    struct Upstream {
        origin: Origin,
        accepted: Arc<AtomicUsize>,
        /// Connections this side saw closed by the gateway.
        ended: Arc<AtomicUsize>,
        /// Tells a connection held by `/hold` to close.
        close_now: Arc<Notify>,
        /// Told when it has.
        closed: Arc<Notify>,
    }

    /// A raw HTTP/1.1 upstream counting its connections. `/ok` answers "ok"; `/empty` 204;
    /// `/close` answers with `Connection: close`; `/big` a 1 MB body; `/hold` answers, then
    /// closes the connection without saying so when told (as an upstream whose idle timeout
    /// struck).
    async fn upstream() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicUsize::new(0));
        let (close_now, closed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (count, ends) = (accepted.clone(), ended.clone());
        let (close_now2, closed2) = (close_now.clone(), closed.clone());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let (close_now, closed) = (close_now2.clone(), closed2.clone());
                let ends = ends.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let mut chunk = [0u8; 1024];
                        let n = s.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            ends.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let path = head.split(' ').nth(1).unwrap_or("").to_string();
                        let res: Vec<u8> = match path.as_str() {
                            "/empty" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
                            // A chunk extension, chunks split anywhere, a trailer.
                            "/chunked" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                                5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: 1\r\n\r\n"
                                .to_vec(),
                            // No length: the body ends when the upstream closes.
                            "/until-close" => b"HTTP/1.1 200 OK\r\n\r\nall of it".to_vec(),
                            // A HEAD answer states the length a GET would have, and has no body.
                            "/head" => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n".to_vec(),
                            "/continue" => b"HTTP/1.1 100 Continue\r\n\r\n\
                                HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                                .to_vec(),
                            "/upgrade" => b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec(),
                            "/conflict" => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\
                                content-length: 3\r\n\r\nok"
                                .to_vec(),
                            "/close" => b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok".to_vec(),
                            "/big" => {
                                let mut r = b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n".to_vec();
                                r.resize(r.len() + 1_000_000, b'x');
                                r
                            }
                            _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
                        };
                        if s.write_all(&res).await.is_err() {
                            return;
                        }
                        if path == "/close" || path == "/until-close" {
                            return;
                        }
                        if path == "/hold" {
                            close_now.notified().await;
                            drop(s);
                            closed.notify_one();
                            return;
                        }
                    }
                });
            }
        });
        let authority: Authority = format!("127.0.0.1:{port}").parse().unwrap();
        Upstream {
            origin: Origin::new(&Scheme::HTTP, &authority).unwrap(),
            accepted,
            ended,
            close_now,
            closed,
        }
    }

    fn get(origin: &Origin, path: &str) -> Request<Body> {
        let mut req = Request::new(crate::empty());
        *req.uri_mut() = path.parse().unwrap();
        req.headers_mut()
            .insert(http::header::HOST, origin.host_header().clone());
        req
    }

    async fn fetch(origin: &Origin, path: &str) -> (u16, Bytes) {
        let res = send(origin, get(origin, path)).await.unwrap();
        let status = res.status().as_u16();
        (status, res.into_body().collect().await.unwrap().to_bytes())
    }

    #[tokio::test]
    async fn responses_read_to_the_end_give_their_connection_back() {
        let Upstream {
            origin, accepted, ..
        } = upstream().await;
        for _ in 0..5 {
            assert_eq!(fetch(&origin, "/ok").await, (200, Bytes::from("ok")));
        }
        // A response without a body is never polled (hyper's server looks at `is_end_stream`
        // first); its connection comes back all the same.
        for _ in 0..3 {
            let res = send(&origin, get(&origin, "/empty")).await.unwrap();
            assert_eq!(res.status(), 204);
            assert!(res.body().is_end_stream());
        }
        assert_eq!(fetch(&origin, "/big").await.1.len(), 1_000_000);
        assert_eq!(fetch(&origin, "/ok").await.0, 200);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn every_way_a_response_body_can_end_is_read_to_its_end() {
        let Upstream {
            origin,
            accepted,
            ended,
            ..
        } = upstream().await;
        // Chunked, with an extension and a trailer: the data alone, and the connection reused.
        assert_eq!(
            fetch(&origin, "/chunked").await,
            (200, Bytes::from("hello world"))
        );
        assert_eq!(
            fetch(&origin, "/chunked").await.1,
            Bytes::from("hello world")
        );
        // An interim 100 is passed over.
        assert_eq!(fetch(&origin, "/continue").await, (200, Bytes::from("ok")));
        // HEAD: the stated length, no body waited for.
        let mut head = get(&origin, "/head");
        *head.method_mut() = Method::HEAD;
        let res = send(&origin, head).await.unwrap();
        assert_eq!(res.headers()[header::CONTENT_LENGTH], "5");
        assert!(res.body().is_end_stream());
        assert_eq!(fetch(&origin, "/ok").await.0, 200);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // Until the upstream closes: the body is what came before, and the connection is not
        // kept.
        assert_eq!(
            fetch(&origin, "/until-close").await,
            (200, Bytes::from("all of it"))
        );
        assert_eq!(fetch(&origin, "/ok").await.0, 200);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(ended.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_response_that_is_not_valid_http_is_an_error() {
        let Upstream {
            origin, accepted, ..
        } = upstream().await;
        let err = send(&origin, get(&origin, "/conflict")).await.unwrap_err();
        assert!(matches!(err, UpstreamError::Protocol(_)), "{err}");
        // Its connection is not reused.
        assert_eq!(fetch(&origin, "/ok").await.0, 200);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // An upgrade that was not asked for is refused, not waited past.
        let err = send(&origin, get(&origin, "/upgrade")).await.unwrap_err();
        assert!(matches!(err, UpstreamError::Protocol(_)), "{err}");
    }

    /// Accepts one connection, reads one request whose body ends as `end` says, and answers
    /// with the request's raw bytes.
    async fn recorder(end: fn(&[u8]) -> bool) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            while !end(&got) {
                let mut chunk = [0u8; 1024];
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&chunk[..n]);
            }
            let mut res =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", got.len()).into_bytes();
            res.extend_from_slice(&got);
            s.write_all(&res).await.unwrap();
        });
        Origin::new(&Scheme::HTTP, &authority).unwrap()
    }

    fn post(origin: &Origin, body: Body) -> Request<Body> {
        let mut req = get(origin, "/in");
        *req.method_mut() = Method::POST;
        *req.body_mut() = body;
        req
    }

    async fn raw(origin: &Origin, req: Request<Body>) -> String {
        let res = send(origin, req).await.unwrap();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn request_bodies_go_with_their_length_or_in_chunks() {
        // A known length is stated; a caller's own Content-Length or Transfer-Encoding is not
        // passed on beside it.
        let origin = recorder(|b| b.ends_with(b"hello")).await;
        let mut req = post(
            &origin,
            http_body_util::Full::new(Bytes::from("hello"))
                .map_err(|e| match e {})
                .boxed_unsync(),
        );
        req.headers_mut().insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        let got = raw(&origin, req).await;
        assert!(got.starts_with("POST /in HTTP/1.1\r\n"), "{got}");
        assert!(got.contains("content-length: 5\r\n"), "{got}");
        assert!(!got.contains("transfer-encoding"), "{got}");
        assert!(got.ends_with("\r\n\r\nhello"), "{got}");
        // An unknown length goes in chunks.
        let origin = recorder(|b| b.ends_with(b"0\r\n\r\n")).await;
        let body = pieces(vec![Ok(Bytes::from("ab")), Ok(Bytes::from("cde"))]);
        let got = raw(&origin, post(&origin, body)).await;
        assert!(got.contains("transfer-encoding: chunked\r\n"), "{got}");
        assert!(
            got.ends_with("\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"),
            "{got}"
        );
        // An empty POST states its zero length; a GET states none.
        let origin = recorder(|b| b.ends_with(b"\r\n\r\n")).await;
        let got = raw(&origin, post(&origin, crate::empty())).await;
        assert!(got.contains("content-length: 0\r\n"), "{got}");
        let origin = recorder(|b| b.ends_with(b"\r\n\r\n")).await;
        let got = raw(&origin, get(&origin, "/in")).await;
        assert!(!got.contains("content-length"), "{got}");
    }

    /// A body fed piece by piece through a channel, its length unknown; it ends when the sender
    /// is dropped.
    struct Channel(tokio::sync::mpsc::Receiver<Result<Bytes, BoxError>>);

    impl HttpBody for Channel {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0.poll_recv(cx).map(|p| p.map(|r| r.map(Frame::data)))
        }
    }

    /// A body of these pieces, all there at once, its length unknown.
    fn pieces(pieces: Vec<Result<Bytes, BoxError>>) -> Body {
        let (tx, rx) = tokio::sync::mpsc::channel(pieces.len().max(1));
        for p in pieces {
            tx.try_send(p).unwrap();
        }
        Channel(rx).boxed_unsync()
    }

    /// Accepts one connection, reads a request head, answers with `answer`, then reads the rest
    /// (and keeps the connection) until told to stop.
    async fn answering(answer: &'static [u8]) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut chunk = [0u8; 1024];
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&chunk[..n]);
            }
            s.write_all(answer).await.unwrap();
            // Not reading any further, and not closing.
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        Origin::new(&Scheme::HTTP, &authority).unwrap()
    }

    #[tokio::test]
    async fn an_answer_before_the_body_is_sent_is_returned_at_once() {
        let origin =
            answering(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 3\r\n\r\nbig").await;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(Ok(Bytes::from("the start of a long upload")))
            .await
            .unwrap();
        // The rest never comes: the sender stays alive.
        let req = post(&origin, Channel(rx).boxed_unsync());
        let res = tokio::time::timeout(Duration::from_secs(5), send(&origin, req))
            .await
            .expect("the early answer was not returned")
            .unwrap();
        assert_eq!(res.status(), 413);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, Bytes::from("big"));
        drop(tx);
    }

    #[tokio::test]
    async fn after_100_continue_the_body_goes_on() {
        // The upstream says 100 on the head alone, then waits for the whole body.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut said_continue = false;
            while !got.ends_with(b"0\r\n\r\n") {
                let mut chunk = [0u8; 1024];
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&chunk[..n]);
                if !said_continue && got.windows(4).any(|w| w == b"\r\n\r\n") {
                    s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
                    said_continue = true;
                }
            }
            let text = String::from_utf8_lossy(&got).to_string();
            let ok = text.ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
            let res = if ok {
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            } else {
                "HTTP/1.1 400 Bad\r\ncontent-length: 0\r\n\r\n"
            };
            s.write_all(res.as_bytes()).await.unwrap();
        });
        let origin = Origin::new(&Scheme::HTTP, &authority).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let mut req = post(&origin, Channel(rx).boxed_unsync());
        req.headers_mut()
            .insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        let sent = tokio::spawn(async move {
            let res = send(&origin, req).await.unwrap();
            let status = res.status();
            (status, res.into_body().collect().await.unwrap().to_bytes())
        });
        // The body comes after the upstream's 100.
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send(Ok(Bytes::from("hello"))).await.unwrap();
        drop(tx);
        assert_eq!(sent.await.unwrap(), (StatusCode::OK, Bytes::from("ok")));
    }

    #[tokio::test]
    async fn a_failing_request_body_is_a_body_error() {
        let origin = recorder(|_| false).await;
        let body = pieces(vec![
            Ok(Bytes::from("part")),
            Err("the caller went away".into()),
        ]);
        let err = send(&origin, post(&origin, body)).await.unwrap_err();
        assert!(matches!(err, UpstreamError::Body(_)), "{err}");
    }

    #[tokio::test]
    async fn a_body_dropped_unread_takes_its_connection_with_it() {
        let Upstream {
            origin, accepted, ..
        } = upstream().await;
        let res = send(&origin, get(&origin, "/big")).await.unwrap();
        drop(res);
        assert_eq!(fetch(&origin, "/ok").await.0, 200);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn connections_the_upstream_closes_are_replaced_without_failing_a_request() {
        let up = upstream().await;
        let origin = &up.origin;
        assert_eq!(fetch(origin, "/close").await.0, 200);
        assert_eq!(fetch(origin, "/ok").await.0, 200);
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
        // Closed while idle, unannounced, and the request sent before this side has noticed:
        // the connection cannot take it, and a new one does.
        assert_eq!(fetch(origin, "/hold").await.0, 200);
        up.close_now.notify_one();
        up.closed.notified().await;
        assert_eq!(fetch(origin, "/ok").await, (200, Bytes::from("ok")));
        assert_eq!(up.accepted.load(Ordering::SeqCst), 3);
        // Noticed first: the closed connection is passed over.
        assert_eq!(fetch(origin, "/hold").await.0, 200);
        up.close_now.notify_one();
        up.closed.notified().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(fetch(origin, "/ok").await.0, 200);
        assert_eq!(up.accepted.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn idle_connections_past_their_time_are_closed_not_reused() {
        let (a, b) = (upstream().await, upstream().await);
        assert_eq!(fetch(&a.origin, "/ok").await.0, 200);
        tokio::time::sleep(IDLE_TIMEOUT + Duration::from_millis(50)).await;
        assert_eq!(fetch(&a.origin, "/ok").await.0, 200);
        assert_eq!(a.accepted.load(Ordering::SeqCst), 2);
        // An origin no request goes to any more: a request elsewhere sweeps its connection.
        tokio::time::sleep(IDLE_TIMEOUT + Duration::from_millis(50)).await;
        assert_eq!(fetch(&b.origin, "/ok").await.0, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(a.ended.load(Ordering::SeqCst), 2);
        assert_eq!(b.ended.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error_not_a_hang() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority: Authority = listener.local_addr().unwrap().to_string().parse().unwrap();
        drop(listener);
        let origin = Origin::new(&Scheme::HTTP, &authority).unwrap();
        let err = send(&origin, get(&origin, "/")).await.unwrap_err();
        assert!(matches!(err, UpstreamError::Connect(_)), "{err}");
    }

    #[test]
    fn origins_take_default_ports_and_refuse_bad_ones() {
        let o = |s: &str, a: &str| {
            let scheme: Scheme = s.parse().unwrap();
            Origin::new(&scheme, &a.parse().unwrap())
                .map(|o| (o.0.https, o.0.host.to_string(), o.0.port))
        };
        assert_eq!(o("http", "up"), Ok((false, "up".into(), 80)));
        assert_eq!(o("https", "up"), Ok((true, "up".into(), 443)));
        assert_eq!(o("http", "[::1]:8080"), Ok((false, "::1".into(), 8080)));
        assert!(o("http", "up:").is_err());
        assert!(o("http", "up:70000").is_err());
    }
}
