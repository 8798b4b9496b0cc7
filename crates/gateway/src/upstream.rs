//! Kept-alive HTTP/1 connections to upstreams, one idle set per thread and origin.
//!
//! Each gateway thread keeps its own idle connections (a `RefCell`, no lock): a request takes
//! the most recently used one that is ready, and its response body puts the connection back
//! when the upstream's response has been read to the end. A connection's task runs on the
//! thread that opened it, so a request served on a gateway thread never hands off to another.
//! A request that a reused connection could not send (the upstream had closed it while idle)
//! is sent again on a new connection; one that was sent is never repeated.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
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
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

struct Idle {
    conn: SendRequest<Body>,
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

/// The most recently used idle connection to `origin` that is ready for a request.
fn take_idle(origin: &Origin) -> Option<SendRequest<Body>> {
    IDLE.with_borrow_mut(|set| {
        let list = set.by_origin.get_mut(origin)?;
        let now = Instant::now();
        while let Some(idle) = list.pop() {
            if idle.conn.is_ready() && now.duration_since(idle.since) < IDLE_TIMEOUT {
                return Some(idle.conn);
            }
        }
        None
    })
}

fn put_idle(origin: &Origin, conn: SendRequest<Body>) {
    IDLE.with_borrow_mut(|set| {
        let now = Instant::now();
        if now.duration_since(set.swept) >= SWEEP_EVERY {
            set.swept = now;
            set.by_origin.retain(|_, list| {
                list.retain(|i| !i.conn.is_closed() && now.duration_since(i.since) < IDLE_TIMEOUT);
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

/// A connection whose response has been read: back to the idle set once it can take another
/// request (at once, almost always; otherwise when its task has caught up).
fn give_back(origin: Origin, mut conn: SendRequest<Body>) {
    if conn.is_ready() {
        put_idle(&origin, conn);
    } else if !conn.is_closed()
        // Outside a runtime (a body read by other code) the connection simply closes.
        && let Ok(runtime) = tokio::runtime::Handle::try_current()
    {
        runtime.spawn(async move {
            if conn.ready().await.is_ok() {
                put_idle(&origin, conn);
            }
        });
    }
}

/// Sends `req` (origin-form URI, `Host` set) to `origin`: on an idle connection when there is
/// one, else on a new one.
pub async fn send(origin: &Origin, req: Request<Body>) -> Result<Response<Body>, UpstreamError> {
    let mut req = req;
    if let Some(mut conn) = take_idle(origin) {
        match conn.try_send_request(req).await {
            Ok(res) => return Ok(returning(origin, conn, res)),
            Err(mut e) => match e.take_message() {
                // Never written: the connection had closed. A new one gets it.
                Some(unsent) => req = unsent,
                None => return Err(e.into_error().into()),
            },
        }
    }
    // Boxed: connecting (TLS included) is a large future that most requests never run, and
    // this one is moved into the integration's timeout on every request.
    let mut conn = Box::pin(connect(origin)).await?;
    let res = conn.send_request(req).await?;
    Ok(returning(origin, conn, res))
}

fn returning(origin: &Origin, conn: SendRequest<Body>, res: Response<Incoming>) -> Response<Body> {
    let (parts, body) = res.into_parts();
    let mut body = Returning {
        body,
        home: Some((origin.clone(), conn)),
    };
    // A response without a body (HEAD, 204, 304, `Content-Length: 0`) may never be polled.
    if body.body.is_end_stream() {
        body.release();
    }
    Response::from_parts(parts, http_body_util::BodyExt::boxed_unsync(body))
}

/// The upstream's response body; at its end, the connection goes back to the idle set. A body
/// dropped before its end takes the connection with it (the rest of the response is unread).
struct Returning {
    body: Incoming,
    home: Option<(Origin, SendRequest<Body>)>,
}

impl Returning {
    fn release(&mut self) {
        if let Some((origin, conn)) = self.home.take() {
            give_back(origin, conn);
        }
    }
}

impl HttpBody for Returning {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &frame {
            None => self.release(),
            Some(Ok(_)) if self.body.is_end_stream() => self.release(),
            Some(Ok(_)) => {}
            Some(Err(_)) => self.home = None,
        }
        Poll::Ready(frame.map(|f| f.map_err(|e| -> BoxError { Box::new(e) })))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
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

async fn connect(origin: &Origin) -> Result<SendRequest<Body>, UpstreamError> {
    let stream = tcp(origin).await?;
    if !origin.0.https {
        return handshake(stream).await;
    }
    let fail = |e: &dyn std::fmt::Display| origin.unreachable(e);
    let tls = TLS.as_ref().ok_or_else(|| fail(&"no TLS configuration"))?;
    let name = ServerName::try_from(origin.0.host.to_string()).map_err(|e| fail(&e))?;
    let stream = tls.connect(name, stream).await.map_err(|e| fail(&e))?;
    handshake(stream).await
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Body>, UpstreamError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (conn, driver) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = driver.await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
    Ok(conn)
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
                        if path == "/close" {
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
