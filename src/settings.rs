//! The `pg_auth.*` settings (GUCs). Set them with `ALTER DATABASE … SET`, `ALTER ROLE
//! authenticator SET` or postgresql.conf. All are superuser-only (PGC_SUSET): they decide who
//! may become whom. No secret is ever a setting (keys live in `auth.keys`).

use std::ffi::{CStr, CString};

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static TOKEN_SOURCES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"cookie, header, bearer"));
pub static COOKIE_NAME: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"access_token"));
pub static COOKIE_SECURE: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static HEADER_NAME: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"x-access-token"));
pub static ROLE_CLAIM: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"role"));
pub static ALLOWED_ROLES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static ANON_ROLE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static ANONYMOUS: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static CLAIMS_ONLY: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static AUDIENCE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static ISSUER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static LEEWAY: GucSetting<i32> = GucSetting::<i32>::new(30);

fn string(name: &'static CStr, doc: &'static CStr, setting: &'static GucSetting<Option<CString>>) {
    GucRegistry::define_string_guc(name, doc, c"", setting, GucContext::Suset, GucFlags::default());
}

fn boolean(name: &'static CStr, doc: &'static CStr, setting: &'static GucSetting<bool>) {
    GucRegistry::define_bool_guc(name, doc, c"", setting, GucContext::Suset, GucFlags::default());
}

/// Called from `_PG_init`.
pub fn define() {
    string(c"pg_auth.token_sources", c"Where auth.authenticate() looks for a token, in order: cookie, header, bearer.", &TOKEN_SOURCES);
    string(c"pg_auth.cookie_name", c"Cookie holding the caller's JWT.", &COOKIE_NAME);
    boolean(c"pg_auth.cookie_secure", c"Mark cookies Secure (turn off only for local development over http).", &COOKIE_SECURE);
    string(c"pg_auth.header_name", c"Request header holding the caller's JWT.", &HEADER_NAME);
    string(c"pg_auth.role_claim", c"Claim naming the database role; a dotted path such as app_metadata.role.", &ROLE_CLAIM);
    string(c"pg_auth.allowed_roles", c"Comma-separated roles a token may switch to; empty allows any role granted to the authenticator.", &ALLOWED_ROLES);
    string(c"pg_auth.anon_role", c"Role for requests without a token; empty keeps the current role (PostgREST's db-anon-role).", &ANON_ROLE);
    boolean(c"pg_auth.anonymous", c"Allow requests without a token; off answers them 401.", &ANONYMOUS);
    boolean(c"pg_auth.claims_only", c"Only publish claims in request.jwt.claims, never switch role (for poolers pinning one role).", &CLAIMS_ONLY);
    string(c"pg_auth.audience", c"Comma-separated accepted audiences; when set, tokens must carry one in aud.", &AUDIENCE);
    string(c"pg_auth.issuer", c"Comma-separated accepted issuers; when set, tokens must carry one in iss.", &ISSUER);
    GucRegistry::define_int_guc(
        c"pg_auth.leeway",
        c"Seconds of clock skew allowed for exp, nbf and iat.",
        c"",
        &LEEWAY,
        0,
        crate::jwt::verify::MAX_LEEWAY as i32,
        GucContext::Suset,
        GucFlags::default(),
    );
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    unsafe {
        pgrx::pg_sys::MarkGUCPrefixReserved(c"pg_auth".as_ptr())
    };
}

pub fn text(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting.get().map(|c| c.to_string_lossy().into_owned()).filter(|s| !s.trim().is_empty())
}
