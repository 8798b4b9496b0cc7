//! Users: sign-up and confirmation, administrator creation and changes, lookup and listing.

use std::collections::BTreeMap;

use crate::attributes::{self, Writer};
use crate::codes::{CodeMessage, Destination, Sender, render};
use crate::error::{Error, Result};
use crate::filter;
use crate::model::*;
use crate::paging::{self, Page};
use crate::store::{FilterField, SigningIn, StoreError, UniqueKey, UserKey};
use crate::{AdminGrant, Directory};

/// A SignUp request.
#[derive(Debug, Clone, Default)]
pub struct SignUp {
    pub client_id: String,
    pub secret_hash: Option<String>,
    pub username: String,
    pub password: Option<String>,
    pub attributes: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SignUpOutcome {
    pub confirmed: bool,
    pub sub: String,
    pub delivery: Option<CodeDelivery>,
}

/// An AdminCreateUser request.
#[derive(Debug, Clone, Default)]
pub struct AdminCreateUser {
    pub pool_id: String,
    pub username: String,
    pub attributes: Vec<(String, String)>,
    pub temporary_password: Option<String>,
    /// `RESEND` or `SUPPRESS`.
    pub message_action: Option<String>,
    pub desired_delivery_mediums: Vec<String>,
    pub force_alias_creation: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ListUsersQuery {
    pub pool_id: String,
    pub filter: Option<String>,
    pub limit: u32,
    pub token: Option<String>,
}

fn flag(attrs: &BTreeMap<String, String>, name: &str) -> bool {
    attrs.get(name).is_some_and(|v| v == "true")
}

/// The keys a typed name finds a user by: the username, then the alias it looks like where
/// the pool signs in with that alias. E-mail aliases are kept lower-cased whatever the pool's
/// case sensitivity.
struct Lookup {
    username: String,
    alias: Option<(AliasKey, String)>,
}

/// Makes an alias's [`UserKey`] from its value.
type AliasKey = fn(&str) -> UserKey<'_>;

impl Lookup {
    fn new(pool: &Pool, typed: &str) -> Self {
        let c = &pool.config;
        let allows = |a: &str| {
            c.username_attributes
                .iter()
                .chain(&c.alias_attributes)
                .any(|x| x == a)
        };
        let username = username_key(pool, typed);
        let alias: Option<(AliasKey, String)> = if allows("email") && attributes::is_email(typed) {
            Some((|v| UserKey::EmailAlias(v), typed.to_lowercase()))
        } else if allows("phone_number") && attributes::is_phone(typed) {
            Some((|v| UserKey::PhoneAlias(v), typed.to_string()))
        } else if allows("preferred_username") {
            Some((|v| UserKey::PreferredUsernameAlias(v), username.clone()))
        } else {
            None
        };
        Self { username, alias }
    }

    fn first(&self) -> UserKey<'_> {
        UserKey::Username(&self.username)
    }

    fn then(&self) -> Option<UserKey<'_>> {
        self.alias.as_ref().map(|(key, value)| key(value))
    }
}

/// The username as compared in this pool.
pub(crate) fn username_key(pool: &Pool, username: &str) -> String {
    if pool.config.case_sensitive {
        username.to_string()
    } else {
        username.to_lowercase()
    }
}

/// Refuses to confirm a user who is not unconfirmed (ConfirmSignUp, AdminConfirmSignUp).
fn confirmable(user: &User) -> Result<()> {
    if user.status != UserStatus::Unconfirmed {
        return Err(Error::not_authorized(format!(
            "User cannot be confirmed. Current status is {}",
            user.status.as_str()
        )));
    }
    Ok(())
}

/// Where password-reset codes go: the verified e-mail, else the verified phone number.
pub(crate) fn reset_destination(user: &User) -> Result<Destination> {
    let verified = |attr: &str| {
        flag(&user.attributes, &format!("{attr}_verified"))
            .then(|| user.attributes.get(attr).cloned())
            .flatten()
    };
    verified("email")
        .map(|e| (Medium::Email, e, "email"))
        .or_else(|| verified("phone_number").map(|p| (Medium::Sms, p, "phone_number")))
        .ok_or_else(|| {
            Error::invalid(
                "Cannot reset password for the user as there is no registered/verified email or phone_number",
            )
        })
}

/// The unique sign-in keys a user's attributes give them in this pool.
pub(crate) fn aliases_for(pool: &Pool, attrs: &BTreeMap<String, String>) -> Aliases {
    let c = &pool.config;
    let signs_in = |a: &str| c.username_attributes.iter().any(|x| x == a);
    let aliased = |a: &str| c.alias_attributes.iter().any(|x| x == a);
    let email = attrs
        .get("email")
        .filter(|_| signs_in("email") || (aliased("email") && flag(attrs, "email_verified")));
    let phone = attrs.get("phone_number").filter(|_| {
        signs_in("phone_number")
            || (aliased("phone_number") && flag(attrs, "phone_number_verified"))
    });
    let preferred = attrs
        .get("preferred_username")
        .filter(|_| aliased("preferred_username"));
    Aliases {
        email: email.map(|e| e.to_lowercase()),
        phone_number: phone.cloned(),
        preferred_username: preferred.map(|p| username_key(pool, p)),
    }
}

impl Directory {
    /// Maps a uniqueness conflict to the error Cognito gives for it in this pool.
    pub(crate) fn conflict_error(&self, pool: &Pool, e: StoreError) -> Error {
        let signs_in = |a: &str| pool.config.username_attributes.iter().any(|x| x == a);
        match e {
            StoreError::Conflict(UniqueKey::Username | UniqueKey::Sub) => {
                Error::UsernameExists("User already exists".into())
            }
            StoreError::Conflict(UniqueKey::EmailAlias) if signs_in("email") => {
                Error::UsernameExists("An account with the given email already exists.".into())
            }
            StoreError::Conflict(UniqueKey::PhoneAlias) if signs_in("phone_number") => {
                Error::UsernameExists(
                    "An account with the given phone_number already exists.".into(),
                )
            }
            StoreError::Conflict(UniqueKey::EmailAlias) => {
                Error::AliasExists("An account with the email already exists.".into())
            }
            StoreError::Conflict(UniqueKey::PhoneAlias) => {
                Error::AliasExists("An account with the phone_number already exists.".into())
            }
            StoreError::Conflict(UniqueKey::PreferredUsernameAlias) => {
                Error::AliasExists("An account with the preferred_username already exists.".into())
            }
            other => other.into(),
        }
    }

    /// Finds a user by username, or by e-mail, phone or preferred username where the pool
    /// lets them sign in with those.
    pub(crate) async fn find_user(&self, pool: &Pool, username: &str) -> Result<Option<User>> {
        let lookup = Lookup::new(pool, username);
        if let Some(u) = self.store.find_user(&pool.id, lookup.first()).await? {
            return Ok(Some(u));
        }
        match lookup.then() {
            Some(k) => Ok(self.store.find_user(&pool.id, k).await?),
            None => Ok(None),
        }
    }

    /// [`Self::find_user`] for a sign-in, in one read: the user, or the failures counted
    /// against `nobody` (the name's key when nobody has it, [`crate::srp_auth::nobody_key`]).
    pub(crate) async fn find_signing_in(
        &self,
        pool: &Pool,
        username: &str,
        nobody: &str,
    ) -> Result<SigningIn> {
        let lookup = Lookup::new(pool, username);
        Ok(self
            .store
            .find_signing_in(&pool.id, lookup.first(), lookup.then(), nobody)
            .await?)
    }

    pub(crate) async fn user(&self, pool: &Pool, username: &str) -> Result<User> {
        self.find_user(pool, username)
            .await?
            .ok_or(Error::UserNotFound)
    }

    /// The stored username and attributes for a new user named `requested`.
    fn new_identity(
        &self,
        pool: &Pool,
        requested: &str,
        attrs: &mut BTreeMap<String, String>,
    ) -> Result<(String, String)> {
        let c = &pool.config;
        let sub = self.new_uuid();
        if c.username_attributes.is_empty() {
            let aliased = |a: &str| c.alias_attributes.iter().any(|x| x == a);
            if aliased("email") && attributes::is_email(requested) {
                return Err(Error::invalid(
                    "Username cannot be of email format, since user pool is configured for email alias.",
                ));
            }
            if aliased("phone_number") && attributes::is_phone(requested) {
                return Err(Error::invalid(
                    "Username cannot be of phone number format, since user pool is configured for phone_number alias.",
                ));
            }
            return Ok((requested.to_string(), sub));
        }
        let email_ok = c.username_attributes.iter().any(|a| a == "email");
        let phone_ok = c.username_attributes.iter().any(|a| a == "phone_number");
        if email_ok && attributes::is_email(requested) {
            attrs.insert("email".into(), requested.to_string());
        } else if phone_ok && attributes::is_phone(requested) {
            attrs.insert("phone_number".into(), requested.to_string());
        } else {
            return Err(Error::invalid(match (email_ok, phone_ok) {
                (true, true) => "Username should be either an email or a phone number.",
                (true, false) => "Username should be an email.",
                _ => "Username should be a phone number.",
            }));
        }
        // In these pools the stored username is the user's sub.
        Ok((sub.clone(), sub))
    }

    /// Hashes a password and computes the SRP salt and sealed verifier for it.
    pub(crate) async fn credential(
        &self,
        pool: &Pool,
        user: &User,
        password: &str,
        expires: Option<Millis>,
    ) -> Result<PasswordCredential> {
        let hash_salt: [u8; 16] = self.random_bytes();
        let salt: [u8; srp::SALT_BYTES] = self.random_bytes();
        let (pool_name, user_id, pw) = (
            pool.srp_name().to_string(),
            user.username.clone(),
            password.to_string(),
        );
        // Both the hash and the verifier are CPU work: they run together on a hashing thread.
        let (hash, verifier) = self
            .hasher
            .run(move |ws| {
                (
                    ws.hash(&pw, &hash_salt),
                    srp::verifier(&pool_name, &user_id, &pw, &salt),
                )
            })
            .await?;
        let hash = hash?;
        let sealed = self
            .vault
            .seal(&verifier, &srp_context(&pool.id, &user.sub))?;
        Ok(PasswordCredential {
            hash,
            srp_salt: salt.to_vec(),
            srp_verifier_sealed: sealed,
            expires,
        })
    }

    fn blank_user(
        &self,
        pool: &Pool,
        username: String,
        sub: String,
        attributes: BTreeMap<String, String>,
        status: UserStatus,
    ) -> User {
        let now = self.now();
        User {
            pool_id: pool.id.clone(),
            username_key: username_key(pool, &username),
            username,
            sub,
            status,
            enabled: true,
            created: now,
            modified: now,
            aliases: aliases_for(pool, &attributes),
            attributes,
            password: None,
            mfa: UserMfa::default(),
            failures: SignInFailures::default(),
            revision: 0,
        }
    }

    pub async fn sign_up(&self, req: SignUp) -> Result<SignUpOutcome> {
        let (client, pool) = self
            .public_client(&req.client_id, &req.username, req.secret_hash.as_deref())
            .await?;
        if pool.config.admin_create_user.allow_admin_create_user_only {
            return Err(Error::not_authorized(
                "SignUp is not permitted for this user pool",
            ));
        }
        let password = req
            .password
            .as_deref()
            .ok_or_else(|| Error::invalid("Password is required."))?;
        let mut attrs = attributes::check_writes(&pool.config, &req.attributes, Writer::Creating)?;
        // A user signing up is held to the client's write permissions, as in
        // UpdateUserAttributes: no verification flags (security checklist A16).
        let names: Vec<&str> = req.attributes.iter().map(|(n, _)| n.as_str()).collect();
        crate::account::check_user_writes(&pool, &client, &names)?;
        let (username, sub) = self.new_identity(&pool, &req.username, &mut attrs)?;
        attributes::check_required(&pool.config, &attrs)?;
        crate::password::check_policy(&pool.config.password_policy, password)?;
        let mut user = self.blank_user(&pool, username, sub, attrs, UserStatus::Unconfirmed);
        user.password = Some(self.credential(&pool, &user, password, None).await?);
        // The user and its confirmation code are one write: a crash between two would leave a
        // user nobody was sent a code for.
        let dest = Self::code_destination(&pool, &user);
        let code = dest.as_ref().map(|(medium, _, _)| {
            let message = Self::verification_message(
                &pool,
                CodePurpose::SignUp,
                MessageKind::SignUp,
                *medium,
            );
            let fresh = self.fresh_code(&pool, &user, &message);
            (message, fresh)
        });
        let row = code.as_ref().map(|(_, fresh)| fresh.row(&pool, &user));
        self.store
            .insert_user(&user, false, row.as_ref())
            .await
            .map_err(|e| self.conflict_error(&pool, e))?;
        let delivery = match (code, dest) {
            (Some((message, fresh)), Some(dest)) => Some(
                self.deliver_code(&pool, &user, message, fresh, dest)
                    .await?,
            ),
            _ => None,
        };
        Ok(SignUpOutcome {
            confirmed: false,
            sub: user.sub,
            delivery,
        })
    }

    pub async fn confirm_sign_up(
        &self,
        client_id: &str,
        secret_hash: Option<&str>,
        username: &str,
        code: &str,
        force_alias_creation: bool,
    ) -> Result<()> {
        let (client, pool) = self.public_client(client_id, username, secret_hash).await?;
        let Some(user) = self.find_user(&pool, username).await? else {
            return Err(
                if client.config.prevent_user_existence_errors == "ENABLED" {
                    Error::CodeMismatch
                } else {
                    Error::UserNotFound
                },
            );
        };
        let confirm = |user: &mut User| {
            confirmable(user)?;
            if let Some((_, _, attribute)) = Self::code_destination(&pool, user) {
                user.attributes
                    .insert(format!("{attribute}_verified"), "true".into());
            }
            user.status = UserStatus::Confirmed;
            user.aliases = aliases_for(&pool, &user.attributes);
            Ok(())
        };
        // ForceAliasCreation moves a verified alias from its current holder to this user.
        let code = (CodePurpose::SignUp, code);
        self.redeem_and_change(&pool, user, code, force_alias_creation, confirm)
            .await?;
        Ok(())
    }

    pub async fn resend_confirmation_code(
        &self,
        client_id: &str,
        secret_hash: Option<&str>,
        username: &str,
    ) -> Result<CodeDelivery> {
        let (_client, pool) = self.public_client(client_id, username, secret_hash).await?;
        let user = self.user(&pool, username).await?;
        if user.status != UserStatus::Unconfirmed {
            return Err(Error::invalid("User is already confirmed."));
        }
        let dest = Self::code_destination(&pool, &user)
            .ok_or_else(|| Error::invalid("Auto verification not turned on."))?;
        self.send_code(&pool, &user, CodePurpose::SignUp, MessageKind::SignUp, dest)
            .await
    }

    /// A temporary password that satisfies the pool's policy.
    fn temporary_password(&self, policy: &PasswordPolicy) -> String {
        let len = (policy.minimum_length as usize).max(12);
        loop {
            let mut pw = self.random_string(
                b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789",
                len - 1,
            );
            pw.push(['!', '#', '%', '+', '-', '='][self.random_bytes::<1>()[0] as usize % 6]);
            if crate::password::check_policy(policy, &pw).is_ok() {
                return pw;
            }
        }
    }

    pub async fn admin_create_user(
        &self,
        grant: &AdminGrant,
        req: AdminCreateUser,
    ) -> Result<User> {
        let pool = self.admin_pool(grant, &req.pool_id).await?;
        let temp = match &req.temporary_password {
            Some(p) => {
                crate::password::check_policy(&pool.config.password_policy, p)?;
                p.clone()
            }
            None => self.temporary_password(&pool.config.password_policy),
        };
        let days = match pool.config.password_policy.temporary_password_validity_days {
            0 => 7,
            d => d,
        };
        let expires = self.now() + i64::from(days) * 86_400_000;
        let user = match req.message_action.as_deref() {
            Some("RESEND") => {
                let user = self.user(&pool, &req.username).await?;
                let resendable = |user: &User| {
                    if user.status != UserStatus::ForceChangePassword {
                        return Err(Error::UnsupportedUserState(format!(
                            "Resend not possible. {} status is not FORCE_CHANGE_PASSWORD",
                            req.username
                        )));
                    }
                    Ok(())
                };
                resendable(&user)?;
                let temporary = self.credential(&pool, &user, &temp, Some(expires)).await?;
                self.change_user(&pool, user, |user| {
                    resendable(user)?;
                    user.password = Some(temporary.clone());
                    Ok(())
                })
                .await?
            }
            _ => {
                let mut attrs =
                    attributes::check_writes(&pool.config, &req.attributes, Writer::Creating)?;
                let (username, sub) = self.new_identity(&pool, &req.username, &mut attrs)?;
                let mut user =
                    self.blank_user(&pool, username, sub, attrs, UserStatus::ForceChangePassword);
                user.password = Some(self.credential(&pool, &user, &temp, Some(expires)).await?);
                self.store
                    .insert_user(&user, req.force_alias_creation, None)
                    .await
                    .map_err(|e| self.conflict_error(&pool, e))?;
                user
            }
        };
        if req.message_action.as_deref() != Some("SUPPRESS") {
            self.send_invitation(&pool, &user, &temp, &req.desired_delivery_mediums)
                .await?;
        }
        Ok(user)
    }

    async fn send_invitation(
        &self,
        pool: &Pool,
        user: &User,
        temp: &str,
        mediums: &[String],
    ) -> Result<()> {
        let inv = &pool.config.admin_create_user;
        let wants = |m: &str| {
            if mediums.is_empty() {
                m == "SMS"
            } else {
                mediums.iter().any(|x| x == m)
            }
        };
        let shown = user
            .attribute("email")
            .filter(|_| pool.config.username_attributes.iter().any(|a| a == "email"))
            .unwrap_or(&user.username)
            .to_string();
        let mut targets = Vec::new();
        if wants("EMAIL")
            && let Some(email) = user.attribute("email")
        {
            let template = inv.invite_email.clone().unwrap_or_else(|| {
                "Your username is {username} and temporary password is {####}. ".into()
            });
            let subject = inv
                .invite_subject
                .clone()
                .unwrap_or_else(|| "Your temporary password".into());
            targets.push((Medium::Email, email.to_string(), Some(subject), template));
        }
        if wants("SMS")
            && let Some(phone) = user.attribute("phone_number")
        {
            let template = inv.invite_sms.clone().unwrap_or_else(|| {
                "Your username is {username} and temporary password is {####}. ".into()
            });
            targets.push((Medium::Sms, phone.to_string(), None, template));
        }
        for (medium, destination, subject, template) in targets {
            self.deliver(Message {
                pool_id: pool.id.clone(),
                username: user.username.clone(),
                medium,
                destination,
                kind: MessageKind::TemporaryPassword,
                subject,
                body: render(&template, temp, &shown),
                secret: temp.to_string(),
            })
            .await?;
        }
        Ok(())
    }

    pub async fn admin_confirm_sign_up(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        username: &str,
    ) -> Result<()> {
        let pool = self.admin_pool(grant, pool_id).await?;
        let user = self.user(&pool, username).await?;
        self.change_user(&pool, user, |user| {
            confirmable(user)?;
            user.status = UserStatus::Confirmed;
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn admin_get_user(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        username: &str,
    ) -> Result<User> {
        let pool = self.admin_pool(grant, pool_id).await?;
        self.user(&pool, username).await
    }

    pub async fn list_users(&self, grant: &AdminGrant, q: ListUsersQuery) -> Result<Page<User>> {
        let pool = self.admin_pool(grant, &q.pool_id).await?;
        let parsed = filter::parse(q.filter.as_deref().unwrap_or(""))?;
        let filter = parsed.map(|(_, mut f)| {
            match f.field {
                FilterField::Username => f.value = username_key(&pool, &f.value),
                FilterField::Email => f.value = f.value.to_lowercase(),
                _ => {}
            }
            f
        });
        let query = format!("users|{}|{:?}", pool.id, filter);
        let after = paging::decode_opt(&query, q.token.as_deref())?;
        let limit = if q.limit == 0 { 60 } else { q.limit };
        let items = self
            .store
            .list_users(&pool.id, filter.as_ref(), after.as_deref(), limit + 1)
            .await?;
        Ok(paging::page(&query, items, limit, |u| {
            crate::store::list_cursor(filter.as_ref(), u)
        }))
    }

    pub async fn admin_update_user_attributes(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        username: &str,
        changes: Vec<(String, String)>,
    ) -> Result<()> {
        let pool = self.admin_pool(grant, pool_id).await?;
        let user = self.user(&pool, username).await?;
        let writes = attributes::check_writes(&pool.config, &changes, Writer::Admin)?;
        self.write_attributes(&pool, user, writes, Sender::Admin)
            .await?;
        Ok(())
    }

    /// Applies checked attribute changes; a changed e-mail or phone loses its verified flag
    /// unless the writes set it, and then gets a verification code where the pool auto-verifies
    /// it (whose delivery is returned).
    pub(crate) async fn write_attributes(
        &self,
        pool: &Pool,
        user: User,
        writes: BTreeMap<String, String>,
        sender: Sender,
    ) -> Result<Option<CodeDelivery>> {
        // The change and its code are one write: a code refused by the send limit (a user's own
        // change) leaves the attribute as it was.
        let changed = self.change_user_with_code(pool, user, sender, |user| {
            let mut to_verify = None;
            for attr in ["email", "phone_number"] {
                let flag_name = format!("{attr}_verified");
                if let Some(new) = writes.get(attr)
                    && user.attributes.get(attr) != Some(new)
                    && !writes.contains_key(&flag_name)
                {
                    user.attributes.insert(flag_name, "false".into());
                    if pool
                        .config
                        .auto_verified_attributes
                        .iter()
                        .any(|a| a == attr)
                        && to_verify.is_none()
                    {
                        to_verify = Some(attr);
                    }
                }
            }
            user.attributes.extend(writes.clone());
            user.aliases = aliases_for(pool, &user.attributes);
            Ok(to_verify.map(|attr| Self::verification(pool, user, attr)))
        });
        Ok(changed.await?.1)
    }

    /// The message and destination of a code that verifies the user's `email` or
    /// `phone_number`.
    fn verification(pool: &Pool, user: &User, attr: &str) -> (CodeMessage, Destination) {
        let (medium, purpose, name) = match attr {
            "email" => (Medium::Email, CodePurpose::VerifyEmail, "email"),
            _ => (Medium::Sms, CodePurpose::VerifyPhone, "phone_number"),
        };
        let dest = user.attributes.get(attr).cloned().unwrap_or_default();
        let message =
            Self::verification_message(pool, purpose, MessageKind::AttributeVerification, medium);
        (message, (medium, dest, name))
    }

    /// Sends a code that verifies the user's `email` or `phone_number`.
    pub(crate) async fn send_verification(
        &self,
        pool: &Pool,
        user: &User,
        attr: &str,
    ) -> Result<CodeDelivery> {
        let (message, destination) = Self::verification(pool, user, attr);
        self.send_code_in(pool, user, message, destination, None)
            .await
    }

    pub async fn admin_delete_user_attributes(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        username: &str,
        names: Vec<String>,
    ) -> Result<()> {
        let pool = self.admin_pool(grant, pool_id).await?;
        let user = self.user(&pool, username).await?;
        self.remove_attributes(&pool, user, &names).await
    }

    /// Deletes attributes, refusing required, immutable and sign-in attributes.
    pub(crate) async fn remove_attributes(
        &self,
        pool: &Pool,
        user: User,
        names: &[String],
    ) -> Result<()> {
        self.change_user(pool, user, |user| {
            Self::without_attributes(pool, user, names)
        })
        .await?;
        Ok(())
    }

    fn without_attributes(pool: &Pool, user: &mut User, names: &[String]) -> Result<()> {
        for name in names {
            let Some(attr) = attributes::find(&pool.config, name) else {
                return Err(Error::invalid(format!(
                    "Invalid user attributes: {name}: Attribute does not exist in the schema."
                )));
            };
            if attr.required || name == "sub" {
                return Err(Error::invalid(format!(
                    "Invalid user attributes: {name}: Required attributes cannot be deleted."
                )));
            }
            if !attr.mutable {
                return Err(Error::invalid(format!(
                    "Invalid user attributes: {name}: Cannot modify an immutable attribute."
                )));
            }
            if pool.config.username_attributes.iter().any(|a| a == name) {
                return Err(Error::invalid(format!(
                    "Invalid user attributes: {name}: The sign-in attribute cannot be deleted."
                )));
            }
            user.attributes.remove(name);
            if name == "email" || name == "phone_number" {
                user.attributes.remove(&format!("{name}_verified"));
            }
        }
        user.aliases = aliases_for(pool, &user.attributes);
        Ok(())
    }

    pub async fn admin_set_user_enabled(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        username: &str,
        enabled: bool,
    ) -> Result<()> {
        let pool = self.admin_pool(grant, pool_id).await?;
        let user = self.user(&pool, username).await?;
        // AWS: AdminDisableUser "revokes all access tokens for the user", so enabling the user
        // again does not bring them back (security checklist A11): the flag and the revocation
        // are one write, so no failure between them leaves a disabled user whose sessions come
        // back with AdminEnableUser.
        if !self
            .store
            .set_user_enabled(&pool.id, &user.sub, enabled, self.now())
            .await?
        {
            return Err(Error::UserNotFound);
        }
        Ok(())
    }

    pub async fn admin_delete_user(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        username: &str,
    ) -> Result<()> {
        let pool = self.admin_pool(grant, pool_id).await?;
        let user = self.user(&pool, username).await?;
        if !self
            .store
            .delete_user(&pool.id, &user.sub, self.now())
            .await?
        {
            return Err(Error::UserNotFound);
        }
        Ok(())
    }

    pub async fn admin_set_user_password(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        username: &str,
        password: &str,
        permanent: bool,
    ) -> Result<()> {
        let pool = self.admin_pool(grant, pool_id).await?;
        let user = self.user(&pool, username).await?;
        crate::password::check_policy(&pool.config.password_policy, password)?;
        let expires = (!permanent).then(|| {
            let days = i64::from(
                pool.config
                    .password_policy
                    .temporary_password_validity_days
                    .max(1),
            );
            self.now() + days * 86_400_000
        });
        let new = self.credential(&pool, &user, password, expires).await?;
        self.change_user(&pool, user, |user| {
            user.password = Some(new.clone());
            user.status = if permanent {
                UserStatus::Confirmed
            } else {
                UserStatus::ForceChangePassword
            };
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Marks the password for reset and sends a reset code to a verified e-mail or phone.
    pub async fn admin_reset_user_password(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        username: &str,
    ) -> Result<CodeDelivery> {
        let pool = self.admin_pool(grant, pool_id).await?;
        let user = self.user(&pool, username).await?;
        // The reset and its code are one write: a user is never left to reset a password with
        // no code sent.
        let reset = self.change_user_with_code(&pool, user, Sender::Admin, |user| {
            let dest = reset_destination(user)?;
            if user.status != UserStatus::Unconfirmed {
                user.status = UserStatus::ResetRequired;
            }
            let message = Self::verification_message(
                &pool,
                CodePurpose::ForgotPassword,
                MessageKind::ForgotPassword,
                dest.0,
            );
            Ok(Some((message, dest)))
        });
        let (_, delivery) = reset.await?;
        delivery.ok_or_else(|| Error::Internal("a reset without its code".into()))
    }

    /// Development outbox: messages sent in a pool, to one user if named (by any sign-in name).
    pub async fn outbox(
        &self,
        pool_id: &str,
        username: Option<&str>,
    ) -> Result<Vec<StoredMessage>> {
        let pool = self.pool(pool_id).await?;
        let stored_name = match username {
            Some(name) => Some(match self.find_user(&pool, name).await? {
                Some(u) => u.username,
                None => name.to_string(),
            }),
            None => None,
        };
        Ok(self
            .store
            .list_messages(pool_id, stored_name.as_deref())
            .await?)
    }

    /// Development hook: makes the user's outstanding codes expired.
    pub async fn expire_codes(&self, pool_id: &str, username: &str) -> Result<u64> {
        let pool = self.pool(pool_id).await?;
        let user = self.user(&pool, username).await?;
        Ok(self
            .store
            .expire_codes(&pool.id, &user.sub, self.now())
            .await?)
    }
}

/// The associated data an SRP verifier is sealed with: it opens only for its own user.
pub fn srp_context(pool_id: &str, sub: &str) -> Vec<u8> {
    format!("srp-verifier\n{pool_id}\n{sub}").into_bytes()
}
