//! Opaque pagination tokens: the last key of a page, bound to the query that produced it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

/// One page of results and the token for the next, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

fn query_tag(query: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, query.as_bytes());
    hex::encode(&d.as_ref()[..8])
}

pub(crate) fn encode(query: &str, last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}\n{last_key}", query_tag(query)))
}

/// The last key a token carries, if it was made for this same query.
pub(crate) fn decode(query: &str, token: &str) -> Result<String> {
    let bad = || Error::invalid("Invalid pagination token.");
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (tag, key) = text.split_once('\n').ok_or_else(bad)?;
    if tag != query_tag(query) {
        return Err(bad());
    }
    Ok(key.to_string())
}

pub(crate) fn decode_opt(query: &str, token: Option<&str>) -> Result<Option<String>> {
    token.map(|t| decode(query, t)).transpose()
}

/// Cuts a `limit + 1` fetch into a page: the extra item only says whether more exist.
pub(crate) fn page<T>(
    query: &str,
    mut items: Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> String,
) -> Page<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = if more {
        items.last().map(|last| encode(query, &key(last)))
    } else {
        None
    };
    Page { items, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_only_for_their_query() {
        let t = encode("pool-a|email=x", "bob");
        assert_eq!(decode("pool-a|email=x", &t).unwrap(), "bob");
        assert!(decode("pool-b|email=x", &t).is_err());
        assert!(decode("pool-a|email=x", "!!!").is_err());
    }

    #[test]
    fn a_page_has_a_token_only_when_more_exist() {
        let p = page("q", vec![1, 2, 3], 2, |i| i.to_string());
        assert_eq!(p.items, vec![1, 2]);
        assert!(p.next.is_some());
        let p = page("q", vec![1, 2], 2, |i| i.to_string());
        assert!(p.next.is_none());
    }
}
