//! Response shapes of the service model, built as JSON. Absent members are left out (nulls are
//! pruned before sending); timestamps are epoch seconds.

use serde_json::{Map, Value, json};
use userpool::*;

pub fn seconds(ms: Millis) -> Value {
    json!(ms as f64 / 1000.0)
}

/// Drops null members recursively, so optional members are absent rather than null.
pub fn prune(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, prune(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(prune).collect()),
        other => other,
    }
}

fn echoed(e: &Echoed, key: &str) -> Value {
    e.get(key).cloned().unwrap_or(Value::Null)
}

fn type_name(t: AttributeType) -> &'static str {
    match t {
        AttributeType::String => "String",
        AttributeType::Number => "Number",
        AttributeType::DateTime => "DateTime",
        AttributeType::Boolean => "Boolean",
    }
}

pub fn schema_attribute(a: &SchemaAttribute) -> Value {
    let strings = (a.min_length.is_some() || a.max_length.is_some())
        .then(|| json!({ "MinLength": a.min_length, "MaxLength": a.max_length }));
    let numbers = (a.min_value.is_some() || a.max_value.is_some())
        .then(|| json!({ "MinValue": a.min_value, "MaxValue": a.max_value }));
    json!({
        "Name": a.name,
        "AttributeDataType": type_name(a.data_type),
        "DeveloperOnlyAttribute": a.developer_only,
        "Mutable": a.mutable,
        "Required": a.required,
        "StringAttributeConstraints": strings,
        "NumberAttributeConstraints": numbers,
    })
}

fn non_empty(list: &[String]) -> Value {
    if list.is_empty() {
        Value::Null
    } else {
        json!(list)
    }
}

pub fn user_pool(p: &Pool, estimated_users: Option<u64>) -> Value {
    let c = &p.config;
    let pp = &c.password_policy;
    let v = &c.verification;
    let inv = &c.admin_create_user;
    let invite = (inv.invite_email.is_some() || inv.invite_sms.is_some() || inv.invite_subject.is_some()).then(|| {
        json!({ "SMSMessage": inv.invite_sms, "EmailMessage": inv.invite_email, "EmailSubject": inv.invite_subject })
    });
    let mut policies = json!({
        "PasswordPolicy": {
            "MinimumLength": pp.minimum_length,
            "RequireUppercase": pp.require_uppercase,
            "RequireLowercase": pp.require_lowercase,
            "RequireNumbers": pp.require_numbers,
            "RequireSymbols": pp.require_symbols,
            "PasswordHistorySize": pp.password_history_size,
            "TemporaryPasswordValidityDays": pp.temporary_password_validity_days,
        },
    });
    policies["SignInPolicy"] = c
        .echoed
        .get("SignInPolicy")
        .cloned()
        .unwrap_or_else(|| json!({ "AllowedFirstAuthFactors": ["PASSWORD"] }));
    json!({
        "Id": p.id,
        "Name": p.name,
        "Arn": p.arn,
        "Policies": policies,
        "DeletionProtection": if c.deletion_protection { "ACTIVE" } else { "INACTIVE" },
        "LambdaConfig": c.echoed.get("LambdaConfig").cloned().unwrap_or_else(|| json!({})),
        "LastModifiedDate": seconds(p.modified),
        "CreationDate": seconds(p.created),
        "SchemaAttributes": c.schema.iter().map(schema_attribute).collect::<Vec<_>>(),
        "AutoVerifiedAttributes": non_empty(&c.auto_verified_attributes),
        "AliasAttributes": non_empty(&c.alias_attributes),
        "UsernameAttributes": non_empty(&c.username_attributes),
        "SmsVerificationMessage": v.sms_message,
        "EmailVerificationMessage": v.email_message,
        "EmailVerificationSubject": v.email_subject,
        "VerificationMessageTemplate": {
            "SmsMessage": v.sms_message,
            "EmailMessage": v.email_message,
            "EmailSubject": v.email_subject,
            "EmailMessageByLink": v.email_message_by_link,
            "EmailSubjectByLink": v.email_subject_by_link,
            "DefaultEmailOption": v.default_email_option,
        },
        "SmsAuthenticationMessage": v.sms_authentication_message,
        "UserAttributeUpdateSettings": echoed(&c.echoed, "UserAttributeUpdateSettings"),
        "MfaConfiguration": c.mfa_configuration,
        "DeviceConfiguration": echoed(&c.echoed, "DeviceConfiguration"),
        "EstimatedNumberOfUsers": estimated_users,
        "EmailConfiguration": c.echoed.get("EmailConfiguration").cloned()
            .unwrap_or_else(|| json!({ "EmailSendingAccount": "COGNITO_DEFAULT" })),
        "SmsConfiguration": echoed(&c.echoed, "SmsConfiguration"),
        "UserPoolTags": c.echoed.get("UserPoolTags").cloned().unwrap_or_else(|| json!({})),
        "AdminCreateUserConfig": {
            "AllowAdminCreateUserOnly": inv.allow_admin_create_user_only,
            "UnusedAccountValidityDays": inv.unused_account_validity_days,
            "InviteMessageTemplate": invite,
        },
        "UserPoolAddOns": echoed(&c.echoed, "UserPoolAddOns"),
        "UsernameConfiguration": { "CaseSensitive": c.case_sensitive },
        "AccountRecoverySetting": echoed(&c.echoed, "AccountRecoverySetting"),
        "UserPoolTier": c.echoed.get("UserPoolTier").cloned().unwrap_or_else(|| json!("ESSENTIALS")),
    })
}

pub fn user_pool_description(p: &Pool) -> Value {
    json!({
        "Id": p.id,
        "Name": p.name,
        "LambdaConfig": p.config.echoed.get("LambdaConfig").cloned().unwrap_or_else(|| json!({})),
        "LastModifiedDate": seconds(p.modified),
        "CreationDate": seconds(p.created),
    })
}

pub fn client(c: &Client) -> Value {
    let k = &c.config;
    json!({
        "UserPoolId": c.pool_id,
        "ClientName": k.name,
        "ClientId": c.client_id,
        "ClientSecret": c.secret,
        "LastModifiedDate": seconds(c.modified),
        "CreationDate": seconds(c.created),
        "RefreshTokenValidity": k.refresh_token_validity,
        "AccessTokenValidity": k.access_token_validity,
        "IdTokenValidity": k.id_token_validity,
        "TokenValidityUnits": {
            "AccessToken": k.token_validity_units.access_token,
            "IdToken": k.token_validity_units.id_token,
            "RefreshToken": k.token_validity_units.refresh_token,
        },
        "ReadAttributes": k.read_attributes,
        "WriteAttributes": k.write_attributes,
        "ExplicitAuthFlows": non_empty(&k.explicit_auth_flows),
        "SupportedIdentityProviders": non_empty(&k.supported_identity_providers),
        "CallbackURLs": non_empty(&k.callback_urls),
        "LogoutURLs": non_empty(&k.logout_urls),
        "DefaultRedirectURI": k.default_redirect_uri,
        "AllowedOAuthFlows": non_empty(&k.allowed_oauth_flows),
        "AllowedOAuthScopes": non_empty(&k.allowed_oauth_scopes),
        "AllowedOAuthFlowsUserPoolClient": k.allowed_oauth_flows_user_pool_client,
        "AnalyticsConfiguration": echoed(&k.echoed, "AnalyticsConfiguration"),
        "PreventUserExistenceErrors": k.prevent_user_existence_errors,
        "EnableTokenRevocation": k.enable_token_revocation,
        "EnablePropagateAdditionalUserContextData": k.enable_propagate_additional_user_context_data,
        "AuthSessionValidity": k.auth_session_validity,
        "RefreshTokenRotation": echoed(&k.echoed, "RefreshTokenRotation"),
    })
}

pub fn client_description(c: &Client) -> Value {
    json!({ "ClientId": c.client_id, "UserPoolId": c.pool_id, "ClientName": c.config.name })
}

pub fn attributes(u: &User, only: Option<&[String]>) -> Value {
    u.all_attributes()
        .into_iter()
        .filter(|(name, _)| only.is_none_or(|o| o.iter().any(|n| n == name)))
        .map(|(name, value)| json!({ "Name": name, "Value": value }))
        .collect()
}

/// `UserType`, as AdminCreateUser and the list actions return it.
pub fn user(u: &User, only: Option<&[String]>) -> Value {
    json!({
        "Username": u.username,
        "Attributes": attributes(u, only),
        "UserCreateDate": seconds(u.created),
        "UserLastModifiedDate": seconds(u.modified),
        "Enabled": u.enabled,
        "UserStatus": u.status.as_str(),
    })
}

pub fn group(g: &Group) -> Value {
    json!({
        "GroupName": g.name,
        "UserPoolId": g.pool_id,
        "Description": g.description,
        "RoleArn": g.role_arn,
        "Precedence": g.precedence,
        "LastModifiedDate": seconds(g.modified),
        "CreationDate": seconds(g.created),
    })
}

pub fn resource_server(r: &ResourceServer) -> Value {
    json!({
        "UserPoolId": r.pool_id,
        "Identifier": r.identifier,
        "Name": r.name,
        "Scopes": r.scopes.iter().map(|s| json!({ "ScopeName": s.name, "ScopeDescription": s.description })).collect::<Vec<_>>(),
    })
}

pub fn delivery(d: &CodeDelivery) -> Value {
    json!({ "Destination": d.destination, "DeliveryMedium": d.medium.as_str(), "AttributeName": d.attribute })
}
