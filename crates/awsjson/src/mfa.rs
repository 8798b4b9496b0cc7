//! MFA actions: the pool's MFA configuration, users' MFA preferences, and authenticator
//! enrolment (AssociateSoftwareToken / VerifySoftwareToken).
#![allow(non_snake_case)]

use serde::Deserialize;
use serde_json::{Value, json};
use userpool::*;

use crate::errors::WireError;
use crate::input::{self, decode};
use crate::shapes;

type Out = Result<Value, WireError>;

#[derive(Deserialize)]
struct SmsMfaIn {
    SmsAuthenticationMessage: Option<String>,
    SmsConfiguration: Option<Value>,
}

#[derive(Deserialize)]
struct EnabledIn {
    Enabled: Option<bool>,
}

#[derive(Deserialize)]
struct EmailMfaIn {
    Message: Option<String>,
    Subject: Option<String>,
}

#[derive(Deserialize)]
struct SetMfaConfigIn {
    UserPoolId: String,
    SmsMfaConfiguration: Option<SmsMfaIn>,
    SoftwareTokenMfaConfiguration: Option<EnabledIn>,
    EmailMfaConfiguration: Option<EmailMfaIn>,
    MfaConfiguration: Option<String>,
    /// Passkeys are not offered; accepted so SDK calls that carry it still work.
    #[allow(dead_code)]
    WebAuthnConfiguration: Option<Value>,
}

fn config_out(c: MfaConfig) -> Value {
    let sms = c.methods.sms.then(|| {
        json!({
            "SmsAuthenticationMessage": c.sms_message,
            "SmsConfiguration": c.sms_configuration,
        })
    });
    let email = c.methods.email.map(|e| {
        json!({
            "Message": e.message,
            "Subject": e.subject,
        })
    });
    shapes::prune(json!({
        "MfaConfiguration": c.mfa_configuration,
        "SoftwareTokenMfaConfiguration": {"Enabled": c.methods.software_token},
        "SmsMfaConfiguration": sms,
        "EmailMfaConfiguration": email,
    }))
}

pub async fn set_user_pool_mfa_config(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: SetMfaConfigIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    if let Some(m) = &req.MfaConfiguration {
        input::one_of("MfaConfiguration", m, &["OFF", "ON", "OPTIONAL"])?;
    }
    if let Some(e) = &req.EmailMfaConfiguration
        && let Some(s) = &e.Subject
    {
        input::len("EmailMfaConfiguration.Subject", s, 1, 140, false)?;
    }
    let config = MfaConfigInput {
        mfa_configuration: req.MfaConfiguration,
        sms: req.SmsMfaConfiguration.map(|s| SmsMfaInput {
            message: s.SmsAuthenticationMessage,
            sms_configuration: s.SmsConfiguration,
        }),
        software_token: req.SoftwareTokenMfaConfiguration.and_then(|t| t.Enabled),
        email: req.EmailMfaConfiguration.map(|e| EmailMfa {
            message: e.Message,
            subject: e.Subject,
        }),
    };
    let out = dir
        .set_user_pool_mfa_config(grant, &req.UserPoolId, config)
        .await?;
    Ok(config_out(out))
}

#[derive(Deserialize)]
struct PoolIn {
    UserPoolId: String,
}

pub async fn get_user_pool_mfa_config(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: PoolIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    Ok(config_out(
        dir.get_user_pool_mfa_config(grant, &req.UserPoolId).await?,
    ))
}

#[derive(Deserialize, Clone, Copy)]
struct PreferenceIn {
    Enabled: Option<bool>,
    PreferredMfa: Option<bool>,
}

#[derive(Deserialize)]
struct PreferencesIn {
    AccessToken: Option<String>,
    UserPoolId: Option<String>,
    Username: Option<String>,
    SMSMfaSettings: Option<PreferenceIn>,
    SoftwareTokenMfaSettings: Option<PreferenceIn>,
    EmailMfaSettings: Option<PreferenceIn>,
}

fn preferences(req: &PreferencesIn) -> MfaPreferences {
    let p = |s: Option<PreferenceIn>| {
        s.map(|s| MfaPreference {
            enabled: s.Enabled,
            preferred: s.PreferredMfa,
        })
    };
    MfaPreferences {
        sms: p(req.SMSMfaSettings),
        software_token: p(req.SoftwareTokenMfaSettings),
        email: p(req.EmailMfaSettings),
    }
}

pub async fn set_user_mfa_preference(dir: &Directory, body: &[u8]) -> Out {
    let req: PreferencesIn = decode(body)?;
    let token = req
        .AccessToken
        .as_deref()
        .ok_or_else(|| input::missing("AccessToken"))?;
    input::len("AccessToken", token, 1, 8192, true)?;
    dir.set_user_mfa_preference(token, preferences(&req))
        .await?;
    Ok(json!({}))
}

pub async fn admin_set_user_mfa_preference(
    dir: &Directory,
    grant: &AdminGrant,
    body: &[u8],
) -> Out {
    let req: PreferencesIn = decode(body)?;
    let pool_id = input::required_pool_id(req.UserPoolId.clone())?;
    let username = req
        .Username
        .as_deref()
        .ok_or_else(|| input::missing("Username"))?;
    input::username("Username", username)?;
    dir.admin_set_user_mfa_preference(grant, &pool_id, username, preferences(&req))
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct SoftwareTokenIn {
    AccessToken: Option<String>,
    Session: Option<String>,
    UserCode: Option<String>,
    FriendlyDeviceName: Option<String>,
}

fn token_or_session(req: &SoftwareTokenIn) -> Result<(), WireError> {
    if let Some(t) = &req.AccessToken {
        input::len("AccessToken", t, 1, 8192, true)?;
    }
    if let Some(s) = &req.Session {
        input::len("Session", s, 20, 4096, true)?;
    }
    Ok(())
}

pub async fn associate_software_token(dir: &Directory, body: &[u8]) -> Out {
    let req: SoftwareTokenIn = decode(body)?;
    token_or_session(&req)?;
    let (secret, session) = dir
        .associate_software_token(req.AccessToken.as_deref(), req.Session.as_deref())
        .await?;
    Ok(shapes::prune(
        json!({ "SecretCode": secret, "Session": session }),
    ))
}

pub async fn verify_software_token(dir: &Directory, body: &[u8]) -> Out {
    let req: SoftwareTokenIn = decode(body)?;
    token_or_session(&req)?;
    let code = req
        .UserCode
        .as_deref()
        .ok_or_else(|| input::missing("UserCode"))?;
    input::len("UserCode", code, 6, 6, true)?;
    if let Some(name) = &req.FriendlyDeviceName {
        input::len("FriendlyDeviceName", name, 0, 131_072, false)?;
    }
    let session = dir
        .verify_software_token(
            req.AccessToken.as_deref(),
            req.Session.as_deref(),
            code,
            req.FriendlyDeviceName.as_deref(),
        )
        .await?;
    Ok(shapes::prune(
        json!({ "Status": "SUCCESS", "Session": session }),
    ))
}

/// `UserMFASettingList` and `PreferredMfaSetting` of GetUser and AdminGetUser, absent when the
/// user has none, as on Cognito.
pub fn user_settings(u: &User) -> (Option<Vec<&'static str>>, Option<&'static str>) {
    let (list, preferred) = user_mfa_settings(&u.mfa);
    ((!list.is_empty()).then_some(list), preferred)
}
