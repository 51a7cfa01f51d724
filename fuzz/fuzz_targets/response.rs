//! What reaches HTTP headers: `WWW-Authenticate` and the PGRST error for every error kind with
//! any text in it (errors quote parts of unverified tokens: kid, alg, role names), and the
//! `Set-Cookie` values. Header values must be printable ASCII, without CR or LF.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pg_auth_fuzz::error::AuthError;
use pg_auth_fuzz::response::CookieSpec;
use pg_auth_fuzz::support::{check_error, printable_ascii};

/// RFC 6265 cookie-octet: what a cookie value may hold unquoted.
fn cookie_octets(s: &str) -> bool {
    s.bytes().all(|b| {
        b == 0x21
            || (0x23..=0x2b).contains(&b)
            || (0x2d..=0x3a).contains(&b)
            || (0x3c..=0x5b).contains(&b)
            || (0x5d..=0x7e).contains(&b)
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (head, rest) = data.split_at(5);
    let text = String::from_utf8_lossy(rest).into_owned();
    // One error kind per input (the first byte picks it), carrying the input's text.
    let t = text.clone();
    let err = match head[0] % 19 {
        0 => AuthError::MalformedToken(t),
        1 => AuthError::MissingClaim(t),
        2 => AuthError::InvalidClaim(t),
        3 => AuthError::UnknownKid(t),
        4 => AuthError::AlgorithmNotAllowed(t),
        5 => AuthError::InvalidKey(t),
        6 => AuthError::InvalidArgument(t),
        7 => AuthError::RoleNotAllowed(t),
        8 => AuthError::TokenTooLarge {
            size: rest.len(),
            max: head[1] as usize,
        },
        9 => AuthError::BadSignature,
        10 => AuthError::Expired,
        11 => AuthError::NotYetValid("nbf"),
        12 => AuthError::WrongAudience,
        13 => AuthError::WrongIssuer,
        14 => AuthError::NoSigningKey,
        15 => AuthError::NullArgument("token"),
        16 => AuthError::NoCredentials,
        17 => AuthError::Revoked,
        _ => AuthError::SessionInvalid,
    };
    check_error(&err);
    // Cookies: the name comes from pg_auth.cookie_name, the value is a session token pg_auth
    // made (auth.session_cookie is not executable by PUBLIC). For any name and value that are
    // cookie-octets, the header is printable and parses back to the same cookie.
    let max_age = i32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    let (name, value) = text.split_once('=').unwrap_or(("access_token", &text));
    let spec = CookieSpec {
        name: name.to_string(),
        secure: head[0] & 0x80 != 0,
    };
    let built = spec.build(value.to_string(), i64::from(max_age.max(0)));
    let cleared = spec.clearing();
    if !name.is_empty() && cookie_octets(name) && cookie_octets(value) {
        for header in [&built, &cleared] {
            assert!(printable_ascii(header), "{header:?}");
            let parsed = cookie::Cookie::parse(header.as_str()).expect("Set-Cookie parses");
            assert_eq!(parsed.name(), name);
            assert_eq!(parsed.http_only(), Some(true));
            assert_eq!(parsed.secure().unwrap_or(false), spec.secure);
        }
        let parsed = cookie::Cookie::parse(built.as_str()).unwrap();
        assert_eq!(parsed.value(), value);
        let age = parsed.max_age().expect("Max-Age").whole_seconds();
        assert_eq!(age, i64::from(max_age.max(0)));
        assert_eq!(
            cookie::Cookie::parse(cleared.as_str())
                .unwrap()
                .max_age()
                .unwrap()
                .whole_seconds(),
            0
        );
    }
});
