//! The revocation list: `jti`s in `auth.revoked_tokens` are refused by `auth.authenticate`.
//!
//! The list changes rarely and is read on every request that carries a `jti`, so each backend
//! keeps it in memory while it is short: a statement trigger on the table sends a relcache
//! invalidation on every write, as for the key ring, and every backend takes it in before its
//! next check (and a replica once it replays the commit). A long list is probed in its index.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::error::Result;
use crate::keyring::LatestSnapshot;
use crate::privileged;
use crate::probe::{self, Lookup};

/// Longest list a backend keeps in memory (about 1 MB with 64-character jtis).
const KEPT_AT_MOST: usize = 10_000;

static BY_JTI: Lookup = Lookup {
    table: "auth.revoked_tokens",
    key: "jti",
    columns: &[],
    optional: &[],
};

enum List {
    Kept(HashSet<String>),
    /// Longer than `KEPT_AT_MOST`, or changes are not announced: every check probes the index.
    TooLong,
}

thread_local! {
    static GENERATION: Cell<u64> = const { Cell::new(0) };
    static TABLE_OID: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
    static CACHE: RefCell<Option<(u64, List)>> = const { RefCell::new(None) };
}

/// Called on every relcache invalidation (`InvalidOid` means all).
pub fn forget(relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid || relid == TABLE_OID.get() {
        GENERATION.set(GENERATION.get() + 1);
    }
}

pub fn is_revoked(jti: &str) -> Result<bool> {
    unsafe { pg_sys::AcceptInvalidationMessages() };
    // In parallel mode no new snapshot may be taken: probe with the statement's.
    if unsafe { pg_sys::IsInParallelMode() } {
        return probed(jti);
    }
    let generation = GENERATION.get();
    let kept = CACHE.with_borrow(|cache| match cache {
        Some((g, List::Kept(jtis))) if *g == generation => Some(Some(jtis.contains(jti))),
        Some((g, List::TooLong)) if *g == generation => Some(None),
        _ => None,
    });
    match kept {
        Some(Some(revoked)) => Ok(revoked),
        Some(None) => probed(jti),
        None => {
            let list = load()?;
            let revoked = match &list {
                List::Kept(jtis) => jtis.contains(jti),
                List::TooLong => probed(jti)?,
            };
            // A write signalled while we loaded may not be in what we read: keep nothing.
            if GENERATION.get() == generation {
                CACHE.set(Some((generation, list)));
            }
            Ok(revoked)
        }
    }
}

fn probed(jti: &str) -> Result<bool> {
    Ok(probe::find(&BY_JTI, jti, |_| ())?.is_some())
}

/// The list as committed now (the latest snapshot, not the statement's: the copy outlives the
/// statement). Kept only while the triggers that announce changes are there and enabled (a
/// database not yet updated to 0.3.0, or triggers disabled for a restore, is probed instead;
/// enabling or disabling a trigger invalidates the table, so the choice is made again).
fn load() -> Result<List> {
    let (oid, _) = privileged::table("auth.revoked_tokens")?;
    TABLE_OID.set(oid);
    let _latest = LatestSnapshot::push();
    privileged::read_as_owner("auth.revoked_tokens", |client| {
        // Both: the row trigger announces logical replication's writes, the statement one TRUNCATE.
        let announced = client
            .select(
                "SELECT pg_catalog.count(*) OPERATOR(pg_catalog.=) 2 FROM pg_catalog.pg_trigger t \
                 WHERE t.tgrelid OPERATOR(pg_catalog.=) 'auth.revoked_tokens'::pg_catalog.regclass \
                   AND t.tgname OPERATOR(pg_catalog.=) ANY ('{revoked_tokens_changed,revoked_tokens_row_changed}') \
                   AND t.tgenabled OPERATOR(pg_catalog.=) 'A'",
                Some(1),
                &[],
            )?
            .first()
            .get_one::<bool>()?;
        if announced != Some(true) {
            return Ok(List::TooLong);
        }
        let rows = client.select(
            "SELECT r.jti FROM auth.revoked_tokens r",
            Some((KEPT_AT_MOST + 1) as i64),
            &[],
        )?;
        if rows.len() > KEPT_AT_MOST {
            return Ok(List::TooLong);
        }
        let mut jtis = HashSet::with_capacity(rows.len());
        for row in rows {
            jtis.extend(row.get::<String>(1)?);
        }
        Ok(List::Kept(jtis))
    })
}

/// Statement trigger on `auth.revoked_tokens`: tells every backend (this one included) that the
/// list changed.
#[pg_schema]
mod auth_internal {
    use super::*;
    // pg_trigger's generated code names `Result`: the standard one, not pg_auth's.
    use std::result::Result;

    #[pg_trigger]
    pub(crate) fn revocations_changed<'a>(
        trigger: &'a pgrx::PgTrigger<'a>,
    ) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
        let relid = trigger.relation()?.oid();
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
        Ok(None)
    }
}
