//! The one place where an `AuthError` becomes a PostgreSQL error with its documented SQLSTATE.
//! The README's error table is this match, in prose.

use std::ffi::{c_char, c_int, CString};

use pgrx::pg_sys;

use crate::error::AuthError;
use crate::response::{pgrst_error, CookieSpec};

pub fn sqlstate(err: &AuthError) -> &'static str {
    match err {
        AuthError::MalformedToken(_) => "PA001",
        AuthError::TokenTooLarge { .. } => "PA002",
        AuthError::BadSignature => "PA003",
        AuthError::Expired => "PA004",
        AuthError::NotYetValid(_) => "PA005",
        AuthError::WrongAudience => "PA006",
        AuthError::WrongIssuer => "PA007",
        AuthError::MissingClaim(_) => "PA008",
        AuthError::InvalidClaim(_) => "PA009",
        AuthError::UnknownKid(_) => "PA010",
        AuthError::AlgorithmNotAllowed(_) => "PA011",
        AuthError::InvalidKey(_) => "PA012",
        AuthError::NoSigningKey => "PA013",
        AuthError::Revoked => "PA014",
        AuthError::SessionInvalid => "PA017",
        AuthError::Storage(_) => "PA019",
        AuthError::ApiKeyInvalid => "PA020",
        AuthError::SessionLimit(_) => "PA021",
        AuthError::ClaimsHook(_) => "PA022",
        AuthError::CodeInvalid => "PA023",
        AuthError::EmailNotVerified => "PA024",
        AuthError::SecondFactorInvalid(_) => "PA025",
        AuthError::SecondFactorState(_) => "PA026",
        AuthError::IdentityRefused(_) => "PA027",
        AuthError::ProviderUnreachable(_) => "PA028",
        AuthError::TooManyAttempts(_) => "PA015",
        AuthError::ResetTokenInvalid => "PA016",
        AuthError::NotSignedIn => "PA017",
        AuthError::JsonRequired => "PA018",
        AuthError::WrongPassword(_) => "28P01",
        AuthError::NoCredentials => "28000",
        AuthError::RoleNotAllowed(_) | AuthError::ClaimsChanged => "42501",
        AuthError::InvalidArgument(_) => "22023",
        AuthError::NullArgument(_) => "22004",
    }
}

fn hint(err: &AuthError) -> Option<&'static str> {
    match err {
        AuthError::Expired => Some("Sign in again or refresh the token."),
        AuthError::UnknownKid(_) => {
            Some("Compare the token's kid with SELECT auth.jwks(); the key may have been retired.")
        }
        AuthError::WrongAudience => {
            Some("Pass the accepted audience in options, e.g. '{\"audience\": \"api\"}'.")
        }
        _ => None,
    }
}

/// PostgreSQL's MAKE_SQLSTATE: five characters of six bits each.
pub fn make_sqlstate(code: &str) -> c_int {
    code.bytes().enumerate().fold(0, |acc, (i, ch)| {
        acc + ((((ch - b'0') & 0x3F) as c_int) << (6 * i))
    })
}

// PostgreSQL's own error functions, called directly: pgrx's `ereport!` only takes the SQLSTATEs
// it knows, and a guarded pg_sys call would rewrite an unknown one to XX000.
unsafe extern "C-unwind" {
    fn errstart(elevel: c_int, domain: *const c_char) -> bool;
    fn errcode(sqlerrcode: c_int) -> c_int;
    fn errmsg(fmt: *const c_char, ...) -> c_int;
    fn errhint(fmt: *const c_char, ...) -> c_int;
    fn errdetail(fmt: *const c_char, ...) -> c_int;
    fn errfinish(filename: *const c_char, lineno: c_int, funcname: *const c_char);
}

/// Copies a Rust string into the current memory context, so no Rust allocation outlives the
/// non-returning `errfinish`.
fn pg_string(s: &str) -> *mut c_char {
    let c = CString::new(s.replace('\0', "")).unwrap_or_default();
    unsafe { pg_sys::pstrdup(c.as_ptr()) }
}

/// Raises `err` as an ERROR. Callers must own no Rust values that need dropping (they would
/// leak): convert results with `or_raise` at the end of the SQL-facing function.
pub fn raise(err: AuthError) -> ! {
    let code = make_sqlstate(sqlstate(&err));
    let (message, hint) = (err.to_string(), hint(&err));
    drop(err);
    raise_raw(code, message, None, hint)
}

/// Raises an error with any SQLSTATE (PostgREST's `PGRST` included). The strings are copied
/// into PostgreSQL memory and dropped before `errfinish`, which does not return.
pub fn raise_raw(code: c_int, message: String, detail: Option<String>, hint: Option<&str>) -> ! {
    let message_c = pg_string(&message);
    let detail_c = detail.as_deref().map(pg_string);
    let hint_c = hint.map(pg_string);
    drop((message, detail));
    let percent_s = c"%s".as_ptr();
    unsafe {
        errstart(pgrx::PgLogLevel::ERROR as c_int, std::ptr::null());
        errcode(code);
        errmsg(percent_s, message_c);
        if let Some(d) = detail_c {
            errdetail(percent_s, d);
        }
        if let Some(h) = hint_c {
            errhint(percent_s, h);
        }
        errfinish(c"pg_auth".as_ptr(), 0, std::ptr::null());
        unreachable!("errfinish returned after an ERROR")
    }
}

/// Raises `err` as the caller will see it: behind PostgREST a `PGRST` error carrying the HTTP
/// status, `WWW-Authenticate` for a 401/403 and the clearing cookie if any; for any other SQL
/// client the SQLSTATE itself.
pub fn raise_answer(err: AuthError, from_postgrest: bool, clear: Option<CookieSpec>) -> ! {
    if from_postgrest && crate::settings::PGRST_ERRORS.get() {
        let (message, detail) = pgrst_error(&err, sqlstate(&err), clear.as_ref());
        drop((err, clear));
        raise_raw(make_sqlstate("PGRST"), message, Some(detail), None);
    }
    drop(clear);
    if from_postgrest {
        // PostgREST 11 reads no PGRST error: a `PT<status>` SQLSTATE sets the status only (no
        // WWW-Authenticate, no clearing cookie); pg_auth's own code goes in the details.
        let code = make_sqlstate(&format!("PT{}", err.http_status()));
        // PostgREST 11 writes the message into the HTTP status line: printable ASCII only.
        let message = crate::response::header_safe(&err.to_string());
        let detail = format!("pg_auth error {}", sqlstate(&err));
        drop(err);
        raise_raw(code, message, Some(detail), None);
    }
    raise(err)
}

pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T, AuthError> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => raise(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// One value of every kind. The match below has no wildcard: a new kind does not compile
    /// until it is listed here, and so in the README's table.
    fn every_kind() -> Vec<AuthError> {
        let kinds = vec![
            AuthError::MalformedToken(String::new()),
            AuthError::TokenTooLarge { size: 0, max: 0 },
            AuthError::BadSignature,
            AuthError::Expired,
            AuthError::NotYetValid("nbf"),
            AuthError::WrongAudience,
            AuthError::WrongIssuer,
            AuthError::MissingClaim(String::new()),
            AuthError::InvalidClaim(String::new()),
            AuthError::UnknownKid(String::new()),
            AuthError::AlgorithmNotAllowed(String::new()),
            AuthError::InvalidKey(String::new()),
            AuthError::NoSigningKey,
            AuthError::InvalidArgument(String::new()),
            AuthError::NullArgument("x"),
            AuthError::NoCredentials,
            AuthError::Revoked,
            AuthError::RoleNotAllowed(String::new()),
            AuthError::SessionInvalid,
            AuthError::ClaimsChanged,
            AuthError::Storage(String::new()),
            AuthError::NotSignedIn,
            AuthError::WrongPassword(String::new()),
            AuthError::TooManyAttempts(String::new()),
            AuthError::ResetTokenInvalid,
            AuthError::JsonRequired,
            AuthError::ApiKeyInvalid,
            AuthError::SessionLimit(String::new()),
            AuthError::ClaimsHook(String::new()),
            AuthError::CodeInvalid,
            AuthError::EmailNotVerified,
            AuthError::SecondFactorInvalid(String::new()),
            AuthError::SecondFactorState(String::new()),
            AuthError::IdentityRefused(String::new()),
            AuthError::ProviderUnreachable(String::new()),
        ];
        for kind in &kinds {
            match kind {
                AuthError::MalformedToken(_)
                | AuthError::TokenTooLarge { .. }
                | AuthError::BadSignature
                | AuthError::Expired
                | AuthError::NotYetValid(_)
                | AuthError::WrongAudience
                | AuthError::WrongIssuer
                | AuthError::MissingClaim(_)
                | AuthError::InvalidClaim(_)
                | AuthError::UnknownKid(_)
                | AuthError::AlgorithmNotAllowed(_)
                | AuthError::InvalidKey(_)
                | AuthError::NoSigningKey
                | AuthError::InvalidArgument(_)
                | AuthError::NullArgument(_)
                | AuthError::NoCredentials
                | AuthError::Revoked
                | AuthError::RoleNotAllowed(_)
                | AuthError::SessionInvalid
                | AuthError::ClaimsChanged
                | AuthError::Storage(_)
                | AuthError::NotSignedIn
                | AuthError::WrongPassword(_)
                | AuthError::TooManyAttempts(_)
                | AuthError::ResetTokenInvalid
                | AuthError::JsonRequired
                | AuthError::ApiKeyInvalid
                | AuthError::SessionLimit(_)
                | AuthError::ClaimsHook(_)
                | AuthError::CodeInvalid
                | AuthError::EmailNotVerified
                | AuthError::SecondFactorInvalid(_)
                | AuthError::SecondFactorState(_)
                | AuthError::IdentityRefused(_)
                | AuthError::ProviderUnreachable(_) => {}
            }
        }
        kinds
    }

    #[test]
    fn the_readme_error_table_is_the_code_table() {
        let readme = include_str!("../README.md");
        let table: HashMap<&str, &str> = readme
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                let is_sqlstate = code.len() == 5
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
                let status = *cells.get(cells.len().checked_sub(2)?)?;
                is_sqlstate.then_some((code, status))
            })
            .collect();
        for kind in every_kind() {
            let code = sqlstate(&kind);
            let status = kind.http_status().to_string();
            assert_eq!(
                table.get(code).copied(),
                Some(status.as_str()),
                "{kind:?}: README row for {code}"
            );
        }
    }
}
