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

/// `rate` requests/s to `url` for `seconds`, each with `headers`; prints latency percentiles.
pub async fn fixed_rate(
    url: &str,
    headers: &[(String, String)],
    rate: u64,
    seconds: f64,
) -> Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut hmap = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        hmap.insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes())?,
            reqwest::header::HeaderValue::from_str(v)?,
        );
    }
    let hmap = Arc::new(hmap);
    let total = (rate as f64 * seconds) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    let mut errors = 0usize;
    // Planned start times on a fixed grid; the loop sleeps in 1 ms steps and sends what is due.
    let mut next = 0u64;
    while next < total {
        let due =
            ((started.elapsed().as_secs_f64() / interval.as_secs_f64()) as u64 + 1).min(total);
        while next < due {
            let planned = started + interval * next as u32;
            let (http, url, h) = (http.clone(), url.to_string(), hmap.clone());
            tasks.push(tokio::spawn(async move {
                let ok = match http.get(&url).headers((*h).clone()).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                (planned.elapsed(), ok)
            }));
            next += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut lat = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (d, ok) = t.await?;
        if ok {
            lat.push(d.as_secs_f64() * 1000.0);
        } else {
            errors += 1;
        }
    }
    lat.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{}",
        json!({
            "measure": "fixed_rate", "url": url, "rate": rate, "requests": lat.len(), "errors": errors,
            "p50_ms": pick(0.5), "p90_ms": pick(0.9), "p99_ms": pick(0.99), "max_ms": pick(1.0),
        })
    );
    Ok(())
}
