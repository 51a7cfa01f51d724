//! The revocation list: `jti`s in `auth.revoked_tokens` are refused by `auth.authenticate`.

use crate::error::Result;
use crate::privileged::{read_as_owner, select_one};

pub fn is_revoked(jti: &str) -> Result<bool> {
    read_as_owner("auth.revoked_tokens", |client| {
        select_one::<bool>(
            client,
            "SELECT EXISTS (SELECT 1 FROM auth.revoked_tokens WHERE jti OPERATOR(pg_catalog.=) $1)",
            &[jti.into()],
        )
    })
    .map(|found| found == Some(true))
}
