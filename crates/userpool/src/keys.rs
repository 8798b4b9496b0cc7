//! Each pool's signing keys: sealed at rest, rotated with an overlap so that the JWKS publishes
//! a key before it signs and keeps it until its last token expired.
//!
//! A pool's first keys are made when they are first needed (its JWKS or its first token), not
//! by CreateUserPool: RSA generation costs about 170 ms a pool, and test suites create pools by
//! the hundred. From outside nothing tells the two apart: a pool's JWKS always lists its keys.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokens::{Jwk, Jwks, KeyUse, SigningKey, Verifier};
use vault::Vault;

use crate::error::{Error, Result};
use crate::password::PasswordHasher;
use crate::store::{Store, StoredKey};
use crate::{Clock, Millis};

/// ID and access tokens live at most a day: a retired key stays published that long.
pub const MAX_TOKEN_LIFETIME: Millis = 86_400_000;
/// How long a node trusts its copy of a pool's keys before reading them again.
const CACHE_FOR: Millis = 10_000;

/// One pool's keys as a node holds them.
pub struct PoolKeys {
    loaded: Millis,
    signers: Vec<(KeyUse, Arc<SigningKey>)>,
    pub jwks: Jwks,
    pub verifier: Verifier,
}

impl PoolKeys {
    /// The key that signs tokens of `key_use` now.
    pub fn signer(&self, key_use: KeyUse) -> Result<&Arc<SigningKey>> {
        self.signers
            .iter()
            .find(|(u, _)| *u == key_use)
            .map(|(_, k)| k)
            .ok_or_else(|| Error::Internal(format!("the pool has no {} key", key_use.as_str())))
    }
}

/// The key that signs tokens of `key_use` at `now`: the newest whose time has come and that
/// has not been retired.
fn current(stored: &[StoredKey], key_use: KeyUse, now: Millis) -> Option<&StoredKey> {
    stored
        .iter()
        .filter(|k| k.key_use == key_use.as_str())
        .filter(|k| k.signs_from <= now && k.retired.is_none_or(|r| r > now))
        .max_by_key(|k| k.signs_from)
}

pub struct KeyRing {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    clock: Arc<dyn Clock>,
    hasher: PasswordHasher,
    cache: RwLock<HashMap<String, Arc<PoolKeys>>>,
    creating: tokio::sync::Mutex<()>,
}

fn context(pool_id: &str, kid: &str) -> Vec<u8> {
    format!("signing-key/{pool_id}/{kid}").into_bytes()
}

fn key_error(e: tokens::Error) -> Error {
    Error::Internal(e.to_string())
}

impl KeyRing {
    pub fn new(
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        clock: Arc<dyn Clock>,
        hasher: PasswordHasher,
    ) -> Self {
        Self {
            store,
            vault,
            clock,
            hasher,
            cache: RwLock::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    /// Gives a pool without keys its ID-token and access-token keys, signing at once. A node
    /// making them at the same moment as another loses quietly (the store keeps one current
    /// key per use); this node's creations are serialised.
    async fn create(&self, pool_id: &str) -> Result<()> {
        let _one_at_a_time = self.creating.lock().await;
        let now = self.clock.now();
        let have = self.store.signing_keys(pool_id).await?;
        for key_use in [KeyUse::Id, KeyUse::Access] {
            if current(&have, key_use, now).is_none() {
                let key = self.new_key(pool_id, key_use, now).await?;
                self.store.add_first_signing_key(&key).await?;
            }
        }
        self.forget(pool_id);
        Ok(())
    }

    /// New keys for both uses, published now and signing after `lead`; the current keys stop
    /// signing then but stay published until their tokens have expired.
    pub async fn rotate(&self, pool_id: &str, lead: Millis) -> Result<()> {
        // Something must sign until the new keys do.
        self.keys(pool_id).await?;
        let from = self.clock.now() + lead;
        let keys = [
            self.new_key(pool_id, KeyUse::Id, from).await?,
            self.new_key(pool_id, KeyUse::Access, from).await?,
        ];
        // Both or neither: a rotation done because a key leaked must not stop half way.
        let done = self.store.rotate_signing_keys(&keys).await;
        self.forget(pool_id);
        Ok(done?)
    }

    async fn new_key(
        &self,
        pool_id: &str,
        key_use: KeyUse,
        signs_from: Millis,
    ) -> Result<StoredKey> {
        // RSA key generation is CPU work: it runs on the hashing threads, off the runtime.
        let key = self
            .hasher
            .run(|_| SigningKey::generate())
            .await?
            .map_err(key_error)?;
        let der = key.to_pkcs8().map_err(key_error)?;
        let jwk = serde_json::to_string(&key.jwk()).map_err(|e| Error::Internal(e.to_string()))?;
        let stored = StoredKey {
            pool_id: pool_id.to_string(),
            kid: key.kid().to_string(),
            key_use: key_use.as_str().to_string(),
            private_sealed: self.vault.seal(&der, &context(pool_id, key.kid()))?,
            jwk,
            created: self.clock.now(),
            signs_from,
            retired: None,
        };
        Ok(stored)
    }

    fn forget(&self, pool_id: &str) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(pool_id);
        }
    }

    /// The pool's keys, read again from the store when this node's copy is older than a few
    /// seconds (another node may have rotated them).
    pub async fn keys(&self, pool_id: &str) -> Result<Arc<PoolKeys>> {
        let now = self.clock.now();
        if let Ok(cache) = self.cache.read()
            && let Some(k) = cache.get(pool_id)
            && now - k.loaded < CACHE_FOR
        {
            return Ok(k.clone());
        }
        let mut keys = self.load(pool_id, now).await?;
        if keys.signers.len() < 2 {
            // The pool's first use (or a pool made before keys existed): give it keys now.
            self.create(pool_id).await?;
            // Read the clock again: the new keys sign from the moment they were made.
            keys = self.load(pool_id, self.clock.now()).await?;
        }
        let keys = Arc::new(keys);
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(pool_id.to_string(), keys.clone());
        }
        Ok(keys)
    }

    async fn load(&self, pool_id: &str, now: Millis) -> Result<PoolKeys> {
        let stored = self.store.signing_keys(pool_id).await?;
        let mut jwks = Jwks::default();
        let mut verifier = Verifier::new();
        let mut signers = Vec::new();
        for key_use in [KeyUse::Id, KeyUse::Access] {
            if let Some(k) = current(&stored, key_use, now) {
                let der = self
                    .vault
                    .open(&k.private_sealed, &context(pool_id, &k.kid))?;
                let key = SigningKey::from_pkcs8(&der).map_err(key_error)?;
                signers.push((key_use, Arc::new(key)));
            }
        }
        for k in &stored {
            let jwk: Jwk = serde_json::from_str(&k.jwk)
                .map_err(|e| Error::Internal(format!("stored JWK: {e}")))?;
            verifier.add(&jwk).map_err(key_error)?;
            jwks.keys.push(jwk);
        }
        Ok(PoolKeys {
            loaded: now,
            signers,
            jwks,
            verifier,
        })
    }

    /// Upkeep: deletes keys whose last token has expired and, when `rotate_after` is set,
    /// rotates the keys of pools whose keys are older than that.
    pub async fn maintain(&self, rotate_after: Option<Millis>, lead: Millis) -> Result<()> {
        let now = self.clock.now();
        self.store
            .delete_retired_keys(now - MAX_TOKEN_LIFETIME)
            .await?;
        if let Some(age) = rotate_after {
            for pool_id in self.store.pools_with_keys_older_than(now - age).await? {
                self.rotate(&pool_id, lead).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, key_use: &str, signs_from: Millis, retired: Option<Millis>) -> StoredKey {
        StoredKey {
            pool_id: "p".into(),
            kid: kid.into(),
            key_use: key_use.into(),
            private_sealed: vec![],
            jwk: String::new(),
            created: 0,
            signs_from,
            retired,
        }
    }

    #[test]
    fn a_rotated_key_signs_only_from_its_time_and_the_old_one_until_then() {
        // Rotation at t=100 with a lead of 50: the new key is published at 100, signs from 150.
        let keys = [
            key("old", "id", 0, Some(150)),
            key("new", "id", 150, None),
            key("acc", "access", 0, None),
        ];
        let kid = |now| current(&keys, KeyUse::Id, now).map(|k| k.kid.as_str());
        assert_eq!(kid(100), Some("old"));
        assert_eq!(kid(149), Some("old"));
        assert_eq!(kid(150), Some("new"));
        assert_eq!(kid(10_000), Some("new"));
        assert_eq!(
            current(&keys, KeyUse::Access, 150).map(|k| k.kid.as_str()),
            Some("acc")
        );
    }

    #[test]
    fn without_a_current_key_nothing_signs() {
        let keys = [
            key("future", "id", 500, None),
            key("gone", "id", 0, Some(100)),
        ];
        assert!(current(&keys, KeyUse::Id, 200).is_none());
        assert!(current(&keys, KeyUse::Access, 200).is_none());
    }
}
