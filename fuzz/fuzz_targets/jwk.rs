//! `parse_jwk` on any JSON value, and a stored key row (`RingKey::from_row`) whose public_jwk
//! column holds the same text, with the algorithm picked by the first byte.
#![no_main]

use jsonwebtoken::AlgorithmFamily;
use libfuzzer_sys::fuzz_target;
use pg_auth_fuzz::jwt::keys::parse_jwk;
use pg_auth_fuzz::jwt::ring::RingKey;
use pg_auth_fuzz::support::{check_error, check_key};
use serde_json::Value;

const ALGORITHMS: [&str; 13] = [
    "HS256", "HS384", "HS512", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384",
    "PS512", "EdDSA", "none",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(value) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    match parse_jwk(&value) {
        Ok(key) => {
            let kty = value.get("kty").and_then(Value::as_str);
            assert_eq!(key.family() == AlgorithmFamily::Hmac, kty == Some("oct"));
            assert_eq!(key.kid.as_deref(), value.get("kid").and_then(Value::as_str));
            check_key(&key);
        }
        Err(e) => check_error(&e),
    }
    let text = std::str::from_utf8(rest).unwrap();
    let alg = ALGORITHMS[selector as usize % ALGORITHMS.len()];
    match RingKey::from_row("k", alg, None, Some(text), 0.0, None) {
        Ok(row) => {
            assert_eq!(row.key.algorithms.len(), 1);
            assert_eq!(
                pg_auth_fuzz::jwt::keys::alg_name(row.key.algorithms[0]),
                alg
            );
            assert_eq!(row.key.kid.as_deref(), Some("k"));
        }
        Err(e) => check_error(&e),
    }
});
