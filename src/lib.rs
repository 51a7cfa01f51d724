//! pg_auth: JWT and session authentication for PostgreSQL and PostgREST, from SQL.
//!
//! Pure logic (no pgrx): `error`, `jwt`. The pgrx layer: `sqlstate` (errors to SQLSTATEs),
//! `keyring` (per-backend cache of `auth.keys`), `api` (the SQL functions). SQL objects: `sql/`.

use pgrx::prelude::*;

pub mod error;
pub mod jwt;

mod api;
mod keyring;
mod sqlstate;

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

pgrx::pg_module_magic!(name, version);

extension_sql_file!(
    "../sql/keys.sql",
    name = "keys",
    requires = [keyring::keys_changed, api::keys::new_key_material, api::keys::describe_key]
);
extension_sql_file!("../sql/grants.sql", name = "grants", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    keyring::register_invalidation_callback();
}

/// Used by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
