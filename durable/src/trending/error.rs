//! Errors, and the conversions between stored values and counts that can fail with them.

use crate::problem::{Code, Problem};
use crate::store::{checked_int, Row, SqlValue, StoreError};
use crate::tenant::parse_atomic_amount;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrendError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0} overflowed")]
    Overflow(&'static str),
    #[error("stored trending state is unreadable: {0}")]
    Corrupt(String),
}

impl From<TrendError> for Problem {
    fn from(e: TrendError) -> Problem {
        match e {
            TrendError::Invalid { field, reason } => Problem::new(Code::InvalidRollup)
                .field(field)
                .detail(reason),
            TrendError::Overflow(what) => {
                Problem::new(Code::CounterOverflow).detail(format!("{what} would overflow"))
            }
            other => Problem::internal(other.to_string()),
        }
    }
}

pub(super) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> TrendError {
    TrendError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

pub(super) fn sql_u64(v: u64) -> Result<SqlValue, StoreError> {
    let v = i64::try_from(v).map_err(|_| StoreError::IntegerOutOfRange(i64::MAX))?;
    checked_int(v)
}

pub(super) fn row_u64(row: &Row, i: usize) -> Result<u64, TrendError> {
    let v = row.int(i)?;
    u64::try_from(v).map_err(|_| TrendError::Corrupt(format!("negative count {v}")))
}

pub(super) fn stored_amount(s: &str) -> Result<u128, TrendError> {
    parse_atomic_amount(s).map_err(|e| TrendError::Corrupt(format!("revenue {s:?} {e}")))
}

pub(super) fn add_amount(a: u128, b: u128) -> Result<u128, TrendError> {
    a.checked_add(b).ok_or(TrendError::Overflow("revenue"))
}
