//! `auth.authenticate()`: the request's token → verified claims → role switched and claims
//! published, for the current transaction only. The decisions are made by the pure modules
//! (`request`, `jwt`, `identity`, `response`); this file reads settings and the catalog and
//! writes the two transaction-local settings.

use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::{json, Map, Value};

use crate::api::jsonb::JsonbText;
use crate::api::jwt::storable;
use crate::error::{AuthError, Result};
use crate::identity::{check_role, list_setting, role_claim, RoleFacts};
use crate::jwt::verify::VerifyOptions;
use crate::request::{Found, Names, Request, Source};
use crate::response::header_safe;
use crate::session::{credential, Credential};
use crate::settings::{self as s, set_local, text};
use crate::sqlstate::OrRaise;
use crate::{api_keys, basic, keyring, published, session_store, sqlstate};

/// For PostgREST's `db-pre-request`: finds the token in the request, verifies it, switches role
/// and publishes the claims. Failures become HTTP responses (401/403 with `WWW-Authenticate`).
#[pg_extern(volatile, name = "authenticate")]
fn authenticate_request() {
    let setting = |name: &str| s::current(name);
    let request = Request::new(&setting);
    let outcome = from_request(&request);
    if let Err((err, source)) = outcome {
        log_refusal(&err, source, &request);
        // A refused token in the cookie is cleared; a valid one naming a forbidden role (403) stays.
        let cookie =
            (source == Some(Source::Cookie) && err.http_status() == 401).then(s::cookie_spec);
        let from_postgrest = s::behind_postgrest();
        drop(request);
        sqlstate::raise_answer(err, from_postgrest, cookie);
    }
}

/// A refused request in the server log at `pg_auth.log_refusals` (authenticate writes nothing to
/// the database, so this is the audit trail of refusals): the error, where the credential came
/// from, the client's IP and user agent; never the credential. Printable ASCII only: the error
/// may quote an unverified token's header.
fn log_refusal(err: &AuthError, source: Option<Source>, request: &Request) {
    let level = match text(&s::LOG_REFUSALS)
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "debug1" => PgLogLevel::DEBUG1,
        "log" => PgLogLevel::LOG,
        "info" => PgLogLevel::INFO,
        "notice" => PgLogLevel::NOTICE,
        "warning" => PgLogLevel::WARNING,
        _ => return,
    };
    let header = |name: &str| header_safe(&request.header(name).unwrap_or_default());
    let ip = header("x-forwarded-for");
    // Each client-chosen value quoted as a JSON string: none can pose as another field.
    let quoted = |text: &str| serde_json::to_string(text).unwrap_or_default();
    let message = format!(
        "pg_auth refused a request: {} ({}); credential from {}; ip {}; user agent {}",
        quoted(&header_safe(&err.to_string())),
        sqlstate::sqlstate(err),
        source.map_or("nowhere", Source::name),
        quoted(ip.split(',').next().unwrap_or_default().trim()),
        quoted(&crate::jwt::keys::truncate(&header("user-agent"), 200)),
    );
    pgrx::ereport!(
        level,
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        message
    );
}

/// For any SQL client: the same checks and effects for the current transaction, with `token`
/// (NULL for anonymous). Returns the published claims.
#[pg_extern(volatile, name = "authenticate")]
fn authenticate_token(token: Option<&str>) -> JsonbText {
    let found = match token.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => Found::Token(t.to_string(), Source::Header),
        None => Found::Nothing,
    };
    JsonbText(establish(found, || false).and_then(storable).or_raise())
}

fn from_request(request: &Request) -> std::result::Result<(), (AuthError, Option<Source>)> {
    let sources = text(&s::TOKEN_SOURCES).unwrap_or_default();
    let sources = Source::parse_list(&sources).map_err(|e| (e, None))?;
    let cookie = text(&s::COOKIE_NAME).unwrap_or_default();
    let header = text(&s::HEADER_NAME).unwrap_or_default();
    let api_key_header = text(&s::API_KEY_HEADER).unwrap_or_default();
    let names = Names {
        cookie: &cookie,
        header: &header,
        api_key_header: &api_key_header,
    };
    let found = request.find_token(&sources, &names);
    let source = match &found {
        Found::Token(_, source) => Some(*source),
        Found::Basic { .. } => Some(Source::Basic),
        Found::Nothing => None,
    };
    establish(found, s::behind_postgrest)
        .map(drop)
        .map_err(|e| (e, source))
}

/// Verifies what was found and applies it: role (unless claims-only) and `request.jwt.claims`;
/// returns the claims as published.
/// Every token is verified here, the Bearer one too (PostgREST checked it already, but what it
/// publishes in `request.jwt.claims` is a setting any SQL caller can write).
fn establish(found: Found, from_postgrest: impl Fn() -> bool) -> Result<String> {
    session_store::forget();
    let (claims, role, held) = match found {
        Found::Nothing => return anonymous(from_postgrest()),
        Found::Basic { user, password } => {
            let (claims, role) = basic::claims_for_basic(&user, &password)?;
            refuse_bypassing_role(&role)?;
            (claims, Some(role), None)
        }
        Found::Token(token, source) => match (credential(&token), source) {
            // Only an API key may come from the API-key header.
            (kind, Source::ApiKey) if kind != Credential::ApiKey => {
                return Err(AuthError::ApiKeyInvalid)
            }
            (Credential::Session, _) => {
                let (claims, role, held) = session_store::claims_for_token(&token)?;
                (claims, Some(role), Some(held))
            }
            (Credential::ApiKey, _) => {
                let (claims, role) = api_keys::claims_for_key(&token)?;
                refuse_bypassing_role(&role)?;
                (claims, Some(role), None)
            }
            (Credential::Jwt, _) => {
                let verified =
                    keyring::ring()?.verify(&token, &verify_options()?, keyring::now())?;
                let claims = verified.claims()?;
                let held = session_store::check_sid(&claims, verified.issued_here)?;
                let role_path = text(&s::ROLE_CLAIM).unwrap_or_else(|| "role".into());
                let role = role_claim(&claims, &role_path)?.map(str::to_string);
                (claims, role, held)
            }
        },
    };
    check_not_revoked(&claims)?;
    if !s::CLAIMS_ONLY.get() {
        match role.or_else(|| text(&s::ANON_ROLE)) {
            Some(role) => switch_role(&role)?,
            // Behind PostgREST the request already runs as db-anon-role; a SQL client would stay
            // the authenticator, which is never a token's role.
            None if !from_postgrest() => {
                return Err(AuthError::RoleNotAllowed(
                    "the token names no role and pg_auth.anon_role is not set".into(),
                ))
            }
            None => {}
        }
    }
    let published = published::publish(&claims);
    // Only now, with every check passed, does the transaction hold the session.
    if let Some(held) = held {
        session_store::hold(held);
    }
    Ok(published)
}

fn anonymous(from_postgrest: bool) -> Result<String> {
    if !s::ANONYMOUS.get() {
        return Err(AuthError::NoCredentials);
    }
    let claims = match text(&s::ANON_ROLE) {
        Some(role) => {
            if !s::CLAIMS_ONLY.get() {
                switch_role(&role)?;
            }
            json!({ "role": role })
                .as_object()
                .cloned()
                .unwrap_or_default()
        }
        // Behind PostgREST the request already runs as db-anon-role; publish what PostgREST
        // does for no token. A SQL client goes back to the role it connected as: nothing of an
        // earlier auth.authenticate may remain.
        None if from_postgrest => json!({ "role": current_role_name() })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        None => {
            if !s::CLAIMS_ONLY.get() {
                set_local("role", "none");
            }
            Map::new()
        }
    };
    Ok(published::publish(&claims))
}

fn verify_options() -> Result<VerifyOptions> {
    let list = |v: Vec<String>| (!v.is_empty()).then_some(v);
    Ok(VerifyOptions {
        audience: list(list_setting(text(&s::AUDIENCE).as_deref())),
        issuer: list(list_setting(text(&s::ISSUER).as_deref())),
        leeway: s::LEEWAY.get().max(0) as u64,
        ..VerifyOptions::default()
    })
}

fn switch_role(role: &str) -> Result<()> {
    let facts = role_facts(role);
    check_role(
        role,
        facts,
        &list_setting(text(&s::ALLOWED_ROLES).as_deref()),
    )?;
    set_local("role", role);
    Ok(())
}

fn current_role_name() -> String {
    unsafe {
        let name = pg_sys::GetUserNameFromId(pg_sys::GetUserId(), false);
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    }
}

/// An API key or a Basic credential never acts as a role that bypasses row-level security (even
/// one that became so after the key was made, or a user's).
fn refuse_bypassing_role(role: &str) -> Result<()> {
    if bypasses_rls(role) {
        return Err(AuthError::RoleNotAllowed(format!(
            "\"{}\" bypasses row-level security; API keys and HTTP Basic cannot act as it",
            crate::jwt::keys::truncate(role, 64)
        )));
    }
    Ok(())
}

fn bypasses_rls(role: &str) -> bool {
    let Ok(name) = CString::new(role) else {
        return false;
    };
    unsafe {
        let oid = pg_sys::get_role_oid(name.as_ptr(), true);
        oid != pg_sys::InvalidOid && pg_sys::has_bypassrls_privilege(oid)
    }
}

fn role_facts(role: &str) -> RoleFacts {
    let Ok(name) = CString::new(role) else {
        return RoleFacts::default();
    };
    unsafe {
        let oid = pg_sys::get_role_oid(name.as_ptr(), true);
        if oid == pg_sys::InvalidOid {
            return RoleFacts::default();
        }
        let session = pg_sys::GetSessionUserId();
        RoleFacts {
            exists: true,
            is_superuser: pg_sys::superuser_arg(oid),
            is_authenticator: oid == session,
            authenticator_is_member: pg_sys::is_member_of_role_nosuper(session, oid),
        }
    }
}

/// A `jti` on `auth.revoked_tokens` is refused, whichever source the token came from. An
/// integer `jti` is looked up by its decimal text; any other type (a fraction, an exponent, an
/// integer beyond 64 bits) is an invalid claim.
fn check_not_revoked(claims: &Map<String, Value>) -> Result<()> {
    let jti = match claims.get("jti") {
        None => return Ok(()),
        Some(Value::String(s)) => s.clone(),
        // Only integers: their decimal text is the one jsonb gives (`verify_jwt(t) ->> 'jti'`,
        // what an administrator revokes); `1e2` or `1.0` would be written differently.
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(_) => return Err(AuthError::InvalidClaim("jti".into())),
    };
    if crate::revocation::is_revoked(&jti)? {
        return Err(AuthError::Revoked);
    }
    Ok(())
}
