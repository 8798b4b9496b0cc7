//! The authorizer's token check against its floor (issue 5, item 7): a raw RSA-2048 PKCS#1 v1.5
//! SHA-256 verification of a token-sized message; the whole JWT check (split, base64, the
//! signature, the claims' JSON, expiry) with `tokens::Verifier`; and a request whose token was
//! verified before (the verified-token cache: a keyed hash of the token's tail, a lookup and a
//! comparison of the whole token, then the authorizer's rules).
//!
//!   cargo bench -p gateway --bench jwt

use std::sync::Arc;

use aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256;
use criterion::{Criterion, criterion_group, criterion_main};
use gateway::authorize::{Authorizer, Kind};
use gateway::{KeyCache, LocalPools};
use http::HeaderMap;
use serde_json::{Value, json};
use tokens::{Claims, Jwks, SigningKey, Verifier};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "http://127.0.0.1:9229/us-east-1_bench";

struct Pool(Jwks);

#[async_trait::async_trait]
impl LocalPools for Pool {
    async fn jwks(&self, issuer: &str) -> Option<Jwks> {
        (issuer == ISS).then(|| self.0.clone())
    }
    async fn signed_out(&self, _: &str, _: &Claims) -> Option<bool> {
        Some(false)
    }
}

fn access_token(key: &SigningKey) -> String {
    let Value::Object(claims) = json!({
        "sub": "7f0c7c5e-2f0b-4c1e-9a51-0e4f5a1e0b9d", "iss": ISS, "client_id": "3n4b5urk1ft4fl3mg5e62d9ado",
        "origin_jti": "c6e2b1b4-43f8-4d1b-9f0c-5b3a7cc1d2e3", "event_id": "0f0e3b4c-1d2e-4f5a-8b9c-0d1e2f3a4b5c",
        "token_use": "access", "scope": "aws.cognito.signin.user.admin", "auth_time": NOW - 60,
        "exp": NOW + 3600, "iat": NOW - 60, "jti": "a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d", "username": "alice",
    }) else {
        unreachable!()
    };
    tokens::sign(key, &claims).unwrap()
}

fn benches(c: &mut Criterion) {
    let key = SigningKey::generate().unwrap();
    let token = access_token(&key);
    let jwk = key.jwk();
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let sig =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap();

    // The floor: one RSA verification, with the public key parsed once (as the Verifier keeps it).
    let n =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &jwk.n).unwrap();
    let e =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &jwk.e).unwrap();
    let parsed = aws_lc_rs::signature::RsaPublicKeyComponents {
        n: &n[..],
        e: &e[..],
    }
    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
    .unwrap();
    c.bench_function("rsa2048_verify_floor", |b| {
        b.iter(|| parsed.verify_sig(signed.as_bytes(), &sig).unwrap())
    });

    let mut verifier = Verifier::new();
    verifier.add(&jwk).unwrap();
    c.bench_function("jwt_check", |b| {
        b.iter(|| verifier.verify(&token, NOW).unwrap())
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = KeyCache::new(Arc::new(Pool(Jwks { keys: vec![jwk] })));
    let authorizer = Authorizer {
        name: "users".into(),
        kind: Kind::Cognito {
            issuers: vec![ISS.into()],
            aud_pattern: None,
        },
        header: http::header::AUTHORIZATION,
        skew_s: 0,
        reject_signed_out: false,
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, token.parse().unwrap());
    let scopes = vec!["aws.cognito.signin.user.admin".to_string()];
    // The first call verifies and remembers the token.
    runtime
        .block_on(authorizer.authorize(&keys, &headers, &scopes, NOW))
        .unwrap();
    c.bench_function("authorizer_cache_hit", |b| {
        b.iter(|| {
            runtime
                .block_on(authorizer.authorize(&keys, &headers, &scopes, NOW))
                .unwrap()
        })
    });
}

criterion_group!(jwt, benches);
criterion_main!(jwt);
