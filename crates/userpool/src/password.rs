//! Password rules (a pool's policy) and argon2id hashing on dedicated threads behind a bounded
//! queue: when the queue is full a request fails fast with TooManyRequests instead of waiting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use argon2::{Algorithm, Argon2, Block, Params, Version};

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

    fn params(self) -> Result<Params> {
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(HASH_LEN),
        )
        .map_err(|e| Error::Internal(format!("argon2 params: {e}")))
    }
}

const HASH_LEN: usize = 32;

/// A hashing thread's own argon2 memory, reused from one job to the next (allocating and
/// faulting in 19 MiB per hash would cost as much as a tenth of the hash itself).
pub struct Workspace {
    profile: HashProfile,
    blocks: Vec<Block>,
}

impl Workspace {
    fn argon2(&mut self, p: HashProfile, password: &[u8], salt: &[u8]) -> Result<[u8; HASH_LEN]> {
        let params = p.params()?;
        let blocks = params.block_count();
        if self.blocks.len() < blocks {
            self.blocks.resize(blocks, Block::default());
        }
        let mut out = [0u8; HASH_LEN];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into_with_memory(password, salt, &mut out, &mut self.blocks[..blocks])
            .map_err(|e| Error::Internal(format!("argon2: {e}")))?;
        Ok(out)
    }

    /// A PHC string recording its own parameters, so profile changes never break old hashes.
    pub fn hash(&mut self, password: &str, salt: &[u8; 16]) -> Result<String> {
        let p = self.profile;
        let out = self.argon2(p, password.as_bytes(), salt)?;
        Ok(format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            p.memory_kib,
            p.iterations,
            p.parallelism,
            B64.encode(salt),
            B64.encode(out)
        ))
    }

    /// Whether `password` matches the PHC string, with the parameters it records.
    pub fn verify(&mut self, password: &str, phc: &str) -> Result<bool> {
        let Some((profile, salt, expected)) = parse_phc(phc) else {
            return Err(Error::Internal(
                "stored password hash is not an argon2id PHC string".into(),
            ));
        };
        let out = self.argon2(profile, password.as_bytes(), &salt)?;
        Ok(crate::ct_eq(&out, &expected))
    }
}

use base64::Engine as _;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

/// `$argon2id$v=19$m=…,t=…,p=…$salt$hash` → its parameters, salt and hash.
fn parse_phc(phc: &str) -> Option<(HashProfile, Vec<u8>, Vec<u8>)> {
    let mut parts = phc.split('$');
    let (_, alg, version, params, salt, hash) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if alg != "argon2id" || version != "v=19" || parts.next().is_some() {
        return None;
    }
    let mut p = HashProfile {
        memory_kib: 0,
        iterations: 0,
        parallelism: 0,
    };
    for kv in params.split(',') {
        let (k, v) = kv.split_once('=')?;
        let v: u32 = v.parse().ok()?;
        match k {
            "m" => p.memory_kib = v,
            "t" => p.iterations = v,
            "p" => p.parallelism = v,
            _ => return None,
        }
    }
    let hash = B64.decode(hash).ok()?;
    (hash.len() == HASH_LEN).then_some(())?;
    Some((p, B64.decode(salt).ok()?, hash))
}

type Job = Box<dyn FnOnce(&mut Workspace) + Send>;

pub(crate) fn too_many() -> Error {
    Error::TooManyRequests("Too many requests. Try again later.".into())
}

/// Hashes and verifies passwords on dedicated threads, one per core, each with its own argon2
/// memory. At most `queue` jobs wait; past that a request fails at once with TooManyRequests
/// instead of waiting longer and longer.
#[derive(Clone)]
pub struct PasswordHasher {
    profile: HashProfile,
    jobs: SyncSender<Job>,
    /// Jobs queued and not yet picked up by a thread.
    waiting: Arc<AtomicUsize>,
    queue: usize,
}

impl PasswordHasher {
    pub fn new(profile: HashProfile, workers: usize, queue: usize) -> Self {
        let (jobs, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("cognate-hash-{i}"))
                .spawn(move || {
                    let mut ws = Workspace {
                        profile,
                        blocks: Vec::new(),
                    };
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut ws),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Self {
            profile,
            jobs,
            waiting: Arc::new(AtomicUsize::new(0)),
            queue,
        }
    }

    /// Whether a job would be queued now. Callers check it before any other work, so that
    /// excess load is turned away for the price of this load, not of a database round trip.
    pub fn has_room(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) < self.queue
    }

    pub fn profile(&self) -> HashProfile {
        self.profile
    }

    /// Runs `job` on a hashing thread.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Workspace) -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiting = self.waiting.clone();
        let job: Job = Box::new(move |ws| {
            waiting.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send(job(ws));
        });
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.jobs.try_send(job).map_err(|e| {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            match e {
                TrySendError::Full(_) => too_many(),
                TrySendError::Disconnected(_) => {
                    Error::Internal("password hashing threads stopped".into())
                }
            }
        })?;
        rx.await
            .map_err(|_| Error::Internal("a password hashing job was lost".into()))
    }

    pub async fn hash(&self, password: &str, salt: [u8; 16]) -> Result<String> {
        let password = password.to_string();
        self.run(move |ws| ws.hash(&password, &salt)).await?
    }

    pub async fn verify(&self, password: &str, phc: &str) -> Result<bool> {
        let (password, phc) = (password.to_string(), phc.to_string());
        self.run(move |ws| ws.verify(&password, &phc)).await?
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

    #[test]
    fn phc_strings_round_trip_and_match_the_reference_implementation() {
        use argon2::password_hash::PasswordVerifier;
        let mut ws = Workspace {
            profile: HashProfile::DEVELOPMENT,
            blocks: Vec::new(),
        };
        let phc = ws.hash("pw", &[3; 16]).unwrap();
        // The argon2 crate's own verifier accepts our string, and we accept it back.
        assert!(
            Argon2::default()
                .verify_password(b"pw", phc.as_str())
                .is_ok()
        );
        assert!(ws.verify("pw", &phc).unwrap());
        assert!(!ws.verify("px", &phc).unwrap());
        assert!(
            ws.verify("pw", "$argon2i$v=19$m=64,t=1,p=1$AAAA$AAAA")
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_full_queue_fails_fast() {
        // One thread, one queue slot. The thread is held inside a job until released, so the
        // slot and the thread are known to be taken (no race with the thread's pick-up).
        let h = PasswordHasher::new(HashProfile::DEVELOPMENT, 1, 1);
        assert!(h.has_room());
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let busy = h.clone();
        let first = tokio::spawn(async move {
            busy.run(move |_| {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
            })
            .await
        });
        tokio::task::spawn_blocking(move || started_rx.recv())
            .await
            .unwrap()
            .unwrap();
        // The second job fills the queue (it is accepted; we stop waiting for it) ...
        let queued =
            tokio::time::timeout(std::time::Duration::from_millis(50), h.hash("y", [2; 16])).await;
        assert!(queued.is_err(), "the queued job cannot have run yet");
        assert!(
            !h.has_room(),
            "callers can see the queue is full before trying"
        );
        // ... and the third is refused at once (were it accepted, it would wait for ever).
        let third = h.hash("z", [3; 16]).await;
        assert!(
            matches!(third, Err(Error::TooManyRequests(_))),
            "a hash should be refused while the thread and the queue are busy"
        );
        release_tx.send(()).unwrap();
        assert!(first.await.unwrap().is_ok());
        // Once the thread picks the queued job up, there is room again.
        for _ in 0..200 {
            if h.has_room() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("the queue never drained");
    }
}
