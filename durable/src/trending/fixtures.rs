//! Test fixtures shared by the trending tests.

use super::*;
use crate::events::{EventStore, UsageEvent};
use crate::memsql::MemSql;
use crate::store::SqlStore;

/// A multiple of an hour, so fine and coarse buckets both start here.
pub const T0: i64 = 1_700_002_800_000;
pub const HOUR: i64 = COARSE_MS;
pub const DAY: i64 = 24 * HOUR;

pub fn small_caps() -> TrendPolicy {
    TrendPolicy {
        payer_cap_1h: 2,
        payer_cap_24h: 3,
        payer_cap_7d: 5,
        max_payers_per_bucket: 1_000,
    }
}

pub fn ingest(db: &mut MemSql, events: &[UsageEvent], now: i64, policy: &TrendPolicy) {
    EventStore::open(db)
        .unwrap()
        .append(events, now, policy)
        .unwrap();
}

pub fn totals(r: &Rollup, w: Window) -> (u64, u64, String) {
    let t = r.windows.iter().find(|t| t.window == w).unwrap();
    (t.calls, t.payers, t.revenue_atomic.clone())
}

pub fn count(db: &mut MemSql, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().int(0).unwrap()
}
