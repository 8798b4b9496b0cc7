//! Signing keys, RS256 JSON Web Tokens with Cognito's claim sets, their verification, and the
//! JWKS and OpenID discovery documents a pool publishes.
//!
//! Plain Rust: no HTTP, no database. Callers keep keys (sealed) wherever they like and hand this
//! crate the PKCS#8 bytes; the gateway uses [`Verifier`] alone, fed from a JWKS.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod claims;
mod documents;
mod jwt;
mod keys;

pub use claims::{Grant, access_token, id_token};
pub use documents::{Jwk, Jwks, openid_configuration};
pub use jwt::{Claims, Verifier, sign, unverified_claims};
pub use keys::{KeyUse, SigningKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a well-formed RS256 JWT, or a claim has the wrong type.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// Its `kid` names no key this verifier knows.
    #[error("unknown signing key")]
    UnknownKey,
    #[error("invalid signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    /// A key could not be generated, parsed or used.
    #[error("signing key: {0}")]
    Key(&'static str),
}

pub type Result<T> = std::result::Result<T, Error>;
