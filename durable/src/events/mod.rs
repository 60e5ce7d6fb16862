//! Usage events: one record per paid-API call attempt, lifecycle-aware, over [`SqlStore`].
//!
//! # Sharding
//! Events live in one `UsageEvents` object per tenant, named by the tenant slug. The
//! dispatcher posts each call's event to its tenant's object off the response path
//! (`ctx.waitUntil`), retrying safely because event ids are idempotent. There is no
//! cross-tenant `__all` object: it would take every event of the platform, the one hot
//! object this design avoids, and a second write that can diverge from the first. The
//! operator feed therefore requires a tenant (it reads that tenant's object); cross-tenant
//! views come from the trending object's compact per-tenant summaries. Nothing is lost: each
//! event is written once, to exactly one object, with its trending counts in the same atomic
//! write.
//!
//! # Privacy
//! Callers are stored only as salted hashes ([`hash_caller`]); payers too ([`hash_payer`]):
//! an address is public on chain, but a feed linking it to a caller's traffic is not. The
//! settlement ledger keeps the address where money needs it.
//!
//! # Invariants
//! - `seq` strictly increases with every insert and is never reused, even after retention
//!   deleted every row (the last seq is kept in `events_meta`).
//! - An event id is stored at most once; re-delivery reports the original seq.
//! - Retention is at least [`MIN_RETENTION_MS`] (longer than the 7d trending window), so an
//!   event that trending may still count is always present for de-duplication, and an event
//!   older than retention is refused (`expired`), never re-counted.

#[cfg(target_arch = "wasm32")]
pub mod object;

/// The usage queue's producer binding (wrangler.toml `[[queues.producers]]`): the
/// dispatcher sends each call's event there, and the ledgers the events they keep with a
/// settlement.
pub const USAGE_QUEUE_BINDING: &str = "USAGE_QUEUE";
pub const MAX_BATCH: usize = 500;
pub const MAX_BATCH_BYTES: usize = 1 << 20;
pub const MAX_PAGE: u32 = 500;
pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_ID_LEN: usize = 128;
pub const MAX_ROUTE_LEN: usize = 512;
pub const MAX_SETTLEMENT_RESULT_LEN: usize = 128;
pub const MAX_ERROR_CODE_LEN: usize = 64;
pub const MAX_WORKER_NAME_LEN: usize = 63;

pub(crate) const DAY_MS: i64 = 86_400_000;
pub const DEFAULT_RETENTION_MS: i64 = 30 * DAY_MS;
/// Longer than the 7d trending window plus a bucket, so de-duplication covers trending.
pub const MIN_RETENTION_MS: i64 = 8 * DAY_MS;
pub const MAX_RETENTION_MS: i64 = 400 * DAY_MS;
/// How often the retention sweep runs when it has caught up.
pub const SWEEP_INTERVAL_MS: i64 = 60 * 60_000;
/// Rows one sweep deletes at most; more pending means another sweep soon.
pub const SWEEP_BATCH: u32 = 1_000;
/// Expired trending buckets one alarm deletes at most (each holds at most
/// `max_payers_per_bucket` identity rows).
pub const EXPIRE_BATCH: u32 = 16;

mod error;
mod event;
mod stats;
mod store;
mod wire;

#[cfg(test)]
pub(crate) mod fixtures;

pub use error::EventsError;
pub use event::{classify, hash_caller, hash_payer, EventInvalid, Stage, UsageEvent};
pub use stats::{stats, DayStages, Latency, RouteCount, StageCounts, UsageStats, MAX_STATS_DAYS};
pub use store::{earliest, EventStore, SCHEMA};
pub use wire::{
    AppendReport, AppendResult, EventPage, EventQuery, EventsConfig, Outcome, StoredEvent,
    SweepReport,
};
