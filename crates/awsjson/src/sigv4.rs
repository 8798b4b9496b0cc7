//! Server-side verification of AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for the
//! IAM-authorised actions, as botocore and the other SDKs sign them. Spec: `shared/spec/02-sigv4.md`.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hmac;
use http::HeaderMap;
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

pub const SERVICE: &str = "cognito-idp";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const AMZ_DATE: &[FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// Why a signature was refused; each maps to the error AWS returns for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    Missing,
    Incomplete(String),
    UnknownKey,
    Mismatch,
    Expired(String),
    NotYetCurrent(String),
    WrongScope(String),
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub access_key_id: String,
    pub region: String,
}

/// The parts of a request the signature covers.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

struct Authorization<'a> {
    key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, SigError> {
    let rest = value.strip_prefix(ALGORITHM).ok_or_else(|| {
        SigError::Incomplete(format!(
            "Authorization header requires '{ALGORITHM}' scheme."
        ))
    })?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let need = |name: &str| {
        SigError::Incomplete(format!(
            "Authorization header requires '{name}' parameter. Authorization={value}"
        ))
    };
    let credential = credential.ok_or_else(|| need("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| need("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| need("Signature"))?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, terminator] = parts[..] else {
        return Err(SigError::Incomplete(format!(
            "Credential should have 5 parts (key/date/region/service/aws4_request): {credential}"
        )));
    };
    if terminator != "aws4_request" {
        return Err(SigError::Incomplete(
            "Credential should be scoped with a valid terminator: 'aws4_request'.".into(),
        ));
    }
    Ok(Authorization {
        key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest(&SHA256, data).as_ref())
}

/// RFC 3986 percent-encoding of everything but unreserved characters (and `/` when asked).
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_headers(headers: &HeaderMap, signed: &str) -> Result<String, SigError> {
    let mut out = String::new();
    for name in signed.split(';') {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| {
                let text = String::from_utf8_lossy(v.as_bytes());
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(SigError::Mismatch);
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    Ok(out)
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
        .as_ref()
        .to_vec()
}

/// The request's time, from `X-Amz-Date` (or a signed `Date` header, RFC 1123).
fn request_time(headers: &HeaderMap, signed: &str) -> Result<(String, OffsetDateTime), SigError> {
    if let Some(v) = headers.get("x-amz-date").and_then(|v| v.to_str().ok()) {
        let t = time::PrimitiveDateTime::parse(v, AMZ_DATE)
            .map_err(|_| {
                SigError::Incomplete(format!(
                    "Date must be in ISO-8601 'basic format'. Got '{v}'."
                ))
            })?
            .assume_utc();
        return Ok((v.to_string(), t));
    }
    if signed.split(';').any(|h| h == "date")
        && let Some(v) = headers.get("date").and_then(|v| v.to_str().ok())
    {
        let t = OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822)
            .map_err(|_| SigError::Incomplete(format!("Unparseable Date header: '{v}'.")))?;
        let text = t.format(AMZ_DATE).map_err(|_| SigError::Mismatch)?;
        return Ok((text, t));
    }
    Err(SigError::Incomplete(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
            .into(),
    ))
}

/// Verifies `req`'s signature. `secret_for` gives the secret of a known access key;
/// `window_s` is how far the request's time may be from `now`.
pub fn verify(
    req: &SignedRequest<'_>,
    now: OffsetDateTime,
    window_s: i64,
    secret_for: impl Fn(&str) -> Option<String>,
) -> Result<Signer, SigError> {
    let header = req
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or(SigError::Missing)?;
    let header = header
        .to_str()
        .map_err(|_| SigError::Incomplete("Authorization header is not ASCII.".into()))?;
    let auth = parse_authorization(header)?;
    if !auth.signed_headers.split(';').any(|h| h == "host") {
        return Err(SigError::Incomplete(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    let (amz_date, at) = request_time(req.headers, auth.signed_headers)?;
    let fmt = |t: OffsetDateTime| t.format(AMZ_DATE).unwrap_or_default();
    let window = time::Duration::seconds(window_s);
    let minutes = window_s / 60;
    if at < now - window {
        return Err(SigError::Expired(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - {minutes} min.)",
            fmt(now - window),
            fmt(now)
        )));
    }
    if at > now + window {
        return Err(SigError::NotYetCurrent(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + {minutes} min.)",
            fmt(now + window),
            fmt(now)
        )));
    }
    if auth.date != &amz_date[..8] {
        return Err(SigError::WrongScope(format!(
            "Credential should be scoped to a valid date: '{}'.",
            &amz_date[..8]
        )));
    }
    if auth.service != SERVICE {
        return Err(SigError::WrongScope(format!(
            "Credential should be scoped to correct service: '{SERVICE}'."
        )));
    }
    let secret = secret_for(auth.key_id).ok_or(SigError::UnknownKey)?;

    let body_hash = sha256_hex(req.body);
    if let Some(claimed) = req
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        && claimed != body_hash
    {
        return Err(SigError::Mismatch);
    }
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        uri_encode(req.path, true),
        canonical_query(req.query),
        canonical_headers(req.headers, auth.signed_headers)?,
        auth.signed_headers,
        body_hash
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    let k_region = hmac_sha256(&k_date, auth.region.as_bytes());
    let k_service = hmac_sha256(&k_region, auth.service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let expected = hex::encode(hmac_sha256(&k_signing, to_sign.as_bytes()));
    if !userpool::ct_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(SigError::Mismatch);
    }
    Ok(Signer {
        access_key_id: auth.key_id.to_string(),
        region: auth.region.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_sorted_and_encoded() {
        assert_eq!(canonical_query("b=2&a=1&c=x%20y"), "a=1&b=2&c=x%20y");
        assert_eq!(canonical_query(""), "");
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let mut h = HeaderMap::new();
        h.insert("x-a", "  a   b  ".parse().unwrap());
        h.append("x-b", "1".parse().unwrap());
        h.append("x-b", "2".parse().unwrap());
        assert_eq!(
            canonical_headers(&h, "x-a;x-b").unwrap(),
            "x-a:a b\nx-b:1,2\n"
        );
    }

    #[test]
    fn malformed_headers_are_incomplete() {
        assert!(matches!(
            parse_authorization("Basic abc"),
            Err(SigError::Incomplete(_))
        ));
        assert!(matches!(
            parse_authorization(
                "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host"
            ),
            Err(SigError::Incomplete(_))
        ));
        assert!(matches!(
            parse_authorization(
                "AWS4-HMAC-SHA256 Credential=a/b/c, SignedHeaders=host, Signature=00"
            ),
            Err(SigError::Incomplete(_))
        ));
    }
}

/// Our verifier against an independent signer: the AWS SDK for Rust's `aws-sigv4`.
#[cfg(test)]
mod oracle {
    use std::time::{Duration, SystemTime};

    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;

    use super::*;

    fn signed(body: &[u8], secret: &str, region: &str, service: &str, at: SystemTime) -> HeaderMap {
        let identity = Credentials::new("AKIDORACLE", secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [
            ("host", "127.0.0.1:9229"),
            ("content-type", "application/x-amz-json-1.1"),
            (
                "x-amz-target",
                "AWSCognitoIdentityProviderService.ListUserPools",
            ),
        ];
        let req = SignableRequest::new(
            "POST",
            "http://127.0.0.1:9229/",
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(req, &params).unwrap().into_parts();
        let mut request = http::Request::builder()
            .method("POST")
            .uri("http://127.0.0.1:9229/");
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let mut request = request.body(()).unwrap();
        instructions.apply_to_request_http1x(&mut request);
        request.headers().clone()
    }

    fn check(headers: &HeaderMap, body: &[u8], now: SystemTime) -> Result<Signer, SigError> {
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body,
        };
        let secret_for = |id: &str| (id == "AKIDORACLE").then(|| "s3cret".to_string());
        verify(&req, OffsetDateTime::from(now), 15 * 60, secret_for)
    }

    #[test]
    fn accepts_what_the_aws_signer_signs() {
        let now = SystemTime::now();
        let body = br#"{"MaxResults":10}"#;
        let h = signed(body, "s3cret", "eu-west-1", SERVICE, now);
        let signer = check(&h, body, now).unwrap();
        assert_eq!(
            signer,
            Signer {
                access_key_id: "AKIDORACLE".into(),
                region: "eu-west-1".into()
            }
        );
    }

    #[test]
    fn refuses_tampering_wrong_secret_service_and_skew() {
        let now = SystemTime::now();
        let body = br#"{"MaxResults":10}"#;
        let h = signed(body, "s3cret", "us-east-1", SERVICE, now);
        assert_eq!(
            check(&h, br#"{"MaxResults":11}"#, now),
            Err(SigError::Mismatch)
        );
        let wrong = signed(body, "other", "us-east-1", SERVICE, now);
        assert_eq!(check(&wrong, body, now), Err(SigError::Mismatch));
        let service = signed(body, "s3cret", "us-east-1", "s3", now);
        assert!(matches!(
            check(&service, body, now),
            Err(SigError::WrongScope(_))
        ));
        let old = signed(
            body,
            "s3cret",
            "us-east-1",
            SERVICE,
            now - Duration::from_secs(16 * 60),
        );
        assert!(
            matches!(check(&old, body, now), Err(SigError::Expired(m)) if m.starts_with("Signature expired"))
        );
        let future = signed(
            body,
            "s3cret",
            "us-east-1",
            SERVICE,
            now + Duration::from_secs(16 * 60),
        );
        assert!(matches!(
            check(&future, body, now),
            Err(SigError::NotYetCurrent(_))
        ));
        let within = signed(
            body,
            "s3cret",
            "us-east-1",
            SERVICE,
            now - Duration::from_secs(14 * 60),
        );
        assert!(check(&within, body, now).is_ok());
        let mut unknown = h.clone();
        let auth = unknown
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .replace("AKIDORACLE", "AKIDNOBODY");
        unknown.insert("authorization", auth.parse().unwrap());
        assert_eq!(check(&unknown, body, now), Err(SigError::UnknownKey));
        let mut missing = h.clone();
        missing.remove("authorization");
        assert_eq!(check(&missing, body, now), Err(SigError::Missing));
    }
}
