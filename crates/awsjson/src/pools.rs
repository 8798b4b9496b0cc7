//! Actions on pools, app clients and resource servers.
#![allow(non_snake_case)]

use serde::Deserialize;
use serde_json::{Value, json};
use userpool::*;

use crate::errors::WireError;
use crate::input::{self, decode};
use crate::shapes;

type Out = Result<Value, WireError>;

#[derive(Deserialize, Default)]
struct PasswordPolicyIn {
    MinimumLength: Option<i64>,
    RequireUppercase: Option<bool>,
    RequireLowercase: Option<bool>,
    RequireNumbers: Option<bool>,
    RequireSymbols: Option<bool>,
    PasswordHistorySize: Option<i64>,
    TemporaryPasswordValidityDays: Option<i64>,
}

#[derive(Deserialize)]
struct PoliciesIn {
    PasswordPolicy: Option<PasswordPolicyIn>,
    SignInPolicy: Option<Value>,
}

#[derive(Deserialize)]
struct StringConstraintsIn {
    MinLength: Option<String>,
    MaxLength: Option<String>,
}

#[derive(Deserialize)]
struct NumberConstraintsIn {
    MinValue: Option<String>,
    MaxValue: Option<String>,
}

#[derive(Deserialize)]
struct SchemaAttributeIn {
    Name: Option<String>,
    AttributeDataType: Option<String>,
    DeveloperOnlyAttribute: Option<bool>,
    Mutable: Option<bool>,
    Required: Option<bool>,
    NumberAttributeConstraints: Option<NumberConstraintsIn>,
    StringAttributeConstraints: Option<StringConstraintsIn>,
}

#[derive(Deserialize)]
struct TemplateIn {
    SmsMessage: Option<String>,
    EmailMessage: Option<String>,
    EmailSubject: Option<String>,
    EmailMessageByLink: Option<String>,
    EmailSubjectByLink: Option<String>,
    DefaultEmailOption: Option<String>,
}

#[derive(Deserialize)]
struct InviteIn {
    SMSMessage: Option<String>,
    EmailMessage: Option<String>,
    EmailSubject: Option<String>,
}

#[derive(Deserialize)]
struct AdminCreateUserConfigIn {
    AllowAdminCreateUserOnly: Option<bool>,
    UnusedAccountValidityDays: Option<i64>,
    InviteMessageTemplate: Option<InviteIn>,
}

#[derive(Deserialize)]
struct UsernameConfigurationIn {
    CaseSensitive: bool,
}

/// CreateUserPool and UpdateUserPool share their members (update lacks the create-only ones).
#[derive(Deserialize)]
struct PoolIn {
    UserPoolId: Option<String>,
    PoolName: Option<String>,
    Policies: Option<PoliciesIn>,
    DeletionProtection: Option<String>,
    AutoVerifiedAttributes: Option<Vec<String>>,
    AliasAttributes: Option<Vec<String>>,
    UsernameAttributes: Option<Vec<String>>,
    SmsVerificationMessage: Option<String>,
    EmailVerificationMessage: Option<String>,
    EmailVerificationSubject: Option<String>,
    VerificationMessageTemplate: Option<TemplateIn>,
    SmsAuthenticationMessage: Option<String>,
    MfaConfiguration: Option<String>,
    AdminCreateUserConfig: Option<AdminCreateUserConfigIn>,
    Schema: Option<Vec<SchemaAttributeIn>>,
    UsernameConfiguration: Option<UsernameConfigurationIn>,
    LambdaConfig: Option<Value>,
    UserAttributeUpdateSettings: Option<Value>,
    DeviceConfiguration: Option<Value>,
    EmailConfiguration: Option<Value>,
    SmsConfiguration: Option<Value>,
    UserPoolTags: Option<Value>,
    UserPoolAddOns: Option<Value>,
    AccountRecoverySetting: Option<Value>,
    UserPoolTier: Option<String>,
}

fn password_policy(p: PasswordPolicyIn) -> Result<PasswordPolicy, WireError> {
    let min = p.MinimumLength.unwrap_or(8);
    input::range("MinimumLength", min, 6, 99)?;
    let temp = p.TemporaryPasswordValidityDays.unwrap_or(7);
    input::range("TemporaryPasswordValidityDays", temp, 0, 365)?;
    if let Some(h) = p.PasswordHistorySize {
        input::range("PasswordHistorySize", h, 0, 24)?;
    }
    Ok(PasswordPolicy {
        minimum_length: min as u32,
        require_uppercase: p.RequireUppercase.unwrap_or(false),
        require_lowercase: p.RequireLowercase.unwrap_or(false),
        require_numbers: p.RequireNumbers.unwrap_or(false),
        require_symbols: p.RequireSymbols.unwrap_or(false),
        password_history_size: p.PasswordHistorySize.map(|h| h as u32),
        temporary_password_validity_days: temp as u32,
    })
}

fn schema_attribute(a: SchemaAttributeIn) -> Result<SchemaAttribute, WireError> {
    let name = a
        .Name
        .ok_or_else(|| WireError::invalid("Schema attribute Name is required."))?;
    input::len("Name", &name, 1, 20, false)?;
    let data_type = match a.AttributeDataType.as_deref().unwrap_or("String") {
        "String" => AttributeType::String,
        "Number" => AttributeType::Number,
        "DateTime" => AttributeType::DateTime,
        "Boolean" => AttributeType::Boolean,
        other => {
            input::one_of(
                "AttributeDataType",
                other,
                &["String", "Number", "DateTime", "Boolean"],
            )?;
            return Err(WireError::invalid(format!(
                "Unsupported AttributeDataType {other}"
            )));
        }
    };
    let (min_length, max_length) = a
        .StringAttributeConstraints
        .map(|s| (s.MinLength, s.MaxLength))
        .unwrap_or_default();
    let (min_value, max_value) = a
        .NumberAttributeConstraints
        .map(|n| (n.MinValue, n.MaxValue))
        .unwrap_or_default();
    Ok(SchemaAttribute {
        name,
        data_type,
        developer_only: a.DeveloperOnlyAttribute.unwrap_or(false),
        mutable: a.Mutable.unwrap_or(true),
        required: a.Required.unwrap_or(false),
        min_length,
        max_length,
        min_value,
        max_value,
    })
}

const SIGN_IN_ATTRIBUTES: &[&str] = &["phone_number", "email"];

fn pool_input(p: PoolIn) -> Result<PoolInput, WireError> {
    if let Some(name) = &p.PoolName {
        input::len("PoolName", name, 1, 128, false)?;
        input::pattern("PoolName", name, &input::NAME, false)?;
    }
    let auto = p.AutoVerifiedAttributes.unwrap_or_default();
    input::all_of("AutoVerifiedAttributes", &auto, SIGN_IN_ATTRIBUTES)?;
    let alias = p.AliasAttributes.unwrap_or_default();
    input::all_of(
        "AliasAttributes",
        &alias,
        &["phone_number", "email", "preferred_username"],
    )?;
    let username = p.UsernameAttributes.unwrap_or_default();
    input::all_of("UsernameAttributes", &username, SIGN_IN_ATTRIBUTES)?;
    if let Some(m) = &p.MfaConfiguration {
        input::one_of("MfaConfiguration", m, &["OFF", "ON", "OPTIONAL"])?;
    }
    let deletion_protection = match p.DeletionProtection.as_deref() {
        Some(d) => {
            input::one_of("DeletionProtection", d, &["ACTIVE", "INACTIVE"])?;
            d == "ACTIVE"
        }
        None => false,
    };
    let template = p.VerificationMessageTemplate;
    let pick = |top: Option<String>, nested: Option<String>| nested.or(top);
    let (t_sms, t_email, t_subject, t_link, t_link_subject, t_option) = match template {
        Some(t) => (
            t.SmsMessage,
            t.EmailMessage,
            t.EmailSubject,
            t.EmailMessageByLink,
            t.EmailSubjectByLink,
            t.DefaultEmailOption,
        ),
        None => (None, None, None, None, None, None),
    };
    let verification = VerificationTemplates {
        sms_message: pick(p.SmsVerificationMessage, t_sms),
        email_message: pick(p.EmailVerificationMessage, t_email),
        email_subject: pick(p.EmailVerificationSubject, t_subject),
        email_message_by_link: t_link,
        email_subject_by_link: t_link_subject,
        default_email_option: t_option,
        sms_authentication_message: p.SmsAuthenticationMessage,
    };
    for (field, text) in [
        ("SmsVerificationMessage", &verification.sms_message),
        ("EmailVerificationMessage", &verification.email_message),
    ] {
        if let Some(t) = text
            && !t.contains("{####}")
        {
            return Err(WireError::invalid(format!(
                "{field} must contain the {{####}} placeholder."
            )));
        }
    }
    let admin_create_user = match p.AdminCreateUserConfig {
        Some(a) => {
            let days = a.UnusedAccountValidityDays.unwrap_or(7);
            input::range("UnusedAccountValidityDays", days, 0, 365)?;
            let invite = a.InviteMessageTemplate;
            Some(AdminCreateUserConfig {
                allow_admin_create_user_only: a.AllowAdminCreateUserOnly.unwrap_or(false),
                unused_account_validity_days: days as u32,
                invite_sms: invite.as_ref().and_then(|i| i.SMSMessage.clone()),
                invite_email: invite.as_ref().and_then(|i| i.EmailMessage.clone()),
                invite_subject: invite.and_then(|i| i.EmailSubject),
            })
        }
        None => None,
    };
    let mut echoed = Echoed::new();
    let sign_in = p.Policies.as_ref().and_then(|p| p.SignInPolicy.clone());
    for (key, value) in [
        ("LambdaConfig", p.LambdaConfig),
        ("UserAttributeUpdateSettings", p.UserAttributeUpdateSettings),
        ("DeviceConfiguration", p.DeviceConfiguration),
        ("EmailConfiguration", p.EmailConfiguration),
        ("SmsConfiguration", p.SmsConfiguration),
        ("UserPoolTags", p.UserPoolTags),
        ("UserPoolAddOns", p.UserPoolAddOns),
        ("AccountRecoverySetting", p.AccountRecoverySetting),
        ("UserPoolTier", p.UserPoolTier.map(Value::String)),
        ("SignInPolicy", sign_in),
    ] {
        if let Some(v) = value {
            echoed.insert(key.to_string(), v);
        }
    }
    Ok(PoolInput {
        name: p.PoolName,
        password_policy: p
            .Policies
            .and_then(|p| p.PasswordPolicy)
            .map(password_policy)
            .transpose()?,
        schema: p
            .Schema
            .unwrap_or_default()
            .into_iter()
            .map(schema_attribute)
            .collect::<Result<_, _>>()?,
        username_attributes: username,
        alias_attributes: alias,
        case_sensitive: p.UsernameConfiguration.map(|u| u.CaseSensitive),
        auto_verified_attributes: auto,
        deletion_protection,
        mfa_configuration: p.MfaConfiguration,
        admin_create_user,
        verification,
        echoed,
    })
}

pub async fn create_user_pool(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: PoolIn = decode(body)?;
    if req.PoolName.is_none() {
        return Err(input::missing("PoolName"));
    }
    if let Some(s) = &req.Schema {
        input::range("Schema", s.len() as i64, 1, 50)
            .map_err(|_| WireError::invalid("Schema may hold 1 to 50 attributes."))?;
    }
    let pool = dir.create_pool(grant, pool_input(req)?).await?;
    Ok(json!({ "UserPool": shapes::user_pool(&pool, Some(0)) }))
}

#[derive(Deserialize)]
struct PoolIdIn {
    UserPoolId: String,
}

fn pool_id_of(body: &[u8]) -> Result<String, WireError> {
    let req: PoolIdIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    Ok(req.UserPoolId)
}

pub async fn describe_user_pool(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let id = pool_id_of(body)?;
    let (pool, users) = dir.describe_pool(grant, &id).await?;
    Ok(json!({ "UserPool": shapes::user_pool(&pool, Some(users)) }))
}

#[derive(Deserialize)]
struct ListPoolsIn {
    NextToken: Option<String>,
    MaxResults: i64,
}

pub async fn list_user_pools(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: ListPoolsIn = decode(body)?;
    let limit = input::limit("MaxResults", Some(req.MaxResults), 1, 60)?;
    let page = dir
        .list_pools(grant, limit, req.NextToken.as_deref())
        .await?;
    Ok(json!({
        "UserPools": page.items.iter().map(shapes::user_pool_description).collect::<Vec<_>>(),
        "NextToken": page.next,
    }))
}

pub async fn update_user_pool(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: PoolIn = decode(body)?;
    let id = req
        .UserPoolId
        .clone()
        .ok_or_else(|| input::missing("UserPoolId"))?;
    input::pool_id(&id)?;
    if req.Schema.is_some()
        || req.UsernameAttributes.is_some()
        || req.AliasAttributes.is_some()
        || req.UsernameConfiguration.is_some()
    {
        return Err(WireError::invalid(
            "Schema, UsernameAttributes, AliasAttributes and UsernameConfiguration cannot be updated.",
        ));
    }
    dir.update_pool(grant, &id, pool_input(req)?).await?;
    Ok(json!({}))
}

pub async fn delete_user_pool(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let id = pool_id_of(body)?;
    dir.delete_pool(grant, &id).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct AddCustomIn {
    UserPoolId: String,
    CustomAttributes: Vec<SchemaAttributeIn>,
}

pub async fn add_custom_attributes(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: AddCustomIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    input::range("CustomAttributes", req.CustomAttributes.len() as i64, 1, 25)
        .map_err(|_| WireError::invalid("CustomAttributes may hold 1 to 25 attributes."))?;
    let attrs = req
        .CustomAttributes
        .into_iter()
        .map(schema_attribute)
        .collect::<Result<Vec<_>, _>>()?;
    dir.add_custom_attributes(grant, &req.UserPoolId, attrs)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct UnitsIn {
    AccessToken: Option<String>,
    IdToken: Option<String>,
    RefreshToken: Option<String>,
}

#[derive(Deserialize)]
struct ClientIn {
    UserPoolId: String,
    ClientId: Option<String>,
    ClientName: Option<String>,
    GenerateSecret: Option<bool>,
    ClientSecret: Option<String>,
    RefreshTokenValidity: Option<i64>,
    AccessTokenValidity: Option<i64>,
    IdTokenValidity: Option<i64>,
    TokenValidityUnits: Option<UnitsIn>,
    ReadAttributes: Option<Vec<String>>,
    WriteAttributes: Option<Vec<String>>,
    ExplicitAuthFlows: Option<Vec<String>>,
    SupportedIdentityProviders: Option<Vec<String>>,
    CallbackURLs: Option<Vec<String>>,
    LogoutURLs: Option<Vec<String>>,
    DefaultRedirectURI: Option<String>,
    AllowedOAuthFlows: Option<Vec<String>>,
    AllowedOAuthScopes: Option<Vec<String>>,
    AllowedOAuthFlowsUserPoolClient: Option<bool>,
    AnalyticsConfiguration: Option<Value>,
    PreventUserExistenceErrors: Option<String>,
    EnableTokenRevocation: Option<bool>,
    EnablePropagateAdditionalUserContextData: Option<bool>,
    AuthSessionValidity: Option<i64>,
    RefreshTokenRotation: Option<Value>,
}

const FLOWS: &[&str] = &[
    "ADMIN_NO_SRP_AUTH",
    "CUSTOM_AUTH_FLOW_ONLY",
    "USER_PASSWORD_AUTH",
    "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "ALLOW_CUSTOM_AUTH",
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_USER_SRP_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
    "ALLOW_USER_AUTH",
];
const UNITS: &[&str] = &["seconds", "minutes", "hours", "days"];

fn client_input(c: ClientIn) -> Result<ClientInput, WireError> {
    input::pool_id(&c.UserPoolId)?;
    if let Some(n) = &c.ClientName {
        input::len("ClientName", n, 1, 128, false)?;
        input::pattern("ClientName", n, &input::NAME, false)?;
    }
    if let Some(s) = &c.ClientSecret {
        input::len("ClientSecret", s, 24, 64, true)?;
        input::pattern("ClientSecret", s, &input::CLIENT_ID, true)?;
    }
    let flows = c.ExplicitAuthFlows.unwrap_or_default();
    input::all_of("ExplicitAuthFlows", &flows, FLOWS)?;
    let oauth_flows = c.AllowedOAuthFlows.unwrap_or_default();
    input::all_of(
        "AllowedOAuthFlows",
        &oauth_flows,
        &["code", "implicit", "client_credentials"],
    )?;
    if let Some(p) = &c.PreventUserExistenceErrors {
        input::one_of("PreventUserExistenceErrors", p, &["LEGACY", "ENABLED"])?;
    }
    if let Some(v) = c.AuthSessionValidity {
        input::range("AuthSessionValidity", v, 3, 15)?;
    }
    if let Some(v) = c.AccessTokenValidity {
        input::range("AccessTokenValidity", v, 1, 86400)?;
    }
    if let Some(v) = c.IdTokenValidity {
        input::range("IdTokenValidity", v, 1, 86400)?;
    }
    if let Some(v) = c.RefreshTokenValidity {
        input::range("RefreshTokenValidity", v, 0, 315_360_000)?;
    }
    let scopes = c.AllowedOAuthScopes.unwrap_or_default();
    for s in &scopes {
        input::len("AllowedOAuthScopes", s, 1, 256, false)?;
        input::pattern("AllowedOAuthScopes", s, &input::SCOPE, false)?;
    }
    let units = match c.TokenValidityUnits {
        Some(u) => {
            let unit =
                |field: &str, v: Option<String>, default: &str| -> Result<String, WireError> {
                    let v = v.unwrap_or_else(|| default.to_string());
                    input::one_of(field, &v, UNITS)?;
                    Ok(v)
                };
            Some(TokenValidityUnits {
                access_token: unit("AccessToken", u.AccessToken, "hours")?,
                id_token: unit("IdToken", u.IdToken, "hours")?,
                refresh_token: unit("RefreshToken", u.RefreshToken, "days")?,
            })
        }
        None => None,
    };
    let mut echoed = Echoed::new();
    if let Some(a) = c.AnalyticsConfiguration {
        echoed.insert("AnalyticsConfiguration".into(), a);
    }
    if let Some(r) = c.RefreshTokenRotation {
        check_rotation(&r)?;
        echoed.insert("RefreshTokenRotation".into(), r);
    }
    Ok(ClientInput {
        name: c.ClientName,
        generate_secret: c.GenerateSecret.unwrap_or(false),
        secret: c.ClientSecret,
        refresh_token_validity: c.RefreshTokenValidity,
        access_token_validity: c.AccessTokenValidity,
        id_token_validity: c.IdTokenValidity,
        token_validity_units: units,
        read_attributes: c.ReadAttributes,
        write_attributes: c.WriteAttributes,
        explicit_auth_flows: flows,
        supported_identity_providers: c.SupportedIdentityProviders.unwrap_or_default(),
        callback_urls: c.CallbackURLs.unwrap_or_default(),
        logout_urls: c.LogoutURLs.unwrap_or_default(),
        default_redirect_uri: c.DefaultRedirectURI,
        allowed_oauth_flows: oauth_flows,
        allowed_oauth_scopes: scopes,
        allowed_oauth_flows_user_pool_client: c.AllowedOAuthFlowsUserPoolClient.unwrap_or(false),
        prevent_user_existence_errors: c.PreventUserExistenceErrors,
        enable_token_revocation: c.EnableTokenRevocation,
        enable_propagate_additional_user_context_data: c.EnablePropagateAdditionalUserContextData,
        auth_session_validity: c.AuthSessionValidity,
        echoed,
    })
}

pub async fn create_user_pool_client(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: ClientIn = decode(body)?;
    if req.ClientName.is_none() {
        return Err(input::missing("ClientName"));
    }
    let pool_id = req.UserPoolId.clone();
    let client = dir
        .create_client(grant, &pool_id, client_input(req)?)
        .await?;
    Ok(json!({ "UserPoolClient": shapes::client(&client) }))
}

#[derive(Deserialize)]
struct ClientIdIn {
    UserPoolId: String,
    ClientId: String,
}

fn client_ids(body: &[u8]) -> Result<ClientIdIn, WireError> {
    let req: ClientIdIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    input::client_id(&req.ClientId)?;
    Ok(req)
}

pub async fn describe_user_pool_client(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req = client_ids(body)?;
    let client = dir
        .describe_client(grant, &req.UserPoolId, &req.ClientId)
        .await?;
    Ok(json!({ "UserPoolClient": shapes::client(&client) }))
}

#[derive(Deserialize)]
struct ListIn {
    UserPoolId: String,
    MaxResults: Option<i64>,
    NextToken: Option<String>,
}

pub async fn list_user_pool_clients(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: ListIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    let limit = input::limit("MaxResults", req.MaxResults, 1, 60)?;
    let page = dir
        .list_clients(grant, &req.UserPoolId, limit, req.NextToken.as_deref())
        .await?;
    Ok(json!({
        "UserPoolClients": page.items.iter().map(shapes::client_description).collect::<Vec<_>>(),
        "NextToken": page.next,
    }))
}

pub async fn update_user_pool_client(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: ClientIn = decode(body)?;
    let client_id = req
        .ClientId
        .clone()
        .ok_or_else(|| input::missing("ClientId"))?;
    input::client_id(&client_id)?;
    if req.GenerateSecret.is_some() || req.ClientSecret.is_some() {
        return Err(WireError::invalid(
            "The client secret cannot be changed by UpdateUserPoolClient.",
        ));
    }
    let pool_id = req.UserPoolId.clone();
    let client = dir
        .update_client(grant, &pool_id, &client_id, client_input(req)?)
        .await?;
    Ok(json!({ "UserPoolClient": shapes::client(&client) }))
}

pub async fn delete_user_pool_client(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req = client_ids(body)?;
    dir.delete_client(grant, &req.UserPoolId, &req.ClientId)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
struct ScopeIn {
    ScopeName: String,
    ScopeDescription: String,
}

#[derive(Deserialize)]
struct ResourceServerIn {
    UserPoolId: String,
    Identifier: String,
    Name: Option<String>,
    Scopes: Option<Vec<ScopeIn>>,
}

fn resource_server(req: ResourceServerIn) -> Result<ResourceServer, WireError> {
    input::pool_id(&req.UserPoolId)?;
    input::len("Identifier", &req.Identifier, 1, 256, false)?;
    input::pattern("Identifier", &req.Identifier, &input::SCOPE, false)?;
    let name = req.Name.ok_or_else(|| input::missing("Name"))?;
    input::len("Name", &name, 1, 256, false)?;
    input::pattern("Name", &name, &input::NAME, false)?;
    let scopes = req.Scopes.unwrap_or_default();
    if scopes.len() > 100 {
        return Err(WireError::invalid(
            "A resource server may have at most 100 scopes.",
        ));
    }
    let scopes = scopes
        .into_iter()
        .map(|s| {
            input::len("ScopeName", &s.ScopeName, 1, 256, false)?;
            input::pattern("ScopeName", &s.ScopeName, &input::SCOPE_NAME, false)?;
            input::len("ScopeDescription", &s.ScopeDescription, 1, 256, false)?;
            Ok(Scope {
                name: s.ScopeName,
                description: s.ScopeDescription,
            })
        })
        .collect::<Result<Vec<_>, WireError>>()?;
    Ok(ResourceServer {
        pool_id: req.UserPoolId,
        identifier: req.Identifier,
        name,
        scopes,
    })
}

pub async fn create_resource_server(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let rs = dir
        .create_resource_server(grant, resource_server(decode(body)?)?)
        .await?;
    Ok(json!({ "ResourceServer": shapes::resource_server(&rs) }))
}

pub async fn update_resource_server(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let rs = dir
        .update_resource_server(grant, resource_server(decode(body)?)?)
        .await?;
    Ok(json!({ "ResourceServer": shapes::resource_server(&rs) }))
}

#[derive(Deserialize)]
struct ResourceServerIdIn {
    UserPoolId: String,
    Identifier: String,
}

fn resource_server_ids(body: &[u8]) -> Result<ResourceServerIdIn, WireError> {
    let req: ResourceServerIdIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    input::len("Identifier", &req.Identifier, 1, 256, false)?;
    Ok(req)
}

pub async fn describe_resource_server(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req = resource_server_ids(body)?;
    let rs = dir
        .describe_resource_server(grant, &req.UserPoolId, &req.Identifier)
        .await?;
    Ok(json!({ "ResourceServer": shapes::resource_server(&rs) }))
}

pub async fn delete_resource_server(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req = resource_server_ids(body)?;
    dir.delete_resource_server(grant, &req.UserPoolId, &req.Identifier)
        .await?;
    Ok(json!({}))
}

pub async fn list_resource_servers(dir: &Directory, grant: &AdminGrant, body: &[u8]) -> Out {
    let req: ListIn = decode(body)?;
    input::pool_id(&req.UserPoolId)?;
    let limit = input::limit("MaxResults", req.MaxResults, 1, 50)?;
    let page = dir
        .list_resource_servers(grant, &req.UserPoolId, limit, req.NextToken.as_deref())
        .await?;
    Ok(json!({
        "ResourceServers": page.items.iter().map(shapes::resource_server).collect::<Vec<_>>(),
        "NextToken": page.next,
    }))
}

/// RefreshTokenRotation: `Feature` ENABLED or DISABLED, `RetryGracePeriodSeconds` 0 to 60.
fn check_rotation(r: &Value) -> Result<(), WireError> {
    let feature = r
        .get("Feature")
        .and_then(Value::as_str)
        .ok_or_else(|| input::missing("RefreshTokenRotation.Feature"))?;
    input::one_of(
        "RefreshTokenRotation.Feature",
        feature,
        &["ENABLED", "DISABLED"],
    )?;
    if let Some(g) = r.get("RetryGracePeriodSeconds") {
        let g = g.as_i64().ok_or_else(|| {
            WireError::serialization("RetryGracePeriodSeconds must be an integer")
        })?;
        input::range("RefreshTokenRotation.RetryGracePeriodSeconds", g, 0, 60)?;
    }
    Ok(())
}
