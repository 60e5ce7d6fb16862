//! In-memory SQLite behind [`SqlStore`], for native tests of the cores.
//!
//! It applies the Durable Object's limits too: integers must be exactly representable as
//! f64, so a core that would lose precision in the Worker fails here first.

use crate::store::{checked_int, Row, SqlStore, SqlValue, StoreError};
use rusqlite::types::{Value, ValueRef};

pub struct MemSql {
    conn: rusqlite::Connection,
    depth: u32,
}

impl MemSql {
    pub fn new() -> Self {
        let conn = rusqlite::Connection::open_in_memory().expect("in-memory sqlite opens");
        MemSql { conn, depth: 0 }
    }
}

impl Default for MemSql {
    fn default() -> Self {
        Self::new()
    }
}

fn sql_err(e: rusqlite::Error) -> StoreError {
    StoreError::Sql(e.to_string())
}

fn to_sqlite(v: &SqlValue) -> Result<Value, StoreError> {
    Ok(match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => {
            checked_int(*i)?;
            Value::Integer(*i)
        }
        SqlValue::Real(f) => Value::Real(*f),
        SqlValue::Text(s) => Value::Text(s.clone()),
        SqlValue::Blob(b) => Value::Blob(b.clone()),
    })
}

fn from_sqlite(v: ValueRef<'_>) -> Result<SqlValue, StoreError> {
    Ok(match v {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => checked_int(i)?,
        ValueRef::Real(f) => SqlValue::Real(f),
        ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
    })
}

impl SqlStore for MemSql {
    fn exec(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        let values = params
            .iter()
            .map(to_sqlite)
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = self.conn.prepare(sql).map_err(sql_err)?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(values))
            .map_err(sql_err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(sql_err)? {
            let mut vals = Vec::with_capacity(columns);
            for i in 0..columns {
                vals.push(from_sqlite(row.get_ref(i).map_err(sql_err)?)?);
            }
            out.push(Row(vals));
        }
        Ok(out)
    }

    fn atomically<T, E>(&mut self, op: &mut dyn FnMut(&mut Self) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        // Savepoints nest, like transactionSync inside transactionSync.
        self.depth += 1;
        let name = format!("sp{}", self.depth);
        self.conn
            .execute_batch(&format!("SAVEPOINT {name}"))
            .map_err(sql_err)?;
        let result = op(self);
        let end = match &result {
            Ok(_) => format!("RELEASE {name}"),
            Err(_) => format!("ROLLBACK TO {name}; RELEASE {name}"),
        };
        self.depth -= 1;
        self.conn.execute_batch(&end).map_err(sql_err)?;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fail(#[allow(dead_code)] StoreError);
    impl From<StoreError> for Fail {
        fn from(e: StoreError) -> Self {
            Fail(e)
        }
    }

    #[test]
    fn atomically_rolls_back_every_write_on_error() {
        let mut db = MemSql::new();
        db.exec("CREATE TABLE t (v INTEGER)", &[]).unwrap();
        let rows = |db: &mut MemSql| {
            db.query_one("SELECT count(*) FROM t", &[])
                .unwrap()
                .int(0)
                .unwrap()
        };
        let r: Result<(), Fail> = db.atomically(&mut |s| {
            s.exec("INSERT INTO t VALUES (1)", &[])?;
            s.exec("INSERT INTO t VALUES (2)", &[])?;
            Err(Fail(StoreError::Sql("boom".into())))
        });
        assert!(r.is_err());
        assert_eq!(rows(&mut db), 0);
        let r: Result<(), Fail> = db.atomically(&mut |s| {
            s.exec("INSERT INTO t VALUES (3)", &[])?;
            Ok(())
        });
        assert!(r.is_ok());
        assert_eq!(rows(&mut db), 1);
    }

    #[test]
    fn refuses_integers_that_f64_cannot_carry() {
        let mut db = MemSql::new();
        let err = db
            .exec("SELECT ?", &[SqlValue::Integer(1 << 60)])
            .unwrap_err();
        assert_eq!(err, StoreError::IntegerOutOfRange(1 << 60));
        let err = db.exec("SELECT 9007199254740993", &[]).unwrap_err();
        assert!(matches!(err, StoreError::IntegerOutOfRange(_)));
    }
}
