//! Signing claims into a compact JWS.

use jsonwebtoken::{Algorithm, Header};
use serde_json::Value;

use super::keys::{alg_name, Key};
use crate::error::{AuthError, Result};

/// Signs `claims` (a JSON object) with `key`, using `alg` or the key's first algorithm.
/// The header carries `typ: JWT` and the key's `kid` when it has one.
pub fn sign(claims: &Value, key: &Key, alg: Option<Algorithm>) -> Result<String> {
    if !claims.is_object() {
        return Err(AuthError::InvalidArgument(
            "claims must be a JSON object".into(),
        ));
    }
    let alg = alg.unwrap_or(key.algorithms[0]);
    key.check_allows(alg)?;
    let encoding = key.sign.as_ref().ok_or_else(|| {
        AuthError::InvalidKey(format!(
            "signing with {} needs a private key; this is a public key",
            alg_name(alg)
        ))
    })?;
    let mut header = Header::new(alg);
    header.kid.clone_from(&key.kid);
    jsonwebtoken::encode(&header, claims, encoding)
        .map_err(|e| AuthError::InvalidKey(format!("signing failed: {e}")))
}
