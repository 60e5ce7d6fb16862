//! The tenant's global limit, sharded so no single object carries the whole rate.
//!
//! A Durable Object serves on the order of 1,000 requests per second. The global limit of a
//! busy tenant is therefore split over `N` objects (shards); shard `i` runs its own exact
//! GCRA with `limit_i` units per the same window and `burst_i` extra units, where
//! `limit_i` and `burst_i` are a fair split of the tenant's `limit` and burst
//! ([`split`]: the first `limit mod N` shards get one more than `limit / N`), so
//! `sum(limit_i) = limit` and `sum(burst_i) = burst`.
//!
//! # Accuracy bound
//!
//! - **Never over-admits (exact).** In every half-open interval of `window_s` seconds the
//!   total admitted cost over all shards is at most `sum(limit_i + burst_i) = limit +
//!   burst`, whatever the routing, concurrency or clock readings per shard (each shard
//!   meets its own bound, see [`super::gcra`]).
//! - **May refuse early.** A request is admitted iff *its* shard admits it; the other
//!   shards' spare capacity is not consulted. Traffic that all lands on shard `i` is held
//!   to that shard's GCRA: at most `limit_i + burst_i <= ceil(limit / N) + ceil(burst / N)`
//!   units per window, and paced at one unit per `window_s / limit_i`. So a refusal can
//!   happen while the tenant-wide admitted cost in the last window is as low as what one
//!   shard holds, and up to `limit + burst - (floor(limit / N) + floor(burst / N))` units
//!   of the window's allowance can go unused. Spreading requests evenly over the shards
//!   ([`shard_for_sequence`] with a per-isolate counter) keeps each shard's share close to
//!   `1 / N`; hashing the caller ([`shard_for_caller`]) instead caps any one caller at
//!   about `1 / N` of the global limit. With `N = 1` the global limit is exact both ways.
//!
//! A policy change (limit, window, shard count) carries each shard's TAT over as a point in
//! time; the bound above holds for a fixed policy.

use sha2::{Digest, Sha256};

use super::{GcraPolicy, LimiterError};
use crate::tenant::Rate;

/// Most shards a global limit uses.
pub const MAX_GLOBAL_SHARDS: u32 = 32;

/// Target admitted rate per shard, in units per second: half the ~1,000 requests per
/// second an object serves, leaving room for refused attempts, which also reach it.
pub const SHARD_TARGET_PER_S: u32 = 500;

/// `ceil(limit / (window_s * 500))`, i.e. one shard per 500 units/s of the global rate,
/// at least 1, at most [`MAX_GLOBAL_SHARDS`], and never more than `limit` (every shard
/// needs a limit of at least 1). Examples: 10,000/h -> 1; 1,000/s -> 2; 100,000/min -> 4;
/// 10^9/s -> 32.
pub fn global_shard_count(rate: &Rate) -> u32 {
    let per_shard_window = u64::from(rate.window_s.max(1)) * u64::from(SHARD_TARGET_PER_S);
    let wanted = u64::from(rate.limit).div_ceil(per_shard_window);
    let cap = u64::from(MAX_GLOBAL_SHARDS.min(rate.limit.max(1)));
    // In 1..=32 by construction.
    u32::try_from(wanted.clamp(1, cap)).unwrap_or(1)
}

/// Shard `index`'s part of `total` split over `shards`: `total / shards`, plus one for the
/// first `total mod shards` shards. `None` when `shards == 0` or `index >= shards`.
pub fn split(total: u32, shards: u32, index: u32) -> Option<u32> {
    if index >= shards {
        return None;
    }
    let extra = u32::from(index < total % shards);
    Some(total / shards + extra)
}

/// The GCRA policy of global shard `index` of `shards`, for the tenant's global `rate` and
/// a global `burst` (split like the limit). Errors when `shards` is 0, above
/// [`MAX_GLOBAL_SHARDS`] or above `rate.limit`, or `index >= shards`.
pub fn global_shard_policy(
    rate: &Rate,
    burst: u32,
    shards: u32,
    index: u32,
) -> Result<GcraPolicy, LimiterError> {
    if shards == 0 || shards > MAX_GLOBAL_SHARDS || shards > rate.limit {
        return Err(LimiterError::InvalidPolicy {
            field: "shards",
            reason: format!("must be 1 to min({MAX_GLOBAL_SHARDS}, limit)"),
        });
    }
    let bad_index = || LimiterError::InvalidPolicy {
        field: "shard",
        reason: format!("must be below {shards}"),
    };
    let limit = split(rate.limit, shards, index).ok_or_else(bad_index)?;
    let burst = split(burst, shards, index).ok_or_else(bad_index)?;
    GcraPolicy::new(limit, rate.window_s, burst)
}

/// A shard chosen by hashing the caller key: stable across isolates, so one caller always
/// meets the same shard. Returns 0 when `shards == 0`.
pub fn shard_for_caller(caller_key: &str, shards: u32) -> u32 {
    let digest = Sha256::digest(caller_key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    shard_for_sequence(u64::from_be_bytes(first), shards)
}

/// Round-robin: the shard for the `seq`-th request of a counter. Returns 0 when
/// `shards == 0`.
pub fn shard_for_sequence(seq: u64, shards: u32) -> u32 {
    if shards == 0 {
        return 0;
    }
    // The remainder is below `shards`, so it fits.
    u32::try_from(seq % u64::from(shards)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(limit: u32, window_s: u32) -> Rate {
        Rate::new(limit, window_s).unwrap()
    }

    #[test]
    fn shard_count_follows_the_rate() {
        assert_eq!(global_shard_count(&rate(10_000, 3_600)), 1);
        assert_eq!(global_shard_count(&rate(500, 1)), 1);
        assert_eq!(global_shard_count(&rate(501, 1)), 2);
        assert_eq!(global_shard_count(&rate(1_000, 1)), 2);
        assert_eq!(global_shard_count(&rate(100_000, 60)), 4);
        assert_eq!(global_shard_count(&rate(1_000_000_000, 1)), 32);
        assert_eq!(global_shard_count(&rate(1, 1)), 1);
        assert_eq!(global_shard_count(&rate(30_000, 1)), 32);
        assert_eq!(global_shard_count(&rate(1_000_000_000, 2_592_000)), 1);
    }

    #[test]
    fn split_is_fair_and_sums_up() {
        for total in [0u32, 1, 7, 31, 32, 33, 1_000, 1_000_000_007] {
            for shards in 1..=MAX_GLOBAL_SHARDS {
                let parts: Vec<u32> = (0..shards)
                    .map(|i| split(total, shards, i).unwrap())
                    .collect();
                assert_eq!(
                    parts.iter().map(|&p| u64::from(p)).sum::<u64>(),
                    u64::from(total)
                );
                let (lo, hi) = (parts.iter().min().unwrap(), parts.iter().max().unwrap());
                assert!(hi - lo <= 1);
            }
        }
        assert_eq!(split(5, 0, 0), None);
        assert_eq!(split(5, 2, 2), None);
    }

    #[test]
    fn shard_policies() {
        let r = rate(10, 60);
        let p0 = global_shard_policy(&r, 5, 3, 0).unwrap();
        let p2 = global_shard_policy(&r, 5, 3, 2).unwrap();
        assert_eq!((p0.limit(), p0.burst(), p0.window_s()), (4, 2, 60));
        assert_eq!((p2.limit(), p2.burst()), (3, 1));
        assert!(global_shard_policy(&r, 0, 3, 3).is_err());
        assert!(global_shard_policy(&r, 0, 0, 0).is_err());
        assert!(global_shard_policy(&r, 0, 11, 0).is_err());
        assert!(global_shard_policy(&rate(100, 1), 0, 33, 0).is_err());
    }

    #[test]
    fn routing_stays_in_range() {
        for n in 1..=MAX_GLOBAL_SHARDS {
            assert!(shard_for_caller("ip:192.0.2.1", n) < n);
            assert!(shard_for_sequence(u64::MAX, n) < n);
        }
        assert_eq!(shard_for_caller("x", 0), 0);
        assert_eq!(
            shard_for_caller("payer:0xabc", 7),
            shard_for_caller("payer:0xabc", 7)
        );
        // Callers spread over shards.
        let hit: std::collections::BTreeSet<u32> = (0..200)
            .map(|i| shard_for_caller(&format!("ip:10.0.0.{i}"), 4))
            .collect();
        assert_eq!(hit.len(), 4);
    }
}
