use std::cell::RefCell;
use std::rc::Rc;

use pgrx::prelude::*;
use serde_json::Value;

use super::jsonb::JsonbText;
use crate::error::{AuthError, Result};
use crate::jwt::keys::{
    describes_itself, parse_algorithm, parse_keys_as, parse_single_key_as, Key,
};
use crate::jwt::sign::sign;
use crate::jwt::verify::{decode_unverified, inspect, verify_with_key, VerifyOptions};
use crate::keyring;
use crate::sqlstate::OrRaise;
use jsonwebtoken::Algorithm;

fn required<T>(value: Option<T>, name: &'static str) -> Result<T> {
    value.ok_or(AuthError::NullArgument(name))
}

/// Signs `claims` with an explicit key: an HMAC secret (HS256 unless `algorithm` says HS384/512),
/// a private PEM (RSA, P-256, P-384, Ed25519) or an `oct` JWK.
#[pg_extern(stable, parallel_safe, name = "sign_jwt")]
fn sign_jwt_with_key(
    claims: Option<JsonbText>,
    key: Option<&str>,
    algorithm: default!(Option<&str>, "NULL"),
) -> String {
    sign_with_key(claims, key, algorithm).or_raise()
}

/// Parses a jsonb argument's text; too deeply nested JSON is a clear argument error.
pub(crate) fn json_argument(value: Option<JsonbText>, name: &'static str) -> Result<Value> {
    let text = required(value, name)?.0;
    serde_json::from_str(&text)
        .map_err(|e| AuthError::InvalidArgument(format!("{name} cannot be read: {e}")))
}

fn sign_with_key(
    claims: Option<JsonbText>,
    key: Option<&str>,
    algorithm: Option<&str>,
) -> Result<String> {
    let claims = json_argument(claims, "claims")?;
    let alg = algorithm.map(parse_algorithm).transpose()?;
    let key = required(key, "key")?;
    // Signing with plain text means HMAC: unlike verifying, nothing can be forged by it.
    let read_as = alg.or((!describes_itself(key)).then_some(Algorithm::HS256));
    sign(&claims, &parse_single_key_as(key, read_as)?, alg)
}

/// Signs `claims` with the newest active key of the ring; the header names its `kid`.
/// Not executable by PUBLIC (see sql/grants.sql): whoever may call it can mint any token.
#[pg_extern(volatile, parallel_safe, name = "sign_jwt")]
fn sign_jwt_with_ring(claims: Option<JsonbText>) -> String {
    sign_with_ring(claims).or_raise()
}

fn sign_with_ring(claims: Option<JsonbText>) -> Result<String> {
    let claims = json_argument(claims, "claims")?;
    keyring::ring()?.sign(&claims, keyring::now())
}

/// Verifies `token` and returns its claims. With `key` NULL the key ring is used (kid first);
/// otherwise `key` is a secret, PEM, JWK or JWKS. `options`: audience, issuer, leeway, required,
/// algorithms (see README).
#[pg_extern(stable, parallel_safe)]
fn verify_jwt(
    token: Option<&str>,
    key: default!(Option<&str>, "NULL"),
    options: default!(Option<JsonbText>, "NULL"),
) -> JsonbText {
    JsonbText(verify(token, key, options).or_raise())
}

fn verify(token: Option<&str>, key: Option<&str>, options: Option<JsonbText>) -> Result<String> {
    let token = required(token, "token")?;
    let options = match options {
        None => VerifyOptions::default(),
        some => VerifyOptions::from_json(&json_argument(some, "options")?)?,
    };
    let Some(key) = key else {
        return storable(
            keyring::ring()?
                .verify(token, &options, keyring::now())?
                .payload,
        );
    };
    let header = inspect(token)?;
    let keys = parsed_keys(key, named_algorithm(&options))?;
    let key = match &header.kid {
        _ if keys.len() == 1 => &keys[0],
        Some(kid) => keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .ok_or_else(|| {
                AuthError::UnknownKid(format!(
                    "kid \"{}\" is not in the given JWKS",
                    crate::jwt::keys::truncate(kid, 64)
                ))
            })?,
        None => {
            return Err(AuthError::UnknownKid(
                "token has no kid, and the JWKS holds several keys".into(),
            ))
        }
    };
    storable(verify_with_key(token, &header, key, &options)?.payload)
}

thread_local! {
    /// The last explicit key text and its parsed keys: a query usually passes the same key for
    /// every row, so it is parsed once, not once per token.
    static LAST_KEY: RefCell<Option<ParsedKeyText>> = const { RefCell::new(None) };
}

/// Key text as passed to `auth.verify_jwt`, the algorithm it was read for, and its keys.
struct ParsedKeyText {
    text: String,
    algorithm: Option<Algorithm>,
    keys: Rc<Vec<Key>>,
}

/// The algorithm the `algorithms` option names when all its members are of one family: naming
/// only HS* algorithms is what makes key text a secret.
fn named_algorithm(options: &VerifyOptions) -> Option<Algorithm> {
    let algs = options.algorithms.as_deref()?;
    let first = *algs.first()?;
    algs.iter()
        .all(|a| a.family() == first.family())
        .then_some(first)
}

fn parsed_keys(text: &str, algorithm: Option<Algorithm>) -> Result<Rc<Vec<Key>>> {
    let cached = LAST_KEY.with_borrow(|c| {
        c.as_ref()
            .filter(|p| p.text == text && p.algorithm == algorithm)
            .map(|p| p.keys.clone())
    });
    if let Some(keys) = cached {
        return Ok(keys);
    }
    let keys: Vec<Key> = parse_keys_as(text, algorithm)?
        .into_iter()
        .map(Key::prepared)
        .collect::<Result<_>>()?;
    let keys = Rc::new(keys);
    LAST_KEY.set(Some(ParsedKeyText {
        text: text.to_string(),
        algorithm,
        keys: keys.clone(),
    }));
    Ok(keys)
}

/// jsonb cannot hold the string escape \u0000: refuse it here with our own error, not 22P05.
pub(crate) fn storable(json: String) -> Result<String> {
    if json.contains("\\u0000") {
        return Err(AuthError::InvalidClaim(
            "a claim contains \\u0000, which jsonb cannot store".into(),
        ));
    }
    Ok(json)
}

/// Header and payload of a token WITHOUT checking its signature or claims: for debugging only,
/// never for deciding who someone is.
#[pg_extern(immutable, parallel_safe)]
fn decode_jwt_unverified(token: Option<&str>) -> JsonbText {
    JsonbText(
        required(token, "token")
            .and_then(decode_unverified)
            .and_then(|v| storable(v.to_string()))
            .or_raise(),
    )
}
