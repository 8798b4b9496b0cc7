//! Where the authorizers get the issuers' public keys: this server's own pools directly (through
//! [`LocalPools`]), any other issuer through its discovery document and JWKS over HTTP. Keys are
//! kept per issuer and fetched again when a token names an unknown `kid` — at most once per
//! [`REFETCH_AFTER`] — or when they are [`MAX_AGE`] old.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokens::{Claims, Jwks, Verifier};

/// The user pools this server holds, as the gateway may see them: their public keys and, for the
/// opt-in check, whether a session was signed out.
#[async_trait::async_trait]
pub trait LocalPools: Send + Sync + 'static {
    /// The JWKS of this server's pool whose issuer is `issuer`, `None` if it is not one.
    async fn jwks(&self, issuer: &str) -> Option<Jwks>;
    /// True when the access token's session was signed out or revoked (`None`: the issuer is not
    /// one of this server's pools, so nothing can be said).
    async fn signed_out(&self, issuer: &str, claims: &Claims) -> Option<bool>;
}

pub const REFETCH_AFTER: Duration = Duration::from_secs(10);
pub const MAX_AGE: Duration = Duration::from_secs(300);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

struct Entry {
    verifier: Arc<Verifier>,
    fetched: Instant,
}

const SHARDS: usize = 16;
/// Tokens remembered per shard; a full shard starts over (a burst of new tokens costs
/// verifications, never memory). At most 65,536 tokens, each kept whole (about 1 KiB) with its
/// claims and their JSON (about 3 KiB): some 256 MiB at the very most.
const PER_SHARD: usize = 4096;

/// Tokens whose signature verified: a caller sending the same token again costs no RSA
/// verification. Only the signature's verdict is remembered; expiry and every authorizer rule
/// are checked on each request.
///
/// A token is looked up by a keyed hash (SipHash, with a random key per process) of its last
/// [`TAIL`] bytes, which belong to its RSA signature, and then compared whole with the one
/// remembered: hashing all of a kilobyte-long token with SHA-256 had been 2.5 % of the gateway's
/// CPU. The comparison only runs for a token whose tail hashes as a remembered one's does, which
/// without the key means the same tail (the last 32 characters of a signature), so its timing
/// tells a caller nothing it did not send.
pub struct VerifiedTokens {
    hasher: RandomState,
    shards: [Mutex<HashMap<u64, Remembered>>; SHARDS],
}

struct Remembered {
    token: Box<str>,
    verified: Arc<Verified>,
}

/// How much of a token's end is hashed: 32 base64url characters, 192 bits of its signature.
const TAIL: usize = 32;

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

/// A token's verified claims, with the JSON the upstream is given made once per token, not
/// once per request (serialising them had been about 5 % of the gateway's CPU).
#[derive(Debug)]
pub struct Verified {
    pub claims: Claims,
    /// The claims as ASCII JSON ([`crate::proxy::ascii_json`]), ready as a header value.
    pub json: Option<http::HeaderValue>,
}

impl Verified {
    pub fn new(claims: Claims) -> Self {
        let json = http::HeaderValue::from_str(&crate::proxy::ascii_json(&claims)).ok();
        Self { claims, json }
    }
}

impl std::ops::Deref for Verified {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.claims
    }
}

impl VerifiedTokens {
    /// The key `token` is remembered by (see [`VerifiedTokens`]).
    fn key(&self, token: &str) -> u64 {
        let bytes = token.as_bytes();
        self.hasher
            .hash_one(&bytes[bytes.len().saturating_sub(TAIL)..])
    }

    fn shard(&self, key: u64) -> &Mutex<HashMap<u64, Remembered>> {
        // The key is already a keyed hash: any of its bits spread tokens evenly.
        &self.shards[(key % SHARDS as u64) as usize]
    }

    /// The verified claims of exactly `token`, if it verified before.
    pub fn get(&self, token: &str) -> Option<Arc<Verified>> {
        let key = self.key(token);
        let shard = self.shard(key).lock().ok()?;
        let remembered = shard.get(&key)?;
        (*remembered.token == *token).then(|| remembered.verified.clone())
    }

    /// Remembers that `token` verified (replacing another token of the same key, which two
    /// different tokens share only by a chance of one in 2^64).
    pub fn insert(&self, token: &str, verified: Arc<Verified>) {
        let key = self.key(token);
        if let Ok(mut shard) = self.shard(key).lock() {
            if shard.len() >= PER_SHARD {
                shard.clear();
            }
            let token = token.into();
            shard.insert(key, Remembered { token, verified });
        }
    }
}

pub struct KeyCache {
    local: Arc<dyn LocalPools>,
    http: reqwest::Client,
    entries: RwLock<HashMap<String, Entry>>,
    /// When each issuer's keys were last asked for, successful or not.
    attempts: Mutex<HashMap<String, Instant>>,
    /// One fetch per issuer at a time; callers that find one under way wait for its keys.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub verified: VerifiedTokens,
}

impl KeyCache {
    pub fn new(local: Arc<dyn LocalPools>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            local,
            http,
            entries: RwLock::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
            verified: VerifiedTokens::default(),
        }
    }

    pub fn local(&self) -> &dyn LocalPools {
        self.local.as_ref()
    }

    fn cached(&self, issuer: &str) -> Option<(Arc<Verifier>, Instant)> {
        let entries = self.entries.read().ok()?;
        entries.get(issuer).map(|e| (e.verifier.clone(), e.fetched))
    }

    /// The cached keys of `issuer` if they know `kid` and are not too old.
    fn fresh(&self, issuer: &str, kid: &str) -> Option<Arc<Verifier>> {
        let (v, at) = self.cached(issuer)?;
        (v.knows(kid) && at.elapsed() < MAX_AGE).then_some(v)
    }

    fn fetch_lock(&self, issuer: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.fetching.lock() {
            Ok(mut m) => m.entry(issuer.to_string()).or_default().clone(),
            // A poisoned map (a panic elsewhere): no waiting, as before the lock existed.
            Err(_) => Arc::default(),
        }
    }

    /// True if this caller may fetch now (and records the attempt).
    fn may_fetch(&self, issuer: &str) -> bool {
        let Ok(mut attempts) = self.attempts.lock() else {
            return false;
        };
        let now = Instant::now();
        match attempts.get(issuer) {
            Some(t) if now.duration_since(*t) < REFETCH_AFTER => false,
            _ => {
                attempts.insert(issuer.to_string(), now);
                true
            }
        }
    }

    /// Keys of `issuer` that should know `kid`; `None` when the issuer's keys cannot be had.
    pub async fn verifier(&self, issuer: &str, kid: &str) -> Option<Arc<Verifier>> {
        if let Some(v) = self.fresh(issuer, kid) {
            return Some(v);
        }
        // Behind a fetch under way (a fresh node's first requests all arrive at once): its
        // keys are the ones to use, rather than a refusal because another caller fetches.
        let lock = self.fetch_lock(issuer);
        let _turn = lock.lock().await;
        if let Some(v) = self.fresh(issuer, kid) {
            return Some(v);
        }
        let cached = self.cached(issuer);
        if !self.may_fetch(issuer) {
            return cached.map(|(v, _)| v);
        }
        match self.fetch(issuer).await {
            Some(jwks) => {
                let mut v = Verifier::new();
                for key in &jwks.keys {
                    // Keys of other algorithms are not used for tokens; skip them.
                    let _ = v.add(key);
                }
                let v = Arc::new(v);
                if let Ok(mut entries) = self.entries.write() {
                    entries.insert(
                        issuer.to_string(),
                        Entry {
                            verifier: v.clone(),
                            fetched: Instant::now(),
                        },
                    );
                }
                Some(v)
            }
            None => cached.map(|(v, _)| v),
        }
    }

    async fn fetch(&self, issuer: &str) -> Option<Jwks> {
        if let Some(jwks) = self.local.jwks(issuer).await {
            return Some(jwks);
        }
        match self.fetch_remote(issuer).await {
            Ok(jwks) => Some(jwks),
            Err(e) => {
                tracing::warn!(issuer, error = %e, "cannot fetch the issuer's JWKS");
                None
            }
        }
    }

    async fn fetch_remote(&self, issuer: &str) -> Result<Jwks, reqwest::Error> {
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc: serde_json::Value = self
            .http
            .get(&discovery)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')));
        self.http
            .get(&jwks_uri)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokens::SigningKey;

    /// A pool whose keys take a moment to read, counting the reads.
    struct SlowPool {
        key: SigningKey,
        reads: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl LocalPools for SlowPool {
        async fn jwks(&self, issuer: &str) -> Option<Jwks> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            (issuer == "http://local/pool").then(|| Jwks {
                keys: vec![self.key.jwk()],
            })
        }
        async fn signed_out(&self, _issuer: &str, _claims: &Claims) -> Option<bool> {
            None
        }
    }

    #[tokio::test]
    async fn callers_arriving_during_the_first_fetch_wait_for_its_keys() {
        let key = SigningKey::generate().unwrap();
        let kid = key.kid().to_string();
        let pool = Arc::new(SlowPool {
            key,
            reads: AtomicUsize::new(0),
        });
        let cache = Arc::new(KeyCache::new(pool.clone()));
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let (cache, kid) = (cache.clone(), kid.clone());
                tokio::spawn(async move { cache.verifier("http://local/pool", &kid).await })
            })
            .collect();
        for call in calls {
            let v = call
                .await
                .unwrap()
                .expect("every caller gets the issuer's keys");
            assert!(v.knows(&kid));
        }
        assert_eq!(
            pool.reads.load(Ordering::SeqCst),
            1,
            "one fetch for all of them"
        );
        // An unknown kid within REFETCH_AFTER is not fetched again (no fetch storms).
        assert!(
            !cache
                .verifier("http://local/pool", "no-such-kid")
                .await
                .unwrap()
                .knows("no-such-kid")
        );
        assert_eq!(pool.reads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_remembered_token_is_known_only_by_all_of_it() {
        let verified = VerifiedTokens::default();
        let claims = |sub: &str| {
            let mut c = Claims::new();
            c.insert("sub".into(), sub.into());
            Arc::new(Verified::new(c))
        };
        let signature = "s".repeat(342);
        let genuine = format!("header.payload-of-alice.{signature}");
        verified.insert(&genuine, claims("alice"));
        let hit = verified.get(&genuine).unwrap();
        assert_eq!(hit.claims["sub"], "alice");
        // Another payload under the same signature shares the key, not the verdict.
        let forged = format!("header.payload-of-mallory.{signature}");
        assert_eq!(verified.key(&forged), verified.key(&genuine));
        assert!(verified.get(&forged).is_none());
        // Nor does a token that is a part of the genuine one.
        let tail = &genuine[genuine.len() - TAIL..];
        assert!(verified.get(tail).is_none());
        // Once the forged one verifies (it cannot; say another key signed it), it replaces the
        // other under their shared key, and each is known only as itself.
        verified.insert(&forged, claims("mallory"));
        assert!(verified.get(&genuine).is_none());
        let hit = verified.get(&forged).unwrap();
        assert_eq!(hit.claims["sub"], "mallory");
    }
}
