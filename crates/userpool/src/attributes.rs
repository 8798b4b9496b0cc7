//! The schema of a pool's user attributes: Cognito's standard attributes, custom ones, and the
//! checks a written attribute must pass.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::model::{AttributeType, PoolConfig, SchemaAttribute};

/// Longest attribute value Cognito stores.
pub const MAX_VALUE_LEN: usize = 2048;
/// Most custom attributes a pool may have.
pub const MAX_CUSTOM_ATTRIBUTES: usize = 50;

const STANDARD: &[(&str, AttributeType)] = &[
    ("sub", AttributeType::String),
    ("name", AttributeType::String),
    ("given_name", AttributeType::String),
    ("family_name", AttributeType::String),
    ("middle_name", AttributeType::String),
    ("nickname", AttributeType::String),
    ("preferred_username", AttributeType::String),
    ("profile", AttributeType::String),
    ("picture", AttributeType::String),
    ("website", AttributeType::String),
    ("email", AttributeType::String),
    ("email_verified", AttributeType::Boolean),
    ("gender", AttributeType::String),
    ("birthdate", AttributeType::String),
    ("zoneinfo", AttributeType::String),
    ("locale", AttributeType::String),
    ("phone_number", AttributeType::String),
    ("phone_number_verified", AttributeType::Boolean),
    ("address", AttributeType::String),
    ("updated_at", AttributeType::Number),
];

pub fn is_standard(name: &str) -> bool {
    STANDARD.iter().any(|(n, _)| *n == name)
}

/// Cognito's standard attributes with their default constraints.
pub fn standard_schema() -> Vec<SchemaAttribute> {
    STANDARD
        .iter()
        .map(|(name, ty)| {
            let (min_len, max_len) = match (*name, ty) {
                ("sub", _) => (Some("1"), Some("2048")),
                ("birthdate", _) => (Some("10"), Some("10")),
                (_, AttributeType::String) => (Some("0"), Some("2048")),
                _ => (None, None),
            };
            SchemaAttribute {
                name: name.to_string(),
                data_type: *ty,
                developer_only: false,
                mutable: *name != "sub",
                required: *name == "sub",
                min_length: min_len.map(str::to_string),
                max_length: max_len.map(str::to_string),
                min_value: (*ty == AttributeType::Number).then(|| "0".to_string()),
                max_value: None,
            }
        })
        .collect()
}

pub fn find<'a>(config: &'a PoolConfig, name: &str) -> Option<&'a SchemaAttribute> {
    config.schema.iter().find(|a| a.name == name)
}

pub fn custom_count(config: &PoolConfig) -> usize {
    config
        .schema
        .iter()
        .filter(|a| a.name.starts_with("custom:"))
        .count()
}

fn invalid_attr(name: &str, why: &str) -> Error {
    Error::invalid(format!("Invalid user attributes: {name}: {why}"))
}

/// Checks one attribute value against its schema entry.
pub fn check_value(attr: &SchemaAttribute, value: &str) -> Result<()> {
    let name = attr.name.as_str();
    if value.len() > MAX_VALUE_LEN {
        return Err(invalid_attr(
            name,
            "Attribute value is too long (limit 2048).",
        ));
    }
    match attr.data_type {
        AttributeType::Boolean => {
            if value != "true" && value != "false" {
                return Err(invalid_attr(name, "Attribute value must be true or false."));
            }
        }
        AttributeType::Number => {
            let n: f64 = value
                .parse()
                .map_err(|_| invalid_attr(name, "Attribute value must be a number."))?;
            let bound = |b: &Option<String>| b.as_deref().and_then(|s| s.parse::<f64>().ok());
            if bound(&attr.min_value).is_some_and(|m| n < m)
                || bound(&attr.max_value).is_some_and(|m| n > m)
            {
                return Err(invalid_attr(name, "Attribute value is out of range."));
            }
        }
        AttributeType::String | AttributeType::DateTime => {
            let len = value.chars().count();
            let bound = |b: &Option<String>| b.as_deref().and_then(|s| s.parse::<usize>().ok());
            if bound(&attr.min_length).is_some_and(|m| len < m)
                || bound(&attr.max_length).is_some_and(|m| len > m)
            {
                return Err(invalid_attr(
                    name,
                    "Attribute value length is out of range.",
                ));
            }
        }
    }
    match name {
        "email" if !is_email(value) => Err(invalid_attr(name, "Invalid email address format.")),
        "phone_number" if !is_phone(value) => {
            Err(invalid_attr(name, "Invalid phone number format."))
        }
        _ => Ok(()),
    }
}

pub fn is_email(v: &str) -> bool {
    match v.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !v.chars().any(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}

/// E.164: `+` then 1–15 digits.
pub fn is_phone(v: &str) -> bool {
    v.strip_prefix('+')
        .is_some_and(|d| (1..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()))
}

/// Who is writing attributes, which decides what may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Creating a user (SignUp, AdminCreateUser): immutable attributes may be set.
    Creating,
    /// An administrator updating an existing user.
    Admin,
}

/// Validates attributes to write and returns them as a map. Unknown names, `sub`, immutable
/// attributes after creation and bad values are refused with Cognito's messages.
pub fn check_writes(
    config: &PoolConfig,
    attrs: &[(String, String)],
    writer: Writer,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, value) in attrs {
        if name == "sub" {
            return Err(invalid_attr(name, "Cannot modify an immutable attribute."));
        }
        let Some(attr) = find(config, name) else {
            return Err(invalid_attr(
                name,
                "Attribute does not exist in the schema.",
            ));
        };
        if writer == Writer::Admin && !attr.mutable {
            return Err(invalid_attr(name, "Cannot modify an immutable attribute."));
        }
        check_value(attr, value)?;
        out.insert(name.clone(), value.clone());
    }
    Ok(out)
}

/// Refuses a new user lacking a required attribute.
pub fn check_required(config: &PoolConfig, attrs: &BTreeMap<String, String>) -> Result<()> {
    for attr in config
        .schema
        .iter()
        .filter(|a| a.required && a.name != "sub")
    {
        if !attrs.contains_key(&attr.name) {
            return Err(Error::invalid(format!(
                "Attributes did not conform to the schema: {}: The attribute is required",
                attr.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str) -> SchemaAttribute {
        standard_schema()
            .into_iter()
            .find(|a| a.name == name)
            .unwrap()
    }

    #[test]
    fn standard_values_are_checked() {
        assert!(check_value(&attr("email"), "a@b.c").is_ok());
        assert!(check_value(&attr("email"), "not-an-email").is_err());
        assert!(check_value(&attr("phone_number"), "+15551234567").is_ok());
        assert!(check_value(&attr("phone_number"), "5551234567").is_err());
        assert!(check_value(&attr("email_verified"), "yes").is_err());
        assert!(check_value(&attr("name"), &"x".repeat(2049)).is_err());
        assert!(check_value(&attr("updated_at"), "-1").is_err());
    }

    #[test]
    fn sub_is_required_and_immutable() {
        let s = attr("sub");
        assert!(s.required && !s.mutable);
    }
}
