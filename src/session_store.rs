//! Looking sessions up for `auth.authenticate`: one index probe on the token's SHA-256, read
//! as the owner of `auth.sessions`, nothing written.

use std::cell::RefCell;

use pgrx::prelude::*;
use pgrx::{register_xact_callback, PgBuiltInOids, PgOid, PgXactCallbackEvent};
use serde_json::{json, Map, Value};

use crate::error::{AuthError, Result};
use crate::privileged::{read_as_owner, select_planned};
use crate::session::hash_token;

thread_local! {
    /// SHA-256 of the session token this transaction authenticated with; cleared at its end.
    static PRESENTED: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

fn remember_presented(hash: Vec<u8>) {
    if PRESENTED.replace(Some(hash)).is_none() {
        let forget = || drop(PRESENTED.take());
        register_xact_callback(PgXactCallbackEvent::Commit, forget);
        register_xact_callback(PgXactCallbackEvent::Abort, forget);
    }
}

/// The SHA-256 of the session token the current transaction authenticated with (NULL when it
/// used none). `auth.refresh()` rotates only the token that was presented, so of two racing
/// refreshes with the same cookie the second finds it gone instead of killing the first's.
#[pg_extern(volatile)]
pub(crate) fn session_token_hash() -> Option<Vec<u8>> {
    PRESENTED.with_borrow(|p| p.clone())
}

/// The claims of a live session (`sub`, `role`, `email`, `sid`), or `SessionInvalid`.
pub fn claims_for_token(token: &str) -> Result<Map<String, Value>> {
    let hash = hash_token(token);
    let row = read_as_owner("auth.sessions", |client| {
        let mut rows = select_planned(
            client,
            "SELECT u.id::pg_catalog.text, u.role, u.email, s.id::pg_catalog.text, \
                    pg_catalog.date_part('epoch', least(s.expires_at, s.idle_expires_at))::pg_catalog.int8 \
             FROM auth.sessions s JOIN auth.users u ON u.id OPERATOR(pg_catalog.=) s.user_id \
             WHERE s.token_hash OPERATOR(pg_catalog.=) $1 AND s.revoked_at IS NULL \
               AND s.expires_at OPERATOR(pg_catalog.>) pg_catalog.now() \
               AND s.idle_expires_at OPERATOR(pg_catalog.>) pg_catalog.now() AND NOT u.disabled",
            &[PgOid::BuiltIn(PgBuiltInOids::BYTEAOID)],
            &[hash.clone().into()],
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
    })?;
    let (sub, role, email, sid, exp) = row.ok_or(AuthError::SessionInvalid)?;
    remember_presented(hash);
    let claims = json!({ "sub": sub, "role": role, "email": email, "sid": sid, "exp": exp });
    Ok(claims.as_object().cloned().unwrap_or_default())
}

/// A JWT carrying `sid` is only good while that session lives (logout revokes it at once).
pub fn check_sid(claims: &Map<String, Value>) -> Result<()> {
    let Some(sid) = claims.get("sid") else { return Ok(()) };
    let sid = sid.as_str().filter(|s| s.len() == 36).ok_or_else(|| AuthError::InvalidClaim("sid".into()))?;
    let live = read_as_owner("auth.sessions", |client| {
        select_planned(
            client,
            "SELECT EXISTS (SELECT 1 FROM auth.sessions s \
         WHERE s.id::text OPERATOR(pg_catalog.=) $1 AND s.revoked_at IS NULL \
           AND s.expires_at OPERATOR(pg_catalog.>) pg_catalog.now())",
            &[PgOid::BuiltIn(PgBuiltInOids::TEXTOID)],
            &[sid.into()],
        )?
        .first()
        .get_one::<bool>()
    })?;
    if live != Some(true) {
        return Err(AuthError::SessionInvalid);
    }
    Ok(())
}
