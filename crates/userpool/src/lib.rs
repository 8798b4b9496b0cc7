//! The user directory: Cognito's rules for user pools, app clients, users, attributes, groups,
//! codes and messages, as plain Rust over the [`Store`], [`Clock`], [`Random`] and
//! [`MessageSender`] traits. It knows nothing of HTTP; the wire layers translate to and from it.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod account;
pub mod attributes;
mod auth;
mod challenges;
mod changes;
mod clients;
mod codes;
pub mod error;
mod filter;
mod groups;
mod ids;
pub mod keys;
mod lockout;
mod mfa;
pub mod model;
mod paging;
pub mod password;
mod pools;
pub mod ports;
pub mod recent;
mod resource_servers;
mod signing;
mod srp_auth;
pub mod store;
mod totp;
mod users;

use std::sync::Arc;

pub use account::ConfirmForgotPassword;
pub use auth::{AuthRequest, Tokens};
pub use challenges::{AuthOutcome, Challenge, ChallengeAnswer};
pub use clients::{ClientInput, secret_hash_matches};
pub use error::Error;
use error::Result;
pub use groups::GroupInput;
pub use mfa::{
    MfaConfig, MfaConfigInput, MfaPreference, MfaPreferences, SmsMfaInput, user_mfa_settings,
};
pub use model::*;
pub use paging::Page;
pub use password::{HashProfile, PasswordHasher};
pub use pools::PoolInput;
pub use ports::{Clock, MessageSender, Random, SendError};
pub use store::Store;
pub use users::{AdminCreateUser, ListUsersQuery, SignUp, SignUpOutcome, srp_context};
use vault::Vault;

/// The right to run administrator (IAM-authorised) actions. The AWS front end hands one out
/// only to a caller whose SigV4 signature it verified; it may be limited to some pools.
#[derive(Debug, Clone)]
pub struct AdminGrant {
    region: String,
    pools: Option<Vec<String>>,
}

impl AdminGrant {
    /// `region` is where new pools are created; `pools`, when set, the only pools allowed.
    pub fn new(region: impl Into<String>, pools: Option<Vec<String>>) -> Self {
        Self {
            region: region.into(),
            pools,
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// True for a grant not limited to some pools (needed for server-wide changes).
    pub fn unrestricted(&self) -> bool {
        self.pools.is_none()
    }

    /// A pool of another region does not exist for this caller, as on AWS, where each region
    /// is its own endpoint (security checklist A15: the signature's region scope counts).
    fn check(&self, pool_id: &str) -> Result<()> {
        if !self.in_region(pool_id) {
            return Err(Error::not_found(format!(
                "User pool {pool_id} does not exist."
            )));
        }
        match &self.pools {
            Some(allowed) if !allowed.iter().any(|p| p == pool_id) => {
                Err(Error::AccessDenied(format!(
                    "This access key is not authorized to perform this action on resource {pool_id}."
                )))
            }
            _ => Ok(()),
        }
    }

    /// Pool ids are `{region}_{suffix}`.
    fn in_region(&self, pool_id: &str) -> bool {
        pool_id
            .rsplit_once('_')
            .is_some_and(|(region, _)| region == self.region)
    }

    fn may_create_pools(&self) -> Result<()> {
        match &self.pools {
            Some(_) => Err(Error::AccessDenied(
                "This access key is limited to some user pools.".into(),
            )),
            None => Ok(()),
        }
    }

    fn sees(&self, pool_id: &str) -> bool {
        self.check(pool_id).is_ok()
    }
}

/// Everything the directory runs on.
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub sender: Arc<dyn MessageSender>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    pub hasher: PasswordHasher,
    pub vault: Arc<Vault>,
    /// The account id in ARNs.
    pub account_id: String,
    /// Tokens' `iss` is this followed by `/{poolId}`.
    pub issuer_base: String,
}

/// The user directory service. Cheap to share behind an `Arc`.
pub struct Directory {
    store: Arc<dyn Store>,
    sender: Arc<dyn MessageSender>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    hasher: PasswordHasher,
    vault: Arc<Vault>,
    keys: keys::KeyRing,
    /// One credential check per user at a time on this node (see `lockout`).
    turns: Arc<lockout::SignInGuards>,
    /// Access tokens whose signature was verified, by digest.
    verified: recent::TtlCache<[u8; 32], auth::VerifiedAccess>,
    code_key: [u8; 32],
    refresh_key: [u8; 32],
    /// Keys the stand-in SRP answers for users who do not exist (`srp_auth::Decoy`).
    decoy_key: [u8; 32],
    account_id: String,
    issuer_base: String,
    refresh_reuse: RefreshReuse,
}

/// What presenting a refresh token that a rotation replaced does, past its grace period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RefreshReuse {
    /// Refuses it (RefreshTokenReuseException), as Cognito does; the family lives on.
    #[default]
    Refuse,
    /// Refuses it and revokes its family: whoever holds the family's current token (the
    /// rightful client or whoever stole a token and rotated first) must sign in again
    /// (security checklist A10; OAuth 2.0 Security BCP, refresh token reuse detection).
    RevokeFamily,
}

impl Directory {
    pub fn new(deps: Deps) -> Self {
        let code_key = deps.vault.derive_key("cognate/codes/v1");
        let refresh_key = deps.vault.derive_key("cognate/refresh-tokens/v1");
        let decoy_key = deps.vault.derive_key("cognate/srp-decoys/v1");
        let keys = keys::KeyRing::new(
            deps.store.clone(),
            deps.vault.clone(),
            deps.clock.clone(),
            deps.hasher.clone(),
        );
        Self {
            keys,
            verified: recent::TtlCache::new(std::time::Duration::from_secs(300), 100_000),
            turns: Arc::default(),
            store: deps.store,
            sender: deps.sender,
            clock: deps.clock,
            random: deps.random,
            hasher: deps.hasher,
            vault: deps.vault,
            code_key,
            refresh_key,
            decoy_key,
            account_id: deps.account_id,
            issuer_base: deps.issuer_base,
            refresh_reuse: RefreshReuse::default(),
        }
    }

    /// The directory with another answer to a replaced refresh token presented again.
    pub fn with_refresh_reuse(mut self, reuse: RefreshReuse) -> Self {
        self.refresh_reuse = reuse;
        self
    }

    fn now(&self) -> Millis {
        self.clock.now()
    }

    fn random_bytes<const N: usize>(&self) -> [u8; N] {
        let mut buf = [0u8; N];
        self.random.fill(&mut buf);
        buf
    }

    async fn pool(&self, pool_id: &str) -> Result<Pool> {
        self.store
            .get_pool(pool_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("User pool {pool_id} does not exist.")))
    }

    async fn admin_pool(&self, grant: &AdminGrant, pool_id: &str) -> Result<Pool> {
        grant.check(pool_id)?;
        self.pool(pool_id).await
    }
}

/// Compares two byte strings in time independent of where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_reaches_only_pools_of_its_region_and_its_list() {
        let anywhere = AdminGrant::new("us-east-1", None);
        assert!(anywhere.check("us-east-1_AbC123").is_ok());
        for other in ["eu-west-1_AbC123", "us-east-1", "us-east-10_AbC123", ""] {
            let Err(Error::ResourceNotFound(msg)) = anywhere.check(other) else {
                panic!("{other} should not exist for a us-east-1 caller");
            };
            assert_eq!(msg, format!("User pool {other} does not exist."));
        }
        let limited = AdminGrant::new("us-east-1", Some(vec!["us-east-1_AbC123".into()]));
        assert!(limited.sees("us-east-1_AbC123"));
        assert!(!limited.sees("us-east-1_Other1"));
        assert!(matches!(
            limited.check("us-east-1_Other1"),
            Err(Error::AccessDenied(_))
        ));
    }
}
