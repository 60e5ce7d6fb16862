//! [`SqlStore`] on a Durable Object's SQLite storage.

use crate::store::{checked_int, Row, SqlStore, SqlValue, StoreError};
use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use worker::{SqlStorage, SqlStorageValue, State};

#[wasm_bindgen]
extern "C" {
    /// The raw `ctx.storage` object, for `transactionSync`, which workers-rs does not bind.
    #[wasm_bindgen(js_name = Object)]
    type RawStorage;

    #[wasm_bindgen(method, catch, js_name = transactionSync)]
    fn transaction_sync(this: &RawStorage, body: &js_sys::Function) -> Result<JsValue, JsValue>;
}

pub struct DoSql {
    sql: SqlStorage,
    raw: JsValue,
    schemas: Schemas,
}

/// The schemas an object's storage is known to hold, kept by the object across its
/// requests ([`SqlStore::schema_known`]); one per object instance, never shared between
/// objects (each has its own storage).
#[derive(Debug, Default, Clone)]
pub struct Schemas(Rc<RefCell<Vec<&'static str>>>);

impl Schemas {
    /// Forgets every schema: the object deleted its storage.
    pub fn forget(&self) {
        self.0.borrow_mut().clear();
    }
}

impl DoSql {
    /// A store that checks its schema on every open.
    pub fn new(state: &State) -> Self {
        Self::remembering(state, &Schemas::default())
    }

    /// A store that remembers, in `schemas`, which schemas it found in place.
    pub fn remembering(state: &State, schemas: &Schemas) -> Self {
        let storage = state.storage();
        let raw: &JsValue = storage.as_raw().as_ref();
        DoSql {
            sql: storage.sql(),
            raw: raw.clone(),
            schemas: schemas.clone(),
        }
    }
}

fn js_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Sql(e.to_string())
}

fn to_do(v: &SqlValue) -> Result<SqlStorageValue, StoreError> {
    Ok(match v {
        SqlValue::Null => SqlStorageValue::Null,
        SqlValue::Integer(i) => {
            checked_int(*i)?;
            SqlStorageValue::Integer(*i)
        }
        SqlValue::Real(f) => SqlStorageValue::Float(*f),
        SqlValue::Text(s) => SqlStorageValue::String(s.clone()),
        SqlValue::Blob(b) => SqlStorageValue::Blob(b.clone()),
    })
}

fn from_do(v: SqlStorageValue) -> SqlValue {
    match v {
        SqlStorageValue::Null => SqlValue::Null,
        SqlStorageValue::Boolean(b) => SqlValue::Integer(i64::from(b)),
        SqlStorageValue::Integer(i) => SqlValue::Integer(i),
        SqlStorageValue::Float(f) => SqlValue::Real(f),
        SqlStorageValue::String(s) => SqlValue::Text(s),
        SqlStorageValue::Blob(b) => SqlValue::Blob(b),
    }
}

impl SqlStore for DoSql {
    fn schema_known(&self, schema: &'static str) -> bool {
        self.schemas.0.borrow().contains(&schema)
    }

    fn note_schema(&mut self, schema: &'static str) {
        let mut known = self.schemas.0.borrow_mut();
        if !known.contains(&schema) {
            known.push(schema);
        }
    }

    fn exec(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let bindings = params.iter().map(to_do).collect::<Result<Vec<_>, _>>()?;
        let cursor = self.sql.exec(sql, bindings).map_err(js_err)?;
        let mut rows = Vec::new();
        for raw in cursor.raw() {
            rows.push(Row(raw.map_err(js_err)?.into_iter().map(from_do).collect()));
        }
        Ok(rows)
    }

    fn atomically<T, E>(&mut self, op: &mut dyn FnMut(&mut Self) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let raw: RawStorage = self.raw.clone().unchecked_into();
        let mut outcome: Option<Result<T, E>> = None;
        let this: *mut Self = self;
        let outcome_ptr: *mut Option<Result<T, E>> = &mut outcome;
        let op_ptr: *mut (dyn FnMut(&mut Self) -> Result<T, E> + '_) = op;
        let body = move || -> Result<JsValue, JsValue> {
            // SAFETY: transactionSync runs this callback synchronously, exactly once, before
            // it returns; `self`, `op` and `outcome` outlive that call and nothing else
            // touches them meanwhile (`raw` is a separate handle).
            let result = unsafe { (*op_ptr)(&mut *this) };
            let failed = result.is_err();
            unsafe { *outcome_ptr = Some(result) };
            if failed {
                // Throwing is what makes transactionSync roll back.
                Err(JsValue::from_str("claw: rolled back"))
            } else {
                Ok(JsValue::UNDEFINED)
            }
        };
        let boxed: Box<dyn FnMut() -> Result<JsValue, JsValue> + '_> = Box::new(body);
        // SAFETY: only the lifetime is erased; the closure is dropped before this function
        // returns (see above), so it never outlives what it borrows.
        let boxed: Box<dyn FnMut() -> Result<JsValue, JsValue> + 'static> =
            unsafe { std::mem::transmute(boxed) };
        let closure = Closure::wrap(boxed);
        let committed = raw.transaction_sync(closure.as_ref().unchecked_ref());
        drop(closure);
        match (outcome, committed) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(_)) => Ok(v),
            (_, Err(js)) => Err(E::from(StoreError::Sql(format!(
                "transaction failed: {}",
                js.as_string().unwrap_or_else(|| format!("{js:?}"))
            )))),
            (None, Ok(_)) => Err(E::from(StoreError::Sql(
                "transaction body did not run".into(),
            ))),
        }
    }
}
