//! Generating keys inside the database, from the operating system's CSPRNG (RSA keys from
//! aws-lc's DRBG, which it seeds). The result is key text that `keys::parse_keys` reads back: a
//! secret or a PKCS#8 PEM.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::Algorithm;
use pkcs8::{EncodePrivateKey, LineEnding};
use rand::rngs::OsRng;
use rand::RngCore;

use crate::error::{AuthError, Result};

/// RSA keys are generated with 2048 bits.
const RSA_KEY_SIZE: KeySize = KeySize::Rsa2048;

/// Random bytes from the OS, base64url-encoded: for HMAC secrets, key ids and (later) session tokens.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    B64.encode(buf)
}

/// Generates private key text for `alg`. HMAC secrets carry as many random bits as the hash.
pub fn generate_key_text(alg: Algorithm) -> Result<String> {
    let pem = match alg {
        Algorithm::HS256 => return Ok(random_token(32)),
        Algorithm::HS384 => return Ok(random_token(48)),
        Algorithm::HS512 => return Ok(random_token(64)),
        Algorithm::ES256 => p256::SecretKey::random(&mut OsRng).to_pkcs8_pem(LineEnding::LF),
        Algorithm::ES384 => p384::SecretKey::random(&mut OsRng).to_pkcs8_pem(LineEnding::LF),
        Algorithm::EdDSA => {
            ed25519_dalek::SigningKey::generate(&mut OsRng).to_pkcs8_pem(LineEnding::LF)
        }
        _ => return generate_rsa_pem(),
    };
    pem.map(|p| p.to_string())
        .map_err(|e| AuthError::InvalidKey(format!("key encoding failed: {e}")))
}

/// A new RSA key from aws-lc, as a PKCS#8 PEM ("PRIVATE KEY", LF line ends, like the others).
fn generate_rsa_pem() -> Result<String> {
    let failed = |what: &str| AuthError::InvalidKey(format!("RSA key {what} failed"));
    let key = KeyPair::generate(RSA_KEY_SIZE).map_err(|_| failed("generation"))?;
    let der = key.as_der().map_err(|_| failed("encoding"))?;
    let block = pem::Pem::new("PRIVATE KEY", der.as_ref());
    Ok(pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::keys::parse_single_key_as;

    #[test]
    fn every_generated_key_parses_back_with_a_signing_half() {
        for alg in [
            Algorithm::HS256,
            Algorithm::HS512,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
            Algorithm::PS256,
        ] {
            let key = parse_single_key_as(&generate_key_text(alg).unwrap(), Some(alg)).unwrap();
            assert!(key.algorithms.contains(&alg), "{alg:?}");
            assert!(key.sign.is_some(), "{alg:?}");
        }
    }

    #[test]
    fn random_tokens_differ_and_carry_256_bits() {
        let (a, b) = (random_token(32), random_token(32));
        assert_ne!(a, b);
        assert_eq!(B64.decode(a).unwrap().len(), 32);
    }
}
