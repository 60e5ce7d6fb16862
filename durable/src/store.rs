//! The storage trait every Durable Object core runs on.
//!
//! A core (registry, limiter, ledger, trending) is plain Rust that talks SQL through
//! [`SqlStore`]. In the Worker the store is the object's SQLite storage (`ctx.storage.sql`);
//! under `cargo test` it is an in-memory SQLite running the very same statements. Keep the
//! SQL to what both accept: SQLite syntax, positional `?` parameters, no `BEGIN`/`SAVEPOINT`
//! (the Durable Object refuses them; [`SqlStore::atomically`] is the only way to group writes).

use thiserror::Error;

/// JavaScript numbers are f64: integers beyond this lose precision on the way through
/// Durable Object SQL, so the stores refuse them instead of rounding. Money never travels as
/// an SQL integer; it is stored as a decimal string.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// One SQL value, as both SQLite engines hand it over.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}
impl From<u32> for SqlValue {
    fn from(v: u32) -> Self {
        SqlValue::Integer(i64::from(v))
    }
}
impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Integer(i64::from(v))
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// A result row: values in the order of the statement's result columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row(pub Vec<SqlValue>);

impl Row {
    fn get(&self, i: usize) -> Result<&SqlValue, StoreError> {
        self.0.get(i).ok_or(StoreError::Column {
            index: i,
            expected: "a column",
        })
    }

    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.get(i)? {
            SqlValue::Integer(v) => Ok(*v),
            _ => Err(StoreError::Column {
                index: i,
                expected: "integer",
            }),
        }
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.get(i)? {
            SqlValue::Null => Ok(None),
            SqlValue::Integer(v) => Ok(Some(*v)),
            _ => Err(StoreError::Column {
                index: i,
                expected: "integer or null",
            }),
        }
    }

    pub fn text(&self, i: usize) -> Result<&str, StoreError> {
        match self.get(i)? {
            SqlValue::Text(v) => Ok(v),
            _ => Err(StoreError::Column {
                index: i,
                expected: "text",
            }),
        }
    }

    pub fn opt_blob(&self, i: usize) -> Result<Option<&[u8]>, StoreError> {
        self.nullable(i, "blob or null", |v| match v {
            SqlValue::Blob(b) => Some(b.as_slice()),
            _ => None,
        })
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<&str>, StoreError> {
        self.nullable(i, "text or null", |v| match v {
            SqlValue::Text(t) => Some(t.as_str()),
            _ => None,
        })
    }

    /// Column `i` as `pick` reads it, or `None` for NULL; anything else is an error.
    fn nullable<'r, T: ?Sized>(
        &'r self,
        i: usize,
        expected: &'static str,
        pick: fn(&'r SqlValue) -> Option<&'r T>,
    ) -> Result<Option<&'r T>, StoreError> {
        match self.get(i)? {
            SqlValue::Null => Ok(None),
            v => pick(v)
                .map(Some)
                .ok_or(StoreError::Column { index: i, expected }),
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum StoreError {
    #[error("sql: {0}")]
    Sql(String),
    #[error("column {index}: expected {expected}")]
    Column {
        index: usize,
        expected: &'static str,
    },
    #[error("integer {0} is outside the exact range of Durable Object SQL")]
    IntegerOutOfRange(i64),
}

/// SQL storage as a Durable Object core sees it.
///
/// Both implementations are synchronous, like `ctx.storage.sql.exec`: a core does all of
/// one operation's reads and writes without yielding, so nothing interleaves with it.
pub trait SqlStore {
    /// Runs one statement and returns its rows (empty for writes).
    fn exec(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError>;

    /// Runs `op` so that its writes all land or none do: an `Err` from `op` rolls back
    /// everything it wrote. (`transactionSync` in the object, a savepoint in tests.)
    fn atomically<T, E>(&mut self, op: &mut dyn FnMut(&mut Self) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>;

    /// Whether this store already knows that the tables of `schema` (a name the opener
    /// chooses) are in place: an object remembers it across its requests, so opening a
    /// ledger or an events store costs no SQL. False unless the store keeps track.
    fn schema_known(&self, _schema: &'static str) -> bool {
        false
    }

    /// Notes that the tables of `schema` are in place (see [`SqlStore::schema_known`]).
    fn note_schema(&mut self, _schema: &'static str) {}

    /// Runs a statement that must return at most one row.
    fn query_opt(&mut self, sql: &str, params: &[SqlValue]) -> Result<Option<Row>, StoreError> {
        let mut rows = self.exec(sql, params)?;
        if rows.len() > 1 {
            return Err(StoreError::Sql(format!(
                "expected at most one row, got {}",
                rows.len()
            )));
        }
        Ok(rows.pop())
    }

    /// Runs a statement that must return exactly one row.
    fn query_one(&mut self, sql: &str, params: &[SqlValue]) -> Result<Row, StoreError> {
        self.query_opt(sql, params)?
            .ok_or_else(|| StoreError::Sql("expected one row, got none".into()))
    }
}

/// Checks an integer can cross Durable Object SQL exactly.
pub fn checked_int(v: i64) -> Result<SqlValue, StoreError> {
    if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&v) {
        Ok(SqlValue::Integer(v))
    } else {
        Err(StoreError::IntegerOutOfRange(v))
    }
}
