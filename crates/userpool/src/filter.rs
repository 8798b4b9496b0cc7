//! The ListUsers `Filter` expression: `name = "value"` or `name ^= "value"`.

use crate::error::{Error, Result};
use crate::store::{FilterField, UserFilter};

fn bad() -> Error {
    Error::invalid("Error while parsing filter.")
}

/// Parses a filter; an empty string means no filter.
pub(crate) fn parse(text: &str) -> Result<Option<(String, UserFilter)>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (name, rest, prefix) = if let Some(i) = text.find("^=") {
        (&text[..i], &text[i + 2..], true)
    } else if let Some(i) = text.find('=') {
        (&text[..i], &text[i + 1..], false)
    } else {
        return Err(bad());
    };
    let name = name.trim();
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(bad)?;
    let mut value = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(chars.next().ok_or_else(bad)?),
            '"' => return Err(bad()),
            c => value.push(c),
        }
    }
    let field = match name {
        "username" => FilterField::Username,
        "sub" => FilterField::Sub,
        "email" => FilterField::Email,
        "phone_number" => FilterField::PhoneNumber,
        "cognito:user_status" => FilterField::UserStatus,
        "status" => FilterField::Enabled,
        "name" | "given_name" | "family_name" | "preferred_username" => {
            FilterField::Attribute(name.to_string())
        }
        _ => return Err(Error::invalid(format!("Invalid search attribute: {name}"))),
    };
    Ok(Some((
        name.to_string(),
        UserFilter {
            field,
            prefix,
            value,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_equality_and_prefix() {
        let (_, f) = parse(r#"email = "a@b.c""#).unwrap().unwrap();
        assert_eq!(
            f,
            UserFilter {
                field: FilterField::Email,
                prefix: false,
                value: "a@b.c".into()
            }
        );
        let (_, f) = parse(r#"given_name ^= "Jo""#).unwrap().unwrap();
        assert!(f.prefix);
        assert_eq!(f.field, FilterField::Attribute("given_name".into()));
        let (_, f) = parse(r#"cognito:user_status = "CONFIRMED""#)
            .unwrap()
            .unwrap();
        assert_eq!(f.field, FilterField::UserStatus);
    }

    #[test]
    fn refuses_bad_filters() {
        assert!(parse("email").is_err());
        assert!(parse(r#"email = a"#).is_err());
        assert!(parse(r#"custom:x = "a""#).is_err());
        assert!(parse("").unwrap().is_none());
    }
}
