//! Looking sessions up for `auth.authenticate`: one index probe on the token's SHA-256, read
//! as the owner of `auth.sessions`, nothing written.

use pgrx::prelude::*;
use pgrx::pg_sys;
use serde_json::{json, Map, Value};

use crate::error::{AuthError, Result};
use crate::privileged::AsOwner;
use crate::session::hash_token;

fn sessions_owner() -> Result<pg_sys::Oid> {
    match Spi::get_one::<pg_sys::Oid>(
        "SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass('auth.sessions')",
    ) {
        Ok(Some(owner)) => Ok(owner),
        _ => Err(AuthError::InvalidKey("table auth.sessions is missing".into())),
    }
}

fn spi_error(e: pgrx::spi::Error) -> AuthError {
    AuthError::InvalidKey(format!("cannot read auth.sessions: {e}"))
}

/// The claims of a live session (`sub`, `role`, `email`, `sid`), or `SessionInvalid`.
pub fn claims_for_token(token: &str) -> Result<Map<String, Value>> {
    let _as_owner = AsOwner::switch(sessions_owner()?);
    let row = Spi::connect(|client| {
        let mut rows = client.select(
            "SELECT u.id::text, u.role, u.email, s.id::text, \
                    extract(epoch FROM least(s.expires_at, s.idle_expires_at))::bigint \
             FROM auth.sessions s JOIN auth.users u ON u.id OPERATOR(pg_catalog.=) s.user_id \
             WHERE s.token_hash OPERATOR(pg_catalog.=) $1 AND s.revoked_at IS NULL \
               AND s.expires_at OPERATOR(pg_catalog.>) pg_catalog.now() \
               AND s.idle_expires_at OPERATOR(pg_catalog.>) pg_catalog.now() AND NOT u.disabled",
            Some(1),
            &[hash_token(token).into()],
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
    .map_err(spi_error)?;
    let (sub, role, email, sid, exp) = row.ok_or(AuthError::SessionInvalid)?;
    let claims = json!({ "sub": sub, "role": role, "email": email, "sid": sid, "exp": exp });
    Ok(claims.as_object().cloned().unwrap_or_default())
}

/// A JWT carrying `sid` is only good while that session lives (logout revokes it at once).
pub fn check_sid(claims: &Map<String, Value>) -> Result<()> {
    let Some(sid) = claims.get("sid") else { return Ok(()) };
    let sid = sid.as_str().filter(|s| s.len() == 36).ok_or_else(|| AuthError::InvalidClaim("sid".into()))?;
    let _as_owner = AsOwner::switch(sessions_owner()?);
    let live = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM auth.sessions s \
         WHERE s.id::text OPERATOR(pg_catalog.=) $1 AND s.revoked_at IS NULL \
           AND s.expires_at OPERATOR(pg_catalog.>) pg_catalog.now())",
        &[sid.into()],
    )
    .map_err(spi_error)?;
    if live != Some(true) {
        return Err(AuthError::SessionInvalid);
    }
    Ok(())
}
