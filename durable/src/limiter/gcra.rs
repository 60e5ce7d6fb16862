//! GCRA arithmetic: exact, in integers, with no clock and no storage.
//!
//! # Units
//!
//! A policy allows `limit` units per `window_s` seconds. Its emission interval
//! `T = window_s * 1000 / limit` ms is rarely a whole number of milliseconds, so the
//! arithmetic runs in *ticks* of `1 / limit` ms: then `T = window_s * 1000` ticks exactly, a
//! clock reading of `now_ms` is `now_ms * limit` ticks, and nothing is ever rounded inside
//! one policy. Everything is `i128` (a tick count is at most about 2^83).
//!
//! # The rule
//!
//! State is one theoretical arrival time `TAT` per key (absent = never used). A request of
//! `cost` units at `now` is admitted iff
//!
//! ```text
//! max(TAT, now) + cost * T - now <= (burst + 1) * T
//! ```
//!
//! and then, only then, `TAT := max(TAT, now) + cost * T`. A refusal leaves `TAT` untouched,
//! so retrying while refused never pushes the limit further out.
//!
//! # Burst
//!
//! `burst` is the number of extra units a caller may use *at once* above the steady rate:
//! an idle key admits `burst + 1` units at the same instant, then one unit per `T`. With
//! `burst = 0` the policy is a strict pacer (one unit per `T`, never two at once).
//!
//! # The guarantee
//!
//! In every half-open interval `[s, s + window_s)` the admitted cost is at most
//! `limit + burst`. (Proof sketch: `x = max(0, TAT - t)` is a bucket that drains one tick
//! per tick; each admission adds `cost * T` and leaves `x <= (burst + 1) * T`. Between the
//! first and the last admission of the interval, fewer than `window_s * 1000 * limit =
//! limit * T` ticks elapse, so the admitted cost is below `burst + 1 + limit`.)
//! Conversely, a request is refused only when the rule above refuses it: there is no other
//! source of refusal, so any sequence the rule allows is admitted in full.
//!
//! # A clock that goes backwards
//!
//! `TAT` never decreases and, after any request, exceeds every clock reading seen so far
//! (an admitted request sets it above `now`; a refusal implies it already was, because a
//! valid cost always fits an idle key). So a reading that went backwards only makes the
//! admission test stricter: re-timing every request at the largest reading seen so far
//! gives a sequence that still meets the guarantee above.

use serde::{Deserialize, Serialize};

use super::LimiterError;
use crate::tenant::{Rate, MAX_BURST, MAX_RATE_LIMIT, MAX_WINDOW_S};

const MS_PER_S: i128 = 1_000;

/// Latest clock reading accepted, in ms since the epoch (about the year 128,700). With the
/// longest possible backlog (`(MAX_BURST + 1) * MAX_WINDOW_S` seconds, about 2.6e15 ms) a
/// stored TAT stays below 2^53, so it crosses Durable Object SQL exactly.
pub const MAX_NOW_MS: i64 = 4_000_000_000_000_000;

/// A validated GCRA policy: `limit` units per `window_s` seconds plus `burst` extra units
/// at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraPolicy {
    limit: u32,
    window_s: u32,
    burst: u32,
}

impl GcraPolicy {
    /// Checks the same ranges as the tenant config: `limit` 1 to [`MAX_RATE_LIMIT`],
    /// `window_s` 1 to [`MAX_WINDOW_S`], `burst` at most [`MAX_BURST`].
    pub fn new(limit: u32, window_s: u32, burst: u32) -> Result<Self, LimiterError> {
        if !(1..=MAX_RATE_LIMIT).contains(&limit) {
            return Err(LimiterError::InvalidPolicy {
                field: "limit",
                reason: format!("must be 1 to {MAX_RATE_LIMIT}"),
            });
        }
        if !(1..=MAX_WINDOW_S).contains(&window_s) {
            return Err(LimiterError::InvalidPolicy {
                field: "windowS",
                reason: format!("must be 1 to {MAX_WINDOW_S}"),
            });
        }
        if burst > MAX_BURST {
            return Err(LimiterError::InvalidPolicy {
                field: "burst",
                reason: format!("must be at most {MAX_BURST}"),
            });
        }
        Ok(GcraPolicy {
            limit,
            window_s,
            burst,
        })
    }

    pub fn from_rate(rate: &Rate, burst: u32) -> Result<Self, LimiterError> {
        GcraPolicy::new(rate.limit, rate.window_s, burst)
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn window_s(&self) -> u32 {
        self.window_s
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Units an idle key admits at once, `burst + 1`: also the largest cost a single
    /// request may have.
    pub fn capacity(&self) -> u32 {
        // burst <= MAX_BURST, so this cannot overflow.
        self.burst.saturating_add(1)
    }

    /// Ticks per millisecond.
    fn ticks_per_ms(&self) -> i128 {
        i128::from(self.limit)
    }

    /// The emission interval `T`, in ticks.
    fn interval(&self) -> i128 {
        i128::from(self.window_s) * MS_PER_S
    }

    /// The largest backlog an admission may leave, `(burst + 1) * T`, in ticks.
    fn tolerance(&self) -> i128 {
        i128::from(self.capacity()) * self.interval()
    }

    fn check_cost(&self, cost: u32) -> Result<(), LimiterError> {
        if cost == 0 || cost > self.capacity() {
            return Err(LimiterError::InvalidCost {
                cost,
                capacity: self.capacity(),
            });
        }
        Ok(())
    }
}

/// A theoretical arrival time, `ms + frac / den` milliseconds since the epoch. Stored as
/// three integers so it is exact for any policy; `den` is the `limit` of the policy that
/// wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tat {
    ms: i64,
    frac: u32,
    den: u32,
}

impl Tat {
    /// `None` unless `den >= 1` and `frac < den`.
    pub fn new(ms: i64, frac: u32, den: u32) -> Option<Tat> {
        (den >= 1 && frac < den).then_some(Tat { ms, frac, den })
    }

    pub fn ms(&self) -> i64 {
        self.ms
    }

    pub fn frac(&self) -> u32 {
        self.frac
    }

    pub fn den(&self) -> u32 {
        self.den
    }

    /// This time in `policy`'s ticks. Exact when `den` is the policy's limit (the normal
    /// case); after a policy change the fraction is rounded *up* to the next tick, so the
    /// conversion can only make the limiter stricter, by less than one tick.
    fn to_ticks(self, policy: &GcraPolicy) -> i128 {
        let per_ms = policy.ticks_per_ms();
        let whole = i128::from(self.ms) * per_ms;
        if self.den == policy.limit {
            whole + i128::from(self.frac)
        } else {
            whole + ceil_div(i128::from(self.frac) * per_ms, i128::from(self.den))
        }
    }

    fn from_ticks(ticks: i128, policy: &GcraPolicy) -> Result<Tat, LimiterError> {
        let per_ms = policy.ticks_per_ms();
        let ms = i64::try_from(ticks.div_euclid(per_ms)).map_err(|_| LimiterError::Overflow)?;
        let frac = u32::try_from(ticks.rem_euclid(per_ms)).map_err(|_| LimiterError::Overflow)?;
        Tat::new(ms, frac, policy.limit).ok_or(LimiterError::Overflow)
    }
}

/// What the limiter decided for one request, and the state it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub allowed: bool,
    /// The policy's `limit` (units per window).
    pub limit: u32,
    /// Units the key could use right now, after this decision (0 to `burst + 1`).
    pub remaining: u32,
    /// Until the key is idle again (`remaining == burst + 1`), rounded up to a ms.
    pub reset_after_ms: u64,
    /// Until `remaining` next grows by one unit, rounded up to a ms; 0 when idle.
    pub refill_after_ms: u64,
    /// Refusals only: the earliest whole ms from now at which the same request (same
    /// cost) would be admitted, if nothing else is admitted meanwhile. Exact: one ms
    /// earlier it would still be refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// A decision plus the TAT to persist; `new_tat` is `Some` exactly when admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    pub new_tat: Option<Tat>,
}

/// Checks a clock reading is one the limiter can store exactly.
pub fn check_now(now_ms: i64) -> Result<(), LimiterError> {
    if (0..=MAX_NOW_MS).contains(&now_ms) {
        Ok(())
    } else {
        Err(LimiterError::ClockOutOfRange(now_ms))
    }
}

/// Decides one request against the stored `TAT` (`None`: the key was never used or was
/// pruned). Pure: the caller persists `new_tat` when it is `Some`.
pub fn decide(
    policy: &GcraPolicy,
    stored: Option<Tat>,
    now_ms: i64,
    cost: u32,
) -> Result<Outcome, LimiterError> {
    check_now(now_ms)?;
    policy.check_cost(cost)?;
    let per_ms = policy.ticks_per_ms();
    let interval = policy.interval();
    let tolerance = policy.tolerance();
    let now = i128::from(now_ms) * per_ms;
    let base = stored.map_or(now, |tat| tat.to_ticks(policy).max(now));
    let candidate = base + i128::from(cost) * interval;
    let allowed = candidate - now <= tolerance;
    let tat = if allowed { candidate } else { base };
    // Never negative: `base >= now`.
    let backlog = tat - now;
    debug_assert!(backlog >= 0);
    debug_assert!(!allowed || backlog <= tolerance);
    let remaining = (tolerance - backlog).max(0) / interval;
    let refill = if backlog == 0 {
        0
    } else {
        // The backlog at which one more unit fits, minus the backlog now; in (0, T] unless
        // the clock went backwards past the tolerance.
        backlog - (tolerance - (remaining + 1) * interval)
    };
    debug_assert!(refill >= 0);
    let retry_after_ms = if allowed {
        None
    } else {
        // Admitted at `t` iff candidate - t <= tolerance (the state does not change while
        // refused, and `base > now` here, so `max(TAT, t)` stays `base` until then).
        let wait = candidate - now - tolerance;
        debug_assert!(wait > 0);
        Some(to_u64(ceil_div(wait, per_ms))?)
    };
    let decision = Decision {
        allowed,
        limit: policy.limit,
        remaining: u32::try_from(remaining).map_err(|_| LimiterError::Overflow)?,
        reset_after_ms: to_u64(ceil_div(backlog, per_ms))?,
        refill_after_ms: to_u64(ceil_div(refill, per_ms))?,
        retry_after_ms,
    };
    let new_tat = if allowed {
        Some(Tat::from_ticks(candidate, policy)?)
    } else {
        None
    };
    Ok(Outcome { decision, new_tat })
}

/// `ceil(a / b)` for `a >= 0`, `b > 0`.
fn ceil_div(a: i128, b: i128) -> i128 {
    debug_assert!(a >= 0 && b > 0);
    (a + b - 1).div_euclid(b)
}

fn to_u64(v: i128) -> Result<u64, LimiterError> {
    u64::try_from(v).map_err(|_| LimiterError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(limit: u32, window_s: u32, burst: u32) -> GcraPolicy {
        GcraPolicy::new(limit, window_s, burst).unwrap()
    }

    /// Runs requests (at `now_ms`, cost 1) and returns which were admitted.
    fn run(policy: &GcraPolicy, times: &[i64]) -> Vec<bool> {
        let mut tat = None;
        times
            .iter()
            .map(|&t| {
                let o = decide(policy, tat, t, 1).unwrap();
                if let Some(n) = o.new_tat {
                    tat = Some(n);
                }
                o.decision.allowed
            })
            .collect()
    }

    #[test]
    fn strict_pacer_without_burst() {
        // 1 per second, no burst: one now, the next at +1000 ms exactly.
        let pol = p(1, 1, 0);
        assert_eq!(
            run(&pol, &[0, 0, 999, 1_000, 1_999, 2_000]),
            [true, false, false, true, false, true]
        );
    }

    #[test]
    fn burst_means_extra_units_at_once() {
        let pol = p(10, 10, 3);
        // Idle: burst + 1 = 4 at once, then one per second.
        assert_eq!(
            run(&pol, &[5_000, 5_000, 5_000, 5_000, 5_000, 5_999, 6_000]),
            [true, true, true, true, false, false, true]
        );
    }

    fn admitted_when_polled_every_ms(pol: &GcraPolicy, until_ms: i64) -> Vec<i64> {
        let times: Vec<i64> = (0..=until_ms).collect();
        times
            .iter()
            .zip(run(pol, &times))
            .filter_map(|(t, a)| a.then_some(*t))
            .collect()
    }

    #[test]
    fn non_integral_interval_is_exact() {
        // 3 per second: T = 333.33... ms, kept exact in thirds of a ms. With one unit of
        // burst the schedule never drifts: 334, 667, 1000, 1334, ... on a ms clock.
        assert_eq!(
            admitted_when_polled_every_ms(&p(3, 1, 1), 2_000),
            [0, 1, 334, 667, 1_000, 1_334, 1_667, 2_000]
        );
        // A strict pacer (GCRA with zero tolerance) restarts from each late arrival.
        assert_eq!(
            admitted_when_polled_every_ms(&p(3, 1, 0), 2_000),
            [0, 334, 668, 1_002, 1_336, 1_670]
        );
    }

    #[test]
    fn decision_fields() {
        let pol = p(2, 1, 1); // T = 500 ms, capacity 2
        let first = decide(&pol, None, 10_000, 1).unwrap();
        assert_eq!(
            first.decision,
            Decision {
                allowed: true,
                limit: 2,
                remaining: 1,
                reset_after_ms: 500,
                refill_after_ms: 500,
                retry_after_ms: None,
            }
        );
        let second = decide(&pol, first.new_tat, 10_100, 1).unwrap();
        assert_eq!(
            second.decision,
            Decision {
                allowed: true,
                limit: 2,
                remaining: 0,
                reset_after_ms: 900,
                refill_after_ms: 400,
                retry_after_ms: None,
            }
        );
        let third = decide(&pol, second.new_tat, 10_200, 1).unwrap();
        assert_eq!(third.new_tat, None);
        assert_eq!(
            third.decision,
            Decision {
                allowed: false,
                limit: 2,
                remaining: 0,
                reset_after_ms: 800,
                refill_after_ms: 300,
                retry_after_ms: Some(300),
            }
        );
        // Cost 2 needs the whole capacity back.
        let big = decide(&pol, second.new_tat, 10_200, 2).unwrap();
        assert_eq!(big.decision.retry_after_ms, Some(800));
    }

    #[test]
    fn costs_outside_capacity_are_errors() {
        let pol = p(5, 1, 2);
        assert_eq!(
            decide(&pol, None, 0, 0),
            Err(LimiterError::InvalidCost {
                cost: 0,
                capacity: 3
            })
        );
        assert!(decide(&pol, None, 0, 3).unwrap().decision.allowed);
        assert_eq!(
            decide(&pol, None, 0, 4),
            Err(LimiterError::InvalidCost {
                cost: 4,
                capacity: 3
            })
        );
    }

    #[test]
    fn clock_range_is_checked() {
        let pol = p(1, 1, 0);
        assert_eq!(
            decide(&pol, None, -1, 1),
            Err(LimiterError::ClockOutOfRange(-1))
        );
        assert_eq!(
            decide(&pol, None, MAX_NOW_MS + 1, 1),
            Err(LimiterError::ClockOutOfRange(MAX_NOW_MS + 1))
        );
        assert!(decide(&pol, None, MAX_NOW_MS, 1).is_ok());
    }

    #[test]
    fn extreme_policy_stays_within_exact_sql_integers() {
        let pol = p(1, MAX_WINDOW_S, MAX_BURST);
        let o = decide(&pol, None, MAX_NOW_MS, pol.capacity()).unwrap();
        let tat = o.new_tat.unwrap();
        assert!(tat.ms() <= crate::store::MAX_SAFE_INTEGER);
        assert_eq!(
            o.decision.reset_after_ms,
            u64::from(MAX_BURST + 1) * u64::from(MAX_WINDOW_S) * 1_000
        );
        let pol = p(MAX_RATE_LIMIT, 1, MAX_BURST);
        let o = decide(&pol, None, MAX_NOW_MS, 1).unwrap();
        assert_eq!(o.new_tat.unwrap().den(), MAX_RATE_LIMIT);
    }

    #[test]
    fn policy_change_rounds_up() {
        // A TAT of 1000 + 1/3 ms written under limit 3, read under limit 2 (half-ms
        // ticks): rounded up to 1000.5 ms, never down.
        let tat = Tat::new(1_000, 1, 3).unwrap();
        assert_eq!(tat.to_ticks(&p(2, 1, 0)), 2_001);
        assert_eq!(tat.to_ticks(&p(3, 1, 0)), 3_001);
        let tat = Tat::new(1_000, 0, 7).unwrap();
        assert_eq!(tat.to_ticks(&p(2, 1, 0)), 2_000);
    }

    proptest::proptest! {
        /// Reading a TAT under another policy rounds up by less than one tick, never down.
        #[test]
        fn conversion_rounds_up_by_less_than_a_tick(
            ms in 0i64..=MAX_NOW_MS,
            den in 1u32..=MAX_RATE_LIMIT,
            frac_wish in proptest::prelude::any::<u32>(),
            limit in 1u32..=MAX_RATE_LIMIT,
        ) {
            let tat = Tat::new(ms, frac_wish % den, den).unwrap();
            let ticks = tat.to_ticks(&p(limit, 1, 0));
            // exact = ms + frac/den in ms; ticks / limit in ms.
            let exact_scaled = (i128::from(ms) * i128::from(den) + i128::from(tat.frac()))
                * i128::from(limit);
            let got_scaled = ticks * i128::from(den);
            proptest::prop_assert!(got_scaled >= exact_scaled);
            proptest::prop_assert!(got_scaled < exact_scaled + i128::from(den));
        }
    }

    #[test]
    fn tat_rejects_bad_fractions() {
        assert!(Tat::new(0, 0, 0).is_none());
        assert!(Tat::new(0, 3, 3).is_none());
        assert!(Tat::new(0, 2, 3).is_some());
    }
}
