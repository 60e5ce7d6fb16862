//! Errors of the events core, and the problems they answer with.

use super::{MAX_BATCH, MAX_RETENTION_MS, MIN_RETENTION_MS};
use crate::problem::{Code, Problem};
use crate::store::StoreError;
use crate::trending::TrendError;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventsError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("trending: {0}")]
    Trend(#[from] TrendError),
    #[error("event {index}: {field}: {reason}")]
    Invalid {
        index: usize,
        field: &'static str,
        reason: String,
    },
    #[error("a batch holds at most {MAX_BATCH} events, got {0}")]
    BatchTooLarge(usize),
    #[error("this object holds events of tenant {expected:?}, got {got:?}")]
    TenantMismatch { expected: String, got: String },
    #[error("retentionMs must be {MIN_RETENTION_MS} to {MAX_RETENTION_MS}")]
    InvalidRetention,
    #[error("stored event is unreadable: {0}")]
    Corrupt(String),
}

impl From<EventsError> for Problem {
    fn from(e: EventsError) -> Problem {
        let detail = e.to_string();
        match e {
            EventsError::Invalid { index, field, .. } => Problem::new(Code::InvalidEvent)
                .field(format!("[{index}].{field}"))
                .detail(detail),
            EventsError::BatchTooLarge(_) => Problem::new(Code::BatchTooLarge).detail(detail),
            EventsError::TenantMismatch { .. } => Problem::new(Code::TenantMismatch)
                .field("tenant")
                .detail(detail),
            EventsError::InvalidRetention => Problem::invalid_field("retentionMs", detail),
            EventsError::Trend(t) => t.into(),
            EventsError::Store(_) | EventsError::Corrupt(_) => Problem::internal(detail),
        }
    }
}
