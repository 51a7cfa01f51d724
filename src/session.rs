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
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Session => "pas_",
            TokenKind::PasswordReset => "par_",
        }
    }
}

/// How `auth.authenticate` treats a token it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Session,
    /// Anything else is read as a JWT (and refused as a malformed one if it is not).
    Jwt,
}

/// A new token of `kind` and the hash to store.
pub fn new_token(kind: TokenKind) -> (String, Vec<u8>) {
    let token = format!("{}{}", kind.prefix(), random_token(TOKEN_BYTES));
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A session token is the session prefix and 43 base64url characters. Unprefixed 43-character
/// tokens are sessions created before 0.2.0, accepted until they expire (at most
/// pg_auth.session_lifetime after their login).
pub fn credential(token: &str) -> Credential {
    let random = token
        .strip_prefix(TokenKind::Session.prefix())
        .unwrap_or(token);
    let is_random = random.len() == RANDOM_LEN
        && random
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if is_random {
        Credential::Session
    } else {
        Credential::Jwt
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(credential("a.b.c"), Credential::Jwt);
    }
}
