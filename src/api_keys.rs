//! API keys in `auth.authenticate`: one index probe on `auth.api_keys` (by the key's SHA-256),
//! and for a key made for a user, one on `auth.users`; nothing written, so READ ONLY
//! transactions and replicas work and a revocation counts from the next statement.

use pgrx::JsonB;
use serde_json::{Map, Value};

use crate::error::{AuthError, Result};
use crate::probe::{self, Lookup};
use crate::session::{hash_token, unix_seconds};
use crate::session_store::enabled_user_by_id;

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

/// Claims a key's own `claims` may not set: pg_auth sets them (auth.create_api_key refuses them
/// too, with a clear error; this holds for a row edited by hand).
const RESERVED_CLAIMS: &[&str] = &[
    "sub", "role", "email", "key_id", "key_name", "sid", "jti", "exp", "nbf", "iat", "iss", "aud",
];

struct KeyRow {
    id: Option<pgrx::Uuid>,
    name: Option<String>,
    role: Option<String>,
    user_id: Option<pgrx::Uuid>,
    claims: Option<Value>,
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
        claims: row.jsonb("claims").map(|JsonB(v)| v),
        expires_at: row.timestamp("expires_at"),
        revoked: !row.is_null("revoked_at"),
    })?
    .ok_or(AuthError::ApiKeyInvalid)?;
    let now = crate::session_store::transaction_start();
    let live = !row.revoked && row.expires_at.is_none_or(|at| at > now);
    let Some(id) = row.id.filter(|_| live) else {
        return Err(AuthError::ApiKeyInvalid);
    };
    let mut claims = match row.claims {
        Some(Value::Object(extra)) => extra,
        _ => Map::new(),
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
