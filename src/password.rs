//! Password hashing: argon2id PHC strings for new hashes; bcrypt (`$2a$`, `$2b$`, `$2y$`, as
//! pgcrypto's `crypt()` makes them) still verifies, and is flagged for re-hashing. Pure.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;

use crate::error::{AuthError, Result};

/// Passwords longer than this are refused before hashing: hashing cost must stay bounded.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// argon2id cost. Defaults follow OWASP's recommendation (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Cost {
    fn default() -> Self {
        Cost {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Cost {
    fn hasher(&self) -> Result<Argon2<'static>> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| AuthError::InvalidArgument(format!("invalid argon2 cost: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

fn check_length(password: &str) -> Result<()> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AuthError::InvalidArgument(format!(
            "password is longer than {MAX_PASSWORD_LEN} bytes"
        )));
    }
    Ok(())
}

/// A new argon2id PHC string with a random salt.
pub fn hash(password: &str, cost: Cost) -> Result<String> {
    check_length(password)?;
    let salt = SaltString::generate(&mut OsRng);
    cost.hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::InvalidArgument(format!("password hashing failed: {e}")))
}

/// Checks `password` against a stored hash (argon2id PHC or bcrypt). An unreadable stored
/// hash is an error, not a silent "wrong password".
pub fn verify(password: &str, stored: &str) -> Result<bool> {
    check_length(password)?;
    if is_bcrypt(stored) {
        return bcrypt::verify(password, stored).map_err(|e| {
            AuthError::InvalidArgument(format!("stored bcrypt hash is unreadable: {e}"))
        });
    }
    let parsed = parse_argon2id(stored)?;
    // Argon2::default() verifies with the parameters written in the hash itself.
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(AuthError::InvalidArgument(format!(
            "password check failed: {e}"
        ))),
    }
}

/// Whether a stored hash should be replaced at the next successful login: bcrypt, or argon2id
/// at another cost than the configured one.
pub fn needs_rehash(stored: &str, cost: Cost) -> bool {
    if is_bcrypt(stored) {
        return true;
    }
    let Ok(parsed) = parse_argon2id(stored) else {
        return true;
    };
    !Params::try_from(&parsed).is_ok_and(|p| {
        p.m_cost() == cost.memory_kib
            && p.t_cost() == cost.iterations
            && p.p_cost() == cost.parallelism
    })
}

fn parse_argon2id(stored: &str) -> Result<PasswordHash<'_>> {
    let parsed = PasswordHash::new(stored).map_err(|e| {
        AuthError::InvalidArgument(format!("stored password hash is unreadable: {e}"))
    })?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(AuthError::InvalidArgument(format!(
            "stored password hash uses {}, expected argon2id or bcrypt",
            parsed.algorithm
        )));
    }
    Ok(parsed)
}

fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

/// Spends the time of one real check, for logins of unknown users (no timing oracle on emails).
pub fn verify_nothing(password: &str, cost: Cost) {
    let _ = hash(password.get(..MAX_PASSWORD_LEN).unwrap_or(password), cost);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Cost = Cost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn argon2id_round_trip() {
        let h = hash("correct horse", CHEAP).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(verify("correct horse", &h).unwrap());
        assert!(!verify("wrong horse", &h).unwrap());
        assert!(!needs_rehash(&h, CHEAP));
    }

    #[test]
    fn other_cost_asks_for_rehash() {
        let h = hash("pw", CHEAP).unwrap();
        let stronger = Cost {
            memory_kib: 128,
            ..CHEAP
        };
        assert!(verify("pw", &h).unwrap());
        assert!(needs_rehash(&h, stronger));
    }

    #[test]
    fn bcrypt_from_pgcrypto_verifies_and_asks_for_rehash() {
        // crypt('secret', gen_salt('bf', 4)) from pgcrypto.
        let h = bcrypt::hash_with_salt("secret", 4, [7u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoA);
        assert!(h.starts_with("$2a$04$"));
        assert!(verify("secret", &h).unwrap());
        assert!(!verify("Secret", &h).unwrap());
        assert!(needs_rehash(&h, CHEAP));
        let y = h.replacen("$2a$", "$2y$", 1);
        assert!(verify("secret", &y).unwrap());
    }

    #[test]
    fn garbage_hashes_and_huge_passwords_are_errors() {
        assert!(verify("pw", "plaintext").is_err());
        assert!(verify("pw", "$2b$04$short").is_err());
        assert!(hash(&"x".repeat(MAX_PASSWORD_LEN + 1), CHEAP).is_err());
    }
}
