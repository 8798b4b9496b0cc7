//! Cognito's claim sets for ID and access tokens (spec 05 §5.2, §5.3).

use serde_json::{Value, json};

use crate::Claims;

/// Everything a sign-in (or a refresh of it) puts into a pair of tokens.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    /// `{issuer base}/{poolId}`
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub sub: &'a str,
    /// The internal username (the UUID in e-mail-as-username pools).
    pub username: &'a str,
    /// Group names ordered by precedence, with each group's role ARN if it has one.
    pub groups: &'a [(String, Option<String>)],
    /// The attributes the client may read, without `sub`.
    pub attributes: &'a [(String, String)],
    /// The refresh-token family this pair belongs to.
    pub origin_jti: &'a str,
    pub event_id: &'a str,
    /// Epoch seconds of the original sign-in, kept across refreshes.
    pub auth_time: i64,
    pub issued_at: i64,
    /// Space-separated scopes of the access token.
    pub scope: &'a str,
    /// `Some(2)` on tokens from the OAuth endpoints; API sign-ins carry no `version`.
    pub version: Option<u8>,
    pub device_key: Option<&'a str>,
}

/// Claims of the ID token (exactly Cognito's set; members in its order where the map keeps
/// order), expiring `ttl` seconds after issue.
pub fn id_token(g: &Grant<'_>, jti: &str, ttl: i64) -> Claims {
    let mut c = Claims::new();
    c.insert("sub".into(), json!(g.sub));
    groups(&mut c, g, true);
    for (name, value) in g.attributes {
        c.insert(name.clone(), attribute_value(name, value));
    }
    c.insert("iss".into(), json!(g.issuer));
    c.insert("cognito:username".into(), json!(g.username));
    c.insert("origin_jti".into(), json!(g.origin_jti));
    c.insert("aud".into(), json!(g.client_id));
    c.insert("event_id".into(), json!(g.event_id));
    c.insert("token_use".into(), json!("id"));
    c.insert("auth_time".into(), json!(g.auth_time));
    c.insert("exp".into(), json!(g.issued_at + ttl));
    c.insert("iat".into(), json!(g.issued_at));
    c.insert("jti".into(), json!(jti));
    c
}

/// Claims of the access token, expiring `ttl` seconds after issue. No `aud`: the client is in
/// `client_id`.
pub fn access_token(g: &Grant<'_>, jti: &str, ttl: i64) -> Claims {
    let mut c = Claims::new();
    c.insert("sub".into(), json!(g.sub));
    if let Some(device) = g.device_key {
        c.insert("device_key".into(), json!(device));
    }
    groups(&mut c, g, false);
    c.insert("iss".into(), json!(g.issuer));
    if let Some(v) = g.version {
        c.insert("version".into(), json!(v));
    }
    c.insert("client_id".into(), json!(g.client_id));
    c.insert("origin_jti".into(), json!(g.origin_jti));
    c.insert("event_id".into(), json!(g.event_id));
    c.insert("token_use".into(), json!("access"));
    c.insert("scope".into(), json!(g.scope));
    c.insert("auth_time".into(), json!(g.auth_time));
    c.insert("exp".into(), json!(g.issued_at + ttl));
    c.insert("iat".into(), json!(g.issued_at));
    c.insert("jti".into(), json!(jti));
    c.insert("username".into(), json!(g.username));
    c
}

fn groups(c: &mut Claims, g: &Grant<'_>, roles: bool) {
    if g.groups.is_empty() {
        return;
    }
    let names: Vec<&str> = g.groups.iter().map(|(n, _)| n.as_str()).collect();
    c.insert("cognito:groups".into(), json!(names));
    if !roles {
        return;
    }
    let arns: Vec<&str> = g.groups.iter().filter_map(|(_, r)| r.as_deref()).collect();
    if let Some(first) = arns.first() {
        c.insert("cognito:preferred_role".into(), json!(first));
        c.insert("cognito:roles".into(), json!(arns));
    }
}

/// `*_verified` flags are JSON booleans in tokens and `updated_at` a number; everything else,
/// `custom:` attributes included, is a string.
fn attribute_value(name: &str, value: &str) -> Value {
    match name {
        "email_verified" | "phone_number_verified" => json!(value == "true"),
        "updated_at" => value
            .parse::<i64>()
            .map_or_else(|_| json!(value), |n| json!(n)),
        _ => json!(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant<'a>(
        groups: &'a [(String, Option<String>)],
        attrs: &'a [(String, String)],
    ) -> Grant<'a> {
        Grant {
            issuer: "http://127.0.0.1:9229/us-east-1_Abc",
            client_id: "client1",
            sub: "sub-1",
            username: "alice",
            groups,
            attributes: attrs,
            origin_jti: "o-1",
            event_id: "e-1",
            auth_time: 100,
            issued_at: 150,
            scope: "aws.cognito.signin.user.admin",
            version: None,
            device_key: None,
        }
    }

    #[test]
    fn id_tokens_carry_cognitos_claims() {
        let groups = [
            (
                "Admins".to_string(),
                Some("arn:aws:iam::1:role/a".to_string()),
            ),
            ("Users".to_string(), None),
        ];
        let attrs = [
            ("email".to_string(), "a@x.com".to_string()),
            ("email_verified".to_string(), "true".to_string()),
            ("custom:n".to_string(), "7".to_string()),
        ];
        let c = id_token(&grant(&groups, &attrs), "j-1", 3600);
        let mut keys: Vec<&str> = c.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = vec![
            "sub",
            "cognito:groups",
            "cognito:preferred_role",
            "cognito:roles",
            "email",
            "email_verified",
            "custom:n",
            "iss",
            "cognito:username",
            "origin_jti",
            "aud",
            "event_id",
            "token_use",
            "auth_time",
            "exp",
            "iat",
            "jti",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(c["email_verified"], json!(true));
        assert_eq!(c["custom:n"], json!("7"));
        assert_eq!(c["cognito:groups"], json!(["Admins", "Users"]));
        assert_eq!(c["exp"], json!(3750));
        assert_eq!(c["aud"], json!("client1"));
    }

    #[test]
    fn access_tokens_have_client_id_scope_and_no_aud_or_version() {
        let c = access_token(&grant(&[], &[]), "j-2", 600);
        assert!(!c.contains_key("aud"));
        assert!(!c.contains_key("version"));
        assert!(!c.contains_key("cognito:groups"));
        assert_eq!(c["client_id"], json!("client1"));
        assert_eq!(c["token_use"], json!("access"));
        assert_eq!(c["scope"], json!("aws.cognito.signin.user.admin"));
        assert_eq!(c["username"], json!("alice"));
        assert_eq!(c["exp"], json!(750));
        let mut g = grant(&[], &[]);
        g.version = Some(2);
        assert_eq!(access_token(&g, "j", 1)["version"], json!(2));
    }
}
