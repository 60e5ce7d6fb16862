//! How often a request gives the runtime's event loop a turn at its sockets (pure; the
//! yield itself is `entry::yield_to_io`).
//!
//! workerd's loop (KJ) polls sockets only when no event is ready. Under saturation a
//! dispatcher call's in-process chain, plus keep-alive reads whose next request is already
//! buffered, keep it from ever running dry, and connections that had to wait go unread for
//! seconds. A zero-delay timer fires only after a poll, so a request that awaits one lets
//! every waiting socket in first. Yielding on every request bounds the wait best but costs
//! a poll per request; yielding on every second request keeps the wait bounded (a waiting
//! connection is read once every connection in flight has reached a yield, within two
//! requests each) for half the polls. Measured with `scripts/bench/stalls.mjs` (worst
//! answer) and `BENCH_ONLY=free scripts/bench-peer` (worst call, free calls/s), on a noisy
//! 2-core machine:
//!
//! | yield on | worst | free calls/s |
//! |---|---|---|
//! | no request | 1.4-4.6 s | 814 |
//! | every request | 0.54-0.59 s | 503-592 |
//! | every 2nd request | 0.47-0.62 s | 616-725 |
//! | every 4th request | 0.73-0.80 s | 749-786 |

/// Requests per yield.
pub const YIELD_EVERY: u32 = 2;
const _: () = assert!(YIELD_EVERY >= 1);

/// Counts requests since the last yield (one per isolate).
#[derive(Debug, Default, Clone, Copy)]
pub struct YieldBudget {
    since: u32,
}

impl YieldBudget {
    /// Counts one request; true when this one should yield.
    pub fn take(&mut self) -> bool {
        self.since += 1;
        if self.since >= YIELD_EVERY {
            self.since = 0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yields_once_every_yield_every_requests() {
        let mut b = YieldBudget::default();
        let taken: Vec<bool> = (0..4 * YIELD_EVERY).map(|_| b.take()).collect();
        assert_eq!(taken.iter().filter(|&&y| y).count(), 4);
        for (i, y) in taken.iter().enumerate() {
            assert_eq!(
                *y,
                (i as u32 + 1).is_multiple_of(YIELD_EVERY),
                "request {i}"
            );
        }
    }

    #[test]
    fn never_goes_longer_than_yield_every_without_a_yield() {
        let mut b = YieldBudget::default();
        let mut run = 0;
        for _ in 0..1_000 {
            if b.take() {
                run = 0;
            } else {
                run += 1;
            }
            assert!(run < YIELD_EVERY);
        }
    }
}
