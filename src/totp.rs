//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA1, 6 digits, 30-second
//! steps — what every authenticator app reads from an `otpauth://` URI. Recovery codes. Pure
//! logic, no pgrx.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use data_encoding::BASE32_NOPAD;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::RngCore;

pub const SECRET_BYTES: usize = 20;
pub const DIGITS: usize = 6;
pub const PERIOD: i64 = 30;
/// Steps either side of the current one still accepted (clock drift, a code typed at the turn).
pub const WINDOW: i64 = 1;

pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The step (30-second interval since the epoch) a Unix time falls in.
pub fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(PERIOD)
}

/// The code for `step` (RFC 4226 §5.3: dynamic truncation, then modulo 10^digits).
pub fn code_at(secret: &[u8], step: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &step.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    format!(
        "{:0width$}",
        binary % 10u32.pow(DIGITS as u32),
        width = DIGITS
    )
}

/// The step whose code `code` is, within `WINDOW` steps of `now`, and later than `last_used`
/// (a code is good once). Every candidate is computed and compared in constant time.
pub fn matching_step(
    secret: &[u8],
    code: &str,
    unix_seconds: i64,
    last_used: Option<i64>,
) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_seconds);
    let mut found = None;
    for step in now - WINDOW..=now + WINDOW {
        let matches = verify_slices_are_equal(code_at(secret, step).as_bytes(), code.as_bytes());
        if matches.is_ok() && last_used.is_none_or(|used| step > used) {
            found = Some(step);
        }
    }
    found
}

/// The secret as authenticator apps take it typed in: base32 without padding.
pub fn secret_text(secret: &[u8]) -> String {
    BASE32_NOPAD.encode(secret)
}

/// Characters escaped in the label and parameters of an `otpauth://` URI.
const URI_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');

/// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`, the
/// Key URI Format authenticator apps read from a QR code.
pub fn provisioning_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let issuer = utf8_percent_encode(issuer, URI_ESCAPE).to_string();
    let account = utf8_percent_encode(account, URI_ESCAPE);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={PERIOD}",
        secret_text(secret)
    )
}

/// Recovery codes: 10 groups of 5 characters from the base32 alphabet with a dash between
/// (50 random bits each), for a user who lost the authenticator.
pub const RECOVERY_CODES: usize = 10;

pub fn new_recovery_code() -> String {
    let mut bytes = [0u8; 7];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let text = BASE32_NOPAD.encode(&bytes);
    format!("{}-{}", &text[0..5], &text[5..10]).to_lowercase()
}

/// A recovery code as typed: case, spaces and dashes do not matter.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_sha1_vectors_to_six_digits() {
        // RFC 6238 Appendix B (8 digits); the last six digits are the 6-digit codes.
        for (time, eight) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(
                code_at(RFC_SECRET, step_at(time)),
                eight[2..],
                "time {time}"
            );
        }
    }

    #[test]
    fn a_code_matches_its_step_and_neighbours_only_once() {
        let now = 1_700_000_000;
        let step = step_at(now);
        let code = code_at(RFC_SECRET, step);
        assert_eq!(matching_step(RFC_SECRET, &code, now, None), Some(step));
        assert_eq!(
            matching_step(RFC_SECRET, &code, now + PERIOD, None),
            Some(step)
        );
        assert_eq!(
            matching_step(RFC_SECRET, &code, now - PERIOD, None),
            Some(step)
        );
        assert_eq!(
            matching_step(RFC_SECRET, &code, now + 2 * PERIOD, None),
            None
        );
        assert_eq!(matching_step(RFC_SECRET, &code, now, Some(step)), None);
        assert_eq!(
            matching_step(RFC_SECRET, &code, now, Some(step - 1)),
            Some(step)
        );
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(matching_step(RFC_SECRET, &spaced, now, None), Some(step));
    }

    #[test]
    fn malformed_codes_never_match() {
        for bad in [
            "",
            "12345",
            "1234567",
            "abcdef",
            "12345６",
            "-12345",
            "１２３４５６",
        ] {
            assert_eq!(matching_step(RFC_SECRET, bad, 59, None), None, "{bad:?}");
        }
    }

    #[test]
    fn the_uri_carries_the_base32_secret_and_escapes_names() {
        let uri = provisioning_uri(RFC_SECRET, "Todo & Co", "a+b@example.com");
        assert_eq!(
            uri,
            "otpauth://totp/Todo%20%26%20Co:a%2Bb%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Todo%20%26%20Co&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn recovery_codes_are_random_and_typed_loosely() {
        let a = new_recovery_code();
        assert_eq!(a.len(), 11);
        assert_ne!(a, new_recovery_code());
        assert_eq!(
            normalize_recovery_code(&a.to_uppercase().replace('-', " ")),
            a.replace('-', "")
        );
    }
}
