//! What one `jsonwebtoken::decode::<serde_json::Value>` call costs outside PostgreSQL, per
//! algorithm: the floor that `auth.verify_jwt` is compared with in bench/run.sh.
//!
//! Usage: pg_auth_crate_cost DIR [ALG...]
//! DIR holds, for each algorithm ALG, `ALG.key` (the HMAC secret, or the PUBLIC key as PEM) and
//! `ALG.tokens` (one token per line, all valid, as signed by pg_auth). The key is parsed ONCE
//! into a `DecodingKey` and the `Validation` is built once; then every token is decoded in turn,
//! pass after pass. Prints one line per algorithm: `ALG <median µs/call> <min µs/call> <calls/pass>`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};

/// Wall time aimed at for one timed pass (several passes over the token list if it is short).
const PASS_TARGET: Duration = Duration::from_millis(300);
const PASSES: usize = 7;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: pg_auth_crate_cost DIR [ALG...]");
    let mut algs: Vec<String> = args.collect();
    if algs.is_empty() {
        algs = ["HS256", "RS256", "ES256", "EdDSA"].iter().map(|s| s.to_string()).collect();
    }
    for name in algs {
        let key_text = std::fs::read_to_string(format!("{dir}/{name}.key")).expect("read key");
        let tokens_text = std::fs::read_to_string(format!("{dir}/{name}.tokens")).expect("read tokens");
        let tokens: Vec<&str> = tokens_text.lines().filter(|l| !l.is_empty()).collect();
        assert!(!tokens.is_empty(), "no tokens for {name}");

        let alg: Algorithm = name.parse().expect("algorithm name");
        // Parsed once, reused for every call.
        let key = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => DecodingKey::from_secret(key_text.trim_end_matches('\n').as_bytes()),
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => DecodingKey::from_rsa_pem(key_text.as_bytes()).expect("RSA PEM"),
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(key_text.as_bytes()).expect("EC PEM"),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(key_text.as_bytes()).expect("Ed25519 PEM"),
            _ => panic!("unsupported algorithm {name}"),
        };
        // The checks pg_auth asks for by default: exp and nbf with a 30 s leeway, no required claim.
        let mut validation = Validation::new(alg);
        validation.leeway = 30;
        validation.validate_nbf = true;
        validation.required_spec_claims.clear();

        let run_once = |t: &str| {
            let data = decode::<serde_json::Value>(black_box(t), &key, &validation)
                .unwrap_or_else(|e| panic!("{name}: token does not verify: {e}"));
            black_box(data);
        };

        // Warm-up, and a measure of how many calls fill PASS_TARGET.
        let start = Instant::now();
        for t in &tokens {
            run_once(t);
        }
        let per_call = start.elapsed().as_secs_f64() / tokens.len() as f64;
        let calls = ((PASS_TARGET.as_secs_f64() / per_call) as usize).clamp(tokens.len().min(1000), 2_000_000);

        let mut samples = Vec::with_capacity(PASSES);
        for _ in 0..PASSES {
            let start = Instant::now();
            for t in tokens.iter().cycle().take(calls) {
                run_once(t);
            }
            samples.push(start.elapsed().as_secs_f64() * 1e6 / calls as f64);
        }
        samples.sort_by(f64::total_cmp);
        println!("{name} {:.3} {:.3} {calls}", samples[PASSES / 2], samples[0]);
    }
}
