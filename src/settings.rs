//! The `pg_auth.*` settings (GUCs). Set them with `ALTER DATABASE … SET`, `ALTER ROLE
//! authenticator SET` or postgresql.conf. All are superuser-only (PGC_SUSET): they decide who
//! may become whom. No secret is ever a setting (keys live in `auth.keys`).

use std::ffi::{CStr, CString};

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;

pub static TOKEN_SOURCES: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"cookie, header, bearer, api_key"));
pub static COOKIE_NAME: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"access_token"));
pub static COOKIE_SECURE: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static API_KEY_HEADER: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"x-api-key"));
pub static HEADER_NAME: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"x-access-token"));
pub static ROLE_CLAIM: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"role"));
pub static ALLOWED_ROLES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static ANON_ROLE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static ANONYMOUS: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static CLAIMS_ONLY: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static PGRST_ERRORS: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static TRUST_REQUEST_CLAIMS: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static AUDIENCE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static ISSUER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static LEEWAY: GucSetting<i32> = GucSetting::<i32>::new(30);
pub static USER_ROLE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"web_user"));
pub static SESSION_LIFETIME: GucSetting<i32> = GucSetting::<i32>::new(7 * 24 * 3600);
pub static SESSION_IDLE_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(24 * 3600);
pub static REFRESH_GRACE_PERIOD: GucSetting<i32> = GucSetting::<i32>::new(30);
pub static AUDIT: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static AUDIT_RETENTION_DAYS: GucSetting<i32> = GucSetting::<i32>::new(90);
pub static LOG_REFUSALS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"off"));
pub static BASIC_PASSWORDS: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static CLAIMS_HOOK: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));
pub static MAX_SESSIONS_PER_USER: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static SESSION_LIMIT_MODE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"end_oldest"));
pub static JWT_LIFETIME: GucSetting<i32> = GucSetting::<i32>::new(15 * 60);
pub static PASSWORD_MIN_LENGTH: GucSetting<i32> = GucSetting::<i32>::new(8);
pub static ARGON2_MEMORY_KIB: GucSetting<i32> = GucSetting::<i32>::new(19456);
pub static ARGON2_ITERATIONS: GucSetting<i32> = GucSetting::<i32>::new(2);
pub static ARGON2_PARALLELISM: GucSetting<i32> = GucSetting::<i32>::new(1);
pub static LOGIN_MAX_FAILURES: GucSetting<i32> = GucSetting::<i32>::new(5);
pub static LOGIN_FAILURE_WINDOW: GucSetting<i32> = GucSetting::<i32>::new(15 * 60);
pub static LOGIN_COOLDOWN: GucSetting<i32> = GucSetting::<i32>::new(15 * 60);
pub static REQUIRE_VERIFIED_EMAIL: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static CODE_MAX_REQUESTS: GucSetting<i32> = GucSetting::<i32>::new(5);
pub static CODE_REQUEST_WINDOW: GucSetting<i32> = GucSetting::<i32>::new(3600);
pub static CODE_MAX_ATTEMPTS: GucSetting<i32> = GucSetting::<i32>::new(5);
pub static REAUTHENTICATION_WINDOW: GucSetting<i32> = GucSetting::<i32>::new(600);
pub static JWKS_MIN_REFRESH_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(60);
pub static TOTP_ISSUER: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"pg_auth"));

fn string(name: &'static CStr, doc: &'static CStr, setting: &'static GucSetting<Option<CString>>) {
    GucRegistry::define_string_guc(
        name,
        doc,
        c"",
        setting,
        GucContext::Suset,
        GucFlags::default(),
    );
}

fn int(
    name: &'static CStr,
    doc: &'static CStr,
    setting: &'static GucSetting<i32>,
    min: i32,
    max: i32,
) {
    GucRegistry::define_int_guc(
        name,
        doc,
        c"",
        setting,
        min,
        max,
        GucContext::Suset,
        GucFlags::default(),
    );
}

fn boolean(name: &'static CStr, doc: &'static CStr, setting: &'static GucSetting<bool>) {
    GucRegistry::define_bool_guc(
        name,
        doc,
        c"",
        setting,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// Called from `_PG_init`.
pub fn define() {
    string(
        c"pg_auth.token_sources",
        c"Where auth.authenticate() looks for a token, in order: cookie, header, bearer, api_key.",
        &TOKEN_SOURCES,
    );
    string(
        c"pg_auth.cookie_name",
        c"Cookie holding the caller's JWT.",
        &COOKIE_NAME,
    );
    boolean(
        c"pg_auth.cookie_secure",
        c"Mark cookies Secure (turn off only for local development over http).",
        &COOKIE_SECURE,
    );
    string(
        c"pg_auth.header_name",
        c"Request header holding the caller's JWT.",
        &HEADER_NAME,
    );
    string(
        c"pg_auth.api_key_header",
        c"Request header holding an API key (pak_...).",
        &API_KEY_HEADER,
    );
    string(
        c"pg_auth.role_claim",
        c"Claim naming the database role; a dotted path such as app_metadata.role.",
        &ROLE_CLAIM,
    );
    string(c"pg_auth.allowed_roles", c"Comma-separated roles a token may switch to; empty allows any role granted to the authenticator.", &ALLOWED_ROLES);
    string(c"pg_auth.anon_role", c"Role for requests without a token; empty keeps the current role (PostgREST's db-anon-role).", &ANON_ROLE);
    boolean(
        c"pg_auth.anonymous",
        c"Allow requests without a token; off answers them 401.",
        &ANONYMOUS,
    );
    boolean(
        c"pg_auth.trust_request_claims",
        c"When auth.authenticate has not run in the transaction, let auth.jwt() and auth.uid() read request.jwt.claims, which any SQL caller can set (off: they answer {} and NULL).",
        &TRUST_REQUEST_CLAIMS,
    );
    boolean(
        c"pg_auth.pgrst_errors",
        c"Raise failures behind PostgREST as PGRST errors carrying status and headers (PostgREST 12+); off for PostgREST 11, which gets PT<status> errors (status only).",
        &PGRST_ERRORS,
    );
    boolean(c"pg_auth.claims_only", c"Only publish claims in request.jwt.claims, never switch role (for poolers pinning one role).", &CLAIMS_ONLY);
    string(
        c"pg_auth.audience",
        c"Comma-separated accepted audiences; when set, tokens must carry one in aud.",
        &AUDIENCE,
    );
    string(
        c"pg_auth.issuer",
        c"Comma-separated accepted issuers; when set, tokens must carry one in iss.",
        &ISSUER,
    );
    int(
        c"pg_auth.leeway",
        c"Seconds of clock skew allowed for exp, nbf and iat.",
        &LEEWAY,
        0,
        crate::jwt::verify::MAX_LEEWAY as i32,
    );
    string(
        c"pg_auth.user_role",
        c"Database role of users registered without one.",
        &USER_ROLE,
    );
    int(
        c"pg_auth.session_lifetime",
        c"Seconds a session lives at most (absolute expiry).",
        &SESSION_LIFETIME,
        60,
        366 * 24 * 3600,
    );
    int(
        c"pg_auth.session_idle_timeout",
        c"Seconds a session lives without auth.refresh() or a login.",
        &SESSION_IDLE_TIMEOUT,
        60,
        366 * 24 * 3600,
    );
    int(
        c"pg_auth.refresh_grace_period",
        c"Seconds the token auth.refresh() replaced still signs in (requests already in flight); it can never refresh. 0: none.",
        &REFRESH_GRACE_PERIOD,
        0,
        300,
    );
    boolean(
        c"pg_auth.audit",
        c"Record sign-ins, sign-outs, refreshes, password changes and resets, user, key and API-key changes in auth.audit_log.",
        &AUDIT,
    );
    int(
        c"pg_auth.audit_retention_days",
        c"Days auth.cleanup_expired() keeps auth.audit_log entries.",
        &AUDIT_RETENTION_DAYS,
        1,
        36_500,
    );
    string(
        c"pg_auth.log_refusals",
        c"Server log level for requests auth.authenticate refuses: off, debug1, log, info, notice or warning.",
        &LOG_REFUSALS,
    );
    boolean(
        c"pg_auth.basic_passwords",
        c"Let the basic token source take an email (or username) and password, checked on every request and not counted towards the lockout; off: only API keys.",
        &BASIC_PASSWORDS,
    );
    string(
        c"pg_auth.claims_hook",
        c"Function (user_id uuid, claims jsonb) RETURNS jsonb, owned by a superuser, that adds or changes the claims of JWTs auth.login issues; empty: none.",
        &CLAIMS_HOOK,
    );
    int(
        c"pg_auth.max_sessions_per_user",
        c"Live sessions a user may have; a login beyond it ends the oldest or is refused (pg_auth.session_limit_mode). 0: no limit.",
        &MAX_SESSIONS_PER_USER,
        0,
        10_000,
    );
    string(
        c"pg_auth.session_limit_mode",
        c"What a login beyond pg_auth.max_sessions_per_user does: end_oldest (ends the oldest sessions) or refuse (PA021).",
        &SESSION_LIMIT_MODE,
    );
    boolean(
        c"pg_auth.require_verified_email",
        c"Refuse sign-in (PA024) until the account's email is verified (a one-time code or link, or an identity provider that verified it).",
        &REQUIRE_VERIFIED_EMAIL,
    );
    int(
        c"pg_auth.code_max_requests",
        c"One-time codes an email may be sent per pg_auth.code_request_window (known or not); more are refused with 429.",
        &CODE_MAX_REQUESTS,
        1,
        1000,
    );
    int(
        c"pg_auth.code_request_window",
        c"Seconds over which pg_auth.code_max_requests is counted.",
        &CODE_REQUEST_WINDOW,
        60,
        7 * 24 * 3600,
    );
    int(
        c"pg_auth.code_max_attempts",
        c"Wrong tries that spend a one-time code.",
        &CODE_MAX_ATTEMPTS,
        1,
        100,
    );
    int(
        c"pg_auth.reauthentication_window",
        c"Seconds after a sign-in during which its session may change the email or link an identity (0: any time).",
        &REAUTHENTICATION_WINDOW,
        0,
        7 * 24 * 3600,
    );
    int(
        c"pg_auth.jwks_min_refresh_interval",
        c"Seconds between two fetches of an identity provider's JWKS at least (unknown kids ask for a fetch).",
        &JWKS_MIN_REFRESH_INTERVAL,
        1,
        24 * 3600,
    );
    string(
        c"pg_auth.totp_issuer",
        c"Issuer name authenticator apps show for TOTP factors (auth.enroll_totp).",
        &TOTP_ISSUER,
    );
    int(
        c"pg_auth.jwt_lifetime",
        c"Seconds a JWT returned by auth.login() lives.",
        &JWT_LIFETIME,
        10,
        7 * 24 * 3600,
    );
    int(
        c"pg_auth.password_min_length",
        c"Minimum password length in characters.",
        &PASSWORD_MIN_LENGTH,
        1,
        1024,
    );
    int(
        c"pg_auth.argon2_memory_kib",
        c"argon2id memory cost in KiB.",
        &ARGON2_MEMORY_KIB,
        8,
        4 * 1024 * 1024,
    );
    int(
        c"pg_auth.argon2_iterations",
        c"argon2id passes.",
        &ARGON2_ITERATIONS,
        1,
        64,
    );
    int(
        c"pg_auth.argon2_parallelism",
        c"argon2id lanes.",
        &ARGON2_PARALLELISM,
        1,
        16,
    );
    int(
        c"pg_auth.login_max_failures",
        c"Failed logins within the window that lock an account.",
        &LOGIN_MAX_FAILURES,
        1,
        1000,
    );
    int(
        c"pg_auth.login_failure_window",
        c"Seconds in which failed logins are counted.",
        &LOGIN_FAILURE_WINDOW,
        1,
        7 * 24 * 3600,
    );
    int(
        c"pg_auth.login_cooldown",
        c"Seconds an account stays locked after too many failed logins.",
        &LOGIN_COOLDOWN,
        1,
        7 * 24 * 3600,
    );
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    unsafe {
        pgrx::pg_sys::MarkGUCPrefixReserved(c"pg_auth".as_ptr())
    };
}

pub fn text(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .filter(|s| !s.trim().is_empty())
}

/// The argon2id cost of new password hashes (pg_auth.argon2_*).
pub fn password_cost() -> crate::password::Cost {
    let positive = |v: i32| v.max(1) as u32;
    crate::password::Cost {
        memory_kib: positive(ARGON2_MEMORY_KIB.get()),
        iterations: positive(ARGON2_ITERATIONS.get()),
        parallelism: positive(ARGON2_PARALLELISM.get()),
    }
}

/// The current value of any setting, or `None` when it does not exist (PostgREST's `request.*`
/// outside PostgREST). Reads the GUC directly: no SPI, no transaction id.
pub fn current(name: &str) -> Option<String> {
    let name = CString::new(name).ok()?;
    let value = unsafe { pgrx::pg_sys::GetConfigOption(name.as_ptr(), true, false) };
    (!value.is_null()).then(|| {
        unsafe { CStr::from_ptr(value) }
            .to_string_lossy()
            .into_owned()
    })
}

/// Whether this transaction serves a PostgREST request. PostgREST sets `request.method` for every
/// request; `request.headers` is no test: it is `{}` for a request that sends no header but a
/// cookie (PostgREST leaves cookies out of it), and such a request is still PostgREST's.
pub fn behind_postgrest() -> bool {
    current("request.method").is_some_and(|m| !m.is_empty())
}

/// The cookie pg_auth sets and clears, from `pg_auth.cookie_name` and `pg_auth.cookie_secure`.
pub fn cookie_spec() -> crate::response::CookieSpec {
    let name = text(&COOKIE_NAME).unwrap_or_else(|| "access_token".into());
    // Browsers drop a __Host- or __Secure- cookie that is not Secure: the prefix wins.
    let prefixed = name.starts_with("__Host-") || name.starts_with("__Secure-");
    crate::response::CookieSpec {
        secure: COOKIE_SECURE.get() || prefixed,
        name,
    }
}

/// `set_config(name, value, true)`: reverts at COMMIT or ROLLBACK, works in READ ONLY transactions.
pub fn set_local(name: &str, value: &str) {
    let (Ok(name), Ok(value)) = (CString::new(name), CString::new(value)) else {
        return;
    };
    unsafe {
        let context = if pg_sys::superuser() {
            pg_sys::GucContext::PGC_SUSET
        } else {
            pg_sys::GucContext::PGC_USERSET
        };
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            context,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            0,
            false,
        );
    }
}
