//! User pools: create, describe, list, update, delete, custom attributes.

use crate::attributes::{self, MAX_CUSTOM_ATTRIBUTES};
use crate::error::{Error, Result};
use crate::model::*;
use crate::paging::{self, Page};
use crate::store::{StoreError, UniqueKey};
use crate::{AdminGrant, Directory};

/// The settings of CreateUserPool / UpdateUserPool. Update cannot change the fields marked
/// "create only"; every other omitted setting returns to its default, as on Cognito.
#[derive(Debug, Clone, Default)]
pub struct PoolInput {
    pub name: Option<String>,
    pub password_policy: Option<PasswordPolicy>,
    /// Create only. Names as given in the API (custom ones without `custom:`).
    pub schema: Vec<SchemaAttribute>,
    /// Create only.
    pub username_attributes: Vec<String>,
    /// Create only.
    pub alias_attributes: Vec<String>,
    /// Create only; `None` means the API's default (case sensitive).
    pub case_sensitive: Option<bool>,
    pub auto_verified_attributes: Vec<String>,
    pub deletion_protection: bool,
    pub mfa_configuration: Option<String>,
    pub admin_create_user: Option<AdminCreateUserConfig>,
    pub verification: VerificationTemplates,
    pub echoed: Echoed,
}

const DEFAULT_EMAIL_MESSAGE: &str = "Your verification code is {####}. ";
const DEFAULT_EMAIL_SUBJECT: &str = "Your verification code";
const DEFAULT_SMS_MESSAGE: &str = "Your verification code is {####}. ";

fn with_defaults(mut v: VerificationTemplates) -> VerificationTemplates {
    v.email_message
        .get_or_insert_with(|| DEFAULT_EMAIL_MESSAGE.into());
    v.email_subject
        .get_or_insert_with(|| DEFAULT_EMAIL_SUBJECT.into());
    v.sms_message
        .get_or_insert_with(|| DEFAULT_SMS_MESSAGE.into());
    v.default_email_option
        .get_or_insert_with(|| "CONFIRM_WITH_CODE".into());
    v
}

/// Adds custom attributes to a schema, checking names, limits and Cognito's rules.
fn add_custom(schema: &mut Vec<SchemaAttribute>, custom: Vec<SchemaAttribute>) -> Result<()> {
    for mut attr in custom {
        if attr.required {
            return Err(Error::invalid(
                "Required custom attributes are not supported currently.",
            ));
        }
        attr.name = format!("custom:{}", attr.name.trim_start_matches("custom:"));
        if schema.iter().any(|a| a.name == attr.name) {
            return Err(Error::invalid(format!(
                "Existing attribute already has name {}.",
                attr.name
            )));
        }
        if attr.data_type == AttributeType::String && attr.max_length.is_none() {
            attr.max_length = Some("2048".into());
        }
        schema.push(attr);
    }
    if schema
        .iter()
        .filter(|a| a.name.starts_with("custom:"))
        .count()
        > MAX_CUSTOM_ATTRIBUTES
    {
        return Err(Error::LimitExceeded(format!(
            "A user pool can have at most {MAX_CUSTOM_ATTRIBUTES} custom attributes."
        )));
    }
    Ok(())
}

/// Builds a schema from the standard one, overridden or extended by the request's entries.
fn build_schema(entries: Vec<SchemaAttribute>) -> Result<Vec<SchemaAttribute>> {
    let mut schema = attributes::standard_schema();
    let mut custom = Vec::new();
    for entry in entries {
        match schema.iter_mut().find(|a| a.name == entry.name) {
            Some(std) if entry.name != "sub" => {
                if entry.data_type != std.data_type {
                    return Err(Error::invalid(format!(
                        "You can not change AttributeDataType or set developerOnlyAttribute for standard schema attribute {}",
                        entry.name
                    )));
                }
                std.mutable = entry.mutable;
                std.required = entry.required;
                if entry.min_length.is_some() || entry.max_length.is_some() {
                    std.min_length = entry.min_length.or(std.min_length.take());
                    std.max_length = entry.max_length.or(std.max_length.take());
                }
            }
            Some(_) => return Err(Error::invalid("The attribute sub cannot be changed.")),
            None => custom.push(entry),
        }
    }
    add_custom(&mut schema, custom)?;
    Ok(schema)
}

fn check_sign_in_attributes(input: &PoolInput) -> Result<()> {
    if !input.username_attributes.is_empty() && !input.alias_attributes.is_empty() {
        return Err(Error::invalid(
            "Only one of the aliasAttributes or usernameAttributes can be set in a User Pool.",
        ));
    }
    Ok(())
}

/// CreateUserPool and UpdateUserPool turn MFA on without naming a factor: as on Cognito, that
/// means SMS.
fn legacy_mfa(configuration: &str, methods: PoolMfa) -> PoolMfa {
    let none = !methods.sms && !methods.software_token && methods.email.is_none();
    if configuration != "OFF" && none {
        PoolMfa {
            sms: true,
            ..methods
        }
    } else {
        methods
    }
}

impl Directory {
    fn config_from(&self, input: &PoolInput, schema: Vec<SchemaAttribute>) -> Result<PoolConfig> {
        // Stored as given; the sign-in issue gives it meaning.
        let mfa = input
            .mfa_configuration
            .clone()
            .unwrap_or_else(|| "OFF".into());
        Ok(PoolConfig {
            password_policy: input.password_policy.clone().unwrap_or_default(),
            schema,
            username_attributes: input.username_attributes.clone(),
            alias_attributes: input.alias_attributes.clone(),
            auto_verified_attributes: input.auto_verified_attributes.clone(),
            case_sensitive: input.case_sensitive.unwrap_or(true),
            deletion_protection: input.deletion_protection,
            mfa: legacy_mfa(&mfa, PoolMfa::default()),
            mfa_configuration: mfa,
            admin_create_user: input.admin_create_user.clone().unwrap_or_default(),
            verification: with_defaults(input.verification.clone()),
            echoed: input.echoed.clone(),
        })
    }

    pub async fn create_pool(&self, grant: &AdminGrant, input: PoolInput) -> Result<Pool> {
        grant.may_create_pools()?;
        check_sign_in_attributes(&input)?;
        let name = input
            .name
            .clone()
            .ok_or_else(|| Error::invalid("PoolName is required."))?;
        let schema = build_schema(input.schema.clone())?;
        let config = self.config_from(&input, schema)?;
        let now = self.now();
        loop {
            let id = self.new_pool_id(grant.region());
            let pool = Pool {
                arn: self.pool_arn(grant.region(), &id),
                id,
                name: name.clone(),
                created: now,
                modified: now,
                config: config.clone(),
            };
            match self.store.insert_pool(&pool).await {
                Ok(()) => return Ok(pool),
                Err(StoreError::Conflict(UniqueKey::Pool)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub async fn describe_pool(&self, grant: &AdminGrant, pool_id: &str) -> Result<(Pool, u64)> {
        let pool = self.admin_pool(grant, pool_id).await?;
        let users = self.store.count_users(pool_id).await?;
        Ok((pool, users))
    }

    pub async fn list_pools(
        &self,
        grant: &AdminGrant,
        limit: u32,
        token: Option<&str>,
    ) -> Result<Page<Pool>> {
        let query = "pools";
        let mut after = paging::decode_opt(query, token)?;
        let mut items = Vec::new();
        // Pools outside the key's grant are skipped, so a page may need several reads.
        loop {
            let batch = self.store.list_pools(after.as_deref(), limit + 1).await?;
            let exhausted = batch.len() <= limit as usize;
            after = batch.last().map(|p| p.id.clone());
            items.extend(batch.into_iter().filter(|p| grant.sees(&p.id)));
            if exhausted || items.len() > limit as usize {
                break;
            }
        }
        Ok(paging::page(query, items, limit, |p| p.id.clone()))
    }

    pub async fn update_pool(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        input: PoolInput,
    ) -> Result<()> {
        let mut pool = self.admin_pool(grant, pool_id).await?;
        let kept = PoolInput {
            username_attributes: pool.config.username_attributes.clone(),
            alias_attributes: pool.config.alias_attributes.clone(),
            case_sensitive: Some(pool.config.case_sensitive),
            ..input
        };
        let methods = pool.config.mfa.clone();
        pool.config = self.config_from(&kept, pool.config.schema.clone())?;
        pool.config.mfa = legacy_mfa(&pool.config.mfa_configuration, methods);
        if let Some(name) = kept.name {
            pool.name = name;
        }
        pool.modified = self.now();
        if !self.store.update_pool(&pool).await? {
            return Err(Error::not_found(format!(
                "User pool {pool_id} does not exist."
            )));
        }
        Ok(())
    }

    pub async fn delete_pool(&self, grant: &AdminGrant, pool_id: &str) -> Result<()> {
        let pool = self.admin_pool(grant, pool_id).await?;
        if pool.config.deletion_protection {
            return Err(Error::invalid(
                "The user pool cannot be deleted because deletion protection is activated.",
            ));
        }
        if !self.store.delete_pool(pool_id).await? {
            return Err(Error::not_found(format!(
                "User pool {pool_id} does not exist."
            )));
        }
        Ok(())
    }

    pub async fn add_custom_attributes(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        custom: Vec<SchemaAttribute>,
    ) -> Result<()> {
        let mut pool = self.admin_pool(grant, pool_id).await?;
        add_custom(&mut pool.config.schema, custom)?;
        pool.modified = self.now();
        self.store.update_pool(&pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(name: &str) -> SchemaAttribute {
        SchemaAttribute {
            name: name.into(),
            data_type: AttributeType::String,
            developer_only: false,
            mutable: true,
            required: false,
            min_length: None,
            max_length: None,
            min_value: None,
            max_value: None,
        }
    }

    #[test]
    fn custom_attributes_get_their_prefix_and_limits() {
        let schema = build_schema(vec![custom("tenant")]).unwrap();
        let t = schema.iter().find(|a| a.name == "custom:tenant").unwrap();
        assert_eq!(t.max_length.as_deref(), Some("2048"));
        let many: Vec<_> = (0..51).map(|i| custom(&format!("a{i}"))).collect();
        assert!(matches!(build_schema(many), Err(Error::LimitExceeded(_))));
        let mut dup = build_schema(vec![custom("x")]).unwrap();
        assert!(add_custom(&mut dup, vec![custom("x")]).is_err());
    }

    #[test]
    fn standard_attributes_can_be_made_required() {
        let mut email = custom("email");
        email.required = true;
        let schema = build_schema(vec![email]).unwrap();
        assert!(schema.iter().find(|a| a.name == "email").unwrap().required);
    }

    #[test]
    fn required_custom_attributes_are_refused() {
        let mut c = custom("x");
        c.required = true;
        assert!(build_schema(vec![c]).is_err());
    }
}
