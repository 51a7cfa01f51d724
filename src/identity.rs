//! Who the verified claims say the caller is: the role claim (a dotted path, default `role`) and
//! the rules a role must pass before we switch to it. Pure: catalog facts are handed in.

use serde_json::{Map, Value};

use crate::error::{AuthError, Result};

/// Reads the role claim at a dotted path (`role`, `app_metadata.role`). `None` when absent.
pub fn role_claim<'a>(claims: &'a Map<String, Value>, path: &str) -> Result<Option<&'a str>> {
    let mut parts = path.split('.').filter(|p| !p.is_empty());
    let first = parts
        .next()
        .ok_or_else(|| AuthError::InvalidArgument("pg_auth.role_claim is empty".into()))?;
    let mut value = claims.get(first);
    for part in parts {
        value = value.and_then(|v| v.get(part));
    }
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(_) => Err(AuthError::InvalidClaim(path.to_string())),
    }
}

/// Sets `value` at a dotted path (`role`, `app_metadata.role`), replacing whatever was on the
/// way, so the role a credential acts as is also the one its claims show there.
pub fn set_at_path(claims: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
    let Some(last) = parts.pop() else {
        return;
    };
    let mut node = claims;
    for part in parts {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else {
            return;
        };
        node = next;
    }
    node.insert(last.to_string(), value);
}

/// A uuid in its canonical text form (8-4-4-4-12 hex digits, either case), as `auth.sessions`
/// stores ids and pg_auth writes `sid` and `sub`; any other text is not one of our ids.
pub fn canonical_uuid(text: &str) -> Option<uuid::Uuid> {
    (text.len() == 36)
        .then(|| uuid::Uuid::try_parse(text).ok())
        .flatten()
}

/// What the catalog says about the role a token asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoleFacts {
    pub exists: bool,
    pub is_superuser: bool,
    /// The role is the session user (PostgREST's authenticator) itself.
    pub is_authenticator: bool,
    /// The session user is a member of the role (superuser status not counted).
    pub authenticator_is_member: bool,
}

/// The role rules (README, "Request authentication"): only roles the authenticator was granted, never a superuser, never the
/// authenticator itself, and only allow-listed ones when an allow-list is set.
pub fn check_role(role: &str, facts: RoleFacts, allowed: &[String]) -> Result<()> {
    let refuse = |why: &str| {
        Err(AuthError::RoleNotAllowed(format!(
            "\"{}\" {why}",
            crate::jwt::keys::truncate(role, 64)
        )))
    };
    if !facts.exists {
        return refuse("does not exist");
    }
    if facts.is_superuser {
        return refuse("is a superuser");
    }
    if facts.is_authenticator {
        return refuse("is the authenticator role itself");
    }
    if !allowed.is_empty() && !allowed.iter().any(|a| a == role) {
        return refuse("is not in pg_auth.allowed_roles");
    }
    if !facts.authenticator_is_member {
        return refuse("is not granted to the authenticator role");
    }
    Ok(())
}

/// Parses a comma-separated list setting (`pg_auth.allowed_roles`, audiences…).
pub fn list_setting(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    const OK: RoleFacts = RoleFacts {
        exists: true,
        is_superuser: false,
        is_authenticator: false,
        authenticator_is_member: true,
    };

    #[test]
    fn role_claim_follows_a_dotted_path() {
        let c = claims(json!({"role": "a", "app": {"role": "b"}, "n": 1}));
        assert_eq!(role_claim(&c, "role").unwrap(), Some("a"));
        assert_eq!(role_claim(&c, "app.role").unwrap(), Some("b"));
        assert_eq!(role_claim(&c, "missing.role").unwrap(), None);
        assert!(matches!(
            role_claim(&c, "n"),
            Err(AuthError::InvalidClaim(_))
        ));
    }

    #[test]
    fn each_rule_refuses_with_its_reason() {
        let none: Vec<String> = vec![];
        assert!(check_role("web", OK, &none).is_ok());
        for (facts, why) in [
            (
                RoleFacts {
                    exists: false,
                    ..OK
                },
                "does not exist",
            ),
            (
                RoleFacts {
                    is_superuser: true,
                    ..OK
                },
                "superuser",
            ),
            (
                RoleFacts {
                    is_authenticator: true,
                    ..OK
                },
                "authenticator role itself",
            ),
            (
                RoleFacts {
                    authenticator_is_member: false,
                    ..OK
                },
                "not granted",
            ),
        ] {
            let err = check_role("web", facts, &none).unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
        }
        let err = check_role("web", OK, &["app".to_string()]).unwrap_err();
        assert!(err.to_string().contains("allowed_roles"));
    }

    #[test]
    fn a_value_set_at_a_path_replaces_what_was_on_the_way() {
        let mut c = claims(json!({"app": {"role": "admin", "tenant": "t"}, "x": 1}));
        set_at_path(&mut c, "app.role", json!("web"));
        assert_eq!(
            Value::Object(c.clone()),
            json!({"app": {"role": "web", "tenant": "t"}, "x": 1})
        );
        set_at_path(&mut c, "x.role", json!("web"));
        assert_eq!(c["x"], json!({"role": "web"}));
        set_at_path(&mut c, "role", json!("r"));
        assert_eq!(role_claim(&c, "role").unwrap(), Some("r"));
        assert_eq!(role_claim(&c, "app.role").unwrap(), Some("web"));
    }

    #[test]
    fn list_settings_trim_and_skip_blanks() {
        assert_eq!(list_setting(Some(" a, ,b ")), vec!["a", "b"]);
        assert!(list_setting(None).is_empty());
    }
}
