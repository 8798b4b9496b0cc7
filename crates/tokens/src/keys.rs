//! RSA-2048 signing keys and their public halves.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::{Error, Jwk, Result};

/// Cognito signs ID and access tokens with different keys; each key serves one use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyUse {
    Id,
    Access,
}

impl KeyUse {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyUse::Id => "id",
            KeyUse::Access => "access",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "id" => Some(KeyUse::Id),
            "access" => Some(KeyUse::Access),
            _ => None,
        }
    }
}

/// A private RS256 key with its key id.
pub struct SigningKey {
    kid: String,
    pair: KeyPair,
    rng: aws_lc_rs::rand::SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.kid)
    }
}

impl SigningKey {
    /// A new RSA-2048 key. Its id is the Base64 SHA-256 of the public key (44 characters, the
    /// look of Cognito's `kid`s), so the same key always has the same id.
    pub fn generate() -> Result<Self> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| Error::Key("generate"))?;
        Ok(Self::from_pair(pair))
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self> {
        let pair = KeyPair::from_pkcs8(der).map_err(|_| Error::Key("parse PKCS#8"))?;
        Ok(Self::from_pair(pair))
    }

    fn from_pair(pair: KeyPair) -> Self {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pair.public_key().as_ref());
        Self {
            kid: STANDARD.encode(digest.as_ref()),
            pair,
            rng: aws_lc_rs::rand::SystemRandom::new(),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key as PKCS#8 DER, to be sealed before it is stored.
    pub fn to_pkcs8(&self) -> Result<Vec<u8>> {
        self.pair
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| Error::Key("serialize"))
    }

    /// The public key as a JWK, as the pool's JWKS lists it.
    pub fn jwk(&self) -> Jwk {
        let c = PublicKeyComponents::<Vec<u8>>::from(self.pair.public_key());
        Jwk {
            alg: "RS256".into(),
            e: URL_SAFE_NO_PAD.encode(&c.e),
            kid: self.kid.clone(),
            kty: "RSA".into(),
            n: URL_SAFE_NO_PAD.encode(&c.n),
            r#use: "sig".into(),
        }
    }

    pub(crate) fn sign_bytes(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
            .map_err(|_| Error::Key("sign"))?;
        Ok(sig)
    }
}
