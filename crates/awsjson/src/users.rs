//! Actions on users and groups.
#![allow(non_snake_case)]

use serde::Deserialize;
use serde_json::{Value, json};
use userpool::*;

use crate::errors::WireError;
use crate::input::{self, decode};
use crate::shapes;

type Out = Result<Value, WireError>;

#[derive(Deserialize)]
pub(crate) struct AttributeIn {
    Name: String,
    Value: Option<String>,
}

pub(crate) fn attributes(
    field: &str,
    list: Option<Vec<AttributeIn>>,
) -> Result<Vec<(String, String)>, WireError> {
    list.unwrap_or_default()
        .into_iter()
        .map(|a| {
            input::len(field, &a.Name, 1, 32, false)?;
            let value = a.Value.unwrap_or_default();
            input::len(field, &value, 0, 2048, false)?;
            Ok((a.Name, value))
        })
        .collect()
}

#[derive(Deserialize)]
struct SignUpIn {
    ClientId: String,
    SecretHash: Option<String>,
    Username: String,
    Password: Option<String>,
    UserAttributes: Option<Vec<AttributeIn>>,
}

pub(crate) fn public_ids(
    client_id: &str,
    username: &str,
    secret_hash: Option<&str>,
) -> Result<(), WireError> {
    input::client_id(client_id)?;
    input::username("Username", username)?;
    if let Some(h) = secret_hash {
        input::len("SecretHash", h, 1, 128, true)?;
    }
    Ok(())
}

pub async fn sign_up(dir: &Directory, body: &[u8]) -> Out {
    let req: SignUpIn = decode(body)?;
    public_ids(&req.ClientId, &req.Username, req.SecretHash.as_deref())?;
    if let Some(p) = &req.Password {
        input::password("Password", p)?;
    }
    let out = dir
        .sign_up(SignUp {
            client_id: req.ClientId,
            secret_hash: req.SecretHash,
            username: req.Username,
            password: req.Password,
            attributes: attributes("UserAttributes", req.UserAttributes)?,
        })
        .await?;
    Ok(json!({
        "UserConfirmed": out.confirmed,
        "UserSub": out.sub,
        "CodeDeliveryDetails": out.delivery.as_ref().map(shapes::delivery),
    }))
}

#[derive(Deserialize)]
struct ConfirmSignUpIn {
    ClientId: String,
    SecretHash: Option<String>,
    Username: String,
    ConfirmationCode: String,
    ForceAliasCreation: Option<bool>,
}

pub async fn confirm_sign_up(dir: &Directory, body: &[u8]) -> Out {
    let req: ConfirmSignUpIn = decode(body)?;
    public_ids(&req.ClientId, &req.Username, req.SecretHash.as_deref())?;
    input::len("ConfirmationCode", &req.ConfirmationCode, 1, 2048, true)?;
    input::pattern(
        "ConfirmationCode",
        &req.ConfirmationCode,
        &input::NO_SPACE,
        true,
    )?;
    dir.confirm_sign_up(
        &req.ClientId,
        req.SecretHash.as_deref(),
        &req.Username,
        &req.ConfirmationCode,
        req.ForceAliasCreation.unwrap_or(false),
    )
    .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct ResendIn {
    ClientId: String,
    SecretHash: Option<String>,
    Username: String,
}

pub async fn resend_confirmation_code(dir: &Directory, body: &[u8]) -> Out {
    let req: ResendIn = decode(body)?;
    public_ids(&req.ClientId, &req.Username, req.SecretHash.as_deref())?;
    let d = dir
        .resend_confirmation_code(&req.ClientId, req.SecretHash.as_deref(), &req.Username)
        .await?;
    Ok(json!({ "CodeDeliveryDetails": shapes::delivery(&d) }))
}

#[derive(Deserialize)]
struct AdminCreateUserIn {
    UserPoolId: String,
    Username: String,
    UserAttributes: Option<Vec<AttributeIn>>,
    TemporaryPassword: Option<String>,
    ForceAliasCreation: Option<bool>,
    MessageAction: Option<String>,
    DesiredDeliveryMediums: Option<Vec<String>>,
}

pub async fn admin_create_user(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: AdminCreateUserIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    input::username("Username", &req.Username)?;
    if let Some(p) = &req.TemporaryPassword {
        input::password("TemporaryPassword", p)?;
    }
    if let Some(a) = &req.MessageAction {
        input::one_of("MessageAction", a, &["RESEND", "SUPPRESS"])?;
    }
    let mediums = req.DesiredDeliveryMediums.unwrap_or_default();
    input::all_of("DesiredDeliveryMediums", &mediums, &["SMS", "EMAIL"])?;
    let user = dir
        .admin_create_user(
            grant,
            AdminCreateUser {
                pool_id: req.UserPoolId,
                username: req.Username,
                attributes: attributes("UserAttributes", req.UserAttributes)?,
                temporary_password: req.TemporaryPassword,
                message_action: req.MessageAction,
                desired_delivery_mediums: mediums,
                force_alias_creation: req.ForceAliasCreation.unwrap_or(false),
            },
        )
        .await?;
    Ok(json!({ "User": shapes::user(&user, None) }))
}

#[derive(Deserialize)]
struct UserRefIn {
    UserPoolId: String,
    Username: String,
}

fn user_ref(body: &[u8]) -> Result<UserRefIn, WireError> {
    let req: UserRefIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    input::username("Username", &req.Username)?;
    Ok(req)
}

pub async fn admin_confirm_sign_up(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let r = user_ref(body)?;
    dir.admin_confirm_sign_up(grant, &r.UserPoolId, &r.Username)
        .await?;
    Ok(json!({}))
}

pub async fn admin_get_user(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let r = user_ref(body)?;
    let u = dir
        .admin_get_user(grant, &r.UserPoolId, &r.Username)
        .await?;
    let (list, preferred) = crate::mfa::user_settings(&u);
    Ok(shapes::prune(json!({
        "Username": u.username,
        "UserAttributes": shapes::attributes(&u, None),
        "UserCreateDate": shapes::seconds(u.created),
        "UserLastModifiedDate": shapes::seconds(u.modified),
        "Enabled": u.enabled,
        "UserStatus": u.status.as_str(),
        "UserMFASettingList": list,
        "PreferredMfaSetting": preferred,
    })))
}

#[derive(Deserialize)]
struct ListUsersIn {
    UserPoolId: String,
    AttributesToGet: Option<Vec<String>>,
    Limit: Option<i64>,
    PaginationToken: Option<String>,
    Filter: Option<String>,
}

pub async fn list_users(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: ListUsersIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    let limit = input::limit("Limit", req.Limit, 0, 60)?;
    if let Some(f) = &req.Filter {
        input::len("Filter", f, 0, 256, false)?;
    }
    let page = dir
        .list_users(
            grant,
            ListUsersQuery {
                pool_id: req.UserPoolId,
                filter: req.Filter,
                limit,
                token: req.PaginationToken,
            },
        )
        .await?;
    let only = req.AttributesToGet.as_deref();
    Ok(json!({
        "Users": page.items.iter().map(|u| shapes::user(u, only)).collect::<Vec<_>>(),
        "PaginationToken": page.next,
    }))
}

#[derive(Deserialize)]
struct UpdateAttributesIn {
    UserPoolId: String,
    Username: String,
    UserAttributes: Vec<AttributeIn>,
}

pub async fn admin_update_user_attributes(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: UpdateAttributesIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    input::username("Username", &req.Username)?;
    let attrs = attributes("UserAttributes", Some(req.UserAttributes))?;
    dir.admin_update_user_attributes(grant, &req.UserPoolId, &req.Username, attrs)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct DeleteAttributesIn {
    UserPoolId: String,
    Username: String,
    UserAttributeNames: Vec<String>,
}

pub async fn admin_delete_user_attributes(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: DeleteAttributesIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    input::username("Username", &req.Username)?;
    dir.admin_delete_user_attributes(
        grant,
        &req.UserPoolId,
        &req.Username,
        req.UserAttributeNames,
    )
    .await?;
    Ok(json!({}))
}

pub async fn admin_disable_user(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let r = user_ref(body)?;
    dir.admin_set_user_enabled(grant, &r.UserPoolId, &r.Username, false)
        .await?;
    Ok(json!({}))
}

pub async fn admin_enable_user(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let r = user_ref(body)?;
    dir.admin_set_user_enabled(grant, &r.UserPoolId, &r.Username, true)
        .await?;
    Ok(json!({}))
}

pub async fn admin_delete_user(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let r = user_ref(body)?;
    dir.admin_delete_user(grant, &r.UserPoolId, &r.Username)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct SetPasswordIn {
    UserPoolId: String,
    Username: String,
    Password: String,
    Permanent: Option<bool>,
}

pub async fn admin_set_user_password(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: SetPasswordIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    input::username("Username", &req.Username)?;
    input::password("Password", &req.Password)?;
    dir.admin_set_user_password(
        grant,
        &req.UserPoolId,
        &req.Username,
        &req.Password,
        req.Permanent.unwrap_or(false),
    )
    .await?;
    Ok(json!({}))
}

pub async fn admin_reset_user_password(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let r = user_ref(body)?;
    dir.admin_reset_user_password(grant, &r.UserPoolId, &r.Username)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct GroupIn {
    UserPoolId: String,
    GroupName: String,
    Description: Option<String>,
    RoleArn: Option<String>,
    Precedence: Option<i64>,
}

fn group_name(name: &str) -> Result<(), WireError> {
    input::len("GroupName", name, 1, 128, false)?;
    input::pattern("GroupName", name, &input::USERNAME, false)
}

fn group_input(req: &GroupIn) -> Result<GroupInput, WireError> {
    input::pool_id(&req.UserPoolId)?;
    group_name(&req.GroupName)?;
    if let Some(d) = &req.Description {
        input::len("Description", d, 0, 2048, false)?;
    }
    if let Some(r) = &req.RoleArn {
        input::len("RoleArn", r, 20, 2048, false)?;
    }
    if let Some(p) = req.Precedence {
        input::range("Precedence", p, 0, i64::from(i32::MAX))?;
    }
    Ok(GroupInput {
        description: req.Description.clone(),
        role_arn: req.RoleArn.clone(),
        precedence: req.Precedence,
    })
}

pub async fn create_group(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: GroupIn = decode(body)?;
    let g = dir
        .create_group(grant, &req.UserPoolId, &req.GroupName, group_input(&req)?)
        .await?;
    Ok(json!({ "Group": shapes::group(&g) }))
}

pub async fn update_group(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: GroupIn = decode(body)?;
    let g = dir
        .update_group(grant, &req.UserPoolId, &req.GroupName, group_input(&req)?)
        .await?;
    Ok(json!({ "Group": shapes::group(&g) }))
}

#[derive(Deserialize)]
struct GroupRefIn {
    UserPoolId: String,
    GroupName: String,
}

fn group_ref(body: &[u8]) -> Result<GroupRefIn, WireError> {
    let req: GroupRefIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    group_name(&req.GroupName)?;
    Ok(req)
}

pub async fn get_group(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let r = group_ref(body)?;
    let g = dir.get_group(grant, &r.UserPoolId, &r.GroupName).await?;
    Ok(json!({ "Group": shapes::group(&g) }))
}

pub async fn delete_group(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let r = group_ref(body)?;
    dir.delete_group(grant, &r.UserPoolId, &r.GroupName).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct PageIn {
    UserPoolId: String,
    Limit: Option<i64>,
    NextToken: Option<String>,
    GroupName: Option<String>,
    Username: Option<String>,
}

pub async fn list_groups(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: PageIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    let limit = input::limit("Limit", req.Limit, 0, 60)?;
    let page = dir
        .list_groups(grant, &req.UserPoolId, limit, req.NextToken.as_deref())
        .await?;
    Ok(
        json!({ "Groups": page.items.iter().map(shapes::group).collect::<Vec<_>>(), "NextToken": page.next }),
    )
}

#[derive(Deserialize)]
struct MembershipIn {
    UserPoolId: String,
    Username: String,
    GroupName: String,
}

fn membership(body: &[u8]) -> Result<MembershipIn, WireError> {
    let req: MembershipIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    input::username("Username", &req.Username)?;
    group_name(&req.GroupName)?;
    Ok(req)
}

pub async fn admin_add_user_to_group(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let m = membership(body)?;
    dir.add_user_to_group(grant, &m.UserPoolId, &m.Username, &m.GroupName)
        .await?;
    Ok(json!({}))
}

pub async fn admin_remove_user_from_group(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let m = membership(body)?;
    dir.remove_user_from_group(grant, &m.UserPoolId, &m.Username, &m.GroupName)
        .await?;
    Ok(json!({}))
}

pub async fn admin_list_groups_for_user(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: PageIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    let username = req.Username.ok_or_else(|| input::missing("Username"))?;
    input::username("Username", &username)?;
    let limit = input::limit("Limit", req.Limit, 0, 60)?;
    let page = dir
        .groups_for_user(
            grant,
            &req.UserPoolId,
            &username,
            limit,
            req.NextToken.as_deref(),
        )
        .await?;
    Ok(
        json!({ "Groups": page.items.iter().map(shapes::group).collect::<Vec<_>>(), "NextToken": page.next }),
    )
}

pub async fn list_users_in_group(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: PageIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    let group = req.GroupName.ok_or_else(|| input::missing("GroupName"))?;
    group_name(&group)?;
    let limit = input::limit("Limit", req.Limit, 0, 60)?;
    let page = dir
        .users_in_group(
            grant,
            &req.UserPoolId,
            &group,
            limit,
            req.NextToken.as_deref(),
        )
        .await?;
    Ok(
        json!({ "Users": page.items.iter().map(|u| shapes::user(u, None)).collect::<Vec<_>>(), "NextToken": page.next }),
    )
}
