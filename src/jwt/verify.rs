//! Verifying a compact JWS: shape and size first (cheap, before any crypto), then the algorithm
//! against the key (never the header alone), the signature, and the claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::keys::{alg_name, parse_algorithm, truncate, Key};
use crate::error::{AuthError, Result};

/// Far above any real token (PostgREST's own are < 1 KiB; headers are usually capped at 8–16 KiB)
/// and far below what would make parsing costly.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
pub const DEFAULT_LEEWAY: u64 = 30;
pub const MAX_LEEWAY: u64 = 7 * 24 * 3600;

/// What a verification checks besides the signature. Built from the `options` jsonb of
/// `auth.verify_jwt`. Defaults: 30 s leeway and no issuer, as in PostgREST; unlike PostgREST
/// without `jwt-aud`, a token carrying an `aud` is refused when no audience is configured.
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
        VerifyOptions {
            audience: None,
            issuer: None,
            leeway: DEFAULT_LEEWAY,
            required: vec![],
            algorithms: None,
        }
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
                    out.algorithms = Some(
                        names
                            .iter()
                            .map(|n| parse_algorithm(n))
                            .collect::<Result<_>>()?,
                    );
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
        _ => {
            return Err(bad_option(&format!(
                "option \"{name}\" must be a string or an array of strings"
            )))
        }
    };
    if list.is_empty() {
        return Err(bad_option(&format!("option \"{name}\" must not be empty")));
    }
    Ok(list)
}

fn leeway(value: &Value) -> Result<u64> {
    value.as_u64().filter(|s| *s <= MAX_LEEWAY).ok_or_else(|| {
        bad_option(&format!(
            "option \"leeway\" must be whole seconds from 0 to {MAX_LEEWAY}"
        ))
    })
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
    let [header, _, _] = split(token)?;
    let bytes = B64
        .decode(header)
        .map_err(|_| AuthError::MalformedToken("header is not base64url".into()))?;
    if !bytes.trim_ascii_start().starts_with(b"{") {
        return Err(AuthError::MalformedToken(
            "header is not a JSON object".into(),
        ));
    }
    // The members RawHeader skips are not checked for UTF-8 or escapes; the whole header must be
    // JSON text all the same (RFC 7515 §5.2), as for the payload and in decode_unverified.
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| AuthError::MalformedToken("header is not UTF-8 JSON".into()))?;
    let raw: RawHeader = serde_json::from_str(text)
        .map_err(|e| AuthError::MalformedToken(format!("header is not JSON: {e}")))?;
    if text.contains("\\u") {
        serde_json::from_str::<Value>(text)
            .map_err(|e| AuthError::MalformedToken(format!("header is not JSON: {e}")))?;
    }
    let alg = match raw.alg {
        Some(Value::String(name)) => parse_algorithm(&name)?,
        None | Some(Value::Null) => {
            return Err(AuthError::MalformedToken("header has no \"alg\"".into()))
        }
        Some(_) => {
            return Err(AuthError::MalformedToken(
                "header \"alg\" must be a string".into(),
            ))
        }
    };
    let kid = match raw.kid {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid),
        Some(_) => {
            return Err(AuthError::MalformedToken(
                "header \"kid\" must be a string".into(),
            ))
        }
    };
    // RFC 7515 §4.1.11: extensions marked critical must be understood; pg_auth knows none.
    if raw.crit.is_some() {
        return Err(AuthError::MalformedToken(
            "header \"crit\" names extensions pg_auth does not support".into(),
        ));
    }
    // The other registered members are never used (a key in the header is no reason to trust
    // it), but one of the wrong type marks a forged or broken token.
    type Check<'a> = (&'a str, &'a Option<Value>, fn(&Value) -> bool);
    let checks: [Check; 3] = [
        ("typ", &raw.typ, Value::is_string),
        ("cty", &raw.cty, Value::is_string),
        ("jwk", &raw.jwk, Value::is_object),
    ];
    let wrong_type = checks
        .into_iter()
        .find(|(_, v, is_ok)| v.as_ref().is_some_and(|v| !is_ok(v)));
    if let Some((name, _, _)) = wrong_type {
        return Err(AuthError::MalformedToken(format!(
            "header \"{name}\" has the wrong type"
        )));
    }
    Ok(TokenHeader { alg, kid })
}

/// The header members we look at; others are skipped unparsed. Duplicate members are errors.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<Value>,
    kid: Option<Value>,
    // Present even when `null` (RFC 7515: a non-empty array), so `"crit": null` is refused too.
    #[serde(default, deserialize_with = "present")]
    crit: Option<Value>,
    typ: Option<Value>,
    cty: Option<Value>,
    jwk: Option<Value>,
}

/// Size and shape: exactly three segments, header and payload non-empty. Their alphabet is
/// checked by the base64url decoding of each segment.
fn split(token: &str) -> Result<[&str; 3]> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::TokenTooLarge {
            size: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    let mut parts = token.splitn(4, '.');
    let segments = [parts.next(), parts.next(), parts.next(), parts.next()];
    let [Some(header), Some(payload), Some(signature), None] = segments else {
        let found = token.bytes().filter(|b| *b == b'.').count() + 1;
        return Err(AuthError::MalformedToken(format!(
            "expected 3 dot-separated segments, found {found}"
        )));
    };
    // An empty signature is well-formed (RFC 7519's unsecured JWT); the algorithm check refuses it.
    for (segment, name) in [(header, "header"), (payload, "payload")] {
        if segment.is_empty() {
            return Err(AuthError::MalformedToken(format!("{name} is empty")));
        }
    }
    Ok([header, payload, signature])
}

/// Decodes one base64url segment that must hold a JSON object.
pub(crate) fn decode_json_object(segment: &str, name: &str) -> Result<Map<String, Value>> {
    let bytes = B64
        .decode(segment)
        .map_err(|_| AuthError::MalformedToken(format!("{name} is not base64url")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AuthError::MalformedToken(format!(
            "{name} is not a JSON object"
        ))),
        Err(e) => Err(AuthError::MalformedToken(format!(
            "{name} is not JSON: {e}"
        ))),
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

/// A verified token's payload, kept as the JSON text it came in: `auth.verify_jwt` hands it to
/// jsonb as is, and only callers that need the claims as a map parse them.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub payload: String,
    /// Verified with a key this database can sign with (so issued here, not by an identity
    /// provider): only such tokens are bound to `auth.sessions` by their `sid`.
    pub issued_here: bool,
}

impl Verified {
    pub fn claims(&self) -> Result<Map<String, Value>> {
        match serde_json::from_str::<Value>(&self.payload) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(AuthError::MalformedToken(
                "payload is not a JSON object".into(),
            )),
        }
    }
}

/// The registered claims that decide validity; any other member is skipped unparsed. A member
/// that is present but `null` is `Some(Value::Null)`, so it is refused rather than ignored.
#[derive(Deserialize)]
struct Registered {
    #[serde(default, deserialize_with = "present")]
    exp: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    nbf: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    iat: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    aud: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    iss: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Verifies `token` (already inspected into `header`) with `key`: algorithm, signature, then
/// claims. Crypto comes from jsonwebtoken's RustCrypto provider; the claims rules are ours.
pub fn verify_with_key(
    token: &str,
    header: &TokenHeader,
    key: &Key,
    options: &VerifyOptions,
) -> Result<Verified> {
    check_algorithm(header, key, options)?;
    let (message, signature) = token.rsplit_once('.').unwrap_or_default();
    // Decoding the payload first reports a malformed one as such, not as a bad signature.
    let payload = message.split_once('.').map(|(_, p)| p).unwrap_or_default();
    let payload = B64
        .decode(payload)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            AuthError::MalformedToken("payload is not base64url-encoded UTF-8".into())
        })?;
    let signature = B64
        .decode(signature)
        .map_err(|_| AuthError::MalformedToken("signature is not base64url".into()))?;
    if !key.signature_matches(header.alg, message.as_bytes(), signature)? {
        return Err(AuthError::BadSignature);
    }
    if !payload.trim_start().starts_with('{') {
        return Err(AuthError::MalformedToken(
            "payload is not a JSON object".into(),
        ));
    }
    let registered: Registered = serde_json::from_str(&payload)
        .map_err(|e| AuthError::MalformedToken(format!("payload is not JSON: {e}")))?;
    // Skipped members are not checked for escapes; validate fully only when there are any
    // (a lone surrogate such as "\ud800" is not JSON text PostgreSQL accepts).
    if payload.contains("\\u") {
        serde_json::from_str::<Value>(&payload)
            .map_err(|e| AuthError::MalformedToken(format!("payload is not JSON: {e}")))?;
    }
    check_claims(
        &registered,
        options,
        jsonwebtoken::get_current_timestamp() as f64,
    )?;
    let verified = Verified {
        payload,
        issued_here: key.sign.is_some(),
    };
    if !options.required.is_empty() {
        let claims = verified.claims()?;
        if let Some(name) = options
            .required
            .iter()
            .find(|n| claims.get(n.as_str()).is_none_or(Value::is_null))
        {
            return Err(AuthError::MissingClaim(name.clone()));
        }
    }
    Ok(verified)
}

/// A NumericDate (RFC 7519 §2): seconds as a non-negative number below 2^64, like
/// jsonwebtoken's own parsing.
fn numeric_date(value: &Option<Value>, name: &str) -> Result<Option<f64>> {
    let Some(v) = value else { return Ok(None) };
    if let Some(whole) = v.as_u64() {
        return Ok(Some(whole as f64));
    }
    v.as_f64()
        .filter(|t| t.is_finite() && *t >= 0.0 && *t < 18_446_744_073_709_551_616.0)
        .map(Some)
        .ok_or_else(|| AuthError::InvalidClaim(name.into()))
}

/// `aud` and `iss`: a string (or for `aud` an array of strings).
fn string_set(
    value: &Option<Value>,
    name: &str,
    many_allowed: bool,
) -> Result<Option<Vec<String>>> {
    let invalid = || AuthError::InvalidClaim(name.into());
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) if many_allowed => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(invalid))
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => Err(invalid()),
    }
}

fn check_claims(claims: &Registered, options: &VerifyOptions, now: f64) -> Result<()> {
    let leeway = options.leeway as f64;
    if numeric_date(&claims.exp, "exp")?.is_some_and(|exp| exp + leeway < now) {
        return Err(AuthError::Expired);
    }
    if numeric_date(&claims.nbf, "nbf")?.is_some_and(|nbf| nbf > now + leeway) {
        return Err(AuthError::NotYetValid("nbf"));
    }
    // jsonwebtoken's own validation ignores `iat`; like PostgREST we refuse tokens issued in the future.
    if numeric_date(&claims.iat, "iat")?.is_some_and(|iat| iat > now + leeway) {
        return Err(AuthError::NotYetValid("iat"));
    }
    let aud = string_set(&claims.aud, "aud", true)?;
    match (&options.audience, aud) {
        (Some(_), None) => return Err(AuthError::MissingClaim("aud".into())),
        (Some(accepted), Some(aud)) if !aud.iter().any(|a| accepted.contains(a)) => {
            return Err(AuthError::WrongAudience)
        }
        // RFC 7519 §4.1.3: a token for named audiences is refused by whoever is not one of them.
        (None, Some(aud)) if !aud.is_empty() => return Err(AuthError::WrongAudience),
        _ => {}
    }
    let iss = string_set(&claims.iss, "iss", false)?;
    match (&options.issuer, iss) {
        (Some(_), None) => Err(AuthError::MissingClaim("iss".into())),
        (Some(accepted), Some(iss)) if !accepted.contains(&iss[0]) => Err(AuthError::WrongIssuer),
        _ => Ok(()),
    }
}

/// Header and payload without any check of the signature or claims: for debugging only.
pub fn decode_unverified(token: &str) -> Result<Value> {
    let [header, payload, _] = split(token)?;
    let header = decode_json_object(header, "header")?;
    let payload = decode_json_object(payload, "payload")?;
    Ok(serde_json::json!({"header": header, "payload": payload}))
}
