//! The gateway's place in the server: the local pools it verifies tokens of, the APIs' own
//! listeners, and applying a definition while running (at start, on SIGHUP, and through the
//! SigV4-signed `POST /_cognate/apply` that `cognate apply` calls). A definition that does not
//! check — or whose listeners cannot be bound — is refused whole and the running one stays.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gateway::definition::{ApiKeyDef, UsagePlanDef};
use gateway::{ApiDef, Gateway, Listener, LocalPools};
use tokens::{Claims, Jwks};
use userpool::Directory;

use crate::config::FileConfig;

/// This server's pools, as the gateway sees them: by issuer `{issuer_base}/{poolId}`.
pub struct DirectoryPools {
    pub directory: Arc<Directory>,
    pub issuer_base: String,
}

impl DirectoryPools {
    fn pool_of<'a>(&self, issuer: &'a str) -> Option<&'a str> {
        issuer
            .strip_prefix(self.issuer_base.trim_end_matches('/'))?
            .strip_prefix('/')
            .filter(|id| !id.is_empty() && !id.contains('/'))
    }
}

#[async_trait::async_trait]
impl LocalPools for DirectoryPools {
    async fn jwks(&self, issuer: &str) -> Option<Jwks> {
        let pool = self.pool_of(issuer)?;
        self.directory.jwks(pool).await.ok()
    }

    async fn signed_out(&self, issuer: &str, claims: &Claims) -> Option<bool> {
        self.pool_of(issuer)?;
        let jti = claims.get("origin_jti")?.as_str()?;
        self.directory.session_signed_out(jti).await.ok()
    }
}

struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// The gateway and the listeners of the APIs that have their own address.
pub struct Apis {
    pub gateway: Arc<Gateway>,
    listeners: tokio::sync::Mutex<HashMap<SocketAddr, Running>>,
    /// The file SIGHUP re-reads.
    pub reload_from: PathBuf,
}

impl Apis {
    pub fn new(gateway: Arc<Gateway>, reload_from: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            gateway,
            listeners: tokio::sync::Mutex::new(HashMap::new()),
            reload_from,
        })
    }

    /// Checks `defs`, binds the listeners new APIs need, then switches over: new listeners start,
    /// those no API wants any more stop after their requests in flight. Returns the API names.
    pub async fn apply(self: &Arc<Self>, def: &Definition) -> Result<Vec<String>> {
        let compiled = self.gateway.check(&def.apis).map_err(anyhow::Error::new)?;
        let (plans, keys) = gateway::usage::compile(
            &def.usage_plans,
            &def.api_keys,
            &compiled,
            crate::system::wall_ms(),
        )
        .map_err(anyhow::Error::new)?;
        let mut running = self.listeners.lock().await;
        let mut wanted: Vec<SocketAddr> = compiled.iter().filter_map(|a| a.listen).collect();
        wanted.sort();
        wanted.dedup();
        let mut bound = Vec::new();
        for addr in wanted.iter().filter(|a| !running.contains_key(a)) {
            let l = crate::listeners::bind_per_core(*addr)
                .with_context(|| format!("cannot listen on {addr} for an API"))?;
            bound.push((*addr, l));
        }
        // Keys and plans last among the checks: the store refuses names the CLI holds.
        if let Some(usage) = self.gateway.usage() {
            usage
                .store()
                .apply_config(&plans, &keys)
                .await
                .map_err(anyhow::Error::new)?;
            usage.refresh().await.map_err(anyhow::Error::new)?;
        }
        let names = compiled.iter().map(|a| a.name.clone()).collect();
        self.gateway.install(compiled);
        for (addr, listener) in bound {
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let threads = serve_own(self.gateway.clone(), addr, listener, stopped)?;
            running.insert(addr, Running { stop, threads });
            tracing::info!(listen = %addr, "gateway listener started");
        }
        let gone: Vec<SocketAddr> = running
            .keys()
            .filter(|a| !wanted.contains(a))
            .copied()
            .collect();
        for addr in gone {
            if let Some(r) = running.remove(&addr) {
                let _ = r.stop.send(true);
                tracing::info!(listen = %addr, "gateway listener stopped");
            }
        }
        Ok(names)
    }

    /// Shutdown: every API listener stops accepting, and the requests in flight on them are
    /// answered — for at most `within`, after which the process may end with them.
    pub async fn drain(&self, within: std::time::Duration) {
        let running: Vec<Running> = self
            .listeners
            .lock()
            .await
            .drain()
            .map(|(_, r)| r)
            .collect();
        for r in &running {
            let _ = r.stop.send(true);
        }
        let threads: Vec<_> = running.into_iter().flat_map(|r| r.threads).collect();
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        });
        if tokio::time::timeout(within, joined).await.is_err() {
            tracing::warn!(?within, "gateway requests still in flight at shutdown");
        }
    }

    /// SIGHUP: the file again, its `apis` applied; on any error the running APIs stay.
    pub async fn reload(self: &Arc<Self>) {
        let path = &self.reload_from;
        let defs = match std::fs::read_to_string(path) {
            Ok(text) => parse_apis(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Definition::default()),
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        let result = match defs {
            Ok(defs) => self.apply(&defs).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(names) => tracing::info!(file = %path.display(), apis = ?names, "APIs applied"),
            Err(e) => {
                tracing::error!(file = %path.display(), "APIs not applied, the running ones stay: {e:#}")
            }
        }
    }
}

/// What a configuration file declares for the gateway: APIs, usage plans, API keys.
#[derive(Debug, Clone, Default)]
pub struct Definition {
    pub apis: Vec<ApiDef>,
    pub usage_plans: Vec<UsagePlanDef>,
    pub api_keys: Vec<ApiKeyDef>,
}

pub fn parse_apis(text: &str) -> Result<Definition> {
    let file = FileConfig::parse(text)?;
    Ok(Definition {
        apis: file.apis.unwrap_or_default(),
        usage_plans: file.usage_plans.unwrap_or_default(),
        api_keys: file.api_keys.unwrap_or_default(),
    })
}

/// Serves an API's own address thread-per-core (see [`crate::listeners`]), with its own
/// upstream connections per thread.
fn serve_own(
    gateway: Arc<Gateway>,
    addr: SocketAddr,
    sockets: Vec<std::net::TcpListener>,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<std::thread::JoinHandle<()>>> {
    let handler = move |req, peer| {
        let gateway = gateway.clone();
        // Boxed: hyper moves each request's future into place, and the gateway's is large
        // (copying it had been 1.5 % of the CPU per request; an allocation is cheaper).
        Box::pin(async move { gateway.handle(Listener::Own(addr), req, Some(peer)).await })
    };
    Ok(crate::listeners::serve_per_core(
        &format!("gateway-{}", addr.port()),
        sockets,
        handler,
        stopped,
    )?)
}

/// The main listener's fallback: a path under an API's prefix goes to the gateway.
pub async fn main_listener(State(apis): State<Arc<Apis>>, req: Request) -> Response {
    if !apis.gateway.serves_main(req.uri().path()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<crate::listeners::Peer>>()
        .map(|c| c.0.addr);
    apis.gateway
        .handle(Listener::Main, req, peer)
        .await
        .map(Body::new)
}

/// Largest definition `POST /_cognate/apply` reads.
const APPLY_LIMIT: usize = 1 << 20;

/// `POST /_cognate/apply`: a configuration file's text, SigV4-signed by an admin key that is not
/// limited to some pools; its `apis` replace the running ones.
pub async fn apply_endpoint(
    State((apis, aws)): State<(Arc<Apis>, Arc<awsjson::Api>)>,
    req: Request,
) -> Response {
    use awsjson::errors::WireError;
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, APPLY_LIMIT).await else {
        return WireError::invalid(format!(
            "The definition is larger than {APPLY_LIMIT} bytes."
        ))
        .into_response();
    };
    let grant = match aws.verify_admin(&parts.method, &parts.uri, &parts.headers, &bytes) {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    if !grant.unrestricted() {
        let mut e = WireError::new(
            "AccessDeniedException",
            "This access key is limited to some user pools; applying APIs needs an unrestricted key.",
        );
        e.status = StatusCode::FORBIDDEN;
        return e.into_response();
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return WireError::invalid("The definition is not UTF-8 text.").into_response();
    };
    let applied = match parse_apis(text) {
        Ok(defs) => apis.apply(&defs).await,
        Err(e) => Err(e),
    };
    match applied {
        Ok(names) => {
            tracing::info!(apis = ?names, "APIs applied");
            axum::Json(serde_json::json!({ "Apis": names })).into_response()
        }
        Err(e) => WireError::invalid(format!("{e:#}")).into_response(),
    }
}

/// `cognate apply`: sends `file` to a running server's `/_cognate/apply`, signed with `key`.
pub async fn apply_remote(
    endpoint: &str,
    file: &std::path::Path,
    key: (String, String),
) -> Result<()> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let url = format!("{}/_cognate/apply", endpoint.trim_end_matches('/'));
    let parsed: reqwest::Url = url
        .parse()
        .with_context(|| format!("bad endpoint {endpoint:?}"))?;
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => anyhow::bail!("the endpoint {endpoint:?} has no host"),
    };
    let mut headers = vec![
        ("host".to_string(), host),
        ("content-type".to_string(), "application/yaml".to_string()),
    ];
    let identity =
        aws_credential_types::Credentials::new(key.0, key.1, None, None, "cognate").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("cognito-idp")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()?
        .into();
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&text),
    )?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    for (k, v) in instructions.headers() {
        headers.push((k.to_string(), v.to_string()));
    }
    let mut req = reqwest::Client::new().post(&url).body(text);
    for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
        req = req.header(k, v);
    }
    let res = req
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    if !status.is_success() {
        let message = body
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("no message");
        anyhow::bail!("{}: {message}", file.display());
    }
    println!("{body}");
    Ok(())
}
