//! A deadline over any future: the one way the dispatcher bounds how long it waits (limiter
//! objects, the facilitator, a paid call's tenant, proxy upstreams).

use std::future::Future;
use std::time::Duration;

use futures::future::{select, Either};
use worker::Delay;

/// The future did not finish within its deadline (it is dropped: whatever it was waiting on
/// is abandoned; abort a fetch with its `AbortController` as well).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

/// `work`'s output, or [`TimedOut`] once `ms` milliseconds have passed.
pub async fn within<F: Future>(ms: u64, work: F) -> Result<F::Output, TimedOut> {
    let deadline = Delay::from(Duration::from_millis(ms));
    match select(Box::pin(work), deadline).await {
        Either::Left((output, _)) => Ok(output),
        Either::Right(((), _)) => Err(TimedOut),
    }
}
