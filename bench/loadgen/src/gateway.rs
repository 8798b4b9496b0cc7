//! The gateway benchmark's parts: a pool with a signed-in user (its access token) and a minimal
//! upstream. Its fixed-rate load is `rate.rs`.

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
            "refresh_token": result["RefreshToken"].as_str().context("no refresh token")?,
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
