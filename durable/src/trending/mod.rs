//! Trending: rankings of tenants over rolling windows (1h, 24h, 7d), from countable usage
//! only, without one hot object.
//!
//! # Shape
//! - Each tenant's `UsageEvents` object counts its own countable calls into fixed buckets
//!   ([`TenantTrend`]): same SQLite as its events, same atomic write as the event row, so a
//!   re-delivered event is never counted twice.
//! - An alarm in that object rolls the tenant up ([`TenantTrend::build_rollup`]): exact window
//!   totals as of `now`, plus the bucket summaries that changed since the last acknowledged
//!   rollup, posted to the one global `Trending` object ([`Trending::apply`]).
//! - The global object holds compact per-tenant rows only: 3 window totals and at most
//!   12 + 168 bucket summaries per tenant, nothing per payer. `top` is one indexed query.
//!   Rollup traffic is one small request per active tenant per [`ROLLUP_DELAY_MS`], plus one
//!   per bucket boundary while a tenant still has data in a window.
//!
//! # Windows and buckets
//! Fine buckets are 5 minutes (the 1h window is 12 of them), coarse buckets 1 hour (24h = 24,
//! 7d = 168). A window at `now` covers the bucket holding `now` and the ones before it
//! ([`window_range`]), so it spans between (length - one bucket) and its full length: it
//! moves in bucket steps. A bucket no window covers any more is expired ([`bucket_expired`])
//! and deleted.
//!
//! # Defences
//! - Only events the events core marks countable (settled paid calls; served calls of free
//!   tenants) and not self-dealing (payer = the tenant's own payTo) reach this module.
//! - One identity (payer hash; the caller hash for free calls) adds at most
//!   [`TrendPolicy::payer_cap`] calls to a window's ranked `calls`.
//! - Per-identity state is bounded: at most `max_payers_per_bucket` identities are tracked per
//!   bucket. Calls of identities past that bound still count in the bucket's usage (series
//!   `calls`, `revenueAtomic`) but never in ranked calls or distinct payers: past the bound a
//!   tenant's score stops growing. It under-counts, never over-counts, so flooding with new
//!   identities buys nothing the cap does not already allow.
//!
//! # Score
//! `score` = ranked calls = the sum over identities of min(cap, that identity's countable calls
//! in the window). Order: score descending, then distinct payers descending, then slug.
//! `revenueAtomic` is informative (every countable, non-self-dealing call, uncapped).

#[cfg(target_arch = "wasm32")]
pub mod object;

use crate::store::{SqlStore, StoreError};

/// How long a tenant object waits after a counted call before rolling up, so that one rollup
/// carries a burst of calls. Rankings lag behind calls by about this much.
pub const ROLLUP_DELAY_MS: i64 = 30_000;

/// How far a timestamp from another machine may run ahead of this one's clock.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60_000;

/// At most 12 + 1 fine and 168 + 1 coarse live buckets exist (one future bucket each, from
/// clock skew); a rollup carrying more is malformed.
pub const MAX_ROLLUP_BUCKETS: usize = 200;

pub const MAX_TOP: u32 = 100;
pub const DEFAULT_TOP: u32 = 10;
const _: () = assert!(MAX_ROLLUP_BUCKETS >= (12 + 1) + (168 + 1));
const _: () = assert!(DEFAULT_TOP <= MAX_TOP);

/// Runs a schema's `CREATE ... IF NOT EXISTS` statements: opening twice changes nothing.
fn create_tables<S: SqlStore>(store: &mut S, schema: &[&str]) -> Result<(), StoreError> {
    for stmt in schema {
        store.exec(stmt, &[])?;
    }
    Ok(())
}

mod error;
mod global;
mod policy;
mod tenant_trend;
mod window;
mod wire;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

pub use error::TrendError;
pub use global::{validate_rollup, Trending, GLOBAL_SCHEMA};
pub use policy::TrendPolicy;
pub use tenant_trend::{CountedCall, PendingRollup, TenantTrend, TENANT_SCHEMA};
pub use window::{
    bucket_expired, bucket_start, capped, covers, expiry_cutoff, next_boundary, snapshot_expired,
    window_range, Grain, Window, COARSE_MS, FINE_MS,
};
pub use wire::{
    Applied, BucketSummary, Rollup, Series, SeriesPoint, Signal, SweepReport, TopEntry,
    WindowTotals,
};
