//! App clients: create, describe, list, update, delete; their secrets and OAuth settings.

use crate::error::{Error, Result};
use crate::model::*;
use crate::paging::{self, Page};
use crate::store::{StoreError, UniqueKey};
use crate::{AdminGrant, Directory};

/// The settings of CreateUserPoolClient / UpdateUserPoolClient. On update, omitted settings
/// return to their defaults, as on Cognito.
#[derive(Debug, Clone, Default)]
pub struct ClientInput {
    pub name: Option<String>,
    /// Create only.
    pub generate_secret: bool,
    /// Create only: a caller-chosen secret.
    pub secret: Option<String>,
    pub refresh_token_validity: Option<i64>,
    pub access_token_validity: Option<i64>,
    pub id_token_validity: Option<i64>,
    pub token_validity_units: Option<TokenValidityUnits>,
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
    pub prevent_user_existence_errors: Option<String>,
    pub enable_token_revocation: Option<bool>,
    pub enable_propagate_additional_user_context_data: Option<bool>,
    pub auth_session_validity: Option<i64>,
    pub echoed: Echoed,
}

const LEGACY_FLOWS: &[&str] = &[
    "ADMIN_NO_SRP_AUTH",
    "CUSTOM_AUTH_FLOW_ONLY",
    "USER_PASSWORD_AUTH",
];
const STANDARD_SCOPES: &[&str] = &[
    "phone",
    "email",
    "openid",
    "profile",
    "aws.cognito.signin.user.admin",
];

/// Seconds in one `TimeUnitsType` unit (the model's `days` is the fallback).
pub(crate) fn unit_seconds(unit: &str) -> i64 {
    match unit {
        "seconds" => 1,
        "minutes" => 60,
        "hours" => 3600,
        _ => 86400,
    }
}

/// Cognito's bounds: access and ID tokens 5 minutes to 1 day, refresh tokens 1 hour to 10 years.
fn check_validity(name: &str, value: i64, unit: &str, min_s: i64, max_s: i64) -> Result<()> {
    let s = value.saturating_mul(unit_seconds(unit));
    if s < min_s || s > max_s {
        return Err(Error::invalid(format!(
            "Invalid range for token validity: {name} must be between {min_s} and {max_s} seconds."
        )));
    }
    Ok(())
}

fn is_allowed_redirect(url: &str) -> bool {
    url.starts_with("https://")
        || url.starts_with("http://localhost")
        || url.starts_with("http://127.0.0.1")
        || (!url.starts_with("http://") && url.contains("://"))
}

impl Directory {
    async fn client_config(&self, pool_id: &str, input: ClientInput) -> Result<ClientConfig> {
        let units = input
            .token_validity_units
            .clone()
            .unwrap_or(TokenValidityUnits {
                access_token: "minutes".into(),
                id_token: "minutes".into(),
                refresh_token: "days".into(),
            });
        let access = input
            .access_token_validity
            .unwrap_or(if units.access_token == "minutes" {
                60
            } else {
                1
            });
        let id = input
            .id_token_validity
            .unwrap_or(if units.id_token == "minutes" { 60 } else { 1 });
        let refresh = input.refresh_token_validity.unwrap_or(30);
        check_validity(
            "AccessTokenValidity",
            access,
            &units.access_token,
            300,
            86400,
        )?;
        check_validity("IdTokenValidity", id, &units.id_token, 300, 86400)?;
        check_validity(
            "RefreshTokenValidity",
            refresh,
            &units.refresh_token,
            3600,
            315_360_000,
        )?;

        let legacy = input
            .explicit_auth_flows
            .iter()
            .any(|f| LEGACY_FLOWS.contains(&f.as_str()));
        let modern = input
            .explicit_auth_flows
            .iter()
            .any(|f| f.starts_with("ALLOW_"));
        if legacy && modern {
            return Err(Error::invalid(
                "explicitAuthFlows can't contain both legacy and new values.",
            ));
        }
        self.check_oauth(pool_id, &input).await?;
        Ok(ClientConfig {
            name: input.name.unwrap_or_default(),
            refresh_token_validity: refresh,
            access_token_validity: access,
            id_token_validity: id,
            token_validity_units: units,
            read_attributes: input.read_attributes,
            write_attributes: input.write_attributes,
            explicit_auth_flows: input.explicit_auth_flows,
            supported_identity_providers: input.supported_identity_providers,
            callback_urls: input.callback_urls,
            logout_urls: input.logout_urls,
            default_redirect_uri: input.default_redirect_uri,
            allowed_oauth_flows: input.allowed_oauth_flows,
            allowed_oauth_scopes: input.allowed_oauth_scopes,
            allowed_oauth_flows_user_pool_client: input.allowed_oauth_flows_user_pool_client,
            prevent_user_existence_errors: input
                .prevent_user_existence_errors
                .unwrap_or_else(|| "LEGACY".into()),
            enable_token_revocation: input.enable_token_revocation.unwrap_or(true),
            enable_propagate_additional_user_context_data: input
                .enable_propagate_additional_user_context_data
                .unwrap_or(false),
            auth_session_validity: input.auth_session_validity.unwrap_or(3),
            echoed: input.echoed,
        })
    }

    async fn check_oauth(&self, pool_id: &str, input: &ClientInput) -> Result<()> {
        let flows = &input.allowed_oauth_flows;
        if flows.iter().any(|f| f == "client_credentials")
            && flows.iter().any(|f| f != "client_credentials")
        {
            return Err(Error::InvalidOAuthFlow(
                "client_credentials flow can not be selected along with code flow or implicit flow.".into(),
            ));
        }
        if flows.iter().any(|f| f == "code" || f == "implicit") && input.callback_urls.is_empty() {
            return Err(Error::invalid(
                "CallbackURLs are required when code or implicit flows are allowed.",
            ));
        }
        if let Some(url) = input
            .callback_urls
            .iter()
            .chain(&input.logout_urls)
            .find(|u| !is_allowed_redirect(u))
        {
            return Err(Error::invalid(format!(
                "{url} is not a valid redirect URL: http is only allowed for localhost."
            )));
        }
        if let Some(d) = &input.default_redirect_uri
            && !input.callback_urls.contains(d)
        {
            return Err(Error::invalid(
                "DefaultRedirectURI must be one of the CallbackURLs.",
            ));
        }
        for scope in &input.allowed_oauth_scopes {
            if STANDARD_SCOPES.contains(&scope.as_str()) {
                continue;
            }
            let known = match scope.rsplit_once('/') {
                Some((server, name)) => self
                    .store
                    .get_resource_server(pool_id, server)
                    .await?
                    .is_some_and(|rs| rs.scopes.iter().any(|s| s.name == name)),
                None => false,
            };
            if !known {
                return Err(Error::ScopeDoesNotExist(format!(
                    "Invalid scope requested: {scope}"
                )));
            }
        }
        Ok(())
    }

    pub async fn create_client(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        mut input: ClientInput,
    ) -> Result<Client> {
        self.admin_pool(grant, pool_id).await?;
        let secret = match input.secret.take() {
            Some(s) if input.generate_secret => Some(s),
            Some(_) => {
                return Err(Error::invalid(
                    "ClientSecret can only be given together with GenerateSecret.",
                ));
            }
            None if input.generate_secret => Some(self.new_client_secret()),
            None => None,
        };
        let config = self.client_config(pool_id, input).await?;
        let now = self.now();
        loop {
            let client = Client {
                pool_id: pool_id.to_string(),
                client_id: self.new_client_id(),
                secret: secret.clone(),
                created: now,
                modified: now,
                config: config.clone(),
            };
            match self.store.insert_client(&client).await {
                Ok(()) => return Ok(client),
                Err(StoreError::Conflict(UniqueKey::Client)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A client of this pool, or Cognito's not-found error.
    async fn pool_client(&self, pool_id: &str, client_id: &str) -> Result<Client> {
        match self.store.get_client(client_id).await? {
            Some(c) if c.pool_id == pool_id => Ok(c),
            _ => Err(Error::not_found(format!(
                "User pool client {client_id} does not exist."
            ))),
        }
    }

    pub async fn describe_client(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        client_id: &str,
    ) -> Result<Client> {
        self.admin_pool(grant, pool_id).await?;
        self.pool_client(pool_id, client_id).await
    }

    pub async fn list_clients(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        limit: u32,
        token: Option<&str>,
    ) -> Result<Page<Client>> {
        self.admin_pool(grant, pool_id).await?;
        let query = format!("clients|{pool_id}");
        let after = paging::decode_opt(&query, token)?;
        let items = self
            .store
            .list_clients(pool_id, after.as_deref(), limit + 1)
            .await?;
        Ok(paging::page(&query, items, limit, |c| c.client_id.clone()))
    }

    pub async fn update_client(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        client_id: &str,
        mut input: ClientInput,
    ) -> Result<Client> {
        self.admin_pool(grant, pool_id).await?;
        let mut client = self.pool_client(pool_id, client_id).await?;
        if input.name.is_none() {
            input.name = Some(client.config.name.clone());
        }
        client.config = self.client_config(pool_id, input).await?;
        client.modified = self.now();
        if !self.store.update_client(&client).await? {
            return Err(Error::not_found(format!(
                "User pool client {client_id} does not exist."
            )));
        }
        Ok(client)
    }

    pub async fn delete_client(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        client_id: &str,
    ) -> Result<()> {
        self.admin_pool(grant, pool_id).await?;
        if !self.store.delete_client(pool_id, client_id).await? {
            return Err(Error::not_found(format!(
                "User pool client {client_id} does not exist."
            )));
        }
        Ok(())
    }

    /// The client a public action names, with its SECRET_HASH checked when it has a secret,
    /// and its pool. Both are the store's recent reads: a client or pool changed on another
    /// node rules public actions here within [`crate::store::RECENT_TTL`].
    pub(crate) async fn public_client(
        &self,
        client_id: &str,
        username: &str,
        secret_hash: Option<&str>,
    ) -> Result<(Client, Pool)> {
        let client = self
            .store
            .get_client_recent(client_id)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!("User pool client {client_id} does not exist."))
            })?;
        check_secret_hash(&client, username, secret_hash)?;
        let pool = self
            .store
            .get_pool_recent(&client.pool_id)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!("User pool {} does not exist.", client.pool_id))
            })?;
        Ok((client, pool))
    }
}

/// A client with a secret needs the SECRET_HASH of `username`.
pub(crate) fn check_secret_hash(
    client: &Client,
    username: &str,
    secret_hash: Option<&str>,
) -> Result<()> {
    let client_id = &client.client_id;
    let Some(secret) = &client.secret else {
        return Ok(());
    };
    let Some(given) = secret_hash else {
        return Err(Error::not_authorized(format!(
            "Client {client_id} is configured for secret but secret was not received"
        )));
    };
    if !secret_hash_matches(secret, username, client_id, given) {
        return Err(Error::not_authorized(format!(
            "Unable to verify secret hash for client {client_id}"
        )));
    }
    Ok(())
}

/// SECRET_HASH = Base64(HMAC-SHA256(key = client secret, message = username ‖ client id)),
/// compared in constant time.
pub fn secret_hash_matches(secret: &str, username: &str, client_id: &str, given: &str) -> bool {
    use base64::Engine;
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, format!("{username}{client_id}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    crate::ct_eq(expected.as_bytes(), given.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_is_hmac_of_username_and_client() {
        // Computed independently: base64(hmac_sha256("secret", "aliceclient")).
        use base64::Engine;
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"secret");
        let tag = aws_lc_rs::hmac::sign(&key, b"aliceclient");
        let good = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
        assert!(secret_hash_matches("secret", "alice", "client", &good));
        assert!(!secret_hash_matches("secret", "bob", "client", &good));
        assert!(!secret_hash_matches("other", "alice", "client", &good));
    }

    #[test]
    fn validity_bounds_follow_cognito() {
        assert!(check_validity("a", 60, "minutes", 300, 86400).is_ok());
        assert!(check_validity("a", 4, "minutes", 300, 86400).is_err());
        assert!(check_validity("a", 2, "days", 300, 86400).is_err());
    }
}
