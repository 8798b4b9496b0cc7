//! Route keys (`GET /pets/{id}`, `ANY /{proxy+}`, `$default`) and how a request finds its
//! route: the most specific path wins (literal segments before `{param}` before `{proxy+}`),
//! then a route of the request's method before `ANY`.

use http::Method;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    /// `{name+}`: one or more segments, only last.
    Greedy(String),
}

/// A path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

/// What a route matched: path parameters by name, as they came (still percent-encoded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `.` or `..`, also percent-encoded: a parameter holding one could lead the upstream's path
/// out of the integration's prefix, so such paths match no parameter.
fn is_dot_segment(s: &str) -> bool {
    let decoded = s.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Template {
    /// `/pets/{id}/toys`, `/{proxy+}`, `/`.
    pub fn parse(path: &str) -> Result<Self, String> {
        let rest = path
            .strip_prefix('/')
            .ok_or_else(|| format!("the path {path:?} must start with /"))?;
        let mut segments = Vec::new();
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        for (i, part) in parts.iter().enumerate() {
            let seg = if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
            {
                if let Some(name) = inner.strip_suffix('+') {
                    if i + 1 != parts.len() {
                        return Err(format!("{{{name}+}} must be the last segment of {path:?}"));
                    }
                    if !is_name(name) {
                        return Err(format!("bad parameter name in {path:?}"));
                    }
                    Segment::Greedy(name.to_string())
                } else if is_name(inner) {
                    Segment::Param(inner.to_string())
                } else {
                    return Err(format!("bad parameter name in {path:?}"));
                }
            } else if part.is_empty() || part.contains(['{', '}']) {
                return Err(format!("bad segment {part:?} in {path:?}"));
            } else {
                Segment::Literal(part.to_string())
            };
            segments.push(seg);
        }
        let mut names: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(n) | Segment::Greedy(n) => Some(n.as_str()),
                Segment::Literal(_) => None,
            })
            .collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!("a parameter appears twice in {path:?}"));
        }
        Ok(Self { segments })
    }

    /// The names of its parameters, in order.
    pub fn param_names(&self) -> Vec<&str> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(n) | Segment::Greedy(n) => Some(n.as_str()),
                Segment::Literal(_) => None,
            })
            .collect()
    }

    /// The parameters of `path` (without stage or prefix) if it matches, and how specific the
    /// match is (higher is more specific).
    pub fn matches(&self, path: &str) -> Option<(Params, Vec<u8>)> {
        let rest = path.strip_prefix('/').unwrap_or(path);
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let mut params = Vec::new();
        let mut rank = Vec::with_capacity(self.segments.len());
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Literal(l) => {
                    if parts.get(i) != Some(&l.as_str()) {
                        return None;
                    }
                    rank.push(3);
                }
                Segment::Param(n) => {
                    let p = parts
                        .get(i)
                        .filter(|p| !p.is_empty() && !is_dot_segment(p))?;
                    params.push((n.clone(), (*p).to_string()));
                    rank.push(2);
                }
                Segment::Greedy(n) => {
                    if parts.len() <= i
                        || parts[i..].iter().any(|p| p.is_empty() || is_dot_segment(p))
                    {
                        return None;
                    }
                    params.push((n.clone(), parts[i..].join("/")));
                    rank.push(1);
                    return Some((Params(params), rank));
                }
            }
        }
        (parts.len() == self.segments.len()).then_some((Params(params), rank))
    }
}

/// A route's key as written and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteKey {
    /// `None` is `ANY`.
    Path {
        method: Option<Method>,
        template: Template,
    },
    /// HTTP APIs: requests no other route matches.
    Default,
}

impl RouteKey {
    pub fn parse(key: &str) -> Result<Self, String> {
        if key == "$default" {
            return Ok(Self::Default);
        }
        let (method, path) = key
            .split_once(' ')
            .ok_or_else(|| format!("a route is \"METHOD /path\", not {key:?}"))?;
        let method = match method {
            "ANY" => None,
            m => Some(
                ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
                    .contains(&m)
                    .then(|| Method::from_bytes(m.as_bytes()).ok())
                    .flatten()
                    .ok_or_else(|| format!("unknown method {m:?} (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ANY)"))?,
            ),
        };
        Ok(Self::Path {
            method,
            template: Template::parse(path.trim())?,
        })
    }
}

/// Which route of a table a request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Route(usize, Params),
    /// A path some route has, but not for this method (REST APIs answer as for no route).
    NoMethod,
    None,
}

/// REST APIs choose the resource (path) first, then its method; HTTP APIs choose among the
/// routes of the method (or ANY), then fall back to `$default`.
pub fn find(keys: &[RouteKey], rest_semantics: bool, method: &Method, path: &str) -> Found {
    let mut best: Option<(Vec<u8>, bool, usize, Params)> = None;
    let mut path_known = false;
    for (i, key) in keys.iter().enumerate() {
        let RouteKey::Path {
            method: m,
            template,
        } = key
        else {
            continue;
        };
        let Some((params, rank)) = template.matches(path) else {
            continue;
        };
        let method_fits = m.as_ref().is_none_or(|m| m == method);
        if !rest_semantics && !method_fits {
            continue;
        }
        path_known = true;
        let exact = m.is_some() && method_fits;
        let better = match &best {
            None => true,
            Some((r, e, _, _)) => (&rank, exact && method_fits) > (r, *e),
        };
        if better {
            best = Some((rank, exact && method_fits, i, params));
        }
    }
    if let Some((rank, _, _, _)) = &best
        && rest_semantics
    {
        // The resource is the most specific path; among its routes the method decides.
        let rank = rank.clone();
        let mut any = None;
        for (i, key) in keys.iter().enumerate() {
            if let RouteKey::Path {
                method: m,
                template,
            } = key
                && let Some((params, r)) = template.matches(path)
                && r == rank
            {
                match m {
                    Some(m) if m == method => return Found::Route(i, params),
                    None => any = Some((i, params)),
                    _ => {}
                }
            }
        }
        return match any {
            Some((i, p)) => Found::Route(i, p),
            None => Found::NoMethod,
        };
    }
    if let Some((_, _, i, params)) = best {
        return Found::Route(i, params);
    }
    if let Some(i) = keys.iter().position(|k| *k == RouteKey::Default) {
        return Found::Route(i, Params::default());
    }
    if path_known {
        Found::NoMethod
    } else {
        Found::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<RouteKey> {
        list.iter().map(|k| RouteKey::parse(k).unwrap()).collect()
    }

    #[test]
    fn templates_parse_and_refuse_bad_paths() {
        assert!(Template::parse("/pets/{id}").is_ok());
        assert!(Template::parse("/").is_ok());
        for bad in ["pets", "/{proxy+}/x", "/{a}/{a}", "/a//b", "/{}", "/x{y}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert!(RouteKey::parse("FETCH /x").is_err());
        assert!(RouteKey::parse("/x").is_err());
    }

    #[test]
    fn literal_beats_parameter_beats_greedy() {
        let k = keys(&["GET /pets/{id}", "GET /pets/mine", "ANY /{proxy+}"]);
        let get = Method::GET;
        assert_eq!(
            find(&k, true, &get, "/pets/mine"),
            Found::Route(1, Params::default())
        );
        assert_eq!(
            find(&k, true, &get, "/pets/42"),
            Found::Route(0, Params(vec![("id".into(), "42".into())]))
        );
        assert_eq!(
            find(&k, true, &get, "/a/b/c"),
            Found::Route(2, Params(vec![("proxy".into(), "a/b/c".into())]))
        );
        // Greedy needs at least one segment.
        assert_eq!(find(&k, true, &get, "/"), Found::None);
        // Dot segments never reach a parameter (the upstream path cannot climb out).
        assert_eq!(find(&k, true, &get, "/a/../admin"), Found::None);
        assert_eq!(find(&k, true, &get, "/a/%2E%2e/admin"), Found::None);
        assert_eq!(find(&k, true, &get, "/pets/.."), Found::None);
    }

    #[test]
    fn rest_picks_the_resource_first_http_the_method() {
        let k = keys(&["GET /pets/{id}", "ANY /{proxy+}"]);
        // REST: /pets/{id} is the resource; it has no POST.
        assert_eq!(find(&k, true, &Method::POST, "/pets/1"), Found::NoMethod);
        // HTTP: the greedy ANY route takes it.
        assert!(matches!(
            find(&k, false, &Method::POST, "/pets/1"),
            Found::Route(1, _)
        ));
        let k = keys(&["GET /pets", "$default"]);
        assert!(matches!(
            find(&k, false, &Method::DELETE, "/pets"),
            Found::Route(1, _)
        ));
        let k = keys(&["GET /pets"]);
        assert_eq!(find(&k, false, &Method::DELETE, "/pets"), Found::None);
        assert_eq!(find(&k, false, &Method::GET, "/cats"), Found::None);
    }

    #[test]
    fn a_method_route_beats_any_on_the_same_path() {
        let k = keys(&["ANY /pets", "POST /pets"]);
        assert!(matches!(
            find(&k, true, &Method::POST, "/pets"),
            Found::Route(1, _)
        ));
        assert!(matches!(
            find(&k, true, &Method::GET, "/pets"),
            Found::Route(0, _)
        ));
        assert!(matches!(
            find(&k, false, &Method::POST, "/pets/"),
            Found::Route(1, _)
        ));
    }
}
