//! API keys in `auth.authenticate`: one index probe on `auth.api_keys` (by the key's SHA-256),
//! and for a key made for a user, one on `auth.users`; nothing written, so READ ONLY
//! transactions and replicas work and a revocation counts from the next statement.

use serde_json::{Map, Value};

use crate::error::{AuthError, Result};
use crate::identity::set_at_path;
use crate::probe::{self, Lookup};
use crate::session::{hash_token, unix_seconds};
use crate::session_store::enabled_user_by_id;
use crate::settings::{self as s, text};

static BY_HASH: Lookup = Lookup {
    table: "auth.api_keys",
    key: "key_hash",
    columns: &[
        "id",
        "name",
        "role",
        "user_id",
        "claims",
        "expires_at",
        "revoked_at",
    ],
    optional: &[],
};

/// Claims a key's own `claims` may not set: pg_auth sets them. auth.create_api_key refuses them
/// with a clear error (it reads this list); here they are dropped from a row edited by hand.
const RESERVED_CLAIMS: &[&str] = &[
    "sub", "role", "email", "key_id", "key_name", "sid", "aal", "jti", "exp", "nbf", "iat", "iss",
    "aud",
];

struct KeyRow {
    id: Option<pgrx::Uuid>,
    name: Option<String>,
    role: Option<String>,
    user_id: Option<pgrx::Uuid>,
    /// The `claims` column as JSON text.
    claims: Option<String>,
    expires_at: Option<i64>,
    revoked: bool,
}

/// An API key's claims and the role it acts as, or `ApiKeyInvalid`. A key made for a role
/// publishes that role, `key_id`, `key_name` and its extra claims; one made for a user acts as
/// that user (`sub`, `email`, the user's current role) and ends when the user is disabled.
pub fn claims_for_key(key: &str) -> Result<(Map<String, Value>, String)> {
    let hash = hash_token(key);
    let row = probe::find(&BY_HASH, hash.as_slice(), |row| KeyRow {
        id: row.uuid("id"),
        name: row.text("name"),
        role: row.text("role"),
        user_id: row.uuid("user_id"),
        claims: row.json_text("claims"),
        expires_at: row.timestamp("expires_at"),
        revoked: !row.is_null("revoked_at"),
    })?
    .ok_or(AuthError::ApiKeyInvalid)?;
    let now = crate::session_store::transaction_start();
    let live = !row.revoked && row.expires_at.is_none_or(|at| at > now);
    let Some(id) = row.id.filter(|_| live) else {
        return Err(AuthError::ApiKeyInvalid);
    };
    // Claims that serde_json cannot read (a number beyond float8, written into the row by hand)
    // are a fault of the row, said as such; create_api_key refuses them.
    let mut claims = match row.claims.as_deref().map(serde_json::from_str::<Value>) {
        None => Map::new(),
        Some(Ok(Value::Object(extra))) => extra,
        Some(_) => {
            return Err(AuthError::InvalidArgument(format!(
                "the claims of API key {} cannot be published; set them again with JSON numbers \
                 within float8 and nesting under 128 levels",
                uuid_text(id)
            )))
        }
    };
    claims.retain(|name, _| !RESERVED_CLAIMS.contains(&name.as_str()));
    let role = match (row.user_id, row.role) {
        (Some(user_id), _) => {
            let (role, email) = enabled_user_by_id(user_id)?.ok_or(AuthError::ApiKeyInvalid)?;
            claims.insert("sub".into(), uuid_text(user_id).into());
            claims.insert("email".into(), email.into());
            role
        }
        (None, Some(role)) => role,
        (None, None) => return Err(AuthError::ApiKeyInvalid),
    };
    claims.insert("role".into(), role.clone().into());
    // A dotted pg_auth.role_claim (app_metadata.role) shows the same role there.
    let role_path = text(&s::ROLE_CLAIM).unwrap_or_else(|| "role".into());
    set_at_path(&mut claims, &role_path, role.clone().into());
    claims.insert("key_id".into(), uuid_text(id).into());
    claims.insert("key_name".into(), row.name.into());
    if let Some(expires_at) = row.expires_at {
        claims.insert("exp".into(), unix_seconds(expires_at).into());
    }
    Ok((claims, role))
}

fn uuid_text(id: pgrx::Uuid) -> String {
    uuid::Uuid::from_bytes(*id.as_bytes()).to_string()
}

#[pgrx::pg_schema]
mod auth_internal {
    /// The claims an API key's own `claims` may not set, for auth.create_api_key.
    #[pgrx::pg_extern(immutable, parallel_safe)]
    fn api_key_reserved_claims() -> Vec<String> {
        super::RESERVED_CLAIMS
            .iter()
            .map(|c| c.to_string())
            .collect()
    }
}
