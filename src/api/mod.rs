//! The SQL-facing functions: thin wrappers that turn arguments into calls of the pure core and
//! results or errors back into SQL.

pub(crate) mod jsonb;
pub(crate) mod jwt;
pub(crate) mod keys;
pub(crate) mod oidc;
pub(crate) mod one_time;
pub(crate) mod users;
