//! `KeyRing::verify`: a ring of an HS256 key "hs", a retired HS256 key "old" with the same
//! secret, an ES256 key "es" stored as a public JWK, and an HS512 key "next" not active yet.
//! Mode 0 verifies the input as a token; mode 1 signs fuzzed header and payload JSON with the
//! shared HS256 secret. Only "hs" and "es" (named by kid, or without a kid by the algorithm)
//! may accept a token, and it must carry a genuine signature; "old" never accepts one.
#![no_main]

use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use pg_auth_fuzz::error::AuthError;
use pg_auth_fuzz::jwt::keys::Key;
use pg_auth_fuzz::jwt::ring::{KeyRing, RingKey};
use pg_auth_fuzz::jwt::verify::inspect;
use pg_auth_fuzz::support::{
    b64_decode, check_error, check_verified, es256_keys, hmac_key, options, p256_secret,
    signed_token, token_input, HMAC_SECRET,
};

const NOW: f64 = 1_000_000.0;

fn ring() -> (KeyRing, Key, (Key, Key)) {
    let es = es256_keys();
    let es_jwk = es.1.published_jwk().unwrap().to_string();
    let next_secret = HMAC_SECRET.repeat(2);
    let row = |kid, alg, secret, jwk, from, retire| {
        RingKey::from_row(kid, alg, secret, jwk, from, retire).expect("ring key")
    };
    let ring = KeyRing::new(vec![
        row("hs", "HS256", Some(HMAC_SECRET), None, 0.0, None),
        row(
            "old",
            "HS256",
            Some(HMAC_SECRET),
            None,
            0.0,
            Some(NOW - 1.0),
        ),
        row("es", "ES256", None, Some(es_jwk.as_str()), 0.0, None),
        row(
            "next",
            "HS512",
            Some(next_secret.as_str()),
            None,
            NOW + 100.0,
            None,
        ),
    ]);
    (ring, hmac_key(), es)
}

thread_local! {
    static RING: (KeyRing, Key, (Key, Key)) = ring();
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let options = options(selector >> 1);
    RING.with(|(ring, key, es)| {
        let Some(token) = token_input(selector, rest, |header, payload| {
            signed_token(header, payload, key, Algorithm::HS256)
        }) else {
            return;
        };
        match ring.verify(&token, &options, NOW) {
            Ok(verified) => {
                let header = inspect(&token).unwrap();
                let (message, signature) = token.rsplit_once('.').unwrap();
                match header.alg {
                    Algorithm::HS256 => {
                        assert!(
                            matches!(header.kid.as_deref(), None | Some("hs")),
                            "{header:?}"
                        );
                        assert!(verified.issued_here);
                        let expected = jsonwebtoken::crypto::sign(
                            message.as_bytes(),
                            key.sign.as_ref().unwrap(),
                            Algorithm::HS256,
                        );
                        assert_eq!(b64_decode(signature), b64_decode(&expected.unwrap()));
                        check_verified(&token, key, Some(key), &options, &verified);
                    }
                    Algorithm::ES256 => {
                        assert!(
                            matches!(header.kid.as_deref(), None | Some("es")),
                            "{header:?}"
                        );
                        assert!(!verified.issued_here);
                        use p256::ecdsa::signature::Verifier;
                        let signature =
                            p256::ecdsa::Signature::from_slice(&b64_decode(signature)).unwrap();
                        p256::ecdsa::VerifyingKey::from(p256_secret().public_key())
                            .verify(message.as_bytes(), &signature)
                            .expect("genuine signature");
                        check_verified(&token, &es.1, Some(&es.0), &options, &verified);
                    }
                    other => panic!("{other:?} token verified: {token:?}"),
                }
            }
            Err(e) => {
                assert!(!matches!(e, AuthError::InvalidKey(_)), "{e}");
                check_error(&e)
            }
        }
    });
});
