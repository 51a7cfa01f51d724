//! The key ring's per-backend cache. Rows of `auth.keys` are parsed once and kept until a
//! relcache invalidation for the table says they changed: the statement trigger on `auth.keys`
//! sends one on every write, and PostgreSQL delivers it to every backend at its next transaction.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::jwt::ring::{KeyRing, RingKey};
use crate::privileged;

thread_local! {
    static GENERATION: Cell<u64> = const { Cell::new(0) };
    static KEYS_OID: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

#[derive(Clone)]
struct Cached {
    generation: u64,
    /// Loaded in parallel mode, where only the statement's snapshot may be used: good for the
    /// rest of the parallel operation, never for a later statement.
    statement_only: bool,
    ring: Rc<KeyRing>,
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid || relid == KEYS_OID.get() {
        GENERATION.set(GENERATION.get() + 1);
    }
    crate::privileged::forget(relid);
    crate::probe::forget(relid);
    crate::revocation::forget(relid);
}

/// Called from `_PG_init`.
pub fn register_invalidation_callback() {
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(
            Some(on_relcache_invalidation),
            pg_sys::Datum::from(0),
        )
    };
}

/// The current ring, loading it if a change was signalled since the last load. Invalidations
/// committed by other backends are taken in first, so a key retired in the middle of a long
/// statement elsewhere is seen by this backend's next call, not at its next write to the table.
pub fn ring() -> crate::error::Result<Rc<KeyRing>> {
    unsafe { pg_sys::AcceptInvalidationMessages() };
    let generation = GENERATION.get();
    let parallel = unsafe { pg_sys::IsInParallelMode() };
    let cached = CACHE.with_borrow(|c| c.clone());
    if let Some(c) =
        cached.filter(|c| c.generation == generation && (parallel || !c.statement_only))
    {
        return Ok(c.ring);
    }
    let ring = Rc::new(load(parallel)?);
    // A change signalled while we loaded may not be in what we read: use it once, keep nothing.
    if GENERATION.get() == generation {
        CACHE.set(Some(Cached {
            generation,
            statement_only: parallel,
            ring: ring.clone(),
        }));
    }
    Ok(ring)
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Reads `auth.keys` under the latest snapshot, not the statement's: the cache outlives the
/// statement, so it must hold what is committed now. In parallel mode (a parallel worker, or the
/// leader of a parallel query) PostgreSQL allows no new snapshot, so the statement's is used.
fn load(parallel: bool) -> crate::error::Result<KeyRing> {
    let (oid, _) = privileged::table("auth.keys")?;
    KEYS_OID.set(oid);
    let _latest = (!parallel).then(LatestSnapshot::push);
    let rows = privileged::read_as_owner("auth.keys", |client| {
        let table = client.select(
            "SELECT k.kid, k.algorithm, k.secret, k.public_jwk::pg_catalog.text, \
                    pg_catalog.date_part('epoch', k.active_from)::pg_catalog.float8, \
                    pg_catalog.date_part('epoch', k.retire_after)::pg_catalog.float8 \
             FROM auth.keys k ORDER BY k.active_from DESC, k.created_at DESC",
            None,
            &[],
        )?;
        let mut rows = Vec::new();
        for row in table {
            rows.push((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<String>(3)?,
                row.get::<String>(4)?,
                row.get::<f64>(5)?.unwrap_or(0.0),
                row.get::<f64>(6)?,
            ));
        }
        Ok(rows)
    })?;
    let mut keys = Vec::with_capacity(rows.len());
    for (kid, alg, secret, jwk, from, until) in rows {
        match RingKey::from_row(&kid, &alg, secret.as_deref(), jwk.as_deref(), from, until) {
            Ok(key) => keys.push(key),
            Err(e) => pgrx::warning!("pg_auth: key \"{kid}\" in auth.keys is skipped: {e}"),
        }
    }
    Ok(KeyRing::new(keys))
}

/// The latest snapshot as the active one until dropped (read-only SPI uses the active snapshot).
pub(crate) struct LatestSnapshot;

impl LatestSnapshot {
    pub(crate) fn push() -> LatestSnapshot {
        unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot()) };
        LatestSnapshot
    }
}

impl Drop for LatestSnapshot {
    fn drop(&mut self) {
        // On an error the transaction's abort pops the snapshot stack itself.
        if !std::thread::panicking() {
            unsafe { pg_sys::PopActiveSnapshot() };
        }
    }
}

/// Statement trigger on `auth.keys`: tells every backend (this one included) to reload the ring.
#[pg_trigger]
pub(crate) fn keys_changed<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    let relid = trigger.relation()?.oid();
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    Ok(None)
}
