//! Actions users take on their own account: with an access token (attributes, verification,
//! password, deletion) and the forgotten-password pair.
#![allow(non_snake_case)]

use serde::Deserialize;
use serde_json::{Value, json};
use userpool::*;

use crate::errors::WireError;
use crate::input::{self, decode};
use crate::shapes;
use crate::users::{AttributeIn, attributes, public_ids};

type Out = Result<Value, WireError>;

fn access_token(token: &str) -> Result<(), WireError> {
    input::len("AccessToken", token, 1, 8192, true)
}

#[derive(Deserialize)]
struct UpdateAttributesIn {
    AccessToken: String,
    UserAttributes: Vec<AttributeIn>,
}

pub async fn update_user_attributes(dir: &Directory, body: &[u8]) -> Out {
    let req: UpdateAttributesIn = decode(body)?;
    access_token(&req.AccessToken)?;
    let changes = attributes("UserAttributes", Some(req.UserAttributes))?;
    let sent = dir
        .update_user_attributes(&req.AccessToken, changes)
        .await?;
    let list: Vec<Value> = sent.iter().map(shapes::delivery).collect();
    Ok(shapes::prune(json!({
        "CodeDeliveryDetailsList": (!list.is_empty()).then_some(list),
    })))
}

#[derive(Deserialize)]
struct DeleteAttributesIn {
    AccessToken: String,
    UserAttributeNames: Vec<String>,
}

pub async fn delete_user_attributes(dir: &Directory, body: &[u8]) -> Out {
    let req: DeleteAttributesIn = decode(body)?;
    access_token(&req.AccessToken)?;
    for name in &req.UserAttributeNames {
        input::len("UserAttributeNames", name, 1, 32, false)?;
    }
    dir.delete_user_attributes(&req.AccessToken, req.UserAttributeNames)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct TokenIn {
    AccessToken: String,
}

pub async fn delete_user(dir: &Directory, body: &[u8]) -> Out {
    let req: TokenIn = decode(body)?;
    access_token(&req.AccessToken)?;
    dir.delete_user(&req.AccessToken).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct ChangePasswordIn {
    AccessToken: String,
    PreviousPassword: Option<String>,
    ProposedPassword: String,
}

pub async fn change_password(dir: &Directory, body: &[u8]) -> Out {
    let req: ChangePasswordIn = decode(body)?;
    access_token(&req.AccessToken)?;
    let previous = req.PreviousPassword.unwrap_or_default();
    input::password("PreviousPassword", &previous)?;
    input::password("ProposedPassword", &req.ProposedPassword)?;
    dir.change_password(&req.AccessToken, &previous, &req.ProposedPassword)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct AttributeCodeIn {
    AccessToken: String,
    AttributeName: String,
    Code: Option<String>,
}

pub async fn get_user_attribute_verification_code(dir: &Directory, body: &[u8]) -> Out {
    let req: AttributeCodeIn = decode(body)?;
    access_token(&req.AccessToken)?;
    input::len("AttributeName", &req.AttributeName, 1, 32, false)?;
    let d = dir
        .get_user_attribute_verification_code(&req.AccessToken, &req.AttributeName)
        .await?;
    Ok(json!({ "CodeDeliveryDetails": shapes::delivery(&d) }))
}

pub async fn verify_user_attribute(dir: &Directory, body: &[u8]) -> Out {
    let req: AttributeCodeIn = decode(body)?;
    access_token(&req.AccessToken)?;
    input::len("AttributeName", &req.AttributeName, 1, 32, false)?;
    let code = req.Code.as_deref().ok_or_else(|| input::missing("Code"))?;
    input::len("Code", code, 1, 2048, true)?;
    dir.verify_user_attribute(&req.AccessToken, &req.AttributeName, code)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct ForgotPasswordIn {
    ClientId: String,
    SecretHash: Option<String>,
    Username: String,
}

pub async fn forgot_password(dir: &Directory, body: &[u8]) -> Out {
    let req: ForgotPasswordIn = decode(body)?;
    public_ids(&req.ClientId, &req.Username, req.SecretHash.as_deref())?;
    let d = dir
        .forgot_password(&req.ClientId, req.SecretHash.as_deref(), &req.Username)
        .await?;
    Ok(json!({ "CodeDeliveryDetails": shapes::delivery(&d) }))
}

#[derive(Deserialize)]
struct ConfirmForgotPasswordIn {
    ClientId: String,
    SecretHash: Option<String>,
    Username: String,
    ConfirmationCode: String,
    Password: String,
}

pub async fn confirm_forgot_password(dir: &Directory, body: &[u8]) -> Out {
    let req: ConfirmForgotPasswordIn = decode(body)?;
    public_ids(&req.ClientId, &req.Username, req.SecretHash.as_deref())?;
    input::len("ConfirmationCode", &req.ConfirmationCode, 1, 2048, true)?;
    input::password("Password", &req.Password)?;
    dir.confirm_forgot_password(ConfirmForgotPassword {
        client_id: req.ClientId,
        secret_hash: req.SecretHash,
        username: req.Username,
        code: req.ConfirmationCode,
        password: req.Password,
    })
    .await?;
    Ok(json!({}))
}
