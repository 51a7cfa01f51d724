//! Reading pg_auth's private tables (`auth.keys`, `auth.sessions`, `auth.revoked_tokens`) on
//! behalf of any caller.
//!
//! For one fixed read-only query we run as the table's owner, the way a SECURITY DEFINER
//! function would: callers never get read access to key material or session hashes, yet every
//! role can verify tokens, and `auth.authenticate` — which must run as the caller, since a
//! definer function cannot switch roles — can too. Only SPI's read-only path is used, so no
//! transaction id is assigned (READ ONLY transactions and replicas keep working).

use std::cell::RefCell;
use std::rc::Rc;

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult, SpiTupleTable};
use pgrx::{pg_sys, PgOid};

use crate::error::{AuthError, Result};

thread_local! {
    /// (qualified name, relation oid, owner) of tables looked up so far in this backend.
    static TABLES: RefCell<Vec<(&'static str, pg_sys::Oid, pg_sys::Oid)>> = const { RefCell::new(Vec::new()) };
    /// Plans of the fixed queries on the request path, made once per backend. PostgreSQL's plan
    /// cache re-plans them by itself when a table they use changes.
    static PLANS: RefCell<Vec<(&'static str, Rc<OwnedPreparedStatement>)>> = const { RefCell::new(Vec::new()) };
}

/// Forgets cached table facts after a relcache invalidation (`InvalidOid` means all).
pub fn forget(relid: pg_sys::Oid) {
    TABLES.with_borrow_mut(|t| t.retain(|(_, oid, _)| relid != pg_sys::InvalidOid && *oid != relid));
}

/// Relation oid and owner of one of pg_auth's tables, e.g. `auth.keys`.
pub fn table(name: &'static str) -> Result<(pg_sys::Oid, pg_sys::Oid)> {
    if let Some((_, oid, owner)) = TABLES.with_borrow(|t| t.iter().find(|(n, _, _)| *n == name).copied()) {
        return Ok((oid, owner));
    }
    let found = Spi::connect(|client| {
        let row = client
            .select(
                "SELECT c.oid, c.relowner FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)",
                Some(1),
                &[name.into()],
            )?
            .first();
        Ok::<_, pgrx::spi::Error>((row.get::<pg_sys::Oid>(1)?, row.get::<pg_sys::Oid>(2)?))
    });
    match found {
        Ok((Some(oid), Some(owner))) => {
            TABLES.with_borrow_mut(|t| t.push((name, oid, owner)));
            Ok((oid, owner))
        }
        _ => Err(AuthError::InvalidKey(format!("table {name} is missing; is pg_auth installed in this database?"))),
    }
}

/// Runs `read` (read-only SPI) as the owner of `table`.
pub fn read_as_owner<T>(table_name: &'static str, read: impl FnOnce(&SpiClient<'_>) -> SpiResult<T>) -> Result<T> {
    let (_, owner) = table(table_name)?;
    let _as_owner = AsOwner::switch(owner);
    Spi::connect(read).map_err(|e| AuthError::InvalidKey(format!("cannot read {table_name}: {e}")))
}

/// Runs one of the fixed read-only queries with a plan kept for the backend's life: parsing and
/// planning would cost far more than the index probe itself.
pub fn select_planned<'conn>(
    client: &SpiClient<'conn>,
    query: &'static str,
    types: &[PgOid],
    args: &[DatumWithOid<'_>],
) -> SpiResult<SpiTupleTable<'conn>> {
    let cached = PLANS.with_borrow(|p| p.iter().find(|(q, _)| *q == query).map(|(_, plan)| plan.clone()));
    let plan = match cached {
        Some(plan) => plan,
        None => {
            let plan = Rc::new(client.prepare(query, types)?.keep());
            PLANS.with_borrow_mut(|p| p.push((query, plan.clone())));
            plan
        }
    };
    client.select(&*plan, Some(1), args)
}

struct AsOwner {
    user: pg_sys::Oid,
    context: i32,
}

impl AsOwner {
    /// Becomes `owner` until dropped (an aborting transaction restores the user id too).
    fn switch(owner: pg_sys::Oid) -> AsOwner {
        let (mut user, mut context) = (pg_sys::InvalidOid, 0);
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
            let restricted = (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32;
            pg_sys::SetUserIdAndSecContext(owner, context | restricted);
        }
        AsOwner { user, context }
    }
}

impl Drop for AsOwner {
    fn drop(&mut self) {
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
    }
}
