//! Both sides together: tenant objects' alarms rolling up into the global object, and a
//! simulation of both against an exact count.

use super::fixtures::*;
use super::*;
use crate::events::fixtures::{event, settled};
use crate::events::{EventStore, Stage, UsageEvent};
use crate::memsql::MemSql;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// The default policy, an empty tenant object and an empty global object.
fn fresh() -> (TrendPolicy, MemSql, MemSql) {
    (TrendPolicy::default(), MemSql::new(), MemSql::new())
}

/// If a rollup of "demo" is due at `now`, builds it, applies it to `global` and acknowledges
/// the answer; returns whether one was sent.
fn deliver_due_rollup(
    db: &mut MemSql,
    global: &mut MemSql,
    now: i64,
    policy: &TrendPolicy,
) -> bool {
    let mut trend = TenantTrend::open(db).unwrap();
    if !trend.rollup_due(now).unwrap() {
        return false;
    }
    let p = trend.build_rollup("demo", now, policy).unwrap();
    let applied = Trending::open(global)
        .unwrap()
        .apply(&p.rollup, now)
        .unwrap();
    TenantTrend::open(db)
        .unwrap()
        .ack(&p, applied.need_full)
        .unwrap();
    true
}

/// Runs the tenant object's alarm until it has nothing left to do, delivering every
/// rollup; returns how many rollups it sent.
fn run_alarms_until_idle(
    db: &mut MemSql,
    global: &mut MemSql,
    mut now: i64,
    policy: &TrendPolicy,
) -> (usize, i64) {
    let mut sent = 0;
    for _ in 0..1_000 {
        while TenantTrend::open(db).unwrap().expire(now, 8).unwrap().more {}
        if deliver_due_rollup(db, global, now, policy) {
            sent += 1;
        }
        match TenantTrend::open(db).unwrap().next_wake(now).unwrap() {
            Some(t) => {
                assert!(t >= now, "wakes never go back in time");
                now = t;
            }
            None => return (sent, now),
        }
    }
    panic!("the schedule did not terminate");
}

#[test]
fn a_tenant_rolls_up_until_its_windows_are_empty_then_sleeps() {
    let (policy, mut db, mut global) = fresh();
    let now = T0 + 1_000;
    ingest(&mut db, &[settled("a", "demo", now, 1, 5)], now, &policy);
    let mut trend = TenantTrend::open(&mut db).unwrap();
    assert!(trend.rollup_due(now).unwrap());
    assert_eq!(trend.next_wake(now).unwrap(), Some(now + ROLLUP_DELAY_MS));
    let (sent, end) = run_alarms_until_idle(&mut db, &mut global, now + ROLLUP_DELAY_MS, &policy);
    // One for the call, one per fine boundary while the 1h window holds it, one per
    // coarse boundary while the 7d window does (the ones that coincide merge).
    assert!(sent <= 1 + 12 + 168, "sent {sent}");
    assert!(sent > 168, "sent {sent}");
    assert_eq!(
        end,
        T0 + 7 * DAY,
        "the last rollup is when the call leaves 7d"
    );
    let mut g = Trending::open(&mut global).unwrap();
    for w in Window::ALL {
        assert!(g.top(w, 10, end).unwrap().is_empty(), "{w:?}");
    }
    assert_eq!(count(&mut db, "SELECT count(*) FROM trend_buckets"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM trend_payers"), 0);
    // Over that week the call was ranked in each window exactly while the window held it.
}

#[test]
fn the_1h_ranking_drops_a_call_at_the_boundary() {
    let (policy, mut db, mut global) = fresh();
    ingest(
        &mut db,
        &[settled("a", "demo", T0 + 10, 1, 5)],
        T0 + 10,
        &policy,
    );
    run_alarms_until_idle_before(&mut db, &mut global, T0 + 10, T0 + HOUR - 1, &policy);
    let top = Trending::open(&mut global)
        .unwrap()
        .top(Window::H1, 10, T0 + HOUR - 1)
        .unwrap();
    assert_eq!(top.len(), 1);
    run_alarms_until_idle_before(&mut db, &mut global, T0 + HOUR - 1, T0 + HOUR, &policy);
    let mut g = Trending::open(&mut global).unwrap();
    assert!(g.top(Window::H1, 10, T0 + HOUR).unwrap().is_empty());
    assert_eq!(g.top(Window::H24, 10, T0 + HOUR).unwrap().len(), 1);
}

/// Discovery's signals: 7d totals and an upper bound on the last counted call.
#[test]
fn signals_bound_the_last_call_by_its_bucket() {
    let (policy, mut db, mut global) = fresh();
    let late = T0 + 20 * 60_000 + 7;
    ingest(
        &mut db,
        &[settled("a", "demo", T0 + 10, 1, 5)],
        T0 + 10,
        &policy,
    );
    ingest(&mut db, &[settled("b", "demo", late, 2, 5)], late, &policy);
    let now = T0 + 30 * 60_000;
    run_alarms_until_idle_before(&mut db, &mut global, late, now, &policy);
    let signals = Trending::open(&mut global).unwrap().signals(now).unwrap();
    assert_eq!(signals.len(), 1);
    let s = &signals[0];
    assert_eq!((s.tenant.as_str(), s.calls, s.payers), ("demo", 2, 2));
    let last = s.last_called_ms.unwrap();
    assert!(last >= late, "never before the last call");
    assert!(
        last <= T0 + 25 * 60_000,
        "within its 5-minute bucket: {last}"
    );
    // A week later nothing is left to list.
    assert!(Trending::open(&mut global)
        .unwrap()
        .signals(T0 + 8 * DAY)
        .unwrap()
        .is_empty());
}

/// Runs due alarms from `from` up to and including `until`.
fn run_alarms_until_idle_before(
    db: &mut MemSql,
    global: &mut MemSql,
    from: i64,
    until: i64,
    policy: &TrendPolicy,
) {
    let mut now = from;
    for _ in 0..1_000 {
        TenantTrend::open(db).unwrap().expire(now, 1_000).unwrap();
        deliver_due_rollup(db, global, now, policy);
        match TenantTrend::open(db).unwrap().next_wake(now).unwrap() {
            Some(t) if t <= until && t > now => now = t,
            Some(t) if t <= until => now += 1,
            _ => return,
        }
    }
    panic!("the schedule did not settle");
}

#[test]
fn a_global_object_that_lost_a_tenant_gets_every_bucket_back() {
    let (policy, mut db, mut global) = fresh();
    let evs: Vec<_> = (0..5)
        .map(|h| settled(&format!("e{h}"), "demo", T0 + h * HOUR, 1, 3))
        .collect();
    for e in &evs {
        ingest(&mut db, std::slice::from_ref(e), e.time_ms, &policy);
    }
    let now = T0 + 4 * HOUR + 10;
    run_alarms_until_idle_before(&mut db, &mut global, now, now, &policy);
    let before = Trending::open(&mut global)
        .unwrap()
        .series("demo", Window::H24, now)
        .unwrap();
    assert_eq!(before.buckets.iter().map(|p| p.calls).sum::<u64>(), 5);
    // The global object starts over (rebuilt, or a new instance): the tenant's next
    // rollup is partial, the answer asks for a full one, which restores every bucket.
    let mut fresh = MemSql::new();
    let later = T0 + 5 * HOUR;
    let mut trend = TenantTrend::open(&mut db).unwrap();
    assert!(
        trend.rollup_due(later).unwrap(),
        "a boundary passed with live buckets"
    );
    let p = trend.build_rollup("demo", later, &policy).unwrap();
    assert!(!p.rollup.full && p.rollup.buckets.is_empty());
    let a = Trending::open(&mut fresh)
        .unwrap()
        .apply(&p.rollup, later)
        .unwrap();
    assert!(a.need_full);
    TenantTrend::open(&mut db)
        .unwrap()
        .ack(&p, a.need_full)
        .unwrap();
    let mut trend = TenantTrend::open(&mut db).unwrap();
    assert!(trend.rollup_due(later).unwrap());
    let p = trend.build_rollup("demo", later, &policy).unwrap();
    assert!(p.rollup.full);
    let a = Trending::open(&mut fresh)
        .unwrap()
        .apply(&p.rollup, later)
        .unwrap();
    assert_eq!(
        a,
        Applied {
            applied: true,
            need_full: false
        }
    );
    TenantTrend::open(&mut db)
        .unwrap()
        .ack(&p, a.need_full)
        .unwrap();
    assert!(!TenantTrend::open(&mut db)
        .unwrap()
        .rollup_due(later)
        .unwrap());
    let after = Trending::open(&mut fresh)
        .unwrap()
        .series("demo", Window::H24, later)
        .unwrap();
    let before_at_later = Trending::open(&mut global)
        .unwrap()
        .series("demo", Window::H24, later)
        .unwrap();
    assert_eq!(after.buckets, before_at_later.buckets);
}

// --- Simulation: tenant objects + global object vs an exact count ---------------------

const TENANTS: [(&str, bool); 4] = [
    ("alpha", false),
    ("bravo", false),
    ("charlie", false),
    ("delta", true),
];

/// What happens to one rollup on its way to the global object.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Delivered,
    AckLost,
    Lost,
    Delayed,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        4 => Just(Fate::Delivered),
        1 => Just(Fate::AckLost),
        1 => Just(Fate::Lost),
        1 => Just(Fate::Delayed),
    ]
}

struct Sim {
    tenants: Vec<MemSql>,
    global: MemSql,
    policy: TrendPolicy,
    delayed: Vec<Rollup>,
}

impl Sim {
    fn new(policy: TrendPolicy) -> Self {
        Sim {
            tenants: TENANTS.iter().map(|_| MemSql::new()).collect(),
            global: MemSql::new(),
            policy,
            delayed: Vec::new(),
        }
    }

    fn ingest(&mut self, batch: &[UsageEvent], now: i64) {
        for (i, (slug, _)) in TENANTS.iter().enumerate() {
            let mine: Vec<_> = batch
                .iter()
                .filter(|e| e.tenant == *slug)
                .cloned()
                .collect();
            if !mine.is_empty() {
                let db = &mut self.tenants[i];
                let r = EventStore::open(db)
                    .unwrap()
                    .append(&mine, now, &self.policy)
                    .unwrap();
                assert_eq!(r.conflicts, 0);
            }
        }
    }

    /// One alarm of tenant `i`; returns whether a rollup was built.
    fn alarm(&mut self, i: usize, now: i64, fate: Fate) -> bool {
        let slug = TENANTS[i].0;
        let db = &mut self.tenants[i];
        let mut trend = TenantTrend::open(db).unwrap();
        trend.expire(now, 1_000).unwrap();
        if !trend.rollup_due(now).unwrap() {
            return false;
        }
        let p = trend.build_rollup(slug, now, &self.policy).unwrap();
        let mut g = Trending::open(&mut self.global).unwrap();
        match fate {
            Fate::Delivered => {
                let a = g.apply(&p.rollup, now).unwrap();
                TenantTrend::open(db).unwrap().ack(&p, a.need_full).unwrap();
            }
            Fate::AckLost => {
                g.apply(&p.rollup, now).unwrap();
            }
            Fate::Lost => {}
            Fate::Delayed => self.delayed.push(p.rollup),
        }
        true
    }

    /// Every tenant rolls up reliably until nothing is due; then the delayed rollups
    /// finally arrive (and must change nothing).
    fn settle(&mut self, now: i64) {
        for i in 0..TENANTS.len() {
            let mut n = 0;
            while self.alarm(i, now, Fate::Delivered) {
                n += 1;
                assert!(n < 3, "one reliable rollup brings a tenant up to date");
            }
        }
        let mut g = Trending::open(&mut self.global).unwrap();
        for r in self.delayed.drain(..) {
            let a = g.apply(&r, now).unwrap();
            assert!(
                !a.applied || a.need_full || r.as_of_ms == now,
                "a delayed rollup was applied"
            );
        }
    }

    fn top(&mut self, w: Window, now: i64) -> Vec<TopEntry> {
        Trending::open(&mut self.global)
            .unwrap()
            .top(w, MAX_TOP, now)
            .unwrap()
    }

    fn series(&mut self, tenant: &str, w: Window, now: i64) -> Vec<SeriesPoint> {
        Trending::open(&mut self.global)
            .unwrap()
            .series(tenant, w, now)
            .unwrap()
            .buckets
    }
}

/// The definition of a counted call, written out independently of the code under test.
fn model_counts(e: &UsageEvent) -> bool {
    let countable = match e.stage {
        Stage::Settled => e.payment_required,
        Stage::Served => !e.payment_required,
        _ => false,
    };
    countable && !e.self_dealing
}

fn amount(e: &UsageEvent) -> u128 {
    e.amount_atomic.as_deref().map_or(0, |a| a.parse().unwrap())
}

/// The ranking, counted directly from the events.
fn exact_top(events: &[UsageEvent], w: Window, now: i64, policy: &TrendPolicy) -> Vec<TopEntry> {
    let mut per: BTreeMap<&str, (BTreeMap<&str, u64>, u128)> = BTreeMap::new();
    for e in events {
        if model_counts(e) && covers(w, bucket_start(e.time_ms, w.grain()), now) {
            let t = per.entry(e.tenant.as_str()).or_default();
            *t.0.entry(e.trend_identity()).or_default() += 1;
            t.1 += amount(e);
        }
    }
    let cap = policy.payer_cap(w);
    let mut out: Vec<TopEntry> = per
        .into_iter()
        .map(|(tenant, (ids, revenue))| {
            let calls = ids.values().map(|n| capped(*n, cap)).sum();
            TopEntry {
                tenant: tenant.into(),
                calls,
                payers: ids.len() as u64,
                revenue_atomic: revenue.to_string(),
                score: calls,
            }
        })
        .filter(|e| e.calls > 0)
        .collect();
    out.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(b.payers.cmp(&a.payers))
            .then(a.tenant.cmp(&b.tenant))
    });
    out
}

fn exact_series(events: &[UsageEvent], tenant: &str, w: Window, now: i64) -> Vec<SeriesPoint> {
    let g = w.grain();
    let (first, last) = window_range(w, now);
    let mut points = Vec::new();
    let mut start = first;
    while start <= last {
        let inb: Vec<_> = events
            .iter()
            .filter(|e| e.tenant == tenant && model_counts(e))
            .filter(|e| bucket_start(e.time_ms, g) == start)
            .collect();
        points.push(SeriesPoint {
            start_ms: start,
            calls: inb.len() as u64,
            payers: inb
                .iter()
                .map(|e| e.trend_identity())
                .collect::<BTreeSet<_>>()
                .len() as u64,
            revenue_atomic: inb.iter().map(|e| amount(e)).sum::<u128>().to_string(),
        });
        start += g.ms();
    }
    points
}

/// (tenant, time offset, arrival delay, payer, kind, amount, self-dealing)
type Spec = (usize, i64, i64, u32, u8, u128, bool);

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..TENANTS.len(),
        0..9 * DAY,
        prop_oneof![3 => Just(0i64), 1 => 0..2 * HOUR],
        0u32..6,
        0u8..10,
        1u128..1_000,
        proptest::bool::weighted(0.1),
    )
}

/// Builds the event of a spec. `countable_only` turns every spec into a countable,
/// non-self-dealing call; otherwise kinds 0..=5 are countable calls and the rest are
/// challenges, rate limits and failures.
fn build(i: usize, s: &Spec, base: i64, countable_only: bool) -> (i64, UsageEvent) {
    let (t, off, delay, payer, kind, amt, selfish) = *s;
    let (slug, free) = TENANTS[t];
    let time = base + off;
    let kind = if countable_only { kind % 6 } else { kind };
    let id = format!("e{i}");
    let e = if free {
        let stage = match kind {
            0..=5 => Stage::Served,
            6 | 7 => Stage::RateLimited,
            _ => Stage::Error,
        };
        event(&id, slug, time, stage, true, payer, None, 0, false)
    } else {
        let stage = match kind {
            0..=5 => Stage::Settled,
            6 => Stage::Challenged,
            7 => Stage::RateLimited,
            8 => Stage::VerifyFailed,
            _ => Stage::SettlementFailed,
        };
        let payer_id = matches!(stage, Stage::Settled | Stage::SettlementFailed).then_some(payer);
        event(
            &id,
            slug,
            time,
            stage,
            false,
            payer + 100,
            payer_id,
            amt,
            selfish && !countable_only,
        )
    };
    (time + delay, e)
}

/// Delivers events in arrival order, in chunks, running alarms with the given fates in
/// between (with duplicate deliveries), then settles at `end`.
fn run(
    sim: &mut Sim,
    mut arrivals: Vec<(i64, UsageEvent)>,
    plan: &[(usize, Fate, bool)],
    end_extra: i64,
) -> i64 {
    arrivals.sort_by_key(|(at, e)| (*at, e.id.clone()));
    let mut now = T0;
    let mut rest = arrivals.as_slice();
    let mut step = 0;
    while !rest.is_empty() {
        let (size, fate, dup) =
            plan.get(step % plan.len().max(1))
                .copied()
                .unwrap_or((5, Fate::Delivered, false));
        step += 1;
        let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        rest = tail;
        now = now.max(chunk.iter().map(|(at, _)| *at).max().unwrap_or(now));
        let batch: Vec<_> = chunk.iter().map(|(_, e)| e.clone()).collect();
        sim.ingest(&batch, now);
        if dup {
            sim.ingest(&batch, now);
        }
        for i in 0..TENANTS.len() {
            sim.alarm(i, now, fate);
        }
    }
    let end = now + end_extra;
    sim.settle(end);
    end
}

fn check_exact(sim: &mut Sim, events: &[UsageEvent], end: i64) -> Result<(), TestCaseError> {
    let policy = sim.policy;
    for w in Window::ALL {
        prop_assert_eq!(
            sim.top(w, end),
            exact_top(events, w, end, &policy),
            "{:?}",
            w
        );
        for (slug, _) in TENANTS {
            prop_assert_eq!(sim.series(slug, w, end), exact_series(events, slug, w, end));
        }
    }
    Ok(())
}

fn big_caps() -> TrendPolicy {
    TrendPolicy {
        payer_cap_1h: 1_000_000,
        payer_cap_24h: 1_000_000,
        payer_cap_7d: 1_000_000,
        max_payers_per_bucket: 1_000,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Under the caps, rolled-up rankings and series equal a plain count of the countable
    /// calls, whatever the arrival order, duplicates and lost, repeated or late rollups.
    #[test]
    fn rollups_equal_an_exact_count_under_caps(
        specs in proptest::collection::vec(spec(), 0..80),
        plan in proptest::collection::vec((1usize..12, fate(), proptest::bool::weighted(0.2)), 1..8),
        end_extra in prop_oneof![Just(0i64), 0..3 * HOUR, 0..8 * DAY],
    ) {
        let arrivals: Vec<_> = specs.iter().enumerate().map(|(i, s)| build(i, s, T0, false)).collect();
        let events: Vec<_> = arrivals.iter().map(|(_, e)| e.clone()).collect();
        let mut sim = Sim::new(big_caps());
        let end = run(&mut sim, arrivals, &plan, end_extra);
        // Under the caps, ranked calls are simply the countable calls in the window.
        for w in Window::ALL {
            let top = sim.top(w, end);
            for entry in &top {
                let plain = events.iter()
                    .filter(|e| e.tenant == entry.tenant && model_counts(e))
                    .filter(|e| covers(w, bucket_start(e.time_ms, w.grain()), end))
                    .count() as u64;
                prop_assert_eq!(entry.calls, plain);
            }
        }
        check_exact(&mut sim, &events, end)?;
    }

    /// With small caps, rankings equal the exact capped count.
    #[test]
    fn rollups_equal_the_exact_capped_count(
        specs in proptest::collection::vec(spec(), 0..80),
        plan in proptest::collection::vec((1usize..12, fate(), proptest::bool::weighted(0.2)), 1..8),
        end_extra in prop_oneof![Just(0i64), 0..3 * HOUR],
    ) {
        let arrivals: Vec<_> = specs.iter().enumerate().map(|(i, s)| build(i, s, T0 + 2 * DAY, true)).collect();
        let events: Vec<_> = arrivals.iter().map(|(_, e)| e.clone()).collect();
        let mut sim = Sim::new(small_caps());
        let end = run(&mut sim, arrivals, &plan, end_extra);
        check_exact(&mut sim, &events, end)?;
    }

    /// Challenges, rate limits, failed verifications and settlements, errors and
    /// self-dealing calls never move a ranking or a series.
    #[test]
    fn non_countable_events_never_move_a_ranking(
        base in proptest::collection::vec(spec(), 0..50),
        noise in proptest::collection::vec(spec(), 1..50),
        plan in proptest::collection::vec((1usize..12, fate(), proptest::bool::weighted(0.2)), 1..8),
    ) {
        let clean: Vec<_> = base.iter().enumerate().map(|(i, s)| build(i, s, T0, true)).collect();
        let mut noisy = clean.clone();
        for (j, s) in noise.iter().enumerate() {
            let (at, e) = build(10_000 + j, s, T0, false);
            // Keep only the noise: the kinds and self-dealing calls never counted.
            if !model_counts(&e) {
                noisy.push((at, e));
            }
        }
        let last = noisy.iter().chain(&clean).map(|(at, _)| *at).max().unwrap_or(T0);
        let mut a = Sim::new(small_caps());
        let mut b = Sim::new(small_caps());
        run(&mut a, clean, &[(7, Fate::Delivered, false)], 0);
        let end_b = run(&mut b, noisy, &plan, 0);
        let end = end_b.max(last);
        a.settle(end);
        b.settle(end);
        for w in Window::ALL {
            prop_assert_eq!(a.top(w, end), b.top(w, end));
            for (slug, _) in TENANTS {
                prop_assert_eq!(a.series(slug, w, end), b.series(slug, w, end));
            }
        }
    }
}
