//! One call to a tenant, in the order the platform promises: rate limit, then the paywall
//! around dispatch (verify, reserve, dispatch, settle or void), then the usage event.

use claw_durable::problem::Problem;
use claw_durable::tenant::TenantConfig;
use worker::{Context, Env, Request, Response, Url};

use crate::limiter::edge as limit;
use crate::paywall::edge as paywall;
use crate::usage::edge::Usage;

/// Serves a request for an active tenant; `rest` is the path the tenant sees. Every answer
/// records exactly one usage event (`crate::usage::edge`), off the response path.
pub async fn serve(
    req: Request,
    env: &Env,
    ctx: &Context,
    config: &TenantConfig,
    url: &Url,
    rest: &str,
) -> Result<Response, Problem> {
    let mut usage = Usage::start(&req, env, config, rest);
    let admission = match limit::check(&req, env, config).await {
        Ok(admission) => admission,
        Err(refusal) => {
            usage.refused(&refusal);
            return Ok(usage.finish(env, ctx, limit::refused(&refusal)));
        }
    };
    usage.admitted(&admission);
    // Paid tenants: the x402 paywall around dispatch; free tenants: dispatch.
    let signer = admission.signer.as_deref();
    let answer = paywall::call(req, env, config, url, rest, &mut usage, signer).await;
    usage.observe(&answer);
    Ok(usage.finish(env, ctx, limit::admitted(&admission, answer)))
}
