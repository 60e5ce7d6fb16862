//! The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers, the `RateLimit-Policy`
//! / `RateLimit` form of drafts 08 to 11) and `Retry-After`, as header values.
//!
//! - `RateLimit-Policy: "caller";q=100;w=60, "global";q=10000;w=3600`: a List of Items
//!   whose value is the policy name (an sf-string), `q` the quota (the policy's `limit`),
//!   `w` the window in seconds.
//! - `RateLimit: "caller";r=3;t=1`: `r` the units available now, `t` the "effective
//!   window": seconds (rounded up) within which no more than `r` can be used, i.e. until
//!   the next unit refills ([`Decision::refill_after_ms`]); 0 when the key is idle. This is
//!   also the draft's rule that a `Retry-After` must not point before the end of the
//!   effective window: on a refusal of one unit both are the same instant.
//! - `Retry-After: <seconds>`: the latest retry time of the refusing policies, rounded up,
//!   at least 1.
//!
//! For the global limit the values are those of the shard that served the request (its
//! `r` and `t`), listed against the tenant's global quota: a hint, not a promise, which is
//! what the draft says clients must assume anyway.

use super::Decision;
use crate::tenant::Rate;

pub const CALLER_POLICY: &str = "caller";
pub const GLOBAL_POLICY: &str = "global";

/// `RateLimit-Policy` for the policies that apply; `None` when neither does.
pub fn ratelimit_policy(caller: Option<&Rate>, global: Option<&Rate>) -> Option<String> {
    join(
        [(CALLER_POLICY, caller), (GLOBAL_POLICY, global)]
            .into_iter()
            .filter_map(|(name, rate)| {
                rate.map(|r| format!("\"{name}\";q={};w={}", r.limit, r.window_s))
            }),
    )
}

/// `RateLimit` for the decisions taken on this request; `None` when there are none.
pub fn ratelimit(caller: Option<&Decision>, global: Option<&Decision>) -> Option<String> {
    join(
        [(CALLER_POLICY, caller), (GLOBAL_POLICY, global)]
            .into_iter()
            .filter_map(|(name, d)| {
                d.map(|d| {
                    format!(
                        "\"{name}\";r={};t={}",
                        d.remaining,
                        seconds_up(d.refill_after_ms)
                    )
                })
            }),
    )
}

/// `Retry-After` for a 429: `Some` iff a decision refused the request.
pub fn retry_after(caller: Option<&Decision>, global: Option<&Decision>) -> Option<String> {
    [caller, global]
        .into_iter()
        .flatten()
        .filter(|d| !d.allowed)
        .map(|d| d.retry_after_ms.unwrap_or(0))
        .max()
        .map(|ms| seconds_up(ms).max(1).to_string())
}

fn seconds_up(ms: u64) -> u64 {
    ms.div_ceil(1_000)
}

fn join(items: impl Iterator<Item = String>) -> Option<String> {
    let items: Vec<String> = items.collect();
    (!items.is_empty()).then(|| items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(allowed: bool, remaining: u32, refill: u64, retry: Option<u64>) -> Decision {
        Decision {
            allowed,
            limit: 10,
            remaining,
            reset_after_ms: 5_000,
            refill_after_ms: refill,
            retry_after_ms: retry,
        }
    }

    #[test]
    fn policy_lists_what_applies() {
        let c = Rate::new(100, 60).unwrap();
        let g = Rate::new(10_000, 3_600).unwrap();
        assert_eq!(
            ratelimit_policy(Some(&c), Some(&g)).as_deref(),
            Some(r#""caller";q=100;w=60, "global";q=10000;w=3600"#)
        );
        assert_eq!(
            ratelimit_policy(None, Some(&g)).as_deref(),
            Some(r#""global";q=10000;w=3600"#)
        );
        assert_eq!(
            ratelimit_policy(Some(&c), None).as_deref(),
            Some(r#""caller";q=100;w=60"#)
        );
        assert_eq!(ratelimit_policy(None, None), None);
    }

    #[test]
    fn ratelimit_rounds_the_window_up() {
        let c = decision(true, 3, 1_001, None);
        let g = decision(true, 0, 999, None);
        assert_eq!(
            ratelimit(Some(&c), Some(&g)).as_deref(),
            Some(r#""caller";r=3;t=2, "global";r=0;t=1"#)
        );
        let idle = decision(true, 11, 0, None);
        assert_eq!(
            ratelimit(Some(&idle), None).as_deref(),
            Some(r#""caller";r=11;t=0"#)
        );
        assert_eq!(ratelimit(None, None), None);
    }

    #[test]
    fn retry_after_only_on_refusal_rounded_up_at_least_one() {
        let ok = decision(true, 1, 100, None);
        assert_eq!(retry_after(Some(&ok), Some(&ok)), None);
        assert_eq!(retry_after(None, None), None);
        let soon = decision(false, 0, 1, Some(1));
        assert_eq!(retry_after(Some(&soon), None).as_deref(), Some("1"));
        let later = decision(false, 0, 2_001, Some(2_001));
        assert_eq!(retry_after(Some(&soon), Some(&later)).as_deref(), Some("3"));
        let exact = decision(false, 0, 3_000, Some(3_000));
        assert_eq!(retry_after(Some(&ok), Some(&exact)).as_deref(), Some("3"));
        // A refusal without a retry time (never produced by the limiter) still says 1.
        let odd = decision(false, 0, 0, None);
        assert_eq!(retry_after(Some(&odd), None).as_deref(), Some("1"));
    }
}
