//! Where the token comes from: PostgREST's `request.headers` and `request.cookies` JSON, the
//! `pg_auth.token_sources` list and the cookie and header names. Input (UTF-8): headers, DEL,
//! cookies, DEL, sources, DEL, cookie name, DEL, header name. `find_token` is checked against a
//! restatement of its rules; opaque session token recognition too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pg_auth_fuzz::request::{Found, Request, Source};
use pg_auth_fuzz::session::{credential, hash_token, Credential};
use pg_auth_fuzz::support::check_error;
use serde_json::{Map, Value};

fn object(text: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) if !text.is_empty() => m,
        _ => Map::new(),
    }
}

/// The rule of `find_token`, written out again: the first source, in order, that has a
/// non-blank value; values are trimmed; Bearer needs the scheme "bearer " in any case.
fn expected(
    headers: &Map<String, Value>,
    cookies: &Map<String, Value>,
    order: &[Source],
    cookie: &str,
    header: &str,
) -> Found {
    for &source in order {
        let value = match source {
            Source::Cookie => cookies.get(cookie).and_then(Value::as_str).map(str::trim),
            Source::Header => headers
                .get(&header.to_ascii_lowercase())
                .and_then(Value::as_str)
                .map(str::trim),
            Source::Bearer => headers
                .get("authorization")
                .and_then(Value::as_str)
                .and_then(|v| {
                    let lower = v.to_ascii_lowercase();
                    lower
                        .starts_with("bearer ")
                        .then(|| v["bearer ".len()..].trim())
                }),
        };
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            return Found::Token(v.to_string(), source);
        }
    }
    Found::Nothing
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\u{7f}');
    let mut next = || parts.next().unwrap_or_default();
    let (headers, cookies, sources, cookie, header) = (next(), next(), next(), next(), next());
    let request = Request::from_settings(Some(headers), Some(cookies));
    let (h, c) = (object(headers), object(cookies));
    let order = match Source::parse_list(sources) {
        Ok(order) => {
            let names = sources.split(',').map(str::trim).filter(|s| !s.is_empty());
            assert_eq!(order.len(), names.count());
            order
        }
        Err(e) => {
            check_error(&e);
            vec![Source::Cookie, Source::Header, Source::Bearer]
        }
    };
    let found = request.find_token(&order, cookie, header);
    assert_eq!(found, expected(&h, &c, &order, cookie, header));
    if let Found::Token(token, _) = &found {
        assert!(!token.is_empty() && token.trim() == token);
        if credential(token) == Credential::Session {
            assert!(token.len() == 43 || (token.len() == 47 && token.starts_with("pas_")));
            assert!(!token.contains('.'));
        }
        assert_eq!(hash_token(token).len(), 32);
    }
});
