//! Plain-Rust tests of the JWT core: round trips, claims, and the refusals that matter.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use super::keygen::generate_key_text;
use super::keys::{parse_single_key, parse_single_key_as, Key};
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
    sign(
        &claims,
        &parse_single_key_as(SECRET, Some(Algorithm::HS256)).unwrap(),
        None,
    )
    .unwrap()
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
        let key = parse_single_key_as(&generate_key_text(alg).unwrap(), Some(alg)).unwrap();
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
    let key = parse_single_key_as(SECRET, Some(Algorithm::HS256)).unwrap();
    assert_eq!(
        verify(&forged, &key, &VerifyOptions::default()),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn expiry_uses_the_leeway() {
    let key = parse_single_key_as(SECRET, Some(Algorithm::HS256)).unwrap();
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
    let key = parse_single_key_as(SECRET, Some(Algorithm::HS256)).unwrap();
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
    let key = parse_single_key_as(SECRET, Some(Algorithm::HS256)).unwrap();
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
    let key = parse_single_key_as(SECRET, Some(Algorithm::HS256)).unwrap();
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
    let key = parse_single_key_as(SECRET, Some(Algorithm::HS256)).unwrap();
    let token = hs_token(json!({"aud": "someone-else"}));
    assert_eq!(
        verify(&token, &key, &VerifyOptions::default()),
        Err(AuthError::WrongAudience)
    );
}

#[test]
fn required_claims_may_be_any_name() {
    let key = parse_single_key_as(SECRET, Some(Algorithm::HS256)).unwrap();
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
    let key = parse_single_key_as(SECRET, Some(Algorithm::HS256)).unwrap();
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
    let key = parse_single_key_as(SECRET, Some(Algorithm::HS256)).unwrap();
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
    let key = parse_single_key_as(SECRET, Some(Algorithm::HS256)).unwrap();
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

// ---- RSA keys read without the rsa crate ----------------------------------------------------

fn pem_text(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der))
}

/// The PKCS#1 RSAPrivateKey inside a generated PKCS#8 PEM.
fn pkcs1_private_der(pkcs8_pem: &str) -> Vec<u8> {
    let block = pem::parse(pkcs8_pem).unwrap();
    pkcs8::PrivateKeyInfo::try_from(block.contents())
        .unwrap()
        .private_key
        .to_vec()
}

fn rsa_jwk(n: &[u8], e: &[u8]) -> String {
    json!({"kty": "RSA", "n": B64.encode(n), "e": B64.encode(e)}).to_string()
}

fn key_error(text: &str) -> String {
    match parse_single_key(text) {
        Err(AuthError::InvalidKey(m)) => m,
        other => panic!("expected InvalidKey, got {:?}", other.map(|k| k.algorithms)),
    }
}

#[test]
fn every_rsa_key_form_gives_the_same_key() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair as _;
    let pkcs8_pem = generate_key_text(Algorithm::RS256).unwrap();
    let pkcs1 = pkcs1_private_der(&pkcs8_pem);
    let pair = aws_lc_rs::rsa::KeyPair::from_der(&pkcs1).unwrap();
    let spki = pair.public_key().as_der().unwrap();
    let private = parse_single_key(&pkcs8_pem).unwrap();
    let jwk = private.published_jwk().unwrap();
    assert_eq!(B64.decode(jwk["n"].as_str().unwrap()).unwrap().len(), 256);
    assert_eq!(jwk["e"], "AQAB");
    let forms = [
        (pem_text("RSA PRIVATE KEY", &pkcs1), true),
        (pem_text("PUBLIC KEY", spki.as_ref()), false),
        (
            pem_text("RSA PUBLIC KEY", pair.public_key().as_ref()),
            false,
        ),
        (jwk.to_string(), false),
    ];
    let token = sign(&json!({"sub": "x"}), &private, Some(Algorithm::PS384)).unwrap();
    for (text, signs) in forms {
        let key = parse_single_key(&text).unwrap();
        assert_eq!(key.published_jwk(), Some(jwk.clone()), "{text}");
        assert_eq!(key.sign.is_some(), signs, "{text}");
        assert!(verify(&token, &key, &VerifyOptions::default()).is_ok());
        if signs {
            let own = sign(&json!({}), &key, Some(Algorithm::RS512)).unwrap();
            assert!(verify(&own, &private, &VerifyOptions::default()).is_ok());
        }
    }
}

#[test]
fn rsa_public_key_rules_and_their_wording_are_kept() {
    // Synthetic moduli: the rules look at sizes and parity only (no key is built from them).
    let odd = |bytes: usize, first: u8| {
        let mut n = vec![0xffu8; bytes];
        n[0] = first;
        n
    };
    let n2048 = odd(256, 0xc1);
    for (n, e, message) in [
        (
            vec![1, 0, 1],
            vec![1, 0, 1],
            "not a valid RSA JWK: invalid modulus",
        ),
        (
            n2048.clone(),
            vec![],
            "not a valid RSA JWK: invalid exponent",
        ),
        (
            n2048.clone(),
            vec![1, 0, 2],
            "not a valid RSA JWK: invalid exponent",
        ),
        (
            n2048.clone(),
            vec![1],
            "not a valid RSA JWK: public exponent too small",
        ),
        (
            n2048.clone(),
            vec![2, 0, 0, 0, 1],
            "not a valid RSA JWK: public exponent too large",
        ),
        (
            n2048.clone(),
            n2048.clone(),
            "not a valid RSA JWK: public exponent too large",
        ),
        (
            [&n2048[..255], &[0xfe]].concat(),
            vec![1, 0, 1],
            "not a valid RSA JWK: invalid modulus",
        ),
        (
            odd(513, 0xff),
            vec![1, 0, 1],
            "not a valid RSA JWK: modulus too large",
        ),
        (
            odd(128, 0xff),
            vec![1, 0, 1],
            "RSA key has 1024 bits, at least 2048 are required",
        ),
        // Bits are counted exactly: aws-lc neither signs nor verifies with fewer than 2048.
        (
            odd(256, 0x7f),
            vec![1, 0, 1],
            "RSA key has 2047 bits, at least 2048 are required",
        ),
    ] {
        assert_eq!(key_error(&rsa_jwk(&n, &e)), message);
    }
    // The largest exponent and modulus allowed, and leading zeros, which are not published.
    let key = parse_single_key(&rsa_jwk(&odd(512, 0xff), &[1, 0xff, 0xff, 0xff, 0xff])).unwrap();
    assert_eq!(key.family(), jsonwebtoken::AlgorithmFamily::Rsa);
    let key = parse_single_key(&rsa_jwk(&[&[0, 0][..], &n2048].concat(), &[0, 1, 0, 1])).unwrap();
    assert_eq!(
        key.published_jwk().unwrap(),
        json!({"kty": "RSA", "n": B64.encode(&n2048), "e": "AQAB", "use": "sig"})
    );
}

#[test]
fn damaged_or_unsupported_rsa_private_keys_are_refused() {
    use der::Encode;
    let pkcs1 = pkcs1_private_der(&generate_key_text(Algorithm::RS256).unwrap());
    let good = pkcs1::RsaPrivateKey::try_from(pkcs1.as_slice()).unwrap();
    let bumped = |v: &[u8]| {
        let mut v = v.to_vec();
        *v.last_mut().unwrap() ^= 2;
        v
    };
    let (d, q_inv) = (
        bumped(good.private_exponent.as_bytes()),
        bumped(good.coefficient.as_bytes()),
    );
    let mut wrong_d = good.clone();
    wrong_d.private_exponent = pkcs1::UintRef::new(&d).unwrap();
    // The rsa crate recomputed dP, dQ and qInv and so took wrong ones; aws-lc checks them.
    let mut wrong_q_inv = good.clone();
    wrong_q_inv.coefficient = pkcs1::UintRef::new(&q_inv).unwrap();
    for damaged in [wrong_d, wrong_q_inv] {
        let der = damaged.to_der().unwrap();
        assert_eq!(
            key_error(&pem_text("RSA PRIVATE KEY", &der)),
            "not a valid RSA private key: PKCS#8 cryptographic key data malformed"
        );
        let info = pkcs8::PrivateKeyInfo::new(pkcs1::ALGORITHM_ID, &der);
        assert_eq!(
            key_error(&pem_text("PRIVATE KEY", &info.to_der().unwrap())),
            "PKCS#8 private key is not RSA, P-256, P-384 or Ed25519 (or is damaged)"
        );
    }
    // More than aws-lc signs with (the rsa crate took such keys, whose tokens never verified).
    let n = [&[0xc1u8][..], &[0xff; 1024]].concat();
    let mut huge = good.clone();
    huge.modulus = pkcs1::UintRef::new(&n).unwrap();
    assert_eq!(
        key_error(&pem_text("RSA PRIVATE KEY", &huge.to_der().unwrap())),
        "RSA private key has 8200 bits, at most 8192 are supported"
    );
}

/// A token with any header, signed by `key`.
fn signed_with_header(key: &Key, header: &Value) -> String {
    let alg = key.algorithms[0];
    let message = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(json!({"sub": "x", "role": "admin"}).to_string())
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), key.sign.as_ref().unwrap(), alg).unwrap();
    format!("{message}.{signature}")
}

#[test]
fn keys_named_in_the_header_are_never_used() {
    use super::ring::{KeyRing, RingKey};
    // The attacker signs with its own key and points at it every way RFC 7515 has: an embedded
    // JWK, a JWK Set URL, an X.509 URL and an X.509 chain. Only the key pg_auth holds verifies.
    let attacker = parse_single_key(&generate_key_text(Algorithm::RS256).unwrap()).unwrap();
    let ours_text = generate_key_text(Algorithm::RS256).unwrap();
    let ours = parse_single_key(&ours_text).unwrap();
    let ring = KeyRing::new(vec![RingKey::from_row(
        "ours",
        "RS256",
        Some(&ours_text),
        None,
        0.0,
        None,
    )
    .unwrap()]);
    let attacker_jwk = attacker.published_jwk().unwrap();
    let chain = json!([B64.encode(b"a certificate for the attacker's key")]);
    let url = "http://127.0.0.1:1/keys";
    for members in [
        json!({"jwk": attacker_jwk}),
        json!({"jku": url}),
        json!({"x5u": url}),
        json!({"x5c": chain}),
        json!({"jwk": attacker_jwk, "jku": url, "x5u": url, "x5c": chain}),
    ] {
        let mut header = json!({"alg": "RS256"});
        header
            .as_object_mut()
            .unwrap()
            .extend(members.as_object().unwrap().clone());
        let forged = signed_with_header(&attacker, &header);
        let opts = VerifyOptions::default();
        assert_eq!(verify(&forged, &ours, &opts), Err(AuthError::BadSignature));
        assert_eq!(
            ring.verify(&forged, &opts, 1.0).err(),
            Some(AuthError::BadSignature),
            "{header}"
        );
        header["kid"] = json!("ours");
        let forged = signed_with_header(&attacker, &header);
        assert_eq!(
            ring.verify(&forged, &opts, 1.0).err(),
            Some(AuthError::BadSignature),
            "{header}"
        );
        header["kid"] = json!("attacker");
        let forged = signed_with_header(&attacker, &header);
        assert!(matches!(
            ring.verify(&forged, &opts, 1.0),
            Err(AuthError::UnknownKid(_))
        ));
        // The members are ignored, not refused: our own key's token with them still verifies.
        header["kid"] = json!("ours");
        let genuine = signed_with_header(&ours, &header);
        assert!(verify(&genuine, &ours, &opts).is_ok(), "{header}");
        assert!(ring.verify(&genuine, &opts, 1.0).is_ok(), "{header}");
    }
}
