//! The gateway's pipeline without a socket in front of it: definitions compiled from YAML,
//! tokens signed by real keys, local pools through `LocalPools`, and a remote issuer served over
//! HTTP by a tiny server in the test (discovery document + JWKS).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use gateway::{ApiDef, Context, Gateway, Listener, LocalPools};
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokens::{Claims, Jwks, SigningKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NOW: i64 = 1_800_000_000;
const BASE: &str = "http://127.0.0.1:9229";

struct Pools {
    keys: Vec<Arc<SigningKey>>,
    signed_out: bool,
}

#[async_trait::async_trait]
impl LocalPools for Pools {
    async fn jwks(&self, issuer: &str) -> Option<Jwks> {
        (issuer == format!("{BASE}/us-east-1_local")).then(|| Jwks {
            keys: self.keys.iter().map(|k| k.jwk()).collect(),
        })
    }
    async fn signed_out(&self, _issuer: &str, _claims: &Claims) -> Option<bool> {
        Some(self.signed_out)
    }
}

#[derive(serde::Deserialize)]
struct File {
    apis: Vec<ApiDef>,
}

fn gateway(yaml: &str, pools: Pools) -> Gateway {
    let g = Gateway::new(
        Arc::new(pools),
        Context {
            issuer_base: BASE.into(),
        },
        Box::new(|| NOW),
    );
    let file: File = serde_saphyr::from_str(yaml).unwrap();
    g.install(g.check(&file.apis).unwrap());
    g
}

/// The LOCAL definition over a pool whose one key is `key`.
fn local_gateway(key: &Arc<SigningKey>, signed_out: bool) -> Gateway {
    gateway(
        LOCAL,
        Pools {
            keys: vec![key.clone()],
            signed_out,
        },
    )
}

fn claims(v: Value) -> Claims {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn id_token(key: &SigningKey, iss: &str, exp: i64) -> String {
    tokens::sign(
        key,
        &claims(json!({"sub": "s1", "iss": iss, "token_use": "id", "aud": "c1", "exp": exp, "iat": NOW - 10})),
    )
    .unwrap()
}

async fn get(g: &Gateway, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = Request::get(path);
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    let res = g
        .handle(
            Listener::Main,
            req.body(Full::new(Bytes::new())).unwrap(),
            None,
        )
        .await;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

const LOCAL: &str = r#"
apis:
  - name: a
    kind: rest
    prefix: /api
    authorizers:
      - {name: users, type: cognito, pools: [us-east-1_local]}
      - {name: strict, type: cognito, pools: [us-east-1_local], reject_signed_out: true}
    default_authorizer: users
    routes:
      - route: GET /me
        integration: {type: mock, body: me}
      - route: GET /strict
        authorizer: strict
        scopes: [aws.cognito.signin.user.admin]
        integration: {type: mock, body: strict}
"#;

#[tokio::test]
async fn local_pool_tokens_pass_and_everything_else_is_401() {
    let key = Arc::new(SigningKey::generate().unwrap());
    let g = local_gateway(&key, false);
    let iss = format!("{BASE}/us-east-1_local");
    assert_eq!(
        get(&g, "/api/prod/me", Some(&id_token(&key, &iss, NOW + 60))).await,
        (200, "me".into())
    );
    let unauthorized = (401, r#"{"message":"Unauthorized"}"#.to_string());
    assert_eq!(get(&g, "/api/prod/me", None).await, unauthorized);
    assert_eq!(
        get(&g, "/api/prod/me", Some(&id_token(&key, &iss, NOW - 1))).await,
        unauthorized
    );
    // Another pool's issuer, and a key the pool does not have.
    assert_eq!(
        get(
            &g,
            "/api/prod/me",
            Some(&id_token(
                &key,
                &format!("{BASE}/us-east-1_other"),
                NOW + 60
            ))
        )
        .await,
        unauthorized
    );
    let stranger = SigningKey::generate().unwrap();
    assert_eq!(
        get(
            &g,
            "/api/prod/me",
            Some(&id_token(&stranger, &iss, NOW + 60))
        )
        .await,
        unauthorized
    );
    assert_eq!(get(&g, "/api/prod/nope", None).await.0, 403);
    assert_eq!(get(&g, "/api/test/me", None).await.0, 403);
}

/// `header.payload.signature` of exactly these header and payload texts, signed with `key`'s
/// private key as any holder of it could.
fn signed_raw(key: &SigningKey, header: &str, payload: &str) -> String {
    use aws_lc_rs::{rand::SystemRandom, rsa::KeyPair, signature::RSA_PKCS1_SHA256};
    let pair = KeyPair::from_pkcs8(&key.to_pkcs8().unwrap()).unwrap();
    compact(header, payload, |input| {
        let mut sig = vec![0u8; pair.public_modulus_len()];
        pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input, &mut sig)
            .unwrap();
        sig
    })
}

/// An HS256 token over `payload` whose HMAC key is `secret`.
fn hs256(kid: &str, payload: &str, secret: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let header = format!(r#"{{"kid":"{kid}","alg":"HS256","typ":"JWT"}}"#);
    compact(&header, payload, |input| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input)
            .as_ref()
            .to_vec()
    })
}

/// `header.payload.signature`, the signature made by `sign` over the first two parts.
fn compact(header: &str, payload: &str, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// Security checklist G1–G4, G6–G10, G14 and G19 through the gateway: every token below is
/// refused with API Gateway's 401, each beside a genuine one that passes, so that a refusal
/// for the wrong reason would show.
#[tokio::test]
async fn forged_and_ambiguous_tokens_are_401() {
    use aws_lc_rs::{rsa::KeyPair, signature::KeyPair as _};
    use base64::{
        Engine, engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD,
    };

    let key = Arc::new(SigningKey::generate().unwrap());
    let g = local_gateway(&key, false);
    let iss = format!("{BASE}/us-east-1_local");
    let kid = key.kid().to_string();
    let header = format!(r#"{{"kid":"{kid}","alg":"RS256"}}"#);
    let payload = |extra: &str| {
        format!(
            r#"{{"sub":"s1","iss":"{iss}","token_use":"id","aud":"c1","iat":{}{extra}}}"#,
            NOW - 10
        )
    };
    let exp = format!(r#","exp":{}"#, NOW + 60);
    let unauthorized = (401, r#"{"message":"Unauthorized"}"#.to_string());
    let refused = async |token: &str, why: &str| {
        assert_eq!(
            get(&g, "/api/prod/me", Some(token)).await,
            unauthorized,
            "{why}"
        );
    };

    let genuine = signed_raw(&key, &header, &payload(&exp));
    assert_eq!(get(&g, "/api/prod/me", Some(&genuine)).await.0, 200);

    // G2: HS256 keyed with the pool's public key, as PKCS#1 DER, as PEM and as the JWK's `n`.
    let der = KeyPair::from_pkcs8(&key.to_pkcs8().unwrap())
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let pem = format!(
        "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
        STANDARD.encode(&der)
    );
    let n = URL_SAFE_NO_PAD.decode(key.jwk().n).unwrap();
    for secret in [der.as_slice(), pem.as_bytes(), n.as_slice()] {
        refused(
            &hs256(&kid, &payload(&exp), secret),
            "HS256 keyed with the public key",
        )
        .await;
    }

    // G3: the signature stripped, truncated, or taken from another genuine token.
    let (signed, sig) = genuine.rsplit_once('.').unwrap();
    refused(&format!("{signed}."), "no signature").await;
    refused(&format!("{signed}.{}", &sig[..sig.len() - 8]), "truncated").await;
    let other = signed_raw(&key, &header, &payload(&format!(r#"{exp},"x":1"#)));
    let other_sig = other.rsplit_once('.').unwrap().1;
    refused(
        &format!("{signed}.{other_sig}"),
        "another token's signature",
    )
    .await;

    // G6: `kid`s meant for paths, SQL, C strings, or memory.
    let long = "k".repeat(64 * 1024);
    for bad in [
        "../../../../etc/passwd",
        "x' OR '1'='1",
        "a\\u0000b",
        long.as_str(),
    ] {
        let h = format!(r#"{{"kid":"{bad}","alg":"RS256"}}"#);
        refused(&signed_raw(&key, &h, &payload(&exp)), "odd kid").await;
    }

    // G8 and G14: an unknown critical extension; members named twice; not base64url.
    let crit = format!(r#"{{"kid":"{kid}","alg":"RS256","crit":["b64"],"b64":false}}"#);
    refused(&signed_raw(&key, &crit, &payload(&exp)), "crit").await;
    // The member read last is the one a lenient parser keeps: here the acceptable one.
    let two_algs = format!(r#"{{"kid":"{kid}","alg":"HS256","alg":"RS256"}}"#);
    refused(&signed_raw(&key, &two_algs, &payload(&exp)), "alg twice").await;
    let two_exps = payload(&format!(r#","exp":{}{exp}"#, NOW - 3600));
    refused(&signed_raw(&key, &header, &two_exps), "exp twice").await;
    let two_subs = payload(&format!(r#"{exp},"sub":"admin""#));
    refused(&signed_raw(&key, &header, &two_subs), "sub twice").await;
    let std_b64 = genuine.replace('-', "+").replace('_', "/");
    if std_b64 != genuine {
        refused(&std_b64, "standard base64").await;
    }
    let (h, rest) = genuine.split_once('.').unwrap();
    refused(&format!("{h}==.{rest}"), "padding").await;

    // G9: no `exp`, a textual `exp`, an `nbf` and an `iat` in the future.
    refused(&signed_raw(&key, &header, &payload("")), "no exp").await;
    let text_exp = payload(&format!(r#","exp":"{}""#, NOW + 60));
    refused(&signed_raw(&key, &header, &text_exp), "exp as text").await;
    let nbf = payload(&format!(r#"{exp},"nbf":{}"#, NOW + 600));
    refused(&signed_raw(&key, &header, &nbf), "nbf ahead").await;
    let iat = format!(
        r#"{{"sub":"s1","iss":"{iss}","token_use":"id","aud":"c1","iat":{}{exp}}}"#,
        NOW + 600
    );
    refused(&signed_raw(&key, &header, &iat), "iat ahead").await;

    // G10: the pool's issuer with a trailing slash, or with https for http.
    for other_iss in [format!("{iss}/"), iss.replace("http://", "https://")] {
        let p = payload(&exp).replace(
            &format!(r#""iss":"{iss}""#),
            &format!(r#""iss":"{other_iss}""#),
        );
        refused(&signed_raw(&key, &header, &p), "another issuer's spelling").await;
    }

    // G19: a token is remembered whole; the same user's token without the route's scope is
    // refused after one with it passed.
    let access = |scope: &str| {
        tokens::sign(
            &key,
            &claims(
                json!({"sub": "s1", "iss": iss, "token_use": "access", "client_id": "c1",
                           "scope": scope, "origin_jti": "j", "exp": NOW + 60}),
            ),
        )
        .unwrap()
    };
    let admin = access("aws.cognito.signin.user.admin");
    assert_eq!(get(&g, "/api/prod/strict", Some(&admin)).await.0, 200);
    assert_eq!(
        get(&g, "/api/prod/strict", Some(&access("openid"))).await,
        unauthorized
    );

    // The genuine token still passes after all of the above.
    assert_eq!(get(&g, "/api/prod/me", Some(&genuine)).await.0, 200);
}

#[tokio::test]
async fn the_opt_in_check_refuses_signed_out_access_tokens() {
    let key = Arc::new(SigningKey::generate().unwrap());
    let iss = format!("{BASE}/us-east-1_local");
    let access = tokens::sign(
        &key,
        &claims(json!({"sub": "s1", "iss": iss, "token_use": "access", "client_id": "c1",
                       "scope": "aws.cognito.signin.user.admin", "origin_jti": "j", "exp": NOW + 60})),
    )
    .unwrap();
    let live = local_gateway(&key, false);
    assert_eq!(get(&live, "/api/prod/strict", Some(&access)).await.0, 200);
    let out = local_gateway(&key, true);
    assert_eq!(get(&out, "/api/prod/strict", Some(&access)).await.0, 401);
}

/// A one-issuer OpenID provider on a loopback port: discovery and JWKS, counting JWKS fetches.
async fn issuer(
    keys: Arc<std::sync::Mutex<Vec<Arc<SigningKey>>>>,
    fetches: Arc<AtomicUsize>,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = base.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let keys = keys.clone();
            let fetches = fetches.clone();
            let issuer = issuer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let body = if head.starts_with("GET /.well-known/openid-configuration") {
                    json!({"issuer": issuer, "jwks_uri": format!("{issuer}/keys")}).to_string()
                } else {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let jwks = Jwks {
                        keys: keys.lock().unwrap().iter().map(|k| k.jwk()).collect(),
                    };
                    serde_json::to_string(&jwks).unwrap()
                };
                let res = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(res.as_bytes()).await;
            });
        }
    });
    base
}

#[tokio::test]
async fn remote_issuers_keys_are_fetched_cached_and_refetched_for_a_new_kid() {
    let first = Arc::new(SigningKey::generate().unwrap());
    let keys = Arc::new(std::sync::Mutex::new(vec![first.clone()]));
    let fetches = Arc::new(AtomicUsize::new(0));
    let iss = issuer(keys.clone(), fetches.clone()).await;
    let yaml = format!(
        r#"
apis:
  - name: h
    kind: http
    prefix: /h
    authorizers:
      - {{name: j, type: jwt, issuer: "{iss}", audience: [c1]}}
    default_authorizer: j
    routes:
      - route: GET /x
        integration: {{type: mock, body: ok}}
"#
    );
    let g = gateway(
        &yaml,
        Pools {
            keys: vec![],
            signed_out: false,
        },
    );
    let t = id_token(&first, &iss, NOW + 60);
    assert_eq!(get(&g, "/h/x", Some(&t)).await, (200, "ok".into()));
    assert_eq!(get(&g, "/h/x", Some(&t)).await.0, 200);
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the JWKS is cached");
    // A rotated key: the first token naming it within 10 s of the last fetch is refused, since
    // the issuer is asked at most once per 10 s; the cache still serves known keys meanwhile.
    let second = Arc::new(SigningKey::generate().unwrap());
    keys.lock().unwrap().push(second.clone());
    let t2 = id_token(&second, &iss, NOW + 60);
    assert_eq!(get(&g, "/h/x", Some(&t2)).await.0, 401);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(get(&g, "/h/x", Some(&t)).await.0, 200);
    // A wrong audience is refused even with a good signature.
    let other_aud = tokens::sign(
        &first,
        &claims(json!({"sub": "s", "iss": iss, "aud": "c2", "exp": NOW + 60})),
    )
    .unwrap();
    assert_eq!(get(&g, "/h/x", Some(&other_aud)).await.0, 401);
}

#[test]
fn definitions_are_refused_with_the_line_at_fault() {
    let g = Gateway::new(
        Arc::new(Pools {
            keys: vec![],
            signed_out: false,
        }),
        Context {
            issuer_base: BASE.into(),
        },
        Box::new(|| NOW),
    );
    let cases = [
        (
            "apis:\n  - name: a\n    kind: soap\n    prefix: /a\n    routes: []\n",
            3,
            "soap",
        ),
        (
            "apis:\n  - name: a\n    kind: rest\n    prefix: /a\n    routes:\n      - route: GET x\n        integration: {type: mock}\n",
            6,
            "must start with /",
        ),
        (
            "apis:\n  - name: a\n    kind: http\n    prefix: /a\n    routes:\n      - route: GET /x\n        authorizer: who\n        integration: {type: mock}\n",
            7,
            "who",
        ),
        (
            "apis:\n  - name: a\n    kind: http\n    prefix: /a\n    routes:\n      - route: GET /x\n        integration: {type: http, url: \"http://up/{id}\"}\n",
            7,
            "{id}",
        ),
        (
            "apis:\n  - name: a\n    kind: http\n    authorizers:\n      - {name: j, type: jwt, issuer: \"http://idp.example.com\", audience: [c]}\n    prefix: /a\n    routes:\n      - route: GET /x\n        integration: {type: mock}\n",
            5,
            "https",
        ),
        (
            "apis:\n  - name: a\n    kind: http\n    prefix: /a\n    routes:\n      - route: GET /x\n        api_key_required: true\n        integration: {type: mock}\n",
            7,
            "API keys belong to rest APIs",
        ),
        (
            "apis:\n  - name: a\n    kind: rest\n    authorizers:\n      - name: u\n        type: cognito\n        pools: [us-east-1_Abc]\n        identity_validation_expression: \"web(\"\n    prefix: /a\n    routes: []\n",
            8,
            "not a regular expression",
        ),
    ];
    for (yaml, line, word) in cases {
        let file: File = serde_saphyr::from_str(yaml).unwrap();
        let err = g.check(&file.apis).unwrap_err();
        assert_eq!(err.line, line, "{yaml}: {err}");
        assert!(err.to_string().contains(word), "{err}");
    }
}
