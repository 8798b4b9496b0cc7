//! The documents a pool publishes for token verifiers: `/{poolId}/.well-known/jwks.json` and
//! `/{poolId}/.well-known/openid-configuration`, with CORS and caching headers.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use userpool::Directory;

/// Verifiers may keep a JWKS this long: shorter than the lead with which a rotated key is
/// published before it signs, so every verifier has seen a key before its first token.
pub const JWKS_MAX_AGE_S: u64 = 300;

#[derive(Clone)]
struct WellKnown {
    directory: Arc<Directory>,
    issuer_base: String,
}

pub fn router(directory: Arc<Directory>, issuer_base: String) -> Router {
    Router::new()
        .route("/{pool_id}/.well-known/jwks.json", get(jwks))
        .route(
            "/{pool_id}/.well-known/openid-configuration",
            get(discovery),
        )
        .with_state(WellKnown {
            directory,
            issuer_base,
        })
}

async fn jwks(
    State(w): State<WellKnown>,
    Path(pool_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match w.directory.jwks(&pool_id).await {
        Ok(jwks) => document(&headers, serde_json::to_value(jwks).unwrap_or_default()),
        Err(e) => not_found(&headers, e),
    }
}

async fn discovery(
    State(w): State<WellKnown>,
    Path(pool_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match w.directory.pool_exists(&pool_id).await {
        Ok(()) => {
            let issuer = format!("{}/{pool_id}", w.issuer_base.trim_end_matches('/'));
            document(&headers, tokens::openid_configuration(&issuer))
        }
        Err(e) => not_found(&headers, e),
    }
}

fn document(req: &HeaderMap, body: serde_json::Value) -> Response {
    let mut res = (StatusCode::OK, axum::Json(body)).into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_S}")) {
        h.insert(header::CACHE_CONTROL, v);
    }
    awsjson::add_cors(h, req.get(header::ORIGIN));
    res
}

fn not_found(req: &HeaderMap, e: userpool::Error) -> Response {
    let status = match e {
        userpool::Error::ResourceNotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = match &e {
        userpool::Error::ResourceNotFound(m) => m.clone(),
        _ => "Internal server error".to_string(),
    };
    if status.is_server_error() {
        tracing::error!(error = %e, "serving a well-known document failed");
    }
    let mut res = (
        status,
        axum::Json(serde_json::json!({ "message": message })),
    )
        .into_response();
    awsjson::add_cors(res.headers_mut(), req.get(header::ORIGIN));
    res
}
