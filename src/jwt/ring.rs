//! The key ring as data: which key signs now, which keys may verify a token, what `auth.jwks()`
//! publishes. Loading and caching the rows of `auth.keys` is the pgrx side's job (`crate::keyring`).

use jsonwebtoken::Algorithm;
use serde_json::{json, Map, Value};

use super::keys::{
    alg_name, parse_algorithm, parse_jwk, parse_keys_as, parse_single_key_as, truncate, Key,
};
use super::sign::sign;
use super::verify::{inspect, verify_with_key, Verified, VerifyOptions};
use crate::error::{AuthError, Result};

/// One row of `auth.keys`, parsed. Times are Unix seconds.
pub struct RingKey {
    pub key: Key,
    pub active_from: f64,
    pub retire_after: Option<f64>,
}

impl RingKey {
    /// Builds a ring key from the stored columns: private key text when we hold it, else the
    /// public JWK. The stored algorithm is the only one the key will ever accept.
    pub fn from_row(
        kid: &str,
        algorithm: &str,
        secret: Option<&str>,
        public_jwk: Option<&str>,
        active_from: f64,
        retire_after: Option<f64>,
    ) -> Result<RingKey> {
        let alg = parse_algorithm(algorithm)?;
        let key = match (secret, public_jwk) {
            (Some(text), _) => parse_single_key_as(text, Some(alg))?,
            (None, Some(jwk)) => {
                let value: Value = serde_json::from_str(jwk)
                    .map_err(|e| AuthError::InvalidKey(format!("stored JWK is not JSON: {e}")))?;
                parse_jwk(&value)?
            }
            (None, None) => {
                return Err(AuthError::InvalidKey(
                    "row has neither secret nor public_jwk".into(),
                ))
            }
        };
        let key = key.restrict_to(alg)?;
        Ok(RingKey {
            key: key.with_kid(Some(kid.to_string())),
            active_from,
            retire_after,
        })
    }

    fn kid(&self) -> &str {
        self.key.kid.as_deref().unwrap_or_default()
    }

    fn alg(&self) -> Algorithm {
        self.key.algorithms[0]
    }

    fn retired(&self, now: f64) -> bool {
        self.retire_after.is_some_and(|t| t <= now)
    }

    fn can_sign(&self, now: f64) -> bool {
        self.key.sign.is_some() && self.active_from <= now && !self.retired(now)
    }
}

#[derive(Default)]
pub struct KeyRing {
    keys: Vec<RingKey>,
}

impl KeyRing {
    /// Newest `active_from` first, so the first key that can sign is the newest active one.
    /// The sort is stable: for equal times the given order stands (the loader lists the most
    /// recently created key first).
    pub fn new(mut keys: Vec<RingKey>) -> KeyRing {
        keys.sort_by(|a, b| b.active_from.total_cmp(&a.active_from));
        KeyRing { keys }
    }

    /// Signs with the newest key that is active and not retired; the header names its `kid`.
    pub fn sign(&self, claims: &Value, now: f64) -> Result<String> {
        let key = self
            .keys
            .iter()
            .find(|k| k.can_sign(now))
            .ok_or(AuthError::NoSigningKey)?;
        sign(claims, &key.key, None)
    }

    /// Verifies against the ring: the key named by `kid`, or without a `kid` every unretired key
    /// of the header's algorithm. A key published ahead of its `active_from` already verifies,
    /// so tokens signed elsewhere with a pre-announced key are accepted.
    pub fn verify(&self, token: &str, options: &VerifyOptions, now: f64) -> Result<Verified> {
        let header = inspect(token)?;
        let usable = |k: &&RingKey| !k.retired(now);
        if let Some(kid) = &header.kid {
            let key = self
                .keys
                .iter()
                .filter(usable)
                .find(|k| k.kid() == kid)
                .ok_or_else(|| {
                    AuthError::UnknownKid(format!(
                        "kid \"{}\" is not in the key ring or is retired",
                        truncate(kid, 64)
                    ))
                })?;
            return verify_with_key(token, &header, &key.key, options);
        }
        let mut last = AuthError::UnknownKid(format!(
            "token has no kid and the key ring has no unretired {} key",
            alg_name(header.alg)
        ));
        for key in self
            .keys
            .iter()
            .filter(usable)
            .filter(|k| k.alg() == header.alg)
        {
            match verify_with_key(token, &header, &key.key, options) {
                Err(AuthError::BadSignature) => last = AuthError::BadSignature,
                other => return other,
            }
        }
        Err(last)
    }

    /// The public keys that verify now or soon (not retired): the value for PostgREST's
    /// `jwt-secret`. HMAC secrets are never published.
    pub fn jwks(&self, now: f64) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter(|k| !k.retired(now))
            .filter_map(|k| k.key.published_jwk())
            .collect();
        json!({ "keys": keys })
    }
}

/// A key as `auth.keys` stores it: private text only when it can sign, the public half as a JWK.
#[derive(Debug, PartialEq)]
pub struct StoredKey {
    pub kid: String,
    pub algorithm: &'static str,
    pub secret: Option<String>,
    pub public_jwk: Option<Value>,
}

/// Reads key text for `auth.add_key` / `auth.add_jwks`: one row per key, with its `kid` (given,
/// from the JWK, or the RFC 7638 thumbprint) and one algorithm (given, from the JWK, or the
/// family's usual one).
pub fn describe_keys(
    text: &str,
    kid: Option<&str>,
    algorithm: Option<&str>,
) -> Result<Vec<StoredKey>> {
    let algorithm = algorithm.map(parse_algorithm).transpose()?;
    let keys = parse_keys_as(text, algorithm)?;
    let is_jwks = serde_json::from_str::<Value>(text.trim_start_matches('\u{feff}').trim())
        .is_ok_and(|v| v.get("keys").is_some());
    if kid.is_some() && is_jwks {
        return Err(AuthError::InvalidArgument(
            "a kid can only be given for a single key, not a JWKS".into(),
        ));
    }
    keys.into_iter()
        .map(|key| {
            let alg = algorithm.unwrap_or(key.algorithms[0]);
            let key = key.restrict_to(alg)?;
            let kid = match kid.map(str::to_string).or_else(|| key.kid.clone()) {
                Some(k) => check_kid(k)?,
                None => thumbprint(&key),
            };
            // The private text is kept whole (a PEM, a secret, an `oct` JWK); from a JWKS only
            // public keys are taken, since its entries have no text of their own.
            let secret = match (&key.sign, is_jwks) {
                (None, _) => None,
                (Some(_), false) => Some(text.to_string()),
                (Some(_), true) => {
                    return Err(AuthError::InvalidKey(
                        "a JWKS may only hold public keys; add HMAC secrets one by one with auth.add_key".into(),
                    ))
                }
            };
            Ok(StoredKey { kid, algorithm: alg_name(alg), secret, public_jwk: key.public_jwk.map(Value::Object) })
        })
        .collect()
}

fn check_kid(kid: String) -> Result<String> {
    if kid.is_empty() || kid.len() > 200 || kid.chars().any(char::is_control) {
        return Err(AuthError::InvalidArgument(
            "kid must be 1 to 200 printable characters".into(),
        ));
    }
    Ok(kid)
}

/// RFC 7638 thumbprint of the public JWK; HMAC keys have none to publish and get a random kid.
fn thumbprint(key: &Key) -> String {
    use base64::Engine;
    use sha2::Digest;
    let Some(jwk) = &key.public_jwk else {
        return super::keygen::random_token(12);
    };
    let required: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => &["e", "kty", "n"],
        Some("EC") => &["crv", "kty", "x", "y"],
        _ => &["crv", "kty", "x"],
    };
    let canonical: Map<String, Value> = required
        .iter()
        .filter_map(|m| jwk.get(*m).map(|v| (m.to_string(), v.clone())))
        .collect();
    let digest = sha2::Sha256::digest(Value::Object(canonical).to_string().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::keygen::generate_key_text;

    fn ring_key(kid: &str, alg: Algorithm, active_from: f64, retire_after: Option<f64>) -> RingKey {
        let text = generate_key_text(alg).unwrap();
        RingKey::from_row(
            kid,
            alg_name(alg),
            Some(&text),
            None,
            active_from,
            retire_after,
        )
        .unwrap()
    }

    fn kid_of(token: &str) -> Option<String> {
        inspect(token).unwrap().kid
    }

    #[test]
    fn newest_active_key_signs_and_future_keys_wait() {
        let ring = KeyRing::new(vec![
            ring_key("old", Algorithm::HS256, 100.0, None),
            ring_key("new", Algorithm::ES256, 200.0, None),
            ring_key("next", Algorithm::EdDSA, 400.0, None),
        ]);
        let token = ring.sign(&json!({"sub": "x"}), 300.0).unwrap();
        assert_eq!(kid_of(&token).as_deref(), Some("new"));
        // `next` is published already, so a token it signs verifies before its active_from.
        assert_eq!(ring.jwks(300.0)["keys"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn retired_keys_neither_sign_nor_verify() {
        let ring = KeyRing::new(vec![ring_key("k1", Algorithm::HS256, 0.0, Some(500.0))]);
        let token = ring.sign(&json!({}), 100.0).unwrap();
        assert!(ring
            .verify(&token, &VerifyOptions::default(), 100.0)
            .is_ok());
        assert!(matches!(
            ring.verify(&token, &VerifyOptions::default(), 600.0),
            Err(AuthError::UnknownKid(_))
        ));
        assert_eq!(
            ring.sign(&json!({}), 600.0).err(),
            Some(AuthError::NoSigningKey)
        );
    }

    #[test]
    fn ring_key_accepts_only_its_stored_algorithm() {
        let ring = KeyRing::new(vec![ring_key("h", Algorithm::HS256, 0.0, None)]);
        let secret_text = generate_key_text(Algorithm::HS256).unwrap();
        let other =
            crate::jwt::keys::parse_single_key_as(&secret_text, Some(Algorithm::HS256)).unwrap();
        let token = sign(
            &json!({}),
            &other.with_kid(Some("h".into())),
            Some(Algorithm::HS512),
        )
        .unwrap();
        assert!(matches!(
            ring.verify(&token, &VerifyOptions::default(), 1.0),
            Err(AuthError::AlgorithmNotAllowed(_))
        ));
    }

    #[test]
    fn token_without_kid_tries_keys_of_its_algorithm() {
        let a = ring_key("a", Algorithm::ES256, 0.0, None);
        let b = ring_key("b", Algorithm::ES256, 1.0, None);
        let token = sign(&json!({"n": 1}), &a.key.clone().with_kid(None), None).unwrap();
        let ring = KeyRing::new(vec![a, b]);
        assert_eq!(
            ring.verify(&token, &VerifyOptions::default(), 5.0)
                .unwrap()
                .claims()
                .unwrap()["n"],
            1
        );
        let stranger = ring_key("c", Algorithm::ES256, 0.0, None);
        let token = sign(&json!({}), &stranger.key.with_kid(None), None).unwrap();
        assert_eq!(
            ring.verify(&token, &VerifyOptions::default(), 5.0).err(),
            Some(AuthError::BadSignature)
        );
    }

    #[test]
    fn unknown_kid_is_its_own_error() {
        let ring = KeyRing::new(vec![ring_key("a", Algorithm::HS256, 0.0, None)]);
        let stranger = ring_key("zz", Algorithm::HS256, 0.0, None);
        let token = sign(&json!({}), &stranger.key, None).unwrap();
        assert!(matches!(
            ring.verify(&token, &VerifyOptions::default(), 5.0),
            Err(AuthError::UnknownKid(_))
        ));
    }
}
