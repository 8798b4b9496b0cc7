//! Sign-in: the password flows and refresh, token minting with Cognito's claim sets, and the
//! access-token check of token-holder actions (spec 03, 05).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokens::{Grant, KeyUse};

use crate::challenges::{AuthOutcome, Spend, invalid_session};
use crate::error::{Error, Result};
use crate::lockout::Failing;
use crate::store::{RefreshToken, SigningIn};
use crate::{AdminGrant, Client, Directory, Pool, RefreshReuse, SignInFailures, User, UserStatus};

/// What InitiateAuth and AdminInitiateAuth carry.
#[derive(Debug, Clone, Default)]
pub struct AuthRequest {
    pub client_id: String,
    pub flow: String,
    pub params: BTreeMap<String, String>,
}

/// Why tokens are minted ([`Directory::mint`]).
#[derive(Clone, Copy)]
pub(crate) enum Issue<'a> {
    /// A sign-in that needed no answer after its first factor.
    SignIn,
    /// An answer to the sign-in's last challenge, whose session is used up as its refresh
    /// token is stored.
    Answer(&'a Spend),
    /// A refresh of this family: no new family, the sign-in's auth_time.
    Refresh(&'a RefreshToken),
}

/// The tokens of a completed sign-in; no refresh token when a refresh made them.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub id: String,
    pub refresh: Option<String>,
    /// Access-token lifetime in seconds.
    pub expires_in: i64,
}

/// Whom a valid access token speaks for.
pub(crate) struct TokenHolder {
    pub pool: Pool,
    pub user: User,
    pub client_id: String,
}

/// What a verified access token says, as the token cache keeps it.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedAccess {
    pub pool_id: String,
    pub sub: String,
    pub origin_jti: String,
    pub client_id: String,
    /// Epoch seconds.
    pub exp: i64,
}

/// The cache key of a verified token: SHA-256 of the whole compact JWS.
fn token_digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn invalid_access() -> Error {
    Error::not_authorized("Invalid Access Token")
}

fn revoked_access() -> Error {
    Error::not_authorized("Access Token has been revoked")
}

/// The scope of tokens from the API (not the OAuth endpoints).
const API_SCOPE: &str = "aws.cognito.signin.user.admin";

fn incorrect() -> Error {
    Error::not_authorized("Incorrect username or password.")
}

fn seconds(value: i64, unit: &str) -> i64 {
    value.saturating_mul(crate::clients::unit_seconds(unit))
}

impl Directory {
    /// InitiateAuth: USER_PASSWORD_AUTH and REFRESH_TOKEN_AUTH / REFRESH_TOKEN.
    pub async fn initiate_auth(&self, req: AuthRequest) -> Result<AuthOutcome> {
        match req.flow.as_str() {
            "USER_PASSWORD_AUTH" => self.password_auth(None, &req, "USER_PASSWORD_AUTH").await,
            "USER_SRP_AUTH" => self.srp_auth(None, &req).await,
            "REFRESH_TOKEN_AUTH" | "REFRESH_TOKEN" => {
                self.refresh(None, &req).await.map(AuthOutcome::Tokens)
            }
            "ADMIN_USER_PASSWORD_AUTH" | "ADMIN_NO_SRP_AUTH" => Err(Error::invalid(format!(
                "Initiate Auth method not supported: {}",
                req.flow
            ))),
            other => Err(Error::invalid(format!(
                "{other} is not yet supported by Cognate"
            ))),
        }
    }

    /// AdminInitiateAuth: ADMIN_USER_PASSWORD_AUTH (ADMIN_NO_SRP_AUTH) and refresh.
    pub async fn admin_initiate_auth(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        req: AuthRequest,
    ) -> Result<AuthOutcome> {
        grant.check(pool_id)?;
        match req.flow.as_str() {
            "ADMIN_USER_PASSWORD_AUTH" | "ADMIN_NO_SRP_AUTH" => {
                self.password_auth(Some(pool_id), &req, "ADMIN_USER_PASSWORD_AUTH")
                    .await
            }
            "USER_PASSWORD_AUTH" => {
                self.password_auth(Some(pool_id), &req, "USER_PASSWORD_AUTH")
                    .await
            }
            "USER_SRP_AUTH" => self.srp_auth(Some(pool_id), &req).await,
            "REFRESH_TOKEN_AUTH" | "REFRESH_TOKEN" => self
                .refresh(Some(pool_id), &req)
                .await
                .map(AuthOutcome::Tokens),
            other => Err(Error::invalid(format!(
                "{other} is not yet supported by Cognate"
            ))),
        }
    }

    /// The client, its pool (which must be `pool_id` for admin calls) and the flow check.
    async fn auth_client(
        &self,
        pool_id: Option<&str>,
        req: &AuthRequest,
        username: &str,
        flow: &str,
    ) -> Result<(Client, Pool)> {
        let secret_hash = req.params.get("SECRET_HASH").map(String::as_str);
        let (client, pool) = self
            .public_client(&req.client_id, username, secret_hash)
            .await?;
        if pool_id.is_some_and(|p| p != pool.id) {
            return Err(Error::not_found(format!(
                "User pool client {} does not exist.",
                req.client_id
            )));
        }
        check_flow(&client, flow)?;
        Ok((client, pool))
    }

    async fn password_auth(
        &self,
        pool_id: Option<&str>,
        req: &AuthRequest,
        flow: &str,
    ) -> Result<AuthOutcome> {
        // Every password sign-in hashes; when the hashing queue is full, say so before any
        // database work.
        if !self.hasher.has_room() {
            return Err(crate::password::too_many());
        }
        let username = req
            .params
            .get("USERNAME")
            .ok_or_else(|| Error::invalid("Missing required parameter USERNAME"))?;
        let password = req
            .params
            .get("PASSWORD")
            .ok_or_else(|| Error::invalid("Missing required parameter PASSWORD"))?;
        let (client, pool) = self.auth_client(pool_id, req, username, flow).await?;
        // What the name is known by if nobody has it: computed for every name, so that the
        // lookup below is the same one read whether it finds the user or not.
        let nobody = crate::srp_auth::nobody_key(&self.decoy_key, &pool, username);
        let mark = self.turns.changes();
        let user = match self.find_signing_in(&pool, username, &nobody).await? {
            SigningIn::User(user) => user,
            SigningIn::Nobody(failures) => {
                return self
                    .nobody_password_auth(&pool, &client, password, &nobody, failures, mark)
                    .await;
            }
        };
        // The user's turn, then the user as it is now: a parallel guess that went first may
        // have been counted, or locked the user out (no need to look again when this node
        // wrote no failure count since the read above).
        let turn = self.turns.turn(&user.sub).await;
        let user = if self.turns.changes() == mark {
            user
        } else {
            match self.signing_in_again(&pool, &user.sub).await? {
                SigningIn::User(fresh) => fresh,
                SigningIn::Nobody(_) => return Err(incorrect()),
            }
        };
        let Some(credential) = &user.password else {
            return Err(incorrect());
        };
        self.check_not_locked(&user.failures)?;
        if !self.hasher.verify(password, &credential.hash).await? {
            self.count_failure_after_answer(&pool.id, Failing::User(&user), turn);
            return Err(incorrect());
        }
        let outcome = self.after_credential(&pool, &client, &user).await;
        drop(turn);
        outcome
    }

    /// A password sign-in at a name nobody has: the same work as a wrong password (security
    /// checklist A1) — a turn that parallel guesses at the name wait for, the second read a real
    /// user gets when a failure was counted meanwhile, the lockout, a hash, and the failure
    /// counted after the answer — and the same answer where PreventUserExistenceErrors is on.
    async fn nobody_password_auth(
        &self,
        pool: &Pool,
        client: &Client,
        password: &str,
        nobody: &str,
        failures: SignInFailures,
        mark: u64,
    ) -> Result<AuthOutcome> {
        let turn = self.turns.turn(nobody).await;
        let failures = if self.turns.changes() == mark {
            failures
        } else {
            match self.signing_in_again(pool, nobody).await? {
                SigningIn::Nobody(fresh) => fresh,
                SigningIn::User(_) => failures,
            }
        };
        if client.config.prevent_user_existence_errors != "ENABLED" {
            // The name's absence is no secret to this client: nothing to count or lock.
            let _ = self.hasher.hash(password, self.random_bytes()).await;
            return Err(Error::UserNotFound);
        }
        self.check_not_locked(&failures)?;
        let _ = self.hasher.hash(password, self.random_bytes()).await;
        self.count_failure_after_answer(&pool.id, Failing::Nobody(nobody), turn);
        Err(incorrect())
    }

    /// The second read of a sign-in, by the `sub` (or a name nobody has by its key): the same
    /// one query either way.
    async fn signing_in_again(&self, pool: &Pool, sub: &str) -> Result<SigningIn> {
        Ok(self
            .store
            .find_signing_in(&pool.id, crate::store::UserKey::Sub(sub), None, sub)
            .await?)
    }

    /// What follows a verified password or SRP proof: status checks, then a challenge or tokens.
    pub(crate) async fn after_credential(
        &self,
        pool: &Pool,
        client: &Client,
        user: &User,
    ) -> Result<AuthOutcome> {
        let Some(credential) = &user.password else {
            return Err(incorrect());
        };
        self.check_may_sign_in(user)?;
        if credential.expires.is_some_and(|t| t <= self.now()) {
            return Err(Error::not_authorized(
                "Temporary password has expired and must be reset by an administrator.",
            ));
        }
        if user.status == UserStatus::ForceChangePassword {
            return Ok(AuthOutcome::Challenge(
                self.new_password_challenge(pool, client, user)?,
            ));
        }
        self.second_factor(pool, client, user).await
    }

    async fn srp_auth(&self, pool_id: Option<&str>, req: &AuthRequest) -> Result<AuthOutcome> {
        let username = req
            .params
            .get("USERNAME")
            .ok_or_else(|| Error::invalid("Missing required parameter USERNAME"))?;
        let (client, pool) = self
            .auth_client(pool_id, req, username, "USER_SRP_AUTH")
            .await?;
        self.srp_start(&pool, &client, req, username).await
    }

    pub(crate) fn check_may_sign_in(&self, user: &User) -> Result<()> {
        if !user.enabled {
            return Err(Error::not_authorized("User is disabled."));
        }
        match user.status {
            UserStatus::Unconfirmed => Err(Error::UserNotConfirmed),
            UserStatus::ResetRequired => Err(Error::PasswordResetRequired),
            _ => Ok(()),
        }
    }

    /// REFRESH_TOKEN_AUTH. Nothing but the refresh token is read fresh: the client, user and
    /// groups come from the store's recent reads (at most [`crate::store::RECENT_TTL`] old).
    async fn refresh(&self, pool_id: Option<&str>, req: &AuthRequest) -> Result<Tokens> {
        let token = req
            .params
            .get("REFRESH_TOKEN")
            .ok_or_else(|| Error::invalid("Missing required parameter REFRESH_TOKEN"))?;
        let invalid = || Error::not_authorized("Invalid Refresh Token");
        let family = self
            .store
            .find_refresh_token(&self.refresh_hash(token))
            .await?
            .ok_or_else(invalid)?;
        if family.client_id != req.client_id {
            return Err(invalid());
        }
        let client = self
            .store
            .get_client_recent(&req.client_id)
            .await?
            .filter(|c| pool_id.is_none_or(|p| p == c.pool_id))
            .ok_or_else(|| {
                Error::not_found(format!(
                    "User pool client {} does not exist.",
                    req.client_id
                ))
            })?;
        let user = self
            .store
            .find_user_recent(&client.pool_id, &family.sub)
            .await?
            .ok_or_else(invalid)?;
        // SECRET_HASH for refreshes: clients hash the internal username (the tokens' `username`,
        // the `sub` in e-mail-as-username pools); either is accepted (spec 03 §3.3).
        let secret_hash = req.params.get("SECRET_HASH").map(String::as_str);
        if crate::clients::check_secret_hash(&client, &user.username, secret_hash).is_err() {
            crate::clients::check_secret_hash(&client, &family.sub, secret_hash)?;
        }
        check_flow(&client, "REFRESH_TOKEN_AUTH")?;
        if rotation_grace(&client).is_some() {
            return Err(Error::not_authorized(
                "Refresh token rotation is enabled for this client: use GetTokensFromRefreshToken.",
            ));
        }
        check_family(&family, self.now())?;
        if !user.enabled {
            return Err(Error::not_authorized("User is disabled."));
        }
        self.mint(&client.pool_id, &client, &user, Issue::Refresh(&family))
            .await
    }

    /// The user of a refresh-token family that is neither revoked nor expired.
    async fn live_family_user(&self, pool: &Pool, family: &RefreshToken) -> Result<User> {
        check_family(family, self.now())?;
        let user = self
            .store
            .find_user(&pool.id, crate::store::UserKey::Sub(&family.sub))
            .await?
            .ok_or_else(|| Error::not_authorized("Invalid Refresh Token"))?;
        if !user.enabled {
            return Err(Error::not_authorized("User is disabled."));
        }
        Ok(user)
    }

    /// GetTokensFromRefreshToken: new ID and access tokens, and, where the client rotates
    /// refresh tokens, a new refresh token for the rest of the family's lifetime. The replaced
    /// token works again only within the client's grace period (a retry that lost its answer).
    pub async fn get_tokens_from_refresh_token(
        &self,
        token: &str,
        client_id: &str,
        client_secret: Option<&str>,
    ) -> Result<Tokens> {
        let client = self.client_with_secret(client_id, client_secret).await?;
        let invalid = || Error::not_authorized("Invalid Refresh Token");
        let hash = self.refresh_hash(token);
        let family = match self.store.find_refresh_token(&hash).await? {
            Some(family) => family,
            None => return Err(self.unknown_refresh_token(&client, &hash).await?),
        };
        if family.client_id != client.client_id {
            return Err(invalid());
        }
        let pool = self.pool(&client.pool_id).await?;
        let user = self.live_family_user(&pool, &family).await?;
        let is_current = crate::ct_eq(&family.token_hash, &hash);
        let Some(grace) = rotation_grace(&client) else {
            if !is_current {
                return Err(invalid());
            }
            return self
                .mint(&pool.id, &client, &user, Issue::Refresh(&family))
                .await;
        };
        let now = self.now();
        let previous = if is_current {
            (hash.clone(), now + grace * 1000)
        } else {
            match (&family.previous_hash, family.previous_until) {
                (Some(p), Some(until)) if until > now => (p.clone(), until),
                _ => return Err(self.reused(&family).await?),
            }
        };
        let new_token = self.new_refresh_token();
        let rotated = self
            .store
            .rotate_refresh_token(
                &family.origin_jti,
                &family.token_hash,
                &self.refresh_hash(&new_token),
                (&previous.0, previous.1),
            )
            .await?;
        if !rotated {
            return Err(invalid());
        }
        let mut tokens = self
            .mint(&pool.id, &client, &user, Issue::Refresh(&family))
            .await?;
        tokens.refresh = Some(new_token);
        Ok(tokens)
    }

    /// The refusal of a refresh token that is no family's current or previous token: one that
    /// was never issued (or whose family is gone), or, where reuse revokes the family, one a
    /// rotation replaced further back.
    async fn unknown_refresh_token(&self, client: &Client, hash: &[u8]) -> Result<Error> {
        if self.refresh_reuse == RefreshReuse::RevokeFamily {
            let retired = self.store.find_retired_refresh_token(hash).await?;
            if let Some(family) = retired.filter(|f| f.client_id == client.client_id) {
                return self.reused(&family).await;
            }
        }
        Ok(Error::not_authorized("Invalid Refresh Token"))
    }

    /// The refusal of a replaced refresh token presented past its grace period, after revoking
    /// its family where that is the policy ([`RefreshReuse`]).
    async fn reused(&self, family: &RefreshToken) -> Result<Error> {
        if self.refresh_reuse == RefreshReuse::RevokeFamily {
            let revoked = self
                .store
                .revoke_refresh_family(&family.origin_jti, self.now())
                .await?;
            if revoked {
                tracing::warn!(
                    pool_id = family.pool_id,
                    sub = family.sub,
                    client_id = family.client_id,
                    "a replaced refresh token was presented again: its family is revoked"
                );
            }
        }
        Ok(Error::RefreshTokenReuse(
            "Refresh token has been used already.".into(),
        ))
    }

    /// 48 random bytes in Base64url behind a letter prefix (a token starting with `-` would be
    /// taken for an option by the aws CLI).
    fn new_refresh_token(&self) -> String {
        format!("CgR1{}", URL_SAFE_NO_PAD.encode(self.random_bytes::<48>()))
    }

    fn refresh_hash(&self, token: &str) -> Vec<u8> {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.refresh_key);
        aws_lc_rs::hmac::sign(&key, token.as_bytes())
            .as_ref()
            .to_vec()
    }

    /// ID and access tokens for `user`, and a new refresh-token family unless `issue` refreshes
    /// one.
    pub(crate) async fn mint(
        &self,
        pool_id: &str,
        client: &Client,
        user: &User,
        issue: Issue<'_>,
    ) -> Result<Tokens> {
        let now = self.now();
        let now_s = now / 1000;
        let cfg = &client.config;
        let units = &cfg.token_validity_units;
        let access_ttl = seconds(cfg.access_token_validity, &units.access_token);
        let id_ttl = seconds(cfg.id_token_validity, &units.id_token);
        let refresh_ttl = seconds(cfg.refresh_token_validity, &units.refresh_token);

        let mut groups = self
            .store
            .all_groups_of_user_recent(pool_id, &user.sub)
            .await?;
        // Lowest precedence first; groups without one after those with one, then by name.
        groups.sort_by(|a, b| {
            (a.precedence.is_none(), a.precedence, &a.name).cmp(&(
                b.precedence.is_none(),
                b.precedence,
                &b.name,
            ))
        });
        let groups: Vec<(String, Option<String>)> =
            groups.into_iter().map(|g| (g.name, g.role_arn)).collect();
        let readable: Vec<(String, String)> = user
            .attributes
            .iter()
            .filter(|(name, _)| {
                cfg.read_attributes
                    .as_ref()
                    .is_none_or(|allowed| allowed.iter().any(|a| a == *name))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();

        let (origin_jti, auth_time, family) = match issue {
            Issue::Refresh(f) => (f.origin_jti.clone(), f.auth_time, None),
            Issue::SignIn | Issue::Answer(_) => {
                let token = self.new_refresh_token();
                let origin_jti = self.new_uuid();
                let family = RefreshToken {
                    token_hash: self.refresh_hash(&token),
                    origin_jti: origin_jti.clone(),
                    pool_id: pool_id.to_string(),
                    client_id: client.client_id.clone(),
                    sub: user.sub.clone(),
                    auth_time: now_s,
                    created: now,
                    expires: now + refresh_ttl * 1000,
                    revoked: None,
                    previous_hash: None,
                    previous_until: None,
                };
                (origin_jti, now_s, Some((token, family)))
            }
        };
        let issuer = self.issuer(pool_id);
        let event_id = self.new_uuid();
        let grant = Grant {
            issuer: &issuer,
            client_id: &client.client_id,
            sub: &user.sub,
            username: &user.username,
            groups: &groups,
            attributes: &readable,
            origin_jti: &origin_jti,
            event_id: &event_id,
            auth_time,
            issued_at: now_s,
            scope: API_SCOPE,
            version: None,
            device_key: None,
        };
        let keys = self.keys.keys(pool_id).await?;
        let sign = |use_: KeyUse, claims| {
            let key = keys.signer(use_)?;
            tokens::sign(key, &claims).map_err(|e| Error::Internal(e.to_string()))
        };
        let id = sign(
            KeyUse::Id,
            tokens::id_token(&grant, &self.new_uuid(), id_ttl),
        )?;
        let access = sign(
            KeyUse::Access,
            tokens::access_token(&grant, &self.new_uuid(), access_ttl),
        )?;
        // Stored once the tokens are made, so that nothing after the store (which uses an
        // answer's session up) can fail.
        let refresh = match family {
            None => None,
            Some((token, family)) => {
                self.store_family(&family, issue).await?;
                self.sign_in_succeeded(user).await;
                Some(token)
            }
        };
        Ok(Tokens {
            access,
            id,
            refresh,
            expires_in: access_ttl,
        })
    }

    /// Stores a new refresh-token family; for an answer, with its session used up in the same
    /// transaction (a session used before: nothing stored, and the answer refused).
    async fn store_family(&self, family: &RefreshToken, issue: Issue<'_>) -> Result<()> {
        if let Issue::Answer(spend) = issue {
            let stored = self
                .store
                .insert_refresh_token_spending(family, spend.as_use());
            if !stored.await? {
                return Err(invalid_session());
            }
            return Ok(());
        }
        Ok(self.store.insert_refresh_token(family).await?)
    }

    /// `{issuer base}/{poolId}`, the `iss` of the pool's tokens.
    pub fn issuer(&self, pool_id: &str) -> String {
        format!("{}/{pool_id}", self.issuer_base.trim_end_matches('/'))
    }

    /// The user an access token speaks for: signature, expiry, issuer, `token_use` and
    /// revocation (its refresh-token family) all checked.
    pub async fn access_token_user(&self, token: &str) -> Result<(Pool, User)> {
        let h = self.token_holder(token).await?;
        Ok((h.pool, h.user))
    }

    /// [`Self::access_token_user`], with the app client the token was issued to.
    pub(crate) async fn token_holder(&self, token: &str) -> Result<TokenHolder> {
        let access = self.verified_access(token).await?;
        match self.store.refresh_family(&access.origin_jti).await? {
            Some(f) if f.revoked.is_none() => {}
            _ => return Err(revoked_access()),
        }
        let pool = self
            .store
            .get_pool(&access.pool_id)
            .await?
            .ok_or_else(invalid_access)?;
        let user = self
            .store
            .find_user(&pool.id, crate::store::UserKey::Sub(&access.sub))
            .await?
            .ok_or(Error::UserNotFound)?;
        if !user.enabled {
            return Err(Error::not_authorized("User is disabled."));
        }
        Ok(TokenHolder {
            pool,
            user,
            client_id: access.client_id,
        })
    }

    /// The claims of a genuine, unexpired access token of an existing pool. A token verified
    /// before is recognised by its digest (its expiry is still checked), so a client calling
    /// again with the same token costs no RSA verification.
    async fn verified_access(&self, token: &str) -> Result<VerifiedAccess> {
        let digest = token_digest(token);
        let now_s = self.now() / 1000;
        if let Some(v) = self.verified.get(&digest) {
            if v.exp <= now_s {
                return Err(Error::not_authorized("Access Token has expired"));
            }
            return Ok(v);
        }
        let invalid = invalid_access;
        let claims = tokens::unverified_claims(token).map_err(|_| invalid())?;
        let iss = claims
            .get("iss")
            .and_then(|v| v.as_str())
            .ok_or_else(invalid)?;
        let pool_id = iss
            .strip_prefix(&format!("{}/", self.issuer_base.trim_end_matches('/')))
            .ok_or_else(invalid)?;
        // Only pools that exist have keys (the key ring would make a missing pool's first keys).
        if self.store.get_pool(pool_id).await?.is_none() {
            return Err(invalid());
        }
        let keys = self.keys.keys(pool_id).await?;
        let claims = match keys.verifier.verify(token, now_s) {
            Ok(c) => c,
            Err(tokens::Error::Expired) => {
                return Err(Error::not_authorized("Access Token has expired"));
            }
            Err(_) => return Err(invalid()),
        };
        if claims.get("token_use").and_then(|v| v.as_str()) != Some("access") {
            return Err(invalid());
        }
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(invalid)
        };
        let access = VerifiedAccess {
            pool_id: pool_id.to_string(),
            sub: text("sub")?,
            origin_jti: text("origin_jti")?,
            client_id: text("client_id")?,
            exp: claims
                .get("exp")
                .and_then(|v| v.as_i64())
                .ok_or_else(invalid)?,
        };
        self.verified.insert(digest, access.clone());
        Ok(access)
    }

    /// GlobalSignOut: every refresh token of the user dies, and with them the access tokens
    /// minted from them (for Cognate's API; JWTs stay valid elsewhere until they expire).
    pub async fn global_sign_out(&self, access_token: &str) -> Result<()> {
        let (pool, user) = self.access_token_user(access_token).await?;
        self.store
            .revoke_refresh_tokens(&pool.id, &user.sub, self.now())
            .await?;
        Ok(())
    }

    pub async fn admin_user_global_sign_out(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        username: &str,
    ) -> Result<()> {
        let pool = self.admin_pool(grant, pool_id).await?;
        let user = self.user(&pool, username).await?;
        self.store
            .revoke_refresh_tokens(&pool.id, &user.sub, self.now())
            .await?;
        Ok(())
    }

    /// RevokeToken: the refresh token's family, and the tokens minted from it, die. Unknown
    /// tokens are not an error (RFC 7009); tokens of another client are left alone.
    pub async fn revoke_token(
        &self,
        token: &str,
        client_id: &str,
        client_secret: Option<&str>,
    ) -> Result<()> {
        let client = self.client_with_secret(client_id, client_secret).await?;
        if !client.config.enable_token_revocation {
            return Err(Error::UnsupportedOperation(
                "Token revocation is not enabled for this client.".into(),
            ));
        }
        if token.split('.').count() == 3 {
            return Err(Error::UnsupportedTokenType(
                "Only refresh tokens can be revoked.".into(),
            ));
        }
        let hash = self.refresh_hash(token);
        if let Some(family) = self.store.find_refresh_token(&hash).await?
            && family.client_id == client.client_id
        {
            self.store
                .revoke_refresh_family(&family.origin_jti, self.now())
                .await?;
        }
        Ok(())
    }

    /// The app client, checking its secret (sent as such, not as a SECRET_HASH) if it has one.
    async fn client_with_secret(
        &self,
        client_id: &str,
        client_secret: Option<&str>,
    ) -> Result<Client> {
        let client = self.store.get_client(client_id).await?.ok_or_else(|| {
            Error::not_found(format!("User pool client {client_id} does not exist."))
        })?;
        if let Some(secret) = &client.secret
            && !client_secret.is_some_and(|given| crate::ct_eq(given.as_bytes(), secret.as_bytes()))
        {
            return Err(Error::not_authorized(format!(
                "Client {client_id} is configured for secret but secret was not received or is wrong"
            )));
        }
        Ok(client)
    }

    /// GetUser: the signed-in user, by access token. Nothing is written from this read, so it
    /// may use the store's recent reads: a sign-out, revocation or change made on another node
    /// shows within [`crate::store::RECENT_TTL`].
    pub async fn get_user(&self, access_token: &str) -> Result<User> {
        let access = self.verified_access(access_token).await?;
        match self.store.refresh_family_recent(&access.origin_jti).await? {
            Some(f) if f.revoked.is_none() => {}
            _ => return Err(revoked_access()),
        }
        let user = self
            .store
            .find_user_recent(&access.pool_id, &access.sub)
            .await?
            .ok_or(Error::UserNotFound)?;
        if !user.enabled {
            return Err(Error::not_authorized("User is disabled."));
        }
        Ok(user)
    }
}

impl Directory {
    /// True when the sign-in session `origin_jti` names was signed out or revoked (or never
    /// existed). A recent read: another node's sign-out shows within [`crate::store::RECENT_TTL`].
    pub async fn session_signed_out(&self, origin_jti: &str) -> Result<bool> {
        Ok(!matches!(
            self.store.refresh_family_recent(origin_jti).await?,
            Some(f) if f.revoked.is_none()
        ))
    }
}

/// Refuses a flow the client's ExplicitAuthFlows do not allow, in Cognito's words.
fn check_flow(client: &Client, flow: &str) -> Result<()> {
    if flow_allowed(client, flow) {
        return Ok(());
    }
    Err(Error::invalid(if flow == "ADMIN_USER_PASSWORD_AUTH" {
        "Auth flow not enabled for this client".to_string()
    } else {
        format!("{flow} flow not enabled for this client")
    }))
}

/// Refuses a revoked or expired refresh-token family.
fn check_family(family: &RefreshToken, now: crate::Millis) -> Result<()> {
    if family.revoked.is_some() {
        return Err(Error::not_authorized("Refresh Token has been revoked"));
    }
    if family.expires <= now {
        return Err(Error::not_authorized("Refresh Token has expired"));
    }
    Ok(())
}

/// The grace period (seconds) of a client that rotates refresh tokens; `None` when it does not.
fn rotation_grace(client: &Client) -> Option<i64> {
    let r = client.config.echoed.get("RefreshTokenRotation")?;
    if r.get("Feature").and_then(|f| f.as_str()) != Some("ENABLED") {
        return None;
    }
    Some(
        r.get("RetryGracePeriodSeconds")
            .and_then(|g| g.as_i64())
            .unwrap_or(0)
            .clamp(0, 60),
    )
}

/// Whether the client's ExplicitAuthFlows allow `flow` (empty: Cognito's default set).
fn flow_allowed(client: &Client, flow: &str) -> bool {
    let flows = &client.config.explicit_auth_flows;
    if flows.is_empty() {
        return matches!(flow, "REFRESH_TOKEN_AUTH" | "USER_SRP_AUTH" | "CUSTOM_AUTH");
    }
    let legacy = match flow {
        "ADMIN_USER_PASSWORD_AUTH" => "ADMIN_NO_SRP_AUTH",
        "USER_PASSWORD_AUTH" => "USER_PASSWORD_AUTH",
        // Legacy flag sets always allow refresh and SRP.
        "REFRESH_TOKEN_AUTH" | "USER_SRP_AUTH" => "",
        _ => "-",
    };
    let has_legacy = flows.iter().any(|f| !f.starts_with("ALLOW_"));
    flows.iter().any(|f| *f == format!("ALLOW_{flow}"))
        || (has_legacy && (legacy.is_empty() || flows.iter().any(|f| f == legacy)))
}
