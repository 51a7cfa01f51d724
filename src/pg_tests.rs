//! In-backend tests: the SQL functions inside a real PostgreSQL, run by `cargo pgrx test`.
//! SQLSTATE-level checks of every failure class live in regress/ and tests/.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn one<T: IntoDatum + FromDatum>(sql: &str) -> T {
        Spi::get_one::<T>(sql)
            .expect("query failed")
            .expect("NULL result")
    }

    const SECRET: &str = "'0123456789abcdef0123456789abcdef'";
    /// Key text is a secret only when the algorithm is named.
    const HS256: &str = r#"'{"algorithms": ["HS256"]}'"#;

    #[pg_test]
    fn hs256_round_trip_returns_the_claims() {
        let sub: String = one(&format!(
            "SELECT auth.verify_jwt(auth.sign_jwt('{{\"sub\":\"u1\"}}', {SECRET}), {SECRET}, {HS256}) ->> 'sub'"
        ));
        assert_eq!(sub, "u1");
    }

    #[pg_test]
    fn ring_round_trip_for_every_generated_algorithm() {
        for alg in [
            "HS256", "HS384", "HS512", "RS256", "PS512", "ES256", "ES384", "EdDSA",
        ] {
            let kid: String = one(&format!("SELECT auth.generate_key('{alg}')"));
            let token: String = one("SELECT auth.sign_jwt('{\"n\": 7}'::jsonb)");
            let header: String = one(&format!(
                "SELECT auth.decode_jwt_unverified('{token}') -> 'header' ->> 'kid'"
            ));
            assert_eq!(header, kid, "newest key signs ({alg})");
            let n: i32 = one(&format!("SELECT (auth.verify_jwt('{token}') ->> 'n')::int"));
            assert_eq!(n, 7);
        }
    }

    #[pg_test(
        error = "no key to verify this token: kid \"k-retire\" is not in the key ring or is retired"
    )]
    fn retiring_a_key_is_seen_by_the_next_statement() {
        let kid: String = one("SELECT auth.generate_key('ES256', 'k-retire')");
        let token: String = one("SELECT auth.sign_jwt('{}'::jsonb)");
        Spi::run(&format!("SELECT auth.verify_jwt('{token}')")).unwrap();
        Spi::run(&format!("SELECT auth.retire_key('{kid}')")).unwrap();
        Spi::run(&format!("SELECT auth.verify_jwt('{token}')")).unwrap();
    }

    #[pg_test]
    fn jwks_publishes_public_keys_only() {
        Spi::run("SELECT auth.generate_key('HS256'); SELECT auth.generate_key('EdDSA')").unwrap();
        let n: i64 = one("SELECT jsonb_array_length(auth.jwks() -> 'keys')");
        assert_eq!(n, 1);
        let has_private: bool = one("SELECT auth.jwks()::text ~ '\"d\"|PRIVATE|\"k\"'");
        assert!(!has_private);
    }

    #[pg_test]
    fn a_web_role_verifies_with_the_ring_it_cannot_read() {
        Spi::run("CREATE ROLE web_anon NOLOGIN").unwrap();
        Spi::run("SELECT auth.generate_key('ES256')").unwrap();
        let token: String = one("SELECT auth.sign_jwt('{\"ok\": true}'::jsonb)");
        // Another write empties the cache, so the web role's verify must load the ring itself.
        Spi::run("SELECT auth.generate_key('EdDSA', active_from => now() + interval '1 day')")
            .unwrap();
        Spi::run("SET LOCAL ROLE web_anon").unwrap();
        let ok: bool = one(&format!(
            "SELECT (auth.verify_jwt('{token}') ->> 'ok')::bool"
        ));
        assert!(ok);
        let user: String = one("SELECT current_user::text");
        assert_eq!(
            user, "web_anon",
            "loading the ring must give the caller's identity back"
        );
    }

    #[pg_test(error = "permission denied for table keys")]
    fn a_web_role_cannot_read_keys() {
        Spi::run("CREATE ROLE web_anon3 NOLOGIN").unwrap();
        Spi::run("SET LOCAL ROLE web_anon3").unwrap();
        Spi::run("SELECT secret FROM auth.keys").unwrap();
    }

    #[pg_test(error = "permission denied for function sign_jwt")]
    fn a_web_role_cannot_sign_with_the_ring() {
        Spi::run("CREATE ROLE web_anon2 NOLOGIN").unwrap();
        Spi::run("SELECT auth.generate_key('ES256')").unwrap();
        Spi::run("SET LOCAL ROLE web_anon2").unwrap();
        Spi::run("SELECT auth.sign_jwt('{\"role\": \"admin\"}'::jsonb)").unwrap();
    }

    #[pg_test(error = "invalid token signature")]
    fn a_token_signed_with_another_secret_is_refused() {
        Spi::run(&format!(
            "SELECT auth.verify_jwt(auth.sign_jwt('{{}}', {SECRET}), 'another-secret-of-at-least-32-chars!', {HS256})"
        ))
        .unwrap();
    }
}
