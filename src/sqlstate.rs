//! The one place where an `AuthError` becomes a PostgreSQL error with its documented SQLSTATE.
//! The README's error table is this match, in prose.

use std::ffi::{c_char, c_int, CString};

use pgrx::pg_sys;

use crate::error::AuthError;

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
