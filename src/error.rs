//! The one error type of pg_auth. Pure: no pgrx here. `crate::sqlstate` maps each
//! variant to its documented SQLSTATE and raises it.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Not a compact JWS: wrong number of segments, bad base64url, header or payload not JSON.
    MalformedToken(String),
    TokenTooLarge {
        size: usize,
        max: usize,
    },
    BadSignature,
    Expired,
    /// `nbf` or `iat` lies in the future (beyond the leeway).
    NotYetValid(&'static str),
    WrongAudience,
    WrongIssuer,
    MissingClaim(String),
    /// A registered claim has the wrong type, e.g. `"exp": "tomorrow"`.
    InvalidClaim(String),
    UnknownKid(String),
    AlgorithmNotAllowed(String),
    InvalidKey(String),
    /// The key ring holds no key that may sign right now.
    NoSigningKey,
    /// A function argument is out of its domain (unknown option, bad algorithm name...).
    InvalidArgument(String),
    NullArgument(&'static str),
    /// No token in the request and anonymous access is turned off.
    NoCredentials,
    /// The token's `jti` is on the revocation list.
    Revoked,
    /// The token names a role it may not switch to.
    RoleNotAllowed(String),
    /// A session token (or a JWT's `sid`) names no live session.
    SessionInvalid,
    /// `request.jwt.claims` no longer holds what `auth.authenticate` published in this transaction.
    ClaimsChanged,
    /// pg_auth's own tables cannot be read (missing, or the query failed): not the caller's fault.
    Storage(String),
    /// No session was verified in this transaction (logout, refresh, change_password).
    NotSignedIn,
    /// A password check failed (the message says which one).
    WrongPassword(String),
    /// Too many failed password checks for this email; the message says how long the lock lasts.
    TooManyAttempts(String),
    /// A password-reset token that is unknown, used or expired.
    ResetTokenInvalid,
    /// `auth.require_json_request()`: the request was not sent as application/json.
    JsonRequired,
    /// An API key that is unknown, revoked or expired, or a value in the API-key header that is
    /// no API key.
    ApiKeyInvalid,
    /// A login beyond `pg_auth.max_sessions_per_user` with `pg_auth.session_limit_mode = refuse`.
    SessionLimit(String),
    /// `pg_auth.claims_hook` failed, is not a usable function, or broke a rule.
    ClaimsHook(String),
    /// A one-time code or link that is wrong, used, expired or spent by too many wrong tries.
    CodeInvalid,
    /// `pg_auth.require_verified_email`: the account's email is not verified yet.
    EmailNotVerified,
    /// A second-factor code (TOTP or recovery code) that is wrong or used before.
    SecondFactorInvalid(String),
    /// The account's second factor is not in the state the call needs (none enrolled, already
    /// enrolled, not yet confirmed).
    SecondFactorState(String),
    /// An identity provider's token is valid, but it may not sign in here: the email belongs to
    /// an account it is not linked to, sign-up is off, the identity belongs to someone else.
    IdentityRefused(String),
    /// An identity provider's JWKS could not be fetched or read (the message says why).
    ProviderUnreachable(String),
}

pub type Result<T> = std::result::Result<T, AuthError>;

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::MalformedToken(why) => write!(f, "malformed token: {why}"),
            AuthError::TokenTooLarge { size, max } => {
                write!(
                    f,
                    "token too large: {size} bytes, at most {max} are accepted"
                )
            }
            AuthError::BadSignature => f.write_str("invalid token signature"),
            AuthError::Expired => f.write_str("token has expired"),
            AuthError::NotYetValid(claim) => {
                write!(f, "token is not valid yet: \"{claim}\" is in the future")
            }
            AuthError::WrongAudience => f.write_str("token audience (\"aud\") is not accepted"),
            AuthError::WrongIssuer => f.write_str("token issuer (\"iss\") is not accepted"),
            AuthError::MissingClaim(c) => write!(f, "token lacks the required claim \"{c}\""),
            AuthError::InvalidClaim(c) => write!(f, "token claim \"{c}\" has an invalid value"),
            AuthError::UnknownKid(why) => write!(f, "no key to verify this token: {why}"),
            AuthError::AlgorithmNotAllowed(why) => write!(f, "algorithm not allowed: {why}"),
            AuthError::InvalidKey(why) => write!(f, "invalid key: {why}"),
            AuthError::NoSigningKey => f.write_str(
                "the key ring has no active signing key; add one with auth.generate_key('ES256')",
            ),
            AuthError::InvalidArgument(why) => f.write_str(why),
            AuthError::NullArgument(name) => write!(f, "argument \"{name}\" must not be NULL"),
            AuthError::NoCredentials => {
                f.write_str("authentication required: no token in the request")
            }
            AuthError::Revoked => f.write_str("token has been revoked"),
            AuthError::RoleNotAllowed(why) => write!(f, "role not allowed: {why}"),
            AuthError::SessionInvalid => {
                f.write_str("session is unknown, expired or revoked; sign in again")
            }
            AuthError::Storage(why) => write!(f, "pg_auth storage unavailable: {why}"),
            AuthError::NotSignedIn => f.write_str("not signed in"),
            AuthError::WrongPassword(why) | AuthError::TooManyAttempts(why) => f.write_str(why),
            AuthError::ResetTokenInvalid => {
                f.write_str("the reset token is invalid, used or expired")
            }
            AuthError::JsonRequired => f.write_str("this request must be sent as application/json"),
            AuthError::ApiKeyInvalid => f.write_str("API key unknown, revoked or expired"),
            AuthError::SessionLimit(why)
            | AuthError::ClaimsHook(why)
            | AuthError::SecondFactorInvalid(why)
            | AuthError::SecondFactorState(why)
            | AuthError::IdentityRefused(why) => f.write_str(why),
            AuthError::ProviderUnreachable(why) => {
                write!(f, "the identity provider's keys could not be fetched: {why}")
            }
            AuthError::CodeInvalid => {
                f.write_str("the code or link is wrong, used or expired; request a new one")
            }
            AuthError::EmailNotVerified => f.write_str(
                "the email address of this account is not verified yet; verify it with the code or link sent to it",
            ),
            AuthError::ClaimsChanged => f.write_str(
                "request.jwt.claims was changed after auth.authenticate() in this transaction; \
                 auth.jwt() and auth.uid() answer only for the token auth.authenticate verified",
            ),
        }
    }
}

impl std::error::Error for AuthError {}

impl AuthError {
    /// The HTTP status PostgREST answers with when `auth.authenticate()` fails this way.
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::RoleNotAllowed(_) | AuthError::ClaimsChanged => 403,
            AuthError::TooManyAttempts(_) => 429,
            AuthError::ResetTokenInvalid => 400,
            AuthError::JsonRequired => 415,
            AuthError::SessionLimit(_) | AuthError::SecondFactorState(_) => 409,
            AuthError::EmailNotVerified | AuthError::IdentityRefused(_) => 403,
            AuthError::ProviderUnreachable(_) => 502,
            AuthError::InvalidKey(_)
            | AuthError::ClaimsHook(_)
            | AuthError::Storage(_)
            | AuthError::NoSigningKey
            | AuthError::InvalidArgument(_)
            | AuthError::NullArgument(_) => 500,
            _ => 401,
        }
    }
}
