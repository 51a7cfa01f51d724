//! Where the caller's token comes from: PostgREST's per-request settings (`request.headers`,
//! `request.cookies`) read in a configured order. `request.jwt.claims` is never read: any SQL
//! caller can set it, so a Bearer token is taken from the header and verified again. Pure: the pgrx side hands
//! in the raw setting strings.

use std::cell::OnceCell;

use base64::Engine;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

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
    /// The API-key header (`pg_auth.api_key_header`): only an API key may be there.
    ApiKey,
    /// `Authorization: Basic` (opt-in): an API key's id and the key, or with
    /// `pg_auth.basic_passwords` an email and password.
    Basic,
}

impl Source {
    /// The name `pg_auth.token_sources` uses.
    pub fn name(self) -> &'static str {
        match self {
            Source::Cookie => "cookie",
            Source::Header => "header",
            Source::Bearer => "bearer",
            Source::ApiKey => "api_key",
            Source::Basic => "basic",
        }
    }

    /// Parses `pg_auth.token_sources`, e.g. `cookie, header, bearer`.
    pub fn parse_list(text: &str) -> Result<Vec<Source>> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s {
                _ if s.eq_ignore_ascii_case("cookie") => Ok(Source::Cookie),
                _ if s.eq_ignore_ascii_case("header") => Ok(Source::Header),
                _ if s.eq_ignore_ascii_case("bearer") => Ok(Source::Bearer),
                _ if s.eq_ignore_ascii_case("api_key") => Ok(Source::ApiKey),
                _ if s.eq_ignore_ascii_case("basic") => Ok(Source::Basic),
                _ => Err(AuthError::InvalidArgument(format!(
                    "pg_auth.token_sources: unknown source \"{s}\" (use cookie, header, bearer, api_key, basic)"
                ))),
            })
            .collect()
    }
}

/// The cookie and header names the sources read (`pg_auth.cookie_name`, `pg_auth.header_name`,
/// `pg_auth.api_key_header`).
pub struct Names<'a> {
    pub cookie: &'a str,
    pub header: &'a str,
    pub api_key_header: &'a str,
}

/// What `find_token` found.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// A token for pg_auth to verify, and where it came from.
    Token(String, Source),
    /// `Authorization: Basic`, decoded: the user part and the password part (both empty when the
    /// header is Basic but not base64 of UTF-8 `user:password`).
    Basic {
        user: String,
        password: String,
    },
    Nothing,
}

/// The request as PostgREST describes it in its transaction-local settings: the JSON texts of
/// `request.headers` and `request.cookies`, each read only when a source needs it, and of which
/// only the members asked for are taken (a request carries many headers; pg_auth wants one).
pub struct Request<'s> {
    setting: &'s dyn Fn(&str) -> Option<String>,
    headers: OnceCell<Option<String>>,
    cookies: OnceCell<Option<String>>,
}

impl<'s> Request<'s> {
    /// A request whose settings are read with `setting` (name → current value) when needed.
    pub fn new(setting: &'s dyn Fn(&str) -> Option<String>) -> Request<'s> {
        Request {
            setting,
            headers: OnceCell::new(),
            cookies: OnceCell::new(),
        }
    }

    /// A request with these setting values.
    pub fn from_settings(headers: Option<String>, cookies: Option<String>) -> Request<'static> {
        Request {
            setting: &|_| None,
            headers: OnceCell::from(headers),
            cookies: OnceCell::from(cookies),
        }
    }

    fn cookies(&self) -> Option<&str> {
        self.cookies
            .get_or_init(|| (self.setting)("request.cookies"))
            .as_deref()
    }

    /// A request header's value (PostgREST's names are lower case).
    pub fn header(&self, name: &str) -> Option<String> {
        let headers = self
            .headers
            .get_or_init(|| (self.setting)("request.headers"));
        string_member(headers.as_deref(), &name.to_ascii_lowercase())
    }

    /// The first source, in `order`, that holds something. An empty cookie or header counts as
    /// absent, as browsers send `name=` after a cookie is cleared.
    pub fn find_token(&self, order: &[Source], names: &Names) -> Found {
        for source in order {
            let found = match source {
                Source::Cookie => string_member(self.cookies(), names.cookie),
                Source::Header => self.header(names.header),
                Source::Bearer => self.bearer(),
                Source::ApiKey => self.header(names.api_key_header),
                Source::Basic => match self.basic() {
                    Some((user, password)) => return Found::Basic { user, password },
                    None => None,
                },
            };
            match found {
                Some(token) if token.trim().len() == token.len() && !token.is_empty() => {
                    return Found::Token(token, *source)
                }
                Some(token) if !token.trim().is_empty() => {
                    return Found::Token(token.trim().to_string(), *source)
                }
                _ => {}
            }
        }
        Found::Nothing
    }

    fn bearer(&self) -> Option<String> {
        let value = self.header("authorization")?;
        let scheme = value.get(..7)?;
        scheme
            .eq_ignore_ascii_case("bearer ")
            .then(|| value[7..].to_string())
    }
}

impl Request<'_> {
    /// `Authorization: Basic base64(user:password)`: the two parts, or two empty strings when the
    /// header says Basic but holds no such thing; `None` without a Basic header.
    fn basic(&self) -> Option<(String, String)> {
        let value = self.header("authorization")?;
        let scheme = value.get(..6)?;
        if !scheme.eq_ignore_ascii_case("basic ") {
            return None;
        }
        // Padded or not: clients differ.
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = engine
            .decode(value[6..].trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        Some(match decoded.as_deref().and_then(|d| d.split_once(':')) {
            Some((user, password)) => (user.to_string(), password.to_string()),
            None => (String::new(), String::new()),
        })
    }
}

/// The string value of member `name` of the JSON object `text` (the last one when the name is
/// repeated, as a parsed object keeps it). `None` when absent, not a string, or when `text` is
/// not a JSON object. Other members are skipped without being built.
fn string_member(text: Option<&str>, name: &str) -> Option<String> {
    let mut json = serde_json::Deserializer::from_str(text?);
    let member = Member(name).deserialize(&mut json).ok()?;
    json.end().ok()?;
    member
}

/// Deserializes a JSON object into the string value of one member.
struct Member<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for Member<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(
        self,
        json: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        json.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Member<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(
        self,
        mut map: M,
    ) -> std::result::Result<Self::Value, M::Error> {
        let mut found = None;
        while let Some(wanted) = map.next_key_seed(KeyIs(self.0))? {
            if wanted {
                found = match map.next_value::<Value>()? {
                    Value::String(value) => Some(value),
                    _ => None,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Deserializes a member name into whether it is the one wanted, without allocating it.
struct KeyIs<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, json: D) -> std::result::Result<bool, D::Error> {
        json.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> std::result::Result<bool, E> {
        Ok(name == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ORDER: [Source; 4] = [
        Source::Cookie,
        Source::Header,
        Source::Bearer,
        Source::ApiKey,
    ];

    fn names<'a>(cookie: &'a str, header: &'a str) -> Names<'a> {
        Names {
            cookie,
            header,
            api_key_header: "x-api-key",
        }
    }

    fn req(headers: Value, cookies: Value, _claims: Value) -> Request<'static> {
        Request::from_settings(Some(headers.to_string()), Some(cookies.to_string()))
    }

    #[test]
    fn cookie_comes_first_then_header_then_bearer() {
        let r = req(
            json!({"x-access-token": "h.h.h", "authorization": "Bearer b"}),
            json!({"access_token": "c.c.c"}),
            json!({"role": "u"}),
        );
        assert_eq!(
            r.find_token(&ORDER, &names("access_token", "x-access-token")),
            Found::Token("c.c.c".into(), Source::Cookie)
        );
        let r = req(json!({"x-access-token": "h.h.h"}), json!({}), json!({}));
        assert_eq!(
            r.find_token(&ORDER, &names("access_token", "X-Access-Token")),
            Found::Token("h.h.h".into(), Source::Header)
        );
        // The Bearer token itself, never the claims PostgREST (or anyone) put in request.jwt.claims.
        let r = req(
            json!({"authorization": "bearer a.b.c"}),
            json!({}),
            json!({"role": "u"}),
        );
        assert_eq!(
            r.find_token(&ORDER, &names("access_token", "x")),
            Found::Token("a.b.c".into(), Source::Bearer)
        );
        let r = req(
            json!({"authorization": "Basic abc"}),
            json!({}),
            json!({"role": "u"}),
        );
        assert_eq!(
            r.find_token(&ORDER, &names("access_token", "x")),
            Found::Nothing
        );
    }

    #[test]
    fn order_is_configurable_and_empty_values_are_absent() {
        let r = req(
            json!({"x-access-token": "h.h.h"}),
            json!({"access_token": ""}),
            json!({}),
        );
        assert_eq!(
            r.find_token(&[Source::Cookie], &names("access_token", "x-access-token")),
            Found::Nothing
        );
        assert_eq!(
            r.find_token(
                &[Source::Header, Source::Cookie],
                &names("access_token", "x-access-token")
            ),
            Found::Token("h.h.h".into(), Source::Header)
        );
    }

    #[test]
    fn garbage_settings_mean_no_request() {
        let r = Request::from_settings(Some("not json".into()), Some("[1]".into()));
        assert_eq!(r.find_token(&ORDER, &names("a", "b")), Found::Nothing);
        // A valid member followed by garbage is no request either.
        let r = Request::from_settings(None, Some(r#"{"a": "x.y.z"} trailing"#.into()));
        assert_eq!(r.find_token(&ORDER, &names("a", "b")), Found::Nothing);
        let r = Request::from_settings(None, Some(r#"{"a": "x.y.z", "b": "#.into()));
        assert_eq!(r.find_token(&ORDER, &names("a", "b")), Found::Nothing);
    }

    #[test]
    fn one_member_is_read_as_a_parsed_object_would_have_it() {
        let cookies =
            r#"{"other": {"deep": [1, "x"]}, "a\u0062": "escaped", "a": "first", "a": " last "}"#;
        let r = Request::from_settings(None, Some(cookies.into()));
        // A repeated name keeps its last value; escapes in names are decoded.
        assert_eq!(
            r.find_token(&ORDER, &names("a", "x")),
            Found::Token("last".into(), Source::Cookie)
        );
        assert_eq!(
            r.find_token(&ORDER, &names("ab", "x")),
            Found::Token("escaped".into(), Source::Cookie)
        );
        // Not a string: absent.
        assert_eq!(r.find_token(&ORDER, &names("other", "x")), Found::Nothing);
        assert_eq!(string_member(Some(cookies), "a"), Some(" last ".into()));
    }

    #[test]
    fn sources_parse_and_typos_are_errors() {
        assert_eq!(
            Source::parse_list(" Cookie ,bearer").unwrap(),
            vec![Source::Cookie, Source::Bearer]
        );
        assert!(Source::parse_list("cookies").is_err());
        assert_eq!(Source::parse_list("API_KEY").unwrap(), vec![Source::ApiKey]);
    }

    #[test]
    fn basic_is_decoded_only_when_asked_for() {
        let r = req(
            json!({"authorization": "Basic dXNlckBleC5jb206cGE6c3M="}),
            json!({}),
            json!({}),
        );
        assert_eq!(
            r.find_token(&ORDER, &names("a", "b")),
            Found::Nothing,
            "not a default source"
        );
        assert_eq!(
            r.find_token(&[Source::Basic], &names("a", "b")),
            Found::Basic {
                user: "user@ex.com".into(),
                password: "pa:ss".into()
            }
        );
        let r = req(
            json!({"authorization": "basic dXNlcjpwdw"}),
            json!({}),
            json!({}),
        );
        assert_eq!(
            r.find_token(&[Source::Basic], &names("a", "b")),
            Found::Basic {
                user: "user".into(),
                password: "pw".into()
            },
            "unpadded base64 and a lower-case scheme"
        );
        for garbage in ["Basic !!!", "Basic bm9jb2xvbg==", "basic /w=="] {
            let r = req(json!({"authorization": garbage}), json!({}), json!({}));
            assert_eq!(
                r.find_token(&[Source::Basic], &names("a", "b")),
                Found::Basic {
                    user: String::new(),
                    password: String::new()
                },
                "{garbage}"
            );
        }
        let r = req(
            json!({"authorization": "Bearer a.b.c"}),
            json!({}),
            json!({}),
        );
        assert_eq!(
            r.find_token(&[Source::Basic], &names("a", "b")),
            Found::Nothing
        );
    }

    #[test]
    fn the_api_key_header_comes_last_by_default() {
        let r = req(json!({"x-api-key": "pak_k"}), json!({}), json!({}));
        assert_eq!(
            r.find_token(&ORDER, &names("access_token", "x-access-token")),
            Found::Token("pak_k".into(), Source::ApiKey)
        );
        let r = req(
            json!({"x-api-key": "pak_k", "x-access-token": "h.h.h"}),
            json!({}),
            json!({}),
        );
        assert_eq!(
            r.find_token(&ORDER, &names("access_token", "x-access-token")),
            Found::Token("h.h.h".into(), Source::Header)
        );
    }
}
