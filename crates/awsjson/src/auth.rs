//! Sign-in actions: InitiateAuth, AdminInitiateAuth, and GetUser (access-token holders).
#![allow(non_snake_case)]

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use userpool::*;

use crate::errors::WireError;
use crate::input::{self, decode};
use crate::shapes;

type Out = Result<Value, WireError>;

const FLOWS: &[&str] = &[
    "USER_SRP_AUTH",
    "REFRESH_TOKEN_AUTH",
    "REFRESH_TOKEN",
    "CUSTOM_AUTH",
    "ADMIN_NO_SRP_AUTH",
    "USER_PASSWORD_AUTH",
    "ADMIN_USER_PASSWORD_AUTH",
    "USER_AUTH",
];

#[derive(Deserialize)]
struct InitiateAuthIn {
    AuthFlow: String,
    ClientId: String,
    AuthParameters: Option<BTreeMap<String, String>>,
    UserPoolId: Option<String>,
}

fn request(req: InitiateAuthIn) -> Result<AuthRequest, WireError> {
    input::client_id(&req.ClientId)?;
    input::one_of("AuthFlow", &req.AuthFlow, FLOWS)?;
    Ok(AuthRequest {
        client_id: req.ClientId,
        flow: req.AuthFlow,
        params: req.AuthParameters.unwrap_or_default(),
    })
}

fn result(out: AuthOutcome) -> Value {
    let v = match out {
        AuthOutcome::Tokens(t) => json!({
            "ChallengeParameters": {},
            "AuthenticationResult": {
                "AccessToken": t.access,
                "ExpiresIn": t.expires_in,
                "TokenType": "Bearer",
                "RefreshToken": t.refresh,
                "IdToken": t.id,
            }
        }),
        AuthOutcome::Challenge(c) => json!({
            "ChallengeName": c.name,
            "Session": (!c.session.is_empty()).then_some(c.session),
            "ChallengeParameters": c.parameters,
        }),
    };
    shapes::prune(v)
}

pub async fn initiate_auth(dir: &Directory, body: &[u8]) -> Out {
    let req: InitiateAuthIn = decode(body)?;
    let out = dir.initiate_auth(request(req)?).await?;
    Ok(result(out))
}

pub async fn admin_initiate_auth(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let mut req: InitiateAuthIn = decode(body)?;
    let pool_id = input::required_pool_id(req.UserPoolId.take())?;
    let out = dir
        .admin_initiate_auth(grant, &pool_id, request(req)?)
        .await?;
    Ok(result(out))
}

#[derive(Deserialize)]
struct AccessTokenIn {
    AccessToken: String,
}

pub async fn get_user(dir: &Directory, body: &[u8]) -> Out {
    let req: AccessTokenIn = decode(body)?;
    input::len("AccessToken", &req.AccessToken, 1, 8192, true)?;
    let u = dir.get_user(&req.AccessToken).await?;
    let (list, preferred) = crate::mfa::user_settings(&u);
    Ok(shapes::prune(json!({
        "Username": u.username,
        "UserAttributes": shapes::attributes(&u, None),
        "UserMFASettingList": list,
        "PreferredMfaSetting": preferred,
    })))
}

pub async fn global_sign_out(dir: &Directory, body: &[u8]) -> Out {
    let req: AccessTokenIn = decode(body)?;
    input::len("AccessToken", &req.AccessToken, 1, 8192, true)?;
    dir.global_sign_out(&req.AccessToken).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct AdminSignOutIn {
    UserPoolId: String,
    Username: String,
}

pub async fn admin_user_global_sign_out(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: AdminSignOutIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    input::username("Username", &req.Username)?;
    dir.admin_user_global_sign_out(grant, &req.UserPoolId, &req.Username)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct RefreshIn {
    RefreshToken: String,
    ClientId: String,
    ClientSecret: Option<String>,
}

pub async fn get_tokens_from_refresh_token(dir: &Directory, body: &[u8]) -> Out {
    let req: RefreshIn = decode(body)?;
    input::len("RefreshToken", &req.RefreshToken, 1, 8192, true)?;
    input::client_id(&req.ClientId)?;
    if let Some(s) = &req.ClientSecret {
        input::len("ClientSecret", s, 24, 64, true)?;
    }
    let t = dir
        .get_tokens_from_refresh_token(
            &req.RefreshToken,
            &req.ClientId,
            req.ClientSecret.as_deref(),
        )
        .await?;
    Ok(result(AuthOutcome::Tokens(t)))
}

#[derive(Deserialize)]
struct RevokeTokenIn {
    Token: String,
    ClientId: String,
    ClientSecret: Option<String>,
}

pub async fn revoke_token(dir: &Directory, body: &[u8]) -> Out {
    let req: RevokeTokenIn = decode(body)?;
    input::len("Token", &req.Token, 1, 8192, true)?;
    input::client_id(&req.ClientId)?;
    dir.revoke_token(&req.Token, &req.ClientId, req.ClientSecret.as_deref())
        .await?;
    Ok(json!({}))
}

const CHALLENGES: &[&str] = &[
    "SMS_MFA",
    "EMAIL_OTP",
    "SOFTWARE_TOKEN_MFA",
    "SELECT_MFA_TYPE",
    "MFA_SETUP",
    "PASSWORD_VERIFIER",
    "CUSTOM_CHALLENGE",
    "SELECT_CHALLENGE",
    "DEVICE_SRP_AUTH",
    "DEVICE_PASSWORD_VERIFIER",
    "ADMIN_NO_SRP_AUTH",
    "NEW_PASSWORD_REQUIRED",
    "SMS_OTP",
    "PASSWORD",
    "WEB_AUTHN",
    "PASSWORD_SRP",
];

#[derive(Deserialize)]
struct RespondIn {
    ClientId: String,
    ChallengeName: String,
    Session: Option<String>,
    ChallengeResponses: Option<BTreeMap<String, String>>,
    UserPoolId: Option<String>,
}

fn answer(req: RespondIn) -> Result<ChallengeAnswer, WireError> {
    input::client_id(&req.ClientId)?;
    input::one_of("ChallengeName", &req.ChallengeName, CHALLENGES)?;
    if let Some(s) = &req.Session {
        input::len("Session", s, 20, 2048, true)?;
    }
    Ok(ChallengeAnswer {
        client_id: req.ClientId,
        challenge: req.ChallengeName,
        session: req.Session,
        responses: req.ChallengeResponses.unwrap_or_default(),
    })
}

pub async fn respond_to_auth_challenge(dir: &Directory, body: &[u8]) -> Out {
    let req: RespondIn = decode(body)?;
    Ok(result(dir.respond_to_auth_challenge(answer(req)?).await?))
}

pub async fn admin_respond_to_auth_challenge(
    dir: &Directory,
    grant: &AdminGrant,
    body: &[u8],
) -> Out {
    let mut req: RespondIn = decode(body)?;
    let pool_id = input::required_pool_id(req.UserPoolId.take())?;
    let out = dir
        .admin_respond_to_auth_challenge(grant, &pool_id, answer(req)?)
        .await?;
    Ok(result(out))
}
