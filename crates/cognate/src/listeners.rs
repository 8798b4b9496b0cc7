//! Each API's own address served thread-per-core: one SO_REUSEPORT socket of the address per
//! core, each served by a current-thread runtime on a thread of its own. A request stays on one
//! thread from accept to answer, with that thread's upstream connections, and no thread wakes
//! another to steal its work (nginx's worker model). The main listener stays on the
//! work-stealing runtime: its requests differ in cost by a hundredfold (an RS256 signature
//! against a cached read), and a thread with more of the costly ones would leave a core idle;
//! its socket ([`MainListener`]) is handed to `axum::serve`. On both, connections that stall
//! are closed ([`idle`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use gateway::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::watch;

pub(crate) mod idle;

/// Connections waiting to be accepted, per socket: a burst of new callers (thousands in a
/// second) must not overflow the queue, or the kernel drops their SYNs and they retry after a
/// second or more.
const BACKLOG: u32 = 8192;

/// One listening socket per core on `addr` (the kernel's port for all, when `addr` asks for 0),
/// all bound before anything starts, so a taken address fails here and not in a thread. An
/// address another socket holds is refused even when that one shares its port (SO_REUSEPORT):
/// a plain socket is bound first, which no holder of the address allows.
pub fn bind_per_core(addr: SocketAddr) -> std::io::Result<Vec<std::net::TcpListener>> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let actual = std::net::TcpListener::bind(addr)?.local_addr()?;
    (0..cores)
        .map(|_| bind_shared(actual).and_then(|l| l.into_std()))
        .collect()
}

fn bind_shared(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    // Each thread listens on a socket of its own on the address and the kernel spreads new
    // connections over them (one shared socket let the first thread awake take a burst).
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves each of `sockets` from a thread of its own (named `{name}-{i}`), answering every
/// request with `handler(request, caller)`, until `stopped` turns true; then each thread lets
/// its requests in flight finish and ends. Returns the threads, to wait for that end.
///
/// HTTP/1 straight on hyper, without a router: these addresses have one handler (an API's
/// own), and axum's connection builder (which also sniffs for HTTP/2 and allows upgrades) and
/// router layers were a few per cent of the gateway's CPU per request.
pub fn serve_per_core<H, F>(
    name: &str,
    sockets: Vec<std::net::TcpListener>,
    handler: H,
    stopped: watch::Receiver<bool>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>>
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let mut threads = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let (handler, stopped) = (handler.clone(), stopped.clone());
        let thread = format!("{name}-{i}");
        threads.push(
            std::thread::Builder::new()
                .name(thread.clone())
                .spawn(move || serve_one(&thread, socket, handler, stopped))?,
        );
    }
    Ok(threads)
}

fn serve_one<H, F>(
    thread: &str,
    socket: std::net::TcpListener,
    handler: H,
    stopped: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(thread, error = %e, "cannot start a listener thread");
            return;
        }
    };
    runtime.block_on(async move {
        let registry = Arc::new(idle::Registry::default());
        tokio::spawn(registry.clone().sweep());
        match tokio::net::TcpListener::from_std(socket) {
            Ok(listener) => accept_until_stopped(listener, &registry, handler, stopped).await,
            Err(e) => tracing::error!(thread, error = %e, "listener failed"),
        }
    });
}

async fn accept_until_stopped<H, F>(
    listener: tokio::net::TcpListener,
    registry: &idle::Registry,
    handler: H,
    mut stopped: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.wait_for(|s| *s) => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let (io, watch) = registry.watch(stream);
        let io = TokioIo::new(io);
        let service = service_fn(move |req| {
            let handling = watch.handling();
            let answer = AssertUnwindSafe(handler(req, peer)).catch_unwind();
            async move {
                let res = answer.await.unwrap_or_else(|_| panicked());
                drop(handling);
                Ok::<_, Infallible>(res)
            }
        });
        let conn = http1::Builder::new().serve_connection(io, service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A caller that goes away mid-request is no error of ours.
            let _ = conn.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The main listener's socket for `axum::serve`: its connections under a sweep that closes
/// stalled ones, as on the APIs' own addresses ([`idle`]).
pub struct MainListener {
    listener: tokio::net::TcpListener,
    registry: Arc<idle::Registry>,
}

impl MainListener {
    /// Starts the sweep on the current runtime.
    pub fn new(listener: tokio::net::TcpListener) -> Self {
        let registry = Arc::new(idle::Registry::default());
        tokio::spawn(registry.clone().sweep());
        Self { listener, registry }
    }
}

impl axum::serve::Listener for MainListener {
    type Io = idle::Watched<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => return (self.registry.watch(stream).0, peer),
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// The caller on the main listener (`ConnectInfo<Peer>`): its address, and its connection's
/// watch for [`hold_while_handled`].
#[derive(Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    watch: Arc<idle::Watch>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, MainListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, MainListener>) -> Self {
        Peer {
            addr: *stream.remote_addr(),
            watch: stream.io().watch().clone(),
        }
    }
}

/// Middleware of the main listener: the caller's connection counts as busy while its request
/// is handled, so the stalled-connection sweep does not close it under a slow request (a
/// gateway route waiting on its upstream).
pub async fn hold_while_handled(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let _busy = req
        .extensions()
        .get::<axum::extract::ConnectInfo<Peer>>()
        .map(|c| c.0.watch.handling());
    next.run(req).await
}

/// The answer to a request whose handling panicked: no panic reaches a caller.
fn panicked() -> Response<Body> {
    tracing::error!("a gateway request panicked");
    gateway::Refusal::IntegrationFailure.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Binding registers the sockets with the runtime for a moment, as in the server.
    #[tokio::test]
    async fn a_held_address_is_refused_even_to_a_shared_port() {
        let first = bind_per_core("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first[0].local_addr().unwrap();
        assert!(first.iter().all(|s| s.local_addr().unwrap() == addr));
        // A second server on the same address fails like a plain bind, instead of sharing it.
        let err = bind_per_core(addr).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        drop(first);
        assert!(bind_per_core(addr).is_ok());
    }

    #[tokio::test]
    async fn a_panicking_request_gets_a_502_and_the_listener_carries_on() {
        let sockets = bind_per_core("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = sockets[0].local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let handler = |req: Request<Incoming>, peer: SocketAddr| async move {
            assert!(req.uri().path() != "/panic", "a handler bug");
            Response::new(gateway::full(peer.ip().to_string().into()))
        };
        serve_per_core("test-listener", sockets, handler, stopped).unwrap();
        let client = reqwest::Client::new();
        let url = |path: &str| format!("http://{addr}{path}");
        let res = client.get(url("/panic")).send().await.unwrap();
        assert_eq!(res.status(), 502);
        assert_eq!(
            res.text().await.unwrap(),
            r#"{"message":"Internal server error"}"#
        );
        // The same listeners (and the same kept-alive connection) answer the next request,
        // and the handler is told the caller's address.
        let res = client.get(url("/fine")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "127.0.0.1");
        // Stopped: the address stops answering.
        stop.send(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while reqwest::Client::new()
            .get(url("/fine"))
            .send()
            .await
            .is_ok()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "still serving after stop"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn stalled_connections_are_closed_but_not_while_their_request_is_handled() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sockets = bind_per_core("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = sockets[0].local_addr().unwrap();
        let (_stop, stopped) = watch::channel(false);
        // A handler slower than the stall limit (an upstream taking its time).
        let slow_answer = idle::STALLED_AFTER + Duration::from_secs(2);
        let handler = move |req: Request<Incoming>, _peer: SocketAddr| async move {
            if req.uri().path() == "/slow" {
                tokio::time::sleep(slow_answer).await;
            }
            Response::new(gateway::full("ok".into()))
        };
        serve_per_core("test-stall", sockets, handler, stopped).unwrap();
        let started = std::time::Instant::now();
        let slow_request = tokio::spawn(reqwest::get(format!("http://{addr}/slow")));
        // A caller that never finishes its request head.
        let mut trickle = tokio::net::TcpStream::connect(addr).await.unwrap();
        trickle
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // Still open well before the limit, while complete requests are answered.
        tokio::time::sleep(idle::STALLED_AFTER / 2).await;
        let mut probe = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(10), trickle.read(&mut probe)).await;
        assert!(early.is_err(), "closed before its time: {early:?}");
        let res = reqwest::get(format!("http://{addr}/")).await.unwrap();
        assert_eq!(res.text().await.unwrap(), "ok");
        // Then closed, with nothing sent, a second or so past the limit.
        closed_as_stalled(trickle, started).await;
        answered_late(slow_request, "ok", started + slow_answer).await;
    }

    #[tokio::test]
    async fn the_main_listener_closes_stalled_connections_not_slow_requests_and_tells_the_caller_address()
     {
        use axum::extract::ConnectInfo;
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slow_answer = idle::STALLED_AFTER + Duration::from_secs(2);
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::get(|ConnectInfo(peer): ConnectInfo<Peer>| async move {
                    peer.addr.ip().to_string()
                }),
            )
            .route(
                "/slow",
                axum::routing::get(move || async move {
                    tokio::time::sleep(slow_answer).await;
                    "slow"
                }),
            )
            .layer(axum::middleware::from_fn(hold_while_handled));
        tokio::spawn(async move {
            axum::serve(
                MainListener::new(listener),
                app.into_make_service_with_connect_info::<Peer>(),
            )
            .await
        });
        let started = std::time::Instant::now();
        let slow_request = tokio::spawn(reqwest::get(format!("http://{addr}/slow")));
        let mut trickle = tokio::net::TcpStream::connect(addr).await.unwrap();
        trickle.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let res = reqwest::get(format!("http://{addr}/")).await.unwrap();
        assert_eq!(res.text().await.unwrap(), "127.0.0.1");
        closed_as_stalled(trickle, started).await;
        answered_late(slow_request, "slow", started + slow_answer).await;
    }

    /// `trickle` is closed with nothing sent, no sooner than the stall limit after `started`
    /// and a sweep or two after it.
    async fn closed_as_stalled(mut trickle: tokio::net::TcpStream, started: std::time::Instant) {
        use tokio::io::AsyncReadExt;
        let mut rest = Vec::new();
        let n = tokio::time::timeout(
            idle::STALLED_AFTER + Duration::from_secs(3),
            trickle.read_to_end(&mut rest),
        )
        .await
        .expect("the stalled connection was not closed")
        .unwrap_or(0);
        assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&rest));
        assert!(
            started.elapsed() >= idle::STALLED_AFTER,
            "{:?}",
            started.elapsed()
        );
    }

    /// A request slower than the stall limit is answered all the same.
    async fn answered_late(
        request: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
        body: &str,
        not_before: std::time::Instant,
    ) {
        let res = request.await.unwrap().unwrap();
        assert_eq!(res.text().await.unwrap(), body);
        assert!(std::time::Instant::now() >= not_before);
    }
}
