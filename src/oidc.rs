//! Sign-in with an identity provider (OpenID Connect): which keys of a provider's JWKS may
//! verify its ID tokens, where a JWKS may be fetched from, and what an ID token must say beyond
//! its signature. Pure logic, no pgrx; fetching is in `crate::jwks_fetch`.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use serde_json::{Map, Value};

use crate::error::{AuthError, Result};
use crate::jwt::keys::{parse_jwk, truncate};

/// A provider's JWKS is read up to this size and this many keys.
pub const MAX_JWKS_BYTES: u64 = 1 << 20;
pub const MAX_PROVIDER_KEYS: usize = 100;
const MAX_KID_LEN: usize = 200;
const MAX_SUBJECT_LEN: usize = 255;

/// A key of a provider's JWKS that may verify its ID tokens, with its `kid` ("" when it has
/// none) and the JWK as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderKey {
    pub kid: String,
    pub jwk: Value,
}

/// The keys of a JWKS document that may verify ID tokens: public signing keys only. An `oct`
/// key (a shared secret published for anyone to sign with), a key with private parts, a key for
/// encryption and a key that does not parse are left out, as is a second key with the same kid.
/// A document with no usable key is an error, so a broken fetch never empties a provider's keys.
pub fn usable_keys(document: &str) -> Result<Vec<ProviderKey>> {
    let invalid = |why: &str| AuthError::InvalidKey(format!("the provider's JWKS {why}"));
    let value: Value =
        serde_json::from_str(document).map_err(|e| invalid(&format!("is not JSON: {e}")))?;
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("is not {\"keys\": [...]}"))?;
    if keys.len() > MAX_PROVIDER_KEYS {
        return Err(invalid(&format!(
            "holds {} keys, at most {MAX_PROVIDER_KEYS} are read",
            keys.len()
        )));
    }
    let mut usable: Vec<ProviderKey> = Vec::new();
    for jwk in keys {
        let Some(key) = usable_key(jwk) else { continue };
        if !usable.iter().any(|k| k.kid == key.kid) {
            usable.push(key);
        }
    }
    if usable.is_empty() {
        return Err(invalid("holds no public signing key pg_auth can use"));
    }
    Ok(usable)
}

fn usable_key(jwk: &Value) -> Option<ProviderKey> {
    let members = jwk.as_object()?;
    let for_signing = members.get("use").is_none_or(|u| u == "sig");
    let public = members.get("kty").is_some_and(|k| k != "oct")
        && !["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|m| members.contains_key(*m));
    // A key carrying a "keys" member of its own would be read as that inner set elsewhere; one
    // with \u0000 cannot be stored.
    let plain = !members.contains_key("keys") && !jwk.to_string().contains("\\u0000");
    if !for_signing || !public || !plain {
        return None;
    }
    let kid = match members.get("kid") {
        None => String::new(),
        Some(Value::String(kid)) if !kid.is_empty() && kid.len() <= MAX_KID_LEN => kid.clone(),
        Some(_) => return None,
    };
    let key = parse_jwk(jwk).ok()?;
    (key.sign.is_none() && key.public_jwk.is_some()).then(|| ProviderKey {
        kid,
        jwk: jwk.clone(),
    })
}

/// The key of `keys` (JWKs as stored) for a token with `kid`: the one with that kid, or the only
/// key when the token names none. `UnknownKid` otherwise: the provider may have rotated.
pub fn key_for<'a>(keys: &'a [Value], kid: Option<&str>) -> Result<&'a Value> {
    match kid {
        Some(kid) => keys.iter().find(|k| kid_of(k) == kid).ok_or_else(|| {
            AuthError::UnknownKid(format!(
                "kid \"{}\" is not among the provider's keys",
                truncate(kid, 64)
            ))
        }),
        None if keys.len() == 1 => Ok(&keys[0]),
        None => Err(AuthError::UnknownKid(
            "the token has no kid, and the provider has several keys".into(),
        )),
    }
}

fn kid_of(jwk: &Value) -> &str {
    jwk.get("kid").and_then(Value::as_str).unwrap_or("")
}

/// A JWKS is fetched over https; plain http only from the machine itself (a provider or test
/// server on loopback).
pub fn check_jwks_url(url: &str) -> Result<()> {
    let bad = |why: &str| {
        AuthError::InvalidArgument(format!("jwks_url \"{}\" {why}", truncate(url, 100)))
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("is not an absolute URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("must name a host (and no user or password)"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if is_loopback(authority) => Ok(()),
        "http" => Err(bad(
            "must use https (plain http only for 127.0.0.1, [::1] or localhost)",
        )),
        _ => Err(bad("must use https")),
    }
}

/// Whether the host of `authority` (host and optional port) is this machine.
pub fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "::1"
}

/// What an ID token says about who signed in.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    /// The provider vouches that the user controls `email` (`email_verified`: true or "true").
    pub email_verified: bool,
    /// `exp`, Unix seconds: the token is remembered as used until then.
    pub expires_at: i64,
}

/// An ID token may live at most this long from now: it is remembered as used until it expires.
pub const MAX_ID_TOKEN_LIFETIME: i64 = 24 * 3600;

/// Checks of an ID token beyond signature, issuer, audience and times (OpenID Connect Core
/// 3.1.3.7): `azp` is this client when present, and required with several audiences; the
/// `nonce` equals the one the application sent, and a token carrying one is refused when the
/// application gives none.
pub fn identity(
    claims: &Map<String, Value>,
    client_id: &str,
    nonce: Option<&str>,
    now: i64,
) -> Result<Identity> {
    let several_audiences = claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() > 1);
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => {}
        None if !several_audiences => {}
        _ => return Err(AuthError::WrongAudience),
    }
    match (nonce, claims.get("nonce")) {
        (None, None) => {}
        (Some(expected), Some(Value::String(got)))
            if verify_slices_are_equal(expected.as_bytes(), got.as_bytes()).is_ok() => {}
        (Some(_), None) => return Err(AuthError::MissingClaim("nonce".into())),
        _ => return Err(AuthError::InvalidClaim("nonce".into())),
    }
    let subject = match claims.get("sub") {
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= MAX_SUBJECT_LEN && !s.contains('\0') =>
        {
            s.clone()
        }
        Some(_) => return Err(AuthError::InvalidClaim("sub".into())),
        None => return Err(AuthError::MissingClaim("sub".into())),
    };
    let expires_at = match claims.get("exp").and_then(Value::as_f64) {
        Some(exp) if exp <= (now + MAX_ID_TOKEN_LIFETIME) as f64 => exp as i64,
        Some(_) => return Err(AuthError::InvalidClaim("exp".into())),
        None => return Err(AuthError::MissingClaim("exp".into())),
    };
    let email = match claims.get("email") {
        Some(Value::String(e)) if is_email(e) => Some(e.clone()),
        _ => None,
    };
    let vouched = match claims.get("email_verified") {
        Some(Value::Bool(verified)) => *verified,
        Some(Value::String(verified)) => verified == "true",
        _ => false,
    };
    Ok(Identity {
        subject,
        email_verified: vouched && email.is_some(),
        email,
        expires_at,
    })
}

/// An address `auth.users` accepts: one `@` with something around it, no space or control
/// character, 3 to 254 bytes (anything else is no email).
fn is_email(text: &str) -> bool {
    let parts: Vec<&str> = text.split('@').collect();
    (3..=254).contains(&text.len())
        && parts.len() == 2
        && parts.iter().all(|p| !p.is_empty())
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EC_JWK: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    fn ec(extra: Value) -> Value {
        let mut jwk: Value = serde_json::from_str(EC_JWK).unwrap();
        jwk.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        jwk
    }

    fn jwks(keys: Vec<Value>) -> String {
        json!({ "keys": keys }).to_string()
    }

    #[test]
    fn only_public_signing_keys_are_taken() {
        let keys = usable_keys(&jwks(vec![
            ec(json!({"kid": "a"})),
            ec(json!({"kid": "b", "use": "enc"})),
            ec(json!({"kid": "c", "d": "secret"})),
            json!({"kty": "oct", "kid": "d", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}),
            json!({"kty": "RSA", "kid": "e", "n": "broken", "e": "AQAB"}),
            ec(json!({"kid": "a"})),
            ec(json!({"kid": 7})),
            ec(json!({"kid": "nested", "keys": [ec(json!({"kid": "inner"}))]})),
            ec(json!({"kid": "nul", "x5c": ["a\u{0}b"]})),
            json!("not a key"),
        ]))
        .unwrap();
        assert_eq!(
            keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
    }

    #[test]
    fn a_document_without_usable_keys_is_an_error() {
        for doc in [
            "",
            "[]",
            "{}",
            r#"{"keys": {}}"#,
            r#"{"keys": []}"#,
            &jwks(vec![
                json!({"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}),
            ]),
            &jwks(vec![ec(json!({})); MAX_PROVIDER_KEYS + 1]),
        ] {
            assert!(
                matches!(usable_keys(doc), Err(AuthError::InvalidKey(_))),
                "{doc:.80}"
            );
        }
    }

    #[test]
    fn the_key_is_found_by_kid_or_alone() {
        let keys = vec![ec(json!({"kid": "a"})), ec(json!({"kid": "b"}))];
        assert_eq!(key_for(&keys, Some("b")).unwrap()["kid"], "b");
        assert!(matches!(
            key_for(&keys, Some("c")),
            Err(AuthError::UnknownKid(_))
        ));
        assert!(matches!(
            key_for(&keys, None),
            Err(AuthError::UnknownKid(_))
        ));
        assert!(key_for(&keys[..1], None).is_ok());
        assert!(matches!(
            key_for(&[], Some("a")),
            Err(AuthError::UnknownKid(_))
        ));
    }

    #[test]
    fn jwks_urls_are_https_or_loopback_http() {
        for ok in [
            "https://www.googleapis.com/oauth2/v3/certs",
            "HTTPS://login.example.com/keys",
            "http://127.0.0.1:8080/jwks.json",
            "http://localhost/jwks",
            "http://[::1]:9000/jwks",
        ] {
            assert!(check_jwks_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/jwks",
            "http://127.0.0.1.example.com/jwks",
            "http://localhost.evil.com/",
            "ftp://example.com/jwks",
            "file:///etc/passwd",
            "https://user:pw@example.com/jwks",
            "http://evil.com@127.0.0.1/",
            "https:///nohost",
            "example.com/jwks",
            "",
        ] {
            assert!(check_jwks_url(bad).is_err(), "{bad}");
        }
    }

    const NOW: i64 = 1_700_000_000;

    /// The claims of `value`, with an `exp` an hour ahead unless it has one.
    fn claims(value: Value) -> Map<String, Value> {
        let mut map = value.as_object().unwrap().clone();
        map.entry("exp").or_insert(json!(NOW + 3600));
        map
    }

    #[test]
    fn nonce_azp_and_subject_are_checked() {
        let base = json!({"sub": "123", "aud": "client", "email": "a@b.c", "email_verified": true});
        let id = identity(&claims(base.clone()), "client", None, NOW).unwrap();
        assert_eq!(id.subject, "123");
        assert!(id.email_verified);
        let with_nonce = json!({"sub": "1", "aud": "client", "nonce": "n-1"});
        assert!(identity(&claims(with_nonce.clone()), "client", Some("n-1"), NOW).is_ok());
        for (value, nonce) in [
            (with_nonce.clone(), Some("n-2")),
            (with_nonce.clone(), None),
            (json!({"sub": "1", "aud": "client"}), Some("n-1")),
            (json!({"sub": "1", "aud": "client", "nonce": 1}), Some("1")),
        ] {
            assert!(identity(&claims(value), "client", nonce, NOW).is_err());
        }
        let several = json!({"sub": "1", "aud": ["client", "other"]});
        assert_eq!(
            identity(&claims(several), "client", None, NOW),
            Err(AuthError::WrongAudience)
        );
        let azp_other = json!({"sub": "1", "aud": "client", "azp": "other"});
        assert_eq!(
            identity(&claims(azp_other), "client", None, NOW),
            Err(AuthError::WrongAudience)
        );
        for bad_sub in [
            json!({}),
            json!({"sub": ""}),
            json!({"sub": 5}),
            json!({"sub": "x".repeat(256)}),
            json!({"sub": "a\u{0}b"}),
        ] {
            assert!(identity(&claims(bad_sub), "client", None, NOW).is_err());
        }
    }

    #[test]
    fn tokens_living_over_a_day_are_refused() {
        let long = json!({"sub": "1", "exp": NOW + MAX_ID_TOKEN_LIFETIME + 1});
        assert_eq!(
            identity(&claims(long), "c", None, NOW),
            Err(AuthError::InvalidClaim("exp".into()))
        );
        let ok = json!({"sub": "1", "exp": NOW + MAX_ID_TOKEN_LIFETIME});
        let id = identity(&claims(ok), "c", None, NOW).unwrap();
        assert_eq!(id.expires_at, NOW + MAX_ID_TOKEN_LIFETIME);
    }

    #[test]
    fn email_verified_needs_true_and_an_email() {
        let verified = |v: Value| identity(&claims(v), "c", None, NOW).unwrap().email_verified;
        assert!(verified(
            json!({"sub": "1", "email": "a@b.c", "email_verified": "true"})
        ));
        assert!(!verified(
            json!({"sub": "1", "email": "a@b.c", "email_verified": "yes"})
        ));
        assert!(!verified(
            json!({"sub": "1", "email": "a@b.c", "email_verified": 1})
        ));
        assert!(!verified(json!({"sub": "1", "email": "a@b.c"})));
        assert!(!verified(json!({"sub": "1", "email_verified": true})));
        assert!(!verified(
            json!({"sub": "1", "email": "no-at-sign", "email_verified": true})
        ));
        for bad in ["a@", "@b", "a@b@c", "a b@c", "a\u{0}@b.c", "a@b\n"] {
            let claims = json!({"sub": "1", "email": bad, "email_verified": true});
            assert!(!verified(claims), "{bad:?}");
        }
    }
}
