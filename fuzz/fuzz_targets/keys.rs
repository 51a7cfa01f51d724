//! Key text as auth.verify_jwt, auth.sign_jwt and auth.add_key take it: `parse_keys_as` with no
//! algorithm or any of the twelve (first byte), then `describe_keys` for what add_key stores.
//! A PEM anywhere in non-JSON text and a JSON array are never HMAC secrets.
#![no_main]

use jsonwebtoken::{Algorithm, AlgorithmFamily};
use libfuzzer_sys::fuzz_target;
use pg_auth_fuzz::error::AuthError;
use pg_auth_fuzz::jwt::keys::{alg_name, parse_keys_as, MIN_SECRET_LEN};
use pg_auth_fuzz::jwt::ring::describe_keys;
use pg_auth_fuzz::support::{check_error, check_key};

const ALGORITHMS: [Option<Algorithm>; 13] = [
    None,
    Some(Algorithm::HS256),
    Some(Algorithm::HS384),
    Some(Algorithm::HS512),
    Some(Algorithm::ES256),
    Some(Algorithm::ES384),
    Some(Algorithm::RS256),
    Some(Algorithm::RS384),
    Some(Algorithm::RS512),
    Some(Algorithm::PS256),
    Some(Algorithm::PS384),
    Some(Algorithm::PS512),
    Some(Algorithm::EdDSA),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let algorithm = ALGORITHMS[selector as usize % ALGORITHMS.len()];
    let keys = match parse_keys_as(text, algorithm) {
        Ok(keys) => keys,
        Err(e) => {
            assert!(
                matches!(
                    e,
                    AuthError::InvalidKey(_) | AuthError::AlgorithmNotAllowed(_)
                ),
                "{e:?}"
            );
            return check_error(&e);
        }
    };
    assert!(!keys.is_empty());
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    let json = trimmed.starts_with('{');
    for key in &keys {
        if key.family() == AlgorithmFamily::Hmac && !json {
            assert!(!trimmed.starts_with('['), "JSON array as secret: {text:?}");
            assert!(!text.contains("-----BEGIN"), "PEM as secret: {text:?}");
            assert!(algorithm.is_none_or(|a| a.family() == AlgorithmFamily::Hmac));
            assert!(text.len() >= MIN_SECRET_LEN);
        }
        check_key(key);
    }
    if !json {
        assert_eq!(keys.len(), 1, "only a JWKS gives several keys");
    }
    match describe_keys(text, None, algorithm.map(alg_name)) {
        Ok(stored) => {
            assert_eq!(stored.len(), keys.len());
            for (row, key) in stored.iter().zip(&keys) {
                assert!(!row.kid.is_empty() && row.kid.len() <= 200, "{:?}", row.kid);
                assert!(!row.kid.chars().any(char::is_control), "{:?}", row.kid);
                assert_eq!(row.secret.is_some(), key.sign.is_some());
                assert_eq!(
                    row.public_jwk.is_none(),
                    key.family() == AlgorithmFamily::Hmac
                );
            }
        }
        Err(e) => check_error(&e),
    }
});
