//! The attempt table (`crate::attempts`) in shared memory, with pg_auth in
//! shared_preload_libraries; without it, these functions allow everything and the limits rest on
//! the counts in pg_auth's tables alone (which a SQL caller can roll back).

use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use rand::RngCore;

use crate::attempts::Table;

unsafe impl PGRXSharedMemory for Table {}

static TABLE: PgLwLock<Table> = unsafe { PgLwLock::new(c"pg_auth_attempts") };
/// Set in the postmaster while it preloads pg_auth; backends inherit it.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Called from `_PG_init`: reserves the table when the postmaster preloads the library.
pub fn init() {
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    pg_shmem_init!(
        TABLE = {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            Table::new(seed)
        }
    );
    ACTIVE.store(true, Ordering::Relaxed);
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The table is shared by every database of the cluster: a key is counted for this database
/// only (the same email elsewhere is someone else, and its success must not clear this count).
fn in_this_database(key: &[u8]) -> Vec<u8> {
    let database = unsafe { pg_sys::MyDatabaseId }.to_u32().to_be_bytes();
    [database.as_slice(), key].concat()
}

/// Counts one attempt of `kind` for `key`; false past `max` in the current window.
pub fn allowed(kind: &str, key: &[u8], max: i32, window_secs: i32) -> bool {
    if !ACTIVE.load(Ordering::Relaxed) {
        return true;
    }
    let key = in_this_database(key);
    let allowed = TABLE.exclusive().attempt(
        kind,
        &key,
        now(),
        max.max(0) as u32,
        i64::from(window_secs.max(1)),
    );
    allowed
}

/// Forgets the attempts of `kind` for `key`.
pub fn clear(kind: &str, key: &[u8]) {
    if ACTIVE.load(Ordering::Relaxed) {
        let key = in_this_database(key);
        TABLE.exclusive().clear(kind, &key);
    }
}

#[pg_schema]
pub(crate) mod auth_internal {
    use super::*;

    /// Counts one attempt of `kind` for `key`; false when there were more than `max` in the
    /// current window of `window_secs` seconds. Not undone by ROLLBACK. Always true without
    /// pg_auth in shared_preload_libraries.
    #[pg_extern(volatile, parallel_unsafe, strict)]
    fn attempt_allowed(kind: &str, key: &[u8], max: i32, window_secs: i32) -> bool {
        super::allowed(kind, key, max, window_secs)
    }

    /// Forgets the attempts of `kind` for `key`, after a success.
    #[pg_extern(volatile, parallel_unsafe, strict)]
    fn clear_attempts(kind: &str, key: &[u8]) {
        super::clear(kind, key)
    }

    /// Whether attempts are counted in shared memory (pg_auth preloaded).
    #[pg_extern(stable, parallel_safe)]
    fn attempt_limits_shared() -> bool {
        ACTIVE.load(Ordering::Relaxed)
    }
}
