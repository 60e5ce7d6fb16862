//! One call to a tenant, in the order the platform promises: rate limit, then the paywall
//! around dispatch (verify, reserve, dispatch, settle or void), then the usage event.

use claw_durable::problem::Problem;
use claw_durable::tenant::TenantConfig;
use worker::{Context, Env, Request, Response, Url};

use super::{limit, paywall};

/// Serves a request for an active tenant; `rest` is the path the tenant sees.
pub async fn call(
    req: Request,
    env: &Env,
    _ctx: &Context,
    config: &TenantConfig,
    url: &Url,
    rest: &str,
) -> Result<Response, Problem> {
    let admission = match limit::check(&req, env, config).await {
        Ok(admission) => admission,
        // Usage events (issue 5): record a non-countable `rate_limited` event here for a
        // `RefusalReason::RateLimited` refusal of `refusal.caller_key`.
        Err(refusal) => return Ok(limit::refused(&refusal)),
    };
    // Paid tenants: the x402 paywall around dispatch; free tenants: dispatch.
    let answer = paywall::call(req, env, config, url, rest).await;
    Ok(limit::admitted(&admission, answer))
}
