//! The `http` integration: the request, with the caller's verified claims, passed to an upstream
//! over kept-alive connections; bodies stream both ways. Hop-by-hop headers stay behind,
//! `X-Forwarded-*` are set, and headers a caller could use to forge claims are dropped.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Limited};
use tokens::Claims;

use crate::jwks::Verified;
use crate::responses::Refusal;
use crate::routes::Params;
use crate::upstream::{self, Origin, UpstreamError};
use crate::{Body, BoxError};

/// `http://host:port/path/{id}/{proxy}?fixed=1`: its origin, and its path split at its
/// placeholders once.
#[derive(Debug, Clone)]
pub struct UrlTemplate {
    origin: Origin,
    parts: Vec<UrlPart>,
}

#[derive(Debug, Clone)]
enum UrlPart {
    Text(String),
    Param(String),
}

impl UrlTemplate {
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (Scheme::HTTP, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (Scheme::HTTPS, rest)
        } else {
            return Err(format!(
                "the upstream {url:?} must be an http:// or https:// URL"
            ));
        };
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if authority.is_empty() {
            return Err(format!("the upstream {url:?} has no host"));
        }
        // A caller's path must never choose the host the request goes to.
        if authority.contains(['{', '}']) {
            return Err(format!(
                "the upstream {url:?} has a placeholder in its host; only the path may have them"
            ));
        }
        let invalid =
            |e: &dyn std::fmt::Display| format!("the upstream {url:?} is not a valid URL: {e}");
        let parsed: Authority = authority.parse().map_err(|e| invalid(&e))?;
        if parsed.as_str().contains('@') {
            return Err(invalid(&"user information belongs in headers, not the URL"));
        }
        let origin = Origin::new(&scheme, &parsed).map_err(|e| invalid(&e))?;
        let path = &rest[authority.len()..];
        let mut parts = Vec::new();
        let mut text = String::new();
        if !path.starts_with('/') {
            text.push('/');
        }
        let mut chars = path.chars();
        while let Some(c) = chars.next() {
            if c == '{' {
                let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let name = name.trim_end_matches('+').to_string();
                if name.is_empty() {
                    return Err(format!("an empty placeholder in {url:?}"));
                }
                parts.push(UrlPart::Text(std::mem::take(&mut text)));
                parts.push(UrlPart::Param(name));
            } else {
                text.push(c);
            }
        }
        parts.push(UrlPart::Text(text));
        let t = Self { origin, parts };
        t.render(&Params::default(), "")
            .parse::<PathAndQuery>()
            .map_err(|e| invalid(&e))?;
        Ok(t)
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Placeholder names, to check against the route's parameters.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            UrlPart::Param(n) => Some(n.as_str()),
            UrlPart::Text(_) => None,
        })
    }

    /// The path and query for a request's parameters (still percent-encoded, as they came) and
    /// its query.
    pub fn render(&self, params: &Params, query: &str) -> String {
        let mut out = String::with_capacity(64);
        for p in &self.parts {
            match p {
                UrlPart::Text(t) => out.push_str(t),
                UrlPart::Param(n) => out.push_str(params.get(n).unwrap_or("")),
            }
        }
        if !query.is_empty() {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(query);
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct HttpIntegration {
    pub url: UrlTemplate,
    pub timeout: Duration,
}

/// What the upstream is told about the caller besides the request itself.
pub struct Forward<'a> {
    pub params: &'a Params,
    pub peer: Option<SocketAddr>,
    pub claims: Option<&'a Verified>,
    pub claims_header: &'a HeaderName,
    pub claim_headers: &'a [(HeaderName, String)],
    pub body_limit: u64,
}

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the (few) names present instead of a hashed removal of each of the eight:
    // most requests and responses carry none of them.
    if !h.keys().any(|n| HOP_BY_HOP.contains(n)) {
        return;
    }
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named.iter().chain(HOP_BY_HOP.iter()) {
        h.remove(n);
    }
}

/// JSON with every non-ASCII character escaped, so it is a valid header value.
pub fn ascii_json(claims: &Claims) -> String {
    let text = serde_json::to_string(claims).unwrap_or_else(|_| "{}".to_string());
    if text.is_ascii() {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

fn claim_text(claims: &Claims, name: &str) -> Option<String> {
    match claims.get(name)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The upstream connections (per thread, see [`upstream`]).
#[derive(Default)]
pub struct Upstreams;

fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

impl Upstreams {
    pub async fn send<B>(
        &self,
        integration: &HttpIntegration,
        req: Request<B>,
        fwd: Forward<'_>,
    ) -> Result<Response<Body>, Refusal>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        let query = parts.uri.query().unwrap_or("");
        let uri: Uri = integration
            .url
            .render(fwd.params, query)
            .parse()
            .map_err(|_| Refusal::IntegrationFailure)?;
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        let host = headers.remove(header::HOST);
        // Nobody but the gateway speaks for the caller's identity.
        headers.remove(fwd.claims_header);
        for (h, _) in fwd.claim_headers {
            headers.remove(h);
        }
        if let Some(claims) = fwd.claims {
            if let Some(v) = &claims.json {
                headers.insert(fwd.claims_header.clone(), v.clone());
            }
            for (h, claim) in fwd.claim_headers {
                if let Some(v) =
                    claim_text(claims, claim).and_then(|t| HeaderValue::from_str(&t).ok())
                {
                    headers.insert(h.clone(), v);
                }
            }
        }
        forwarded_headers(&mut headers, fwd.peer, host);
        headers.insert(header::HOST, integration.url.origin().host_header().clone());
        let body = Limited::new(body, usize::try_from(fwd.body_limit).unwrap_or(usize::MAX))
            .map_err(|e| -> BoxError { e })
            .boxed_unsync();
        let mut out = Request::new(body);
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        *out.headers_mut() = headers;
        let sent = upstream::send(integration.url.origin(), out);
        let res = match tokio::time::timeout(integration.timeout, sent).await {
            Err(_) => return Err(Refusal::IntegrationTimeout),
            Ok(Err(UpstreamError::Body(e))) if is_length_limit(e.as_ref()) => {
                return Err(Refusal::RequestTooLarge);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "upstream request failed");
                return Err(Refusal::IntegrationFailure);
            }
            Ok(Ok(res)) => res,
        };
        let (mut parts, body) = res.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body))
    }
}

// Names built once: inserting under a `&str` name copies it into a new allocation each time.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

fn forwarded_headers(h: &mut HeaderMap, peer: Option<SocketAddr>, host: Option<HeaderValue>) {
    if let Some(peer) = peer {
        let ip = peer.ip().to_string();
        let value = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip,
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(X_FORWARDED_FOR, v);
        }
        h.insert(X_FORWARDED_PORT, HeaderValue::from(peer.port()));
    }
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = host {
        h.insert(X_FORWARDED_HOST, host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_parameters_and_the_query() {
        let t = UrlTemplate::parse("http://127.0.0.1:8080/pets/{id}/{proxy+}").unwrap();
        let p = Params(vec![
            ("id".into(), "42".into()),
            ("proxy".into(), "a/b%20c".into()),
        ]);
        assert_eq!(t.render(&p, "x=1"), "/pets/42/a/b%20c?x=1");
        assert_eq!(t.origin().host_header(), "127.0.0.1:8080");
        let t = UrlTemplate::parse("http://up/list?fixed=1").unwrap();
        assert_eq!(t.render(&Params::default(), "x=1"), "/list?fixed=1&x=1");
        assert_eq!(t.origin().host_header(), "up");
        let t = UrlTemplate::parse("http://up").unwrap();
        assert_eq!(t.render(&Params::default(), ""), "/");
        let t = UrlTemplate::parse("http://up?a=1").unwrap();
        assert_eq!(t.render(&Params::default(), "b=2"), "/?a=1&b=2");
        let t = UrlTemplate::parse("https://api.example.com/v1/{id}").unwrap();
        assert_eq!(t.render(&p, ""), "/v1/42");
        assert_eq!(t.origin().host_header(), "api.example.com");
        let t = UrlTemplate::parse("http://[::1]:9/x").unwrap();
        assert_eq!(t.origin().host_header(), "[::1]:9");
        assert!(UrlTemplate::parse("ftp://x/").is_err());
        assert!(UrlTemplate::parse("https://{host}/x").is_err());
        assert!(UrlTemplate::parse("http://{host}/x").is_err());
        assert!(UrlTemplate::parse("http://api-{id}.internal/x").is_err());
        assert!(UrlTemplate::parse("http:///x").is_err());
        assert!(UrlTemplate::parse("http://user:pw@up/x").is_err());
        assert!(UrlTemplate::parse("http://up:99999/x").is_err());
        assert!(UrlTemplate::parse("http://up/a b").is_err());
    }

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
        // Without any of them, nothing goes; one alone still goes.
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
        assert!(!h.contains_key(header::UPGRADE));
    }

    #[test]
    fn claims_json_is_ascii() {
        let mut c = Claims::new();
        c.insert("name".into(), serde_json::json!("Zoë 😀"));
        let j = ascii_json(&c);
        assert!(j.is_ascii());
        let back: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(back["name"], "Zoë 😀");
    }
}
