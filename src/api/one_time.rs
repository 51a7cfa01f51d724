//! The Rust helpers behind sql/one_time_codes.sql and sql/second_factor.sql: random codes and
//! link tokens, TOTP secrets, URIs and checks, recovery codes. The logic is in `crate::totp` and
//! `crate::session`.

use pgrx::prelude::*;

use crate::session::TokenKind;
use crate::totp;

#[pg_schema]
pub(crate) mod auth_internal {
    use super::*;

    /// Six random digits for the application to send.
    #[pg_extern(volatile, parallel_safe)]
    fn new_short_code() -> String {
        crate::session::new_short_code()
    }

    /// A new one-time link token (`pal_` and 256 random bits) and its SHA-256.
    #[pg_extern(volatile, parallel_safe)]
    fn new_link_token() -> TableIterator<'static, (name!(token, String), name!(token_hash, Vec<u8>))>
    {
        TableIterator::once(crate::session::new_token(TokenKind::Link))
    }

    /// 160 random bits for a TOTP factor.
    #[pg_extern(volatile, parallel_safe)]
    fn new_totp_secret() -> Vec<u8> {
        totp::new_secret()
    }

    /// The secret as base32, for typing into an authenticator app.
    #[pg_extern(immutable, parallel_safe, strict)]
    fn totp_secret_text(secret: &[u8]) -> String {
        totp::secret_text(secret)
    }

    /// The `otpauth://totp/…` URI to show as a QR code.
    #[pg_extern(immutable, parallel_safe, strict)]
    fn totp_uri(secret: &[u8], issuer: &str, account: &str) -> String {
        totp::provisioning_uri(secret, issuer, account)
    }

    /// The step `code` belongs to at `unix_seconds` (± one step), when it is later than
    /// `last_used_step`; NULL when the code does not match or was used.
    #[pg_extern(immutable, parallel_safe)]
    fn totp_matching_step(
        secret: &[u8],
        code: Option<&str>,
        unix_seconds: i64,
        last_used_step: Option<i64>,
    ) -> Option<i64> {
        totp::matching_step(secret, code?, unix_seconds, last_used_step)
    }

    /// Ten new recovery codes, shown once.
    #[pg_extern(volatile, parallel_safe)]
    fn new_recovery_codes() -> Vec<String> {
        (0..totp::RECOVERY_CODES)
            .map(|_| totp::new_recovery_code())
            .collect()
    }

    /// A recovery code as stored: case, spaces and dashes removed (the SHA-256 is taken in SQL).
    #[pg_extern(immutable, parallel_safe, strict)]
    fn normalize_recovery_code(code: &str) -> String {
        totp::normalize_recovery_code(code)
    }
}
