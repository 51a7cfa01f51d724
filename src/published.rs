//! The claims `auth.authenticate` published for the current transaction, and the identity
//! helpers that answer from them (`auth.jwt()`, `auth.uid()`). `request.jwt.claims` is a setting
//! any SQL caller can write with `set_config`; what these helpers return comes from
//! backend-local state that only a successful `auth.authenticate` writes, and it ends with the
//! transaction.

use std::cell::RefCell;

use pgrx::prelude::*;
use serde_json::{Map, Value};

use crate::api::jsonb::JsonbText;
use crate::error::AuthError;
use crate::identity::canonical_uuid;
use crate::session_store::pg_uuid;
use crate::settings::{self as s, set_local};
use crate::sqlstate::OrRaise;

const CLAIMS_SETTING: &str = "request.jwt.claims";

struct Published {
    /// Exactly the text written to `request.jwt.claims`.
    text: String,
    sub: Option<pgrx::Uuid>,
}

thread_local! {
    static PUBLISHED: RefCell<Option<Published>> = const { RefCell::new(None) };
}

/// Forgets the published claims; at the transaction's end.
pub fn forget() {
    PUBLISHED.set(None);
}

/// Writes `claims` to `request.jwt.claims` (transaction-local), remembers them as verified and
/// returns the text written.
pub fn publish(claims: &Map<String, Value>) -> String {
    let text = serde_json::to_string(claims).unwrap_or_else(|_| "{}".into());
    set_local(CLAIMS_SETTING, &text);
    PUBLISHED.set(Some(Published {
        text: text.clone(),
        sub: sub_of(claims),
    }));
    text
}

/// The `sub` claim as a uuid when it is one in canonical form.
fn sub_of(claims: &Map<String, Value>) -> Option<pgrx::Uuid> {
    claims
        .get("sub")
        .and_then(Value::as_str)
        .and_then(canonical_uuid)
        .map(pg_uuid)
}

/// What the helpers may answer from: the verified claims; nothing when `auth.authenticate` did
/// not run (unless `pg_auth.trust_request_claims`); an error when `request.jwt.claims` was
/// changed by hand after it ran, so a policy never silently mixes two identities.
enum Source {
    Verified {
        text: String,
        sub: Option<pgrx::Uuid>,
    },
    Setting(String),
    Nothing,
}

fn source() -> crate::error::Result<Source> {
    let current = s::current(CLAIMS_SETTING).filter(|t| !t.is_empty());
    // Whether the setting still holds what was published, and its sub: compared in place.
    let verified = PUBLISHED.with_borrow(|p| {
        p.as_ref()
            .map(|p| (current.as_deref() == Some(p.text.as_str()), p.sub))
    });
    match (verified, current) {
        (Some((true, sub)), Some(text)) => Ok(Source::Verified { text, sub }),
        (Some(_), _) => Err(AuthError::ClaimsChanged),
        (None, Some(current)) if s::TRUST_REQUEST_CLAIMS.get() => Ok(Source::Setting(current)),
        (None, _) => Ok(Source::Nothing),
    }
}

/// The claims `auth.authenticate` verified in this transaction, `{}` when none.
#[pg_extern(stable, parallel_restricted)]
fn jwt() -> JsonbText {
    JsonbText(match source().or_raise() {
        Source::Verified { text, .. } | Source::Setting(text) => text,
        Source::Nothing => "{}".into(),
    })
}

/// The `sub` claim of the verified claims as a uuid; NULL when absent or not a uuid.
#[pg_extern(stable, parallel_restricted)]
fn uid() -> Option<pgrx::Uuid> {
    match source().or_raise() {
        Source::Verified { sub, .. } => sub,
        Source::Setting(text) => serde_json::from_str::<Map<String, Value>>(&text)
            .ok()
            .and_then(|claims| sub_of(&claims)),
        Source::Nothing => None,
    }
}
