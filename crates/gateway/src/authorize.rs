//! The authorizers (spec 08 §8.1, §8.2): read the token, verify it against its issuer's keys,
//! and decide by API Gateway's rules. `cognito` follows REST APIs (no scopes on the route: an ID
//! token; scopes: an access token carrying one of them, else 401); `jwt` follows HTTP APIs
//! (`aud` or `client_id` in the audience; scopes: one of them, else 403).

use http::{HeaderMap, HeaderName};
use serde_json::Value;
use tokens::{Claims, Verifier};

use std::sync::Arc;

use crate::jwks::{KeyCache, Verified};
use crate::responses::Refusal;

#[derive(Debug, Clone)]
pub enum Kind {
    /// The issuers of the configured pools, and the `identityValidationExpression` a token's
    /// `aud` must match whole.
    Cognito {
        issuers: Vec<String>,
        aud_pattern: Option<regex::Regex>,
    },
    Jwt {
        issuer: String,
        audience: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Authorizer {
    pub name: String,
    pub kind: Kind,
    pub header: HeaderName,
    pub skew_s: i64,
    pub reject_signed_out: bool,
}

fn unauthorized(http_api: bool, reason: &'static str) -> Refusal {
    Refusal::Unauthorized { reason, http_api }
}

/// The token in `value`: bare or after `Bearer ` (either case).
fn token_of(value: &str) -> &str {
    let v = value.trim();
    match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => v[7..].trim_start(),
        _ => v,
    }
}

fn str_claim<'a>(claims: &'a Claims, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

fn num_claim(claims: &Claims, name: &str) -> Option<i64> {
    claims.get(name).and_then(Value::as_i64)
}

/// The token's scopes: `scope` (space-separated) or `scp` (a list or a string).
fn scopes_of(claims: &Claims) -> Vec<&str> {
    if let Some(s) = str_claim(claims, "scope") {
        return s.split_whitespace().collect();
    }
    match claims.get("scp") {
        Some(Value::String(s)) => s.split_whitespace().collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

impl Authorizer {
    fn http_api(&self) -> bool {
        matches!(self.kind, Kind::Jwt { .. })
    }

    fn issuer_allowed(&self, iss: &str) -> bool {
        match &self.kind {
            Kind::Cognito { issuers, .. } => issuers.iter().any(|i| i == iss),
            Kind::Jwt { issuer, .. } => issuer == iss,
        }
    }

    /// The verified claims of the request's token, or the refusal API Gateway would give.
    pub async fn authorize(
        &self,
        keys: &KeyCache,
        headers: &HeaderMap,
        route_scopes: &[String],
        now_s: i64,
    ) -> Result<Arc<Verified>, Refusal> {
        let http_api = self.http_api();
        let deny = |reason| unauthorized(http_api, reason);
        let value = headers
            .get(&self.header)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let token = token_of(value);
        if token.is_empty() {
            return Err(deny("no token"));
        }
        let claims = self.verified_claims(keys, token, now_s).await?;
        let iss = str_claim(&claims, "iss").unwrap_or_default();
        if num_claim(&claims, "nbf").is_some_and(|t| t > now_s + self.skew_s) {
            return Err(deny("the token is not valid yet"));
        }
        if num_claim(&claims, "iat").is_some_and(|t| t > now_s + self.skew_s) {
            return Err(deny("the token was issued in the future"));
        }
        match &self.kind {
            Kind::Cognito { aud_pattern, .. } => {
                self.cognito_rules(&claims, route_scopes, aud_pattern.as_ref())?
            }
            Kind::Jwt { audience, .. } => jwt_rules(&claims, audience, route_scopes)?,
        }
        if self.reject_signed_out
            && str_claim(&claims, "token_use") == Some("access")
            && keys.local().signed_out(iss, &claims).await == Some(true)
        {
            return Err(deny("the token's session was signed out"));
        }
        Ok(claims)
    }

    /// The claims of a token whose signature verifies with its issuer's keys, the issuer being
    /// one this authorizer accepts, and which has not expired. A token verified before is
    /// recognised (no RSA work); its issuer and expiry are still checked.
    async fn verified_claims(
        &self,
        keys: &KeyCache,
        token: &str,
        now_s: i64,
    ) -> Result<Arc<Verified>, Refusal> {
        let deny = |reason| unauthorized(self.http_api(), reason);
        if let Some(claims) = keys.verified.get(token) {
            if !str_claim(&claims, "iss").is_some_and(|i| self.issuer_allowed(i)) {
                return Err(deny("the token's issuer is not accepted"));
            }
            if num_claim(&claims, "exp").is_none_or(|exp| exp <= now_s - self.skew_s) {
                return Err(deny("the token has expired"));
            }
            return Ok(claims);
        }
        // Which issuer's keys to use comes from the unverified token; it must be one we trust
        // before anything is fetched.
        let kid = Verifier::kid_of(token).map_err(|_| deny("the token is not an RS256 JWT"))?;
        let unverified =
            tokens::unverified_claims(token).map_err(|_| deny("the token is malformed"))?;
        let iss = str_claim(&unverified, "iss").ok_or_else(|| deny("the token has no issuer"))?;
        if !self.issuer_allowed(iss) {
            return Err(deny("the token's issuer is not accepted"));
        }
        let verifier = keys
            .verifier(iss, &kid)
            .await
            .ok_or_else(|| deny("the issuer's keys are unavailable"))?;
        let claims = verifier
            .verify(token, now_s - self.skew_s)
            .map_err(|e| match e {
                tokens::Error::Expired => deny("the token has expired"),
                tokens::Error::UnknownKey => deny("the token's key is unknown"),
                _ => deny("the token's signature is invalid"),
            })?;
        // The verified payload is the one to decide on (the unverified one only chose the keys).
        if str_claim(&claims, "iss") != Some(iss) {
            return Err(deny("the token's issuer is not accepted"));
        }
        let claims = Arc::new(Verified::new(claims));
        keys.verified.insert(token, claims.clone());
        Ok(claims)
    }

    /// REST: without route scopes only an ID token passes; with them, an access token that
    /// carries one of them. Both failures are 401.
    /// With an `identityValidationExpression`, the token's `aud` must match it (AWS: "API
    /// Gateway will match the aud field of the incoming token"); access tokens have no `aud`.
    fn cognito_rules(
        &self,
        claims: &Claims,
        route_scopes: &[String],
        aud_pattern: Option<&regex::Regex>,
    ) -> Result<(), Refusal> {
        if let Some(p) = aud_pattern
            && !str_claim(claims, "aud").is_some_and(|aud| p.is_match(aud))
        {
            return Err(unauthorized(
                false,
                "the token's aud does not match the identity validation expression",
            ));
        }
        let token_use = str_claim(claims, "token_use");
        if route_scopes.is_empty() {
            if token_use != Some("id") {
                return Err(unauthorized(false, "an ID token is required"));
            }
            return Ok(());
        }
        if token_use != Some("access") {
            return Err(unauthorized(false, "an access token is required"));
        }
        let has = scopes_of(claims);
        if !route_scopes.iter().any(|s| has.contains(&s.as_str())) {
            return Err(unauthorized(
                false,
                "the token has none of the route's scopes",
            ));
        }
        Ok(())
    }
}

/// HTTP APIs: `aud` or `client_id` in the audience, then the route's scopes (403 without).
fn jwt_rules(claims: &Claims, audience: &[String], route_scopes: &[String]) -> Result<(), Refusal> {
    let auds: Vec<&str> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let client_id = str_claim(claims, "client_id");
    let fits = audience
        .iter()
        .any(|a| auds.contains(&a.as_str()) || client_id == Some(a.as_str()));
    if !fits {
        return Err(unauthorized(
            true,
            "the token does not have a valid audience",
        ));
    }
    if route_scopes.is_empty() {
        return Ok(());
    }
    let has = scopes_of(claims);
    if !route_scopes.iter().any(|s| has.contains(&s.as_str())) {
        return Err(Refusal::InsufficientScope {
            scopes: route_scopes.join(" "),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Claims {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn bearer_is_optional() {
        assert_eq!(token_of("Bearer abc"), "abc");
        assert_eq!(token_of("bearer  abc"), "abc");
        assert_eq!(token_of("abc"), "abc");
        assert_eq!(token_of(" "), "");
    }

    #[test]
    fn jwt_audience_is_aud_or_client_id() {
        let aud = vec!["c1".to_string()];
        assert!(jwt_rules(&claims(json!({"aud": "c1"})), &aud, &[]).is_ok());
        assert!(jwt_rules(&claims(json!({"client_id": "c1"})), &aud, &[]).is_ok());
        assert!(jwt_rules(&claims(json!({"aud": ["x", "c1"]})), &aud, &[]).is_ok());
        assert!(jwt_rules(&claims(json!({"aud": "c2"})), &aud, &[]).is_err());
    }

    #[test]
    fn jwt_scopes_missing_is_forbidden() {
        let aud = vec!["c1".to_string()];
        let scopes = vec!["a/read".to_string(), "a/write".to_string()];
        let c = claims(json!({"client_id": "c1", "scope": "openid a/write"}));
        assert!(jwt_rules(&c, &aud, &scopes).is_ok());
        let c = claims(json!({"client_id": "c1", "scope": "openid"}));
        assert!(matches!(
            jwt_rules(&c, &aud, &scopes),
            Err(Refusal::InsufficientScope { .. })
        ));
        let c = claims(json!({"client_id": "c1", "scp": ["a/read"]}));
        assert!(jwt_rules(&c, &aud, &scopes).is_ok());
    }

    fn cognito() -> Authorizer {
        Authorizer {
            name: "a".into(),
            kind: Kind::Cognito {
                issuers: vec![],
                aud_pattern: None,
            },
            header: http::header::AUTHORIZATION,
            skew_s: 0,
            reject_signed_out: false,
        }
    }

    #[test]
    fn cognito_wants_id_tokens_without_scopes_and_access_tokens_with_them() {
        let a = cognito();
        let id = claims(json!({"token_use": "id"}));
        let access =
            claims(json!({"token_use": "access", "scope": "x/y aws.cognito.signin.user.admin"}));
        assert!(a.cognito_rules(&id, &[], None).is_ok());
        assert!(a.cognito_rules(&access, &[], None).is_err());
        let want = vec!["aws.cognito.signin.user.admin".to_string()];
        assert!(a.cognito_rules(&access, &want, None).is_ok());
        assert!(a.cognito_rules(&id, &want, None).is_err());
        let other = vec!["Admins-client".to_string()];
        let err = a.cognito_rules(&access, &other, None).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn an_identity_validation_expression_must_match_the_whole_aud() {
        let a = cognito();
        let p = crate::api::whole_match("web[0-9]+").unwrap();
        let id = |aud: &str| claims(json!({"token_use": "id", "aud": aud}));
        assert!(a.cognito_rules(&id("web42"), &[], Some(&p)).is_ok());
        for aud in ["web", "xweb42", "web42x"] {
            let err = a.cognito_rules(&id(aud), &[], Some(&p)).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED, "{aud}");
        }
        let access = claims(json!({"token_use": "access", "client_id": "web42", "scope": "s"}));
        assert!(a.cognito_rules(&access, &["s".into()], Some(&p)).is_err());
        assert!(a.cognito_rules(&access, &["s".into()], None).is_ok());
    }
}
