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
    let payload = serde_json::to_vec(claims).map_err(|_| Error::Malformed("claims"))?;
    sign_parts(key, header.to_string().as_bytes(), &payload)
}

/// The compact form of these header and payload bytes, signed.
fn sign_parts(key: &SigningKey, header: &[u8], payload: &[u8]) -> Result<String> {
    let mut out = String::with_capacity(1024);
    out.push_str(&URL_SAFE_NO_PAD.encode(header));
    out.push('.');
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
        let header = decode_object(header)?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(Error::Malformed("alg is not RS256"));
        }
        // RFC 7515 4.1.11: extensions named critical must be understood, and we know none.
        if header.contains_key("crit") {
            return Err(Error::Malformed("crit"));
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
        let claims = decode_object(payload)?;
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
    decode_object(payload)
}

/// A header or payload: unpadded base64url of a JSON object in which no object, at any depth,
/// names a member twice — a parser that kept the first `exp` and one that kept the last would
/// read two different tokens from the same signed bytes.
fn decode_object(part: &str) -> Result<Claims> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Error::Malformed("base64url"))?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let value = serde::Deserializer::deserialize_any(&mut de, Unique)
        .map_err(|_| Error::Malformed("json"))?;
    de.end().map_err(|_| Error::Malformed("json"))?;
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(Error::Malformed("not a JSON object")),
    }
}

/// Builds a [`Value`] as serde_json's own does, refusing a member named twice in an object.
struct Unique;

impl<'de> serde::de::DeserializeSeed<'de> for Unique {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Unique)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Unique)?;
            if members.insert(key, value).is_some() {
                return Err(serde::de::Error::custom("a member named twice"));
            }
        }
        Ok(Value::Object(members))
    }
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

    /// `header.payload.signature` of the given header and payload text, signed by `key`.
    fn signed_raw(key: &SigningKey, header: &str, payload: &[u8]) -> String {
        sign_parts(key, header.as_bytes(), payload).unwrap()
    }

    /// Security checklist G8 and G14: tokens whose bytes are genuinely signed but that read two
    /// ways, or that demand extensions no one here understands, are refused.
    #[test]
    fn signed_tokens_that_read_two_ways_are_refused() {
        let key = SigningKey::generate().unwrap();
        let v = verifier(&key);
        let kid = key.kid();
        let good = format!(r#"{{"kid":"{kid}","alg":"RS256"}}"#);
        let payload = br#"{"sub":"s","token_use":"access","exp":2000}"#;
        assert!(v.verify(&signed_raw(&key, &good, payload), 1000).is_ok());
        let malformed = |t: &str| matches!(v.verify(t, 1000), Err(Error::Malformed(_)));

        let crit = format!(r#"{{"kid":"{kid}","alg":"RS256","crit":["exp"],"exp":1}}"#);
        assert!(malformed(&signed_raw(&key, &crit, payload)));
        // The member read last is the one a lenient parser keeps: here the acceptable one.
        let two_algs = format!(r#"{{"kid":"{kid}","alg":"none","alg":"RS256"}}"#);
        assert!(malformed(&signed_raw(&key, &two_algs, payload)));
        let two_exps = br#"{"sub":"s","token_use":"access","exp":2000,"exp":999999}"#;
        assert!(malformed(&signed_raw(&key, &good, two_exps)));
        let nested = br#"{"sub":"s","exp":2000,"address":{"country":"a","country":"b"}}"#;
        assert!(malformed(&signed_raw(&key, &good, nested)));
        let not_utf8 = b"{\"sub\":\"\xff\xfe\",\"exp\":2000}";
        assert!(malformed(&signed_raw(&key, &good, not_utf8)));
        assert!(malformed(&signed_raw(&key, &good, b"[1,2]")));
        assert!(malformed(&signed_raw(&key, &good, br#"{"exp":2000} {}"#)));
        // Only a string exp counts as missing: the claim must be a number.
        let text_exp = br#"{"sub":"s","exp":"2000"}"#;
        assert!(malformed(&signed_raw(&key, &good, text_exp)));

        // Padding, and the standard alphabet's '+' and '/', are not base64url.
        let t = signed_raw(&key, &good, payload);
        let (head, rest) = t.split_once('.').unwrap();
        let padded = format!("{head}=.{rest}");
        assert!(malformed(&padded));
        let sig_std = t.replace('-', "+").replace('_', "/");
        if sig_std != t {
            assert!(malformed(&sig_std));
        }
    }

    /// Security checklist G7: a header naming a key of its own (`jwk`, `jku`, `x5u`, `x5c`)
    /// changes nothing: only the verifier's keys count.
    #[test]
    fn keys_named_in_the_header_are_ignored() {
        let key = SigningKey::generate().unwrap();
        let v = verifier(&key);
        let attacker = SigningKey::generate().unwrap();
        let jwk = serde_json::to_string(&attacker.jwk()).unwrap();
        let payload = br#"{"sub":"admin","token_use":"access","exp":2000}"#;
        for (kid, extra) in [
            (key.kid(), format!(r#""jwk":{jwk}"#)),
            (attacker.kid(), format!(r#""jwk":{jwk}"#)),
            (
                key.kid(),
                r#""jku":"http://attacker.example/jwks.json""#.to_string(),
            ),
            (
                key.kid(),
                r#""x5u":"http://attacker.example/cert.pem""#.to_string(),
            ),
            (key.kid(), r#""x5c":["MIIB"]"#.to_string()),
        ] {
            let header = format!(r#"{{"kid":"{kid}","alg":"RS256",{extra}}}"#);
            let got = v.verify(&signed_raw(&attacker, &header, payload), 1000);
            assert!(
                matches!(got, Err(Error::BadSignature | Error::UnknownKey)),
                "{header}: {got:?}"
            );
        }
    }
}
