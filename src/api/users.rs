//! The Rust helpers behind sql/users.sql and sql/sessions.sql: hashing, tokens, cookies.

use pgrx::prelude::*;

use crate::api::jsonb::JsonbText;
use crate::error::AuthError;
use crate::password::{self, Cost};
use crate::session::TokenKind;
use crate::settings as s;
use crate::sqlstate::OrRaise;

/// Internal helpers, in schema `auth_internal` (no USAGE for PUBLIC): only pg_auth's own SQL and
/// the owner call them.
#[pg_schema]
pub(crate) mod auth_internal {
    use super::*;

    fn cost() -> Cost {
        s::password_cost()
    }

    /// argon2id PHC string at the configured cost (pg_auth.argon2_*).
    #[pg_extern(volatile, parallel_safe)]
    fn hash_password(password: Option<&str>) -> String {
        password
            .ok_or(AuthError::NullArgument("password"))
            .and_then(|p| password::hash(p, cost()))
            .or_raise()
    }

    /// Checks a password against an argon2id or bcrypt hash. With `hash` NULL (unknown user) it
    /// spends the same time and returns false.
    #[pg_extern(volatile, parallel_safe)]
    fn verify_password(password: Option<&str>, hash: Option<&str>) -> bool {
        let password = password
            .ok_or(AuthError::NullArgument("password"))
            .or_raise();
        match hash {
            Some(hash) => password::verify(password, hash).or_raise(),
            None => {
                password::verify_nothing(password, cost());
                false
            }
        }
    }

    /// Whether the stored hash should be replaced (bcrypt, or argon2id at another cost).
    #[pg_extern(stable, parallel_safe)]
    fn password_needs_rehash(hash: &str) -> bool {
        password::needs_rehash(hash, cost())
    }

    /// A new session token (its prefix and 256 random bits, base64url) and the SHA-256 to store in
    /// its place. The C symbol of a released function never changes its arguments: SQL of an older
    /// version calls it until `ALTER EXTENSION pg_auth UPDATE`.
    #[pg_extern(volatile, parallel_safe)]
    fn new_token() -> TableIterator<'static, (name!(token, String), name!(token_hash, Vec<u8>))> {
        TableIterator::once(crate::session::new_token(TokenKind::Session))
    }

    /// A new password-reset token and its SHA-256, like `new_token`.
    #[pg_extern(volatile, parallel_safe)]
    fn new_reset_token(
    ) -> TableIterator<'static, (name!(token, String), name!(token_hash, Vec<u8>))> {
        TableIterator::once(crate::session::new_token(TokenKind::PasswordReset))
    }

    /// `json` as pg_auth publishes it (parsed and written again by serde_json), or NULL when it
    /// cannot be: a number beyond float8, nesting deeper than 128. Comparing the result with the
    /// input as jsonb tells whether claims survive being published.
    #[pg_extern(immutable, parallel_safe, strict)]
    fn publishable_json(json: &str) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .map(|v| v.to_string())
    }

    /// Calls the claims hook `hook` (a function (uuid, jsonb) RETURNS jsonb, checked by the
    /// caller) by its oid, so no other function of the same name can be picked.
    #[pg_extern(volatile, strict)]
    fn call_claims_hook(hook: pg_sys::Oid, user_id: pgrx::Uuid, claims: JsonbText) -> JsonbText {
        let (Some(user_id), Some(claims)) = (user_id.into_datum(), claims.into_datum()) else {
            return JsonbText("null".into());
        };
        let result =
            unsafe { pg_sys::OidFunctionCall2Coll(hook, pg_sys::InvalidOid, user_id, claims) };
        unsafe { JsonbText::from_datum(result, false) }.unwrap_or_else(|| JsonbText("null".into()))
    }

    /// A new API key (`pak_` and 256 random bits) and its SHA-256, like `new_token`.
    #[pg_extern(volatile, parallel_safe)]
    fn new_api_key() -> TableIterator<'static, (name!(key, String), name!(key_hash, Vec<u8>))> {
        TableIterator::once(crate::session::new_token(TokenKind::ApiKey))
    }

    #[pg_extern(immutable, parallel_safe, strict)]
    fn hash_token(token: &str) -> Vec<u8> {
        crate::session::hash_token(token)
    }

    /// `Set-Cookie` value carrying `token` for `max_age` seconds (HttpOnly, SameSite=Lax, Path=/,
    /// Secure unless pg_auth.cookie_secure is off).
    #[pg_extern(stable, parallel_safe, strict)]
    fn session_cookie(token: &str, max_age: i32) -> String {
        s::cookie_spec().build(token.to_string(), i64::from(max_age.max(0)))
    }

    /// `Set-Cookie` value that clears the session cookie.
    #[pg_extern(stable, parallel_safe)]
    pub(crate) fn clearing_cookie() -> String {
        s::cookie_spec().clearing()
    }

    /// The value of setting `pg_auth.<name>`, defaults included (loads the library first, so SQL
    /// functions never see an undefined setting).
    #[pg_extern(stable, parallel_safe, strict)]
    pub(crate) fn setting(name: &str) -> String {
        s::current(&format!("pg_auth.{name}"))
            .ok_or_else(|| AuthError::InvalidArgument(format!("unknown setting pg_auth.{name}")))
            .or_raise()
    }

    /// Raises one of pg_auth's errors by kind, for its SQL functions, so SQL and Rust share one
    /// table (`crate::sqlstate`, `AuthError::http_status`): a SQL client gets the SQLSTATE, PostgREST
    /// the HTTP status and headers. `message` replaces the kind's own where it has one to give.
    #[pg_extern(volatile)]
    fn raise_error(kind: &str, message: default!(Option<&str>, "NULL")) {
        let owned = |default: &str| message.unwrap_or(default).to_string();
        let err = match kind {
            "not_signed_in" => AuthError::NotSignedIn,
            "wrong_password" => AuthError::WrongPassword(owned("invalid email or password")),
            "too_many_attempts" => AuthError::TooManyAttempts(owned("too many failed attempts")),
            "reset_token_invalid" => AuthError::ResetTokenInvalid,
            "json_required" => AuthError::JsonRequired,
            "invalid_argument" => AuthError::InvalidArgument(owned("invalid argument")),
            "session_limit" => AuthError::SessionLimit(owned("too many active sessions")),
            "claims_hook" => AuthError::ClaimsHook(owned("the claims hook failed")),
            "code_invalid" => AuthError::CodeInvalid,
            "email_not_verified" => AuthError::EmailNotVerified,
            "second_factor_invalid" => {
                AuthError::SecondFactorInvalid(owned("the second-factor code is wrong or used"))
            }
            "second_factor_state" => {
                AuthError::SecondFactorState(owned("no second factor enrolled"))
            }
            "identity_refused" => {
                AuthError::IdentityRefused(owned("this identity may not sign in here"))
            }
            other => AuthError::InvalidArgument(format!("unknown error kind \"{other}\"")),
        };
        crate::sqlstate::raise_answer(err, s::behind_postgrest(), None)
    }
}
