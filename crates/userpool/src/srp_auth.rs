//! USER_SRP_AUTH and its PASSWORD_VERIFIER challenge (spec 04). The SECRET_BLOCK is the sealed
//! state of the exchange, so clients that answer without a Session (pycognito) work, and it is
//! usable once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::auth::AuthRequest;
use crate::challenges::AuthOutcome;
use crate::challenges::Challenge;
use crate::error::{Error, Result};
use crate::lockout::Failing;
use crate::store::{SigningIn, UserKey};
use crate::{Client, Directory, Pool, srp_context};

#[derive(Serialize, Deserialize)]
struct SrpState {
    id: String,
    pool: String,
    client: String,
    /// For a user that does not exist (PreventUserExistenceErrors), the stand-in's: its
    /// [`nobody_key`].
    sub: String,
    username: String,
    b: String,
    a: String,
    big_b: String,
    expires: i64,
}

const CONTEXT: &[u8] = b"srp-secret-block/v1";

/// What USER_SRP_AUTH answers for a user who does not exist (PreventUserExistenceErrors), the
/// same every time for the same pool and name (in any spelling that would find the same real
/// user), as a real user's salt is (security checklist A2): salt and verifier are keyed hashes of
/// the pool and the stand-in's name, so nothing is stored and two calls cannot tell the user
/// apart from a real one. Where a real user's USER_ID_FOR_SRP could not be the name typed (an
/// e-mail or phone number in a pool that signs in with them, or keeps them as aliases), the
/// stand-in's name is a UUID, as real users of e-mail- or phone-as-username pools have (in alias
/// pools real usernames are the app's own choice, which a stand-in cannot imitate); typing that
/// UUID finds the same stand-in, as typing a real user's finds the user.
///
/// Its `sub` stands where a real user's would, in the SECRET_BLOCK (so that the block is as long
/// as a real user's) and as the name's [`nobody_key`].
struct Decoy {
    sub: String,
    user_id: String,
    salt: [u8; 16],
    verifier: Vec<u8>,
}

/// A keyed hash of the pool and a name, for the stand-in's name, salt, verifier and `sub`.
fn decoy_mac(key: &[u8; 32], pool: &Pool, name: &str, label: &str) -> aws_lc_rs::hmac::Tag {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, format!("{label}\n{}\n{name}", pool.id).as_bytes())
}

/// A UUID made of the second half of a keyed hash.
fn uuid_of(tag: &aws_lc_rs::hmac::Tag) -> String {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&tag.as_ref()[16..32]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The stand-in's name (its USER_ID_FOR_SRP), the same for every spelling that would find the
/// same real user: the username as the pool keys it, or for an e-mail address (looked up
/// lower-cased whatever the pool's case sensitivity) or phone number the pool signs in with, a
/// UUID made from it.
fn stand_in_name(key: &[u8; 32], pool: &Pool, typed: &str) -> String {
    if signs_in_as(pool, "email", crate::attributes::is_email, typed) {
        uuid_of(&decoy_mac(key, pool, &typed.to_lowercase(), "id"))
    } else if signs_in_as(pool, "phone_number", crate::attributes::is_phone, typed) {
        uuid_of(&decoy_mac(
            key,
            pool,
            &crate::users::username_key(pool, typed),
            "id",
        ))
    } else {
        crate::users::username_key(pool, typed)
    }
}

/// What a name nobody has in `pool` is known by, in place of a user's `sub`: a UUID, the same
/// for every spelling that would find the same user (the stand-in's own name included). Its turn
/// at signing in, and the failures counted against it, are kept under this key (security
/// checklist A1).
pub(crate) fn nobody_key(key: &[u8; 32], pool: &Pool, typed: &str) -> String {
    uuid_of(&decoy_mac(
        key,
        pool,
        &stand_in_name(key, pool, typed),
        "id",
    ))
}

impl Decoy {
    fn new(key: &[u8; 32], pool: &Pool, typed: &str) -> Self {
        let user_id = stand_in_name(key, pool, typed);
        let mac = |label: &str| decoy_mac(key, pool, &user_id, label);
        let id = mac("id");
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&id.as_ref()[..16]);
        // A verifier is any number below N; 383 bytes always are.
        let mut verifier = Vec::with_capacity(srp::N_BYTES);
        for i in 0..12 {
            verifier.extend_from_slice(mac(&format!("verifier {i}")).as_ref());
        }
        verifier.truncate(srp::N_BYTES - 1);
        Self {
            sub: uuid_of(&id),
            user_id,
            salt,
            verifier,
        }
    }
}

/// Whether `typed` looks like a value of `attr` and the pool signs in with it (as the username
/// or an alias).
fn signs_in_as(pool: &Pool, attr: &str, looks: fn(&str) -> bool, typed: &str) -> bool {
    let c = &pool.config;
    looks(typed)
        && c.username_attributes
            .iter()
            .chain(&c.alias_attributes)
            .any(|a| a == attr)
}

fn incorrect() -> Error {
    Error::not_authorized("Incorrect username or password.")
}

/// Lower-case hex without leading zeros, as the clients send and expect big integers.
fn minimal_hex(bytes: &[u8]) -> String {
    let h = hex::encode(bytes);
    let t = h.trim_start_matches('0');
    if t.is_empty() { "0".into() } else { t.into() }
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s = if s.len() % 2 == 1 {
        format!("0{s}")
    } else {
        s.to_string()
    };
    hex::decode(s).ok()
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// How far a PASSWORD_VERIFIER's TIMESTAMP may be from the server's clock, either way (security
/// checklist A5). AWS does not document a window; SigV4's ±15 minutes tolerates the clock
/// drift of real devices while refusing a proof signed for another day.
const TIMESTAMP_WINDOW_MS: i64 = 15 * 60 * 1000;

/// A TIMESTAMP that parsed: whether it is in canonical form (a wrong weekday or a padded day is
/// not, and Cognito treats those as a bad signature) and the moment it names.
struct Stamp {
    canonical: bool,
    at_ms: i64,
}

impl Stamp {
    /// Canonical and within [`TIMESTAMP_WINDOW_MS`] of `now`.
    fn acceptable(&self, now: i64) -> bool {
        self.canonical && (self.at_ms - now).abs() <= TIMESTAMP_WINDOW_MS
    }
}

/// `EEE MMM d HH:mm:ss UTC yyyy`, strictly: `Err` when it does not parse.
fn parse_timestamp(t: &str) -> Result<Stamp> {
    let bad = || Error::invalid("TIMESTAMP format should be EEE MMM d HH:mm:ss z yyyy in english.");
    let parts: Vec<&str> = t.split(' ').collect();
    let [_, mon, day, clock, zone, year] = parts[..] else {
        return Err(bad());
    };
    let month = MONTHS.iter().position(|m| *m == mon).ok_or_else(bad)?;
    let day: u8 = day.parse().map_err(|_| bad())?;
    let year: i32 = year.parse().map_err(|_| bad())?;
    let hms: Vec<&str> = clock.split(':').collect();
    let two_digits = |p: &&str| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit());
    if zone != "UTC" || hms.len() != 3 || !hms.iter().all(two_digits) {
        return Err(bad());
    }
    let (h, m, sec) = (
        hms[0].parse::<u8>(),
        hms[1].parse::<u8>(),
        hms[2].parse::<u8>(),
    );
    let (Ok(h), Ok(m), Ok(sec)) = (h, m, sec) else {
        return Err(bad());
    };
    let clock_time = time::Time::from_hms(h, m, sec).map_err(|_| bad())?;
    let month = time::Month::try_from(month as u8 + 1).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
    let weekday = DAYS[date.weekday().number_days_from_monday() as usize];
    let canonical = format!(
        "{weekday} {} {} {clock} UTC {year}",
        MONTHS[month as usize - 1],
        date.day()
    );
    let at = time::PrimitiveDateTime::new(date, clock_time).assume_utc();
    Ok(Stamp {
        canonical: canonical == t,
        at_ms: (at.unix_timestamp_nanos() / 1_000_000) as i64,
    })
}

impl Directory {
    pub(crate) async fn srp_start(
        &self,
        pool: &Pool,
        client: &Client,
        req: &AuthRequest,
        username: &str,
    ) -> Result<AuthOutcome> {
        let a_hex = req
            .params
            .get("SRP_A")
            .ok_or_else(|| Error::invalid("Missing required parameter SRP_A"))?;
        let a =
            parse_hex(a_hex).ok_or_else(|| Error::invalid("SRP_A is not a hexadecimal number."))?;
        // One read whether the user exists or not (security checklist A1).
        let nobody = nobody_key(&self.decoy_key, pool, username);
        let found = self.find_signing_in(pool, username, &nobody).await?;
        let (sub, name, salt, verifier) = match &found {
            SigningIn::User(u) => {
                let Some(cred) = &u.password else {
                    return Err(incorrect());
                };
                let v = self
                    .vault
                    .open(&cred.srp_verifier_sealed, &srp_context(&pool.id, &u.sub))?;
                (u.sub.clone(), u.username.clone(), cred.srp_salt.clone(), v)
            }
            SigningIn::Nobody(_) if client.config.prevent_user_existence_errors == "ENABLED" => {
                // A challenge for nobody: it can only end in "Incorrect username or password".
                let d = Decoy::new(&self.decoy_key, pool, username);
                (d.sub, d.user_id, d.salt.to_vec(), d.verifier)
            }
            SigningIn::Nobody(_) => return Err(Error::UserNotFound),
        };
        let (b, big_b) = loop {
            let b: [u8; 32] = self.random_bytes();
            if let Some(big_b) = srp::server_public(&verifier, &b) {
                break (b, big_b);
            }
        };
        let state = SrpState {
            id: hex::encode(self.random_bytes::<16>()),
            pool: pool.id.clone(),
            client: client.client_id.clone(),
            sub,
            username: name.clone(),
            b: hex::encode(b),
            a: hex::encode(&a),
            big_b: hex::encode(big_b),
            expires: self.now() + client.config.auth_session_validity.clamp(3, 15) * 60_000,
        };
        let block = STANDARD.encode(self.seal_state(CONTEXT, &state)?);
        let mut parameters = std::collections::BTreeMap::new();
        parameters.insert("SALT".to_string(), minimal_hex(&salt));
        parameters.insert("SECRET_BLOCK".to_string(), block);
        parameters.insert("SRP_B".to_string(), minimal_hex(&big_b));
        parameters.insert("USERNAME".to_string(), name.clone());
        parameters.insert("USER_ID_FOR_SRP".to_string(), name);
        Ok(AuthOutcome::Challenge(Challenge {
            name: "PASSWORD_VERIFIER".into(),
            session: String::new(),
            parameters,
        }))
    }

    pub(crate) async fn srp_verify(
        &self,
        pool: &Pool,
        client: &Client,
        responses: &std::collections::BTreeMap<String, String>,
    ) -> Result<AuthOutcome> {
        let get = |k: &str| {
            responses
                .get(k)
                .ok_or_else(|| Error::invalid(format!("Missing required parameter {k}")))
        };
        let block_b64 = get("PASSWORD_CLAIM_SECRET_BLOCK")?;
        let signature = get("PASSWORD_CLAIM_SIGNATURE")?;
        let timestamp = get("TIMESTAMP")?;
        let stamp = parse_timestamp(timestamp)?;
        let block = STANDARD.decode(block_b64).map_err(|_| incorrect())?;
        let st: SrpState = self.open_state(CONTEXT, &block).ok_or_else(incorrect)?;
        if st.client != client.client_id || st.pool != pool.id || st.expires <= self.now() {
            return Err(Error::not_authorized(
                "Invalid session for the user, session is expired.",
            ));
        }
        if !self.use_once(&st.id, st.expires).await? {
            return Err(incorrect());
        }
        if !stamp.acceptable(self.now()) {
            return Err(incorrect());
        }
        let (a, big_b, b) = match (
            hex::decode(&st.a),
            hex::decode(&st.big_b),
            hex::decode(&st.b),
        ) {
            (Ok(a), Ok(big_b), Ok(b)) => (a, big_b, b),
            _ => return Err(incorrect()),
        };
        // The same work whether the user exists or not (security checklist A1): the turn, the
        // one read, the lockout check and the two exponentiations; a name nobody has brings the
        // key its failures are counted under in place of a sub.
        // A block sealed before stand-ins had a `sub` (an upgrade mid-exchange) names nobody
        // by the stand-in's name.
        let sub = match st.sub.as_str() {
            "" => nobody_key(&self.decoy_key, pool, &st.username),
            sub => sub.to_string(),
        };
        let turn = self.turns.turn(&sub).await;
        let found = self
            .store
            .find_signing_in(&pool.id, UserKey::Sub(&sub), None, &sub)
            .await?;
        let (who, verifier) = match &found {
            SigningIn::User(user) => {
                let cred = user.password.as_ref().ok_or_else(incorrect)?;
                self.check_not_locked(&user.failures)?;
                let v = self
                    .vault
                    .open(&cred.srp_verifier_sealed, &srp_context(&pool.id, &user.sub))?;
                (Failing::User(user), v)
            }
            SigningIn::Nobody(failures) => {
                self.check_not_locked(failures)?;
                // Any verifier does: the proof cannot match one nobody has.
                let d = Decoy::new(&self.decoy_key, pool, &st.username);
                (Failing::Nobody(&sub), d.verifier)
            }
        };
        // Two 3072-bit exponentiations: CPU work, on the hashing threads.
        let key = self
            .hasher
            .run(move |_| srp::session_key(&a, &big_b, &b, &verifier))
            .await?;
        let expected =
            key.map(|k| srp::claim_signature(&k, pool.srp_name(), &st.username, &block, timestamp));
        let given = STANDARD.decode(signature).map_err(|_| incorrect())?;
        let user = match (who, expected) {
            (Failing::User(user), Some(expected)) if crate::ct_eq(&expected, &given) => user,
            (who, _) => {
                self.count_failure_after_answer(&pool.id, who, turn);
                return Err(incorrect());
            }
        };
        let outcome = self.after_credential(pool, client, user).await;
        drop(turn);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_strictly_and_must_be_canonical() {
        let stamp = parse_timestamp("Tue Jan 7 09:05:03 UTC 2025").unwrap();
        assert!(stamp.canonical);
        assert_eq!(stamp.at_ms, 1_736_240_703_000);
        // Zero-padded day and a wrong weekday parse but are not canonical.
        let padded = parse_timestamp("Tue Jan 07 09:05:03 UTC 2025").unwrap();
        assert!(!padded.canonical);
        assert!(!padded.acceptable(padded.at_ms));
        assert!(
            !parse_timestamp("Wed Jan 7 09:05:03 UTC 2025")
                .unwrap()
                .canonical
        );
        for bad in [
            "",
            "2025-01-07T09:05:03Z",
            "Tue Jan 7 09:05:03 GMT 2025",
            "Tue Foo 7 09:05:03 UTC 2025",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_timestamp_is_accepted_within_fifteen_minutes_of_the_clock() {
        let stamp = parse_timestamp("Tue Jan 7 09:05:03 UTC 2025").unwrap();
        let minute = 60_000;
        for off in [0, 15 * minute, -15 * minute] {
            assert!(stamp.acceptable(stamp.at_ms + off), "{off}");
        }
        for off in [15 * minute + 1000, -15 * minute - 1000, 24 * 60 * minute] {
            assert!(!stamp.acceptable(stamp.at_ms + off), "{off}");
        }
    }

    #[test]
    fn big_integers_travel_as_minimal_hex() {
        assert_eq!(minimal_hex(&[0, 0, 0x0f, 0x1e]), "f1e");
        assert_eq!(parse_hex("f1e"), Some(vec![0x0f, 0x1e]));
    }
}
