//! Plain-Rust tests of the JWT core: round trips, claims, and the refusals that matter.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use super::keygen::generate_key_text;
use super::keys::{parse_single_key, Key};
use super::sign::sign;
use super::verify::{decode_unverified, inspect, verify_with_key, VerifyOptions, MAX_TOKEN_LEN};
use crate::error::AuthError;

const SECRET: &str = "a-test-secret-that-is-32-chars-long!";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn verify(
    token: &str,
    key: &Key,
    options: &VerifyOptions,
) -> Result<serde_json::Map<String, Value>, AuthError> {
    let header = inspect(token)?;
    verify_with_key(token, &header, key, options)?.claims()
}

fn hs_token(claims: Value) -> String {
    sign(&claims, &parse_single_key(SECRET).unwrap(), None).unwrap()
}

#[test]
fn every_algorithm_round_trips() {
    for alg in [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let key = parse_single_key(&generate_key_text(alg).unwrap()).unwrap();
        let token = sign(&json!({"sub": "u1", "exp": now() + 60}), &key, Some(alg)).unwrap();
        assert_eq!(inspect(&token).unwrap().alg, alg);
        let claims = verify(&token, &key, &VerifyOptions::default()).unwrap();
        assert_eq!(claims["sub"], "u1", "{alg:?}");
    }
}

#[test]
fn public_half_verifies_what_the_private_half_signed() {
    let private = parse_single_key(&generate_key_text(Algorithm::ES256).unwrap()).unwrap();
    let public = super::keys::parse_jwk(&private.published_jwk().unwrap()).unwrap();
    assert!(public.sign.is_none());
    let token = sign(&json!({"a": 1}), &private, None).unwrap();
    assert_eq!(
        verify(&token, &public, &VerifyOptions::default()).unwrap()["a"],
        1
    );
    assert!(matches!(
        sign(&json!({}), &public, None),
        Err(AuthError::InvalidKey(_))
    ));
}

#[test]
fn tampered_payload_fails_the_signature() {
    let token = hs_token(json!({"role": "user"}));
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    parts[1] = B64.encode(br#"{"role":"admin"}"#);
    let forged = parts.join(".");
    let key = parse_single_key(SECRET).unwrap();
    assert_eq!(
        verify(&forged, &key, &VerifyOptions::default()),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn expiry_uses_the_leeway() {
    let key = parse_single_key(SECRET).unwrap();
    let recent = hs_token(json!({"exp": now() - 10}));
    assert!(verify(&recent, &key, &VerifyOptions::default()).is_ok());
    let strict = VerifyOptions {
        leeway: 0,
        ..Default::default()
    };
    assert_eq!(verify(&recent, &key, &strict), Err(AuthError::Expired));
}

#[test]
fn nbf_and_iat_in_the_future_are_refused() {
    let key = parse_single_key(SECRET).unwrap();
    let opts = VerifyOptions::default();
    assert_eq!(
        verify(&hs_token(json!({"nbf": now() + 600})), &key, &opts),
        Err(AuthError::NotYetValid("nbf"))
    );
    assert_eq!(
        verify(&hs_token(json!({"iat": now() + 600})), &key, &opts),
        Err(AuthError::NotYetValid("iat"))
    );
    assert!(verify(&hs_token(json!({"iat": now() + 5})), &key, &opts).is_ok());
}

#[test]
fn claims_of_the_wrong_type_are_invalid() {
    let key = parse_single_key(SECRET).unwrap();
    let opts = VerifyOptions::default();
    assert_eq!(
        verify(&hs_token(json!({"exp": "tomorrow"})), &key, &opts),
        Err(AuthError::InvalidClaim("exp".into()))
    );
    assert_eq!(
        verify(&hs_token(json!({"exp": 1e30})), &key, &opts),
        Err(AuthError::InvalidClaim("exp".into()))
    );
    assert_eq!(
        verify(&hs_token(json!({"iat": "now"})), &key, &opts),
        Err(AuthError::InvalidClaim("iat".into()))
    );
}

#[test]
fn audience_and_issuer_are_required_once_configured() {
    let key = parse_single_key(SECRET).unwrap();
    let opts = VerifyOptions::from_json(&json!({"audience": ["api"], "issuer": "me"})).unwrap();
    assert!(verify(&hs_token(json!({"aud": "api", "iss": "me"})), &key, &opts).is_ok());
    assert!(verify(
        &hs_token(json!({"aud": ["x", "api"], "iss": "me"})),
        &key,
        &opts
    )
    .is_ok());
    assert_eq!(
        verify(&hs_token(json!({"aud": "web", "iss": "me"})), &key, &opts),
        Err(AuthError::WrongAudience)
    );
    assert_eq!(
        verify(&hs_token(json!({"aud": "api", "iss": "you"})), &key, &opts),
        Err(AuthError::WrongIssuer)
    );
    assert_eq!(
        verify(&hs_token(json!({"iss": "me"})), &key, &opts),
        Err(AuthError::MissingClaim("aud".into()))
    );
}

#[test]
fn an_audience_nobody_asked_for_is_refused() {
    let key = parse_single_key(SECRET).unwrap();
    let token = hs_token(json!({"aud": "someone-else"}));
    assert_eq!(
        verify(&token, &key, &VerifyOptions::default()),
        Err(AuthError::WrongAudience)
    );
}

#[test]
fn required_claims_may_be_any_name() {
    let key = parse_single_key(SECRET).unwrap();
    let opts = VerifyOptions::from_json(&json!({"required": ["sub", "tenant"]})).unwrap();
    assert_eq!(
        verify(&hs_token(json!({"sub": "x"})), &key, &opts),
        Err(AuthError::MissingClaim("tenant".into()))
    );
}

#[test]
fn the_header_cannot_pick_another_family() {
    // HS256 signed with the RSA public key's bytes: the classic confusion attack.
    let rsa = parse_single_key(&generate_key_text(Algorithm::RS256).unwrap()).unwrap();
    let token = hs_token(json!({"sub": "x"}));
    assert!(matches!(
        verify(&token, &rsa, &VerifyOptions::default()),
        Err(AuthError::AlgorithmNotAllowed(_))
    ));
    // RFC 7519's unsecured JWT (empty signature) is refused for its algorithm, not its shape.
    let none = format!(
        "{}.{}.",
        B64.encode(br#"{"alg":"none"}"#),
        B64.encode(b"{}")
    );
    assert!(matches!(
        inspect(&none),
        Err(AuthError::AlgorithmNotAllowed(_))
    ));
    let none = format!(
        "{}.{}.c2ln",
        B64.encode(br#"{"alg":"none"}"#),
        B64.encode(b"{}")
    );
    assert!(matches!(
        inspect(&none),
        Err(AuthError::AlgorithmNotAllowed(_))
    ));
}

#[test]
fn registered_claims_of_the_wrong_shape_are_invalid_not_missing() {
    let key = parse_single_key(SECRET).unwrap();
    let opts = VerifyOptions::from_json(&json!({"audience": "x", "issuer": "me"})).unwrap();
    for claims in [
        json!({"aud": 5, "iss": "me"}),
        json!({"aud": true, "iss": "me"}),
        json!({"aud": ["x", 1], "iss": "me"}),
    ] {
        assert_eq!(
            verify(&hs_token(claims), &key, &opts),
            Err(AuthError::InvalidClaim("aud".into()))
        );
    }
    assert_eq!(
        verify(&hs_token(json!({"aud": "x", "iss": 5})), &key, &opts),
        Err(AuthError::InvalidClaim("iss".into()))
    );
    // Without an audience option a non-string aud is still refused, never silently accepted.
    assert_eq!(
        verify(
            &hs_token(json!({"aud": {}})),
            &key,
            &VerifyOptions::default()
        ),
        Err(AuthError::InvalidClaim("aud".into()))
    );
    assert_eq!(
        verify(
            &hs_token(json!({"exp": [1]})),
            &key,
            &VerifyOptions::default()
        ),
        Err(AuthError::InvalidClaim("exp".into()))
    );
    assert_eq!(
        verify(
            &hs_token(json!({"nbf": {"a": 1}})),
            &key,
            &VerifyOptions::default()
        ),
        Err(AuthError::InvalidClaim("nbf".into()))
    );
}

#[test]
fn critical_header_extensions_are_refused() {
    let token = format!(
        "{}.{}.c2ln",
        B64.encode(br#"{"alg":"HS256","crit":["x"]}"#),
        B64.encode(b"{}")
    );
    assert!(matches!(inspect(&token), Err(AuthError::MalformedToken(m)) if m.contains("crit")));
}

/// Found by the fuzz target `token`: bytes in a header member pg_auth does not read were not
/// checked, so a validly signed token whose header was not UTF-8 JSON text verified (while
/// decode_unverified refused it).
#[test]
fn header_members_not_read_must_still_be_json_text() {
    let key = parse_single_key(SECRET).unwrap();
    let claims = json!({"sub": "u1", "exp": now() + 60});
    for header in [
        &b"{\"alg\":\"HS256\",\"x5u\":\"http://127.0.0-\xf1:1/cert\"}"[..],
        br#"{"alg":"HS256","x":"\ud800"}"#,
    ] {
        let message = format!("{}.{}", B64.encode(header), B64.encode(claims.to_string()));
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            key.sign.as_ref().unwrap(),
            Algorithm::HS256,
        )
        .unwrap();
        let token = format!("{message}.{signature}");
        assert!(
            matches!(inspect(&token), Err(AuthError::MalformedToken(_))),
            "{:?}",
            String::from_utf8_lossy(header)
        );
    }
    // Valid escapes, and deep nesting in a member not read (legal JSON), stay accepted.
    let token = format!(
        "{}.e30.c2ln",
        B64.encode(r#"{"alg":"HS256","kid":"\u00e9"}"#)
    );
    assert_eq!(inspect(&token).unwrap().kid.as_deref(), Some("\u{e9}"));
    let nested = format!(
        r#"{{"alg":"HS256","x":{}1{}}}"#,
        "[".repeat(300),
        "]".repeat(300)
    );
    let token = format!("{}.e30.c2ln", B64.encode(&nested));
    assert!(inspect(&token).is_ok());
}

#[test]
fn algorithms_option_narrows_further() {
    let key = parse_single_key(SECRET).unwrap();
    let opts = VerifyOptions::from_json(&json!({"algorithms": ["HS512"]})).unwrap();
    assert!(matches!(
        verify(&hs_token(json!({})), &key, &opts),
        Err(AuthError::AlgorithmNotAllowed(_))
    ));
}

#[test]
fn unknown_options_are_errors() {
    assert!(matches!(
        VerifyOptions::from_json(&json!({"audiance": "x"})),
        Err(AuthError::InvalidArgument(_))
    ));
    assert!(matches!(
        VerifyOptions::from_json(&json!({"leeway": -1})),
        Err(AuthError::InvalidArgument(_))
    ));
    assert!(matches!(
        VerifyOptions::from_json(&json!({"leeway": 1e12})),
        Err(AuthError::InvalidArgument(_))
    ));
    assert!(matches!(
        VerifyOptions::from_json(&json!([1])),
        Err(AuthError::InvalidArgument(_))
    ));
}

#[test]
fn shape_errors_come_before_any_crypto() {
    assert!(matches!(inspect("a.b"), Err(AuthError::MalformedToken(_))));
    assert!(matches!(
        inspect("a.b.c.d"),
        Err(AuthError::MalformedToken(_))
    ));
    assert!(matches!(
        inspect("a+b.c.d"),
        Err(AuthError::MalformedToken(_))
    ));
    assert!(matches!(inspect(""), Err(AuthError::MalformedToken(_))));
    let huge = "a".repeat(MAX_TOKEN_LEN + 1);
    assert!(matches!(
        inspect(&huge),
        Err(AuthError::TokenTooLarge { .. })
    ));
}

#[test]
fn deeply_nested_payload_is_an_error_not_a_crash() {
    let nested = "[".repeat(5000) + &"]".repeat(5000);
    let token = format!(
        "{}.{}.c2ln",
        B64.encode(br#"{"alg":"HS256"}"#),
        B64.encode(nested.as_bytes())
    );
    assert!(matches!(
        decode_unverified(&token),
        Err(AuthError::MalformedToken(_))
    ));
}

#[test]
fn unverified_decode_shows_header_and_payload() {
    let token = hs_token(json!({"sub": "x"}));
    let decoded = decode_unverified(&token).unwrap();
    assert_eq!(decoded["header"]["alg"], "HS256");
    assert_eq!(decoded["payload"]["sub"], "x");
}
