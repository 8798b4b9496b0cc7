//! An API ready to serve, compiled from its definition: every name resolved, every route
//! parsed, every URL checked. Compiling refuses a definition with the line of what is wrong.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_saphyr::Spanned;

use crate::authorize::{Authorizer, Kind as AuthorizerKind};
use crate::cors::Cors;
use crate::definition::{ApiDef, AuthorizerDef, IntegrationDef, RouteDef};
use crate::proxy::{HttpIntegration, UrlTemplate};
use crate::route_metrics::RouteMetrics;
use crate::routes::RouteKey;

/// A definition error, at its line of the file (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DefinitionError {
    pub line: u64,
    pub message: String,
}

fn at<T>(s: &Spanned<T>, message: impl Into<String>) -> DefinitionError {
    DefinitionError {
        line: s.referenced.line(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKind {
    Rest,
    Http,
}

#[derive(Debug, Clone)]
pub enum Integration {
    Http(HttpIntegration),
    Mock {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
}

#[derive(Debug, Clone)]
pub struct Route {
    /// As written: `GET /pets/{id}`.
    pub key: String,
    pub authorizer: Option<Arc<Authorizer>>,
    pub scopes: Vec<String>,
    pub api_key_required: bool,
    pub integration: Integration,
    pub metrics: Arc<RouteMetrics>,
}

#[derive(Debug, Clone)]
pub struct Api {
    pub name: String,
    pub kind: ApiKind,
    pub listen: Option<SocketAddr>,
    /// `""` or `/api`.
    pub prefix: String,
    /// `$default` is served without a stage segment.
    pub stages: Vec<String>,
    pub keys: Vec<RouteKey>,
    pub routes: Vec<Route>,
    pub cors: Option<Cors>,
    pub body_limit: u64,
    pub claims_header: HeaderName,
    pub claim_headers: Vec<(HeaderName, String)>,
}

pub const DEFAULT_BODY_LIMIT: u64 = 10 * 1024 * 1024;
pub const DEFAULT_TIMEOUT_MS: u64 = 29_000;
pub const DEFAULT_CLAIMS_HEADER: &str = "x-cognate-claims";

/// What compiling needs to know about this server.
#[derive(Debug, Clone)]
pub struct Context {
    /// This server's issuer base (`http://127.0.0.1:9229`): a pool id names `{base}/{id}`.
    pub issuer_base: String,
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or("");
    let host = match rest.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => rest,
    };
    matches!(host, "localhost" | "[::1]") || host.starts_with("127.")
}

/// https, or http on a loopback address (local development and tests).
fn check_issuer_url(s: &Spanned<String>) -> Result<String, DefinitionError> {
    let url = s.value.trim_end_matches('/').to_string();
    if url.starts_with("https://") || (url.starts_with("http://") && is_loopback_url(&url)) {
        Ok(url)
    } else {
        Err(at(
            s,
            format!("the issuer {url:?} must be https (http only on a loopback address)"),
        ))
    }
}

fn header_name(s: &Spanned<String>) -> Result<HeaderName, DefinitionError> {
    HeaderName::from_bytes(s.value.to_ascii_lowercase().as_bytes())
        .map_err(|_| at(s, format!("{:?} is not a header name", s.value)))
}

/// A pool id, or the id at the end of a user pool ARN.
fn pool_id(s: &Spanned<String>) -> Result<&str, DefinitionError> {
    let v = s.value.as_str();
    let id = if v.starts_with("arn:") {
        v.rsplit_once(":userpool/")
            .map(|(_, id)| id)
            .ok_or_else(|| at(s, format!("{v:?} is not a user pool ARN")))?
    } else {
        v
    };
    let ok = id
        .split_once('_')
        .is_some_and(|(region, rest)| !region.is_empty() && !rest.is_empty())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(id)
    } else {
        Err(at(
            s,
            format!("{v:?} is not a user pool id (like us-east-1_AbCdEf123)"),
        ))
    }
}

/// `expr` matching whole values only (as API Gateway's expressions do).
pub(crate) fn whole_match(expr: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{expr})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| e.to_string())
}

fn authorizer(def: &AuthorizerDef, ctx: &Context) -> Result<Authorizer, DefinitionError> {
    let kind = match def.kind.value.as_str() {
        "cognito" => {
            let pools = def
                .pools
                .as_ref()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| at(&def.name, "a cognito authorizer needs pools"))?;
            let base = match &def.issuer_base {
                Some(b) => check_issuer_url(b)?,
                None => ctx.issuer_base.trim_end_matches('/').to_string(),
            };
            let issuers = pools
                .iter()
                .map(|p| pool_id(p).map(|id| format!("{base}/{id}")))
                .collect::<Result<_, _>>()?;
            let aud_pattern = match &def.identity_validation_expression {
                Some(e) => Some(whole_match(&e.value).map_err(|why| {
                    at(
                        e,
                        format!(
                            "identity_validation_expression is not a regular expression: {why}"
                        ),
                    )
                })?),
                None => None,
            };
            AuthorizerKind::Cognito {
                issuers,
                aud_pattern,
            }
        }
        "jwt" => {
            if let Some(e) = &def.identity_validation_expression {
                return Err(at(
                    e,
                    "identity_validation_expression is for cognito authorizers (REST APIs)",
                ));
            }
            let issuer = def
                .issuer
                .as_ref()
                .ok_or_else(|| at(&def.name, "a jwt authorizer needs an issuer"))?;
            let audience = def
                .audience
                .clone()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| at(&def.name, "a jwt authorizer needs an audience"))?;
            AuthorizerKind::Jwt {
                issuer: check_issuer_url(issuer)?,
                audience,
            }
        }
        other => {
            return Err(at(
                &def.kind,
                format!("unknown authorizer type {other:?} (cognito or jwt)"),
            ));
        }
    };
    let header = match &def.header {
        Some(h) => header_name(h)?,
        None => http::header::AUTHORIZATION,
    };
    Ok(Authorizer {
        name: def.name.value.clone(),
        kind,
        header,
        skew_s: i64::from(def.clock_skew_seconds.unwrap_or(0)),
        reject_signed_out: def.reject_signed_out.unwrap_or(false),
    })
}

fn integration(
    def: &IntegrationDef,
    key: &RouteKey,
    route: &Spanned<String>,
) -> Result<Integration, DefinitionError> {
    match def.kind.value.as_str() {
        "http" => {
            let url = def
                .url
                .as_ref()
                .ok_or_else(|| at(&def.kind, "an http integration needs a url"))?;
            let template = UrlTemplate::parse(&url.value).map_err(|m| at(url, m))?;
            let params = match key {
                RouteKey::Path { template: t, .. } => t.param_names(),
                RouteKey::Default => Vec::new(),
            };
            if let Some(unknown) = template.names().find(|n| !params.contains(n)) {
                return Err(at(
                    url,
                    format!(
                        "{{{unknown}}} is not a parameter of the route {:?}",
                        route.value
                    ),
                ));
            }
            let timeout_ms = def.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
            if timeout_ms == 0 {
                return Err(at(&def.kind, "timeout_ms must be more than 0"));
            }
            Ok(Integration::Http(HttpIntegration {
                url: template,
                timeout: Duration::from_millis(timeout_ms),
            }))
        }
        "mock" => {
            let status = StatusCode::from_u16(def.status.unwrap_or(200))
                .map_err(|_| at(&def.kind, "status must be an HTTP status (100-999)"))?;
            let mut headers = HeaderMap::new();
            for h in &def.headers {
                let value = HeaderValue::from_str(&h.value)
                    .map_err(|_| at(&h.name, "a header value must be visible ASCII"))?;
                headers.append(header_name(&h.name)?, value);
            }
            Ok(Integration::Mock {
                status,
                headers,
                body: Bytes::from(def.body.clone().unwrap_or_default()),
            })
        }
        other => Err(at(
            &def.kind,
            format!("unknown integration type {other:?} (http or mock)"),
        )),
    }
}

/// The authorizer a definition names (`none`: no authorization).
fn named_authorizer(
    authorizers: &[Arc<Authorizer>],
    name: &Spanned<String>,
) -> Result<Option<Arc<Authorizer>>, DefinitionError> {
    if name.value == "none" {
        return Ok(None);
    }
    authorizers
        .iter()
        .find(|x| x.name == name.value)
        .cloned()
        .map(Some)
        .ok_or_else(|| at(name, format!("no authorizer is named {:?}", name.value)))
}

fn route(
    def: &RouteDef,
    kind: ApiKind,
    authorizers: &[Arc<Authorizer>],
    default: Option<&Arc<Authorizer>>,
) -> Result<(RouteKey, Route), DefinitionError> {
    let key = RouteKey::parse(def.route.value.trim()).map_err(|m| at(&def.route, m))?;
    if key == RouteKey::Default && kind == ApiKind::Rest {
        return Err(at(&def.route, "$default routes belong to http APIs"));
    }
    let authorizer = match &def.authorizer {
        None => default.cloned(),
        Some(a) => named_authorizer(authorizers, a)?,
    };
    if authorizer.is_none() && !def.scopes.is_empty() {
        return Err(at(&def.route, "scopes need an authorizer"));
    }
    let api_key_required = match &def.api_key_required {
        Some(f) if f.value && kind == ApiKind::Http => {
            return Err(at(f, "API keys belong to rest APIs (HTTP APIs have none)"));
        }
        Some(f) => f.value,
        None => false,
    };
    let integration = integration(&def.integration, &key, &def.route)?;
    Ok((
        key,
        Route {
            key: def.route.value.trim().to_string(),
            authorizer,
            scopes: def.scopes.clone(),
            api_key_required,
            integration,
            metrics: Arc::default(),
        },
    ))
}

fn stage_names(def: &ApiDef, kind: ApiKind) -> Result<Vec<String>, DefinitionError> {
    let Some(stages) = &def.stages else {
        return Ok(vec![match kind {
            ApiKind::Rest => "prod".into(),
            ApiKind::Http => "$default".into(),
        }]);
    };
    if stages.is_empty() {
        return Err(at(&def.name, "an API needs at least one stage"));
    }
    let mut out = Vec::new();
    for s in stages {
        let ok_name = !s.value.is_empty()
            && s.value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let default = s.value == "$default";
        if default && kind == ApiKind::Rest {
            return Err(at(s, "REST APIs have no $default stage; name one (prod)"));
        }
        if !ok_name && !default {
            return Err(at(
                s,
                format!(
                    "{:?} is not a stage name (letters, digits, - and _)",
                    s.value
                ),
            ));
        }
        if out.contains(&s.value) {
            return Err(at(s, format!("the stage {:?} appears twice", s.value)));
        }
        out.push(s.value.clone());
    }
    Ok(out)
}

fn prefix(def: &ApiDef) -> Result<String, DefinitionError> {
    let Some(p) = &def.prefix else {
        return if def.listen.is_none() {
            Err(at(
                &def.name,
                "an API without its own listen address needs a prefix (like /api)",
            ))
        } else {
            Ok(String::new())
        };
    };
    let v = p.value.trim_end_matches('/');
    let ok = v.starts_with('/')
        && v[1..].split('/').all(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    if !ok {
        return Err(at(
            p,
            format!("{:?} is not a path prefix (like /api)", p.value),
        ));
    }
    if v == "/_cognate" || v.starts_with("/_cognate/") {
        return Err(at(p, "/_cognate is this server's own"));
    }
    Ok(v.to_string())
}

/// One API, checked. `ctx` says how this server names its pools.
pub fn compile(def: &ApiDef, ctx: &Context) -> Result<Api, DefinitionError> {
    let kind = match def.kind.value.as_str() {
        "rest" => ApiKind::Rest,
        "http" => ApiKind::Http,
        other => {
            return Err(at(
                &def.kind,
                format!("unknown API kind {other:?} (rest or http)"),
            ));
        }
    };
    if def.name.value.trim().is_empty() {
        return Err(at(&def.name, "an API needs a name"));
    }
    let listen = match &def.listen {
        Some(l) => Some(l.value.parse::<SocketAddr>().map_err(|_| {
            at(
                l,
                format!("{:?} is not a listen address (host:port)", l.value),
            )
        })?),
        None => None,
    };
    let prefix = prefix(def)?;
    let stages = stage_names(def, kind)?;
    let mut authorizers: Vec<Arc<Authorizer>> = Vec::new();
    for a in &def.authorizers {
        if authorizers.iter().any(|x| x.name == a.name.value) || a.name.value == "none" {
            return Err(at(
                &a.name,
                format!("the authorizer name {:?} is taken", a.name.value),
            ));
        }
        authorizers.push(Arc::new(authorizer(a, ctx)?));
    }
    let default = match &def.default_authorizer {
        None => None,
        Some(d) => named_authorizer(&authorizers, d)?,
    };
    if def.routes.is_empty() {
        return Err(at(&def.name, "an API needs routes"));
    }
    let mut keys = Vec::new();
    let mut routes = Vec::new();
    let mut seen = HashSet::new();
    for r in &def.routes {
        let (key, compiled) = route(r, kind, &authorizers, default.as_ref())?;
        if !seen.insert(format!("{key:?}")) {
            return Err(at(
                &r.route,
                format!("the route {:?} appears twice", r.route.value),
            ));
        }
        keys.push(key);
        routes.push(compiled);
    }
    let claims_header = match &def.claims_header {
        Some(h) => header_name(h)?,
        None => HeaderName::from_static(DEFAULT_CLAIMS_HEADER),
    };
    let claim_headers = def
        .claim_headers
        .iter()
        .map(|c| header_name(&c.header).map(|h| (h, c.claim.clone())))
        .collect::<Result<_, _>>()?;
    let cors = def.cors.as_ref().map(|c| Cors {
        allow_origins: c.allow_origins.clone(),
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age: c.max_age,
        allow_credentials: c.allow_credentials.unwrap_or(false),
    });
    Ok(Api {
        name: def.name.value.clone(),
        kind,
        listen,
        prefix,
        stages,
        keys,
        routes,
        cors,
        body_limit: def.body_limit_bytes.unwrap_or(DEFAULT_BODY_LIMIT),
        claims_header,
        claim_headers,
    })
}

/// Every API, checked each alone and against each other (names, and where they are served).
pub fn compile_all(defs: &[ApiDef], ctx: &Context) -> Result<Vec<Arc<Api>>, DefinitionError> {
    let mut out: Vec<Arc<Api>> = Vec::new();
    for def in defs {
        let api = compile(def, ctx)?;
        if out.iter().any(|a| a.name == api.name) {
            return Err(at(
                &def.name,
                format!("the API name {:?} is taken", api.name),
            ));
        }
        if out
            .iter()
            .any(|a| a.listen == api.listen && a.prefix == api.prefix)
        {
            return Err(at(
                &def.name,
                "another API is served at the same address and prefix",
            ));
        }
        out.push(Arc::new(api));
    }
    Ok(out)
}
