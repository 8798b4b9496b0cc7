//! Multi-factor authentication: the pool's MFA configuration, each user's factors and
//! preference, authenticator (TOTP) enrolment, and the second step of a sign-in — which factor
//! to ask for (SMS_MFA, SOFTWARE_TOKEN_MFA, EMAIL_OTP), a choice (SELECT_MFA_TYPE) or an
//! enrolment (MFA_SETUP) — and the checking of the answer.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::auth::Issue;
use crate::challenges::{AuthOutcome, Challenge, SessionState, Spend};
use crate::codes::CodeMessage;
use crate::error::{Error, Result};
use crate::store::UserKey;
use crate::{AdminGrant, Client, Directory, Pool, totp};
use crate::{CodePurpose, EmailMfa, Medium, MessageKind, MfaMethod, PoolMfa, User, UserMfa};

/// SetUserPoolMfaConfig: `None` leaves the pool's MfaConfiguration as it is; the factors are
/// replaced (an absent SMS or e-mail configuration turns that factor off, as on Cognito, whose
/// shapes for them have no `Enabled`).
#[derive(Debug, Clone, Default)]
pub struct MfaConfigInput {
    pub mfa_configuration: Option<String>,
    pub sms: Option<SmsMfaInput>,
    pub software_token: Option<bool>,
    pub email: Option<EmailMfa>,
}

#[derive(Debug, Clone, Default)]
pub struct SmsMfaInput {
    pub message: Option<String>,
    pub sms_configuration: Option<serde_json::Value>,
}

/// The pool's MFA settings as GetUserPoolMfaConfig reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct MfaConfig {
    pub mfa_configuration: String,
    pub methods: PoolMfa,
    pub sms_message: Option<String>,
    pub sms_configuration: Option<serde_json::Value>,
}

/// One factor's part of Set(Admin)UserMFAPreference; `None` leaves that half as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct MfaPreference {
    pub enabled: Option<bool>,
    pub preferred: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct MfaPreferences {
    pub sms: Option<MfaPreference>,
    pub software_token: Option<MfaPreference>,
    pub email: Option<MfaPreference>,
}

/// What a sign-in asks for after the password.
#[derive(Debug, Clone, PartialEq)]
enum SecondStep {
    None,
    Ask(MfaMethod),
    Choose(Vec<MfaMethod>),
    Enrol(Vec<MfaMethod>),
}

/// Session challenges of the enrolment: the MFA_SETUP challenge's session allows
/// AssociateSoftwareToken, whose session allows VerifySoftwareToken, whose session completes
/// the sign-in.
const SETUP: &str = "MFA_SETUP";
const SETUP_ASSOCIATED: &str = "MFA_SETUP/associated";
const SETUP_VERIFIED: &str = "MFA_SETUP/verified";

const DEFAULT_SMS_MFA_MESSAGE: &str = "Your authentication code is {####}. ";
const DEFAULT_EMAIL_MFA_MESSAGE: &str = "Your authentication code is {####}. ";
const DEFAULT_EMAIL_MFA_SUBJECT: &str = "Your authentication code";
/// Bytes of a new authenticator secret: 52 Base32 characters, as Cognito's SecretCode.
const SECRET_BYTES: usize = 32;

pub(crate) fn mfa_mismatch() -> Error {
    Error::MfaCodeMismatch
}

fn json_list(methods: &[MfaMethod]) -> String {
    serde_json::Value::from(methods.iter().map(|m| m.as_str()).collect::<Vec<_>>()).to_string()
}

/// Whether `user` can receive `method` in `pool`: SMS and e-mail need the pool to offer them
/// and the user to have the attribute; an authenticator keeps working once verified, even if
/// the pool stops offering new ones (as Cognito documents).
fn can_use(m: &PoolMfa, user: &User, method: MfaMethod) -> bool {
    match method {
        MfaMethod::Sms => m.sms && user.attribute("phone_number").is_some(),
        MfaMethod::Email => m.email.is_some() && user.attribute("email").is_some(),
        MfaMethod::SoftwareToken => user.mfa.totp_secret.is_some(),
    }
}

fn second_step(pool: &Pool, user: &User) -> SecondStep {
    step_for(&pool.config.mfa_configuration, &pool.config.mfa, user)
}

/// The decision of [`second_step`] from the pool's MfaConfiguration and factors.
fn step_for(configuration: &str, offered: &PoolMfa, user: &User) -> SecondStep {
    if configuration == "OFF" {
        return SecondStep::None;
    }
    let usable = |m: &MfaMethod| can_use(offered, user, *m);
    let mut candidates: Vec<MfaMethod> = user.mfa.enabled.iter().copied().filter(usable).collect();
    if candidates.is_empty() && configuration == "ON" {
        // Required MFA and nothing chosen: whatever the user can already receive.
        candidates = MfaMethod::ALL.into_iter().filter(usable).collect();
        if candidates.is_empty() {
            let mut setup = Vec::new();
            if offered.sms {
                setup.push(MfaMethod::Sms);
            }
            if offered.software_token {
                setup.push(MfaMethod::SoftwareToken);
            }
            if offered.email.is_some() {
                setup.push(MfaMethod::Email);
            }
            return SecondStep::Enrol(setup);
        }
    }
    match (user.mfa.preferred, candidates.as_slice()) {
        (_, []) => SecondStep::None,
        (Some(p), c) if c.contains(&p) => SecondStep::Ask(p),
        (_, [only]) => SecondStep::Ask(*only),
        (_, many) => SecondStep::Choose(many.to_vec()),
    }
}

fn check_template(field: &str, text: &str, max: usize) -> Result<()> {
    if text.chars().count() < 6 || text.chars().count() > max || !text.contains("{####}") {
        return Err(Error::invalid(format!(
            "{field} must be 6 to {max} characters long and contain {{####}}."
        )));
    }
    Ok(())
}

impl Directory {
    pub async fn set_user_pool_mfa_config(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        input: MfaConfigInput,
    ) -> Result<MfaConfig> {
        let mut pool = self.admin_pool(grant, pool_id).await?;
        if let Some(sms) = &input.sms
            && let Some(m) = &sms.message
        {
            check_template("SmsAuthenticationMessage", m, 140)?;
        }
        if let Some(m) = input.email.as_ref().and_then(|e| e.message.as_deref()) {
            check_template("EmailMfaConfiguration.Message", m, 20_000)?;
        }
        let methods = PoolMfa {
            sms: input.sms.is_some(),
            software_token: input.software_token.unwrap_or(false),
            email: input.email.clone(),
        };
        let configuration = input
            .mfa_configuration
            .clone()
            .unwrap_or_else(|| pool.config.mfa_configuration.clone());
        if configuration != "OFF"
            && !methods.sms
            && !methods.software_token
            && methods.email.is_none()
        {
            return Err(Error::invalid(
                "Invalid MFA configuration given, can't turn on MFA and disable all MFA types",
            ));
        }
        if let Some(sms) = input.sms {
            if sms.message.is_some() {
                pool.config.verification.sms_authentication_message = sms.message;
            }
            if let Some(c) = sms.sms_configuration {
                pool.config.echoed.insert("SmsConfiguration".into(), c);
            }
        }
        pool.config.mfa = methods;
        pool.config.mfa_configuration = configuration;
        pool.modified = self.now();
        if !self.store.update_pool(&pool).await? {
            return Err(Error::not_found(format!(
                "User pool {pool_id} does not exist."
            )));
        }
        Ok(mfa_config(&pool))
    }

    pub async fn get_user_pool_mfa_config(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
    ) -> Result<MfaConfig> {
        Ok(mfa_config(&self.admin_pool(grant, pool_id).await?))
    }

    /// SetUserMFAPreference, for the holder of an access token.
    pub async fn set_user_mfa_preference(
        &self,
        access_token: &str,
        prefs: MfaPreferences,
    ) -> Result<()> {
        let (pool, user) = self.access_token_user(access_token).await?;
        self.set_preferences(&pool, user, prefs).await
    }

    pub async fn admin_set_user_mfa_preference(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        username: &str,
        prefs: MfaPreferences,
    ) -> Result<()> {
        let pool = self.admin_pool(grant, pool_id).await?;
        let user = self.user(&pool, username).await?;
        self.set_preferences(&pool, user, prefs).await
    }

    async fn set_preferences(&self, pool: &Pool, user: User, p: MfaPreferences) -> Result<()> {
        self.change_user(pool, user, |user| {
            for (method, pref) in [
                (MfaMethod::Sms, p.sms),
                (MfaMethod::SoftwareToken, p.software_token),
                (MfaMethod::Email, p.email),
            ] {
                if let Some(pref) = pref {
                    apply_preference(user, method, pref)?;
                }
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// What follows a verified first factor of a user who may sign in: the MFA challenge the
    /// pool and user call for, or tokens.
    pub(crate) async fn second_factor(
        &self,
        pool: &Pool,
        client: &Client,
        user: &User,
    ) -> Result<AuthOutcome> {
        match second_step(pool, user) {
            SecondStep::None => Ok(AuthOutcome::Tokens(
                self.mint(&pool.id, client, user, Issue::SignIn).await?,
            )),
            SecondStep::Ask(method) => self.ask(pool, client, user, method, None).await,
            SecondStep::Choose(methods) => {
                let mut parameters = BTreeMap::new();
                parameters.insert("MFAS_CAN_CHOOSE".into(), json_list(&methods));
                parameters.insert("USER_ID_FOR_SRP".into(), user.username.clone());
                Ok(AuthOutcome::Challenge(Challenge {
                    name: "SELECT_MFA_TYPE".into(),
                    session: self.new_session(client, user, "SELECT_MFA_TYPE")?,
                    parameters,
                }))
            }
            SecondStep::Enrol(methods) => {
                let mut parameters = BTreeMap::new();
                parameters.insert("MFAS_CAN_SETUP".into(), json_list(&methods));
                parameters.insert("USER_ID_FOR_SRP".into(), user.username.clone());
                Ok(AuthOutcome::Challenge(Challenge {
                    name: SETUP.into(),
                    session: self.new_session(client, user, SETUP)?,
                    parameters,
                }))
            }
        }
    }

    /// The challenge for `method`; SMS and e-mail codes are sent now. `spend`: the session of
    /// the SELECT_MFA_TYPE answer that chose it, used up as the code is stored (or alone).
    async fn ask(
        &self,
        pool: &Pool,
        client: &Client,
        user: &User,
        method: MfaMethod,
        spend: Option<&Spend>,
    ) -> Result<AuthOutcome> {
        let mut parameters = BTreeMap::new();
        let ttl = client.config.auth_session_validity.clamp(3, 15) * 60_000;
        let sent = match method {
            MfaMethod::SoftwareToken => {
                if let Some(spend) = spend {
                    self.use_up(spend).await?;
                }
                if let Some(name) = &user.mfa.totp_name {
                    parameters.insert("FRIENDLY_DEVICE_NAME".into(), name.clone());
                }
                None
            }
            MfaMethod::Sms => {
                let phone = user
                    .attribute("phone_number")
                    .unwrap_or_default()
                    .to_string();
                let template = pool
                    .config
                    .verification
                    .sms_authentication_message
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SMS_MFA_MESSAGE.into());
                let message = CodeMessage {
                    purpose: CodePurpose::SignInSms,
                    kind: MessageKind::Mfa,
                    ttl,
                    subject: None,
                    template,
                };
                Some(
                    self.send_code_in(
                        pool,
                        user,
                        message,
                        (Medium::Sms, phone, "phone_number"),
                        spend,
                    )
                    .await?,
                )
            }
            MfaMethod::Email => {
                let email = user.attribute("email").unwrap_or_default().to_string();
                let config = pool.config.mfa.email.clone().unwrap_or_default();
                let message = CodeMessage {
                    purpose: CodePurpose::SignInEmail,
                    kind: MessageKind::Mfa,
                    ttl,
                    subject: Some(
                        config
                            .subject
                            .unwrap_or_else(|| DEFAULT_EMAIL_MFA_SUBJECT.into()),
                    ),
                    template: config
                        .message
                        .unwrap_or_else(|| DEFAULT_EMAIL_MFA_MESSAGE.into()),
                };
                Some(
                    self.send_code_in(pool, user, message, (Medium::Email, email, "email"), spend)
                        .await?,
                )
            }
        };
        if let Some(d) = sent {
            parameters.insert(
                "CODE_DELIVERY_DELIVERY_MEDIUM".into(),
                d.medium.as_str().into(),
            );
            parameters.insert("CODE_DELIVERY_DESTINATION".into(), d.destination);
        }
        Ok(AuthOutcome::Challenge(Challenge {
            name: method.as_str().into(),
            session: self.new_session(client, user, method.as_str())?,
            parameters,
        }))
    }

    /// The answer to SMS_MFA, SOFTWARE_TOKEN_MFA or EMAIL_OTP. A wrong code leaves the session
    /// usable (the user may type it again); a right one uses the session up.
    pub(crate) async fn answer_mfa(
        &self,
        pool: &Pool,
        client: &Client,
        method: MfaMethod,
        session: &SessionState,
        responses: &BTreeMap<String, String>,
    ) -> Result<AuthOutcome> {
        let field = match method {
            MfaMethod::Sms => "SMS_MFA_CODE",
            MfaMethod::SoftwareToken => "SOFTWARE_TOKEN_MFA_CODE",
            MfaMethod::Email => "EMAIL_OTP_CODE",
        };
        let code = responses
            .get(field)
            .ok_or_else(|| Error::invalid(format!("Missing required parameter {field}")))?;
        let _turn = self.turns.turn(&session.sub).await;
        let user = self.session_user(pool, session).await?;
        self.check_may_sign_in(&user)?;
        self.check_not_locked(&user.failures)?;
        match method {
            MfaMethod::SoftwareToken => {
                let secret = self.totp_secret(&user, user.mfa.totp_secret.as_deref())?;
                if let Err(e) = self.use_totp(&user, &secret, code).await {
                    if matches!(e, Error::MfaCodeMismatch) {
                        self.sign_in_failed(&user).await?;
                    }
                    return Err(e);
                }
                let spend = session.spend()?;
                Ok(AuthOutcome::Tokens(
                    self.mint(&pool.id, client, &user, Issue::Answer(&spend))
                        .await?,
                ))
            }
            MfaMethod::Sms | MfaMethod::Email => {
                let purpose = if method == MfaMethod::Sms {
                    CodePurpose::SignInSms
                } else {
                    CodePurpose::SignInEmail
                };
                // A code that reached the phone verifies the number (Cognito does the same).
                let verifies = method == MfaMethod::Sms
                    && user.attribute("phone_number_verified") != Some("true");
                let redeemed = if verifies {
                    self.redeem_and_change(pool, user, (purpose, code), false, |user| {
                        let verified = ("phone_number_verified".into(), "true".into());
                        user.attributes.extend([verified]);
                        Ok(())
                    })
                    .await
                } else {
                    self.redeem(pool, &user, (purpose, code))
                        .await
                        .map(|()| user)
                };
                let user = redeemed.map_err(|e| match e {
                    Error::CodeMismatch | Error::ExpiredCode => mfa_mismatch(),
                    other => other,
                })?;
                let spend = session.spend()?;
                Ok(AuthOutcome::Tokens(
                    self.mint(&pool.id, client, &user, Issue::Answer(&spend))
                        .await?,
                ))
            }
        }
    }

    /// SELECT_MFA_TYPE: the chosen factor's challenge.
    pub(crate) async fn answer_selection(
        &self,
        pool: &Pool,
        client: &Client,
        session: &SessionState,
        responses: &BTreeMap<String, String>,
    ) -> Result<AuthOutcome> {
        let answer = responses
            .get("ANSWER")
            .ok_or_else(|| Error::invalid("Missing required parameter ANSWER"))?;
        let user = self.session_user(pool, session).await?;
        let choices = match second_step(pool, &user) {
            SecondStep::Choose(c) => c,
            SecondStep::Ask(m) => vec![m],
            _ => Vec::new(),
        };
        let method = MfaMethod::parse(if answer == "EMAIL_MFA" {
            "EMAIL_OTP"
        } else {
            answer
        })
        .filter(|m| choices.contains(m))
        .ok_or_else(|| Error::invalid(format!("{answer} is not a valid MFA type for the user.")))?;
        let spend = session.spend()?;
        self.ask(pool, client, &user, method, Some(&spend)).await
    }

    /// MFA_SETUP answered after VerifySoftwareToken: tokens.
    pub(crate) async fn answer_setup(
        &self,
        pool: &Pool,
        client: &Client,
        session: &str,
    ) -> Result<AuthOutcome> {
        let state = self.open_session(session, SETUP_VERIFIED)?;
        self.check_session_client(&state, client)?;
        let user = self.session_user(pool, &state).await?;
        let spend = state.spend()?;
        Ok(AuthOutcome::Tokens(
            self.mint(&pool.id, client, &user, Issue::Answer(&spend))
                .await?,
        ))
    }

    /// AssociateSoftwareToken: a new authenticator secret for the holder of an access token,
    /// or for a user in the MFA_SETUP challenge (then with the session for the next step).
    pub async fn associate_software_token(
        &self,
        access_token: Option<&str>,
        session: Option<&str>,
    ) -> Result<(String, Option<String>)> {
        let (pool, user, setup) = match (access_token, session) {
            (Some(token), None) => {
                let (pool, user) = self.access_token_user(token).await?;
                (pool, user, None)
            }
            (None, Some(session)) => {
                let state = self.open_session(session, SETUP)?;
                let pool = self.pool(&state.pool).await?;
                let user = self.session_user(&pool, &state).await?;
                (pool, user, Some(state))
            }
            _ => return Err(one_of_token_or_session()),
        };
        if !pool.config.mfa.software_token {
            return Err(Error::SoftwareTokenMfaNotFound(
                "Software Token MFA has not been enabled by the userPool.".into(),
            ));
        }
        let secret = self.random_bytes::<SECRET_BYTES>();
        let sealed = self.seal_totp(&user, &secret)?;
        let associate = |user: &mut User| {
            user.mfa.totp_pending = Some(sealed.clone());
            Ok(())
        };
        let next = self
            .setup_step(&pool, user, setup, SETUP_ASSOCIATED, associate)
            .await?;
        Ok((totp::base32(&secret), next))
    }

    /// VerifySoftwareToken: the first code of the associated authenticator makes it the
    /// user's; during MFA_SETUP it is also enabled, and the session for the last step returned.
    pub async fn verify_software_token(
        &self,
        access_token: Option<&str>,
        session: Option<&str>,
        code: &str,
        friendly_name: Option<&str>,
    ) -> Result<Option<String>> {
        let (pool, user, setup) = match (access_token, session) {
            (Some(token), None) => {
                let (pool, user) = self.access_token_user(token).await?;
                (pool, user, None)
            }
            (None, Some(session)) => {
                let state = self.open_unused_session(session, SETUP_ASSOCIATED).await?;
                let pool = self.pool(&state.pool).await?;
                let user = self.session_user(&pool, &state).await?;
                (pool, user, Some(state))
            }
            _ => return Err(one_of_token_or_session()),
        };
        let Some(pending) = user.mfa.totp_pending.clone() else {
            return Err(Error::SoftwareTokenMfaNotFound(
                "Software Token MFA has not been associated with the user.".into(),
            ));
        };
        let secret = self.totp_secret(&user, Some(&pending))?;
        let mismatch = || {
            Error::EnableSoftwareTokenMfa("Code mismatch and fail enable Software Token MFA".into())
        };
        self.use_totp(&user, &secret, code)
            .await
            .map_err(|e| match e {
                Error::MfaCodeMismatch => mismatch(),
                other => other,
            })?;
        let in_setup = setup.is_some();
        let verified = |user: &mut User| {
            // The code proves the authenticator associated when it was read: one associated
            // since (another AssociateSoftwareToken) is not what the code came from.
            if user.mfa.totp_pending.as_ref() != Some(&pending) {
                return Err(mismatch());
            }
            user.mfa.totp_secret = Some(pending.clone());
            user.mfa.totp_pending = None;
            user.mfa.totp_name = friendly_name.filter(|n| !n.is_empty()).map(str::to_string);
            if in_setup && !user.mfa.is_enabled(MfaMethod::SoftwareToken) {
                user.mfa.enabled.push(MfaMethod::SoftwareToken);
            }
            Ok(())
        };
        self.setup_step(&pool, user, setup, SETUP_VERIFIED, verified)
            .await
    }

    /// Makes `change` to the user; during MFA_SETUP (`setup`, the step's session) the session
    /// is used up with the change and the session for the `next` step returned.
    async fn setup_step<F>(
        &self,
        pool: &Pool,
        user: User,
        setup: Option<SessionState>,
        next: &str,
        change: F,
    ) -> Result<Option<String>>
    where
        F: FnMut(&mut User) -> Result<()>,
    {
        let Some(state) = setup else {
            self.change_user(pool, user, change).await?;
            return Ok(None);
        };
        let spend = state.spend()?;
        // Read before the change: nothing after it (it uses the session up) can fail but the
        // sealing of the next session.
        let client = self.session_client(&state).await?;
        let user = self
            .change_user_spending(pool, user, &spend, change)
            .await?;
        Ok(Some(self.new_session(&client, &user, next)?))
    }

    /// Accepts `code` of the authenticator `secret` once: a code of a step already used (or
    /// older than one used) is refused, however right.
    async fn use_totp(&self, user: &User, secret: &[u8], code: &str) -> Result<()> {
        let step = totp::matching_step(secret, code, self.now() / 1000).ok_or_else(mfa_mismatch)?;
        if !self
            .store
            .use_totp_step(&user.pool_id, &user.sub, step)
            .await?
        {
            return Err(mfa_mismatch());
        }
        Ok(())
    }

    fn totp_context(user: &User) -> Vec<u8> {
        format!("totp/v1\n{}\n{}", user.pool_id, user.sub).into_bytes()
    }

    fn seal_totp(&self, user: &User, secret: &[u8]) -> Result<String> {
        Ok(STANDARD.encode(self.vault.seal(secret, &Self::totp_context(user))?))
    }

    /// The authenticator secret sealed in `sealed`; none is a mismatch (no authenticator).
    fn totp_secret(&self, user: &User, sealed: Option<&str>) -> Result<Vec<u8>> {
        let sealed = sealed.ok_or_else(mfa_mismatch)?;
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|e| Error::Internal(format!("authenticator secret: {e}")))?;
        Ok(self.vault.open(&bytes, &Self::totp_context(user))?)
    }

    async fn session_user(&self, pool: &Pool, state: &SessionState) -> Result<User> {
        self.store
            .find_user(&pool.id, UserKey::Sub(&state.sub))
            .await?
            .ok_or_else(crate::challenges::invalid_session)
    }

    async fn session_client(&self, state: &SessionState) -> Result<Client> {
        self.store
            .get_client(&state.client)
            .await?
            .ok_or_else(crate::challenges::invalid_session)
    }
}

fn one_of_token_or_session() -> Error {
    Error::invalid("Exactly one of AccessToken or Session must be given.")
}

fn apply_preference(user: &mut User, method: MfaMethod, pref: MfaPreference) -> Result<()> {
    let enable =
        pref.enabled.unwrap_or(user.mfa.is_enabled(method)) || pref.preferred == Some(true);
    if enable && !user.mfa.is_enabled(method) {
        let ready = match method {
            MfaMethod::SoftwareToken => user.mfa.totp_secret.is_some(),
            MfaMethod::Sms => user.attribute("phone_number").is_some(),
            MfaMethod::Email => user.attribute("email").is_some(),
        };
        if !ready {
            return Err(Error::invalid(match method {
                MfaMethod::SoftwareToken => "User has not verified software token mfa".to_string(),
                other => format!(
                    "User does not have delivery config set to turn on {}",
                    other.as_str()
                ),
            }));
        }
        user.mfa.enabled.push(method);
    }
    if !enable {
        user.mfa.enabled.retain(|m| *m != method);
    }
    match pref.preferred {
        Some(true) => user.mfa.preferred = Some(method),
        _ if user.mfa.preferred == Some(method) && (!enable || pref.preferred == Some(false)) => {
            user.mfa.preferred = None;
        }
        _ => {}
    }
    Ok(())
}

fn mfa_config(pool: &Pool) -> MfaConfig {
    MfaConfig {
        mfa_configuration: pool.config.mfa_configuration.clone(),
        methods: pool.config.mfa.clone(),
        sms_message: pool.config.verification.sms_authentication_message.clone(),
        sms_configuration: pool.config.echoed.get("SmsConfiguration").cloned(),
    }
}

/// The wire view of a user's factors: `UserMFASettingList` and `PreferredMfaSetting`.
pub fn user_mfa_settings(mfa: &UserMfa) -> (Vec<&'static str>, Option<&'static str>) {
    let list = MfaMethod::ALL
        .into_iter()
        .filter(|m| mfa.is_enabled(*m))
        .map(MfaMethod::as_str)
        .collect();
    (list, mfa.preferred.map(MfaMethod::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn user(attrs: &[(&str, &str)], mfa: UserMfa) -> User {
        User {
            pool_id: "us-east-1_test".into(),
            username: "alice".into(),
            username_key: "alice".into(),
            sub: "sub-1".into(),
            status: UserStatus::Confirmed,
            enabled: true,
            created: 0,
            modified: 0,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            aliases: Aliases::default(),
            password: None,
            mfa,
            failures: SignInFailures::default(),
            revision: 0,
        }
    }

    fn totp_only() -> PoolMfa {
        PoolMfa {
            software_token: true,
            ..PoolMfa::default()
        }
    }

    fn sms_and_totp() -> PoolMfa {
        PoolMfa {
            sms: true,
            software_token: true,
            email: None,
        }
    }

    fn enrolled(enabled: Vec<MfaMethod>) -> UserMfa {
        UserMfa {
            enabled,
            totp_secret: Some("sealed".into()),
            ..UserMfa::default()
        }
    }

    #[test]
    fn mfa_off_asks_nothing_even_of_enrolled_users() {
        let u = user(&[], enrolled(vec![MfaMethod::SoftwareToken]));
        assert_eq!(step_for("OFF", &totp_only(), &u), SecondStep::None);
    }

    #[test]
    fn required_mfa_without_a_factor_asks_for_enrolment() {
        let u = user(&[("email", "a@example.com")], UserMfa::default());
        assert_eq!(
            step_for("ON", &totp_only(), &u),
            SecondStep::Enrol(vec![MfaMethod::SoftwareToken])
        );
    }

    #[test]
    fn required_sms_mfa_uses_the_phone_number_without_a_preference() {
        let u = user(&[("phone_number", "+15550100")], UserMfa::default());
        assert_eq!(
            step_for("ON", &sms_and_totp(), &u),
            SecondStep::Ask(MfaMethod::Sms)
        );
    }

    #[test]
    fn optional_mfa_asks_only_users_who_enabled_a_factor() {
        let verified_not_enabled = user(&[], enrolled(vec![]));
        assert_eq!(
            step_for("OPTIONAL", &totp_only(), &verified_not_enabled),
            SecondStep::None
        );
        let enabled = user(&[], enrolled(vec![MfaMethod::SoftwareToken]));
        assert_eq!(
            step_for("OPTIONAL", &totp_only(), &enabled),
            SecondStep::Ask(MfaMethod::SoftwareToken)
        );
    }

    #[test]
    fn an_enabled_factor_the_pool_stopped_offering_is_not_asked_for() {
        // SMS enabled by the user, but the pool no longer sends SMS codes.
        let u = user(
            &[("phone_number", "+15550100")],
            enrolled(vec![MfaMethod::Sms]),
        );
        assert_eq!(step_for("OPTIONAL", &totp_only(), &u), SecondStep::None);
    }

    #[test]
    fn several_factors_are_a_choice_unless_one_is_preferred() {
        let both = vec![MfaMethod::Sms, MfaMethod::SoftwareToken];
        let mut u = user(&[("phone_number", "+15550100")], enrolled(both.clone()));
        assert_eq!(
            step_for("OPTIONAL", &sms_and_totp(), &u),
            SecondStep::Choose(both)
        );
        u.mfa.preferred = Some(MfaMethod::SoftwareToken);
        assert_eq!(
            step_for("OPTIONAL", &sms_and_totp(), &u),
            SecondStep::Ask(MfaMethod::SoftwareToken)
        );
    }

    #[test]
    fn preferences_need_the_factor_and_preferring_enables() {
        let mut u = user(&[], UserMfa::default());
        let prefer = MfaPreference {
            enabled: Some(true),
            preferred: Some(true),
        };
        let err = apply_preference(&mut u, MfaMethod::SoftwareToken, prefer).unwrap_err();
        assert!(err.to_string().contains("not verified software token"));
        assert!(apply_preference(&mut u, MfaMethod::Sms, prefer).is_err());

        u.mfa.totp_secret = Some("sealed".into());
        let only_preferred = MfaPreference {
            enabled: None,
            preferred: Some(true),
        };
        apply_preference(&mut u, MfaMethod::SoftwareToken, only_preferred).unwrap();
        assert_eq!(u.mfa.enabled, vec![MfaMethod::SoftwareToken]);
        assert_eq!(u.mfa.preferred, Some(MfaMethod::SoftwareToken));

        let off = MfaPreference {
            enabled: Some(false),
            preferred: None,
        };
        apply_preference(&mut u, MfaMethod::SoftwareToken, off).unwrap();
        assert!(u.mfa.enabled.is_empty());
        assert_eq!(u.mfa.preferred, None);
    }
}
