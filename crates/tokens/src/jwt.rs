//! Compact RS256 JWS: signing with a [`SigningKey`], verifying with public keys parsed once.

use std::collections::HashMap;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::{Error, Jwk, Result, SigningKey};

/// A token's claims, in the order they were inserted.
pub type Claims = Map<String, Value>;

/// `header.payload.signature`, with Cognito's header `{"kid":…,"alg":"RS256"}`.
pub fn sign(key: &SigningKey, claims: &Claims) -> Result<String> {
    let header = serde_json::json!({ "kid": key.kid(), "alg": "RS256" });
    let mut out = String::with_capacity(1024);
    out.push_str(&URL_SAFE_NO_PAD.encode(header.to_string()));
    out.push('.');
    let payload = serde_json::to_vec(claims).map_err(|_| Error::Malformed("claims"))?;
    out.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let sig = key.sign_bytes(out.as_bytes())?;
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(sig));
    Ok(out)
}

/// Public keys by `kid`, parsed once, for verifying many tokens fast.
#[derive(Default)]
pub struct Verifier {
    keys: HashMap<String, ParsedPublicKey>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.keys()).finish()
    }
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an RS256 key from its JWK; keys of another type or algorithm are refused.
    pub fn add(&mut self, jwk: &Jwk) -> Result<()> {
        if jwk.kty != "RSA" || jwk.alg != "RS256" {
            return Err(Error::Key("not an RS256 key"));
        }
        let n = URL_SAFE_NO_PAD
            .decode(&jwk.n)
            .map_err(|_| Error::Key("modulus"))?;
        let e = URL_SAFE_NO_PAD
            .decode(&jwk.e)
            .map_err(|_| Error::Key("exponent"))?;
        let parsed = RsaPublicKeyComponents {
            n: &n[..],
            e: &e[..],
        }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .map_err(|_| Error::Key("public key"))?;
        self.keys.insert(jwk.kid.clone(), parsed);
        Ok(())
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The `kid` a token names in its header, without verifying anything.
    pub fn kid_of(token: &str) -> Result<String> {
        let header = token
            .split('.')
            .next()
            .ok_or(Error::Malformed("no header"))?;
        let header: Value = decode_json(header)?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(Error::Malformed("alg is not RS256"));
        }
        header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(Error::Malformed("no kid"))
    }

    /// The claims of a token whose signature verifies with a known key and whose `exp` is
    /// later than `now` (epoch seconds). Every other claim is the caller's to check.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims> {
        let mut parts = token.splitn(3, '.');
        let (Some(_), Some(payload), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::Malformed("not three parts"));
        };
        let kid = Self::kid_of(token)?;
        let key = self.keys.get(&kid).ok_or(Error::UnknownKey)?;
        let signed = &token[..token.len() - sig.len() - 1];
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| Error::Malformed("signature"))?;
        key.verify_sig(signed.as_bytes(), &sig)
            .map_err(|_| Error::BadSignature)?;
        let claims: Claims = decode_json(payload)?;
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(Error::Malformed("no exp"))?;
        if exp <= now {
            return Err(Error::Expired);
        }
        Ok(claims)
    }
}

/// A token's claims before anything about it is trusted (to learn which pool's keys to check
/// it with).
pub fn unverified_claims(token: &str) -> Result<Claims> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or(Error::Malformed("no payload"))?;
    decode_json(payload)
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Error::Malformed("base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| Error::Malformed("json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(exp: i64) -> Claims {
        let Value::Object(m) = json!({ "sub": "s", "token_use": "access", "exp": exp }) else {
            unreachable!()
        };
        m
    }

    fn verifier(key: &SigningKey) -> Verifier {
        let mut v = Verifier::new();
        v.add(&key.jwk()).unwrap();
        v
    }

    #[test]
    fn signed_tokens_verify_and_carry_their_claims() {
        let key = SigningKey::generate().unwrap();
        let token = sign(&key, &claims(2000)).unwrap();
        let back = verifier(&key).verify(&token, 1000).unwrap();
        assert_eq!(back, claims(2000));
        assert_eq!(Verifier::kid_of(&token).unwrap(), key.kid());
        assert_eq!(key.kid().len(), 44);
    }

    #[test]
    fn a_key_survives_its_pkcs8_round_trip() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8(&key.to_pkcs8().unwrap()).unwrap();
        assert_eq!(again.kid(), key.kid());
        let token = sign(&again, &claims(2000)).unwrap();
        assert!(verifier(&key).verify(&token, 1000).is_ok());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let key = SigningKey::generate().unwrap();
        let token = sign(&key, &claims(1000)).unwrap();
        assert_eq!(verifier(&key).verify(&token, 1000), Err(Error::Expired));
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let key = SigningKey::generate().unwrap();
        let v = verifier(&key);
        let token = sign(&key, &claims(2000)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        // Another payload under the original signature.
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&json!({ "sub": "admin", "token_use": "access", "exp": 2000 }))
                .unwrap(),
        );
        let t = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert_eq!(v.verify(&t, 1000), Err(Error::BadSignature));
        // A flipped signature bit.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[10] ^= 1;
        let t = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(v.verify(&t, 1000), Err(Error::BadSignature));
        // alg "none" with no signature.
        let none = URL_SAFE_NO_PAD.encode(format!(r#"{{"kid":"{}","alg":"none"}}"#, key.kid()));
        let t = format!("{none}.{}.", parts[1]);
        assert!(matches!(v.verify(&t, 1000), Err(Error::Malformed(_))));
        // Signed by a key the verifier does not know.
        let other = SigningKey::generate().unwrap();
        let t = sign(&other, &claims(2000)).unwrap();
        assert_eq!(v.verify(&t, 1000), Err(Error::UnknownKey));
        assert!(matches!(v.verify("a.b", 1000), Err(Error::Malformed(_))));
    }
}
