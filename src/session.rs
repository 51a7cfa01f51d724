//! Opaque tokens: 256 random bits from the OS behind a prefix that says what they are, handed to
//! the client once; only their SHA-256 is stored. Pure.

use sha2::{Digest, Sha256};

use crate::jwt::keygen::random_token;

pub const TOKEN_BYTES: usize = 32;
/// base64url of `TOKEN_BYTES`, unpadded.
const RANDOM_LEN: usize = 43;

/// What an opaque token is for; the prefix says it, so a token of one kind is never looked up as
/// another (a future API key, say, as a session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Session,
    PasswordReset,
    ApiKey,
    /// A one-time link (sign-in, email verification, email change).
    Link,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Session => "pas_",
            TokenKind::PasswordReset => "par_",
            // Secret scanners find leaked keys by this prefix and the 43 characters after it.
            TokenKind::ApiKey => "pak_",
            TokenKind::Link => "pal_",
        }
    }
}

/// How `auth.authenticate` treats a token it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Session,
    ApiKey,
    /// Anything else is read as a JWT (and refused as a malformed one if it is not).
    Jwt,
}

/// A new token of `kind` and the hash to store.
pub fn new_token(kind: TokenKind) -> (String, Vec<u8>) {
    let token = format!("{}{}", kind.prefix(), random_token(TOKEN_BYTES));
    let hash = hash_token(&token);
    (token, hash)
}

/// A short one-time code for the application to send (sign-in, email verification): six digits,
/// uniformly drawn (rejection sampling: no code is likelier than another).
pub fn new_short_code() -> String {
    use rand::RngCore;
    let bound = 1_000_000u32;
    let zone = u32::MAX - u32::MAX % bound;
    loop {
        let n = rand::rngs::OsRng.next_u32();
        if n < zone {
            return format!("{:06}", n % bound);
        }
    }
}

pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A session token is the session prefix and 43 base64url characters, an API key the API-key
/// prefix and 43. Unprefixed 43-character tokens are sessions created before 0.2.0, accepted
/// until they expire (at most pg_auth.session_lifetime after their login).
pub fn credential(token: &str) -> Credential {
    let is_random = |random: &str| {
        random.len() == RANDOM_LEN
            && random
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let prefixed = |kind: TokenKind| token.strip_prefix(kind.prefix()).is_some_and(is_random);
    if prefixed(TokenKind::Session) || is_random(token) {
        Credential::Session
    } else if prefixed(TokenKind::ApiKey) {
        Credential::ApiKey
    } else {
        Credential::Jwt
    }
}

/// Seconds between 1970-01-01 and 2000-01-01, PostgreSQL's timestamp epoch.
const POSTGRES_EPOCH_UNIX: i64 = 946_684_800;

/// The times of a session row, as PostgreSQL stores timestamptz (microseconds since 2000).
#[derive(Debug, Clone, Copy)]
pub struct SessionTimes {
    pub revoked: bool,
    pub expires_at: i64,
    pub idle_expires_at: i64,
    /// Until when the token the last refresh replaced still signs in.
    pub replaced_valid_until: Option<i64>,
}

impl SessionTimes {
    /// Not revoked and neither expiry passed at `now`.
    pub fn live_at(&self, now: i64) -> bool {
        !self.revoked && self.expires_at > now && self.idle_expires_at > now
    }

    pub fn replaced_token_valid_at(&self, now: i64) -> bool {
        self.replaced_valid_until.is_some_and(|until| until > now)
    }

    /// The `exp` claim of the session: the earlier expiry, in Unix seconds (rounded as
    /// PostgreSQL's `date_part('epoch', …)::int8` does).
    pub fn claims_exp(&self) -> i64 {
        unix_seconds(self.expires_at.min(self.idle_expires_at))
    }
}

/// A timestamptz as PostgreSQL stores it (microseconds since 2000) in Unix seconds, rounded as
/// `date_part('epoch', …)::int8` does.
pub fn unix_seconds(micros: i64) -> i64 {
    (micros as f64 / 1e6).round_ties_even() as i64 + POSTGRES_EPOCH_UNIX
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_codes_are_six_digits() {
        for _ in 0..100 {
            let code = new_short_code();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_only_hashes_match() {
        let (a, ha) = new_token(TokenKind::Session);
        let (b, hb) = new_token(TokenKind::Session);
        assert_ne!(a, b);
        assert!(a.starts_with("pas_") && a.len() == 4 + 43, "{a}");
        assert_eq!(ha, hash_token(&a));
        assert_ne!(ha, hb);
        assert!(new_token(TokenKind::PasswordReset).0.starts_with("par_"));
    }

    #[test]
    fn the_prefix_not_the_length_says_what_a_token_is() {
        let (session, _) = new_token(TokenKind::Session);
        let (reset, _) = new_token(TokenKind::PasswordReset);
        assert_eq!(credential(&session), Credential::Session);
        assert_eq!(
            credential(&session[4..]),
            Credential::Session,
            "pre-0.2.0 session"
        );
        assert_eq!(
            credential(&reset),
            Credential::Jwt,
            "a reset token is no session"
        );
        assert_eq!(
            credential(&format!("key_{}", &session[4..])),
            Credential::Jwt
        );
        assert_eq!(credential("pas_short"), Credential::Jwt);
        let (key, _) = new_token(TokenKind::ApiKey);
        assert!(key.starts_with("pak_") && key.len() == 47, "{key}");
        assert_eq!(credential(&key), Credential::ApiKey);
        assert_eq!(
            credential(&key[..46]),
            Credential::Jwt,
            "a truncated key is no key"
        );
        assert_eq!(credential("a.b.c"), Credential::Jwt);
    }

    #[test]
    fn a_session_lives_until_its_first_expiry_unless_revoked() {
        let times = SessionTimes {
            revoked: false,
            expires_at: 2_000,
            idle_expires_at: 1_000,
            replaced_valid_until: None,
        };
        assert!(times.live_at(999));
        assert!(!times.live_at(1_000), "idle expiry is exclusive");
        assert!(!SessionTimes {
            revoked: true,
            ..times
        }
        .live_at(0));
        assert!(!times.replaced_token_valid_at(0));
        let replaced = SessionTimes {
            replaced_valid_until: Some(500),
            ..times
        };
        assert!(replaced.replaced_token_valid_at(499) && !replaced.replaced_token_valid_at(500));
    }

    #[test]
    fn exp_is_the_earlier_expiry_in_unix_seconds() {
        let times = SessionTimes {
            revoked: false,
            expires_at: 7_000_000,
            idle_expires_at: 2_500_000,
            replaced_valid_until: None,
        };
        // 2.5 s after 2000-01-01 rounds to even, as float8 → int8 does.
        assert_eq!(times.claims_exp(), 946_684_802);
    }
}
