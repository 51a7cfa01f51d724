//! Token shape and header: `inspect` and `decode_unverified` on any text, and `VerifyOptions`
//! from any JSON (the options argument of auth.verify_jwt is the caller's).
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use pg_auth_fuzz::jwt::verify::{decode_unverified, inspect, VerifyOptions, MAX_TOKEN_LEN};
use pg_auth_fuzz::support::check_error;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    match inspect(token) {
        Ok(header) => {
            let parts: Vec<&str> = token.split('.').collect();
            assert!(token.len() <= MAX_TOKEN_LEN);
            assert_eq!(parts.len(), 3, "{token:?}");
            assert!(!parts[0].is_empty() && !parts[1].is_empty());
            // `none` and unknown names never get past the header.
            assert_ne!(pg_auth_fuzz::jwt::keys::alg_name(header.alg), "unknown");
            // RFC 7515 5.2: the header is UTF-8 JSON text, all of it, not only the members
            // pg_auth reads (no invalid UTF-8, no lone surrogate escape). Deep nesting in an
            // unknown member is legal, so the full parse only runs on headers with escapes.
            let bytes = B64.decode(parts[0]).expect("header is base64url");
            let text = std::str::from_utf8(&bytes).expect("header is UTF-8");
            if text.contains("\\u") {
                serde_json::from_str::<Value>(text).expect("header escapes are valid");
            }
        }
        Err(e) => check_error(&e),
    }
    match decode_unverified(token) {
        Ok(v) => {
            assert!(v["header"].is_object() && v["payload"].is_object(), "{v}");
            assert_eq!(token.split('.').count(), 3);
        }
        Err(e) => check_error(&e),
    }
    if let Ok(value) = serde_json::from_str::<Value>(token) {
        match VerifyOptions::from_json(&value) {
            Ok(o) => {
                assert!(value.is_null() || value.is_object());
                assert!(o.leeway <= pg_auth_fuzz::jwt::verify::MAX_LEEWAY);
                for list in [&o.audience, &o.issuer].into_iter().flatten() {
                    assert!(!list.is_empty());
                }
            }
            Err(e) => check_error(&e),
        }
    }
});
