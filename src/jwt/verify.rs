//! Verifying a compact JWS: shape and size first (cheap, before any crypto), then the algorithm
//! against the key (never the header alone), the signature, and the claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::keys::{alg_name, parse_algorithm, truncate, Key};
use crate::error::{AuthError, Result};

/// Far above any real token (PostgREST's own are < 1 KiB; headers are usually capped at 8–16 KiB)
/// and far below what would make parsing costly.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
pub const DEFAULT_LEEWAY: u64 = 30;
pub const MAX_LEEWAY: u64 = 7 * 24 * 3600;

/// What a verification checks besides the signature. Built from the `options` jsonb of
/// `auth.verify_jwt`; the defaults match PostgREST (30 s leeway, no audience, no issuer).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyOptions {
    /// Accepted audiences; when set, the token must carry an `aud` naming one of them.
    pub audience: Option<Vec<String>>,
    /// Accepted issuers; when set, the token must carry one of them in `iss`.
    pub issuer: Option<Vec<String>>,
    pub leeway: u64,
    /// Claims that must be present (any name, not only the registered ones).
    pub required: Vec<String>,
    /// When set, only these algorithms are accepted, on top of what the key allows.
    pub algorithms: Option<Vec<Algorithm>>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions { audience: None, issuer: None, leeway: DEFAULT_LEEWAY, required: vec![], algorithms: None }
    }
}

impl VerifyOptions {
    /// Reads `{"audience": "a" | ["a","b"], "issuer": ..., "leeway": 30, "required": ["sub"],
    /// "algorithms": ["ES256"]}`. Unknown members are errors, so a typo never weakens a check.
    pub fn from_json(options: &Value) -> Result<VerifyOptions> {
        let obj = match options {
            Value::Null => return Ok(VerifyOptions::default()),
            Value::Object(o) => o,
            _ => return Err(bad_option("options must be a JSON object")),
        };
        let mut out = VerifyOptions::default();
        for (name, value) in obj {
            match name.as_str() {
                "audience" | "aud" => out.audience = Some(string_list(name, value)?),
                "issuer" | "iss" => out.issuer = Some(string_list(name, value)?),
                "required" => out.required = string_list(name, value)?,
                "leeway" => out.leeway = leeway(value)?,
                "algorithms" => {
                    let names = string_list(name, value)?;
                    out.algorithms =
                        Some(names.iter().map(|n| parse_algorithm(n)).collect::<Result<_>>()?);
                }
                other => {
                    return Err(bad_option(&format!(
                        "unknown option \"{}\"; known: audience, issuer, leeway, required, algorithms",
                        truncate(other, 40)
                    )))
                }
            }
        }
        Ok(out)
    }
}

fn bad_option(why: &str) -> AuthError {
    AuthError::InvalidArgument(why.to_string())
}

fn string_list(name: &str, value: &Value) -> Result<Vec<String>> {
    let list = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad_option(&format!("option \"{name}\" must list strings")))?,
        _ => return Err(bad_option(&format!("option \"{name}\" must be a string or an array of strings"))),
    };
    if list.is_empty() {
        return Err(bad_option(&format!("option \"{name}\" must not be empty")));
    }
    Ok(list)
}

fn leeway(value: &Value) -> Result<u64> {
    value
        .as_u64()
        .filter(|s| *s <= MAX_LEEWAY)
        .ok_or_else(|| bad_option(&format!("option \"leeway\" must be whole seconds from 0 to {MAX_LEEWAY}")))
}

/// The parts of a header that decide how to verify. Parsed before any key is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

/// Checks size and shape and reads the header. Everything later may assume three base64url
/// segments and a JSON-object header with a known `alg`.
pub fn inspect(token: &str) -> Result<TokenHeader> {
    let segments = split(token)?;
    let header = decode_json_object(segments[0], "header")?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) => parse_algorithm(name)?,
        Some(_) => return Err(AuthError::MalformedToken("header \"alg\" must be a string".into())),
        None => return Err(AuthError::MalformedToken("header has no \"alg\"".into())),
    };
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::MalformedToken("header \"kid\" must be a string".into())),
    };
    Ok(TokenHeader { alg, kid })
}

/// Size and shape: exactly three non-empty base64url segments.
fn split(token: &str) -> Result<[&str; 3]> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::TokenTooLarge { size: token.len(), max: MAX_TOKEN_LEN });
    }
    let segments: Vec<&str> = token.split('.').collect();
    let segments: [&str; 3] = segments.try_into().map_err(|s: Vec<&str>| {
        AuthError::MalformedToken(format!("expected 3 dot-separated segments, found {}", s.len()))
    })?;
    for (segment, name) in segments.iter().zip(["header", "payload", "signature"]) {
        if segment.is_empty() || !segment.bytes().all(is_base64url) {
            return Err(AuthError::MalformedToken(format!("{name} is not base64url")));
        }
    }
    Ok(segments)
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Decodes one base64url segment that must hold a JSON object.
pub(crate) fn decode_json_object(segment: &str, name: &str) -> Result<Map<String, Value>> {
    let bytes = B64
        .decode(segment)
        .map_err(|_| AuthError::MalformedToken(format!("{name} is not base64url")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AuthError::MalformedToken(format!("{name} is not a JSON object"))),
        Err(e) => Err(AuthError::MalformedToken(format!("{name} is not JSON: {e}"))),
    }
}

/// Checks that `key` and `options` allow the header's algorithm.
pub fn check_algorithm(header: &TokenHeader, key: &Key, options: &VerifyOptions) -> Result<()> {
    key.check_allows(header.alg)?;
    if let Some(allowed) = &options.algorithms {
        if !allowed.contains(&header.alg) {
            return Err(AuthError::AlgorithmNotAllowed(format!(
                "{} is not in the \"algorithms\" option",
                alg_name(header.alg)
            )));
        }
    }
    Ok(())
}

/// Verifies `token` (already inspected into `header`) with `key`; returns the claims.
pub fn verify_with_key(token: &str, header: &TokenHeader, key: &Key, options: &VerifyOptions) -> Result<Map<String, Value>> {
    check_algorithm(header, key, options)?;
    let data = jsonwebtoken::decode::<Value>(token, &key.verify, &validation(header.alg, options))
        .map_err(map_jwt_error)?;
    let claims = match data.claims {
        Value::Object(map) => map,
        _ => return Err(AuthError::MalformedToken("payload is not a JSON object".into())),
    };
    check_iat(&claims, options.leeway)?;
    for name in &options.required {
        if claims.get(name).is_none_or(Value::is_null) {
            return Err(AuthError::MissingClaim(name.clone()));
        }
    }
    Ok(claims)
}

fn validation(alg: Algorithm, options: &VerifyOptions) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = options.leeway;
    v.validate_nbf = true;
    v.required_spec_claims.clear();
    if let Some(aud) = &options.audience {
        v.set_audience(aud);
        v.required_spec_claims.insert("aud".into());
    }
    if let Some(iss) = &options.issuer {
        v.set_issuer(iss);
        v.required_spec_claims.insert("iss".into());
    }
    v
}

/// jsonwebtoken does not look at `iat`; like PostgREST we refuse tokens issued in the future.
fn check_iat(claims: &Map<String, Value>, leeway: u64) -> Result<()> {
    let Some(iat) = claims.get("iat") else { return Ok(()) };
    let iat = iat
        .as_f64()
        .filter(|t| t.is_finite() && *t >= 0.0)
        .ok_or_else(|| AuthError::InvalidClaim("iat".into()))?;
    if iat > (jsonwebtoken::get_current_timestamp() + leeway) as f64 {
        return Err(AuthError::NotYetValid("iat"));
    }
    Ok(())
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.into_kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid("nbf"),
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c),
        ErrorKind::InvalidClaimFormat(c) => AuthError::InvalidClaim(c),
        ErrorKind::InvalidAlgorithm => AuthError::AlgorithmNotAllowed("algorithm does not match the key".into()),
        ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidKeyFormat => {
            AuthError::InvalidKey("the key cannot verify this token".into())
        }
        ErrorKind::Json(e) => AuthError::MalformedToken(format!("payload is not valid claims JSON: {e}")),
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) => AuthError::MalformedToken("payload is not base64url".into()),
        other => AuthError::MalformedToken(format!("{other:?}")),
    }
}

/// Header and payload without any check of the signature or claims: for debugging only.
pub fn decode_unverified(token: &str) -> Result<Value> {
    let [header, payload, _] = split(token)?;
    let header = decode_json_object(header, "header")?;
    let payload = decode_json_object(payload, "payload")?;
    Ok(serde_json::json!({"header": header, "payload": payload}))
}
