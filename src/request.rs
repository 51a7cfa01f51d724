//! Where the caller's token comes from: PostgREST's per-request settings (`request.headers`,
//! `request.cookies`) read in a configured order. `request.jwt.claims` is never read: any SQL
//! caller can set it, so a Bearer token is taken from the header and verified again. Pure: the pgrx side hands
//! in the raw setting strings.

use serde_json::{Map, Value};

use crate::error::{AuthError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A cookie holding a JWT.
    Cookie,
    /// A custom request header holding a JWT.
    Header,
    /// `Authorization: Bearer` (PostgREST forwards it only with `jwt-secret` set, after
    /// verifying it itself).
    Bearer,
}

impl Source {
    /// Parses `pg_auth.token_sources`, e.g. `cookie, header, bearer`.
    pub fn parse_list(text: &str) -> Result<Vec<Source>> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.to_ascii_lowercase().as_str() {
                "cookie" => Ok(Source::Cookie),
                "header" => Ok(Source::Header),
                "bearer" => Ok(Source::Bearer),
                _ => Err(AuthError::InvalidArgument(format!(
                    "pg_auth.token_sources: unknown source \"{s}\" (use cookie, header, bearer)"
                ))),
            })
            .collect()
    }
}

/// What `find_token` found.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// A token for pg_auth to verify, and where it came from.
    Token(String, Source),
    Nothing,
}

/// The request as PostgREST describes it in its transaction-local settings.
#[derive(Debug, Default)]
pub struct Request {
    headers: Map<String, Value>,
    cookies: Map<String, Value>,
}

fn json_object(text: Option<&str>) -> Map<String, Value> {
    match text
        .filter(|t| !t.is_empty())
        .map(serde_json::from_str::<Value>)
    {
        Some(Ok(Value::Object(map))) => map,
        _ => Map::new(),
    }
}

impl Request {
    pub fn from_settings(headers: Option<&str>, cookies: Option<&str>) -> Request {
        Request {
            headers: json_object(headers),
            cookies: json_object(cookies),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .and_then(Value::as_str)
    }

    /// The first source, in `order`, that holds something. An empty cookie or header counts as
    /// absent, as browsers send `name=` after a cookie is cleared.
    pub fn find_token(&self, order: &[Source], cookie: &str, header: &str) -> Found {
        for source in order {
            let found = match source {
                Source::Cookie => self
                    .cookies
                    .get(cookie)
                    .and_then(Value::as_str)
                    .map(str::trim),
                Source::Header => self.header(header).map(str::trim),
                Source::Bearer => self.bearer(),
            };
            if let Some(token) = found.filter(|t| !t.is_empty()) {
                return Found::Token(token.to_string(), *source);
            }
        }
        Found::Nothing
    }

    fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let scheme = value.get(..7)?;
        scheme
            .eq_ignore_ascii_case("bearer ")
            .then(|| value[7..].trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ORDER: [Source; 3] = [Source::Cookie, Source::Header, Source::Bearer];

    fn req(headers: Value, cookies: Value, _claims: Value) -> Request {
        Request::from_settings(Some(&headers.to_string()), Some(&cookies.to_string()))
    }

    #[test]
    fn cookie_comes_first_then_header_then_bearer() {
        let r = req(
            json!({"x-access-token": "h.h.h", "authorization": "Bearer b"}),
            json!({"access_token": "c.c.c"}),
            json!({"role": "u"}),
        );
        assert_eq!(
            r.find_token(&ORDER, "access_token", "x-access-token"),
            Found::Token("c.c.c".into(), Source::Cookie)
        );
        let r = req(json!({"x-access-token": "h.h.h"}), json!({}), json!({}));
        assert_eq!(
            r.find_token(&ORDER, "access_token", "X-Access-Token"),
            Found::Token("h.h.h".into(), Source::Header)
        );
        // The Bearer token itself, never the claims PostgREST (or anyone) put in request.jwt.claims.
        let r = req(
            json!({"authorization": "bearer a.b.c"}),
            json!({}),
            json!({"role": "u"}),
        );
        assert_eq!(
            r.find_token(&ORDER, "access_token", "x"),
            Found::Token("a.b.c".into(), Source::Bearer)
        );
        let r = req(
            json!({"authorization": "Basic abc"}),
            json!({}),
            json!({"role": "u"}),
        );
        assert_eq!(r.find_token(&ORDER, "access_token", "x"), Found::Nothing);
    }

    #[test]
    fn order_is_configurable_and_empty_values_are_absent() {
        let r = req(
            json!({"x-access-token": "h.h.h"}),
            json!({"access_token": ""}),
            json!({}),
        );
        assert_eq!(
            r.find_token(&[Source::Cookie], "access_token", "x-access-token"),
            Found::Nothing
        );
        assert_eq!(
            r.find_token(
                &[Source::Header, Source::Cookie],
                "access_token",
                "x-access-token"
            ),
            Found::Token("h.h.h".into(), Source::Header)
        );
    }

    #[test]
    fn garbage_settings_mean_no_request() {
        let r = Request::from_settings(Some("not json"), Some("[1]"));
        assert_eq!(r.find_token(&ORDER, "a", "b"), Found::Nothing);
    }

    #[test]
    fn sources_parse_and_typos_are_errors() {
        assert_eq!(
            Source::parse_list(" Cookie ,bearer").unwrap(),
            vec![Source::Cookie, Source::Bearer]
        );
        assert!(Source::parse_list("cookies").is_err());
    }
}
