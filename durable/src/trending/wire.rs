//! Wire types: what a tenant object posts to the global object and what readers get back.

use serde::{Deserialize, Serialize};

use super::Window;

/// One tenant's totals for one window, as of a rollup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowTotals {
    pub window: Window,
    /// Ranked calls (after per-identity caps).
    pub calls: u64,
    /// Distinct tracked identities.
    pub payers: u64,
    pub revenue_atomic: String,
}

/// One tenant's usage in one bucket (uncapped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSummary {
    pub grain_ms: i64,
    pub start_ms: i64,
    /// Countable, non-self-dealing calls, tracked identities or not.
    pub calls: u64,
    /// Distinct tracked identities in this bucket.
    pub payers: u64,
    pub revenue_atomic: String,
}

/// What a tenant object posts to the global object (`POST /rollup`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollup {
    pub tenant: String,
    /// The tenant object's clock when it computed `windows`.
    pub as_of_ms: i64,
    /// The ingest seq of the newest call counted; with `asOfMs` it orders rollups.
    pub seq: i64,
    /// Whether `buckets` is every live bucket (replace) or only the changed ones (merge).
    pub full: bool,
    /// Exactly one entry per window.
    pub windows: Vec<WindowTotals>,
    pub buckets: Vec<BucketSummary>,
}

/// The global object's answer to a rollup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// False when a newer rollup of this tenant was already applied (this one is ignored).
    pub applied: bool,
    /// The global object has no buckets of this tenant: send every bucket next time.
    pub need_full: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopEntry {
    pub tenant: String,
    pub calls: u64,
    pub payers: u64,
    pub revenue_atomic: String,
    pub score: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesPoint {
    pub start_ms: i64,
    pub calls: u64,
    pub payers: u64,
    pub revenue_atomic: String,
}

/// A tenant's usage over a window, one point per bucket (zeros included), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    pub tenant: String,
    pub window: Window,
    pub grain_ms: i64,
    /// When the tenant last rolled up; None if it never did (or its data all expired).
    pub as_of_ms: Option<i64>,
    /// The window's ranked totals from that rollup, if still live.
    pub totals: Option<WindowTotals>,
    pub buckets: Vec<SeriesPoint>,
}

/// What one bounded sweep of expired rows did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub deleted: u32,
    /// The per-call bound was reached: call again.
    pub more: bool,
}

/// One tenant's standing for discovery (`GET /signals`): its 7-day totals and when it was
/// last called, as far as the rollups tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signal {
    pub tenant: String,
    /// Ranked calls in the 7d window (after per-identity caps).
    pub calls: u64,
    /// Distinct tracked payers in the 7d window.
    pub payers: u64,
    /// The end of the newest bucket holding a counted call, capped by the rollup's time: no
    /// counted call is later than this (5-minute precision within the last hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_called_ms: Option<i64>,
}
