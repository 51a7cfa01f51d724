//! Turning key text (an HMAC secret, a PEM, a JWK or a JWKS) into keys that can verify and
//! perhaps sign. Every key is fully parsed and checked here, once, so that verifying a token never
//! parses key material again and a broken key is reported when it is added, not when it is used.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use std::rc::Rc;

use jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
use jsonwebtoken::crypto::JwtVerifier;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use serde_json::{json, Map, Value};

use crate::error::{AuthError, Result};

/// PostgREST's rule for HMAC secrets, and RFC 7518's minimum for HS256.
pub const MIN_SECRET_LEN: usize = 32;
pub const MIN_RSA_BITS: usize = 2048;
/// aws-lc signs with RSA keys of up to 8192 bits.
pub const MAX_RSA_PRIVATE_BITS: usize = 8192;
/// Public RSA keys (PEM or JWK) of more bits are refused, as they always were.
pub const MAX_RSA_PUBLIC_BITS: usize = 4096;
/// Bounds the work spent on a key argument (a JWKS of a few dozen RSA keys fits easily).
pub const MAX_KEY_TEXT_LEN: usize = 256 * 1024;

/// One parsed key: what it may verify, and its signing half when we hold the private key.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    /// The algorithms this key may be used with, most usual first. Never empty; all of one family.
    pub algorithms: Vec<Algorithm>,
    pub verify: DecodingKey,
    pub sign: Option<EncodingKey>,
    /// The public half as a JWK (`kty` and its parameters only); `None` for HMAC secrets.
    pub public_jwk: Option<Map<String, Value>>,
    /// The crate's verifier for a key narrowed to one algorithm, built once (ring keys). Its
    /// HMAC key schedule is built once; aws-lc reads RSA and EC public keys per call.
    verifier: Option<Rc<dyn JwtVerifier>>,
}

impl Key {
    pub fn family(&self) -> AlgorithmFamily {
        self.algorithms[0].family()
    }

    pub fn with_kid(self, kid: Option<String>) -> Key {
        Key { kid, ..self }
    }

    /// The algorithm comes from the key: a token or caller may only pick among the key's own.
    pub fn check_allows(&self, alg: Algorithm) -> Result<()> {
        if self.algorithms.contains(&alg) {
            return Ok(());
        }
        let allowed: Vec<&str> = self.algorithms.iter().map(|a| alg_name(*a)).collect();
        Err(AuthError::AlgorithmNotAllowed(format!(
            "{} cannot be used with this {} key, which allows only {}",
            alg_name(alg),
            family_name(self.family()),
            allowed.join(", ")
        )))
    }

    /// Narrows the key to one algorithm, which must be one it allows, and prepares its verifier.
    pub fn restrict_to(mut self, alg: Algorithm) -> Result<Key> {
        self.check_allows(alg)?;
        self.algorithms = vec![alg];
        self.verifier = Some(Rc::from(new_verifier(alg, &self.verify)?));
        Ok(self)
    }

    /// Builds the verifier for the key's first (most usual) algorithm now, for a key that will
    /// verify many tokens; other algorithms of its family still work, built per call.
    pub fn prepared(mut self) -> Result<Key> {
        if self.verifier.is_none() {
            self.verifier = Some(Rc::from(new_verifier(self.algorithms[0], &self.verify)?));
        }
        Ok(self)
    }

    /// Checks `signature` over `message` with `alg` (which the caller checked the key allows).
    pub fn signature_matches(
        &self,
        alg: Algorithm,
        message: &[u8],
        signature: Vec<u8>,
    ) -> Result<bool> {
        let verify = |v: &dyn JwtVerifier| v.verify(message, &signature).is_ok();
        match &self.verifier {
            Some(v) if v.algorithm() == alg => Ok(verify(v.as_ref())),
            _ => Ok(verify(new_verifier(alg, &self.verify)?.as_ref())),
        }
    }

    /// The public JWK as published by `auth.jwks()`: with `kid`, `alg` and `use`.
    pub fn published_jwk(&self) -> Option<Value> {
        let mut jwk = self.public_jwk.clone()?;
        if let Some(kid) = &self.kid {
            jwk.insert("kid".into(), json!(kid));
        }
        if self.algorithms.len() == 1 {
            jwk.insert("alg".into(), json!(alg_name(self.algorithms[0])));
        }
        jwk.insert("use".into(), json!("sig"));
        Some(Value::Object(jwk))
    }
}

fn new_verifier(alg: Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    (DEFAULT_PROVIDER.verifier_factory)(&alg, key)
        .map_err(|e| AuthError::InvalidKey(format!("the key cannot verify {}: {e}", alg_name(alg))))
}

pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}

pub fn family_name(family: AlgorithmFamily) -> &'static str {
    match family {
        AlgorithmFamily::Hmac => "HMAC",
        AlgorithmFamily::Rsa => "RSA",
        AlgorithmFamily::Ec => "EC",
        AlgorithmFamily::Ed => "Ed25519",
    }
}

/// Parses an algorithm name as written in a JWT header or by a user (`"none"` is refused).
pub fn parse_algorithm(name: &str) -> Result<Algorithm> {
    name.parse::<Algorithm>().map_err(|_| {
        AuthError::AlgorithmNotAllowed(format!(
            "\"{}\" is not one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, \
             ES256, ES384, EdDSA",
            truncate(name, 40)
        ))
    })
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Parses key text. A JWKS gives one key per usable entry; anything else gives exactly one.
/// Text that is neither PEM nor JSON is refused: an HMAC secret must be named (`parse_keys_as`).
pub fn parse_keys(text: &str) -> Result<Vec<Key>> {
    parse_keys_as(text, None)
}

/// Parses key text for use with `algorithm` when the caller names one. PEM and JSON (JWK,
/// JWKS) describe themselves; any other text is an HMAC secret only when `algorithm` is an HS*
/// one. Nothing is guessed: OpenSSH keys, hex or base64 DER, raw curve points and base64 of a
/// PEM look exactly like random secrets, so guessing would let a public key become the secret
/// of a forged HS256 token.
pub fn parse_keys_as(text: &str, algorithm: Option<Algorithm>) -> Result<Vec<Key>> {
    if text.len() > MAX_KEY_TEXT_LEN {
        return Err(AuthError::InvalidKey(format!(
            "key text is {} bytes, at most {MAX_KEY_TEXT_LEN} are accepted",
            text.len()
        )));
    }
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.starts_with('{') {
        let value: Value = serde_json::from_str(trimmed)
            .map_err(|e| AuthError::InvalidKey(format!("key looks like JSON but is not: {e}")))?;
        return match value.get("keys") {
            Some(keys) => parse_jwks(keys),
            None => Ok(vec![parse_jwk(&value)?]),
        };
    }
    if trimmed.starts_with('[') {
        return Err(AuthError::InvalidKey(
            "a JSON array is not a key; a JWKS is {\"keys\": [...]}".into(),
        ));
    }
    if let Some(start) = trimmed.find("-----BEGIN") {
        return Ok(vec![parse_pem(&trimmed[start..])?]);
    }
    match algorithm {
        Some(alg) if alg.family() == AlgorithmFamily::Hmac => Ok(vec![hmac_key(text.as_bytes())?]),
        Some(alg) => Err(AuthError::InvalidKey(format!(
            "a {} key must be given as PEM or JWK; this text is neither",
            alg_name(alg)
        ))),
        None => Err(AuthError::InvalidKey(
            "key text that is not PEM or JWK is an HMAC secret only when the algorithm is named \
             (verify_jwt: options {\"algorithms\": [\"HS256\"]}; add_key: algorithm => 'HS256')"
                .into(),
        )),
    }
}

/// Whether key text says what kind of key it is (PEM or JSON); any other text can only be a
/// secret, and only when an HS* algorithm is named.
pub fn describes_itself(text: &str) -> bool {
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    trimmed.starts_with('{') || trimmed.starts_with('[') || trimmed.contains("-----BEGIN")
}

/// Parses key text that must describe exactly one key (a JWKS with one usable key is fine).
pub fn parse_single_key(text: &str) -> Result<Key> {
    parse_single_key_as(text, None)
}

/// `parse_single_key` for use with `algorithm` (see `parse_keys_as`).
pub fn parse_single_key_as(text: &str, algorithm: Option<Algorithm>) -> Result<Key> {
    let mut keys = parse_keys_as(text, algorithm)?;
    if keys.len() != 1 {
        return Err(AuthError::InvalidKey(format!(
            "expected one key, the JWKS holds {}",
            keys.len()
        )));
    }
    Ok(keys.remove(0))
}

fn hmac_key(secret: &[u8]) -> Result<Key> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(AuthError::InvalidKey(format!(
            "an HMAC secret needs at least {MIN_SECRET_LEN} characters, this one has {}",
            secret.len()
        )));
    }
    Ok(Key {
        kid: None,
        algorithms: AlgorithmFamily::Hmac.algorithms().to_vec(),
        verify: DecodingKey::from_secret(secret),
        sign: Some(EncodingKey::from_secret(secret)),
        public_jwk: None,
        verifier: None,
    })
}

// ---- PEM ----------------------------------------------------------------------------------

fn parse_pem(text: &str) -> Result<Key> {
    let block = pem::parse(text).map_err(|e| AuthError::InvalidKey(format!("bad PEM: {e}")))?;
    let der = block.contents();
    match block.tag() {
        "PRIVATE KEY" => private_pkcs8(der),
        "RSA PRIVATE KEY" => RsaPrivate::from_pkcs1_der(der)
            .map_err(|e| invalid("RSA private key", e))
            .and_then(rsa_private),
        "EC PRIVATE KEY" => ec_private_sec1(der),
        "PUBLIC KEY" => public_spki(der),
        "RSA PUBLIC KEY" => rsa_public_pkcs1(der)
            .map_err(|e| invalid("RSA public key", pkcs8::Error::PublicKey(e)))
            .and_then(|(n, e)| rsa_public(n, e)),
        other => Err(AuthError::InvalidKey(format!(
            "PEM block \"{}\" is not a key; expected PRIVATE KEY, PUBLIC KEY, RSA PRIVATE KEY, \
             RSA PUBLIC KEY or EC PRIVATE KEY",
            truncate(other, 40)
        ))),
    }
}

fn invalid(what: &str, e: impl std::fmt::Display) -> AuthError {
    AuthError::InvalidKey(format!("not a valid {what}: {e}"))
}

fn private_pkcs8(der: &[u8]) -> Result<Key> {
    if let Ok(k) = RsaPrivate::from_pkcs8_der(der) {
        return rsa_private(k);
    }
    if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
        return p256_private(&k);
    }
    if let Ok(k) = p384::SecretKey::from_pkcs8_der(der) {
        return p384_private(&k);
    }
    if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
        return ed25519_private(&k);
    }
    Err(AuthError::InvalidKey(
        "PKCS#8 private key is not RSA, P-256, P-384 or Ed25519 (or is damaged)".into(),
    ))
}

fn ec_private_sec1(der: &[u8]) -> Result<Key> {
    if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
        return p256_private(&k);
    }
    if let Ok(k) = p384::SecretKey::from_sec1_der(der) {
        return p384_private(&k);
    }
    Err(AuthError::InvalidKey(
        "EC private key is not on P-256 or P-384 (or is damaged)".into(),
    ))
}

fn public_spki(der: &[u8]) -> Result<Key> {
    if let Ok((n, e)) = rsa_public_spki(der) {
        return rsa_public(n, e);
    }
    if let Ok(k) = p256::PublicKey::from_public_key_der(der) {
        return ec_public(k.to_encoded_point(false).as_bytes(), "P-256");
    }
    if let Ok(k) = p384::PublicKey::from_public_key_der(der) {
        return ec_public(k.to_encoded_point(false).as_bytes(), "P-384");
    }
    if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
        return ed25519_public(&k);
    }
    Err(AuthError::InvalidKey(
        "public key is not RSA, P-256, P-384 or Ed25519 (or is damaged)".into(),
    ))
}

// ---- RSA ----------------------------------------------------------------------------------
// RustCrypto's pkcs1/pkcs8/spki crates read the DER; aws-lc checks private keys and does every
// RSA operation. Integers are big-endian bytes; pg_auth never computes with them.

/// A decoded PKCS#1 RSAPrivateKey: the DER itself (what aws-lc signs with) and the public half.
struct RsaPrivate<'a> {
    der: &'a [u8],
    n: &'a [u8],
    e: &'a [u8],
}

impl<'a> RsaPrivate<'a> {
    /// Two primes, an acceptable public half, and a consistent key: aws-lc's RSA_check_key
    /// (n = p·q, d·e ≡ 1 mod p-1 and q-1, dP, dQ and qInv) for every size it supports; a key
    /// of another size is refused by `rsa_private` for its size.
    fn from_pkcs1_der(der: &'a [u8]) -> std::result::Result<Self, pkcs8::Error> {
        let k = pkcs1::RsaPrivateKey::try_from(der)?;
        if k.version() != pkcs1::Version::TwoPrime {
            return Err(pkcs8::Error::KeyMalformed);
        }
        let (n, e) = (k.modulus.as_bytes(), k.public_exponent.as_bytes());
        check_rsa_public(n, e, None).map_err(|_| pkcs8::Error::KeyMalformed)?;
        if rsa_private_size_ok(n) {
            aws_lc_rs::rsa::KeyPair::from_der(der).map_err(|_| pkcs8::Error::KeyMalformed)?;
        }
        Ok(RsaPrivate { der, n, e })
    }

    /// A PKCS#8 PrivateKeyInfo (v1 or v2) for rsaEncryption holding a PKCS#1 key.
    fn from_pkcs8_der(der: &'a [u8]) -> std::result::Result<Self, pkcs8::Error> {
        let info = pkcs8::PrivateKeyInfo::try_from(der)?;
        check_rsa_algorithm(&info.algorithm)?;
        Self::from_pkcs1_der(info.private_key)
    }
}

/// rsaEncryption with NULL parameters, the only RSA algorithm identifier taken for a key.
fn check_rsa_algorithm(algorithm: &spki::AlgorithmIdentifierRef) -> spki::Result<()> {
    algorithm.assert_algorithm_oid(pkcs1::ALGORITHM_OID)?;
    if algorithm.parameters_any()? != der::asn1::Null.into() {
        return Err(spki::Error::KeyMalformed);
    }
    Ok(())
}

/// A PKCS#1 RSAPublicKey: (n, e), checked.
fn rsa_public_pkcs1(der: &[u8]) -> spki::Result<(&[u8], &[u8])> {
    let k = pkcs1::RsaPublicKey::try_from(der).map_err(spki::Error::from)?;
    let (n, e) = (k.modulus.as_bytes(), k.public_exponent.as_bytes());
    check_rsa_public(n, e, Some(MAX_RSA_PUBLIC_BITS)).map_err(|_| spki::Error::KeyMalformed)?;
    Ok((n, e))
}

/// A SubjectPublicKeyInfo for rsaEncryption: (n, e), checked.
fn rsa_public_spki(der: &[u8]) -> spki::Result<(&[u8], &[u8])> {
    let info = spki::SubjectPublicKeyInfoRef::try_from(der)?;
    check_rsa_algorithm(&info.algorithm)?;
    let key = info
        .subject_public_key
        .as_bytes()
        .ok_or(spki::Error::KeyMalformed)?;
    rsa_public_pkcs1(key)
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Bits of a big-endian unsigned integer without leading zero bytes.
fn bit_len(n: &[u8]) -> usize {
    n.first()
        .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize)
}

/// The checks the `rsa` crate made of every RSA key pg_auth accepted, kept in its order and
/// words (`auth.add_key` errors show them): n odd and above e, e odd and from 2 to 2^33 - 1, and
/// for public keys at most `max_bits`.
fn check_rsa_public(
    n: &[u8],
    e: &[u8],
    max_bits: Option<usize>,
) -> std::result::Result<(), &'static str> {
    let (n, e) = (strip_leading_zeros(n), strip_leading_zeros(e));
    if max_bits.is_some_and(|max| bit_len(n) > max) {
        return Err("modulus too large");
    }
    if e.len() > 8 {
        return Err("public exponent too large");
    }
    let e_value = e.iter().fold(0u64, |v, b| v << 8 | u64::from(*b));
    let e_below_n = e.len() < n.len() || (e.len() == n.len() && e < n);
    if !e_below_n || n.last().is_none_or(|b| b & 1 == 0) {
        return Err("invalid modulus");
    }
    if e_value & 1 == 0 {
        return Err("invalid exponent");
    }
    if e_value < 2 {
        return Err("public exponent too small");
    }
    if e_value > (1 << 33) - 1 {
        return Err("public exponent too large");
    }
    Ok(())
}

/// Sizes aws-lc signs with; `RsaPrivate` has had aws-lc check every key of such a size.
fn rsa_private_size_ok(n: &[u8]) -> bool {
    (MIN_RSA_BITS..=MAX_RSA_PRIVATE_BITS).contains(&bit_len(strip_leading_zeros(n)))
}

fn rsa_private(k: RsaPrivate) -> Result<Key> {
    let mut key = rsa_public(k.n, k.e)?;
    if !rsa_private_size_ok(k.n) {
        return Err(AuthError::InvalidKey(format!(
            "RSA private key has {} bits, at most {MAX_RSA_PRIVATE_BITS} are supported",
            bit_len(strip_leading_zeros(k.n))
        )));
    }
    key.sign = Some(EncodingKey::from_rsa_der(k.der));
    Ok(key)
}

/// `n` and `e` have passed `check_rsa_public`.
fn rsa_public(n: &[u8], e: &[u8]) -> Result<Key> {
    let (n, e) = (strip_leading_zeros(n), strip_leading_zeros(e));
    let bits = bit_len(n);
    if bits < MIN_RSA_BITS {
        return Err(AuthError::InvalidKey(format!(
            "RSA key has {bits} bits, at least {MIN_RSA_BITS} are required"
        )));
    }
    Ok(Key {
        kid: None,
        algorithms: AlgorithmFamily::Rsa.algorithms().to_vec(),
        verify: DecodingKey::from_rsa_raw_components(n, e),
        sign: None,
        public_jwk: Some(jwk_map(
            json!({"kty": "RSA", "n": B64.encode(n), "e": B64.encode(e)}),
        )),
        verifier: None,
    })
}

fn p256_private(k: &p256::SecretKey) -> Result<Key> {
    let der = k
        .to_pkcs8_der()
        .map_err(|e| invalid("P-256 private key", e))?;
    let mut key = ec_public(k.public_key().to_encoded_point(false).as_bytes(), "P-256")?;
    key.sign = Some(EncodingKey::from_ec_der(der.as_bytes()));
    Ok(key)
}

fn p384_private(k: &p384::SecretKey) -> Result<Key> {
    let der = k
        .to_pkcs8_der()
        .map_err(|e| invalid("P-384 private key", e))?;
    let mut key = ec_public(k.public_key().to_encoded_point(false).as_bytes(), "P-384")?;
    key.sign = Some(EncodingKey::from_ec_der(der.as_bytes()));
    Ok(key)
}

/// `point` is an uncompressed SEC1 point (0x04 || x || y) already checked to be on `curve`.
fn ec_public(point: &[u8], curve: &str) -> Result<Key> {
    let (alg, half) = match curve {
        "P-256" => (Algorithm::ES256, 32),
        _ => (Algorithm::ES384, 48),
    };
    let (x, y) = (&point[1..1 + half], &point[1 + half..]);
    Ok(Key {
        kid: None,
        algorithms: vec![alg],
        verify: DecodingKey::from_ec_der(point),
        sign: None,
        public_jwk: Some(jwk_map(
            json!({"kty": "EC", "crv": curve, "x": B64.encode(x), "y": B64.encode(y)}),
        )),
        verifier: None,
    })
}

fn ed25519_private(k: &ed25519_dalek::SigningKey) -> Result<Key> {
    let der = k
        .to_pkcs8_der()
        .map_err(|e| invalid("Ed25519 private key", e))?;
    let mut key = ed25519_public(&k.verifying_key())?;
    key.sign = Some(EncodingKey::from_ed_der(der.as_bytes()));
    Ok(key)
}

fn ed25519_public(k: &ed25519_dalek::VerifyingKey) -> Result<Key> {
    Ok(Key {
        kid: None,
        algorithms: vec![Algorithm::EdDSA],
        verify: DecodingKey::from_ed_der(k.as_bytes()),
        sign: None,
        public_jwk: Some(jwk_map(
            json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(k.as_bytes())}),
        )),
        verifier: None,
    })
}

fn jwk_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

// ---- JWK / JWKS ---------------------------------------------------------------------------

fn parse_jwks(keys: &Value) -> Result<Vec<Key>> {
    let entries = keys
        .as_array()
        .ok_or_else(|| AuthError::InvalidKey("JWKS \"keys\" must be an array".into()))?;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        // An identity provider's JWKS may also list encryption keys; they never verify a JWS.
        if entry.get("use").and_then(Value::as_str) == Some("enc") {
            continue;
        }
        out.push(parse_jwk(entry)?);
    }
    if out.is_empty() {
        return Err(AuthError::InvalidKey("JWKS holds no signing key".into()));
    }
    Ok(out)
}

fn jwk_str<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError::InvalidKey(format!("JWK lacks the string member \"{name}\"")))
}

fn jwk_bytes(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>> {
    let text = jwk_str(jwk, name)?;
    B64.decode(text.trim_end_matches('='))
        .map_err(|_| AuthError::InvalidKey(format!("JWK member \"{name}\" is not base64url")))
}

/// Parses one JWK. A private JWK is used for its public half only, except `oct` (HMAC).
pub fn parse_jwk(value: &Value) -> Result<Key> {
    let jwk = value
        .as_object()
        .ok_or_else(|| AuthError::InvalidKey("a JWK must be a JSON object".into()))?;
    let key = match jwk_str(jwk, "kty")? {
        "oct" => hmac_key(&jwk_bytes(jwk, "k")?)?,
        "RSA" => {
            let (n, e) = (jwk_bytes(jwk, "n")?, jwk_bytes(jwk, "e")?);
            check_rsa_public(&n, &e, Some(MAX_RSA_PUBLIC_BITS))
                .map_err(|e| invalid("RSA JWK", e))?;
            rsa_public(&n, &e)?
        }
        "EC" => {
            let mut point = vec![0x04];
            point.extend(jwk_bytes(jwk, "x")?);
            point.extend(jwk_bytes(jwk, "y")?);
            match jwk_str(jwk, "crv")? {
                "P-256" => p256::PublicKey::from_sec1_bytes(&point)
                    .map_err(|e| invalid("P-256 JWK", e))
                    .and_then(|_| ec_public(&point, "P-256"))?,
                "P-384" => p384::PublicKey::from_sec1_bytes(&point)
                    .map_err(|e| invalid("P-384 JWK", e))
                    .and_then(|_| ec_public(&point, "P-384"))?,
                other => {
                    return Err(AuthError::InvalidKey(format!(
                        "EC curve \"{}\" is not supported (P-256, P-384)",
                        truncate(other, 40)
                    )))
                }
            }
        }
        "OKP" => {
            if jwk_str(jwk, "crv")? != "Ed25519" {
                return Err(AuthError::InvalidKey(
                    "OKP keys must be on curve Ed25519".into(),
                ));
            }
            let bytes: [u8; 32] = jwk_bytes(jwk, "x")?
                .try_into()
                .map_err(|_| AuthError::InvalidKey("Ed25519 \"x\" must be 32 bytes".into()))?;
            let k = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|e| invalid("Ed25519 JWK", e))?;
            ed25519_public(&k)?
        }
        other => {
            return Err(AuthError::InvalidKey(format!(
                "JWK key type \"{}\" is not supported (oct, RSA, EC, OKP)",
                truncate(other, 40)
            )))
        }
    };
    let key = match jwk.get("alg").and_then(Value::as_str) {
        Some(alg) => key.restrict_to(parse_algorithm(alg)?)?,
        None => key,
    };
    Ok(key.with_kid(jwk.get("kid").and_then(Value::as_str).map(str::to_string)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secret_is_refused() {
        let err = parse_keys_as("too short", Some(Algorithm::HS256))
            .err()
            .unwrap();
        assert!(matches!(err, AuthError::InvalidKey(m) if m.contains("at least 32")));
    }

    #[test]
    fn secret_gives_hmac_family() {
        let key = parse_single_key_as(&"s".repeat(32), Some(Algorithm::HS512)).unwrap();
        assert_eq!(
            key.algorithms,
            vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
        );
        assert!(key.sign.is_some() && key.public_jwk.is_none());
    }

    #[test]
    fn jwk_alg_narrows_the_key() {
        let jwk = json!({"kty": "oct", "k": B64.encode([7u8; 32]), "alg": "HS384", "kid": "a"});
        let key = parse_jwk(&jwk).unwrap();
        assert_eq!(key.algorithms, vec![Algorithm::HS384]);
        assert_eq!(key.kid.as_deref(), Some("a"));
    }

    #[test]
    fn jwk_alg_of_another_family_is_refused() {
        let jwk = json!({"kty": "oct", "k": B64.encode([7u8; 32]), "alg": "RS256"});
        assert!(matches!(
            parse_jwk(&jwk),
            Err(AuthError::AlgorithmNotAllowed(_))
        ));
    }

    #[test]
    fn ec_point_off_the_curve_is_refused() {
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": B64.encode([1u8; 32]), "y": B64.encode([2u8; 32])});
        assert!(matches!(parse_jwk(&jwk), Err(AuthError::InvalidKey(_))));
    }

    #[test]
    fn jwks_skips_encryption_keys_and_needs_one_signing_key() {
        let enc = json!({"keys": [{"kty": "oct", "k": B64.encode([7u8; 32]), "use": "enc"}]});
        assert!(parse_keys(&enc.to_string()).is_err());
    }

    #[test]
    fn none_is_not_an_algorithm() {
        assert!(matches!(
            parse_algorithm("none"),
            Err(AuthError::AlgorithmNotAllowed(_))
        ));
    }

    #[test]
    fn certificate_pem_is_refused_clearly() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = parse_keys(pem).err().unwrap();
        assert!(err.to_string().contains("is not a key"), "{err}");
    }

    const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAoTULEw14XH5HrUTF8qmlgDaHKQ9
xgZNssszlO6HB99sip/ykUxB1XrFJbi+zaIDyrqIa0gijWFYj/8Rx0YoRw==
-----END PUBLIC KEY-----
";

    fn is_ec(keys: Result<Vec<Key>>) -> bool {
        keys.is_ok_and(|k| k.len() == 1 && k[0].family() == AlgorithmFamily::Ec)
    }

    #[test]
    fn public_key_text_is_never_an_hmac_secret() {
        // Each of these was once taken as an HMAC secret, so HS256 tokens forged with the
        // (public) text verified.
        assert!(
            is_ec(parse_keys(&format!("\u{feff}{PUBLIC_PEM}"))),
            "PEM with a byte-order mark"
        );
        assert!(
            is_ec(parse_keys(&format!("Public key of the IdP:\n{PUBLIC_PEM}"))),
            "label line before the PEM"
        );
        for (text, shape) in public_key_shapes() {
            let err = parse_keys(&text).err().expect(shape);
            assert!(
                matches!(&err, AuthError::InvalidKey(m) if m.contains("only when the algorithm is named")),
                "{shape}: {err}"
            );
        }
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": "AoTULEw14XH5HrUTF8qmlgDaHKQ9xgZNssszlO6HB98",
                         "y": "bIqf8pFMQdV6xSW4vs2iA8q6iGtIIo1hWI__EcdGKEc"});
        assert!(
            is_ec(parse_keys(&format!("\u{feff}{jwk}"))),
            "JWK with a byte-order mark"
        );
        let err = parse_keys(&format!("[{jwk}]")).err().unwrap();
        assert!(
            matches!(&err, AuthError::InvalidKey(m) if m.contains("JSON array")),
            "{err}"
        );
    }

    #[test]
    fn naming_an_hmac_algorithm_never_turns_a_public_key_into_a_secret() {
        assert!(is_ec(parse_keys_as(PUBLIC_PEM, Some(Algorithm::HS256))));
        let bare: String = PUBLIC_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        // Said explicitly, even base64 text is a secret: the caller takes responsibility.
        let key = parse_single_key_as(&bare, Some(Algorithm::HS256)).unwrap();
        assert_eq!(key.family(), AlgorithmFamily::Hmac);
        let err = parse_keys_as(&"s".repeat(40), Some(Algorithm::RS256))
            .err()
            .unwrap();
        assert!(
            matches!(&err, AuthError::InvalidKey(m) if m.contains("PEM or JWK")),
            "{err}"
        );
    }

    /// Public keys written in shapes that are neither PEM nor JSON; the live attack on 0.2.0
    /// forged HS256 tokens with each of these as the secret.
    fn public_key_shapes() -> Vec<(String, &'static str)> {
        use base64::engine::general_purpose::STANDARD;
        let bare: String = PUBLIC_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = STANDARD.decode(&bare).unwrap();
        let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
        let point = &der[der.len() - 65..];
        let jwk = r#"{"kty":"EC","crv":"P-256","x":"AoTULEw14XH5HrUTF8qmlgDaHKQ9xgZNssszlO6HB98","y":"bIqf8pFMQdV6xSW4vs2iA8q6iGtIIo1hWI__EcdGKEc"}"#;
        vec![
            (bare.clone(), "bare base64 DER"),
            (bare.replace('+', "-").replace('/', "_"), "base64url DER"),
            (format!("{bare}\n"), "base64 DER with a newline"),
            (
                format!("ecdsa-sha2-nistp256 {bare} idp@example"),
                "OpenSSH line",
            ),
            (
                format!("---- BEGIN SSH2 PUBLIC KEY ----\n{bare}\n---- END SSH2 PUBLIC KEY ----"),
                "RFC 4716",
            ),
            (PUBLIC_PEM.to_lowercase(), "lower-case PEM"),
            (PUBLIC_PEM.replace("-----", "----"), "four-dash PEM"),
            (STANDARD.encode(PUBLIC_PEM), "base64 of a PEM"),
            (hex, "hex DER"),
            (STANDARD.encode(point), "raw EC point, base64"),
            (
                point.iter().map(|b| format!("{b:02x}")).collect(),
                "raw EC point, hex",
            ),
            (format!("\u{200b}{jwk}"), "JWK after a zero-width space"),
            (format!("\u{2060}{jwk}"), "JWK after a word joiner"),
            (
                serde_json::to_string(jwk).unwrap(),
                "JWK inside a JSON string",
            ),
        ]
    }

    #[test]
    fn a_secret_must_be_named() {
        for secret in [
            "0123456789abcdef0123456789abcdef",
            "my-super-secret-jwt-token-with-at-least-32-characters",
        ] {
            assert!(parse_single_key(secret).is_err(), "{secret}");
            for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let key = parse_single_key_as(secret, Some(alg)).unwrap();
                assert_eq!(key.family(), AlgorithmFamily::Hmac);
            }
        }
    }
}
