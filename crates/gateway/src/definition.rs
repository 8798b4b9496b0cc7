//! The APIs as the configuration file declares them (`apis:`), before they are checked. Values
//! that can be wrong keep their place in the file ([`Spanned`]), so an error names the line.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// One API: its kind, where it is served, its authorizers and its routes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiDef {
    pub name: Spanned<String>,
    /// `rest` (API Gateway REST API behaviour) or `http` (HTTP API behaviour).
    pub kind: Spanned<String>,
    /// Its own listen address (`127.0.0.1:8080`); without it the API is served by the main
    /// listener under `prefix`.
    pub listen: Option<Spanned<String>>,
    /// A path prefix (`/api`) before the stage; required on the main listener.
    pub prefix: Option<Spanned<String>>,
    /// Stage names, each the first path segment (`/prod/…`). An HTTP API's `$default` stage has
    /// no segment. Default: `[prod]` for REST, `[$default]` for HTTP.
    pub stages: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub authorizers: Vec<AuthorizerDef>,
    /// The authorizer of routes that name none (`none` or absent: no authorization).
    pub default_authorizer: Option<Spanned<String>>,
    pub cors: Option<CorsDef>,
    /// Largest request body, in bytes [default: 10 MiB, API Gateway's payload limit].
    pub body_limit_bytes: Option<u64>,
    /// The request header that carries the verified claims (JSON) to the upstream
    /// [default: `x-cognate-claims`].
    pub claims_header: Option<Spanned<String>>,
    /// More request headers for the upstream, each set to one claim: `{x-user-sub: sub}`.
    #[serde(default)]
    pub claim_headers: Vec<ClaimHeaderDef>,
    pub routes: Vec<RouteDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimHeaderDef {
    pub header: Spanned<String>,
    pub claim: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizerDef {
    pub name: Spanned<String>,
    /// `cognito` (REST API semantics) or `jwt` (HTTP API semantics).
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    /// cognito: user pool ids or pool ARNs.
    pub pools: Option<Vec<Spanned<String>>>,
    /// cognito: where the pools live [default: this server's issuer base; for Amazon Cognito,
    /// `https://cognito-idp.{region}.amazonaws.com`].
    pub issuer_base: Option<Spanned<String>>,
    /// jwt: the issuer (`iss`), whose discovery document names its JWKS.
    pub issuer: Option<Spanned<String>>,
    /// jwt: accepted `aud` or `client_id` values.
    pub audience: Option<Vec<String>>,
    /// The header the token comes in [default: `Authorization`].
    pub header: Option<Spanned<String>>,
    /// Allowed clock difference for `exp`, `nbf` and `iat`, in seconds [default: 0].
    pub clock_skew_seconds: Option<u32>,
    /// Beyond API Gateway: also refuse access tokens of signed-out sessions (local pools only).
    pub reject_signed_out: Option<bool>,
    /// cognito: a regular expression the token's `aud` must match whole (API Gateway's
    /// `identityValidationExpression`), else 401.
    pub identity_validation_expression: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsDef {
    #[serde(default)]
    pub allow_origins: Vec<String>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    pub max_age: Option<u32>,
    pub allow_credentials: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDef {
    /// `GET /users/{id}`, `ANY /{proxy+}`, or (HTTP APIs) `$default`.
    pub route: Spanned<String>,
    /// An authorizer's name, or `none`; absent: the API's default.
    pub authorizer: Option<Spanned<String>>,
    /// The route's authorization scopes: a token must carry one of them.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// REST APIs: callers must send an API key (`x-api-key`) of a usage plan covering the stage.
    pub api_key_required: Option<Spanned<bool>>,
    pub integration: IntegrationDef,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationDef {
    /// `http` (proxy to `url`) or `mock` (a fixed response).
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    /// http: the upstream URL; `{name}` takes a path parameter, `{proxy}` the greedy rest.
    pub url: Option<Spanned<String>>,
    /// http: how long to wait for the upstream's response headers [default: 29000].
    pub timeout_ms: Option<u64>,
    /// mock: the status [default: 200], headers and body.
    pub status: Option<u16>,
    #[serde(default)]
    pub headers: Vec<MockHeaderDef>,
    pub body: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockHeaderDef {
    pub name: Spanned<String>,
    pub value: String,
}

/// A usage plan (`usage_plans:` in the file): which API stages it covers, how fast and how much
/// its keys may call them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsagePlanDef {
    pub name: Spanned<String>,
    /// `api/stage` pairs (`pets/prod`); the limits count per key across all of them.
    pub stages: Vec<Spanned<String>>,
    pub throttle: Option<ThrottleDef>,
    pub quota: Option<QuotaDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleDef {
    /// Steady requests per second.
    pub rate: Spanned<f64>,
    /// Requests allowed at once above the steady rate (the bucket's size).
    pub burst: Spanned<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaDef {
    pub limit: Spanned<u64>,
    /// `DAY`, `WEEK` or `MONTH` (UTC; weeks start on Sunday).
    pub period: Spanned<String>,
    /// Requests taken off the limit in the plan's first period [default: 0].
    pub offset: Option<u64>,
}

/// An API key (`api_keys:` in the file). The file gives its value; `cognate api-keys create`
/// can generate one instead.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyDef {
    pub name: Spanned<String>,
    /// At least 20 characters.
    pub value: Spanned<String>,
    pub enabled: Option<bool>,
    #[serde(default)]
    pub usage_plans: Vec<Spanned<String>>,
}
