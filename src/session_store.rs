//! Looking sessions up for `auth.authenticate`: one index probe (on the token's SHA-256, or on
//! the session id of a `sid`-bound JWT), read as the owner of `auth.sessions`, nothing written.
//!
//! Which session the current transaction holds is backend-local state that only
//! `auth.authenticate` sets, from the credential it verified. `auth.logout()`, `auth.refresh()`
//! and `auth.change_password()` act on it, never on `request.jwt.claims`, which any SQL caller
//! can set with `set_config`.

use std::cell::RefCell;

use pgrx::prelude::*;
use pgrx::{register_xact_callback, PgBuiltInOids, PgOid, PgXactCallbackEvent};
use serde_json::{json, Map, Value};

use crate::error::{AuthError, Result};
use crate::identity::canonical_uuid;
use crate::privileged::{read_as_owner, select_planned};
use crate::session::hash_token;
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

/// Holds `held` for the rest of the transaction: called only once authentication fully succeeded.
pub fn hold(held: Held) {
    if HELD.replace(Some(held)).is_none() {
        register_xact_callback(PgXactCallbackEvent::Commit, forget);
        register_xact_callback(PgXactCallbackEvent::Abort, forget);
        // PREPARE TRANSACTION ends the transaction on this connection without commit or abort.
        register_xact_callback(PgXactCallbackEvent::Prepare, forget);
    }
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

/// The live session (not revoked, not expired, user not disabled) and its user, found by one
/// more condition on the token hash `$1`.
macro_rules! session_query {
    ($token_condition:literal) => {
        concat!(
            "SELECT u.id::pg_catalog.text, u.role, u.email, s.id::pg_catalog.text, \
                    pg_catalog.date_part('epoch', least(s.expires_at, s.idle_expires_at))::pg_catalog.int8 \
             FROM auth.sessions s JOIN auth.users u ON u.id OPERATOR(pg_catalog.=) s.user_id \
             WHERE s.revoked_at IS NULL \
               AND s.expires_at OPERATOR(pg_catalog.>) pg_catalog.now() \
               AND s.idle_expires_at OPERATOR(pg_catalog.>) pg_catalog.now() AND NOT u.disabled \
               AND ",
            $token_condition
        )
    };
}
const CURRENT_TOKEN: &str = session_query!("s.token_hash OPERATOR(pg_catalog.=) $1");
const REPLACED_TOKEN: &str = session_query!(
    "s.previous_token_hash OPERATOR(pg_catalog.=) $1 \
     AND s.previous_valid_until OPERATOR(pg_catalog.>) pg_catalog.now()"
);

type SessionRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// The row of `query` (`CURRENT_TOKEN` or `REPLACED_TOKEN`) for the token hash `hash`.
fn session_row(hash: &[u8], query: &'static str) -> Result<Option<SessionRow>> {
    read_as_owner("auth.sessions", |client| {
        let mut rows = select_planned(
            client,
            query,
            &[PgOid::BuiltIn(PgBuiltInOids::BYTEAOID)],
            &[hash.to_vec().into()],
        )?;
        match rows.next() {
            None => Ok(None),
            Some(r) => Ok(Some((
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
                r.get::<String>(4)?,
                r.get::<i64>(5)?,
            ))),
        }
    })
}

/// A session token's claims (`sub`, `role`, `email`, `sid`, `exp`) and the user's role, or
/// `SessionInvalid`. The role comes from the user row, whatever `pg_auth.role_claim` says.
pub fn claims_for_token(token: &str) -> Result<(Map<String, Value>, String, Held)> {
    let hash = hash_token(token);
    // The current token first (one unique-index probe); only a miss looks for a token that a
    // refresh replaced moments ago.
    let row = match session_row(&hash, CURRENT_TOKEN)? {
        Some(row) => Some((row, true)),
        None => session_row(&hash, REPLACED_TOKEN)?.map(|row| (row, false)),
    };
    let Some(((Some(sub), Some(role), email, Some(sid), exp), current)) = row else {
        return Err(AuthError::SessionInvalid);
    };
    let (Some(session_id), Some(user_id)) = (canonical_uuid(&sid), canonical_uuid(&sub)) else {
        return Err(AuthError::SessionInvalid);
    };
    // The token a refresh just replaced still signs in during the grace period (requests
    // already in flight), but it can never be rotated again.
    let held = Held {
        session_id,
        user_id,
        token_hash: current.then_some(hash),
    };
    let claims = json!({ "sub": sub, "role": role, "email": email, "sid": sid, "exp": exp });
    Ok((claims.as_object().cloned().unwrap_or_default(), role, held))
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
    let user = read_as_owner("auth.sessions", |client| {
        let mut rows = select_planned(
            client,
            "SELECT s.user_id::pg_catalog.text FROM auth.sessions s \
             JOIN auth.users u ON u.id OPERATOR(pg_catalog.=) s.user_id \
             WHERE s.id OPERATOR(pg_catalog.=) $1::pg_catalog.uuid AND s.revoked_at IS NULL \
               AND s.expires_at OPERATOR(pg_catalog.>) pg_catalog.now() \
               AND s.idle_expires_at OPERATOR(pg_catalog.>) pg_catalog.now() AND NOT u.disabled",
            &[PgOid::BuiltIn(PgBuiltInOids::TEXTOID)],
            &[sid.into()],
        )?;
        match rows.next() {
            None => Ok(None),
            Some(r) => r.get::<String>(1),
        }
    })?;
    let user_id = user
        .as_deref()
        .and_then(canonical_uuid)
        .ok_or(AuthError::SessionInvalid)?;
    Ok(Some(Held {
        session_id,
        user_id,
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
