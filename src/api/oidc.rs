//! The Rust helpers behind sql/identity_providers.sql: reading a provider's JWKS, fetching it,
//! and verifying an ID token against the provider's stored keys. The logic is in `crate::oidc`.

use pgrx::prelude::*;
use serde_json::{json, Value};

use crate::api::jsonb::JsonbText;
use crate::api::jwt::json_argument;
use crate::error::{AuthError, Result};
use crate::jwt::keys::parse_jwk;
use crate::jwt::verify::{inspect, verify_with_key, VerifyOptions};
use crate::oidc;
use crate::settings as s;
use crate::sqlstate::OrRaise;

#[pg_schema]
pub(crate) mod auth_internal {
    use super::*;

    /// The keys of a JWKS document that may verify ID tokens (kid "" for a key without one);
    /// PA012 when it holds none.
    #[pg_extern(immutable, parallel_safe, strict)]
    fn usable_provider_keys(
        document: &str,
    ) -> TableIterator<'static, (name!(kid, String), name!(jwk, JsonbText))> {
        let keys = oidc::usable_keys(document).or_raise();
        TableIterator::new(
            keys.into_iter()
                .map(|k| (k.kid, JsonbText(k.jwk.to_string()))),
        )
    }

    /// Refuses a JWKS URL that is not https (plain http only for loopback): 22023.
    #[pg_extern(immutable, parallel_safe, strict)]
    fn check_jwks_url(url: &str) {
        oidc::check_jwks_url(url).or_raise()
    }

    /// The JWKS document at `url` (PA028 when it cannot be fetched).
    #[pg_extern(volatile, strict)]
    fn fetch_jwks(url: &str) -> String {
        crate::jwks_fetch::fetch_jwks(url, &check_for_interrupts).or_raise()
    }

    /// Verifies `id_token` with one of `keys` (a JSON array of the provider's live JWKs): the
    /// algorithm comes from the key, then signature, `iss` = `issuer`, `aud` contains
    /// `client_id`, `exp`/`iat` (pg_auth.leeway), `azp` and `nonce`. Returns
    /// {subject, email, email_verified}, or NULL when no key has the token's kid (the caller
    /// asks for the provider's keys). Other failures are raised with their HTTP status behind
    /// PostgREST, as sign-in answers.
    #[pg_extern(stable)]
    fn verify_id_token(
        id_token: Option<&str>,
        keys: Option<JsonbText>,
        issuer: Option<&str>,
        client_id: Option<&str>,
        nonce: Option<&str>,
    ) -> Option<JsonbText> {
        match verify(id_token, keys, issuer, client_id, nonce) {
            Ok(identity) => Some(JsonbText(identity)),
            Err(AuthError::UnknownKid(_)) => None,
            Err(err) => crate::sqlstate::raise_answer(err, s::behind_postgrest(), None),
        }
    }
}

/// A query cancel or a shutdown request takes effect here (during a JWKS fetch).
fn check_for_interrupts() {
    pgrx::check_for_interrupts!();
}

fn verify(
    id_token: Option<&str>,
    keys: Option<JsonbText>,
    issuer: Option<&str>,
    client_id: Option<&str>,
    nonce: Option<&str>,
) -> Result<String> {
    let token = id_token.ok_or(AuthError::NullArgument("id_token"))?;
    let issuer = issuer.ok_or(AuthError::NullArgument("issuer"))?;
    let client_id = client_id.ok_or(AuthError::NullArgument("client_id"))?;
    let keys = match json_argument(keys, "keys") {
        Ok(Value::Array(keys)) => keys,
        _ => vec![],
    };
    let header = inspect(token)?;
    let key = parse_jwk(oidc::key_for(&keys, header.kid.as_deref())?)?;
    let options = VerifyOptions {
        audience: Some(vec![client_id.to_string()]),
        issuer: Some(vec![issuer.to_string()]),
        leeway: s::LEEWAY.get().max(0) as u64,
        required: vec!["exp".into(), "iat".into()],
        algorithms: None,
    };
    let claims = verify_with_key(token, &header, &key, &options)?.claims()?;
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let identity = oidc::identity(&claims, client_id, nonce, now)?;
    Ok(json!({
        "subject": identity.subject,
        "email": identity.email,
        "email_verified": identity.email_verified,
        "expires_at": identity.expires_at,
    })
    .to_string())
}
