//! Tenant side: trending buckets in the tenant's events object, rolled up for the global
//! object.

use super::create_tables;
use super::error::{add_amount, row_u64, sql_u64, stored_amount};
use super::{
    bucket_expired, bucket_start, expiry_cutoff, next_boundary, window_range, BucketSummary, Grain,
    Rollup, SweepReport, TrendError, TrendPolicy, Window, WindowTotals, COARSE_MS, FINE_MS,
    MAX_ROLLUP_BUCKETS, ROLLUP_DELAY_MS,
};
use crate::store::{checked_int, SqlStore, SqlValue, MAX_SAFE_INTEGER};

/// The tenant object's trending tables. `trend_payers` holds at most `max_payers_per_bucket`
/// rows per bucket, and `trend_buckets.payers` always equals that bucket's row count.
pub const TENANT_SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS trend_buckets (
        grain_ms INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        calls INTEGER NOT NULL,
        payers INTEGER NOT NULL,
        revenue TEXT NOT NULL,
        updated_seq INTEGER NOT NULL,
        PRIMARY KEY (grain_ms, start_ms)
    )",
    "CREATE TABLE IF NOT EXISTS trend_payers (
        grain_ms INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        payer TEXT NOT NULL,
        calls INTEGER NOT NULL,
        PRIMARY KEY (grain_ms, start_ms, payer)
    )",
    "CREATE TABLE IF NOT EXISTS trend_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_seq INTEGER NOT NULL,
        acked_seq INTEGER NOT NULL,
        full_pending INTEGER NOT NULL,
        last_rollup_ms INTEGER,
        live_fine INTEGER NOT NULL,
        live_coarse INTEGER NOT NULL
    )",
    "INSERT OR IGNORE INTO trend_meta
        (id, last_seq, acked_seq, full_pending, last_rollup_ms, live_fine, live_coarse)
     VALUES (1, 0, 0, 1, NULL, 0, 0)",
];

/// One countable, non-self-dealing call, as trending sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountedCall<'a> {
    pub time_ms: i64,
    /// The payer hash, or the caller hash when there is no payer (free tenants).
    pub identity: &'a str,
    pub amount_atomic: u128,
}

/// A rollup built but not yet acknowledged by the global object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRollup {
    pub rollup: Rollup,
    /// Per grain: whether a live bucket existed, i.e. whether the next boundary can change a
    /// window total without any new call.
    live: [bool; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TrendMeta {
    last_seq: i64,
    acked_seq: i64,
    full_pending: bool,
    last_rollup_ms: Option<i64>,
    live: [bool; 2],
}

impl TrendMeta {
    fn dirty(&self) -> bool {
        self.last_seq > self.acked_seq || (self.full_pending && self.last_seq > 0)
    }
}

/// The tenant object's trending core, over the same store as its events.
pub struct TenantTrend<'s, S: SqlStore> {
    store: &'s mut S,
}

impl<'s, S: SqlStore> TenantTrend<'s, S> {
    /// Opens the tenant's trending tables, creating them on first use.
    pub fn open(store: &'s mut S) -> Result<Self, TrendError> {
        create_tables(store, &TENANT_SCHEMA)?;
        Ok(TenantTrend { store })
    }

    /// Wraps a store whose tables [`TenantTrend::open`] already created.
    pub(crate) fn attach(store: &'s mut S) -> Self {
        TenantTrend { store }
    }

    fn meta(&mut self) -> Result<TrendMeta, TrendError> {
        let row = self.store.query_one(
            "SELECT last_seq, acked_seq, full_pending, last_rollup_ms, live_fine, live_coarse
             FROM trend_meta WHERE id = 1",
            &[],
        )?;
        Ok(TrendMeta {
            last_seq: row.int(0)?,
            acked_seq: row.int(1)?,
            full_pending: row.int(2)? != 0,
            last_rollup_ms: row.opt_int(3)?,
            live: [row.int(4)? != 0, row.int(5)? != 0],
        })
    }

    /// Counts one call, whose event got ingest seq `seq`. Run it in the same
    /// [`SqlStore::atomically`] as the event's insert: then a call counts exactly once.
    pub fn record(
        &mut self,
        call: &CountedCall<'_>,
        seq: i64,
        now_ms: i64,
        policy: &TrendPolicy,
    ) -> Result<(), TrendError> {
        for grain in Grain::ALL {
            let start = bucket_start(call.time_ms, grain);
            if bucket_expired(grain, start, now_ms) {
                continue;
            }
            let key = [SqlValue::from(grain.ms()), checked_int(start)?];
            let bucket = self.store.query_opt(
                "SELECT calls, payers, revenue FROM trend_buckets
                 WHERE grain_ms = ? AND start_ms = ?",
                &key,
            )?;
            let (calls, payers, revenue) = match &bucket {
                Some(r) => (row_u64(r, 0)?, row_u64(r, 1)?, stored_amount(r.text(2)?)?),
                None => (0, 0, 0),
            };
            let mut payer_key = key.to_vec();
            payer_key.push(call.identity.into());
            let known = self.store.query_opt(
                "SELECT calls FROM trend_payers WHERE grain_ms = ? AND start_ms = ? AND payer = ?",
                &payer_key,
            )?;
            let mut new_payers = payers;
            if known.is_some() {
                self.store.exec(
                    "UPDATE trend_payers SET calls = calls + 1
                     WHERE grain_ms = ? AND start_ms = ? AND payer = ?",
                    &payer_key,
                )?;
            } else if payers < u64::from(policy.max_payers_per_bucket) {
                self.store.exec(
                    "INSERT INTO trend_payers (grain_ms, start_ms, payer, calls)
                     VALUES (?, ?, ?, 1)",
                    &payer_key,
                )?;
                new_payers = payers + 1;
            }
            // Past the bound the identity is untracked: usage only, no ranked calls.
            let new_calls = calls
                .checked_add(1)
                .filter(|c| *c <= MAX_SAFE_INTEGER as u64)
                .ok_or(TrendError::Overflow("bucket calls"))?;
            let new_revenue = add_amount(revenue, call.amount_atomic)?;
            self.store.exec(
                "INSERT INTO trend_buckets (grain_ms, start_ms, calls, payers, revenue, updated_seq)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (grain_ms, start_ms) DO UPDATE SET
                   calls = excluded.calls, payers = excluded.payers,
                   revenue = excluded.revenue, updated_seq = excluded.updated_seq",
                &[
                    key[0].clone(),
                    key[1].clone(),
                    sql_u64(new_calls)?,
                    sql_u64(new_payers)?,
                    new_revenue.to_string().into(),
                    checked_int(seq)?,
                ],
            )?;
        }
        self.store.exec(
            "UPDATE trend_meta SET last_seq = max(last_seq, ?) WHERE id = 1",
            &[checked_int(seq)?],
        )?;
        Ok(())
    }

    /// Ranked calls and distinct identities of `window` at `now_ms`.
    fn window_counts(
        &mut self,
        window: Window,
        now_ms: i64,
        cap: u64,
    ) -> Result<(u64, u64), TrendError> {
        let (first, last) = window_range(window, now_ms);
        let row = self.store.query_one(
            "SELECT count(*), coalesce(sum(min(c, ?)), 0) FROM (
                SELECT sum(calls) AS c FROM trend_payers
                WHERE grain_ms = ? AND start_ms >= ? AND start_ms <= ?
                GROUP BY payer)",
            &[
                sql_u64(cap)?,
                window.grain().ms().into(),
                checked_int(first)?,
                checked_int(last)?,
            ],
        )?;
        Ok((row_u64(&row, 1)?, row_u64(&row, 0)?))
    }

    fn window_revenue(&mut self, window: Window, now_ms: i64) -> Result<u128, TrendError> {
        let (first, last) = window_range(window, now_ms);
        let rows = self.store.exec(
            "SELECT revenue FROM trend_buckets
             WHERE grain_ms = ? AND start_ms >= ? AND start_ms <= ?",
            &[
                window.grain().ms().into(),
                checked_int(first)?,
                checked_int(last)?,
            ],
        )?;
        rows.iter()
            .try_fold(0u128, |acc, r| add_amount(acc, stored_amount(r.text(0)?)?))
    }

    /// Builds the rollup for `tenant` at `now_ms`, without changing anything: exact window
    /// totals, plus every live bucket (when a full rollup is pending) or the ones changed
    /// since the last acknowledged rollup.
    pub fn build_rollup(
        &mut self,
        tenant: &str,
        now_ms: i64,
        policy: &TrendPolicy,
    ) -> Result<PendingRollup, TrendError> {
        let meta = self.meta()?;
        let mut windows = Vec::with_capacity(Window::ALL.len());
        for window in Window::ALL {
            let (calls, payers) = self.window_counts(window, now_ms, policy.payer_cap(window))?;
            let revenue = self.window_revenue(window, now_ms)?;
            debug_assert!(
                payers <= calls,
                "every tracked identity adds at least one call"
            );
            windows.push(WindowTotals {
                window,
                calls,
                payers,
                revenue_atomic: revenue.to_string(),
            });
        }
        let mut buckets = Vec::new();
        let mut live = [false; 2];
        for grain in Grain::ALL {
            let cutoff = expiry_cutoff(grain, now_ms);
            let rows = self.store.exec(
                "SELECT start_ms, calls, payers, revenue, updated_seq FROM trend_buckets
                 WHERE grain_ms = ? AND start_ms >= ? ORDER BY start_ms",
                &[grain.ms().into(), checked_int(cutoff)?],
            )?;
            live[grain.index()] = !rows.is_empty();
            for r in &rows {
                if meta.full_pending || r.int(4)? > meta.acked_seq {
                    buckets.push(BucketSummary {
                        grain_ms: grain.ms(),
                        start_ms: r.int(0)?,
                        calls: row_u64(r, 1)?,
                        payers: row_u64(r, 2)?,
                        revenue_atomic: r.text(3)?.to_owned(),
                    });
                }
            }
        }
        if buckets.len() > MAX_ROLLUP_BUCKETS {
            // Impossible while expired buckets are skipped above; refuse rather than send
            // something the global object would reject forever.
            return Err(TrendError::Corrupt(format!(
                "{} live buckets exceed the bound {MAX_ROLLUP_BUCKETS}",
                buckets.len()
            )));
        }
        Ok(PendingRollup {
            rollup: Rollup {
                tenant: tenant.to_owned(),
                as_of_ms: now_ms,
                seq: meta.last_seq,
                full: meta.full_pending,
                windows,
                buckets,
            },
            live,
        })
    }

    /// Records that the global object accepted `pending` (whether or not it applied it: an
    /// ignored rollup was superseded by a newer one). `need_full` asks for every bucket next
    /// time.
    pub fn ack(&mut self, pending: &PendingRollup, need_full: bool) -> Result<(), TrendError> {
        let r = &pending.rollup;
        let full_pending = need_full || (!r.full && self.meta()?.full_pending);
        self.store.exec(
            "UPDATE trend_meta SET acked_seq = max(acked_seq, ?), full_pending = ?,
               last_rollup_ms = ?, live_fine = ?, live_coarse = ?
             WHERE id = 1",
            &[
                checked_int(r.seq)?,
                full_pending.into(),
                checked_int(r.as_of_ms)?,
                pending.live[0].into(),
                pending.live[1].into(),
            ],
        )?;
        Ok(())
    }

    /// Whether a rollup should be sent at `now_ms`: counted calls not yet acknowledged, a full
    /// rollup requested, or a bucket boundary passed since the last rollup while that grain
    /// had live buckets (a window total may have changed without any new call).
    pub fn rollup_due(&mut self, now_ms: i64) -> Result<bool, TrendError> {
        let meta = self.meta()?;
        if meta.dirty() {
            return Ok(true);
        }
        let Some(last) = meta.last_rollup_ms else {
            return Ok(false);
        };
        Ok(Grain::ALL
            .into_iter()
            .any(|g| meta.live[g.index()] && bucket_start(now_ms, g) > bucket_start(last, g)))
    }

    /// When the object should next wake up to roll up; None when nothing can change.
    pub fn next_wake(&mut self, now_ms: i64) -> Result<Option<i64>, TrendError> {
        let meta = self.meta()?;
        if meta.dirty() {
            return Ok(Some(now_ms.saturating_add(ROLLUP_DELAY_MS)));
        }
        let Some(last) = meta.last_rollup_ms else {
            return Ok(None);
        };
        Ok(Grain::ALL
            .into_iter()
            .filter(|g| meta.live[g.index()])
            .map(|g| next_boundary(last, g).max(now_ms))
            .min())
    }

    /// Deletes up to `max_buckets` expired buckets with their identity rows.
    pub fn expire(&mut self, now_ms: i64, max_buckets: u32) -> Result<SweepReport, TrendError> {
        let fine = expiry_cutoff(Grain::Fine, now_ms);
        let coarse = expiry_cutoff(Grain::Coarse, now_ms);
        self.store.atomically(&mut |s| {
            let rows = s.exec(
                "SELECT grain_ms, start_ms FROM trend_buckets
                 WHERE (grain_ms = ? AND start_ms < ?) OR (grain_ms = ? AND start_ms < ?)
                 LIMIT ?",
                &[
                    FINE_MS.into(),
                    checked_int(fine)?,
                    COARSE_MS.into(),
                    checked_int(coarse)?,
                    max_buckets.into(),
                ],
            )?;
            for r in &rows {
                let key = [SqlValue::Integer(r.int(0)?), SqlValue::Integer(r.int(1)?)];
                s.exec(
                    "DELETE FROM trend_payers WHERE grain_ms = ? AND start_ms = ?",
                    &key,
                )?;
                s.exec(
                    "DELETE FROM trend_buckets WHERE grain_ms = ? AND start_ms = ?",
                    &key,
                )?;
            }
            let deleted = u32::try_from(rows.len()).unwrap_or(u32::MAX);
            Ok::<_, TrendError>(SweepReport {
                deleted,
                more: deleted >= max_buckets,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::fixtures::{event, settled};
    use crate::events::Stage;
    use crate::memsql::MemSql;
    use crate::trending::fixtures::*;
    use crate::trending::*;

    #[test]
    fn rollup_caps_calls_and_counts_distinct_payers() {
        let policy = small_caps();
        let mut db = MemSql::new();
        let mut evs: Vec<_> = (0..4)
            .map(|i| settled(&format!("p1-{i}"), "demo", T0 + i, 1, 10))
            .collect();
        evs.push(settled("p2", "demo", T0 + 9, 2, 7));
        // Never counted: self-dealing, a challenge, a rate limit, a failed settlement.
        evs.push(event(
            "self",
            "demo",
            T0,
            Stage::Settled,
            false,
            3,
            Some(3),
            1_000,
            true,
        ));
        evs.push(event(
            "c",
            "demo",
            T0,
            Stage::Challenged,
            false,
            4,
            None,
            10,
            false,
        ));
        evs.push(event(
            "r",
            "demo",
            T0,
            Stage::RateLimited,
            false,
            4,
            None,
            10,
            false,
        ));
        evs.push(event(
            "f",
            "demo",
            T0,
            Stage::SettlementFailed,
            false,
            4,
            Some(4),
            10,
            false,
        ));
        ingest(&mut db, &evs, T0 + 10, &policy);
        let r = TenantTrend::open(&mut db)
            .unwrap()
            .build_rollup("demo", T0 + 10, &policy)
            .unwrap()
            .rollup;
        assert_eq!(totals(&r, Window::H1), (2 + 1, 2, "47".into()));
        assert_eq!(totals(&r, Window::H24), (3 + 1, 2, "47".into()));
        assert_eq!(totals(&r, Window::D7), (4 + 1, 2, "47".into()));
        assert!(r.full, "the first rollup carries every bucket");
        assert_eq!(r.seq, 5);
        let fine = BucketSummary {
            grain_ms: FINE_MS,
            start_ms: T0,
            calls: 5,
            payers: 2,
            revenue_atomic: "47".into(),
        };
        let coarse = BucketSummary {
            grain_ms: COARSE_MS,
            ..fine.clone()
        };
        assert_eq!(r.buckets, vec![fine, coarse]);
        validate_rollup(&r, T0 + 10).unwrap();
    }

    #[test]
    fn identities_past_the_bound_count_as_usage_only() {
        let policy = TrendPolicy {
            max_payers_per_bucket: 2,
            ..TrendPolicy::default()
        };
        let mut db = MemSql::new();
        let evs = [
            settled("a", "demo", T0, 1, 1),
            settled("b", "demo", T0, 2, 1),
            settled("c", "demo", T0, 3, 1),
            settled("c2", "demo", T0 + 1, 3, 1),
            settled("a2", "demo", T0 + 2, 1, 1),
            // Payer 3 is tracked in the next fine bucket (but not in the same coarse one).
            settled("c3", "demo", T0 + FINE_MS, 3, 1),
        ];
        ingest(&mut db, &evs, T0 + FINE_MS, &policy);
        let r = TenantTrend::open(&mut db)
            .unwrap()
            .build_rollup("demo", T0 + FINE_MS, &policy)
            .unwrap()
            .rollup;
        assert_eq!(totals(&r, Window::H1), (4, 3, "6".into()));
        assert_eq!(totals(&r, Window::H24), (3, 2, "6".into()));
        let first_fine = r
            .buckets
            .iter()
            .find(|b| b.grain_ms == FINE_MS && b.start_ms == T0);
        assert_eq!(first_fine.map(|b| (b.calls, b.payers)), Some((5, 2)));
        // The invariant: a bucket's payers equals its identity rows, never above the bound.
        let mismatched = count(
            &mut db,
            "SELECT count(*) FROM trend_buckets b WHERE payers <>
               (SELECT count(*) FROM trend_payers p
                WHERE p.grain_ms = b.grain_ms AND p.start_ms = b.start_ms)",
        );
        assert_eq!(mismatched, 0);
        assert!(
            count(&mut db, "SELECT max(payers) FROM trend_buckets") <= 2,
            "bounded per bucket"
        );
    }

    #[test]
    fn calls_older_than_every_window_leave_no_trace() {
        let policy = TrendPolicy::default();
        let mut db = MemSql::new();
        let late = T0 + 7 * DAY;
        ingest(&mut db, &[settled("old", "demo", T0, 1, 3)], late, &policy);
        assert_eq!(count(&mut db, "SELECT count(*) FROM trend_buckets"), 0);
        assert_eq!(count(&mut db, "SELECT count(*) FROM trend_payers"), 0);
        // Within 7d but past 1h: only the coarse bucket is kept.
        ingest(
            &mut db,
            &[settled("mid", "demo", T0 + 6 * DAY, 1, 3)],
            late,
            &policy,
        );
        assert_eq!(
            count(
                &mut db,
                "SELECT count(*) FROM trend_buckets WHERE grain_ms = 3600000"
            ),
            1
        );
        assert_eq!(
            count(
                &mut db,
                "SELECT count(*) FROM trend_buckets WHERE grain_ms = 300000"
            ),
            0
        );
    }
}
