//! Password rules (a pool's policy) and argon2id hashing off the async runtime, behind a bounded
//! queue: when the queue is full a request fails fast with TooManyRequests instead of waiting.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::model::PasswordPolicy;

/// The symbols Cognito counts as "special characters".
const SYMBOLS: &str = "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+- ";

/// Longest password accepted anywhere (the API's limit).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Checks a password against a pool's policy, with Cognito's messages. Passwords are compared
/// exactly as given (no Unicode normalisation); length counts Unicode scalar values.
pub fn check_policy(policy: &PasswordPolicy, password: &str) -> Result<()> {
    let fail = |why: &str| {
        Err(Error::InvalidPassword(format!(
            "Password did not conform with policy: {why}"
        )))
    };
    let chars = password.chars().count();
    if chars > MAX_PASSWORD_CHARS {
        return fail("Password must have a length less than or equal to 256");
    }
    if chars < policy.minimum_length as usize {
        return fail("Password not long enough");
    }
    if policy.require_uppercase && !password.chars().any(char::is_uppercase) {
        return fail("Password must have uppercase characters");
    }
    if policy.require_lowercase && !password.chars().any(char::is_lowercase) {
        return fail("Password must have lowercase characters");
    }
    if policy.require_numbers && !password.chars().any(|c| c.is_ascii_digit()) {
        return fail("Password must have numeric characters");
    }
    if policy.require_symbols && !password.chars().any(|c| SYMBOLS.contains(c)) {
        return fail("Password must have symbol characters");
    }
    Ok(())
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashProfile {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashProfile {
    /// OWASP's baseline: 19 MiB, two passes, one lane.
    pub const DEFAULT: HashProfile = HashProfile {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };
    /// For test suites that create thousands of users; never for real passwords.
    pub const DEVELOPMENT: HashProfile = HashProfile {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
}

/// Hashes and verifies passwords on the blocking pool, at most `workers` at a time and at most
/// `queue` more waiting.
#[derive(Clone)]
pub struct PasswordHasher {
    profile: HashProfile,
    workers: Arc<Semaphore>,
    admission: Arc<Semaphore>,
}

impl PasswordHasher {
    pub fn new(profile: HashProfile, workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self {
            profile,
            workers: Arc::new(Semaphore::new(workers)),
            admission: Arc::new(Semaphore::new(workers + queue)),
        }
    }

    pub fn profile(&self) -> HashProfile {
        self.profile
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _admitted =
            self.admission.clone().try_acquire_owned().map_err(|_| {
                Error::TooManyRequests("Too many requests. Try again later.".into())
            })?;
        let _worker = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("hasher closed".into()))?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| Error::Internal(format!("hashing task failed: {e}")))
    }

    /// A PHC string recording its own parameters, so profile changes never break old hashes.
    pub async fn hash(&self, password: &str, salt: [u8; 16]) -> Result<String> {
        let p = self.profile;
        let password = password.as_bytes().to_vec();
        self.run(move || {
            let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
                .map_err(|e| Error::Internal(format!("argon2 params: {e}")))?;
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password_with_salt(&password, &salt)
                .map(|h| h.to_string())
                .map_err(|e| Error::Internal(format!("argon2: {e}")))
        })
        .await?
    }

    /// Whether `password` matches `phc`, with the parameters the hash records.
    pub async fn verify(&self, password: &str, phc: &str) -> Result<bool> {
        let password = password.as_bytes().to_vec();
        let phc = phc.to_string();
        self.run(move || {
            Argon2::default()
                .verify_password(&password, phc.as_str())
                .is_ok()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_messages_name_the_missing_class() {
        let p = PasswordPolicy::default();
        let msg = |pw: &str| check_policy(&p, pw).unwrap_err().to_string();
        assert!(msg("Ab1!").contains("not long enough"));
        assert!(msg("abcdefg1!").contains("uppercase"));
        assert!(msg("ABCDEFG1!").contains("lowercase"));
        assert!(msg("Abcdefgh!").contains("numeric"));
        assert!(msg("Abcdefgh1").contains("symbol"));
        assert!(check_policy(&p, "Abcdefg1!").is_ok());
        assert!(msg(&format!("Aa1!{}", "x".repeat(253))).contains("256"));
    }

    #[tokio::test]
    async fn hashes_verify_across_profiles() {
        let dev = PasswordHasher::new(HashProfile::DEVELOPMENT, 1, 4);
        let h = dev.hash("Correct-Horse-9", [7; 16]).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        let strong = PasswordHasher::new(HashProfile::DEFAULT, 1, 4);
        assert!(strong.verify("Correct-Horse-9", &h).await.unwrap());
        assert!(!strong.verify("wrong", &h).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_fails_fast() {
        let h = PasswordHasher::new(HashProfile::DEFAULT, 1, 0);
        let busy = h.clone();
        let first = tokio::spawn(async move { busy.hash("x", [1; 16]).await });
        tokio::task::yield_now().await;
        let mut refused = false;
        for _ in 0..50 {
            if let Err(Error::TooManyRequests(_)) = h.hash("y", [2; 16]).await {
                refused = true;
                break;
            }
        }
        assert!(
            refused,
            "a second hash should be refused while the only slot is busy"
        );
        assert!(first.await.unwrap().is_ok());
    }
}
