//! The gateway benchmark's parts: a pool with a signed-in user (its access token), a minimal
//! upstream, and a fixed-rate (open-loop) load generator whose latencies count from each
//! request's planned start, so a stall shows up in the percentiles instead of hiding them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;

use crate::{Target, create_pool};

/// Creates a pool, a client and a user, signs in, and prints the ids and tokens as JSON.
pub async fn setup(endpoint: &str) -> Result<()> {
    let t = Target::new(endpoint)?;
    let (pool, client) = create_pool(
        &t,
        "gateway-bench",
        &["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )
    .await?;
    t.call(
        "AdminCreateUser",
        &json!({"UserPoolId": pool, "Username": "caller", "MessageAction": "SUPPRESS"}),
    )
    .await?;
    t.call(
        "AdminSetUserPassword",
        &json!({"UserPoolId": pool, "Username": "caller", "Password": "Bench-Passw0rd!", "Permanent": true}),
    )
    .await?;
    let out = t
        .call(
            "AdminInitiateAuth",
            &json!({
                "UserPoolId": pool, "ClientId": client, "AuthFlow": "ADMIN_USER_PASSWORD_AUTH",
                "AuthParameters": {"USERNAME": "caller", "PASSWORD": "Bench-Passw0rd!"},
            }),
        )
        .await?;
    let result = &out["AuthenticationResult"];
    println!(
        "{}",
        json!({
            "pool_id": pool,
            "client_id": client,
            "access_token": result["AccessToken"].as_str().context("no access token")?,
            "id_token": result["IdToken"].as_str().context("no ID token")?,
        })
    );
    Ok(())
}

/// A minimal upstream on one thread: `200 ok` to every request.
pub fn upstream(listen: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // A long accept queue: the benchmark's bursts of new connections must not be dropped.
        let addr: std::net::SocketAddr = listen.parse()?;
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(8192)?;
        let app = axum::Router::new().fallback(|| async { "ok" });
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// `rate` requests/s to `url` for `seconds` over `connections` kept-alive connections (wrk2's
/// model): connection `i` sends requests `i`, `i + connections`, … each at its planned time, or
/// as soon as its previous answer arrived if that was late; latency counts from the planned
/// time, so a stall is charged to every request it delayed. Prints latency percentiles.
///
/// Also prints them counted without the generator's own lateness (`sent_*`): tokio's timer
/// fires on 1 ms ticks, so a request planned between ticks goes out up to 1 ms late, and wrk2's
/// count charges that to the server (a direct GET on loopback showed a p50 of 0.8 ms at
/// 1,000/s). There a request whose connection was idle at its planned time counts from when it
/// was sent; one whose connection was still busy still counts from its planned time, so a
/// server's stall is charged as before.
pub async fn fixed_rate(
    url: &str,
    headers: &[(String, String)],
    rate: u64,
    seconds: f64,
    connections: usize,
) -> Result<()> {
    let uri: http::Uri = url.parse()?;
    let authority = uri.authority().context("the url has no host")?.clone();
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let total = (rate as f64 * seconds) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let connections = connections.max(1);
    let headers = Arc::new(headers.to_vec());
    // Every connection is open before the clock starts.
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
        stream.set_nodelay(true)?;
        let (send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        senders.push(send);
    }
    let started = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(connections);
    for (i, mut send) in senders.into_iter().enumerate() {
        let (headers, path, host) = (headers.clone(), path.clone(), authority.to_string());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut sent_lat) = (Vec::new(), Vec::new());
            let mut errors = 0usize;
            let mut k = i as u64;
            while k < total {
                let planned = started + interval.mul_f64(k as f64);
                let start = if Instant::now() < planned {
                    tokio::time::sleep_until(planned.into()).await;
                    Instant::now()
                } else {
                    planned
                };
                let mut req = http::Request::get(&path).header("host", &host);
                for (name, value) in headers.iter() {
                    req = req.header(name, value);
                }
                let ok = match req.body(http_body_util::Empty::<bytes::Bytes>::new()) {
                    Ok(req) => match send.send_request(req).await {
                        Ok(res) => {
                            let status = res.status();
                            http_body_util::BodyExt::collect(res.into_body())
                                .await
                                .is_ok()
                                && status.is_success()
                        }
                        Err(_) => false,
                    },
                    Err(_) => false,
                };
                if ok {
                    lat.push(planned.elapsed().as_secs_f64() * 1000.0);
                    sent_lat.push(start.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors += 1;
                    if send.ready().await.is_err() {
                        errors += ((total - k) / connections as u64) as usize;
                        break;
                    }
                }
                k += connections as u64;
            }
            (lat, sent_lat, errors)
        }));
    }
    let mut lat = Vec::with_capacity(total as usize);
    let mut sent_lat = Vec::with_capacity(total as usize);
    let mut errors = 0usize;
    for t in tasks {
        let (l, s, e) = t.await?;
        lat.extend(l);
        sent_lat.extend(s);
        errors += e;
    }
    lat.sort_by(f64::total_cmp);
    sent_lat.sort_by(f64::total_cmp);
    let pick = |v: &[f64], q: f64| {
        v.get(((v.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{}",
        json!({
            "measure": "fixed_rate", "url": url, "rate": rate, "connections": connections,
            "requests": lat.len(), "errors": errors,
            "p50_ms": pick(&lat, 0.5), "p90_ms": pick(&lat, 0.9), "p99_ms": pick(&lat, 0.99),
            "max_ms": pick(&lat, 1.0),
            "sent_p50_ms": pick(&sent_lat, 0.5), "sent_p90_ms": pick(&sent_lat, 0.9),
            "sent_p99_ms": pick(&sent_lat, 0.99), "sent_max_ms": pick(&sent_lat, 1.0),
        })
    );
    Ok(())
}
