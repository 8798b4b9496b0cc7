//! An API's CORS settings (HTTP API `corsConfiguration`, spec 08 §8.7): preflights are answered
//! by the gateway before routing and authorization, and every other response — the gateway's
//! own refusals included — gets the configured headers, replacing any the upstream sent.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use crate::Body;

#[derive(Debug, Clone, Default)]
pub struct Cors {
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<u32>,
    pub allow_credentials: bool,
}

fn value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

impl Cors {
    /// The `Access-Control-Allow-Origin` for a request from `origin`, if it is allowed.
    fn allowed_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?.to_str().ok()?;
        if self.allow_origins.iter().any(|o| o == origin) {
            return value(origin);
        }
        if self.allow_origins.iter().any(|o| o == "*") {
            // Credentials cannot go with a wildcard; name the origin instead.
            return if self.allow_credentials {
                value(origin)
            } else {
                Some(HeaderValue::from_static("*"))
            };
        }
        None
    }

    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// 204 with the allowed methods and headers, or without CORS headers for a foreign origin
    /// (the browser then refuses the real request).
    pub fn preflight(&self, headers: &HeaderMap) -> Response<Body> {
        let mut res = Response::new(crate::empty());
        *res.status_mut() = StatusCode::NO_CONTENT;
        let Some(origin) = self.allowed_origin(headers.get(header::ORIGIN)) else {
            return res;
        };
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        let methods = if self.allow_methods.is_empty() {
            "*".to_string()
        } else {
            self.allow_methods.join(",")
        };
        if let Some(v) = value(&methods) {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        let allow_headers = if self.allow_headers.is_empty() {
            // Echo what the browser asks for, as a permissive default would.
            headers
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        } else {
            self.allow_headers.join(",")
        };
        if !allow_headers.is_empty()
            && let Some(v) = value(&allow_headers)
        {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if let Some(age) = self.max_age {
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
        }
        self.common(h);
        res
    }

    /// The headers of an actual (non-preflight) response.
    pub fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        for name in [
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
        ] {
            headers.remove(name);
        }
        let Some(allowed) = self.allowed_origin(origin) else {
            return;
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        if !self.expose_headers.is_empty()
            && let Some(v) = value(&self.expose_headers.join(","))
        {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
        self.common(headers);
    }

    fn common(&self, h: &mut HeaderMap) {
        if self.allow_credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        let varies = h
            .get_all(header::VARY)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("Origin")));
        if !varies {
            h.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        Cors {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["authorization".into()],
            expose_headers: vec!["x-request-id".into()],
            max_age: Some(600),
            allow_credentials: credentials,
        }
    }

    fn request(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        h
    }

    #[test]
    fn preflights_list_what_is_allowed() {
        let res = cors(&["https://app.example"], false).preflight(&request("https://app.example"));
        assert_eq!(res.status(), 204);
        let h = res.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example");
        assert_eq!(h["access-control-allow-methods"], "GET,POST");
        assert_eq!(h["access-control-allow-headers"], "authorization");
        assert_eq!(h["access-control-max-age"], "600");
        let res = cors(&["https://app.example"], false).preflight(&request("https://evil.example"));
        assert!(res.headers().get("access-control-allow-origin").is_none());
    }

    #[test]
    fn wildcards_name_the_origin_when_credentials_are_allowed() {
        let res = cors(&["*"], false).preflight(&request("https://a.example"));
        assert_eq!(res.headers()["access-control-allow-origin"], "*");
        let res = cors(&["*"], true).preflight(&request("https://a.example"));
        assert_eq!(
            res.headers()["access-control-allow-origin"],
            "https://a.example"
        );
        assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    }

    #[test]
    fn responses_get_the_configured_headers_not_the_upstreams() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://other.example"),
        );
        let origin = HeaderValue::from_static("https://app.example");
        cors(&["https://app.example"], false).decorate(Some(&origin), &mut h);
        assert_eq!(h["access-control-allow-origin"], "https://app.example");
        assert_eq!(h["access-control-expose-headers"], "x-request-id");
    }
}
