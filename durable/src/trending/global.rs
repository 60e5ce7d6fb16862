//! Global side: the `Trending` object's compact per-tenant rows, rankings and series.

use super::create_tables;
use super::error::{invalid, row_u64, sql_u64};
use super::{
    bucket_expired, bucket_start, expiry_cutoff, snapshot_expired, window_range, Applied, Grain,
    Rollup, Series, SeriesPoint, Signal, SweepReport, TopEntry, TrendError, Window, WindowTotals,
    MAX_CLOCK_SKEW_MS, MAX_ROLLUP_BUCKETS, MAX_TOP,
};
use crate::store::{checked_int, SqlStore, SqlValue, MAX_SAFE_INTEGER};
use crate::tenant::{parse_atomic_amount, validate_slug};

pub const GLOBAL_SCHEMA: [&str; 6] = [
    "CREATE TABLE IF NOT EXISTS rollup_tenants (
        tenant TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        as_of_ms INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS rollup_windows (
        tenant TEXT NOT NULL,
        win TEXT NOT NULL,
        calls INTEGER NOT NULL,
        payers INTEGER NOT NULL,
        revenue TEXT NOT NULL,
        as_of_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant, win)
    )",
    "CREATE INDEX IF NOT EXISTS rollup_windows_rank
        ON rollup_windows (win, calls DESC, payers DESC, tenant)",
    "CREATE TABLE IF NOT EXISTS rollup_buckets (
        tenant TEXT NOT NULL,
        grain_ms INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        calls INTEGER NOT NULL,
        payers INTEGER NOT NULL,
        revenue TEXT NOT NULL,
        PRIMARY KEY (tenant, grain_ms, start_ms)
    )",
    "CREATE INDEX IF NOT EXISTS rollup_buckets_age ON rollup_buckets (grain_ms, start_ms)",
    "CREATE INDEX IF NOT EXISTS rollup_tenants_age ON rollup_tenants (as_of_ms)",
];

/// Checks a rollup before anything is written.
pub fn validate_rollup(r: &Rollup, now_ms: i64) -> Result<(), TrendError> {
    validate_slug(&r.tenant).map_err(|e| invalid("tenant", e))?;
    if !(0..=MAX_SAFE_INTEGER).contains(&r.as_of_ms) {
        return Err(invalid("asOfMs", "out of range"));
    }
    if r.as_of_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(invalid("asOfMs", "is in the future"));
    }
    if !(0..=MAX_SAFE_INTEGER).contains(&r.seq) {
        return Err(invalid("seq", "out of range"));
    }
    let count_ok = |v: u64| v <= MAX_SAFE_INTEGER as u64;
    let mut seen = Vec::with_capacity(Window::ALL.len());
    for (i, w) in r.windows.iter().enumerate() {
        let field = |f: &str| format!("windows[{i}].{f}");
        if seen.contains(&w.window) {
            return Err(invalid(field("window"), "appears twice"));
        }
        seen.push(w.window);
        if !count_ok(w.calls) || !count_ok(w.payers) {
            return Err(invalid(field("calls"), "out of range"));
        }
        if w.payers > w.calls {
            return Err(invalid(field("payers"), "exceeds calls"));
        }
        parse_atomic_amount(&w.revenue_atomic).map_err(|e| invalid(field("revenueAtomic"), e))?;
    }
    if seen.len() != Window::ALL.len() {
        return Err(invalid("windows", "must hold each of 1h, 24h and 7d once"));
    }
    if r.buckets.len() > MAX_ROLLUP_BUCKETS {
        return Err(invalid(
            "buckets",
            format!("at most {MAX_ROLLUP_BUCKETS} buckets"),
        ));
    }
    let mut keys = std::collections::BTreeSet::new();
    for (i, b) in r.buckets.iter().enumerate() {
        let field = |f: &str| format!("buckets[{i}].{f}");
        let grain = Grain::from_ms(b.grain_ms)
            .ok_or_else(|| invalid(field("grainMs"), "must be 300000 or 3600000"))?;
        if !(0..=MAX_SAFE_INTEGER).contains(&b.start_ms)
            || bucket_start(b.start_ms, grain) != b.start_ms
        {
            return Err(invalid(field("startMs"), "must be a bucket start"));
        }
        if b.start_ms > r.as_of_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(invalid(field("startMs"), "is in the future"));
        }
        if !keys.insert((b.grain_ms, b.start_ms)) {
            return Err(invalid(field("startMs"), "appears twice"));
        }
        if !count_ok(b.calls) || !count_ok(b.payers) {
            return Err(invalid(field("calls"), "out of range"));
        }
        if b.payers > b.calls {
            return Err(invalid(field("payers"), "exceeds calls"));
        }
        parse_atomic_amount(&b.revenue_atomic).map_err(|e| invalid(field("revenueAtomic"), e))?;
    }
    Ok(())
}

/// The global object's core: every tenant's latest rollup, ranked.
pub struct Trending<'s, S: SqlStore> {
    store: &'s mut S,
}

impl<'s, S: SqlStore> Trending<'s, S> {
    /// Opens the global tables, creating them on first use.
    pub fn open(store: &'s mut S) -> Result<Self, TrendError> {
        create_tables(store, &GLOBAL_SCHEMA)?;
        Ok(Trending { store })
    }

    /// Applies a tenant's rollup. Idempotent, and insensitive to order: a rollup older than
    /// the one applied (by `(seq, asOfMs)`) is ignored.
    pub fn apply(&mut self, r: &Rollup, now_ms: i64) -> Result<Applied, TrendError> {
        validate_rollup(r, now_ms)?;
        let tenant = SqlValue::from(r.tenant.as_str());
        self.store.atomically(&mut |s| {
            let stored = s.query_opt(
                "SELECT seq, as_of_ms FROM rollup_tenants WHERE tenant = ?",
                std::slice::from_ref(&tenant),
            )?;
            let stored = match stored {
                Some(row) => Some((row.int(0)?, row.int(1)?)),
                None => None,
            };
            let stale = stored.is_some_and(|prev| (r.seq, r.as_of_ms) < prev)
                || snapshot_expired(Window::D7, r.as_of_ms, now_ms);
            if stale {
                return Ok(Applied {
                    applied: false,
                    need_full: false,
                });
            }
            s.exec(
                "INSERT INTO rollup_tenants (tenant, seq, as_of_ms) VALUES (?, ?, ?)
                 ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq, as_of_ms = excluded.as_of_ms",
                &[tenant.clone(), checked_int(r.seq)?, checked_int(r.as_of_ms)?],
            )?;
            for w in &r.windows {
                s.exec(
                    "INSERT INTO rollup_windows (tenant, win, calls, payers, revenue, as_of_ms)
                     VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT (tenant, win) DO UPDATE SET calls = excluded.calls,
                       payers = excluded.payers, revenue = excluded.revenue,
                       as_of_ms = excluded.as_of_ms",
                    &[
                        tenant.clone(),
                        w.window.as_str().into(),
                        sql_u64(w.calls)?,
                        sql_u64(w.payers)?,
                        w.revenue_atomic.as_str().into(),
                        checked_int(r.as_of_ms)?,
                    ],
                )?;
            }
            if r.full {
                s.exec(
                    "DELETE FROM rollup_buckets WHERE tenant = ?",
                    std::slice::from_ref(&tenant),
                )?;
            }
            for b in &r.buckets {
                let Some(grain) = Grain::from_ms(b.grain_ms) else {
                    continue; // validated above
                };
                if bucket_expired(grain, b.start_ms, now_ms) {
                    continue;
                }
                s.exec(
                    "INSERT INTO rollup_buckets (tenant, grain_ms, start_ms, calls, payers, revenue)
                     VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT (tenant, grain_ms, start_ms) DO UPDATE SET
                       calls = excluded.calls, payers = excluded.payers, revenue = excluded.revenue",
                    &[
                        tenant.clone(),
                        b.grain_ms.into(),
                        checked_int(b.start_ms)?,
                        sql_u64(b.calls)?,
                        sql_u64(b.payers)?,
                        b.revenue_atomic.as_str().into(),
                    ],
                )?;
            }
            for grain in Grain::ALL {
                s.exec(
                    "DELETE FROM rollup_buckets WHERE tenant = ? AND grain_ms = ? AND start_ms < ?",
                    &[
                        tenant.clone(),
                        grain.ms().into(),
                        checked_int(expiry_cutoff(grain, now_ms))?,
                    ],
                )?;
            }
            Ok::<_, TrendError>(Applied {
                applied: true,
                need_full: stored.is_none() && !r.full,
            })
        })
    }

    /// The top `limit` (clamped to 1..=100) tenants of `window` at `now_ms`, by score, then
    /// distinct payers, then slug. Tenants whose last rollup has nothing left in the window
    /// are left out.
    pub fn top(
        &mut self,
        window: Window,
        limit: u32,
        now_ms: i64,
    ) -> Result<Vec<TopEntry>, TrendError> {
        let limit = limit.clamp(1, MAX_TOP);
        let (first, _) = window_range(window, now_ms);
        // as_of_ms >= first <=> the bucket holding as_of_ms is still in the window.
        let rows = self.store.exec(
            "SELECT tenant, calls, payers, revenue FROM rollup_windows
             WHERE win = ? AND calls > 0 AND as_of_ms >= ?
             ORDER BY calls DESC, payers DESC, tenant ASC LIMIT ?",
            &[window.as_str().into(), checked_int(first)?, limit.into()],
        )?;
        rows.iter()
            .map(|r| {
                let calls = row_u64(r, 1)?;
                Ok(TopEntry {
                    tenant: r.text(0)?.to_owned(),
                    calls,
                    payers: row_u64(r, 2)?,
                    revenue_atomic: r.text(3)?.to_owned(),
                    score: calls,
                })
            })
            .collect()
    }

    /// Every tenant with counted calls in the 7d window at `now_ms`, in slug order: its 7d
    /// totals and the latest bucket holding a call. Two indexed queries, one row per tenant.
    pub fn signals(&mut self, now_ms: i64) -> Result<Vec<Signal>, TrendError> {
        let (first, _) = window_range(Window::D7, now_ms);
        let rows = self.store.exec(
            "SELECT tenant, calls, payers, as_of_ms FROM rollup_windows
             WHERE win = ? AND calls > 0 AND as_of_ms >= ? ORDER BY tenant",
            &[Window::D7.as_str().into(), checked_int(first)?],
        )?;
        let latest = self.store.exec(
            "SELECT tenant, grain_ms, MAX(start_ms) FROM rollup_buckets
             WHERE calls > 0 GROUP BY tenant, grain_ms",
            &[],
        )?;
        let mut ends = std::collections::HashMap::<String, i64>::new();
        for r in latest.iter() {
            let end = r.int(2)?.saturating_add(r.int(1)?);
            let e = ends.entry(r.text(0)?.to_owned()).or_insert(end);
            // The finer bucket ends sooner: the tighter bound wins.
            *e = (*e).min(end);
        }
        rows.iter()
            .map(|r| {
                let tenant = r.text(0)?.to_owned();
                let as_of = r.int(3)?;
                Ok(Signal {
                    calls: row_u64(r, 1)?,
                    payers: row_u64(r, 2)?,
                    last_called_ms: ends.get(&tenant).map(|e| (*e).min(as_of)),
                    tenant,
                })
            })
            .collect()
    }

    /// A tenant's usage over `window` at `now_ms`: one point per covered bucket, oldest first.
    pub fn series(
        &mut self,
        tenant: &str,
        window: Window,
        now_ms: i64,
    ) -> Result<Series, TrendError> {
        let grain = window.grain();
        let (first, last) = window_range(window, now_ms);
        let as_of_ms = self
            .store
            .query_opt(
                "SELECT as_of_ms FROM rollup_tenants WHERE tenant = ?",
                &[tenant.into()],
            )?
            .map(|r| r.int(0))
            .transpose()?;
        let totals = self
            .store
            .query_opt(
                "SELECT calls, payers, revenue, as_of_ms FROM rollup_windows
                 WHERE tenant = ? AND win = ?",
                &[tenant.into(), window.as_str().into()],
            )?
            .map(|r| -> Result<Option<WindowTotals>, TrendError> {
                if snapshot_expired(window, r.int(3)?, now_ms) {
                    return Ok(None);
                }
                Ok(Some(WindowTotals {
                    window,
                    calls: row_u64(&r, 0)?,
                    payers: row_u64(&r, 1)?,
                    revenue_atomic: r.text(2)?.to_owned(),
                }))
            })
            .transpose()?
            .flatten();
        let rows = self.store.exec(
            "SELECT start_ms, calls, payers, revenue FROM rollup_buckets
             WHERE tenant = ? AND grain_ms = ? AND start_ms >= ? AND start_ms <= ?
             ORDER BY start_ms",
            &[
                tenant.into(),
                grain.ms().into(),
                checked_int(first)?,
                checked_int(last)?,
            ],
        )?;
        let mut stored = rows.iter().peekable();
        let mut buckets = Vec::with_capacity(usize::try_from(window.buckets()).unwrap_or(0));
        let mut start = first;
        while start <= last {
            let point = match stored.peek() {
                Some(r) if r.int(0)? == start => {
                    let p = SeriesPoint {
                        start_ms: start,
                        calls: row_u64(r, 1)?,
                        payers: row_u64(r, 2)?,
                        revenue_atomic: r.text(3)?.to_owned(),
                    };
                    stored.next();
                    p
                }
                _ => SeriesPoint {
                    start_ms: start,
                    calls: 0,
                    payers: 0,
                    revenue_atomic: "0".into(),
                },
            };
            buckets.push(point);
            start = start.saturating_add(grain.ms());
        }
        if stored.next().is_some() {
            return Err(TrendError::Corrupt("a stored bucket is not aligned".into()));
        }
        Ok(Series {
            tenant: tenant.to_owned(),
            window,
            grain_ms: grain.ms(),
            as_of_ms,
            totals,
            buckets,
        })
    }

    /// Deletes up to `max_rows` expired rows: buckets no window covers, window totals with
    /// nothing left, tenants whose every window has expired.
    pub fn sweep(&mut self, now_ms: i64, max_rows: u32) -> Result<SweepReport, TrendError> {
        let mut budget = max_rows;
        let mut deleted = 0u32;
        let mut steps: Vec<(&str, Vec<SqlValue>)> = Vec::new();
        for grain in Grain::ALL {
            steps.push((
                "DELETE FROM rollup_buckets WHERE rowid IN (SELECT rowid FROM rollup_buckets
                   WHERE grain_ms = ? AND start_ms < ? LIMIT ?) RETURNING 1",
                vec![
                    grain.ms().into(),
                    checked_int(expiry_cutoff(grain, now_ms))?,
                ],
            ));
        }
        for window in Window::ALL {
            steps.push((
                "DELETE FROM rollup_windows WHERE rowid IN (SELECT rowid FROM rollup_windows
                   WHERE win = ? AND as_of_ms < ? LIMIT ?) RETURNING 1",
                vec![
                    window.as_str().into(),
                    checked_int(window_range(window, now_ms).0)?,
                ],
            ));
        }
        steps.push((
            "DELETE FROM rollup_tenants WHERE rowid IN (SELECT rowid FROM rollup_tenants
               WHERE as_of_ms < ? LIMIT ?) RETURNING 1",
            vec![checked_int(window_range(Window::D7, now_ms).0)?],
        ));
        for (sql, mut params) in steps {
            if budget == 0 {
                return Ok(SweepReport {
                    deleted,
                    more: true,
                });
            }
            params.push(budget.into());
            let n = u32::try_from(self.store.exec(sql, &params)?.len()).unwrap_or(u32::MAX);
            deleted = deleted.saturating_add(n);
            budget = budget.saturating_sub(n);
        }
        Ok(SweepReport {
            deleted,
            more: budget == 0,
        })
    }

    /// Whether any tenant row is left (the object keeps a sweep alarm while there is).
    pub fn is_empty(&mut self) -> Result<bool, TrendError> {
        Ok(self
            .store
            .query_opt("SELECT 1 FROM rollup_tenants LIMIT 1", &[])?
            .is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memsql::MemSql;
    use crate::problem::Problem;
    use crate::trending::fixtures::*;
    use crate::trending::*;

    fn rollup(tenant: &str, seq: i64, as_of: i64, calls: [u64; 3]) -> Rollup {
        Rollup {
            tenant: tenant.into(),
            as_of_ms: as_of,
            seq,
            full: true,
            windows: Window::ALL
                .into_iter()
                .zip(calls)
                .map(|(window, calls)| WindowTotals {
                    window,
                    calls,
                    payers: calls.min(1),
                    revenue_atomic: (calls * 10).to_string(),
                })
                .collect(),
            buckets: vec![BucketSummary {
                grain_ms: FINE_MS,
                start_ms: bucket_start(as_of, Grain::Fine),
                calls: calls[0],
                payers: calls[0].min(1),
                revenue_atomic: (calls[0] * 10).to_string(),
            }],
        }
    }

    #[test]
    fn apply_is_idempotent_and_ignores_older_rollups() {
        let mut db = MemSql::new();
        let mut g = Trending::open(&mut db).unwrap();
        let r1 = rollup("alpha", 1, T0, [1, 1, 1]);
        let r2 = rollup("alpha", 2, T0 + 10, [2, 2, 2]);
        let yes = Applied {
            applied: true,
            need_full: false,
        };
        let no = Applied {
            applied: false,
            need_full: false,
        };
        assert_eq!(g.apply(&r1, T0).unwrap(), yes);
        assert_eq!(g.apply(&r2, T0 + 10).unwrap(), yes);
        assert_eq!(g.apply(&r1, T0 + 20).unwrap(), no, "older seq");
        let mut same_seq_older = r2.clone();
        same_seq_older.as_of_ms = T0 + 5;
        assert_eq!(
            g.apply(&same_seq_older, T0 + 20).unwrap(),
            no,
            "older as_of"
        );
        assert_eq!(
            g.apply(&r2, T0 + 20).unwrap(),
            yes,
            "a re-delivery changes nothing"
        );
        let top = g.top(Window::H1, 10, T0 + 20).unwrap();
        assert_eq!(top.iter().map(|e| e.calls).collect::<Vec<_>>(), vec![2]);
        // A rollup with nothing live is stale whatever its order.
        let ancient = rollup("bravo", 9, T0 - 8 * DAY, [0, 0, 1]);
        assert_eq!(g.apply(&ancient, T0).unwrap(), no);
    }

    #[test]
    fn a_partial_rollup_for_an_unknown_tenant_asks_for_a_full_one() {
        let mut db = MemSql::new();
        let mut g = Trending::open(&mut db).unwrap();
        let mut partial = rollup("alpha", 3, T0, [1, 1, 1]);
        partial.full = false;
        let a = g.apply(&partial, T0).unwrap();
        assert_eq!(
            a,
            Applied {
                applied: true,
                need_full: true
            }
        );
        let a = g.apply(&partial, T0).unwrap();
        assert_eq!(
            a,
            Applied {
                applied: true,
                need_full: false
            },
            "known now"
        );
        // A full rollup replaces buckets; a partial one merges.
        let mut full = rollup("alpha", 4, T0 + FINE_MS, [3, 3, 3]);
        full.buckets[0].start_ms = T0 + FINE_MS;
        g.apply(&full, T0 + FINE_MS).unwrap();
        let nonzero = |g: &mut Trending<'_, MemSql>| -> Vec<i64> {
            let s = g.series("alpha", Window::H1, T0 + FINE_MS).unwrap();
            s.buckets
                .iter()
                .filter(|p| p.calls > 0)
                .map(|p| p.start_ms)
                .collect()
        };
        assert_eq!(nonzero(&mut g), vec![T0 + FINE_MS]);
        let mut merge = rollup("alpha", 5, T0 + FINE_MS, [3, 3, 3]);
        merge.full = false;
        merge.buckets[0].start_ms = T0;
        g.apply(&merge, T0 + FINE_MS).unwrap();
        assert_eq!(nonzero(&mut g), vec![T0, T0 + FINE_MS]);
    }

    #[test]
    fn invalid_rollups_are_refused_with_the_field() {
        type Mutation = fn(&mut Rollup);
        let cases: Vec<(&str, Mutation)> = vec![
            ("tenant", |r| r.tenant = "No".into()),
            ("asOfMs", |r| r.as_of_ms = T0 + MAX_CLOCK_SKEW_MS + 1),
            ("asOfMs", |r| r.as_of_ms = -1),
            ("seq", |r| r.seq = -1),
            ("windows", |r| {
                r.windows.pop();
            }),
            ("windows[1].window", |r| r.windows[1].window = Window::H1),
            ("windows[0].payers", |r| {
                r.windows[0].payers = r.windows[0].calls + 1
            }),
            ("windows[0].calls", |r| r.windows[0].calls = u64::MAX),
            ("windows[2].revenueAtomic", |r| {
                r.windows[2].revenue_atomic = "-1".into()
            }),
            ("buckets[0].grainMs", |r| r.buckets[0].grain_ms = 1),
            ("buckets[0].startMs", |r| r.buckets[0].start_ms += 1),
            ("buckets[0].startMs", |r| {
                r.buckets[0].start_ms = T0 + 2 * HOUR
            }),
            ("buckets[1].startMs", |r| {
                let b = r.buckets[0].clone();
                r.buckets.push(b)
            }),
            ("buckets[0].payers", |r| {
                r.buckets[0].payers = r.buckets[0].calls + 1
            }),
            ("buckets[0].revenueAtomic", |r| {
                r.buckets[0].revenue_atomic = "0x1".into()
            }),
            ("buckets", |r| {
                let b = r.buckets[0].clone();
                r.buckets = (0..=MAX_ROLLUP_BUCKETS as i64)
                    .map(|i| BucketSummary {
                        start_ms: T0 - i * FINE_MS,
                        ..b.clone()
                    })
                    .collect();
            }),
        ];
        let mut db = MemSql::new();
        let mut g = Trending::open(&mut db).unwrap();
        for (field, mutate) in cases {
            let mut r = rollup("alpha", 1, T0, [2, 2, 2]);
            mutate(&mut r);
            let err = g.apply(&r, T0).unwrap_err();
            let p = Problem::from(err);
            assert_eq!((p.status, &*p.code), (400, "invalid_rollup"));
            assert_eq!(p.field.as_deref(), Some(field));
        }
        assert!(g.is_empty().unwrap(), "nothing was written");
    }

    #[test]
    fn top_orders_by_score_then_payers_then_slug() {
        let mut db = MemSql::new();
        let mut g = Trending::open(&mut db).unwrap();
        let mut with = |tenant: &str, calls: u64, payers: u64| {
            let mut r = rollup(tenant, 1, T0, [calls, calls, calls]);
            for w in &mut r.windows {
                w.payers = payers;
            }
            r.buckets.clear();
            g.apply(&r, T0).unwrap();
        };
        with("delta", 5, 1);
        with("alpha", 5, 2);
        with("charlie", 5, 2);
        with("bravo", 9, 1);
        with("echo", 0, 0);
        let top = g.top(Window::H24, 10, T0).unwrap();
        let order: Vec<_> = top.iter().map(|e| (e.tenant.as_str(), e.score)).collect();
        assert_eq!(
            order,
            vec![("bravo", 9), ("alpha", 5), ("charlie", 5), ("delta", 5)],
            "zero-call tenants are not ranked"
        );
        assert!(top.iter().all(|e| e.score == e.calls));
        assert_eq!(g.top(Window::H24, 2, T0).unwrap().len(), 2);
        assert_eq!(
            g.top(Window::H24, 0, T0).unwrap().len(),
            1,
            "limit clamps to 1"
        );
        // Without new rollups, snapshots leave each window once their bucket does.
        assert_eq!(g.top(Window::H1, 10, T0 + HOUR - 1).unwrap().len(), 4);
        assert!(g.top(Window::H1, 10, T0 + HOUR).unwrap().is_empty());
        assert_eq!(g.top(Window::D7, 10, T0 + HOUR).unwrap().len(), 4);
    }

    #[test]
    fn series_has_one_point_per_bucket() {
        let mut db = MemSql::new();
        let mut g = Trending::open(&mut db).unwrap();
        let now = T0 + 3 * FINE_MS + 7;
        let r = rollup("alpha", 1, now, [4, 4, 4]);
        g.apply(&r, now).unwrap();
        for w in Window::ALL {
            let s = g.series("alpha", w, now).unwrap();
            assert_eq!(s.buckets.len() as i64, w.buckets());
            assert_eq!(s.grain_ms, w.grain().ms());
            assert_eq!(s.as_of_ms, Some(now));
            assert_eq!(s.totals.as_ref().map(|t| t.calls), Some(4));
            let starts: Vec<_> = s.buckets.iter().map(|p| p.start_ms).collect();
            assert!(starts.windows(2).all(|p| p[1] - p[0] == w.grain().ms()));
            assert_eq!(starts.last().copied(), Some(bucket_start(now, w.grain())));
        }
        let s = g.series("alpha", Window::H1, now).unwrap();
        assert_eq!(s.buckets.last().map(|p| p.calls), Some(4));
        assert_eq!(s.buckets.iter().map(|p| p.calls).sum::<u64>(), 4);
        let later = now + HOUR;
        let s = g.series("alpha", Window::H1, later).unwrap();
        assert!(s.totals.is_none() && s.buckets.iter().all(|p| p.calls == 0));
        let none = g.series("nobody", Window::H24, now).unwrap();
        assert_eq!((none.as_of_ms, none.totals), (None, None));
    }

    #[test]
    fn sweep_deletes_expired_rows_in_bounded_steps() {
        let mut db = MemSql::new();
        let mut g = Trending::open(&mut db).unwrap();
        for (i, t) in ["alpha", "bravo", "charlie"].into_iter().enumerate() {
            g.apply(&rollup(t, 1, T0 + i as i64, [1, 1, 1]), T0 + 10)
                .unwrap();
        }
        assert_eq!(
            g.sweep(T0 + 10, 100).unwrap(),
            SweepReport {
                deleted: 0,
                more: false
            }
        );
        // After an hour the fine buckets and 1h totals are gone; the rest stays.
        let r = g.sweep(T0 + HOUR, 100).unwrap();
        assert_eq!(
            r,
            SweepReport {
                deleted: 6,
                more: false
            }
        );
        assert_eq!(g.top(Window::D7, 10, T0 + HOUR).unwrap().len(), 3);
        let end = T0 + 7 * DAY;
        let mut total = 0;
        loop {
            let r = g.sweep(end, 4).unwrap();
            assert!(r.deleted <= 4);
            total += r.deleted;
            if !r.more {
                break;
            }
        }
        assert_eq!(total, 3 * 2 + 3, "24h and 7d totals, then the tenants");
        assert!(g.is_empty().unwrap());
        assert_eq!(count(&mut db, "SELECT count(*) FROM rollup_windows"), 0);
        assert_eq!(count(&mut db, "SELECT count(*) FROM rollup_buckets"), 0);
    }
}
