//! pg_auth: JWT and session authentication for PostgreSQL and PostgREST, from SQL.
//!
//! The data's path: `request` (where the token comes from) → `jwt` (verification against the key
//! ring) → `identity` (role claim and role rules) → `authenticate` (role switched, claims
//! published) and `response` (HTTP-shaped errors and cookies).
//! Pure logic, no pgrx: `error`, `request`, `session`, `jwt`, `identity`, `password`, `response`,
//! `totp` (second factor), `oidc` and `jwks_fetch` (identity providers), `attempts`.
//! The pgrx layer: `sqlstate` (errors to SQLSTATEs), `settings` (GUCs), `keyring` (per-backend
//! cache of `auth.keys`), `revocation` (per-backend revocation list), `probe` (one-row index
//! lookups), `session_store` and `api_keys` (credential lookups), `privileged`, `published`,
//! `authenticate`, `shared_attempts` (attempt counts in shared memory), `jwks_worker`, `api`
//! (SQL functions).
//! SQL objects: `sql/`.

use pgrx::prelude::*;

pub mod attempts;
pub mod error;
pub mod identity;
pub mod jwks_fetch;
pub mod jwt;
pub mod oidc;
pub mod password;
pub mod request;
pub mod response;
pub mod session;
pub mod totp;

mod api;
mod api_keys;
mod authenticate;
mod basic;
mod jwks_worker;
mod keyring;
mod privileged;
mod probe;
mod published;
mod revocation;
mod session_store;
mod settings;
mod shared_attempts;
mod sqlstate;

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

pgrx::pg_module_magic!(name, version);

extension_sql_file!(
    "../sql/keys.sql",
    name = "keys",
    requires = [
        keyring::keys_changed,
        api::keys::auth_internal::new_key_material,
        api::keys::auth_internal::describe_key
    ]
);
extension_sql_file!(
    "../sql/audit.sql",
    name = "audit",
    requires = [api::users::auth_internal::setting]
);
extension_sql_file!(
    "../sql/revocation.sql",
    name = "revocation",
    requires = [revocation::auth_internal::revocations_changed]
);
extension_sql_file!(
    "../sql/identity.sql",
    name = "identity",
    requires = [published::jwt]
);
// `requires` lists every Rust function the file's SQL calls, so the generated script creates
// them first.
extension_sql_file!(
    "../sql/users.sql",
    name = "users",
    requires = [
        "identity",
        api::users::auth_internal::hash_password,
        api::users::auth_internal::verify_password,
        api::users::auth_internal::hash_token,
        api::users::auth_internal::new_reset_token,
        api::users::auth_internal::raise_error,
        api::users::auth_internal::setting,
        session_store::verified_session
    ]
);
extension_sql_file!(
    "../sql/sessions.sql",
    name = "sessions",
    requires = [
        "users",
        "audit",
        "revocation",
        api::jwt::sign_jwt_with_ring,
        api::users::auth_internal::hash_password,
        api::users::auth_internal::verify_password,
        api::users::auth_internal::password_needs_rehash,
        api::users::auth_internal::new_token,
        api::users::auth_internal::session_cookie,
        api::users::auth_internal::clearing_cookie,
        api::users::auth_internal::raise_error,
        api::users::auth_internal::setting,
        api::users::auth_internal::call_claims_hook,
        session_store::verified_session
    ]
);
extension_sql_file!(
    "../sql/api_keys.sql",
    name = "api_keys",
    requires = [
        "users",
        api::users::auth_internal::new_api_key,
        api_keys::auth_internal::api_key_reserved_claims,
        api::users::auth_internal::publishable_json,
        api::users::auth_internal::setting,
        api::users::auth_internal::raise_error
    ]
);
extension_sql_file!(
    "../sql/second_factor.sql",
    name = "second_factor",
    requires = [
        "sessions",
        "identity",
        api::users::auth_internal::hash_token,
        api::users::auth_internal::setting,
        api::users::auth_internal::raise_error,
        api::one_time::auth_internal::new_totp_secret,
        api::one_time::auth_internal::totp_secret_text,
        api::one_time::auth_internal::totp_uri,
        api::one_time::auth_internal::totp_matching_step,
        api::one_time::auth_internal::new_recovery_codes,
        api::one_time::auth_internal::normalize_recovery_code
    ]
);
extension_sql_file!(
    "../sql/one_time_codes.sql",
    name = "one_time_codes",
    requires = [
        "second_factor",
        api::users::auth_internal::hash_token,
        api::users::auth_internal::setting,
        api::users::auth_internal::raise_error,
        api::one_time::auth_internal::new_short_code,
        api::one_time::auth_internal::new_link_token
    ]
);
extension_sql_file!(
    "../sql/identity_providers.sql",
    name = "identity_providers",
    requires = [
        "second_factor",
        api::users::auth_internal::setting,
        api::users::auth_internal::raise_error,
        api::oidc::auth_internal::usable_provider_keys,
        api::oidc::auth_internal::check_jwks_url,
        api::oidc::auth_internal::fetch_jwks,
        api::oidc::auth_internal::verify_id_token
    ]
);
extension_sql_file!(
    "../sql/policies.sql",
    name = "policies",
    requires = ["identity"]
);
extension_sql_file!(
    "../sql/audit_triggers.sql",
    name = "audit_triggers",
    requires = [
        "audit",
        "sessions",
        "api_keys",
        "keys",
        "revocation",
        "second_factor",
        "one_time_codes",
        "identity_providers"
    ]
);
extension_sql_file!("../sql/grants.sql", name = "grants", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // Before settings::define(), which reserves the pg_auth prefix: a pg_auth.* setting not
    // defined by then is dropped from postgresql.conf's values.
    jwks_worker::define();
    settings::define();
    shared_attempts::init();
    keyring::register_invalidation_callback();
    unsafe { pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut()) };
}

/// What `auth.authenticate` verified (the session held, the claims published) lasts one
/// transaction. PREPARE TRANSACTION ends it on this connection without commit or abort.
#[pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_COMMIT
            | XACT_EVENT_PARALLEL_COMMIT
            | XACT_EVENT_ABORT
            | XACT_EVENT_PARALLEL_ABORT
            | XACT_EVENT_PREPARE
    ) {
        session_store::forget();
        published::forget();
    }
}

/// Used by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
