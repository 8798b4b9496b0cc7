//! The pool's signing keys as the directory exposes them: the JWKS, rotation, upkeep.

use tokens::Jwks;

use crate::error::Result;
use crate::{Directory, Millis};

impl Directory {
    /// The public keys of the pool, as its JWKS lists them (keys about to sign included).
    pub async fn jwks(&self, pool_id: &str) -> Result<Jwks> {
        self.pool(pool_id).await?;
        Ok(self.keys.keys(pool_id).await?.jwks.clone())
    }

    /// `Ok` when the pool exists (the discovery document needs nothing else).
    pub async fn pool_exists(&self, pool_id: &str) -> Result<()> {
        self.pool(pool_id).await.map(|_| ())
    }

    /// New signing keys for the pool, published now and signing after `lead`.
    pub async fn rotate_keys(&self, pool_id: &str, lead: Millis) -> Result<()> {
        self.pool(pool_id).await?;
        self.keys.rotate(pool_id, lead).await
    }

    /// Forgets used challenge sessions once expired, refresh-token families a day after they
    /// expired (no access token minted from one can outlive that), and failures at names nobody
    /// has once the lockout would have forgotten them.
    pub async fn purge_expired_sign_ins(&self) -> Result<u64> {
        let now = self.now();
        Ok(self
            .store
            .purge_expired(
                now,
                now - crate::keys::MAX_TOKEN_LIFETIME,
                now - crate::lockout::FORGET_AFTER_MS,
            )
            .await?)
    }

    /// Key upkeep for every pool (see [`crate::keys::KeyRing::maintain`]).
    pub async fn maintain_keys(&self, rotate_after: Option<Millis>, lead: Millis) -> Result<()> {
        self.keys.maintain(rotate_after, lead).await
    }
}
