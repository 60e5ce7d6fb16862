//! The Worker glue: reads the request and the environment, calls the pure rules, answers.
//!
//! Nothing here may panic or let a JS exception escape: every failure becomes a
//! problem+json response (see [`respond::problem`]).

mod admin;
mod bindings;
mod body;
mod dispatch;
mod egress;
mod facilitator;
mod ledger_api;
mod ledger_client;
mod limit;
mod objects;
mod paywall;
mod proxy;
mod registry_client;
mod respond;
mod serve;
mod usage;
mod usage_api;

use claw_durable::problem::Problem;
use claw_durable::registry::TenantStatus;
use worker::{event, Context, Env, Request, Response, Result};

use crate::route::{resolve, Target};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    // The same Worker, deployed as the dispatch namespace's outbound Worker.
    if bindings::var(&env, bindings::WORKER_ROLE).as_deref() == Some(bindings::ROLE_OUTBOUND) {
        return Ok(egress::handle(req, &env).await);
    }
    let outcome = handle(req, &env, &ctx).await;
    Ok(outcome.unwrap_or_else(|p| respond::problem(&p)))
}

async fn handle(req: Request, env: &Env, ctx: &Context) -> std::result::Result<Response, Problem> {
    let url = req
        .url()
        .map_err(|_| Problem::new(400, "invalid_url", "Invalid request URL"))?;
    let host = req
        .headers()
        .get("host")
        .ok()
        .flatten()
        .or_else(|| url.host_str().map(str::to_owned));
    let platform_domain = bindings::var(env, bindings::PLATFORM_DOMAIN).unwrap_or_default();
    match resolve(host.as_deref().unwrap_or(""), url.path(), &platform_domain)? {
        Target::Platform { rest } => admin::handle(req, env, &rest, url.query()).await,
        Target::Index => respond::json(
            200,
            &serde_json::json!({
                "service": "402claw edge",
                "tenants": "/t/{slug}/... or {slug}.<platform domain>",
            }),
        ),
        Target::Tenant { slug, rest } => {
            let record = registry_client::tenant(env, &slug).await?.ok_or_else(|| {
                Problem::new(404, "tenant_not_found", "Tenant not found")
                    .detail(format!("no tenant {slug:?}"))
            })?;
            if record.status == TenantStatus::Suspended {
                let p = Problem::new(403, "tenant_suspended", "Tenant suspended")
                    .detail(format!("tenant {slug:?} is suspended"));
                return Ok(usage::refuse(&req, env, ctx, &record.config, &rest, &p));
            }
            serve::call(req, env, ctx, &record.config, &url, &rest).await
        }
    }
}
