//! Each API's own address served thread-per-core: one SO_REUSEPORT socket of the address per
//! core, each served by a current-thread runtime on a thread of its own. A request stays on one
//! thread from accept to answer, with that thread's upstream connections, and no thread wakes
//! another to steal its work (nginx's worker model). The main listener stays on the
//! work-stealing runtime: its requests differ in cost by a hundredfold (an RS256 signature
//! against a cached read), and a thread with more of the costly ones would leave a core idle.

use std::net::SocketAddr;

use axum::Router;
use tokio::sync::watch;

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

/// Serves `app` on each of `sockets` from a thread of its own (named `{name}-{i}`) until
/// `stopped` turns true; then each thread lets its requests in flight finish and ends.
pub fn serve_per_core(
    name: &str,
    sockets: Vec<std::net::TcpListener>,
    app: Router,
    stopped: watch::Receiver<bool>,
) -> std::io::Result<()> {
    for (i, socket) in sockets.into_iter().enumerate() {
        let (app, stopped) = (app.clone(), stopped.clone());
        let thread = format!("{name}-{i}");
        std::thread::Builder::new()
            .name(thread.clone())
            .spawn(move || serve_one(&thread, socket, app, stopped))?;
    }
    Ok(())
}

fn serve_one(
    thread: &str,
    socket: std::net::TcpListener,
    app: Router,
    mut stopped: watch::Receiver<bool>,
) {
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
        let listener = match tokio::net::TcpListener::from_std(socket) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(thread, error = %e, "listener failed");
                return;
            }
        };
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
        if let Err(e) = served {
            tracing::error!(thread, error = %e, "listener failed");
        }
    });
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
}
