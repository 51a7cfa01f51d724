//! Session tokens: 256 random bits from the OS, handed to the client once; only their SHA-256
//! is stored. Pure.

use sha2::{Digest, Sha256};

use crate::jwt::keygen::random_token;

pub const TOKEN_BYTES: usize = 32;

/// A new token and the hash to store.
pub fn new_token() -> (String, Vec<u8>) {
    let token = random_token(TOKEN_BYTES);
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Opaque session tokens are 43 base64url characters; JWTs have dots.
pub fn is_session_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_only_hashes_match() {
        let (a, ha) = new_token();
        let (b, hb) = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(ha, hash_token(&a));
        assert_ne!(ha, hb);
        assert!(is_session_token(&a) && !is_session_token("a.b.c") && !is_session_token("garbage"));
    }
}
