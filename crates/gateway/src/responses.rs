//! The gateway's own answers (API Gateway's "gateway responses", spec 08 §8.5): the one place
//! where a refusal or failure becomes a status, a body and headers.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::Body;

/// Why the gateway answers instead of the integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// REST: no route for this path and method (API Gateway asks for a token it cannot use).
    MissingAuthenticationToken,
    /// HTTP APIs: no route.
    NotFound,
    /// No, a bad, an expired or an unacceptable token; the reason goes to the log and, for HTTP
    /// APIs, to `www-authenticate`.
    Unauthorized {
        reason: &'static str,
        http_api: bool,
    },
    /// HTTP APIs: a valid token without any of the route's scopes.
    InsufficientScope {
        scopes: String,
    },
    RequestTooLarge,
    /// An API-key route without a usable key: none, unknown, disabled, or in no usage plan
    /// covering this stage.
    InvalidApiKey,
    /// The key's usage plan throttle (token bucket) is empty.
    Throttled,
    /// The key's usage plan quota for this period is used up.
    QuotaExceeded,
    /// The quota could not be counted (the database is unreachable): refused, not let through.
    UsageUnavailable,
    /// The upstream could not be reached or broke the exchange.
    IntegrationFailure,
    IntegrationTimeout,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingAuthenticationToken
            | Self::InsufficientScope { .. }
            | Self::InvalidApiKey => StatusCode::FORBIDDEN,
            Self::Throttled | Self::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::UsageUnavailable => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::IntegrationFailure => StatusCode::BAD_GATEWAY,
            Self::IntegrationTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn message(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "Missing Authentication Token",
            Self::NotFound => "Not Found",
            Self::Unauthorized { .. } => "Unauthorized",
            Self::InsufficientScope { .. } => "Forbidden",
            Self::RequestTooLarge => "Request Too Long",
            Self::InvalidApiKey => "Forbidden",
            Self::Throttled => "Too Many Requests",
            Self::QuotaExceeded => "Limit Exceeded",
            Self::UsageUnavailable => "Internal server error",
            Self::IntegrationFailure => "Internal server error",
            Self::IntegrationTimeout => "Endpoint request timed out",
        }
    }

    /// `x-amzn-ErrorType`, as REST APIs send it.
    fn error_type(&self) -> Option<&'static str> {
        match self {
            Self::MissingAuthenticationToken => Some("MissingAuthenticationTokenException"),
            Self::Unauthorized {
                http_api: false, ..
            } => Some("UnauthorizedException"),
            Self::QuotaExceeded => Some("LimitExceededException"),
            _ => None,
        }
    }

    /// A short name for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "no_route",
            Self::NotFound => "no_route",
            Self::Unauthorized { reason, .. } => reason,
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::RequestTooLarge => "too_large",
            Self::InvalidApiKey => "invalid_api_key",
            Self::Throttled => "throttled",
            Self::QuotaExceeded => "quota_exceeded",
            Self::UsageUnavailable => "usage_unavailable",
            Self::IntegrationFailure => "integration_failure",
            Self::IntegrationTimeout => "integration_timeout",
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({ "message": self.message() }).to_string();
        let mut res = Response::new(crate::full(Bytes::from(body)));
        *res.status_mut() = self.status();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(t) = self.error_type() {
            h.insert("x-amzn-ErrorType", HeaderValue::from_static(t));
        }
        let challenge = match &self {
            Self::Unauthorized {
                reason,
                http_api: true,
            } => Some(format!(
                "Bearer scope=\"\" error=\"invalid_token\" error_description=\"{reason}\""
            )),
            Self::InsufficientScope { scopes } => Some(format!(
                "Bearer scope=\"{scopes}\" error=\"insufficient_scope\" error_description=\"the token does not have the required scopes\""
            )),
            _ => None,
        };
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn render(r: Refusal) -> (u16, String, Option<String>, Option<String>) {
        let res = r.into_response();
        let status = res.status().as_u16();
        let err = res
            .headers()
            .get("x-amzn-ErrorType")
            .map(|v| v.to_str().unwrap().to_string());
        let www = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap(), err, www)
    }

    #[tokio::test]
    async fn every_refusal_has_api_gateways_status_and_body() {
        let table = [
            (
                Refusal::MissingAuthenticationToken,
                403,
                r#"{"message":"Missing Authentication Token"}"#,
                Some("MissingAuthenticationTokenException"),
            ),
            (Refusal::NotFound, 404, r#"{"message":"Not Found"}"#, None),
            (
                Refusal::Unauthorized {
                    reason: "no token",
                    http_api: false,
                },
                401,
                r#"{"message":"Unauthorized"}"#,
                Some("UnauthorizedException"),
            ),
            (
                Refusal::Unauthorized {
                    reason: "no token",
                    http_api: true,
                },
                401,
                r#"{"message":"Unauthorized"}"#,
                None,
            ),
            (
                Refusal::InsufficientScope {
                    scopes: "a/b".into(),
                },
                403,
                r#"{"message":"Forbidden"}"#,
                None,
            ),
            (
                Refusal::RequestTooLarge,
                413,
                r#"{"message":"Request Too Long"}"#,
                None,
            ),
            (
                Refusal::InvalidApiKey,
                403,
                r#"{"message":"Forbidden"}"#,
                None,
            ),
            (
                Refusal::Throttled,
                429,
                r#"{"message":"Too Many Requests"}"#,
                None,
            ),
            (
                Refusal::QuotaExceeded,
                429,
                r#"{"message":"Limit Exceeded"}"#,
                Some("LimitExceededException"),
            ),
            (
                Refusal::IntegrationFailure,
                502,
                r#"{"message":"Internal server error"}"#,
                None,
            ),
            (
                Refusal::IntegrationTimeout,
                504,
                r#"{"message":"Endpoint request timed out"}"#,
                None,
            ),
        ];
        for (refusal, status, body, err) in table {
            let got = render(refusal.clone()).await;
            assert_eq!(got.0, status, "{refusal:?}");
            assert_eq!(got.1, body, "{refusal:?}");
            assert_eq!(got.2.as_deref(), err, "{refusal:?}");
        }
        let www = render(Refusal::Unauthorized {
            reason: "the token has expired",
            http_api: true,
        })
        .await
        .3
        .unwrap();
        assert!(www.contains("error=\"invalid_token\""), "{www}");
        let www = render(Refusal::InsufficientScope {
            scopes: "a/b".into(),
        })
        .await
        .3
        .unwrap();
        assert!(
            www.contains("insufficient_scope") && www.contains("a/b"),
            "{www}"
        );
    }
}
