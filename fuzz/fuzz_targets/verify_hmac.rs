//! `verify_with_key` with an HMAC key. First byte: mode and options. Mode 0 verifies the rest
//! of the input as a token (a token that verifies must carry the real HMAC); mode 1 reads it as
//! header JSON, 0xFF, payload JSON and signs them properly, so the claims rules are reached too.
#![no_main]

use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use pg_auth_fuzz::error::AuthError;
use pg_auth_fuzz::jwt::keys::Key;
use pg_auth_fuzz::jwt::verify::{inspect, verify_with_key};
use pg_auth_fuzz::support::{
    b64_decode, check_error, check_verified, hmac_key, options, signed_token, token_input,
};

thread_local! {
    static KEY: Key = hmac_key();
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let options = options(selector >> 1);
    KEY.with(|key| {
        let Some(token) = token_input(selector, rest, |header, payload| {
            let alg = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512][selector as usize % 3];
            signed_token(header, payload, key, alg)
        }) else {
            return;
        };
        let result = inspect(&token).and_then(|h| verify_with_key(&token, &h, key, &options));
        match result {
            Ok(verified) => {
                // No forgery: the signature is the HMAC of the signing input, byte for byte.
                let (message, signature) = token.rsplit_once('.').unwrap();
                let alg = inspect(&token).unwrap().alg;
                let expected =
                    jsonwebtoken::crypto::sign(message.as_bytes(), key.sign.as_ref().unwrap(), alg);
                assert_eq!(
                    b64_decode(signature),
                    b64_decode(&expected.unwrap()),
                    "{token:?}"
                );
                check_verified(&token, key, Some(key), &options, &verified);
            }
            Err(e) => {
                assert!(!matches!(e, AuthError::InvalidKey(_)), "{e}");
                check_error(&e)
            }
        }
    });
});
