//! Cognito-compatible SRP-6a arithmetic: the group, the `padHex` encoding and the password verifier.
//!
//! Spec: `shared/spec/04-srp.md`: what the directory stores (salt + verifier) and the server's
//! half of the sign-in exchange (`B`, the session key `K`, the claim signature).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::sync::LazyLock;

use aws_lc_rs::digest::{SHA256, digest};
use crypto_bigint::ctutils::CtSelect;
use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Choice, Odd, U3072};

/// RFC 3526 group 15 (3072-bit MODP), as Cognito uses it.
const N_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C",
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
);

/// Length of N in bytes; verifiers are stored left-padded to this length.
pub const N_BYTES: usize = 384;

/// Length of the salts this server generates.
pub const SALT_BYTES: usize = 16;

const LIMBS: usize = U3072::LIMBS;

static PARAMS: LazyLock<FixedMontyParams<LIMBS>> =
    LazyLock::new(|| FixedMontyParams::new(Odd::<U3072>::from_be_hex(N_HEX)));

/// `padHex` of a big-endian magnitude, as bytes: minimal bytes, plus a leading zero byte when
/// the top bit is set (a two's-complement positive number). Spec 04 §4.2.
pub fn pad(magnitude: &[u8]) -> Vec<u8> {
    let first = magnitude.iter().position(|b| *b != 0);
    let trimmed = match first {
        Some(i) => &magnitude[i..],
        None => &[0u8][..],
    };
    let mut out = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
    out
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        buf.extend_from_slice(p);
    }
    let d = digest(&SHA256, &buf);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `x = H(padHex(salt) ‖ H_str(poolName ‖ userId ‖ ":" ‖ password))`, where the inner hash is
/// appended as its 64-char hex text hex-decoded, i.e. as its 32 raw bytes.
pub fn private_key(
    pool_name: &str,
    user_id_for_srp: &str,
    password: &str,
    salt: &[u8],
) -> [u8; 32] {
    let inner = sha256(&[
        pool_name.as_bytes(),
        user_id_for_srp.as_bytes(),
        b":",
        password.as_bytes(),
    ]);
    sha256(&[&pad(salt), &inner])
}

/// Window width of the fixed-base table, in bits.
const WINDOW: usize = 4;
const WINDOWS: usize = 256 / WINDOW;

/// `TABLE[j][k] = g^(k · 16^j)` in Montgomery form: with it, `g^e` for a 256-bit `e` is 64
/// multiplications and no squarings (g is fixed, so the table is computed once).
static TABLE: LazyLock<Vec<[U3072; 1 << WINDOW]>> = LazyLock::new(|| {
    let one = FixedMontyForm::one(&PARAMS);
    let mut base = FixedMontyForm::new(&U3072::from_u8(2), &PARAMS);
    let mut table = Vec::with_capacity(WINDOWS);
    for _ in 0..WINDOWS {
        let mut row = [*one.as_montgomery(); 1 << WINDOW];
        let mut acc = one;
        for entry in row.iter_mut().skip(1) {
            acc = acc.mul(&base);
            *entry = *acc.as_montgomery();
        }
        table.push(row);
        base = acc.mul(&base); // g^(16^(j+1)) = g^(15·16^j) · g^(16^j)
    }
    table
});

/// `g^e mod N` for a 256-bit exponent (big-endian), in constant time: every window reads every
/// table entry and multiplies once, whatever the exponent's digits. Big-endian, 384 bytes.
fn g_pow(exponent: &[u8; 32]) -> [u8; N_BYTES] {
    let mut acc = FixedMontyForm::one(&PARAMS);
    for (j, row) in TABLE.iter().enumerate() {
        let byte = exponent[31 - j / 2];
        let digit = if j % 2 == 0 { byte & 0x0f } else { byte >> 4 };
        let mut picked = row[0];
        for (k, entry) in row.iter().enumerate().skip(1) {
            picked = picked.ct_select(entry, Choice::from_u8_eq(digit, k as u8));
        }
        acc = acc.mul(&FixedMontyForm::from_montgomery(picked, &PARAMS));
    }
    let mut out = [0u8; N_BYTES];
    out.copy_from_slice(acc.retrieve().to_be_bytes().as_ref());
    out
}

/// The verifier `v = g^x mod N` Cognito's SRP needs, big-endian, 384 bytes.
pub fn verifier(
    pool_name: &str,
    user_id_for_srp: &str,
    password: &str,
    salt: &[u8],
) -> [u8; N_BYTES] {
    g_pow(&private_key(pool_name, user_id_for_srp, password, salt))
}

/// A magnitude (big-endian, any leading zeros) as a 3072-bit integer; `None` if it is wider.
fn uint(magnitude: &[u8]) -> Option<U3072> {
    let first = magnitude
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(magnitude.len());
    let trimmed = &magnitude[first..];
    if trimmed.len() > N_BYTES {
        return None;
    }
    let mut buf = [0u8; N_BYTES];
    buf[N_BYTES - trimmed.len()..].copy_from_slice(trimmed);
    Some(U3072::from_be_slice(&buf))
}

fn to_bytes(v: &U3072) -> [u8; N_BYTES] {
    let mut out = [0u8; N_BYTES];
    out.copy_from_slice(v.to_be_bytes().as_ref());
    out
}

/// `k = H(padHex(N) ‖ padHex(g))`.
static K: LazyLock<U3072> = LazyLock::new(|| {
    let n = to_bytes(PARAMS.modulus().as_ref());
    let k = sha256(&[&pad(&n), &pad(&[2])]);
    uint(&k).unwrap_or(U3072::ZERO)
});

/// `base^secret` in constant time for the secret's width: 256-bit secrets (the server's own)
/// take the short path, anything else (test vectors) the full width.
fn pow_secret(base: &FixedMontyForm<LIMBS>, secret: &[u8]) -> Option<FixedMontyForm<LIMBS>> {
    if let Ok(b) = <&[u8; 32]>::try_from(secret) {
        return Some(base.pow(&crypto_bigint::U256::from_be_slice(b)));
    }
    Some(base.pow(&uint(secret)?))
}

/// The server's public value `B = (k·v + g^b) mod N` for its secret `b` (the server uses 32
/// random bytes); `None` in the (negligible) case B ≡ 0, when the caller picks another `b`.
pub fn server_public(verifier: &[u8], b: &[u8]) -> Option<[u8; N_BYTES]> {
    let v = FixedMontyForm::new(&uint(verifier)?, &PARAMS);
    let k = FixedMontyForm::new(&K, &PARAMS);
    let gb = match <&[u8; 32]>::try_from(b) {
        Ok(b32) => FixedMontyForm::new(&uint(&g_pow(b32))?, &PARAMS),
        Err(_) => pow_secret(&FixedMontyForm::new(&U3072::from_u8(2), &PARAMS), b)?,
    };
    let big_b = k.mul(&v).add(&gb).retrieve();
    (!bool::from(big_b.is_zero())).then(|| to_bytes(&big_b))
}

/// The session key `K` (16 bytes) from the client's `A`, the server's `B`, its secret `b` and
/// the verifier: `u = H(padHex(A) ‖ padHex(B))`, `S = (A·v^u)^b`, `K = HKDF(u, S)`. `None` when
/// `A` is not in `1..N` or `u` is zero (both abort the exchange).
pub fn session_key(a: &[u8], big_b: &[u8], b: &[u8], verifier: &[u8]) -> Option<[u8; 16]> {
    let a_int = uint(a)?;
    if bool::from(a_int.is_zero()) || a_int >= *PARAMS.modulus().as_ref() {
        return None;
    }
    let a_bytes = to_bytes(&a_int);
    let b_bytes = to_bytes(&uint(big_b)?);
    let u = sha256(&[&pad(&a_bytes), &pad(&b_bytes)]);
    if u.iter().all(|x| *x == 0) {
        return None;
    }
    let u_int = crypto_bigint::U256::from_be_slice(&u);
    let v = FixedMontyForm::new(&uint(verifier)?, &PARAMS);
    let a_m = FixedMontyForm::new(&a_int, &PARAMS);
    let s = pow_secret(&a_m.mul(&v.pow_vartime(&u_int)), b)?.retrieve();
    let prk = hmac(&pad(&u), &pad(&to_bytes(&s)));
    let okm = hmac(&prk, b"Caldera Derived Key\x01");
    let mut key = [0u8; 16];
    key.copy_from_slice(&okm[..16]);
    Some(key)
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::hmac::sign(&k, msg).as_ref());
    out
}

/// `PASSWORD_CLAIM_SIGNATURE` (raw): `HMAC(K, poolName ‖ userId ‖ secretBlock ‖ timestamp)`.
pub fn claim_signature(
    key: &[u8; 16],
    pool_name: &str,
    user_id_for_srp: &str,
    secret_block: &[u8],
    timestamp: &str,
) -> [u8; 32] {
    let mut msg =
        Vec::with_capacity(pool_name.len() + user_id_for_srp.len() + secret_block.len() + 40);
    msg.extend_from_slice(pool_name.as_bytes());
    msg.extend_from_slice(user_id_for_srp.as_bytes());
    msg.extend_from_slice(secret_block);
    msg.extend_from_slice(timestamp.as_bytes());
    hmac(key, &msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_bigint::U256;

    const VECTOR: &str = include_str!("../tests/vector.json");

    fn field(name: &str) -> String {
        let key = format!("\"{name}\": \"");
        let start = VECTOR
            .find(&key)
            .map(|i| i + key.len())
            .unwrap_or_else(|| panic!("{name}"));
        let end = VECTOR[start..].find('"').unwrap() + start;
        VECTOR[start..end].to_string()
    }

    fn unhex(s: &str) -> Vec<u8> {
        let s = if s.len() % 2 == 1 {
            format!("0{s}")
        } else {
            s.to_string()
        };
        hex::decode(s).unwrap()
    }

    #[test]
    fn private_key_matches_the_client_vector() {
        let x = private_key(
            &field("poolName"),
            &field("username"),
            &field("password"),
            &unhex(&field("salt")),
        );
        assert_eq!(hex::encode(x), field("x"));
    }

    #[test]
    fn verifier_matches_the_client_vector() {
        let v = verifier(
            &field("poolName"),
            &field("username"),
            &field("password"),
            &unhex(&field("salt")),
        );
        assert_eq!(
            hex::encode(pad(&v)).trim_start_matches('0'),
            field("verifier_v")
        );
    }

    #[test]
    fn the_fixed_base_table_agrees_with_plain_exponentiation() {
        let g = FixedMontyForm::new(&U3072::from_u8(2), &PARAMS);
        for seed in [0u8, 1, 0x5a, 0xff] {
            let mut e = [seed; 32];
            e[0] ^= 0x80;
            e[31] = seed.wrapping_mul(7);
            let plain = g.pow(&U256::from_be_slice(&e)).retrieve();
            assert_eq!(
                g_pow(&e).to_vec(),
                plain.to_be_bytes().as_ref().to_vec(),
                "seed {seed}"
            );
        }
        assert_eq!(g_pow(&[0; 32])[N_BYTES - 1], 1);
    }

    #[test]
    fn the_server_half_reproduces_the_client_vector() {
        let v = unhex(&field("verifier_v"));
        let b = unhex(&field("b"));
        let big_b = server_public(&v, &b).unwrap();
        assert_eq!(hex::encode(pad(&big_b)).trim_start_matches('0'), field("B"));
        let key = session_key(&unhex(&field("A")), &big_b, &b, &v).unwrap();
        assert_eq!(hex::encode(key), field("hkdf_key_K_hex"));
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let block = b64.decode(field("SECRET_BLOCK")).unwrap();
        let sig = claim_signature(
            &key,
            &field("poolName"),
            &field("username"),
            &block,
            &field("TIMESTAMP"),
        );
        assert_eq!(b64.encode(sig), field("PASSWORD_CLAIM_SIGNATURE"));
        // A = 0, A = N and an A wider than N are refused.
        assert!(session_key(&[0], &big_b, &b, &v).is_none());
        let n = to_bytes(PARAMS.modulus().as_ref());
        assert!(session_key(&n, &big_b, &b, &v).is_none());
        assert!(session_key(&[1u8; N_BYTES + 1], &big_b, &b, &v).is_none());
    }

    #[test]
    fn a_32_byte_secret_takes_the_table_path_with_the_same_result() {
        let v = verifier("Pool", "bob", "pw", &[3u8; 16]);
        let b = [0x5au8; 32];
        let fast = server_public(&v, &b).unwrap();
        let mut wide = vec![0u8; 96];
        wide.extend_from_slice(&b);
        assert_eq!(server_public(&v, &wide).unwrap(), fast);
    }

    #[test]
    fn pad_adds_a_zero_byte_only_for_a_set_top_bit() {
        assert_eq!(pad(&[0x00, 0x7f]), vec![0x7f]);
        assert_eq!(pad(&[0x00, 0x80]), vec![0x00, 0x80]);
        assert_eq!(pad(&[0, 0]), vec![0]);
    }
}
