//! The API gateway: APIs declared in the configuration, served as API Gateway serves them —
//! routes, Cognito and JWT authorizers, CORS, and integrations (an HTTP upstream or a fixed
//! response) that receive the caller's verified claims. Spec: `shared/spec/08-api-gateway.md`.
//!
//! A request passes through named phases, in order (Pingora's model): [`Gateway::locate`] (API,
//! stage, path), CORS preflight, [`routes::find`], the body limit, [`authorize`], the API key
//! and its usage plan ([`usage`]), the integration, then the response headers and the access-log line. The gateway knows user pools
//! only through their keys ([`jwks::LocalPools`]), so it fronts Amazon Cognito pools as well.
//! Metrics go to the `metrics` facade (`gateway_requests_total` by API, route and status,
//! `gateway_authorizer_rejections_total` by reason, `gateway_upstream_duration_seconds`); the
//! binary exports them at `/metrics`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod access_log;
pub mod api;
pub mod authorize;
pub mod cors;
pub mod definition;
pub mod jwks;
pub mod proxy;
pub mod responses;
pub mod route_metrics;
pub mod routes;
pub mod upstream;
pub mod usage;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

pub use access_log::{AccessEntry, AccessLog, TracingAccessLog};
pub use api::{Api, ApiKind, Context, DefinitionError, Integration};
pub use definition::ApiDef;
pub use jwks::{KeyCache, LocalPools};
pub use responses::Refusal;
pub use usage::{Usage, UsageStore};

use crate::api::Route;
use crate::cors::Cors;
use crate::proxy::{Forward, Upstreams};
use crate::routes::Found;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body the gateway produces: its own, or the upstream's, streamed.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Which socket a request came in on: the server's main listener or an API's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Main,
    Own(SocketAddr),
}

/// The running gateway: the APIs of the last accepted definition, and what outlives a
/// re-definition (the issuers' keys, the upstream connections).
pub struct Gateway {
    apis: RwLock<Arc<Vec<Arc<Api>>>>,
    keys: KeyCache,
    upstreams: Upstreams,
    ctx: Context,
    now_s: Box<dyn Fn() -> i64 + Send + Sync>,
    usage: Option<Arc<Usage>>,
    access_log: Arc<dyn AccessLog>,
}

/// Where a request landed: its API, stage and the path inside the stage.
struct Located {
    api: Arc<Api>,
    stage: String,
    path: String,
}

/// What the access log says of one request.
struct Outcome<'a> {
    api: &'a str,
    stage: &'a str,
    /// The matched route (none when no route matched).
    route: Option<&'a Route>,
    sub: Option<String>,
    api_key: Option<Arc<str>>,
    refusal: Option<&'static str>,
}

impl Gateway {
    pub fn new(
        local: Arc<dyn LocalPools>,
        ctx: Context,
        now_s: Box<dyn Fn() -> i64 + Send + Sync>,
    ) -> Self {
        Self {
            apis: RwLock::new(Arc::new(Vec::new())),
            keys: KeyCache::new(local),
            upstreams: Upstreams,
            ctx,
            now_s,
            usage: None,
            access_log: Arc::new(TracingAccessLog),
        }
    }

    /// API keys and usage plans for the routes that require a key; without them such routes
    /// refuse every caller (403).
    pub fn with_usage(mut self, usage: Arc<Usage>) -> Self {
        self.usage = Some(usage);
        self
    }

    /// Where access-log lines go instead of `tracing` ([`TracingAccessLog`] by default).
    pub fn with_access_log(mut self, log: Arc<dyn AccessLog>) -> Self {
        self.access_log = log;
        self
    }

    pub fn usage(&self) -> Option<&Arc<Usage>> {
        self.usage.as_ref()
    }

    /// Checks `defs` without applying them.
    pub fn check(&self, defs: &[ApiDef]) -> Result<Vec<Arc<Api>>, DefinitionError> {
        api::compile_all(defs, &self.ctx)
    }

    /// Replaces the running APIs with `apis` (from [`Self::check`]); requests in flight finish
    /// on the APIs they started with.
    pub fn install(&self, apis: Vec<Arc<Api>>) {
        if let Ok(mut cur) = self.apis.write() {
            *cur = Arc::new(apis);
        }
    }

    pub fn apis(&self) -> Arc<Vec<Arc<Api>>> {
        self.apis
            .read()
            .map(|a| a.clone())
            .unwrap_or_else(|_| Arc::new(Vec::new()))
    }

    /// The listen addresses the APIs want of their own.
    pub fn own_listeners(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = self.apis().iter().filter_map(|a| a.listen).collect();
        out.sort();
        out.dedup();
        out
    }

    /// True when some API is served under a prefix of `path` on the main listener.
    pub fn serves_main(&self, path: &str) -> bool {
        self.apis()
            .iter()
            .any(|a| a.listen.is_none() && under_prefix(path, &a.prefix).is_some())
    }

    /// The API, stage and inner path of a request; `Err` is the answer for no API or stage.
    fn locate(&self, listener: Listener, path: &str) -> Result<Located, Refusal> {
        let apis = self.apis();
        let own = match listener {
            Listener::Main => None,
            Listener::Own(a) => Some(a),
        };
        let candidates = apis.iter().filter(|a| a.listen == own);
        let mut best: Option<(&Arc<Api>, &str)> = None;
        for api in candidates {
            if let Some(rest) = under_prefix(path, &api.prefix)
                && best.is_none_or(|(b, _)| api.prefix.len() > b.prefix.len())
            {
                best = Some((api, rest));
            }
        }
        let Some((api, rest)) = best else {
            // A REST API on this listener answers as REST does; otherwise "Not Found".
            let rest_here = apis
                .iter()
                .any(|a| a.listen == own && a.kind == ApiKind::Rest);
            return Err(if rest_here {
                Refusal::MissingAuthenticationToken
            } else {
                Refusal::NotFound
            });
        };
        let no_route = || match api.kind {
            ApiKind::Rest => Refusal::MissingAuthenticationToken,
            ApiKind::Http => Refusal::NotFound,
        };
        let trimmed = rest.strip_prefix('/').unwrap_or(rest);
        let (first, after) = match trimmed.split_once('/') {
            Some((f, a)) => (f, format!("/{a}")),
            None => (trimmed, "/".to_string()),
        };
        if api.stages.iter().any(|s| s == first) {
            return Ok(Located {
                api: api.clone(),
                stage: first.to_string(),
                path: after,
            });
        }
        if api.stages.iter().any(|s| s == "$default") {
            return Ok(Located {
                api: api.clone(),
                stage: "$default".into(),
                path: if rest.is_empty() {
                    "/".into()
                } else {
                    rest.to_string()
                },
            });
        }
        Err(no_route())
    }

    /// Serves one request that came in on `listener` from `peer`.
    pub async fn handle<B>(
        &self,
        listener: Listener,
        req: Request<B>,
        peer: Option<SocketAddr>,
    ) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let incoming = Incoming {
            started: Instant::now(),
            method: req.method().clone(),
            path: req.uri().path().to_string(),
            origin: req.headers().get(header::ORIGIN).cloned(),
        };
        let located = match self.locate(listener, &incoming.path) {
            Ok(l) => l,
            Err(refusal) => {
                let reason = refusal.reason();
                let res = refusal.into_response();
                return self.finish(
                    res,
                    None,
                    &incoming,
                    Outcome {
                        api: "",
                        stage: "",
                        route: None,
                        sub: None,
                        api_key: None,
                        refusal: Some(reason),
                    },
                );
            }
        };
        let api = located.api.clone();
        let (res, outcome) = self.serve(&located, req, peer).await;
        self.finish(res, api.cors.as_ref(), &incoming, outcome)
    }

    async fn serve<'a, B>(
        &self,
        located: &'a Located,
        req: Request<B>,
        peer: Option<SocketAddr>,
    ) -> (Response<Body>, Outcome<'a>)
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let api = &located.api;
        let mut outcome = Outcome {
            api: &api.name,
            stage: &located.stage,
            route: None,
            sub: None,
            api_key: None,
            refusal: None,
        };
        let refuse = |r: Refusal, mut o: Outcome<'a>| {
            o.refusal = Some(r.reason());
            (r.into_response(), o)
        };
        if let Some(cors) = &api.cors
            && Cors::is_preflight(req.method(), req.headers())
        {
            return (cors.preflight(req.headers()), outcome);
        }
        let (index, params) = match routes::find(
            &api.keys,
            api.kind == ApiKind::Rest,
            req.method(),
            &located.path,
        ) {
            Found::Route(i, p) => (i, p),
            Found::NoMethod | Found::None => {
                let r = match api.kind {
                    ApiKind::Rest => Refusal::MissingAuthenticationToken,
                    ApiKind::Http => Refusal::NotFound,
                };
                return refuse(r, outcome);
            }
        };
        let Some(route) = api.routes.get(index) else {
            return refuse(Refusal::NotFound, outcome);
        };
        outcome.route = Some(route);
        if content_length(req.headers()).is_some_and(|n| n > api.body_limit) {
            return refuse(Refusal::RequestTooLarge, outcome);
        }
        let claims = match &route.authorizer {
            None => None,
            Some(a) => {
                match a
                    .authorize(&self.keys, req.headers(), &route.scopes, (self.now_s)())
                    .await
                {
                    Ok(c) => Some(c),
                    Err(r) => {
                        tracing::debug!(api = %api.name, route = %route.key, reason = r.reason(), "authorizer refused");
                        metrics::counter!(
                            "gateway_authorizer_rejections_total",
                            "api" => api.name.clone(),
                            "reason" => r.reason(),
                        )
                        .increment(1);
                        return refuse(r, outcome);
                    }
                }
            }
        };
        outcome.sub = claims
            .as_ref()
            .and_then(|c| c.get("sub"))
            .and_then(|s| s.as_str())
            .map(str::to_string);
        if route.api_key_required {
            let value = req.headers().get("x-api-key").and_then(|v| v.to_str().ok());
            let admitted = match &self.usage {
                Some(u) => {
                    u.admit(value, &api.name, &located.stage, (self.now_s)() * 1000)
                        .await
                }
                None => Err((Refusal::InvalidApiKey, None)),
            };
            match admitted {
                Ok(id) => outcome.api_key = Some(id),
                Err((r, id)) => {
                    outcome.api_key = id;
                    return refuse(r, outcome);
                }
            }
        }
        let res = match &route.integration {
            Integration::Mock {
                status,
                headers,
                body,
            } => {
                let mut res = Response::new(full(body.clone()));
                *res.status_mut() = *status;
                *res.headers_mut() = headers.clone();
                Ok(res)
            }
            Integration::Http(http) => {
                let upstream_started = Instant::now();
                let fwd = Forward {
                    params: &params,
                    peer,
                    claims: claims.as_deref(),
                    claims_header: &api.claims_header,
                    claim_headers: &api.claim_headers,
                    body_limit: api.body_limit,
                };
                let res = self.upstreams.send(http, req, fwd).await;
                route
                    .metrics
                    .upstream(&api.name, &route.key)
                    .record(upstream_started.elapsed().as_secs_f64());
                res
            }
        };
        match res {
            Ok(res) => (res, outcome),
            Err(r) => refuse(r, outcome),
        }
    }
}

// Built once (HTTP/1 sends header names in lower case either way): inserting under a `&str`
// name allocates a copy of it for every response.
const X_AMZN_REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
const APIGW_REQUEST_ID: HeaderName = HeaderName::from_static("apigw-requestid");

/// The rest of `path` after `prefix` ("" prefix: all of it), on a segment boundary.
fn under_prefix<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// A request id: a random (version 4) UUID, as API Gateway's. The random bytes are drawn from
/// the system's generator 4 KiB at a time per thread (one call per 256 requests instead of one
/// each: the call and its hex formatting had been about 4 % of the gateway's CPU).
fn request_id() -> RequestId {
    use std::cell::RefCell;
    const BATCH: usize = 4096;
    thread_local! {
        static DRAWN: RefCell<(Box<[u8; BATCH]>, usize)> = RefCell::new((Box::new([0; BATCH]), BATCH));
    }
    let mut b = [0u8; 16];
    DRAWN.with(|d| {
        let (bytes, used) = &mut *d.borrow_mut();
        if *used + 16 > BATCH {
            if aws_lc_rs::rand::fill(&mut bytes[..]).is_err() {
                return;
            }
            *used = 0;
        }
        b.copy_from_slice(&bytes[*used..*used + 16]);
        *used += 16;
    });
    let mut out = [0u8; 36];
    uuid::Builder::from_random_bytes(b)
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut out);
    RequestId(out)
}

/// A UUID's 36 characters, formatted without allocating.
struct RequestId([u8; 36]);

impl RequestId {
    fn as_str(&self) -> &str {
        // Only hex digits and dashes.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// What is kept of a request for its response headers and access-log line.
struct Incoming {
    started: Instant,
    method: http::Method,
    path: String,
    origin: Option<HeaderValue>,
}

impl Gateway {
    /// CORS headers, the request id, and one access-log line (never the token).
    fn finish(
        &self,
        mut res: Response<Body>,
        cors: Option<&Cors>,
        incoming: &Incoming,
        outcome: Outcome<'_>,
    ) -> Response<Body> {
        if let Some(cors) = cors {
            cors.decorate(incoming.origin.as_ref(), res.headers_mut());
        }
        let route_key = outcome.route.map_or("", |r| r.key.as_str());
        match outcome.route {
            Some(r) => r.metrics.count(outcome.api, route_key, res.status()),
            None => route_metrics::count(outcome.api, route_key, res.status()),
        }
        let id = request_id();
        if let Ok(v) = HeaderValue::from_bytes(&id.0) {
            res.headers_mut().insert(X_AMZN_REQUEST_ID, v.clone());
            res.headers_mut().insert(APIGW_REQUEST_ID, v);
        }
        self.access_log.record(&AccessEntry {
            method: &incoming.method,
            path: &incoming.path,
            api: outcome.api,
            stage: outcome.stage,
            route: route_key,
            status: res.status().as_u16(),
            latency_ms: incoming.started.elapsed().as_secs_f64() * 1000.0,
            sub: outcome.sub.as_deref().unwrap_or(""),
            api_key: outcome.api_key.as_deref().unwrap_or(""),
            refused: outcome.refusal.unwrap_or(""),
            request_id: id.as_str(),
        });
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_version_4_uuids_across_refills() {
        let mut seen = std::collections::HashSet::new();
        // 1,000 ids draw the thread's random bytes four times over.
        for _ in 0..1000 {
            let id = request_id();
            let s = id.as_str();
            let parts: Vec<&str> = s.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(s.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
            assert!(parts[2].starts_with('4'), "{s}");
            assert!(
                matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
                "{s}"
            );
            assert!(seen.insert(s.to_string()), "repeated id {s}");
        }
    }
}
