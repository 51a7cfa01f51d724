use pgrx::prelude::*;
use pgrx::JsonB;

use crate::error::{AuthError, Result};
use crate::jwt::keygen::generate_key_text;
use crate::jwt::keys::parse_algorithm;
use crate::jwt::ring::{describe_keys, StoredKey};
use crate::keyring;
use crate::sqlstate::OrRaise;

// Spelled out in each signature: pgrx must see `TableIterator` itself to make a table function.
type KeyRow = (String, String, Option<String>, Option<JsonB>);

fn rows(keys: Vec<StoredKey>) -> TableIterator<'static, KeyRow> {
    TableIterator::new(keys.into_iter().map(|k| {
        (
            k.kid,
            k.algorithm.to_string(),
            k.secret,
            k.public_jwk.map(JsonB),
        )
    }))
}

/// The public keys of the ring as a JWKS: the value for PostgREST's `jwt-secret`.
#[pg_extern(stable, parallel_safe)]
fn jwks() -> JsonB {
    JsonB(
        keyring::ring()
            .map(|ring| ring.jwks(keyring::now()))
            .or_raise(),
    )
}

/// Key parsing and generation for sql/keys.sql, in schema `auth_internal`.
#[pg_schema]
pub(crate) mod auth_internal {
    use super::*;

    /// Parses key text into the rows `auth.add_key` / `auth.add_jwks` store. Reads no table.
    #[pg_extern(immutable, parallel_safe)]
    pub(crate) fn describe_key(
        key: Option<&str>,
        kid: default!(Option<&str>, "NULL"),
        algorithm: default!(Option<&str>, "NULL"),
    ) -> TableIterator<
        'static,
        (
            name!(kid, String),
            name!(algorithm, String),
            name!(secret, Option<String>),
            name!(public_jwk, Option<JsonB>),
        ),
    > {
        rows(describe(key, kid, algorithm).or_raise())
    }

    fn describe(
        key: Option<&str>,
        kid: Option<&str>,
        algorithm: Option<&str>,
    ) -> Result<Vec<StoredKey>> {
        describe_keys(key.ok_or(AuthError::NullArgument("key"))?, kid, algorithm)
    }

    /// Fresh key material from the OS CSPRNG, as the row `auth.generate_key` stores.
    #[pg_extern(volatile, parallel_safe)]
    pub(crate) fn new_key_material(
        algorithm: Option<&str>,
        kid: default!(Option<&str>, "NULL"),
    ) -> TableIterator<
        'static,
        (
            name!(kid, String),
            name!(algorithm, String),
            name!(secret, Option<String>),
            name!(public_jwk, Option<JsonB>),
        ),
    > {
        rows(generate(algorithm, kid).or_raise())
    }

    fn generate(algorithm: Option<&str>, kid: Option<&str>) -> Result<Vec<StoredKey>> {
        let alg = parse_algorithm(algorithm.ok_or(AuthError::NullArgument("algorithm"))?)?;
        let text = generate_key_text(alg)?;
        describe_keys(&text, kid, Some(crate::jwt::keys::alg_name(alg)))
    }
}
