//! The revocation list: `jti`s in `auth.revoked_tokens` are refused by `auth.authenticate`.

use crate::error::Result;
use crate::probe::{self, Lookup};

static BY_JTI: Lookup = Lookup {
    table: "auth.revoked_tokens",
    key: "jti",
    columns: &[],
    optional: &[],
};

pub fn is_revoked(jti: &str) -> Result<bool> {
    Ok(probe::find(&BY_JTI, jti, |_| ())?.is_some())
}
