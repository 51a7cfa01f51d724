//! jsonb passed as its text, both ways. pgrx's `JsonB` goes through serde_json::Value, which
//! costs a full parse and serialisation per call and fails with XX000 on deeply nested input;
//! this keeps the text and lets our own code (or PostgreSQL's jsonb_in) parse it.
//!
//! Returning claims (an object of strings, integers, booleans…) is the hot case: such a text is
//! built into jsonb directly (one serde_json parse, one `JsonbValueToJsonb`), which costs a
//! fraction of `jsonb_in`'s parser. Anything the direct build could render differently from
//! `jsonb_in` — a fraction or exponent (numeric keeps its written scale), an integer beyond
//! int64, `\u0000`, a non-UTF-8 database, any parse error — goes through `jsonb_in` itself,
//! which gives its own answer and errors.

use std::ffi::{CStr, CString};

use pgrx::callconv::{ArgAbi, BoxRet};
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::{direct_function_call_as_datum, FromDatum, IntoDatum};
use serde_json::{Map, Value};

pub struct JsonbText(pub String);

/// Longest string jsonb stores (`JENTRY_OFFLENMASK`).
const JSONB_STRING_MAX: usize = 0x0FFF_FFFF;

/// `text` as jsonb when it is a JSON object the direct build renders exactly as `jsonb_in`.
fn built_directly(text: &str) -> Option<pg_sys::Datum> {
    if unsafe { pg_sys::GetDatabaseEncoding() } != pg_sys::pg_enc::PG_UTF8 as i32 {
        return None;
    }
    let Ok(Value::Object(members)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let mut tree = Tree::default();
    let mut root = tree.object(&members)?;
    let jsonb = unsafe { pg_sys::JsonbValueToJsonb(&mut root) };
    Some(pg_sys::Datum::from(jsonb))
}

/// The arrays of a JsonbValue tree, kept until it is converted (their buffers never move).
#[derive(Default)]
struct Tree {
    objects: Vec<Vec<pg_sys::JsonbPair>>,
    arrays: Vec<Vec<pg_sys::JsonbValue>>,
}

impl Tree {
    fn object(&mut self, members: &Map<String, Value>) -> Option<pg_sys::JsonbValue> {
        let mut pairs = Vec::with_capacity(members.len());
        for (key, value) in members {
            pairs.push(pg_sys::JsonbPair {
                key: string(key)?,
                value: self.value(value)?,
                order: pairs.len() as u32,
            });
        }
        // jsonb's key order: shorter first, then bytewise (lookups binary-search it).
        pairs.sort_by(|a, b| unsafe {
            key_bytes(a)
                .len()
                .cmp(&key_bytes(b).len())
                .then(key_bytes(a).cmp(key_bytes(b)))
        });
        let mut value = pg_sys::JsonbValue {
            type_: pg_sys::jbvType::jbvObject,
            ..Default::default()
        };
        value.val.object = pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_3 {
            nPairs: pairs.len().try_into().ok()?,
            pairs: pairs.as_mut_ptr(),
        };
        self.objects.push(pairs);
        Some(value)
    }

    fn array(&mut self, elements: &[Value]) -> Option<pg_sys::JsonbValue> {
        let mut elems = elements
            .iter()
            .map(|e| self.value(e))
            .collect::<Option<Vec<_>>>()?;
        let mut value = pg_sys::JsonbValue {
            type_: pg_sys::jbvType::jbvArray,
            ..Default::default()
        };
        value.val.array = pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_2 {
            nElems: elems.len().try_into().ok()?,
            elems: elems.as_mut_ptr(),
            rawScalar: false,
        };
        self.arrays.push(elems);
        Some(value)
    }

    fn value(&mut self, value: &Value) -> Option<pg_sys::JsonbValue> {
        let mut scalar = pg_sys::JsonbValue::default();
        match value {
            Value::Object(members) => return self.object(members),
            Value::Array(elements) => return self.array(elements),
            Value::String(text) => return string(text),
            Value::Null => scalar.type_ = pg_sys::jbvType::jbvNull,
            Value::Bool(b) => {
                scalar.type_ = pg_sys::jbvType::jbvBool;
                scalar.val.boolean = *b;
            }
            Value::Number(n) => {
                scalar.type_ = pg_sys::jbvType::jbvNumeric;
                scalar.val.numeric = unsafe { pg_sys::int64_to_numeric(n.as_i64()?) };
            }
        }
        Some(scalar)
    }
}

/// A jsonb string pointing into `text` (which outlives the conversion).
fn string(text: &str) -> Option<pg_sys::JsonbValue> {
    if text.len() > JSONB_STRING_MAX || text.contains('\0') {
        return None;
    }
    let mut value = pg_sys::JsonbValue {
        type_: pg_sys::jbvType::jbvString,
        ..Default::default()
    };
    value.val.string = pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_1 {
        len: text.len() as i32,
        val: text.as_ptr() as *mut std::ffi::c_char,
    };
    Some(value)
}

/// # Safety
/// `pair.key` is a string made by `string`.
unsafe fn key_bytes(pair: &pg_sys::JsonbPair) -> &[u8] {
    let key = unsafe { pair.key.val.string };
    unsafe { std::slice::from_raw_parts(key.val as *const u8, key.len as usize) }
}

impl FromDatum for JsonbText {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            return None;
        }
        let text = unsafe {
            let cstr = pgrx::direct_function_call::<&CStr>(pg_sys::jsonb_out, &[Some(datum)])?;
            let owned = cstr.to_string_lossy().into_owned();
            pg_sys::pfree(cstr.as_ptr() as *mut _);
            owned
        };
        Some(JsonbText(text))
    }
}

impl IntoDatum for JsonbText {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        if let Some(jsonb) = built_directly(&self.0) {
            return Some(jsonb);
        }
        let text = CString::new(self.0).ok()?;
        unsafe { direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(text.as_ptr().into())]) }
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

unsafe impl SqlTranslatable for JsonbText {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(JsonbText);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}

unsafe impl<'fcx> ArgAbi<'fcx> for JsonbText {
    unsafe fn unbox_arg_unchecked(arg: pgrx::callconv::Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe { arg.unbox_arg_using_from_datum() }
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }

    unsafe fn unbox_nullable_arg(
        arg: pgrx::callconv::Arg<'_, 'fcx>,
    ) -> pgrx::nullable::Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum() }.into()
    }
}

unsafe impl BoxRet for JsonbText {
    unsafe fn box_into<'fcx>(
        self,
        fcinfo: &mut pgrx::callconv::FcInfo<'fcx>,
    ) -> pgrx::datum::Datum<'fcx> {
        match self.into_datum() {
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
            None => fcinfo.return_null(),
        }
    }
}
