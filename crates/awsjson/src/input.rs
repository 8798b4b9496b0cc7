//! Decoding request bodies and checking members the way AWS does: a wrong JSON type is a
//! SerializationException, a missing or out-of-bounds member an InvalidParameterException in
//! AWS's "1 validation error detected" wording, naming the member.

use std::sync::LazyLock;

use regex::Regex;
use serde::de::DeserializeOwned;

use crate::errors::WireError;

/// `UserPoolId` → `userPoolId`, as AWS names members in validation messages.
fn member(field: &str) -> String {
    let mut c = field.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn violation(field: &str, value: Option<&str>, constraint: &str) -> WireError {
    let shown = match value {
        Some(v) => format!("Value '{v}' at"),
        None => "Value at".to_string(),
    };
    WireError::invalid(format!(
        "1 validation error detected: {shown} '{}' failed to satisfy constraint: {constraint}",
        member(field)
    ))
}

/// A required member that is absent.
pub fn missing(field: &str) -> WireError {
    WireError::invalid(format!(
        "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
        member(field)
    ))
}

/// Parses a request body; an empty body is `{}`.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        if let Some(rest) = text.strip_prefix("missing field `") {
            return missing(rest.split('`').next().unwrap_or_default());
        }
        if e.is_syntax() || e.is_eof() {
            return WireError::serialization(format!("Malformed request body: {text}"));
        }
        WireError::serialization(text)
    })
}

/// Length in characters within `[min, max]`. `secret` members are never echoed.
pub fn len(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
    secret: bool,
) -> Result<(), WireError> {
    let n = value.chars().count();
    let shown = (!secret).then_some(value);
    if n < min {
        return Err(violation(
            field,
            shown,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(violation(
            field,
            shown,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

pub fn range(field: &str, value: i64, min: i64, max: i64) -> Result<(), WireError> {
    let shown = value.to_string();
    if value < min {
        return Err(violation(
            field,
            Some(&shown),
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(violation(
            field,
            Some(&shown),
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(())
}

pub fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), WireError> {
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(violation(
        field,
        Some(value),
        &format!(
            "Member must satisfy enum value set: [{}]",
            allowed.join(", ")
        ),
    ))
}

pub fn all_of(field: &str, values: &[String], allowed: &[&str]) -> Result<(), WireError> {
    values.iter().try_for_each(|v| one_of(field, v, allowed))
}

/// A compiled member pattern and its text as the model states it.
pub struct Pattern {
    text: &'static str,
    re: LazyLock<Option<Regex>>,
}

macro_rules! pattern {
    ($name:ident, $text:literal) => {
        pub static $name: Pattern = Pattern {
            text: $text,
            // The patterns are constants, each exercised by the tests below.
            re: LazyLock::new(|| Regex::new(concat!("^(?:", $text, ")$")).ok()),
        };
    };
}

pattern!(POOL_ID, r"[\w-]+_[0-9a-zA-Z]+");
pattern!(NAME, r"[\w\s+=,.@-]+");
pattern!(USERNAME, r"[\p{L}\p{M}\p{S}\p{N}\p{P}]+");
pattern!(CLIENT_ID, r"[\w+]+");
pattern!(NO_SPACE, r"[\S]+");
pattern!(SCOPE, r"[\x21\x23-\x5B\x5D-\x7E]+");
pattern!(SCOPE_NAME, r"[\x21\x23-\x2E\x30-\x5B\x5D-\x7E]+");

pub fn pattern(field: &str, value: &str, p: &Pattern, secret: bool) -> Result<(), WireError> {
    if p.re.as_ref().is_some_and(|re| re.is_match(value)) {
        return Ok(());
    }
    let shown = (!secret).then_some(value);
    Err(violation(
        field,
        shown,
        &format!("Member must satisfy regular expression pattern: {}", p.text),
    ))
}

/// A UserPoolId the public twin of an admin action does not have (so its input shape holds
/// it as optional): present and well-formed.
pub fn required_pool_id(v: Option<String>) -> Result<String, WireError> {
    let id = v.ok_or_else(|| missing("UserPoolId"))?;
    pool_id(&id)?;
    Ok(id)
}

pub fn pool_id(v: &str) -> Result<(), WireError> {
    len("UserPoolId", v, 1, 55, false)?;
    pattern("UserPoolId", v, &POOL_ID, false)
}

pub fn username(field: &str, v: &str) -> Result<(), WireError> {
    len(field, v, 1, 128, false)?;
    pattern(field, v, &USERNAME, false)
}

pub fn client_id(v: &str) -> Result<(), WireError> {
    len("ClientId", v, 1, 128, false)?;
    pattern("ClientId", v, &CLIENT_ID, false)
}

pub fn password(field: &str, v: &str) -> Result<(), WireError> {
    len(field, v, 0, 256, true)?;
    pattern(field, v, &NO_SPACE, true)
}

/// `Limit` / `MaxResults`: absent means the largest page.
pub fn limit(field: &str, v: Option<i64>, min: i64, max: i64) -> Result<u32, WireError> {
    match v {
        Some(n) => {
            range(field, n, min, max)?;
            Ok(if n == 0 { max as u32 } else { n as u32 })
        }
        None => Ok(max as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(non_snake_case, dead_code)]
    struct Req {
        UserPoolId: String,
        Limit: Option<i64>,
    }

    #[test]
    fn missing_members_are_invalid_parameters_naming_the_member() {
        let e = decode::<Req>(b"{}").unwrap_err();
        assert_eq!(e.kind, "InvalidParameterException");
        assert!(e.message.contains("'userPoolId'"), "{}", e.message);
    }

    #[test]
    fn wrong_types_and_bad_json_are_serialization_errors() {
        assert_eq!(
            decode::<Req>(br#"{"UserPoolId": 5}"#).unwrap_err().kind,
            "SerializationException"
        );
        assert_eq!(
            decode::<Req>(b"{not json").unwrap_err().kind,
            "SerializationException"
        );
    }

    #[test]
    fn constraints_use_aws_wording() {
        let e = pool_id("bad id").unwrap_err();
        assert!(
            e.message
                .contains("Member must satisfy regular expression pattern"),
            "{}",
            e.message
        );
        let e = limit("Limit", Some(61), 0, 60).unwrap_err();
        assert!(e.message.contains("less than or equal to 60"));
        assert!(
            password("Password", "has space")
                .unwrap_err()
                .message
                .starts_with("1 validation error detected: Value at")
        );
        assert!(pool_id("us-east-1_Abc123").is_ok());
        assert!(username("Username", "alice@example.com").is_ok());
        assert!(username("Username", "has space").is_err());
    }
}
