//! HTTP Basic in `auth.authenticate` (opt-in: the `basic` token source). An API key's id and the
//! key itself; or, with `pg_auth.basic_passwords`, an email (or username) and password. A password
//! is checked on every request at the full argon2id cost and cannot be counted towards the lockout
//! (the request path writes nothing); a locked account is refused, and a stored hash at another
//! cost than the configured one is refused until the user signs in once with auth.login (so every
//! answer costs the same). API keys are the better choice.

use serde_json::{Map, Value};

use crate::api_keys::claims_for_key;
use crate::error::{AuthError, Result};
use crate::identity::set_at_path;
use crate::privileged::read_as_owner;
use crate::session::{credential, Credential};
use crate::settings as s;

/// Claims and role for a Basic user and password.
pub fn claims_for_basic(user: &str, password: &str) -> Result<(Map<String, Value>, String)> {
    if credential(password) == Credential::ApiKey {
        let (claims, role) = claims_for_key(password)?;
        // The user part names the key: a key sent under another id is refused like an unknown one.
        let named = claims.get("key_id").and_then(Value::as_str);
        if named.is_none_or(|id| !id.eq_ignore_ascii_case(user.trim())) {
            return Err(AuthError::ApiKeyInvalid);
        }
        return Ok((claims, role));
    }
    if !s::BASIC_PASSWORDS.get() {
        return Err(AuthError::WrongPassword(
            "HTTP Basic takes an API key's id and key here (pg_auth.basic_passwords is off)".into(),
        ));
    }
    password_claims(user, password)
}

type UserRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<bool>,
);

fn wrong() -> AuthError {
    AuthError::WrongPassword("invalid email or password".into())
}

fn password_claims(user: &str, password: &str) -> Result<(Map<String, Value>, String)> {
    // No account has an empty name or one with control characters (a NUL would be cut off on the
    // way to SQL): answered at once, without spending a password check on it.
    if user.is_empty() || user.chars().any(char::is_control) || password.is_empty() {
        return Err(wrong());
    }
    let (locked, key, found) = read_as_owner("auth.users", |client| {
        // The lock of the name typed and of the account's own email: a username is another name
        // for the same account and must not escape its lock.
        let locked = client
            .select(
                "SELECT EXISTS (SELECT FROM auth.login_attempts a \
                 WHERE a.email_key OPERATOR(pg_catalog.=) ANY (ARRAY[auth_internal.email_key($1), \
                       (SELECT auth_internal.email_key(u.email) FROM auth.users u \
                        WHERE pg_catalog.lower(u.username) OPERATOR(pg_catalog.=) pg_catalog.lower($1) LIMIT 1)]) \
                   AND a.locked_until OPERATOR(pg_catalog.>) pg_catalog.now())",
                Some(1),
                &[user.into()],
            )?
            .first()
            .get_one::<bool>()?;
        // The attempt counter auth.login uses: the key of the account's email, or of the name.
        let key = client
            .select(
                "SELECT auth_internal.email_key(coalesce((SELECT u.email FROM auth.users u \
                 WHERE pg_catalog.lower(u.email) OPERATOR(pg_catalog.=) pg_catalog.lower($1) \
                    OR pg_catalog.lower(u.username) OPERATOR(pg_catalog.=) pg_catalog.lower($1) \
                 ORDER BY pg_catalog.lower(u.email) OPERATOR(pg_catalog.=) pg_catalog.lower($1) DESC LIMIT 1), $1))",
                Some(1),
                &[user.into()],
            )?
            .first()
            .get_one::<Vec<u8>>()?
            .unwrap_or_default();
        let rows = client.select(
            "SELECT u.id::pg_catalog.text, u.role, u.email, u.password_hash, u.disabled FROM auth.users u \
             WHERE pg_catalog.lower(u.email) OPERATOR(pg_catalog.=) pg_catalog.lower($1) \
                OR pg_catalog.lower(u.username) OPERATOR(pg_catalog.=) pg_catalog.lower($1) \
             ORDER BY pg_catalog.lower(u.email) OPERATOR(pg_catalog.=) pg_catalog.lower($1) DESC LIMIT 1",
            Some(1),
            &[user.into()],
        )?;
        let row: Option<UserRow> = match rows.first() {
            r if r.is_empty() => None,
            r => Some((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        };
        Ok((locked == Some(true), key, row))
    })?;
    // Counted in shared memory (pg_auth preloaded), where nothing on this read-only path could
    // count it otherwise: past pg_auth.login_max_failures per window, refused like a lock.
    let allowed = crate::shared_attempts::allowed(
        "login",
        &key,
        s::LOGIN_MAX_FAILURES.get(),
        s::LOGIN_FAILURE_WINDOW.get(),
    );
    // Every answer below costs exactly one password check at the configured cost, whatever the
    // account: a stored hash at another cost (or bcrypt, or unreadable) is not checked but refused
    // after a check of nothing; signing in once with auth.login re-hashes it.
    let cost = s::password_cost();
    let matches = match &found {
        Some((_, _, _, Some(hash), _))
            if password.len() <= 1024 && !crate::password::needs_rehash(hash, cost) =>
        {
            crate::password::verify(password, hash).unwrap_or(false)
        }
        _ => {
            crate::password::verify_nothing(password, cost);
            false
        }
    };
    if matches && allowed && !locked {
        crate::shared_attempts::clear("login", &key);
    }
    if locked || !allowed {
        return Err(AuthError::TooManyAttempts(
            "too many failed logins for this account; try again later".into(),
        ));
    }
    match found {
        Some((Some(id), Some(role), email, _, Some(false))) if matches => {
            let mut claims = Map::new();
            claims.insert("sub".into(), id.into());
            claims.insert("role".into(), role.clone().into());
            claims.insert("email".into(), email.into());
            // A dotted pg_auth.role_claim (app_metadata.role) shows the same role there.
            let role_path = s::text(&s::ROLE_CLAIM).unwrap_or_else(|| "role".into());
            set_at_path(&mut claims, &role_path, role.clone().into());
            Ok((claims, role))
        }
        _ => Err(wrong()),
    }
}
