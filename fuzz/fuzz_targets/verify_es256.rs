//! `verify_with_key` with an EC (P-256) public key, as verify_hmac: mode 0 verifies the input
//! as a token (one that verifies must pass p256's own ECDSA check), mode 1 signs fuzzed header
//! and payload JSON with the private half first.
#![no_main]

use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use pg_auth_fuzz::error::AuthError;
use pg_auth_fuzz::jwt::keys::Key;
use pg_auth_fuzz::jwt::verify::{inspect, verify_with_key};
use pg_auth_fuzz::support::{
    b64_decode, check_error, check_verified, es256_keys, options, p256_secret, signed_token,
    token_input,
};

thread_local! {
    static KEYS: (Key, Key) = es256_keys();
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let options = options(selector >> 1);
    KEYS.with(|(private, public)| {
        let Some(token) = token_input(selector, rest, |header, payload| {
            signed_token(header, payload, private, Algorithm::ES256)
        }) else {
            return;
        };
        let result = inspect(&token).and_then(|h| verify_with_key(&token, &h, public, &options));
        match result {
            Ok(verified) => {
                // No forgery: the signature checks out with p256's own ECDSA verification.
                use p256::ecdsa::signature::Verifier;
                let (message, signature) = token.rsplit_once('.').unwrap();
                let signature = p256::ecdsa::Signature::from_slice(&b64_decode(signature)).unwrap();
                let verifying = p256::ecdsa::VerifyingKey::from(p256_secret().public_key());
                verifying
                    .verify(message.as_bytes(), &signature)
                    .expect("genuine signature");
                assert!(!verified.issued_here, "a public key cannot sign");
                check_verified(&token, public, Some(private), &options, &verified);
            }
            Err(e) => {
                assert!(!matches!(e, AuthError::InvalidKey(_)), "{e}");
                check_error(&e)
            }
        }
    });
});
