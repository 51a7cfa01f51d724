//! pg_auth's pure modules (no pgrx), compiled from `../src` as they are, plus what the fuzz
//! targets share: fixed test keys, token building and the properties checked on every result.
//! The extension itself cannot link outside PostgreSQL; these modules never touch it.

#[path = "../../src/error.rs"]
pub mod error;
#[path = "../../src/identity.rs"]
pub mod identity;
#[path = "../../src/jwt/mod.rs"]
pub mod jwt;
#[path = "../../src/password.rs"]
pub mod password;
#[path = "../../src/request.rs"]
pub mod request;
#[path = "../../src/response.rs"]
pub mod response;
#[path = "../../src/session.rs"]
pub mod session;

pub mod support;
