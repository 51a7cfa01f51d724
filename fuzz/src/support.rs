//! Shared by the fuzz targets. Keys are fixed (never random) so that every run and every
//! reproducer sees the same ones; they are test keys and protect nothing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::Algorithm;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Map, Value};

use crate::error::AuthError;
use crate::jwt::keys::{parse_single_key_as, Key};
use crate::jwt::sign::sign;
use crate::jwt::verify::{inspect, verify_with_key, Verified, VerifyOptions};
use crate::response::{pgrst_error, www_authenticate, CookieSpec};

/// The HMAC secret of the HMAC targets (also in fuzz/seed.py, which signs seeds with it).
pub const HMAC_SECRET: &str = "fuzz-secret-0123456789abcdef-0123456789";
/// The P-256 private scalar of the ES256 targets (also in fuzz/seed.py).
pub const P256_SCALAR: [u8; 32] = [0x11; 32];

pub fn hmac_key() -> Key {
    parse_single_key_as(HMAC_SECRET, Some(Algorithm::HS256)).expect("HMAC test secret")
}

pub fn p256_secret() -> p256::SecretKey {
    p256::SecretKey::from_slice(&P256_SCALAR).expect("P-256 test scalar")
}

/// The ES256 test key as pg_auth reads it: private (can sign) and public (verifies only).
pub fn es256_keys() -> (Key, Key) {
    let secret = p256_secret();
    let private = secret.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM");
    let public = secret
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("SPKI PEM");
    let private = parse_single_key_as(&private, Some(Algorithm::ES256)).expect("ES256 private");
    let public = parse_single_key_as(&public, Some(Algorithm::ES256))
        .and_then(Key::prepared)
        .expect("ES256 public");
    (private, public)
}

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn b64_decode(text: &str) -> Vec<u8> {
    B64.decode(text).expect("base64url")
}

/// Splits fuzz input at the first 0xFF byte (never part of UTF-8 text): `(before, after)`.
pub fn split_ff(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    }
}

/// A compact JWS over raw header and payload bytes, signed with `key` for `alg` whatever the
/// header says: so the fuzzer's tokens get past the signature check and reach the claims rules.
pub fn signed_token(header: &[u8], payload: &[u8], key: &Key, alg: Algorithm) -> String {
    let message = format!("{}.{}", b64(header), b64(payload));
    let encoding = key.sign.as_ref().expect("a signing key");
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), encoding, alg).expect("sign");
    format!("{message}.{signature}")
}

/// One of a few fixed option sets, picked by a byte of the input.
pub fn options(selector: u8) -> VerifyOptions {
    let json = match selector % 6 {
        0 => "null",
        1 => r#"{"audience": ["api", "web"]}"#,
        2 => r#"{"issuer": "https://good.example", "leeway": 0}"#,
        3 => r#"{"required": ["sub", "role"], "leeway": 604800}"#,
        4 => r#"{"algorithms": ["HS512", "ES256"]}"#,
        _ => r#"{"audience": "api", "issuer": ["a", "b"], "required": "exp"}"#,
    };
    VerifyOptions::from_json(&serde_json::from_str(json).unwrap()).unwrap()
}

pub fn printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// What every refusal must give PostgREST: its status, a JSON message and detail that parse,
/// and header values of printable ASCII only (no CR/LF: no header injection from token text).
pub fn check_error(err: &AuthError) {
    let header = www_authenticate(err);
    assert!(printable_ascii(&header), "WWW-Authenticate {header:?}");
    assert!(
        matches!(err.http_status(), 400 | 401 | 403 | 415 | 429 | 500),
        "{err:?}"
    );
    let spec = CookieSpec {
        name: "access_token".into(),
        secure: true,
    };
    let (message, detail) = pgrst_error(err, "PA001", Some(&spec));
    let message: Value = serde_json::from_str(&message).expect("message is JSON");
    assert_eq!(message["message"], Value::String(err.to_string()));
    let detail: Value = serde_json::from_str(&detail).expect("detail is JSON");
    assert_eq!(detail["status"], err.http_status());
    let headers = detail["headers"].as_object().expect("headers object");
    // The clearing cookie, and WWW-Authenticate only for a 401 or 403 (RFC 9110).
    let challenges = matches!(err.http_status(), 401 | 403);
    assert_eq!(headers.len(), 1 + usize::from(challenges));
    assert_eq!(headers.contains_key("WWW-Authenticate"), challenges);
    for (name, value) in headers {
        let value = value.as_str().expect("header value is a string");
        assert!(printable_ascii(value), "{name}: {value:?}");
    }
}

/// The registered claim rules restated independently of `check_claims`, for a verified payload.
fn check_claim_rules(claims: &Map<String, Value>, options: &VerifyOptions) {
    let strings = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => vec![],
        }
    };
    match (&options.audience, claims.get("aud")) {
        (None, Some(aud)) => assert!(strings(aud).is_empty(), "aud {aud} without an audience"),
        (Some(_), None) => panic!("verified without aud although an audience is set"),
        (Some(accepted), Some(aud)) => {
            assert!(
                strings(aud).iter().any(|a| accepted.contains(a)),
                "aud {aud}"
            )
        }
        (None, None) => {}
    }
    if let Some(accepted) = &options.issuer {
        let iss = claims.get("iss").and_then(Value::as_str);
        assert!(
            iss.is_some_and(|i| accepted.iter().any(|a| a == i)),
            "iss {iss:?}"
        );
    }
    for name in &options.required {
        assert!(
            claims.get(name).is_some_and(|v| !v.is_null()),
            "required {name}"
        );
    }
    for name in ["exp", "nbf", "iat"] {
        if let Some(v) = claims.get(name) {
            assert!(v.is_number(), "{name} is {v}");
            assert!(v.as_f64().is_some_and(|t| t >= 0.0), "{name} is {v}");
        }
    }
}

/// JSON equality, except that floats may differ in the last bits: serde_json (without its
/// `float_roundtrip` feature, as in pg_auth) may parse a long decimal one ULP off, so a float
/// does not always survive printing and parsing again. pg_auth hands the payload text on as is.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Properties of a token that verified with `key`: its payload is the token's own, is JSON
/// text, the algorithm is one the key and options allow, the claim rules hold, and signing the
/// same claims again with `signer` (the key's private half, if we hold it) verifies to them.
pub fn check_verified(
    token: &str,
    key: &Key,
    signer: Option<&Key>,
    options: &VerifyOptions,
    verified: &Verified,
) {
    let header = inspect(token).expect("a verified token inspects");
    assert!(key.algorithms.contains(&header.alg), "{:?}", header.alg);
    if let Some(allowed) = &options.algorithms {
        assert!(allowed.contains(&header.alg));
    }
    let payload_segment = token.split('.').nth(1).expect("three segments");
    let payload = B64.decode(payload_segment).expect("payload is base64url");
    assert_eq!(verified.payload.as_bytes(), payload.as_slice());
    assert!(verified.payload.trim_start().starts_with('{'));
    serde_json::from_str::<serde::de::IgnoredAny>(&verified.payload).expect("payload is JSON");
    assert_eq!(verified.issued_here, key.sign.is_some());
    // Numbers beyond f64 (legal JSON, which jsonb keeps) do not make a serde_json map.
    let Ok(claims) = verified.claims() else {
        return;
    };
    check_claim_rules(&claims, options);
    let Some(signer) = signer else { return };
    let again = sign(&Value::Object(claims.clone()), signer, Some(header.alg))
        .expect("verified claims can be signed again");
    let header_again = inspect(&again).expect("a token we signed inspects");
    match verify_with_key(&again, &header_again, key, options) {
        Ok(v) => {
            let again = Value::Object(v.claims().expect("claims"));
            assert!(same_json(&again, &Value::Object(claims)), "{again}");
        }
        // The clock may tick past a limit between the two verifications.
        Err(AuthError::Expired | AuthError::NotYetValid(_)) => {}
        Err(e) => panic!("re-signed claims do not verify: {e}"),
    }
}

/// Properties of a key parsed from any text: one family; HMAC only as a secret (never with a
/// public JWK); the published JWK parses back to the same public key; and a key that can sign
/// makes tokens that both it and its re-parsed public half verify (RSA signing is skipped: too
/// slow for a fuzz loop, and the RSA public half is still round-tripped).
pub fn check_key(key: &Key) {
    use jsonwebtoken::AlgorithmFamily;
    assert!(!key.algorithms.is_empty());
    let family = key.family();
    assert!(key.algorithms.iter().all(|a| a.family() == family));
    assert_eq!(family == AlgorithmFamily::Hmac, key.public_jwk.is_none());
    if family == AlgorithmFamily::Hmac {
        assert!(key.sign.is_some());
    }
    let public = key.published_jwk().map(|jwk| {
        let public = crate::jwt::keys::parse_jwk(&jwk).expect("published JWK parses back");
        assert_eq!(public.public_jwk, key.public_jwk);
        assert_eq!(public.algorithms, key.algorithms);
        assert_eq!(public.kid, key.kid);
        assert!(public.sign.is_none(), "a public JWK cannot sign");
        public
    });
    if family == AlgorithmFamily::Rsa || key.sign.is_none() {
        return;
    }
    let options = VerifyOptions::default();
    for &alg in &key.algorithms {
        let token = sign(&serde_json::json!({"sub": "fuzz"}), key, Some(alg)).expect("sign");
        let header = inspect(&token).expect("inspect");
        for verifier in std::iter::once(key).chain(public.as_ref()) {
            let verified = verify_with_key(&token, &header, verifier, &options)
                .unwrap_or_else(|e| panic!("{alg:?} token does not verify: {e}"));
            assert_eq!(verified.payload, r#"{"sub":"fuzz"}"#);
        }
    }
}

/// The token a verification target checks: the input as text when `selector`'s low bit is 0,
/// else a token `sign` makes from the input split into header and payload at 0xFF (so that
/// mutations get past the signature check). `None` for text that is not UTF-8.
pub fn token_input(
    selector: u8,
    rest: &[u8],
    sign: impl FnOnce(&[u8], &[u8]) -> String,
) -> Option<String> {
    if selector & 1 == 0 {
        return std::str::from_utf8(rest).ok().map(str::to_string);
    }
    let (header, payload) = split_ff(rest);
    Some(sign(header, payload.unwrap_or(b"{}")))
}
