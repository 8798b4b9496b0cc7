//! The master key and the authenticated encryption of secrets at rest (AES-256-GCM).
//!
//! Everything secret that the database holds (SRP verifiers, later signing keys) is sealed with
//! this key; the associated data binds each ciphertext to the row and column it belongs to, so a
//! sealed value copied into another row does not open.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Length of a master key in bytes.
pub const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the master key must be {KEY_BYTES} bytes, base64-encoded")]
    BadKey,
    #[error("a sealed value could not be opened with this master key")]
    CannotOpen,
    #[error("the system random source failed")]
    Random,
}

/// A master key able to seal and open secrets.
pub struct Vault {
    key: LessSafeKey,
    derive: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

impl Vault {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VaultError> {
        if bytes.len() != KEY_BYTES {
            return Err(VaultError::BadKey);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| VaultError::BadKey)?;
        let derive = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, bytes);
        Ok(Self {
            key: LessSafeKey::new(unbound),
            derive,
        })
    }

    /// Parses the base64 text form used in `COGNATE_MASTER_KEY` and the key file.
    pub fn from_base64(text: &str) -> Result<Self, VaultError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| VaultError::BadKey)?;
        Self::from_bytes(&bytes)
    }

    /// A fresh random key in its base64 text form.
    pub fn generate_base64() -> Result<String, VaultError> {
        let mut bytes = [0u8; KEY_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| VaultError::Random)?;
        Ok(STANDARD.encode(bytes))
    }

    /// A 32-byte key for one purpose (`label`), derived from the master key with HMAC-SHA256,
    /// e.g. the key that hashes one-time codes.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        let tag = aws_lc_rs::hmac::sign(&self.derive, label.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| VaultError::Random)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut buf,
            )
            .map_err(|_| VaultError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, VaultError> {
        if sealed.len() < NONCE_LEN {
            return Err(VaultError::CannotOpen);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::CannotOpen)?;
        let mut buf = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| VaultError::CannotOpen)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> Vault {
        Vault::from_base64(&Vault::generate_base64().unwrap()).unwrap()
    }

    #[test]
    fn sealed_values_open_with_the_same_key_and_context() {
        let v = vault();
        let sealed = v.seal(b"verifier", b"user:1").unwrap();
        assert_ne!(&sealed[NONCE_LEN..NONCE_LEN + 8], b"verifier");
        assert_eq!(v.open(&sealed, b"user:1").unwrap(), b"verifier");
    }

    #[test]
    fn another_key_or_context_cannot_open() {
        let v = vault();
        let sealed = v.seal(b"verifier", b"user:1").unwrap();
        assert!(matches!(
            v.open(&sealed, b"user:2"),
            Err(VaultError::CannotOpen)
        ));
        assert!(matches!(
            vault().open(&sealed, b"user:1"),
            Err(VaultError::CannotOpen)
        ));
        assert!(matches!(
            v.open(&sealed[..5], b"user:1"),
            Err(VaultError::CannotOpen)
        ));
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused() {
        assert!(matches!(
            Vault::from_base64("c2hvcnQ="),
            Err(VaultError::BadKey)
        ));
        assert!(matches!(
            Vault::from_base64("not base64!"),
            Err(VaultError::BadKey)
        ));
    }
}
