//! Property tests of the limiter against an independent model, on in-memory SQLite.

use proptest::prelude::*;

use super::shard::{global_shard_policy, split};
use super::*;
use crate::memsql::MemSql;
use crate::tenant::{Rate, MAX_BURST, MAX_RATE_LIMIT, MAX_WINDOW_S};

/// The reference: a token bucket with exact rational tokens, written without any of the
/// GCRA code. Tokens are scaled by `unit = 1000 * window_s` (one token = `unit`); the bucket
/// holds `burst + 1` tokens and refills `limit` scaled tokens per ms. For a clock that only
/// moves forward it is the same policy as GCRA, stated the other way round.
#[derive(Clone)]
struct Bucket {
    unit: i128,
    cap: i128,
    per_ms: i128,
    tokens: i128,
    at_ms: Option<i64>,
}

impl Bucket {
    fn new(p: &GcraPolicy) -> Self {
        let unit = 1_000 * i128::from(p.window_s());
        let cap = (i128::from(p.burst()) + 1) * unit;
        Bucket {
            unit,
            cap,
            per_ms: i128::from(p.limit()),
            tokens: cap,
            at_ms: None,
        }
    }

    fn offer(&mut self, now_ms: i64, cost: u32) -> Decision {
        if let Some(at) = self.at_ms {
            assert!(now_ms >= at, "the model takes a forward clock");
            self.tokens = (self.tokens + i128::from(now_ms - at) * self.per_ms).min(self.cap);
        }
        self.at_ms = Some(now_ms);
        let need = i128::from(cost) * self.unit;
        let allowed = self.tokens >= need;
        if allowed {
            self.tokens -= need;
        }
        let up = |x: i128| u64::try_from((x + self.per_ms - 1) / self.per_ms).unwrap();
        let whole = self.tokens / self.unit;
        Decision {
            allowed,
            limit: u32::try_from(self.per_ms).unwrap(),
            remaining: u32::try_from(whole).unwrap(),
            reset_after_ms: up(self.cap - self.tokens),
            refill_after_ms: if self.tokens == self.cap {
                0
            } else {
                up((whole + 1) * self.unit - self.tokens)
            },
            retry_after_ms: (!allowed).then(|| up(need - self.tokens)),
        }
    }
}

/// Largest admitted cost in any half-open window `[t, t + window_ms)`; `admitted` must be
/// sorted by time.
fn max_window_cost(admitted: &[(i64, u32)], window_ms: i64) -> u64 {
    let mut best = 0;
    for (i, &(start, _)) in admitted.iter().enumerate() {
        let sum: u64 = admitted[i..]
            .iter()
            .take_while(|(t, _)| *t < start + window_ms)
            .map(|(_, c)| u64::from(*c))
            .sum();
        best = best.max(sum);
    }
    best
}

fn policy() -> impl Strategy<Value = GcraPolicy> {
    (
        prop_oneof![4 => 1u32..=40, 1 => 1u32..=MAX_RATE_LIMIT],
        prop_oneof![4 => 1u32..=5, 1 => 1u32..=120],
        prop_oneof![2 => Just(0u32), 3 => 0u32..=8],
    )
        .prop_map(|(l, w, b)| GcraPolicy::new(l, w, b).unwrap())
}

/// Gaps between arrivals: many zero (simultaneous requests), some short, some long.
fn gap() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => Just(0i64),
        3 => 0i64..50,
        2 => 0i64..3_000,
        1 => 0i64..200_000,
    ]
}

/// One arrival: gap since the previous, cost wish (clamped to the capacity), key index,
/// and whether the object "restarts" (new `Limiter` on the same store) before it.
fn arrivals() -> impl Strategy<Value = Vec<(i64, u32, usize, bool)>> {
    prop::collection::vec(
        (gap(), 1u32..=3, 0usize..3, prop::bool::weighted(0.1)),
        1..200,
    )
}

fn start() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        0i64..2_000_000_000_000,
        Just(MAX_NOW_MS - 1_000_000_000)
    ]
}

/// `a <= b` as rational times.
fn tat_le(a: &Tat, b: &Tat) -> bool {
    let lhs =
        (i128::from(a.ms()) * i128::from(a.den()) + i128::from(a.frac())) * i128::from(b.den());
    let rhs =
        (i128::from(b.ms()) * i128::from(b.den()) + i128::from(b.frac())) * i128::from(a.den());
    lhs <= rhs
}

const KEYS: [&str; 3] = ["t/caller/ip:192.0.2.1", "t/caller/anon", "t/global/0"];

proptest! {
    /// (a) window bound, (b) identical to the model field by field, (c) refusals leave the
    /// row untouched, (d) restarts (a new Limiter over the same store) lose nothing.
    #[test]
    fn matches_model_and_bounds_every_window(
        pol in policy(),
        t0 in start(),
        arr in arrivals(),
    ) {
        let mut db = MemSql::new();
        let mut models = vec![Bucket::new(&pol); KEYS.len()];
        let mut admitted: Vec<Vec<(i64, u32)>> = vec![Vec::new(); KEYS.len()];
        let mut now = t0;
        let mut lim = Limiter::open(&mut db).unwrap();
        for (gap, cost, k, restart) in arr {
            if restart {
                // The old limiter is gone; the new one sees only what the store kept.
                lim = Limiter::open(&mut db).unwrap();
            }
            now += gap;
            let cost = cost.min(pol.capacity());
            let key = KEYS[k];
            let before = lim.tat(key).unwrap();
            let got = lim.check(key, &pol, now, cost).unwrap();
            let after = lim.tat(key).unwrap();
            prop_assert_eq!(got, models[k].offer(now, cost));
            if got.allowed {
                admitted[k].push((now, cost));
                let after = after.unwrap();
                prop_assert!(before.is_none_or(|b| tat_le(&b, &after) && b != after));
            } else {
                prop_assert_eq!(before, after);
            }
        }
        let window_ms = i64::from(pol.window_s()) * 1_000;
        let bound = u64::from(pol.limit()) + u64::from(pol.burst());
        for a in &admitted {
            prop_assert!(max_window_cost(a, window_ms) <= bound);
        }
    }

    /// Retry, reset and refill times are exact to the millisecond.
    #[test]
    fn reported_times_are_exact(pol in policy(), t0 in start(), arr in arrivals()) {
        let mut tat = None;
        let mut now = t0;
        for (gap, cost, _, _) in arr {
            now += gap;
            let cost = cost.min(pol.capacity());
            let o = decide(&pol, tat, now, cost).unwrap();
            let d = o.decision;
            if let Some(new) = o.new_tat {
                tat = Some(new);
            }
            let at = |dt: u64, c: u32| {
                decide(&pol, tat, now + i64::try_from(dt).unwrap(), c).unwrap().decision.allowed
            };
            if let Some(retry) = d.retry_after_ms {
                prop_assert!(!d.allowed && retry >= 1);
                prop_assert!(at(retry, cost));
                prop_assert!(!at(retry - 1, cost));
                if cost == 1 {
                    prop_assert_eq!(retry, d.refill_after_ms);
                }
            }
            // Idle again (the full capacity fits) exactly at the reset time.
            prop_assert!(at(d.reset_after_ms, pol.capacity()));
            if d.reset_after_ms > 0 {
                prop_assert!(!at(d.reset_after_ms - 1, pol.capacity()));
            }
            // `remaining` fits now, one more fits exactly at the refill time.
            prop_assert!(d.remaining <= pol.capacity());
            if d.remaining > 0 {
                prop_assert!(at(0, d.remaining));
            }
            if d.remaining < pol.capacity() {
                prop_assert!(d.refill_after_ms > 0);
                prop_assert!(at(d.refill_after_ms, d.remaining + 1));
                prop_assert!(!at(d.refill_after_ms - 1, d.remaining + 1));
            } else {
                prop_assert_eq!(d.refill_after_ms, 0);
            }
        }
    }

    /// A clock that jumps backwards never over-admits: re-timed at the latest reading seen,
    /// the admitted requests still meet the window bound, and the TAT never moves back.
    #[test]
    fn backwards_clock_never_over_admits(
        pol in policy(),
        t0 in 0i64..2_000_000_000_000,
        steps in prop::collection::vec((-5_000i64..3_000, 1u32..=3), 1..200),
    ) {
        let mut db = MemSql::new();
        let mut lim = Limiter::open(&mut db).unwrap();
        let mut now = t0;
        let mut latest = 0;
        let mut admitted = Vec::new();
        let mut prev: Option<Tat> = None;
        for (step, cost) in steps {
            now = (now + step).max(0);
            // The largest reading seen so far, requests included (t0 is not one).
            latest = latest.max(now);
            let cost = cost.min(pol.capacity());
            let d = lim.check("k", &pol, now, cost).unwrap();
            let tat = lim.tat("k").unwrap();
            if d.allowed {
                admitted.push((latest, cost));
            }
            if let (Some(p), Some(t)) = (prev, tat) {
                prop_assert!(tat_le(&p, &t));
            }
            prev = tat;
        }
        let window_ms = i64::from(pol.window_s()) * 1_000;
        let bound = u64::from(pol.limit()) + u64::from(pol.burst());
        prop_assert!(max_window_cost(&admitted, window_ms) <= bound);
    }

    /// Pruning keys older than the current reading changes no decision.
    #[test]
    fn pruning_is_invisible(
        pol in policy(),
        t0 in start(),
        arr in arrivals(),
        slack in 0i64..100_000,
    ) {
        let mut db = MemSql::new();
        let mut model = Bucket::new(&pol);
        let mut now = t0;
        let mut lim = Limiter::open(&mut db).unwrap();
        for (gap, cost, _, prune) in arr {
            now += gap;
            if prune {
                let latest = lim.prune((now - slack).max(0)).unwrap();
                if let Some(ms) = latest {
                    prop_assert!(ms >= now - slack);
                }
            }
            let cost = cost.min(pol.capacity());
            prop_assert_eq!(lim.check("k", &pol, now, cost).unwrap(), model.offer(now, cost));
        }
    }

    /// The sharded global limit: whatever the routing, the shards together never admit
    /// more than `limit + burst` in any window.
    #[test]
    fn shards_together_respect_the_global_bound(
        limit in 1u32..=60,
        window_s in 1u32..=4,
        burst in 0u32..=10,
        shards_wish in 1u32..=8,
        arr in prop::collection::vec((gap(), 0u32..8), 1..300),
    ) {
        let rate = Rate::new(limit, window_s).unwrap();
        let shards = shards_wish.min(limit);
        let policies: Vec<GcraPolicy> = (0..shards)
            .map(|i| global_shard_policy(&rate, burst, shards, i).unwrap())
            .collect();
        prop_assert_eq!(policies.iter().map(|p| p.limit()).sum::<u32>(), limit);
        prop_assert_eq!(policies.iter().map(|p| p.burst()).sum::<u32>(), burst);
        let mut stores: Vec<MemSql> = (0..shards).map(|_| MemSql::new()).collect();
        let mut now = 1_700_000_000_000i64;
        let mut admitted = Vec::new();
        for (gap, route) in arr {
            now += gap;
            let i = route % shards;
            let idx = usize::try_from(i).unwrap();
            let key = identity::global_object_name("t", i);
            let mut lim = Limiter::open(&mut stores[idx]).unwrap();
            if lim.check(&key, &policies[idx], now, 1).unwrap().allowed {
                admitted.push((now, 1));
            }
        }
        let window_ms = i64::from(window_s) * 1_000;
        prop_assert!(max_window_cost(&admitted, window_ms) <= u64::from(limit) + u64::from(burst));
    }

    /// Any valid policy at any valid clock reading stores exactly (within 2^53) and never
    /// fails; policies may change between requests without the TAT moving back.
    #[test]
    fn extreme_and_changing_policies_never_fail(
        steps in prop::collection::vec(
            (
                1u32..=MAX_RATE_LIMIT,
                1u32..=MAX_WINDOW_S,
                0u32..=MAX_BURST,
                0i64..1_000_000_000,
                1u32..=3,
            ),
            1..40,
        ),
        t0 in prop_oneof![Just(0i64), 0i64..=MAX_NOW_MS],
    ) {
        let mut db = MemSql::new();
        let mut lim = Limiter::open(&mut db).unwrap();
        let mut now = t0;
        let mut prev: Option<Tat> = None;
        for (limit, window_s, burst, gap, cost) in steps {
            now = (now + gap).min(MAX_NOW_MS);
            let pol = GcraPolicy::new(limit, window_s, burst).unwrap();
            let cost = cost.min(pol.capacity());
            lim.check("k", &pol, now, cost).unwrap();
            let tat = lim.tat("k").unwrap();
            if let (Some(p), Some(t)) = (prev, tat) {
                prop_assert!(tat_le(&p, &t));
            }
            prev = tat;
        }
    }

    #[test]
    fn split_sums_to_total(total in any::<u32>(), shards in 1u32..=64) {
        let sum: u64 = (0..shards).map(|i| u64::from(split(total, shards, i).unwrap())).sum();
        prop_assert_eq!(sum, u64::from(total));
    }
}

#[test]
fn first_request_always_fits_and_state_survives_a_new_limiter() {
    let pol = GcraPolicy::new(1, 60, 0).unwrap();
    let mut db = MemSql::new();
    // Each check opens a new limiter over the same storage (an evicted and re-created object).
    let mut check_at = |now_ms| {
        Limiter::open(&mut db)
            .unwrap()
            .check("k", &pol, now_ms, 1)
            .unwrap()
    };
    assert!(check_at(1_000).allowed);
    // A new limiter still refuses for a minute.
    let d = check_at(2_000);
    assert!(!d.allowed);
    assert_eq!(d.retry_after_ms, Some(59_000));
    assert!(check_at(61_000).allowed);
}

#[test]
fn prune_keeps_live_keys_and_reports_the_latest() {
    let pol = GcraPolicy::new(1, 10, 0).unwrap();
    let mut db = MemSql::new();
    let mut lim = Limiter::open(&mut db).unwrap();
    lim.check("a", &pol, 0, 1).unwrap(); // TAT 10,000
    lim.check("b", &pol, 5_000, 1).unwrap(); // TAT 15,000
    assert_eq!(lim.prune(10_000).unwrap(), Some(15_000));
    assert!(lim.tat("a").unwrap().is_some());
    assert_eq!(lim.prune(10_001).unwrap(), Some(15_000));
    assert!(lim.tat("a").unwrap().is_none());
    assert_eq!(lim.prune(20_000).unwrap(), None);
    assert_eq!(
        lim.prune(i64::MAX),
        Err(LimiterError::Store(StoreError::IntegerOutOfRange(i64::MAX)))
    );
}

#[test]
fn corrupt_rows_are_errors_not_panics() {
    let mut db = MemSql::new();
    Limiter::open(&mut db).unwrap();
    db.exec(
        "INSERT INTO gcra (key, tat_ms, tat_frac, tat_den) VALUES ('k', 5, 1, 3)",
        &[],
    )
    .unwrap();
    assert!(db
        .exec(
            "INSERT INTO gcra (key, tat_ms, tat_frac, tat_den) VALUES ('x', 5, 3, 3)",
            &[],
        )
        .is_err());
    db.exec(
        "INSERT INTO gcra (key, tat_ms, tat_frac, tat_den) VALUES ('y', 5, 1, 5000000000)",
        &[],
    )
    .unwrap();
    let mut lim = Limiter::open(&mut db).unwrap();
    assert_eq!(lim.tat("k").unwrap(), Tat::new(5, 1, 3));
    assert!(matches!(lim.tat("y"), Err(LimiterError::Corrupt { .. })));
}

#[test]
fn invalid_keys_are_refused() {
    let pol = GcraPolicy::new(1, 1, 0).unwrap();
    let mut db = MemSql::new();
    let mut lim = Limiter::open(&mut db).unwrap();
    for key in ["", "a\nb", &"x".repeat(MAX_KEY_BYTES + 1)] {
        assert_eq!(lim.check(key, &pol, 0, 1), Err(LimiterError::InvalidKey));
    }
    assert!(lim.check(&"x".repeat(MAX_KEY_BYTES), &pol, 0, 1).is_ok());
}

#[test]
fn caller_policy_from_tenant_config() {
    let mut p = RateLimitPolicy::default();
    assert_eq!(caller_policy(&p), Ok(None));
    p.per_caller = Some(Rate::new(100, 60).unwrap());
    p.burst = Some(20);
    let pol = caller_policy(&p).unwrap().unwrap();
    assert_eq!((pol.limit(), pol.window_s(), pol.burst()), (100, 60, 20));
    p.burst = None;
    assert_eq!(caller_policy(&p).unwrap().unwrap().burst(), 0);
}

mod check_route {
    use super::*;
    use crate::problem::Problem;

    fn check(db: &mut MemSql, body: &str, now_ms: i64) -> Result<Decision, Box<Problem>> {
        handle_check(db, body.as_bytes(), now_ms).map_err(|e| Box::new(Problem::from(e)))
    }

    #[test]
    fn decides_and_persists() {
        let mut db = MemSql::new();
        let body = r#"{"key":"demo/caller/anon","limit":2,"windowS":1,"burst":0,"cost":1}"#;
        let d = check(&mut db, body, 1_000).unwrap();
        assert!(d.allowed);
        let d = check(&mut db, body, 1_001).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, Some(499));
        // Defaults: burst 0, cost 1.
        let d = check(&mut db, r#"{"key":"other","limit":2,"windowS":1}"#, 1_001).unwrap();
        assert!(d.allowed);
        let json = serde_json::to_value(d).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "allowed": true, "limit": 2, "remaining": 0,
                "resetAfterMs": 500, "refillAfterMs": 500
            })
        );
        let refused = check(&mut db, r#"{"key":"other","limit":2,"windowS":1}"#, 1_001).unwrap();
        assert_eq!(
            serde_json::to_value(refused).unwrap()["retryAfterMs"],
            serde_json::json!(500)
        );
    }

    #[test]
    fn request_round_trips() {
        let pol = GcraPolicy::new(7, 9, 2).unwrap();
        let req = CheckRequest::new("k", &pol, 3);
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(
            json,
            r#"{"key":"k","limit":7,"windowS":9,"burst":2,"cost":3}"#
        );
        let (back, p) = CheckRequest::parse(json.as_bytes()).unwrap();
        assert_eq!((back, p), (req, pol));
    }

    fn problem(body: &str) -> Box<Problem> {
        check(&mut MemSql::new(), body, 1_000).unwrap_err()
    }

    #[test]
    fn invalid_bodies_are_precise_problems() {
        let p = problem("not json");
        assert_eq!((p.status, &*p.code), (400, "invalid_body"));
        let p = problem(r#"{"key":"k","limit":-1,"windowS":1}"#);
        assert_eq!(
            (p.status, &*p.code, p.field.as_deref()),
            (400, "invalid_body", Some("limit"))
        );
        let p = problem(r#"{"key":"k","limit":1,"windowS":1,"extra":1}"#);
        assert_eq!(p.code, "invalid_body");
        let p = problem(r#"{"limit":1,"windowS":1}"#);
        assert_eq!(p.code, "invalid_body");
        let p = problem(r#"{"key":"k","limit":0,"windowS":1}"#);
        assert_eq!(
            (&*p.code, p.field.as_deref()),
            ("invalid_field", Some("limit"))
        );
        let p = problem(r#"{"key":"k","limit":1,"windowS":0}"#);
        assert_eq!(p.field.as_deref(), Some("windowS"));
        let p = problem(r#"{"key":"k","limit":1,"windowS":1,"burst":1000001}"#);
        assert_eq!(p.field.as_deref(), Some("burst"));
        let p = problem(r#"{"key":"","limit":1,"windowS":1}"#);
        assert_eq!(
            (&*p.code, p.field.as_deref()),
            ("invalid_field", Some("key"))
        );
        let p = problem(r#"{"key":"k","limit":1,"windowS":1,"burst":1,"cost":3}"#);
        assert_eq!(
            (p.status, &*p.code, p.field.as_deref()),
            (400, "cost_exceeds_capacity", Some("cost"))
        );
        let p = problem(r#"{"key":"k","limit":1,"windowS":1,"cost":0}"#);
        assert_eq!(p.code, "cost_exceeds_capacity");
        let big = format!(
            r#"{{"key":"{}","limit":1,"windowS":1}}"#,
            "k".repeat(MAX_CHECK_BODY_BYTES)
        );
        let p = problem(&big);
        assert_eq!((p.status, &*p.code), (413, "body_too_large"));
    }

    #[test]
    fn a_bad_clock_is_an_internal_error() {
        let p = check(
            &mut MemSql::new(),
            r#"{"key":"k","limit":1,"windowS":1}"#,
            -5,
        )
        .unwrap_err();
        assert_eq!((p.status, &*p.code), (500, "internal_error"));
    }
}
