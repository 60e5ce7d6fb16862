//! A tenant's call statistics over its retained events, for the dashboard: calls per UTC
//! day by stage, distinct payers, latency percentiles and the busiest routes.
//!
//! Read from the events table itself (the same rows the feed pages through), so the numbers
//! equal what a reader of the feed would count. Cost: one pass over the window's rows
//! (indexed by time), at most [`MAX_STATS_DAYS`] days of one tenant's events.

use serde::Serialize;

use super::{EventsError, Stage, DAY_MS};
use crate::store::{checked_int, SqlStore, SqlValue};

/// The longest window a statistics read covers.
pub const MAX_STATS_DAYS: u32 = 31;
/// Routes listed in [`UsageStats::top_routes`].
pub const TOP_ROUTES: u32 = 10;

/// Calls by stage (every event is exactly one of these).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageCounts {
    pub challenged: u64,
    pub rate_limited: u64,
    pub verify_failed: u64,
    pub served: u64,
    pub settled: u64,
    pub settlement_failed: u64,
    pub error: u64,
}

impl StageCounts {
    fn add(&mut self, stage: Stage, n: u64) {
        let slot = match stage {
            Stage::Challenged => &mut self.challenged,
            Stage::RateLimited => &mut self.rate_limited,
            Stage::VerifyFailed => &mut self.verify_failed,
            Stage::Served => &mut self.served,
            Stage::Settled => &mut self.settled,
            Stage::SettlementFailed => &mut self.settlement_failed,
            Stage::Error => &mut self.error,
        };
        *slot += n;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DayStages {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    #[serde(flatten)]
    pub stages: StageCounts,
}

/// Time to the response head of answered calls (served and settled), in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub count: u64,
    pub p50: i64,
    pub p95: i64,
    pub max: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteCount {
    pub route: String,
    /// Events of any stage on this route.
    pub calls: u64,
    /// Of which answered (served or settled).
    pub answered: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageStats {
    /// The window: from the start of the UTC day `days - 1` days ago, to now.
    pub from_ms: i64,
    pub to_ms: i64,
    /// Days with events, oldest first.
    pub days: Vec<DayStages>,
    pub totals: StageCounts,
    /// Distinct payers of settled calls (by their salted hash).
    pub payers: u64,
    /// Distinct callers (payer, API key, IP or `anon`, by their salted hash).
    pub callers: u64,
    /// None: no answered call in the window.
    pub latency_ms: Option<Latency>,
    /// The busiest routes, most events first (ties by route).
    pub top_routes: Vec<RouteCount>,
}

/// The statistics of the `days` (1..=[`MAX_STATS_DAYS`]) UTC days ending with `now_ms`'s.
pub fn stats<S: SqlStore>(
    store: &mut S,
    now_ms: i64,
    days: u32,
) -> Result<UsageStats, EventsError> {
    let days = days.clamp(1, MAX_STATS_DAYS);
    let from_ms = (now_ms.div_euclid(DAY_MS) - i64::from(days) + 1) * DAY_MS;
    let from = checked_int(from_ms)?;
    let rows = store.exec(
        "SELECT date(time_ms / 1000, 'unixepoch') AS d, stage, COUNT(*) FROM events
         WHERE time_ms >= ? GROUP BY d, stage ORDER BY d",
        std::slice::from_ref(&from),
    )?;
    let mut by_day: Vec<DayStages> = Vec::new();
    let mut totals = StageCounts::default();
    for r in &rows {
        let day = r.text(0)?;
        let stage = Stage::parse(r.text(1)?)
            .ok_or_else(|| EventsError::Corrupt(format!("stage {:?}", r.text(1))))?;
        let n = count(r.int(2)?);
        if by_day.last().is_none_or(|d| d.day != day) {
            by_day.push(DayStages {
                day: day.to_owned(),
                stages: StageCounts::default(),
            });
        }
        if let Some(d) = by_day.last_mut() {
            d.stages.add(stage, n);
        }
        totals.add(stage, n);
    }
    let distinct = store.query_one(
        "SELECT
           COUNT(DISTINCT CASE WHEN stage = 'settled' THEN json_extract(body, '$.payerHash') END),
           COUNT(DISTINCT json_extract(body, '$.callerHash'))
         FROM events WHERE time_ms >= ?",
        std::slice::from_ref(&from),
    )?;
    let answered = "stage IN ('served', 'settled')";
    let latency_ms = match totals.served + totals.settled {
        0 => None,
        n => {
            // The nearest-rank percentile: the value at rank ceil(p * n).
            let mut at = |p: u64| -> Result<i64, EventsError> {
                let rank = (p * n).div_ceil(100).max(1) - 1;
                let row = store.query_one(
                    &format!(
                        "SELECT json_extract(body, '$.latencyMs') AS l FROM events
                         WHERE time_ms >= ? AND {answered} ORDER BY l LIMIT 1 OFFSET ?"
                    ),
                    &[from.clone(), SqlValue::from(rank as i64)],
                )?;
                Ok(row.int(0)?)
            };
            let (p50, p95, max) = (at(50)?, at(95)?, at(100)?);
            Some(Latency {
                count: n,
                p50,
                p95,
                max,
            })
        }
    };
    let routes = store.exec(
        &format!(
            "SELECT json_extract(body, '$.route') AS r, COUNT(*) AS c,
               SUM(CASE WHEN {answered} THEN 1 ELSE 0 END)
             FROM events WHERE time_ms >= ? GROUP BY r ORDER BY c DESC, r LIMIT ?"
        ),
        &[from, SqlValue::from(TOP_ROUTES)],
    )?;
    let top_routes = routes
        .iter()
        .map(|r| {
            Ok(RouteCount {
                route: r.text(0)?.to_owned(),
                calls: count(r.int(1)?),
                answered: count(r.int(2)?),
            })
        })
        .collect::<Result<_, EventsError>>()?;
    Ok(UsageStats {
        from_ms,
        to_ms: now_ms,
        days: by_day,
        totals,
        payers: count(distinct.int(0)?),
        callers: count(distinct.int(1)?),
        latency_ms,
        top_routes,
    })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{event, settled, NOW};
    use super::super::EventStore;
    use super::*;
    use crate::memsql::MemSql;
    use crate::trending::TrendPolicy;

    fn with_latency(
        mut e: super::super::UsageEvent,
        ms: u32,
        route: &str,
    ) -> super::super::UsageEvent {
        e.latency_ms = ms;
        e.route = route.into();
        e
    }

    #[test]
    fn stages_per_day_payers_latency_and_routes() {
        let mut db = MemSql::new();
        let today = NOW - NOW.rem_euclid(DAY_MS);
        let yesterday = today - DAY_MS;
        let long_ago = today - 40 * DAY_MS;
        let mut events = vec![
            settled("a", "acme", yesterday + 5, 1, 1000),
            settled("b", "acme", today + 5, 1, 1000),
            settled("c", "acme", today + 6, 2, 1000),
            event(
                "d",
                "acme",
                today + 7,
                Stage::Challenged,
                false,
                3,
                None,
                1000,
                false,
            ),
            event(
                "e",
                "acme",
                today + 8,
                Stage::RateLimited,
                false,
                3,
                None,
                1000,
                false,
            ),
            event(
                "f",
                "acme",
                today + 9,
                Stage::Error,
                false,
                4,
                None,
                1000,
                false,
            ),
        ];
        for (i, e) in events.iter_mut().enumerate() {
            let route = if i == 2 { "/b" } else { "/a" };
            *e = with_latency(e.clone(), 10 * (i as u32 + 1), route);
        }
        let mut old = settled("z", "acme", long_ago, 9, 1000);
        old.route = "/old".into();
        let mut store = EventStore::open(&mut db).unwrap();
        // The old event is appended while it is within retention, then the clock moves.
        store
            .append(&[old], long_ago + 1, &TrendPolicy::default())
            .unwrap();
        store.append(&events, NOW, &TrendPolicy::default()).unwrap();

        let s = stats(&mut db, NOW, 2).unwrap();
        assert_eq!(s.from_ms, yesterday);
        assert_eq!(s.days.len(), 2);
        assert_eq!(s.days[0].stages.settled, 1);
        assert_eq!(s.days[1].stages.settled, 2);
        assert_eq!(s.days[1].stages.challenged, 1);
        assert_eq!(s.days[1].stages.rate_limited, 1);
        assert_eq!(s.days[1].stages.error, 1);
        assert_eq!(s.totals.settled, 3);
        // Payers 1 and 2 settled; the old payer 9 is outside the window.
        assert_eq!(s.payers, 2);
        // Latency of the three settled calls: 10, 20, 30.
        let l = s.latency_ms.unwrap();
        assert_eq!((l.count, l.p50, l.p95, l.max), (3, 20, 30, 30));
        assert_eq!(s.top_routes[0].route, "/a");
        assert_eq!((s.top_routes[0].calls, s.top_routes[0].answered), (5, 2));
        assert_eq!(s.top_routes[1].route, "/b");
        assert!(s.top_routes.iter().all(|r| r.route != "/old"));

        // One day: yesterday's call is out.
        let s = stats(&mut db, NOW, 1).unwrap();
        assert_eq!((s.days.len(), s.totals.settled), (1, 2));
        // Nothing in the window: empty, no latency.
        let s = stats(&mut db, NOW + 100 * DAY_MS, 1).unwrap();
        assert!(s.days.is_empty() && s.latency_ms.is_none() && s.top_routes.is_empty());
        assert_eq!(s.totals, StageCounts::default());
    }
}
