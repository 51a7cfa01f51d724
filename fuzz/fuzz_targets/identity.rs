//! The role claim: claims JSON, 0xFF, dotted path (`pg_auth.role_claim`), 0xFF, allow-list
//! (`pg_auth.allowed_roles`); the first byte sets the catalog facts. `role_claim` is checked
//! against a restatement of the path rule and `check_role` against the role rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pg_auth_fuzz::error::AuthError;
use pg_auth_fuzz::identity::{check_role, list_setting, role_claim, RoleFacts};
use pg_auth_fuzz::support::{check_error, split_ff};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&bits, rest)) = data.split_first() else {
        return;
    };
    let (claims, tail) = split_ff(rest);
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(claims) else {
        return;
    };
    let (path, allowed) = split_ff(tail.unwrap_or(b"role"));
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let allowed = list_setting(allowed.map(String::from_utf8_lossy).as_deref());
    for a in &allowed {
        assert!(!a.is_empty() && a.trim() == a && !a.contains(','));
    }
    let segments: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
    let at_path = segments.split_first().and_then(|(first, others)| {
        others
            .iter()
            .try_fold(claims.get(*first)?, |v: &Value, p| v.get(*p))
    });
    let role = match role_claim(&claims, path) {
        Ok(role) => {
            assert!(!segments.is_empty());
            match role {
                Some(r) => {
                    assert!(!r.is_empty());
                    assert_eq!(at_path, Some(&Value::String(r.to_string())));
                }
                None => assert!(at_path.is_none_or(Value::is_null)),
            }
            role
        }
        Err(e) => {
            match &e {
                AuthError::InvalidArgument(_) => assert!(segments.is_empty()),
                AuthError::InvalidClaim(p) => {
                    assert_eq!(p, path);
                    let v = at_path.expect("an invalid claim is present");
                    assert!(!v.is_null() && v.as_str().is_none_or(str::is_empty));
                }
                other => panic!("unexpected {other:?}"),
            }
            check_error(&e);
            return;
        }
    };
    let Some(role) = role else { return };
    let facts = RoleFacts {
        exists: bits & 1 != 0,
        is_superuser: bits & 2 != 0,
        is_authenticator: bits & 4 != 0,
        authenticator_is_member: bits & 8 != 0,
    };
    let allowed_ok = allowed.is_empty() || allowed.iter().any(|a| a == role);
    let ok = facts.exists
        && !facts.is_superuser
        && !facts.is_authenticator
        && facts.authenticator_is_member
        && allowed_ok;
    match check_role(role, facts, &allowed) {
        Ok(()) => assert!(ok),
        Err(e) => {
            assert!(!ok);
            assert!(matches!(e, AuthError::RoleNotAllowed(_)));
            assert_eq!(e.http_status(), 403);
            check_error(&e);
        }
    }
});
