//! The user directory's data: pools, app clients, users, groups, resource servers, messages.
//!
//! Times are milliseconds since the Unix epoch. Configuration structs derive serde only so the
//! store can keep them as JSON documents; the wire shapes live in `awsjson`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub type Millis = i64;

/// Settings Cognito stores and echoes without rules of ours yet (LambdaConfig, EmailConfiguration,
/// tags, …), keyed by their API member name.
pub type Echoed = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub id: String,
    pub name: String,
    pub arn: String,
    pub created: Millis,
    pub modified: Millis,
    pub config: PoolConfig,
}

impl Pool {
    /// The part of the id after `_`, which Cognito's SRP mixes into every password.
    pub fn srp_name(&self) -> &str {
        self.id.split_once('_').map(|(_, n)| n).unwrap_or(&self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolConfig {
    pub password_policy: PasswordPolicy,
    pub schema: Vec<SchemaAttribute>,
    pub username_attributes: Vec<String>,
    pub alias_attributes: Vec<String>,
    pub auto_verified_attributes: Vec<String>,
    pub case_sensitive: bool,
    pub deletion_protection: bool,
    pub mfa_configuration: String,
    /// Which second factors the pool offers (SetUserPoolMfaConfig).
    #[serde(default)]
    pub mfa: PoolMfa,
    pub admin_create_user: AdminCreateUserConfig,
    pub verification: VerificationTemplates,
    pub echoed: Echoed,
}

/// The second factors a pool offers. SMS codes use the pool's SmsAuthenticationMessage.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolMfa {
    pub sms: bool,
    pub software_token: bool,
    pub email: Option<EmailMfa>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailMfa {
    pub message: Option<String>,
    pub subject: Option<String>,
}

/// A second factor, by its challenge name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MfaMethod {
    #[serde(rename = "SMS_MFA")]
    Sms,
    #[serde(rename = "SOFTWARE_TOKEN_MFA")]
    SoftwareToken,
    #[serde(rename = "EMAIL_OTP")]
    Email,
}

impl MfaMethod {
    pub const ALL: [MfaMethod; 3] = [MfaMethod::Sms, MfaMethod::SoftwareToken, MfaMethod::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            MfaMethod::Sms => "SMS_MFA",
            MfaMethod::SoftwareToken => "SOFTWARE_TOKEN_MFA",
            MfaMethod::Email => "EMAIL_OTP",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A user's second factors: which are enabled, which is preferred, and the authenticator
/// secrets (sealed with the master key, Base64).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UserMfa {
    pub enabled: Vec<MfaMethod>,
    pub preferred: Option<MfaMethod>,
    /// The verified authenticator's secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp_secret: Option<String>,
    /// A secret from AssociateSoftwareToken not yet verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp_pending: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp_name: Option<String>,
}

impl UserMfa {
    pub fn is_enabled(&self, m: MfaMethod) -> bool {
        self.enabled.contains(&m)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordPolicy {
    pub minimum_length: u32,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub require_numbers: bool,
    pub require_symbols: bool,
    pub password_history_size: Option<u32>,
    pub temporary_password_validity_days: u32,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            minimum_length: 8,
            require_uppercase: true,
            require_lowercase: true,
            require_numbers: true,
            require_symbols: true,
            password_history_size: None,
            temporary_password_validity_days: 7,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttributeType {
    String,
    Number,
    DateTime,
    Boolean,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaAttribute {
    /// Full name: `email`, `custom:tenant`.
    pub name: String,
    pub data_type: AttributeType,
    pub developer_only: bool,
    pub mutable: bool,
    pub required: bool,
    pub min_length: Option<String>,
    pub max_length: Option<String>,
    pub min_value: Option<String>,
    pub max_value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminCreateUserConfig {
    pub allow_admin_create_user_only: bool,
    pub unused_account_validity_days: u32,
    pub invite_sms: Option<String>,
    pub invite_email: Option<String>,
    pub invite_subject: Option<String>,
}

impl Default for AdminCreateUserConfig {
    fn default() -> Self {
        Self {
            allow_admin_create_user_only: false,
            unused_account_validity_days: 7,
            invite_sms: None,
            invite_email: None,
            invite_subject: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VerificationTemplates {
    pub sms_message: Option<String>,
    pub email_message: Option<String>,
    pub email_subject: Option<String>,
    pub email_message_by_link: Option<String>,
    pub email_subject_by_link: Option<String>,
    pub default_email_option: Option<String>,
    pub sms_authentication_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub pool_id: String,
    pub client_id: String,
    pub secret: Option<String>,
    pub created: Millis,
    pub modified: Millis,
    pub config: ClientConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientConfig {
    pub name: String,
    pub refresh_token_validity: i64,
    pub access_token_validity: i64,
    pub id_token_validity: i64,
    pub token_validity_units: TokenValidityUnits,
    pub read_attributes: Option<Vec<String>>,
    pub write_attributes: Option<Vec<String>>,
    pub explicit_auth_flows: Vec<String>,
    pub supported_identity_providers: Vec<String>,
    pub callback_urls: Vec<String>,
    pub logout_urls: Vec<String>,
    pub default_redirect_uri: Option<String>,
    pub allowed_oauth_flows: Vec<String>,
    pub allowed_oauth_scopes: Vec<String>,
    pub allowed_oauth_flows_user_pool_client: bool,
    pub prevent_user_existence_errors: String,
    pub enable_token_revocation: bool,
    pub enable_propagate_additional_user_context_data: bool,
    pub auth_session_validity: i64,
    pub echoed: Echoed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenValidityUnits {
    pub access_token: String,
    pub id_token: String,
    pub refresh_token: String,
}

impl Default for TokenValidityUnits {
    fn default() -> Self {
        Self {
            access_token: "hours".into(),
            id_token: "hours".into(),
            refresh_token: "days".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Unconfirmed,
    Confirmed,
    ForceChangePassword,
    ResetRequired,
    ExternalProvider,
    Archived,
    Compromised,
    Unknown,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Unconfirmed => "UNCONFIRMED",
            UserStatus::Confirmed => "CONFIRMED",
            UserStatus::ForceChangePassword => "FORCE_CHANGE_PASSWORD",
            UserStatus::ResetRequired => "RESET_REQUIRED",
            UserStatus::ExternalProvider => "EXTERNAL_PROVIDER",
            UserStatus::Archived => "ARCHIVED",
            UserStatus::Compromised => "COMPROMISED",
            UserStatus::Unknown => "UNKNOWN",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "UNCONFIRMED" => UserStatus::Unconfirmed,
            "CONFIRMED" => UserStatus::Confirmed,
            "FORCE_CHANGE_PASSWORD" => UserStatus::ForceChangePassword,
            "RESET_REQUIRED" => UserStatus::ResetRequired,
            "EXTERNAL_PROVIDER" => UserStatus::ExternalProvider,
            "ARCHIVED" => UserStatus::Archived,
            "COMPROMISED" => UserStatus::Compromised,
            "UNKNOWN" => UserStatus::Unknown,
            _ => return None,
        })
    }
}

/// What a stored password consists of: an argon2id PHC string and the SRP salt and verifier
/// (sealed with the master key) that USER_SRP_AUTH will need.
#[derive(Debug, Clone, PartialEq)]
pub struct PasswordCredential {
    pub hash: String,
    pub srp_salt: Vec<u8>,
    pub srp_verifier_sealed: Vec<u8>,
    /// Set for temporary passwords: when they stop working.
    pub expires: Option<Millis>,
}

/// Unique sign-in keys of a user besides the username itself, already normalised.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Aliases {
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub preferred_username: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub pool_id: String,
    pub username: String,
    /// `username` as compared: lower-cased in case-insensitive pools.
    pub username_key: String,
    pub sub: String,
    pub status: UserStatus,
    pub enabled: bool,
    pub created: Millis,
    pub modified: Millis,
    /// Every attribute but `sub`, by name.
    pub attributes: BTreeMap<String, String>,
    pub aliases: Aliases,
    pub password: Option<PasswordCredential>,
    pub mfa: UserMfa,
    /// Read with the user; written only through the store's sign-in-failure methods.
    pub failures: SignInFailures,
    /// How many times the row had been written when it was read (0 for a new user): a change
    /// is stored only over the revision it was made from (see `Store::update_user`).
    pub revision: i64,
}

/// Failed sign-ins counted towards the lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignInFailures {
    pub count: u32,
    pub locked_until: Option<Millis>,
}

impl User {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        if name == "sub" {
            return Some(&self.sub);
        }
        self.attributes.get(name).map(String::as_str)
    }

    /// All attributes, `sub` first, as Cognito lists them.
    pub fn all_attributes(&self) -> Vec<(String, String)> {
        let mut out = vec![("sub".to_string(), self.sub.clone())];
        out.extend(self.attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub pool_id: String,
    pub name: String,
    pub description: Option<String>,
    pub role_arn: Option<String>,
    pub precedence: Option<i64>,
    pub created: Millis,
    pub modified: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceServer {
    pub pool_id: String,
    pub identifier: String,
    pub name: String,
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    SignUp,
    TemporaryPassword,
    ForgotPassword,
    AttributeVerification,
    Mfa,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::SignUp => "signup",
            MessageKind::TemporaryPassword => "temporary_password",
            MessageKind::ForgotPassword => "forgot_password",
            MessageKind::AttributeVerification => "attribute_verification",
            MessageKind::Mfa => "mfa",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "signup" => MessageKind::SignUp,
            "temporary_password" => MessageKind::TemporaryPassword,
            "forgot_password" => MessageKind::ForgotPassword,
            "attribute_verification" => MessageKind::AttributeVerification,
            "mfa" => MessageKind::Mfa,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    Email,
    Sms,
}

impl Medium {
    pub fn as_str(self) -> &'static str {
        match self {
            Medium::Email => "EMAIL",
            Medium::Sms => "SMS",
        }
    }
}

/// One message to a user. `secret` is the code or temporary password it carries; only the outbox
/// keeps it, every other sender forgets it after delivery.
#[derive(Clone, PartialEq)]
pub struct Message {
    pub pool_id: String,
    pub username: String,
    pub medium: Medium,
    pub destination: String,
    pub kind: MessageKind,
    pub subject: Option<String>,
    pub body: String,
    pub secret: String,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("pool_id", &self.pool_id)
            .field("username", &self.username)
            .field("medium", &self.medium)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A message as the development outbox returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    pub message: Message,
    pub sent: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    SignUp,
    ForgotPassword,
    VerifyEmail,
    VerifyPhone,
    /// A sign-in code sent by SMS or e-mail (SMS_MFA, EMAIL_OTP).
    SignInSms,
    SignInEmail,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::SignUp => "signup",
            CodePurpose::ForgotPassword => "forgot_password",
            CodePurpose::VerifyEmail => "verify_email",
            CodePurpose::VerifyPhone => "verify_phone_number",
            CodePurpose::SignInSms => "sign_in_sms",
            CodePurpose::SignInEmail => "sign_in_email",
        }
    }
}

/// Where a code went, as Cognito reports it (`CodeDeliveryDetails`).
#[derive(Debug, Clone, PartialEq)]
pub struct CodeDelivery {
    pub destination: String,
    pub medium: Medium,
    pub attribute: String,
}
