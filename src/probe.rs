//! One-row lookups on pg_auth's private tables for the request path (`auth.authenticate`): a
//! direct probe of a unique btree index, as PostgreSQL's catalog caches read the catalogs, instead
//! of a query through SPI and the executor (which cost several times the probe itself).
//!
//! No SQL runs, no function or operator is resolved by name, no permission is checked: the
//! table, index, equality function and collation are the ones found in the catalog once per
//! backend (forgotten on a relcache invalidation of the table), the way a SECURITY DEFINER
//! function reads as its owner. Reading assigns no transaction id, so READ ONLY transactions and
//! replicas work. Rows are seen under the statement's snapshot, like any query: a logout
//! committed elsewhere is seen by the next statement.

use std::cell::{Cell, RefCell};
use std::ffi::CString;
use std::rc::Rc;

use pgrx::{pg_sys, FromDatum, IntoDatum};

use crate::error::{AuthError, Result};
use crate::privileged;

/// A unique lookup: the table, the column of its one-column unique btree index, and the columns
/// the caller reads from the row found: `columns` must exist; `optional` ones may be missing
/// (a column a later release added, before `ALTER EXTENSION pg_auth UPDATE`) and then read as
/// NULL.
pub struct Lookup {
    pub table: &'static str,
    pub key: &'static str,
    pub columns: &'static [&'static str],
    pub optional: &'static [&'static str],
}

/// What the catalog says about a `Lookup`, found once per backend.
struct Shape {
    lookup: *const Lookup,
    table_oid: pg_sys::Oid,
    index_oid: pg_sys::Oid,
    key_attnum: pg_sys::AttrNumber,
    collation: pg_sys::Oid,
    equality: pg_sys::RegProcedure,
    /// Attribute numbers of `lookup.columns` then `lookup.optional`, in that order.
    attnums: Vec<Option<pg_sys::AttrNumber>>,
}

thread_local! {
    static SHAPES: RefCell<Vec<Rc<Shape>>> = const { RefCell::new(Vec::new()) };
    /// Bumped whenever a shape is forgotten, so a probe notices an invalidation that arrived
    /// while it locked the table.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

/// Forgets shapes of `relid` (a table or one of its indexes) after a relcache invalidation
/// (`InvalidOid` means all).
pub fn forget(relid: pg_sys::Oid) {
    SHAPES.with_borrow_mut(|shapes| {
        let before = shapes.len();
        shapes.retain(|s| {
            relid != pg_sys::InvalidOid && s.table_oid != relid && s.index_oid != relid
        });
        if shapes.len() != before {
            GENERATION.set(GENERATION.get() + 1);
        }
    });
}

/// The row found, valid inside the closure given to `find` only: its columns deformed in one
/// pass (reading them one by one would walk the tuple again for each after a text column).
pub struct Row<'a> {
    lookup: &'a Lookup,
    shape: &'a Shape,
    values: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
}

impl Row<'_> {
    fn datum(&self, column: &str) -> Option<pg_sys::Datum> {
        let lookup = self.lookup;
        let position = lookup
            .columns
            .iter()
            .chain(lookup.optional)
            .position(|c| *c == column);
        let index = usize::try_from(position.and_then(|p| self.shape.attnums[p])?).ok()? - 1;
        (!*self.nulls.get(index)?).then(|| self.values[index])
    }

    pub fn text(&self, column: &str) -> Option<String> {
        self.datum(column)
            .and_then(|d| unsafe { String::from_datum(d, false) })
    }

    pub fn uuid(&self, column: &str) -> Option<pgrx::Uuid> {
        self.datum(column)
            .and_then(|d| unsafe { pgrx::Uuid::from_datum(d, false) })
    }

    /// A jsonb column as its text (`jsonb_out`).
    pub fn json_text(&self, column: &str) -> Option<String> {
        self.datum(column)
            .and_then(|d| unsafe { crate::api::jsonb::JsonbText::from_datum(d, false) })
            .map(|j| j.0)
    }

    pub fn bool(&self, column: &str) -> Option<bool> {
        self.datum(column).map(|d| d.value() != 0)
    }

    /// A timestamptz as PostgreSQL stores it: microseconds since 2000-01-01 UTC.
    pub fn timestamp(&self, column: &str) -> Option<i64> {
        self.datum(column).map(|d| d.value() as i64)
    }

    pub fn is_null(&self, column: &str) -> bool {
        self.datum(column).is_none()
    }
}

/// The row of `lookup.table` whose key column equals `key` (of the column's type), read by
/// `read`; `None` when no row is visible to the statement.
pub fn find<T>(
    lookup: &'static Lookup,
    key: impl IntoDatum,
    read: impl FnOnce(&Row) -> T,
) -> Result<Option<T>> {
    let Some(key) = key.into_datum() else {
        return Ok(None);
    };
    let Some((shape, relation)) = open(lookup)? else {
        return Ok(None);
    };
    unsafe {
        let mut scan_key: pg_sys::ScanKeyData = std::mem::zeroed();
        pg_sys::ScanKeyEntryInitialize(
            &mut scan_key,
            0,
            shape.key_attnum,
            pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
            pg_sys::InvalidOid,
            shape.collation,
            shape.equality,
            key,
        );
        let snapshot = if pg_sys::ActiveSnapshotSet() {
            pg_sys::GetActiveSnapshot()
        } else {
            pg_sys::GetTransactionSnapshot()
        };
        let scan =
            pg_sys::systable_beginscan(relation, shape.index_oid, true, snapshot, 1, &mut scan_key);
        let tuple = pg_sys::systable_getnext(scan);
        let found = (!tuple.is_null()).then(|| {
            let desc = (*relation).rd_att;
            let natts = usize::try_from((*desc).natts).unwrap_or(0);
            let mut values = vec![pg_sys::Datum::from(0); natts];
            let mut nulls = vec![true; natts];
            pg_sys::heap_deform_tuple(tuple, desc, values.as_mut_ptr(), nulls.as_mut_ptr());
            read(&Row {
                lookup,
                shape: &shape,
                values,
                nulls,
            })
        });
        pg_sys::systable_endscan(scan);
        // The lock is kept to the end of the transaction, as a query's would be.
        pg_sys::table_close(relation, pg_sys::NoLock as pg_sys::LOCKMODE);
        Ok(found)
    }
}

/// The shape of `lookup` and its table, opened with an AccessShareLock; `None` when the table
/// has no key column (it came with a later release: no row can match). Locking may take in an
/// invalidation that makes the shape stale (the table or index replaced): then it is found again.
fn open(lookup: &'static Lookup) -> Result<Option<(Rc<Shape>, pg_sys::Relation)>> {
    for _ in 0..2 {
        let Some(shape) = shape(lookup)? else {
            return Ok(None);
        };
        let generation = GENERATION.get();
        let relation = unsafe {
            pg_sys::try_table_open(shape.table_oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE)
        };
        if !relation.is_null() && GENERATION.get() == generation {
            return Ok(Some((shape, relation)));
        }
        if !relation.is_null() {
            unsafe { pg_sys::table_close(relation, pg_sys::AccessShareLock as pg_sys::LOCKMODE) };
        }
        forget(shape.table_oid);
        privileged::forget(shape.table_oid);
    }
    Err(missing(lookup))
}

fn missing(lookup: &Lookup) -> AuthError {
    AuthError::Storage(format!(
        "no unique btree index on {}({}); is pg_auth installed and up to date in this database?",
        lookup.table, lookup.key
    ))
}

fn shape(lookup: &'static Lookup) -> Result<Option<Rc<Shape>>> {
    let cached = SHAPES.with_borrow(|shapes| {
        shapes
            .iter()
            .find(|s| std::ptr::eq(s.lookup, lookup))
            .cloned()
    });
    if let Some(shape) = cached {
        return Ok(Some(shape));
    }
    let Some(shape) = find_shape(lookup)? else {
        return Ok(None);
    };
    let shape = Rc::new(shape);
    SHAPES.with_borrow_mut(|shapes| shapes.push(shape.clone()));
    Ok(Some(shape))
}

/// The unique btree index on exactly `lookup.key` (no predicate, no expression) and the
/// equality function of its operator class, from the catalog; `None` when the key column does
/// not exist.
fn find_shape(lookup: &'static Lookup) -> Result<Option<Shape>> {
    let (table_oid, _) = privileged::table(lookup.table)?;
    if attnum(table_oid, lookup.key).is_none() {
        return Ok(None);
    }
    let index = privileged::read_catalog(|client| {
        let row = client.select(
            "SELECT i.indexrelid, a.attnum, i.indcollation[0], o.oprcode::pg_catalog.oid \
                 FROM pg_catalog.pg_attribute a \
                 JOIN pg_catalog.pg_index i ON i.indrelid = a.attrelid AND i.indnatts = 1 \
                      AND i.indkey[0] = a.attnum AND i.indisunique AND i.indisvalid \
                      AND i.indpred IS NULL AND i.indexprs IS NULL \
                 JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_catalog.pg_am am ON am.oid = c.relam AND am.amname = 'btree' \
                 JOIN pg_catalog.pg_opclass oc ON oc.oid = i.indclass[0] \
                 JOIN pg_catalog.pg_amop ao ON ao.amopfamily = oc.opcfamily \
                      AND ao.amoplefttype = a.atttypid AND ao.amoprighttype = a.atttypid \
                      AND ao.amopstrategy = 3 \
                 JOIN pg_catalog.pg_operator o ON o.oid = ao.amopopr \
                 WHERE a.attrelid = $1 AND a.attname = $2 AND NOT a.attisdropped \
                 LIMIT 1",
            Some(1),
            &[table_oid.into(), lookup.key.into()],
        )?;
        if row.is_empty() {
            return Ok(None);
        }
        let row = row.first();
        Ok(Some((
            row.get::<pg_sys::Oid>(1)?,
            row.get::<i16>(2)?,
            row.get::<pg_sys::Oid>(3)?,
            row.get::<pg_sys::Oid>(4)?,
        )))
    })?;
    let Some((Some(index_oid), Some(key_attnum), Some(collation), Some(equality))) = index else {
        return Err(missing(lookup));
    };
    let mut attnums: Vec<_> = lookup
        .columns
        .iter()
        .map(|c| attnum(table_oid, c))
        .collect();
    if attnums.contains(&None) {
        return Err(AuthError::Storage(format!(
            "{} lacks a column pg_auth reads ({}); is pg_auth up to date in this database?",
            lookup.table,
            lookup.columns.join(", ")
        )));
    }
    attnums.extend(lookup.optional.iter().map(|c| attnum(table_oid, c)));
    Ok(Some(Shape {
        lookup,
        table_oid,
        index_oid,
        key_attnum,
        collation,
        equality,
        attnums,
    }))
}

fn attnum(table_oid: pg_sys::Oid, column: &str) -> Option<pg_sys::AttrNumber> {
    let name = CString::new(column).ok()?;
    let attnum = unsafe { pg_sys::get_attnum(table_oid, name.as_ptr()) };
    (attnum > 0).then_some(attnum)
}
