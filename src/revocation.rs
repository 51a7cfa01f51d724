//! The revocation list: `jti`s in `auth.revoked_tokens` are refused by `auth.authenticate`.

use pgrx::prelude::*;
use pgrx::pg_sys;

use crate::error::{AuthError, Result};
use crate::privileged::AsOwner;

pub fn is_revoked(jti: &str) -> Result<bool> {
    let owner = Spi::get_one::<pg_sys::Oid>(
        "SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass('auth.revoked_tokens')",
    );
    let Ok(Some(owner)) = owner else {
        return Err(AuthError::InvalidKey("table auth.revoked_tokens is missing".into()));
    };
    let _as_owner = AsOwner::switch(owner);
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM auth.revoked_tokens WHERE jti OPERATOR(pg_catalog.=) $1)",
        &[jti.into()],
    )
    .map(|found| found.unwrap_or(false))
    .map_err(|e| AuthError::InvalidKey(format!("cannot read auth.revoked_tokens: {e}")))
}
