//! Looking sessions up for `auth.authenticate`: one index probe on `auth.sessions` (on the
//! token's SHA-256, or on the session id of a `sid`-bound JWT) and one on `auth.users`, nothing
//! written (`probe`).
//!
//! Which session the current transaction holds is backend-local state that only
//! `auth.authenticate` sets, from the credential it verified. `auth.logout()`, `auth.refresh()`
//! and `auth.change_password()` act on it, never on `request.jwt.claims`, which any SQL caller
//! can set with `set_config`.

use std::cell::RefCell;

use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::{Map, Value};

use crate::error::{AuthError, Result};
use crate::identity::canonical_uuid;
use crate::probe::{self, Lookup, Row};
use crate::session::{hash_token, SessionTimes};
use uuid::Uuid;

/// The session `auth.authenticate` verified in this transaction.
#[derive(Clone)]
pub struct Held {
    session_id: Uuid,
    user_id: Uuid,
    /// SHA-256 of the session token presented; `None` for a `sid`-bound JWT, which may end its
    /// session but never rotate it into a new token.
    token_hash: Option<Vec<u8>>,
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Forgets the held session: at the start of every authentication and at the transaction's end.
pub fn forget() {
    HELD.set(None);
}

/// Holds `held` for the rest of the transaction (`forget` runs at its end): called only once
/// authentication fully succeeded.
pub fn hold(held: Held) {
    HELD.set(Some(held));
}

/// A uuid as pgrx hands it to PostgreSQL.
pub(crate) fn pg_uuid(u: Uuid) -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(*u.as_bytes())
}

/// The session and user `auth.authenticate` verified in this transaction (no row when none),
/// and the hash of the session token presented (NULL for a `sid`-bound JWT).
#[pg_extern(volatile)]
pub(crate) fn verified_session() -> TableIterator<
    'static,
    (
        name!(session_id, pgrx::Uuid),
        name!(user_id, pgrx::Uuid),
        name!(token_hash, Option<Vec<u8>>),
    ),
> {
    let held = HELD.with_borrow(|h| h.clone());
    TableIterator::new(held.map(|h| (pg_uuid(h.session_id), pg_uuid(h.user_id), h.token_hash)))
}

const SESSION_COLUMNS: &[&str] = &[
    "id",
    "user_id",
    "revoked_at",
    "expires_at",
    "idle_expires_at",
];
/// Columns later releases added (the refresh grace period in 0.2.0, the copy of the user's
/// values in 0.3.0, the assurance level in 0.4.0): read as NULL until ALTER EXTENSION pg_auth
/// UPDATE adds them.
const LATER_COLUMNS: &[&str] = &[
    "previous_valid_until",
    "user_role",
    "user_email",
    "user_disabled",
    "aal",
];
static BY_TOKEN: Lookup = Lookup {
    table: "auth.sessions",
    key: "token_hash",
    columns: SESSION_COLUMNS,
    optional: LATER_COLUMNS,
};
static BY_REPLACED_TOKEN: Lookup = Lookup {
    table: "auth.sessions",
    key: "previous_token_hash",
    columns: SESSION_COLUMNS,
    optional: LATER_COLUMNS,
};
static BY_ID: Lookup = Lookup {
    table: "auth.sessions",
    key: "id",
    columns: SESSION_COLUMNS,
    optional: LATER_COLUMNS,
};
static USER_BY_ID: Lookup = Lookup {
    table: "auth.users",
    key: "id",
    columns: &["role", "email", "disabled"],
    optional: &[],
};

/// A session row as the request path reads it.
struct SessionRow {
    id: Option<pgrx::Uuid>,
    user_id: Option<pgrx::Uuid>,
    times: SessionTimes,
    /// The user's (disabled, role, email) as copied into the row; `None` when not copied.
    user: Option<(bool, String, Option<String>)>,
    /// aal1 or aal2; aal1 for a database not yet updated to 0.4.0.
    aal: String,
}

fn session_row(row: &Row) -> SessionRow {
    let user = match (row.bool("user_disabled"), row.text("user_role")) {
        (Some(disabled), Some(role)) => Some((disabled, role, row.text("user_email"))),
        _ => None,
    };
    SessionRow {
        id: row.uuid("id"),
        user_id: row.uuid("user_id"),
        user,
        aal: row.text("aal").unwrap_or_else(|| "aal1".into()),
        times: SessionTimes {
            revoked: !row.is_null("revoked_at"),
            expires_at: row.timestamp("expires_at").unwrap_or(i64::MIN),
            idle_expires_at: row.timestamp("idle_expires_at").unwrap_or(i64::MIN),
            replaced_valid_until: row.timestamp("previous_valid_until"),
        },
    }
}

/// The live session of `lookup` for `key`, if any.
fn live_session(
    lookup: &'static Lookup,
    key: impl IntoDatum,
    now: i64,
) -> Result<Option<SessionRow>> {
    let row = probe::find(lookup, key, session_row)?;
    Ok(row.filter(|r| r.times.live_at(now)))
}

/// The user of a live session: role and email, unless the user is disabled. From the copy in
/// the session row; from `auth.users` when there is none (a database not yet updated to 0.3.0,
/// a row written with triggers off).
fn enabled_user(session: &SessionRow) -> Result<Option<(String, Option<String>)>> {
    match (&session.user, session.user_id) {
        (Some((disabled, role, email)), _) => {
            Ok((!disabled).then(|| (role.clone(), email.clone())))
        }
        (None, Some(user_id)) => enabled_user_by_id(user_id),
        (None, None) => Ok(None),
    }
}

/// Role and email of the user `user_id` from `auth.users`, unless the user is disabled or gone.
pub fn enabled_user_by_id(user_id: pgrx::Uuid) -> Result<Option<(String, Option<String>)>> {
    let user = probe::find(&USER_BY_ID, user_id, |row| {
        match (row.bool("disabled"), row.text("role")) {
            (Some(false), Some(role)) => Some((role, row.text("email"))),
            _ => None,
        }
    })?;
    Ok(user.flatten())
}

pub fn transaction_start() -> i64 {
    unsafe { pg_sys::GetCurrentTransactionStartTimestamp() }
}

/// A session token's claims (`sub`, `role`, `email`, `sid`, `aal`, `exp`) and the user's role, or
/// `SessionInvalid`. The role comes from the user row, whatever `pg_auth.role_claim` says.
pub fn claims_for_token(token: &str) -> Result<(Map<String, Value>, String, Held)> {
    let hash = hash_token(token);
    let now = transaction_start();
    // The current token first (one unique-index probe); only a miss looks for a token that a
    // refresh replaced moments ago.
    let (session, current) = match live_session(&BY_TOKEN, hash.as_slice(), now)? {
        Some(session) => (session, true),
        None => match live_session(&BY_REPLACED_TOKEN, hash.as_slice(), now)? {
            Some(session) if session.times.replaced_token_valid_at(now) => (session, false),
            _ => return Err(AuthError::SessionInvalid),
        },
    };
    let (Some(sid), Some(sub)) = (session.id, session.user_id) else {
        return Err(AuthError::SessionInvalid);
    };
    let (role, email) = enabled_user(&session)?.ok_or(AuthError::SessionInvalid)?;
    // The token a refresh just replaced still signs in during the grace period (requests
    // already in flight), but it can never be rotated again.
    let held = Held {
        session_id: Uuid::from_bytes(*sid.as_bytes()),
        user_id: Uuid::from_bytes(*sub.as_bytes()),
        token_hash: current.then_some(hash),
    };
    let mut claims = Map::new();
    claims.insert("sub".into(), held.user_id.to_string().into());
    claims.insert("role".into(), role.clone().into());
    claims.insert("email".into(), email.into());
    claims.insert("sid".into(), held.session_id.to_string().into());
    claims.insert("aal".into(), session.aal.into());
    claims.insert("exp".into(), session.times.claims_exp().into());
    Ok((claims, role, held))
}

/// A JWT this database issued carrying `sid` is only good while that session lives (logout,
/// revocation, absolute and idle expiry end it at once). Tokens of identity providers carry
/// their own `sid`, which is none of ours: it is left alone.
pub fn check_sid(claims: &Map<String, Value>, issued_here: bool) -> Result<Option<Held>> {
    let Some(sid) = claims.get("sid").filter(|_| issued_here) else {
        return Ok(None);
    };
    let sid = sid
        .as_str()
        .ok_or_else(|| AuthError::InvalidClaim("sid".into()))?;
    let session_id = canonical_uuid(sid).ok_or_else(|| AuthError::InvalidClaim("sid".into()))?;
    let session = live_session(&BY_ID, pg_uuid(session_id), transaction_start())?
        .ok_or(AuthError::SessionInvalid)?;
    let user_id = match session.user_id {
        Some(user_id) if enabled_user(&session)?.is_some() => user_id,
        _ => return Err(AuthError::SessionInvalid),
    };
    Ok(Some(Held {
        session_id,
        user_id: Uuid::from_bytes(*user_id.as_bytes()),
        token_hash: None,
    }))
}

/// Kept for the SQL of 0.1.0 until `ALTER EXTENSION pg_auth UPDATE`; internal.
#[pg_schema]
mod auth_internal {
    use super::*;

    /// SHA-256 of the session token this transaction authenticated with (NULL for none, and for a
    /// JWT). Kept for the 0.1.0 SQL; `auth.verified_session()` says more.
    #[pg_extern(volatile)]
    pub(crate) fn session_token_hash() -> Option<Vec<u8>> {
        HELD.with_borrow(|h| h.as_ref().and_then(|h| h.token_hash.clone()))
    }
}
