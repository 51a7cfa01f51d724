//! Reading pg_auth's private tables on behalf of any caller by SQL (`auth.keys`, loaded once per
//! backend; the request path's one-row lookups go through `probe` instead).
//!
//! For one fixed read-only query we run as the table's owner, the way a SECURITY DEFINER
//! function would: callers never get read access to key material or session hashes, yet every
//! role can verify tokens, and `auth.authenticate` — which must run as the caller, since a
//! definer function cannot switch roles — can too. Only SPI's read-only path is used, so no
//! transaction id is assigned (READ ONLY transactions and replicas keep working).
//!
//! Everything that runs as the owner runs with `search_path = pg_catalog, pg_temp` forced for
//! exactly that span (its own GUC nest level, undone on error too) and names every object with
//! its schema: a type, function or operator the caller planted in `pg_temp` or in a schema of
//! their own must never be resolved while we hold the owner's rights.

use std::cell::RefCell;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiResult};

use crate::error::{AuthError, Result};

thread_local! {
    /// (qualified name, relation oid, owner) of tables looked up so far in this backend.
    static TABLES: RefCell<Vec<(&'static str, pg_sys::Oid, pg_sys::Oid)>> = const { RefCell::new(Vec::new()) };
}

/// Forgets cached table facts after a relcache invalidation (`InvalidOid` means all).
pub fn forget(relid: pg_sys::Oid) {
    TABLES
        .with_borrow_mut(|t| t.retain(|(_, oid, _)| relid != pg_sys::InvalidOid && *oid != relid));
}

/// Relation oid and owner of one of pg_auth's tables, e.g. `auth.keys`.
pub fn table(name: &'static str) -> Result<(pg_sys::Oid, pg_sys::Oid)> {
    if let Some((_, oid, owner)) =
        TABLES.with_borrow(|t| t.iter().find(|(n, _, _)| *n == name).copied())
    {
        return Ok((oid, owner));
    }
    let found = {
        let _path = SafeSearchPath::push();
        Spi::connect(|client| {
            let row = client
                .select(
                    "SELECT c.oid, c.relowner FROM pg_catalog.pg_class c \
                     WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1::pg_catalog.text)",
                    Some(1),
                    &[name.into()],
                )?
                .first();
            Ok::<_, pgrx::spi::Error>((row.get::<pg_sys::Oid>(1)?, row.get::<pg_sys::Oid>(2)?))
        })
    };
    match found {
        Ok((Some(oid), Some(owner))) => {
            TABLES.with_borrow_mut(|t| t.push((name, oid, owner)));
            Ok((oid, owner))
        }
        _ => Err(AuthError::Storage(format!(
            "table {name} is missing; is pg_auth installed in this database?"
        ))),
    }
}

/// Runs `read` (read-only SPI on the catalog, which every role may read) with the safe
/// search_path.
pub fn read_catalog<T>(read: impl FnOnce(&SpiClient<'_>) -> SpiResult<T>) -> Result<T> {
    let _path = SafeSearchPath::push();
    Spi::connect(read).map_err(|e| AuthError::Storage(format!("cannot read the catalog: {e}")))
}

/// Runs `read` (read-only SPI) as the owner of `table`.
pub fn read_as_owner<T>(
    table_name: &'static str,
    read: impl FnOnce(&SpiClient<'_>) -> SpiResult<T>,
) -> Result<T> {
    let (_, owner) = table(table_name)?;
    let _as_owner = AsOwner::switch(owner);
    Spi::connect(read).map_err(|e| AuthError::Storage(format!("cannot read {table_name}: {e}")))
}

/// `search_path = pg_catalog, pg_temp` until dropped, in a GUC nest level of its own, as
/// PostgreSQL does for a function's `SET search_path`. An error unwinding through it is undone
/// by the (sub)transaction abort as well.
struct SafeSearchPath {
    nest_level: i32,
}

impl SafeSearchPath {
    fn push() -> SafeSearchPath {
        unsafe {
            let nest_level = pg_sys::NewGUCNestLevel();
            pg_sys::set_config_option(
                c"search_path".as_ptr(),
                c"pg_catalog, pg_temp".as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
            SafeSearchPath { nest_level }
        }
    }
}

impl Drop for SafeSearchPath {
    fn drop(&mut self) {
        unsafe { pg_sys::AtEOXact_GUC(true, self.nest_level) };
    }
}

/// The owner's rights and a safe search_path, until dropped. Fields drop in order: the
/// search_path is restored while still the owner, then the user id, as fmgr does for SECURITY
/// DEFINER functions.
struct AsOwner {
    _path: SafeSearchPath,
    _user: UserId,
}

impl AsOwner {
    fn switch(owner: pg_sys::Oid) -> AsOwner {
        let user = UserId::switch(owner);
        AsOwner {
            _path: SafeSearchPath::push(),
            _user: user,
        }
    }
}

struct UserId {
    user: pg_sys::Oid,
    context: i32,
}

impl UserId {
    /// Becomes `owner` until dropped (an aborting transaction restores the user id too).
    fn switch(owner: pg_sys::Oid) -> UserId {
        let (mut user, mut context) = (pg_sys::InvalidOid, 0);
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
            let restricted = (pg_sys::SECURITY_LOCAL_USERID_CHANGE
                | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32;
            pg_sys::SetUserIdAndSecContext(owner, context | restricted);
        }
        UserId { user, context }
    }
}

impl Drop for UserId {
    fn drop(&mut self) {
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
    }
}
