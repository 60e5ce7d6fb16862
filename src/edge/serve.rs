//! One call to a tenant, in the order the platform promises: rate limit, then the paywall
//! around dispatch (verify, reserve, dispatch, settle or void), then the usage event.

use claw_durable::problem::Problem;
use claw_durable::tenant::TenantConfig;
use worker::{Context, Env, Request, Response, Url};

use super::paywall;

/// Serves a request for an active tenant; `rest` is the path the tenant sees.
pub async fn call(
    req: Request,
    env: &Env,
    _ctx: &Context,
    config: &TenantConfig,
    url: &Url,
    rest: &str,
) -> Result<Response, Problem> {
    paywall::call(req, env, config, url, rest).await
}
