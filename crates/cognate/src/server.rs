//! Wires the server together: store, master key, directory, senders, the HTTP routes and their
//! middleware (request id, access log, panic guard), and graceful shutdown.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_http::catch_panic::CatchPanicLayer;
use userpool::{Deps, Directory, HashProfile, MessageSender, PasswordHasher, Store};

use crate::apis::{self, Apis, DirectoryPools};
use crate::config::{Sender, Settings};
use crate::system::{SystemClock, SystemRandom};
use crate::{secrets, wellknown};

/// Hash jobs allowed to wait for a core before new ones are refused with TooManyRequests: with
/// argon2id at 19 MiB that is at most about 150 ms of waiting on two cores. Development hashing
/// is a thousand times cheaper, so its queue may be longer for the same wait.
const HASH_QUEUE: usize = 16;
const HASH_QUEUE_DEVELOPMENT: usize = 256;

/// The database, opened and migrated, and the master key, checked against what it holds.
async fn open_store(settings: &Settings) -> Result<(Arc<dyn Store>, Arc<vault::Vault>)> {
    let (store, _, vault) = open_stores(settings).await?;
    Ok((store, vault))
}

/// [`open_store`], with the gateway's usage store on the same database.
async fn open_stores(
    settings: &Settings,
) -> Result<(
    Arc<dyn Store>,
    Arc<dyn gateway::UsageStore>,
    Arc<vault::Vault>,
)> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            settings.data_dir.display()
        )
    })?;
    let stores = store::open(&settings.database).await?;
    let store = stores.directory;
    let vault = Arc::new(secrets::master_key(
        settings.master_key.as_deref(),
        &settings.data_dir,
    )?);
    secrets::check_master_key(store.as_ref(), &vault).await?;
    Ok((store, stores.usage, vault))
}

fn directory(
    settings: &Settings,
    store: Arc<dyn Store>,
    vault: Arc<vault::Vault>,
    sender: Arc<dyn MessageSender>,
    clock: Arc<SystemClock>,
) -> Arc<Directory> {
    let profile = if settings.development_hashing {
        HashProfile::DEVELOPMENT
    } else {
        HashProfile::DEFAULT
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Arc::new(
        Directory::new(Deps {
            store,
            sender,
            clock,
            random: Arc::new(SystemRandom),
            hasher: PasswordHasher::new(
                profile,
                cores,
                if settings.development_hashing {
                    HASH_QUEUE_DEVELOPMENT
                } else {
                    HASH_QUEUE
                },
            ),
            vault,
            account_id: settings.account_id.clone(),
            issuer_base: settings.issuer_base.clone(),
        })
        .with_refresh_reuse(settings.refresh_reuse),
    )
}

/// `cognate keys rotate`: new keys for one pool, signing after `lead` ms.
pub async fn rotate_keys(settings: &Settings, pool_id: &str, lead: i64) -> Result<()> {
    let (store, vault) = open_store(settings).await?;
    let clock = Arc::new(SystemClock::default());
    let directory = directory(settings, store, vault, Arc::new(messages::LogSender), clock);
    directory
        .rotate_keys(pool_id, lead)
        .await
        .with_context(|| format!("cannot rotate the keys of {pool_id}"))?;
    tracing::info!(
        pool_id,
        signs_in_s = lead / 1000,
        "new signing keys published; the current keys stay published until their tokens expire"
    );
    Ok(())
}

/// Everything but the socket: opens the database and builds the routes and the gateway (with the
/// file's APIs applied).
pub async fn build(settings: &Settings) -> Result<(Router, Arc<Apis>, Arc<Directory>)> {
    let (store, usage_store, vault) = open_stores(settings).await?;
    let usage = Arc::new(gateway::Usage::new(usage_store, settings.quota_batch));
    let mut keys = settings.admin_keys.clone();
    if keys.is_empty() {
        keys.push(secrets::generated_admin_key(&settings.data_dir)?);
    }
    let clock = Arc::new(SystemClock::default());
    let sender: Arc<dyn MessageSender> = match settings.sender {
        Sender::Outbox => {
            tracing::warn!(
                "message sender: outbox (development only: codes are kept in the database and served at /_cognate/messages)"
            );
            Arc::new(messages::OutboxSender::new(store.clone(), clock.clone()))
        }
        Sender::Log => Arc::new(messages::LogSender),
        Sender::Smtp => {
            let s = settings.smtp.as_ref().context("smtp settings missing")?;
            let security = match s.security.as_deref().unwrap_or("starttls") {
                "none" => messages::SmtpSecurity::None,
                "tls" => messages::SmtpSecurity::Tls,
                "starttls" => messages::SmtpSecurity::StartTls,
                other => anyhow::bail!("unknown smtp security {other:?} (none, starttls or tls)"),
            };
            Arc::new(messages::SmtpSender::new(&messages::SmtpSettings {
                host: s.host.clone(),
                port: s.port.unwrap_or(587),
                security,
                username: s.username.clone(),
                password: s.password.clone(),
                from: s.from.clone(),
            })?)
        }
    };
    if settings.development_hashing {
        tracing::warn!(
            "password hashing: DEVELOPMENT profile (cheap argon2id); never use it for real passwords"
        );
    }
    let directory = directory(settings, store.clone(), vault, sender, clock.clone());
    let api = Arc::new(awsjson::Api {
        directory: directory.clone(),
        keys: keys
            .into_iter()
            .map(|k| awsjson::AdminKey {
                access_key_id: k.access_key_id,
                secret_access_key: k.secret_access_key,
                pools: k.pools,
            })
            .collect(),
        clock: clock.clone(),
        region: settings.region.clone(),
        body_limit: settings.body_limit,
        quotas: awsjson::quotas::Quotas::new(&settings.request_quotas),
    });
    spawn_maintenance(
        store.clone(),
        directory.clone(),
        settings.key_rotation_after,
        settings.key_lead,
    );
    let gateway = Arc::new(
        gateway::Gateway::new(
            Arc::new(DirectoryPools {
                directory: directory.clone(),
                issuer_base: settings.issuer_base.clone(),
            }),
            gateway::Context {
                issuer_base: settings.issuer_base.clone(),
            },
            {
                let clock = clock.clone();
                Box::new(move || userpool::Clock::now(clock.as_ref()) / 1000)
            },
        )
        .with_usage(usage.clone())
        .with_access_log(crate::logs::access_log()),
    );
    spawn_usage_upkeep(usage);
    let apis = Apis::new(gateway, settings.reload_from.clone());
    let names = apis
        .apply(&settings.definition)
        .await
        .context("the configuration's APIs")?;
    if !names.is_empty() {
        tracing::info!(apis = ?names, "APIs applied");
    }
    let mut app = awsjson::router(api.clone())
        .merge(
            Router::new()
                .route("/_cognate/apply", post(apis::apply_endpoint))
                .with_state((apis.clone(), api)),
        )
        .merge(wellknown::router(
            directory.clone(),
            settings.issuer_base.clone(),
        ))
        .merge(
            Router::new()
                .route("/health", get(health))
                .with_state(store.clone()),
        )
        .merge(
            Router::new()
                .route("/metrics", get(metrics))
                .with_state(prometheus()?),
        );
    if settings.sender == Sender::Outbox {
        app = app.merge(crate::dev::router(directory.clone(), clock));
    }
    let app = app
        .fallback_service(
            Router::new()
                .fallback(apis::main_listener)
                .with_state(apis.clone()),
        )
        .layer(CatchPanicLayer::custom(|_| panic_response()))
        .layer(middleware::from_fn(access_log))
        .layer(middleware::from_fn(request_id))
        .layer(middleware::from_fn(crate::listeners::hold_while_handled));
    Ok((app, apis, directory))
}

/// Every second: keys and plans reloaded when they changed (on any node or through the CLI),
/// quota counts written.
fn spawn_usage_upkeep(usage: Arc<gateway::Usage>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = usage.refresh().await {
                tracing::warn!(error = %e, "API keys and usage plans not reloaded");
            }
            usage.flush().await;
        }
    });
}

/// Keeps the database's planner statistics fresh as pools grow, rotates signing keys that are
/// due, deletes those whose last token has expired, and forgets expired sign-in state.
fn spawn_maintenance(
    store: Arc<dyn Store>,
    directory: Arc<Directory>,
    rotate_after: Option<i64>,
    lead: i64,
) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            if let Err(e) = store.maintain().await {
                tracing::warn!(error = %e, "database maintenance failed");
            }
            if let Err(e) = directory.maintain_keys(rotate_after, lead).await {
                tracing::warn!(error = %e, "signing key upkeep failed");
            }
            if let Err(e) = directory.purge_expired_sign_ins().await {
                tracing::warn!(error = %e, "deleting expired sign-in state failed");
            }
        }
    });
}

async fn health(State(store): State<Arc<dyn Store>>) -> Response {
    match store.get_meta("master_key_check").await {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "status": "ok" })),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({ "status": "unavailable" })),
            )
                .into_response()
        }
    }
}

/// The process's metrics recorder (the gateway's counters and histograms).
fn prometheus() -> Result<PrometheusHandle> {
    const SECONDS: [f64; 12] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    spawn_metrics_upkeep(handle.clone());
    Ok(handle)
}

/// Every 5 s: histogram samples folded into their buckets. An installed recorder keeps every
/// sample until its upkeep runs (or `/metrics` is read), so without this a gateway nobody
/// scrapes grew by about 18 bytes a request (found by the soak, bench/soak).
fn spawn_metrics_upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
}

/// `GET /metrics` in Prometheus' text format.
async fn metrics(State(handle): State<PrometheusHandle>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        handle.render(),
    )
        .into_response()
}

fn panic_response() -> Response {
    tracing::error!("a request handler panicked");
    awsjson::errors::WireError::internal().into_response()
}

/// Puts an `x-amzn-RequestId` on every response.
async fn request_id(req: Request, next: Next) -> Response {
    let mut bytes = [0u8; 16];
    userpool::Random::fill(&SystemRandom, &mut bytes);
    let id = uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string();
    let mut res = next.run(req).await;
    // The gateway gives its responses their own id (the one it logs).
    if !res.headers().contains_key("x-amzn-RequestId")
        && let Ok(v) = HeaderValue::from_str(&id)
    {
        res.headers_mut().insert("x-amzn-RequestId", v);
    }
    res
}

/// One line per request: method, path, action, status, latency; never bodies or credentials.
async fn access_log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let action = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_string());
    let res = next.run(req).await;
    let error = res
        .headers()
        .get("x-amzn-ErrorType")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim_end_matches(':').to_string());
    tracing::info!(
        %method,
        path,
        action = action.as_deref().unwrap_or(""),
        status = res.status().as_u16(),
        error = error.as_deref().unwrap_or(""),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    res
}

/// How long requests in flight may take to finish after SIGTERM.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs until SIGTERM or Ctrl-C, then lets in-flight requests finish (for at most
/// [`DRAIN_LIMIT`]).
pub async fn serve(settings: Settings) -> Result<()> {
    let (app, apis, directory) = build(&settings).await?;
    spawn_reload_on_hangup(apis.clone());
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        listen = %addr,
        database = %store::redact(&settings.database),
        data_dir = %settings.data_dir.display(),
        issuer_base = %settings.issuer_base,
        "cognate ready on http://{addr}"
    );
    // At the signal, every address stops accepting and drains at once, each for at most
    // `DRAIN_LIMIT` (security checklist R5): a request that never completes (a body promised and
    // never sent) cannot hold the process.
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let signalled = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let main = axum::serve(
        crate::listeners::MainListener::new(listener),
        app.into_make_service_with_connect_info::<crate::listeners::Peer>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = stopping.send(true);
    })
    .into_future();
    let main = async {
        let limit = async {
            signalled().await;
            tokio::time::sleep(DRAIN_LIMIT).await;
        };
        tokio::select! {
            served = main => served,
            () = limit => {
                tracing::warn!(limit = ?DRAIN_LIMIT, "requests still in flight on the main address at shutdown");
                Ok(())
            }
        }
    };
    let others = async {
        signalled().await;
        apis.drain(DRAIN_LIMIT).await;
    };
    let (served, ()) = tokio::join!(main, others);
    served?;
    // The quota counts this node still holds.
    if let Some(usage) = apis.gateway.usage() {
        usage.flush().await;
    }
    // Failed sign-ins answered before their count was written (bounded, as the drain is).
    if !directory.settle(std::time::Duration::from_secs(5)).await {
        tracing::warn!("stopped with failed sign-ins not yet counted");
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP re-reads the configuration file and applies its APIs.
fn spawn_reload_on_hangup(apis: Arc<Apis>) {
    tokio::spawn(async move {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!(
                "cannot listen for SIGHUP; APIs can still be applied with `cognate apply`"
            );
            return;
        };
        while hangups.recv().await.is_some() {
            tracing::info!(file = %apis.reload_from.display(), "SIGHUP: applying the file's APIs");
            apis.reload().await;
        }
    });
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
