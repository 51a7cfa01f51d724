//! The revocation list: `jti`s in `auth.revoked_tokens` are refused by `auth.authenticate`.

use pgrx::{PgBuiltInOids, PgOid};

use crate::error::Result;
use crate::privileged::{read_as_owner, select_planned};

pub fn is_revoked(jti: &str) -> Result<bool> {
    read_as_owner("auth.revoked_tokens", |client| {
        select_planned(
            client,
            "SELECT EXISTS (SELECT 1 FROM auth.revoked_tokens WHERE jti OPERATOR(pg_catalog.=) $1)",
            &[PgOid::BuiltIn(PgBuiltInOids::TEXTOID)],
            &[jti.into()],
        )?
        .first()
        .get_one::<bool>()
    })
    .map(|found| found == Some(true))
}
