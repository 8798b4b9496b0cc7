//! Development hooks, mounted only while the outbox sender is on: the outbox itself, a way to
//! make a user's codes expired, and a way to move the server's clock forward.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use userpool::{Clock, Directory, Error};

use crate::system::SystemClock;

#[derive(Deserialize)]
struct MessagesQuery {
    pool_id: String,
    username: Option<String>,
}

#[derive(Deserialize)]
struct ExpireBody {
    pool_id: String,
    username: String,
}

#[derive(Deserialize)]
struct AdvanceBody {
    seconds: u32,
}

pub fn router(dir: Arc<Directory>, clock: Arc<SystemClock>) -> Router {
    Router::new()
        .route("/_cognate/messages", get(messages))
        .route("/_cognate/expire_codes", post(expire_codes))
        .with_state(dir)
        .merge(
            Router::new()
                .route("/_cognate/clock/advance", post(advance_clock))
                .with_state(clock),
        )
}

async fn advance_clock(
    State(clock): State<Arc<SystemClock>>,
    Json(body): Json<AdvanceBody>,
) -> Response {
    clock.advance(i64::from(body.seconds) * 1000);
    Json(json!({ "now_ms": clock.now() })).into_response()
}

fn failure(e: Error) -> Response {
    let status = match e {
        Error::ResourceNotFound(_) | Error::UserNotFound => StatusCode::NOT_FOUND,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let message = match &e {
        Error::Internal(_) => "internal error".to_string(),
        other => other.to_string(),
    };
    (status, Json(json!({ "message": message }))).into_response()
}

async fn messages(State(dir): State<Arc<Directory>>, Query(q): Query<MessagesQuery>) -> Response {
    match dir.outbox(&q.pool_id, q.username.as_deref()).await {
        Ok(list) => {
            let messages: Vec<_> = list
                .into_iter()
                .map(|m| {
                    json!({
                        "to": m.message.destination,
                        "username": m.message.username,
                        "kind": m.message.kind.as_str(),
                        "code": m.message.secret,
                        "subject": m.message.subject,
                        "body": m.message.body,
                        "medium": m.message.medium.as_str(),
                        "sent_at": m.sent as f64 / 1000.0,
                    })
                })
                .collect();
            Json(json!({ "messages": messages })).into_response()
        }
        Err(e) => failure(e),
    }
}

async fn expire_codes(State(dir): State<Arc<Directory>>, Json(body): Json<ExpireBody>) -> Response {
    match dir.expire_codes(&body.pool_id, &body.username).await {
        Ok(n) => Json(json!({ "expired": n })).into_response(),
        Err(e) => failure(e),
    }
}
