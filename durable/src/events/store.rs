//! The events store: one tenant's events in ingest order, idempotent appends with their
//! trending counts in the same atomic write, the cursor feed, and bounded retention sweeps.

use super::{
    AppendReport, AppendResult, EventInvalid, EventPage, EventQuery, EventsConfig, EventsError,
    Outcome, StoredEvent, SweepReport, UsageEvent, DEFAULT_RETENTION_MS, MAX_BATCH, MAX_PAGE,
    MAX_RETENTION_MS, MIN_RETENTION_MS, SWEEP_INTERVAL_MS,
};
use crate::store::{checked_int, SqlStore, SqlValue, StoreError, MAX_SAFE_INTEGER};
use crate::tenant::parse_atomic_amount;
use crate::trending::{CountedCall, TenantTrend, TrendPolicy};

pub const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        time_ms INTEGER NOT NULL,
        stage TEXT NOT NULL,
        body TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS events_stage_seq ON events (stage, seq)",
    "CREATE INDEX IF NOT EXISTS events_time ON events (time_ms)",
    "CREATE TABLE IF NOT EXISTS events_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        tenant TEXT,
        last_seq INTEGER NOT NULL,
        retention_ms INTEGER NOT NULL,
        next_sweep_ms INTEGER
    )",
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    tenant: Option<String>,
    last_seq: i64,
    retention_ms: i64,
    next_sweep_ms: Option<i64>,
}

pub struct EventStore<'s, S: SqlStore> {
    store: &'s mut S,
}

impl<'s, S: SqlStore> EventStore<'s, S> {
    /// Opens the events tables (and the tenant's trending tables), creating them on first use.
    pub fn open(store: &'s mut S) -> Result<Self, EventsError> {
        const SCHEMA_NAME: &str = "usage_events";
        if store.schema_known(SCHEMA_NAME) {
            return Ok(EventStore { store });
        }
        for stmt in SCHEMA {
            store.exec(stmt, &[])?;
        }
        store.exec(
            "INSERT OR IGNORE INTO events_meta (id, tenant, last_seq, retention_ms, next_sweep_ms)
             VALUES (1, NULL, 0, ?, NULL)",
            &[DEFAULT_RETENTION_MS.into()],
        )?;
        TenantTrend::open(store)?;
        store.note_schema(SCHEMA_NAME);
        Ok(EventStore { store })
    }

    fn meta(&mut self) -> Result<Meta, EventsError> {
        let row = self.store.query_one(
            "SELECT tenant, last_seq, retention_ms, next_sweep_ms FROM events_meta WHERE id = 1",
            &[],
        )?;
        Ok(Meta {
            tenant: row.opt_text(0)?.map(str::to_owned),
            last_seq: row.int(1)?,
            retention_ms: row.int(2)?,
            next_sweep_ms: row.opt_int(3)?,
        })
    }

    /// The tenant this object holds events of; None before the first event.
    pub fn tenant(&mut self) -> Result<Option<String>, EventsError> {
        Ok(self.meta()?.tenant)
    }

    pub fn config(&mut self) -> Result<EventsConfig, EventsError> {
        Ok(EventsConfig {
            retention_ms: self.meta()?.retention_ms,
        })
    }

    pub fn set_config(&mut self, config: &EventsConfig) -> Result<EventsConfig, EventsError> {
        if !(MIN_RETENTION_MS..=MAX_RETENTION_MS).contains(&config.retention_ms) {
            return Err(EventsError::InvalidRetention);
        }
        self.store.exec(
            "UPDATE events_meta SET retention_ms = ? WHERE id = 1",
            &[config.retention_ms.into()],
        )?;
        self.config()
    }

    /// Appends a batch in one atomic write. Every event is validated first (one invalid event
    /// refuses the batch, naming its index); then each is inserted, or reported duplicate,
    /// conflicting or expired. Countable events update the tenant's trending buckets in the
    /// same write.
    pub fn append(
        &mut self,
        events: &[UsageEvent],
        now_ms: i64,
        policy: &TrendPolicy,
    ) -> Result<AppendReport, EventsError> {
        if events.len() > MAX_BATCH {
            return Err(EventsError::BatchTooLarge(events.len()));
        }
        let mut bodies = Vec::with_capacity(events.len());
        for (index, ev) in events.iter().enumerate() {
            ev.validate(now_ms)
                .map_err(|EventInvalid { field, reason }| EventsError::Invalid {
                    index,
                    field,
                    reason,
                })?;
            // A struct of strings, integers and enums always serializes.
            let body =
                serde_json::to_string(ev).map_err(|e| EventsError::Corrupt(e.to_string()))?;
            bodies.push(body);
        }
        if events.is_empty() {
            return Ok(AppendReport::default());
        }
        self.store.atomically(&mut |s| {
            let mut report = AppendReport::default();
            let meta = EventStore { store: &mut *s }.meta()?;
            let expected = match &meta.tenant {
                Some(t) => t.clone(),
                None => events.first().map(|e| e.tenant.clone()).unwrap_or_default(),
            };
            if let Some(ev) = events.iter().find(|e| e.tenant != expected) {
                return Err(EventsError::TenantMismatch {
                    expected,
                    got: ev.tenant.clone(),
                });
            }
            let oldest_kept = now_ms.saturating_sub(meta.retention_ms);
            let mut last_seq = meta.last_seq;
            for (ev, body) in events.iter().zip(&bodies) {
                let existing = s.query_opt(
                    "SELECT seq, body FROM events WHERE id = ?",
                    &[ev.id.as_str().into()],
                )?;
                let (outcome, seq) = if let Some(row) = existing {
                    let seq = row.int(0)?;
                    if row.text(1)? == body {
                        (Outcome::Duplicate, Some(seq))
                    } else {
                        (Outcome::Conflict, Some(seq))
                    }
                } else if ev.time_ms < oldest_kept {
                    (Outcome::Expired, None)
                } else {
                    let seq = last_seq
                        .checked_add(1)
                        .filter(|v| *v <= MAX_SAFE_INTEGER)
                        .ok_or(StoreError::IntegerOutOfRange(last_seq))?;
                    debug_assert!(seq > last_seq);
                    s.exec(
                        "INSERT INTO events (seq, id, time_ms, stage, body) VALUES (?, ?, ?, ?, ?)",
                        &[
                            checked_int(seq)?,
                            ev.id.as_str().into(),
                            checked_int(ev.time_ms)?,
                            ev.stage.as_str().into(),
                            body.as_str().into(),
                        ],
                    )?;
                    last_seq = seq;
                    if ev.counts_for_trending() {
                        let amount = match &ev.amount_atomic {
                            Some(a) => parse_atomic_amount(a).map_err(EventsError::Corrupt)?,
                            None => 0,
                        };
                        let call = CountedCall {
                            time_ms: ev.time_ms,
                            identity: ev.trend_identity(),
                            amount_atomic: amount,
                        };
                        TenantTrend::attach(&mut *s).record(&call, seq, now_ms, policy)?;
                        report.trending_changed = true;
                    }
                    (Outcome::Inserted, Some(seq))
                };
                match outcome {
                    Outcome::Inserted => report.inserted += 1,
                    Outcome::Duplicate => report.duplicates += 1,
                    Outcome::Conflict => report.conflicts += 1,
                    Outcome::Expired => report.expired += 1,
                }
                report.results.push(AppendResult {
                    id: ev.id.clone(),
                    outcome,
                    seq,
                });
            }
            let next_sweep = meta
                .next_sweep_ms
                .unwrap_or_else(|| now_ms.saturating_add(SWEEP_INTERVAL_MS));
            s.exec(
                "UPDATE events_meta SET tenant = ?, last_seq = ?, next_sweep_ms = ? WHERE id = 1",
                &[
                    expected.as_str().into(),
                    checked_int(last_seq)?,
                    checked_int(next_sweep)?,
                ],
            )?;
            Ok(report)
        })
    }

    /// Events in seq order after `since`, optionally of one stage; `limit` clamped to 1..=500.
    pub fn query(&mut self, q: &EventQuery) -> Result<EventPage, EventsError> {
        let limit = q.limit.clamp(1, MAX_PAGE);
        let since = q.since.unwrap_or(0);
        // One extra row tells whether another page exists.
        let rows = match q.stage {
            Some(stage) => self.store.exec(
                "SELECT seq, body FROM events WHERE stage = ? AND seq > ? ORDER BY seq LIMIT ?",
                &[
                    stage.as_str().into(),
                    checked_int(since)?,
                    SqlValue::from(limit + 1),
                ],
            )?,
            None => self.store.exec(
                "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                &[checked_int(since)?, SqlValue::from(limit + 1)],
            )?,
        };
        let has_more = rows.len() > limit as usize;
        let mut events = Vec::with_capacity(rows.len().min(limit as usize));
        for row in rows.iter().take(limit as usize) {
            let seq = row.int(0)?;
            let event: UsageEvent = serde_json::from_str(row.text(1)?)
                .map_err(|e| EventsError::Corrupt(format!("seq {seq}: {e}")))?;
            events.push(StoredEvent { seq, event });
        }
        let next_cursor = events.last().map_or(since, |e| e.seq).to_string();
        Ok(EventPage {
            events,
            next_cursor,
            has_more,
        })
    }

    /// Deletes up to `max_rows` events older than the retention, oldest first, and schedules
    /// the next sweep (soon when more are pending).
    pub fn sweep(&mut self, now_ms: i64, max_rows: u32) -> Result<SweepReport, EventsError> {
        let meta = self.meta()?;
        let cutoff = now_ms.saturating_sub(meta.retention_ms);
        let gone = self.store.exec(
            "DELETE FROM events WHERE seq IN
               (SELECT seq FROM events WHERE time_ms < ? ORDER BY time_ms LIMIT ?)
             RETURNING seq",
            &[checked_int(cutoff)?, max_rows.into()],
        )?;
        let deleted = u32::try_from(gone.len()).unwrap_or(u32::MAX);
        let more = deleted >= max_rows;
        let empty = self
            .store
            .query_opt("SELECT 1 FROM events LIMIT 1", &[])?
            .is_none();
        // An empty table needs no sweep until the next insert schedules one.
        let next = match (more, empty) {
            (true, _) => Some(now_ms.saturating_add(1_000)),
            (false, true) => None,
            (false, false) => Some(now_ms.saturating_add(SWEEP_INTERVAL_MS)),
        };
        self.store.exec(
            "UPDATE events_meta SET next_sweep_ms = ? WHERE id = 1",
            &[next.map(checked_int).transpose()?.unwrap_or(SqlValue::Null)],
        )?;
        Ok(SweepReport { deleted, more })
    }

    /// Whether the retention sweep is due at `now_ms`.
    pub fn sweep_due(&mut self, now_ms: i64) -> Result<bool, EventsError> {
        Ok(self.meta()?.next_sweep_ms.is_some_and(|t| t <= now_ms))
    }

    /// When the object should next wake: the retention sweep or the trending rollup,
    /// whichever is first; None when neither is pending.
    pub fn next_wake(&mut self, now_ms: i64) -> Result<Option<i64>, EventsError> {
        let sweep = self.meta()?.next_sweep_ms;
        let trend = TenantTrend::attach(&mut *self.store).next_wake(now_ms)?;
        Ok(earliest(sweep, trend))
    }
}

/// The earlier of two optional wake-up times.
pub fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::fixtures::*;
    use crate::events::*;
    use crate::memsql::MemSql;
    use crate::problem::Problem;
    use proptest::prelude::*;

    fn policy() -> TrendPolicy {
        TrendPolicy::default()
    }

    fn count(db: &mut MemSql, sql: &str) -> i64 {
        db.query_one(sql, &[]).unwrap().int(0).unwrap()
    }

    #[test]
    fn append_is_idempotent_per_event_id() {
        let mut db = MemSql::new();
        let mut store = EventStore::open(&mut db).unwrap();
        let a = settled("a", "demo", NOW, 1, 10);
        let b = event(
            "b",
            "demo",
            NOW,
            Stage::Challenged,
            false,
            2,
            None,
            10,
            false,
        );
        let r = store
            .append(&[a.clone(), b.clone()], NOW, &policy())
            .unwrap();
        assert_eq!((r.inserted, r.duplicates), (2, 0));
        assert!(r.trending_changed);
        assert_eq!(r.results[0].seq, Some(1));
        assert_eq!(r.results[1].seq, Some(2));

        let mut changed = a.clone();
        changed.latency_ms += 1;
        let old = settled("old", "demo", NOW - DEFAULT_RETENTION_MS - 1, 1, 10);
        let c = settled("c", "demo", NOW, 1, 10);
        let r = store
            .append(&[b.clone(), changed, old, c.clone(), c], NOW, &policy())
            .unwrap();
        let outcomes: Vec<_> = r.results.iter().map(|x| (x.outcome, x.seq)).collect();
        assert_eq!(
            outcomes,
            vec![
                (Outcome::Duplicate, Some(2)),
                (Outcome::Conflict, Some(1)),
                (Outcome::Expired, None),
                (Outcome::Inserted, Some(3)),
                (Outcome::Duplicate, Some(3)),
            ]
        );
        assert_eq!(
            (r.inserted, r.duplicates, r.conflicts, r.expired),
            (1, 2, 1, 1)
        );
        let page = store
            .query(&EventQuery {
                stage: None,
                since: None,
                limit: 10,
            })
            .unwrap();
        assert_eq!(page.events.len(), 3);
        assert_eq!(page.events[0].event, a, "the first write stands");
        // Trending counted a and c once each, in both grains.
        assert_eq!(count(&mut db, "SELECT sum(calls) FROM trend_buckets"), 4);
    }

    #[test]
    fn an_invalid_event_refuses_the_whole_batch() {
        let mut db = MemSql::new();
        let mut store = EventStore::open(&mut db).unwrap();
        let mut bad = settled("b", "demo", NOW, 1, 10);
        bad.route = "/x?token=1".into();
        let err = store
            .append(&[settled("a", "demo", NOW, 1, 10), bad], NOW, &policy())
            .unwrap_err();
        assert!(matches!(
            err,
            EventsError::Invalid {
                index: 1,
                field: "route",
                ..
            }
        ));
        let p: Problem = err.into();
        assert_eq!(
            (p.status, &*p.code, p.field.as_deref()),
            (400, "invalid_event", Some("[1].route"))
        );
        assert_eq!(count(&mut db, "SELECT count(*) FROM events"), 0);
        assert_eq!(count(&mut db, "SELECT count(*) FROM trend_buckets"), 0);
        assert_eq!(count(&mut db, "SELECT last_seq FROM events_meta"), 0);
    }

    #[test]
    fn an_object_holds_one_tenant() {
        let mut db = MemSql::new();
        let mut store = EventStore::open(&mut db).unwrap();
        assert_eq!(store.tenant().unwrap(), None);
        let err = store
            .append(
                &[
                    settled("a", "demo", NOW, 1, 10),
                    settled("b", "other", NOW, 1, 10),
                ],
                NOW,
                &policy(),
            )
            .unwrap_err();
        assert!(matches!(err, EventsError::TenantMismatch { .. }));
        assert_eq!(
            store.tenant().unwrap(),
            None,
            "the refused batch claimed nothing"
        );
        store
            .append(&[settled("a", "demo", NOW, 1, 10)], NOW, &policy())
            .unwrap();
        assert_eq!(store.tenant().unwrap().as_deref(), Some("demo"));
        let err = store
            .append(&[settled("b", "other", NOW, 1, 10)], NOW, &policy())
            .unwrap_err();
        assert_eq!(Problem::from(err).code, "tenant_mismatch");
    }

    #[test]
    fn batches_are_bounded() {
        let mut db = MemSql::new();
        let mut store = EventStore::open(&mut db).unwrap();
        let many: Vec<_> = (0..=MAX_BATCH)
            .map(|i| settled(&format!("e{i}"), "demo", NOW, 1, 1))
            .collect();
        let err = store.append(&many, NOW, &policy()).unwrap_err();
        assert_eq!(err, EventsError::BatchTooLarge(MAX_BATCH + 1));
        assert_eq!(Problem::from(err).status, 413);
        let r = store.append(&many[..MAX_BATCH], NOW, &policy()).unwrap();
        assert_eq!(r.inserted as usize, MAX_BATCH);
        assert_eq!(
            store.append(&[], NOW, &policy()).unwrap(),
            AppendReport::default()
        );
    }

    #[test]
    fn retention_sweep_is_bounded_and_seq_is_never_reused() {
        let mut db = MemSql::new();
        let mut store = EventStore::open(&mut db).unwrap();
        let old: Vec<_> = (0..25)
            .map(|i| settled(&format!("o{i}"), "demo", NOW + i, 1, 1))
            .collect();
        store.append(&old, NOW + 100, &policy()).unwrap();
        let later = NOW + DEFAULT_RETENTION_MS + 20;
        store
            .append(&[settled("new", "demo", later, 1, 1)], later, &policy())
            .unwrap();
        assert!(!store.sweep_due(NOW + 100).unwrap());
        assert!(store.sweep_due(later).unwrap());
        let r = store.sweep(later, 10).unwrap();
        assert_eq!(
            r,
            SweepReport {
                deleted: 10,
                more: true
            }
        );
        let r = store.sweep(later, 10).unwrap();
        assert_eq!(
            r,
            SweepReport {
                deleted: 10,
                more: true
            }
        );
        // Events at NOW+20..NOW+24 are not yet older than the retention at `later`.
        let r = store.sweep(later, 10).unwrap();
        assert_eq!(
            r,
            SweepReport {
                deleted: 0,
                more: false
            }
        );
        let r = store.sweep(later + 100, 10).unwrap();
        assert_eq!(
            r,
            SweepReport {
                deleted: 5,
                more: false
            }
        );
        let left = store
            .query(&EventQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            left.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![26]
        );
        // Sweep everything: no more sweeps are scheduled; the next event still gets a fresh
        // seq and schedules the next sweep.
        let much_later = later + DEFAULT_RETENTION_MS + 1;
        store.sweep(much_later, 10).unwrap();
        assert!(!store.sweep_due(i64::MAX).unwrap(), "no sweep scheduled");
        let r = store
            .append(
                &[settled("next", "demo", much_later, 1, 1)],
                much_later,
                &policy(),
            )
            .unwrap();
        assert_eq!(r.results[0].seq, Some(27));
        assert!(!store.sweep_due(much_later).unwrap());
        assert!(store.sweep_due(much_later + SWEEP_INTERVAL_MS).unwrap());
    }

    #[test]
    fn retention_is_configurable_within_bounds() {
        let mut db = MemSql::new();
        let mut store = EventStore::open(&mut db).unwrap();
        assert_eq!(store.config().unwrap().retention_ms, DEFAULT_RETENTION_MS);
        for bad in [MIN_RETENTION_MS - 1, MAX_RETENTION_MS + 1, -1] {
            let err = store
                .set_config(&EventsConfig { retention_ms: bad })
                .unwrap_err();
            assert_eq!(Problem::from(err).field.as_deref(), Some("retentionMs"));
        }
        let c = store
            .set_config(&EventsConfig {
                retention_ms: MIN_RETENTION_MS,
            })
            .unwrap();
        assert_eq!(c.retention_ms, MIN_RETENTION_MS);
        let r = store
            .append(
                &[settled("a", "demo", NOW - MIN_RETENTION_MS - 1, 1, 1)],
                NOW,
                &policy(),
            )
            .unwrap();
        assert_eq!(r.expired, 1);
    }

    #[test]
    fn next_wake_covers_sweep_and_rollup() {
        let mut db = MemSql::new();
        let mut store = EventStore::open(&mut db).unwrap();
        assert_eq!(
            store.next_wake(NOW).unwrap(),
            None,
            "nothing to do before any event"
        );
        let challenge = event(
            "c",
            "demo",
            NOW,
            Stage::Challenged,
            false,
            1,
            None,
            1,
            false,
        );
        store.append(&[challenge], NOW, &policy()).unwrap();
        assert_eq!(store.next_wake(NOW).unwrap(), Some(NOW + SWEEP_INTERVAL_MS));
        store
            .append(&[settled("s", "demo", NOW, 1, 1)], NOW, &policy())
            .unwrap();
        assert_eq!(
            store.next_wake(NOW).unwrap(),
            Some(NOW + crate::trending::ROLLUP_DELAY_MS)
        );
        assert_eq!(earliest(None, Some(3)), Some(3));
        assert_eq!(earliest(Some(2), Some(3)), Some(2));
        assert_eq!(earliest(None, None), None);
    }

    fn any_stage() -> impl Strategy<Value = Stage> {
        proptest::sample::select(Stage::ALL.to_vec())
    }

    proptest! {
        /// Walking the cursor, with or without a stage filter, visits every matching event
        /// exactly once, in ingest order, for any page size; seq strictly increases.
        #[test]
        fn cursor_pages_cover_everything_once(
            stages in proptest::collection::vec(any_stage(), 0..60),
            page in 1u32..9,
            filter in proptest::option::of(any_stage()),
        ) {
            let mut db = MemSql::new();
            let mut store = EventStore::open(&mut db).unwrap();
            let events: Vec<_> = stages.iter().enumerate()
                .map(|(i, s)| event(&format!("e{i}"), "demo", NOW + i as i64, *s, false, 1, Some(1), 5, false))
                .collect();
            for chunk in events.chunks(7) {
                store.append(chunk, NOW + 100, &policy()).unwrap();
            }
            let mut seen = Vec::new();
            let mut since = None;
            loop {
                let p = store.query(&EventQuery { stage: filter, since, limit: page }).unwrap();
                prop_assert!(p.events.len() <= page as usize);
                seen.extend(p.events.iter().map(|e| (e.seq, e.event.id.clone())));
                since = Some(p.next_cursor.parse().unwrap());
                if !p.has_more { break; }
            }
            let expected: Vec<_> = events.iter().enumerate()
                .filter(|(_, e)| filter.is_none_or(|f| f == e.stage))
                .map(|(i, e)| (i as i64 + 1, e.id.clone()))
                .collect();
            prop_assert_eq!(seen, expected);
            // Polling past the end returns nothing and keeps the cursor.
            let p = store.query(&EventQuery { stage: filter, since, limit: page }).unwrap();
            prop_assert!(p.events.is_empty());
            prop_assert_eq!(Some(p.next_cursor.parse::<i64>().unwrap()), since);
        }

        /// Any delivery schedule (re-batched, duplicated, reordered) stores each event once
        /// and counts each countable one once in trending.
        #[test]
        fn duplicate_deliveries_store_and_count_once(
            n in 1usize..40,
            deliveries in proptest::collection::vec((0usize..40, 1usize..6), 1..30),
        ) {
            let events: Vec<_> = (0..n)
                .map(|i| {
                    let stage = if i % 3 == 0 { Stage::Challenged } else { Stage::Settled };
                    event(&format!("e{i}"), "demo", NOW + i as i64, stage, false, 1, Some(i as u32 % 4), 5, false)
                })
                .collect();
            let mut db = MemSql::new();
            let mut store = EventStore::open(&mut db).unwrap();
            let mut schedule: Vec<Vec<UsageEvent>> = deliveries.iter()
                .map(|(start, len)| events.iter().cycle().skip(*start).take(*len).cloned().collect())
                .collect();
            schedule.push(events.clone()); // finally everything arrives
            let mut last_seq = 0;
            for batch in &schedule {
                let r = store.append(batch, NOW + 100, &policy()).unwrap();
                for res in &r.results {
                    if res.outcome == Outcome::Inserted {
                        let seq = res.seq.unwrap();
                        prop_assert!(seq > last_seq);
                        last_seq = seq;
                    }
                    prop_assert_ne!(res.outcome, Outcome::Conflict);
                }
            }
            let page = store.query(&EventQuery { limit: MAX_PAGE, ..Default::default() }).unwrap();
            let mut ids: Vec<_> = page.events.iter().map(|e| e.event.id.clone()).collect();
            ids.sort();
            let mut expected: Vec<_> = events.iter().map(|e| e.id.clone()).collect();
            expected.sort();
            prop_assert_eq!(ids, expected);
            let countable = events.iter().filter(|e| e.counts_for_trending()).count() as i64;
            prop_assert_eq!(count(&mut db, "SELECT coalesce(sum(calls), 0) FROM trend_buckets WHERE grain_ms = 300000"), countable);
            prop_assert_eq!(count(&mut db, "SELECT coalesce(sum(calls), 0) FROM trend_buckets WHERE grain_ms = 3600000"), countable);
        }
    }
}
