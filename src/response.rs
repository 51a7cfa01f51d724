//! What PostgREST turns into an HTTP response: the `PGRST` error's JSON message and detail
//! (status and headers), and cookies. Pure.

use cookie::{Cookie, SameSite};
use serde_json::{json, Value};

use crate::error::AuthError;

/// Cookie attributes from the `pg_auth.cookie_*` settings.
#[derive(Debug, Clone)]
pub struct CookieSpec {
    pub name: String,
    pub secure: bool,
}

impl CookieSpec {
    /// `Set-Cookie` value that makes the browser drop the cookie.
    pub fn clearing(&self) -> String {
        self.build(String::new(), 0)
    }

    /// `Set-Cookie` value for `value`, kept `max_age` seconds.
    pub fn build(&self, value: String, max_age: i64) -> String {
        Cookie::build((self.name.clone(), value))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .max_age(cookie::time::Duration::seconds(max_age))
            .build()
            .to_string()
    }
}

/// Text that may go into an HTTP header or status line: printable ASCII only (no CR/LF, no
/// control or non-ASCII characters, which an unverified token can carry), quotes and backslashes
/// as `'`.
pub fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// RFC 6750's `WWW-Authenticate` for a refused token. The description may quote parts of an
/// unverified token (`kid`, `alg`, a role name): only printable ASCII reaches the header, and
/// quotes and backslashes become `'`.
pub fn www_authenticate(err: &AuthError) -> String {
    let description = header_safe(&err.to_string());
    match err {
        AuthError::NoCredentials | AuthError::NotSignedIn | AuthError::WrongPassword(_) => {
            "Bearer".to_string()
        }
        AuthError::RoleNotAllowed(_) => {
            format!("Bearer error=\"insufficient_scope\", error_description=\"{description}\"")
        }
        _ => format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
    }
}

/// The `message` and `detail` of a `PGRST` error, as PostgREST 12 reads them: message is the
/// JSON body `{code, message, details, hint}`, detail carries `{status, headers}`.
pub fn pgrst_error(
    err: &AuthError,
    sqlstate: &str,
    clear: Option<&CookieSpec>,
) -> (String, String) {
    // RFC 9110: a 401 says how to authenticate, a 403 why the token is not enough.
    let mut headers = match err.http_status() {
        401 | 403 => json!({ "WWW-Authenticate": www_authenticate(err) }),
        _ => json!({}),
    };
    if let Some(spec) = clear {
        headers["Set-Cookie"] = Value::String(spec.clearing());
    }
    let body =
        json!({ "code": sqlstate, "message": err.to_string(), "details": null, "hint": null });
    let detail = json!({ "status": err.http_status(), "headers": headers });
    (body.to_string(), detail.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearing_cookie_expires_now_with_safe_attributes() {
        let spec = CookieSpec {
            name: "access_token".into(),
            secure: true,
        };
        let c = spec.clearing();
        assert!(c.starts_with("access_token=;"), "{c}");
        for attr in ["Max-Age=0", "HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
            assert!(c.contains(attr), "{c} lacks {attr}");
        }
        assert!(!CookieSpec {
            secure: false,
            ..spec
        }
        .clearing()
        .contains("Secure"));
    }

    #[test]
    fn only_printable_ascii_reaches_the_header() {
        let err = AuthError::UnknownKid(
            "kid \"a\r\nSet-Cookie: x=1\u{e9}\\\" is not in the key ring".into(),
        );
        let header = www_authenticate(&err);
        assert!(
            header.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{header}"
        );
        assert!(header.contains("a??Set-Cookie: x=1?'"), "{header}");
    }

    #[test]
    fn pgrst_error_carries_status_and_headers() {
        let spec = CookieSpec {
            name: "t".into(),
            secure: true,
        };
        let (message, detail) = pgrst_error(&AuthError::Expired, "PA004", Some(&spec));
        let message: Value = serde_json::from_str(&message).unwrap();
        let detail: Value = serde_json::from_str(&detail).unwrap();
        assert_eq!(message["code"], "PA004");
        assert_eq!(detail["status"], 401);
        assert!(detail["headers"]["WWW-Authenticate"]
            .as_str()
            .unwrap()
            .contains("invalid_token"));
        assert!(detail["headers"]["Set-Cookie"]
            .as_str()
            .unwrap()
            .contains("Max-Age=0"));
        let (_, detail) = pgrst_error(&AuthError::RoleNotAllowed("x".into()), "42501", None);
        assert!(detail.contains("403"));
    }
}
