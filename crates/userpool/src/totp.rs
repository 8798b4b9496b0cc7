//! Time-based one-time passwords as authenticator apps make them (RFC 6238 over RFC 4226:
//! HMAC-SHA1, 30-second steps, six digits), and the Base32 text their secrets travel in.

use aws_lc_rs::hmac;

pub(crate) const STEP_SECONDS: i64 = 30;
/// Steps either side of now whose codes are accepted, for clock drift.
const DRIFT_STEPS: i64 = 1;

/// The time step `unix_seconds` falls in.
pub(crate) fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The six-digit code of `secret` for time step `step` (RFC 4226 dynamic truncation).
pub(crate) fn code(secret: &[u8], step: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let word = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    format!("{:06}", word % 1_000_000)
}

/// The step within the drift window whose code `given` is, if any. Every candidate is
/// compared, in constant time, so timing tells nothing about which step matched.
pub(crate) fn matching_step(secret: &[u8], given: &str, unix_seconds: i64) -> Option<i64> {
    let now = step_at(unix_seconds);
    let mut found = None;
    for step in now - DRIFT_STEPS..=now + DRIFT_STEPS {
        if crate::ct_eq(code(secret, step).as_bytes(), given.as_bytes()) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 Base32 without padding, as `otpauth://` secrets are written.
pub(crate) fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn codes_match_rfc_6238_sha1_vectors() {
        // RFC 6238 appendix B gives eight digits; the six-digit code is their last six.
        for (time, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code(RFC_SECRET, step_at(time)), eight[2..], "T = {time}");
        }
    }

    #[test]
    fn one_step_of_drift_either_way_is_accepted_and_no_more() {
        let now = 1_234_567_890;
        let step = step_at(now);
        for (offset, accepted) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let given = code(RFC_SECRET, step + offset);
            assert_eq!(
                matching_step(RFC_SECRET, &given, now),
                accepted.then_some(step + offset),
                "offset {offset}"
            );
        }
        assert_eq!(matching_step(RFC_SECRET, "12345", now), None);
    }

    #[test]
    fn base32_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(plain.as_bytes()), encoded);
        }
    }
}
