//! The Worker's entry point: a routing table. Nothing here may panic or let a JS exception
//! escape: every failure becomes a problem+json response (`crate::http::respond::problem`).
//!
//! | request | room |
//! |---|---|
//! | this deployment is the outbound Worker (`WORKER_ROLE=outbound`) | `crate::egress` |
//! | `/__platform/dashboard/...` on any host | `crate::dashboard` (static files) |
//! | `/__platform/...` on any host | `crate::platform` (one route table) |
//! | `/t/{slug}/...` or `{slug}.{PLATFORM_DOMAIN}` | `crate::call` (limit, paywall, dispatch, usage) |
//! | `/discovery/resources`, `/discovery/search` | `crate::discovery` (x402 Bazaar listing) |
//! | `/mcp` | `crate::mcp` (MCP tools; paid tools call [`tenant`]) |
//! | `/` | the service index |
//! | a batch of the usage queue | `crate::usage::edge::consume` |

use claw_durable::problem::{Code, Problem};
use claw_durable::registry::TenantStatus;
use worker::{event, Context, Env, MessageBatch, Request, Response, Result};

use crate::bindings::{self, PLATFORM_DOMAIN, ROLE_OUTBOUND, WORKER_ROLE};
use crate::http::respond;
use crate::http::turns::YieldBudget;
use crate::registry::edge as registry;
use crate::route::{resolve, Target};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    // The same Worker, deployed as the dispatch namespace's outbound Worker.
    if bindings::var(&env, WORKER_ROLE).as_deref() == Some(ROLE_OUTBOUND) {
        return Ok(crate::egress::edge::handle(req, &env).await);
    }
    yield_to_io().await;
    let outcome = handle(req, &env, &ctx).await;
    Ok(outcome.unwrap_or_else(|p| respond::problem(&p)))
}

/// Lets the runtime poll its sockets before this request runs, on every
/// [`YIELD_EVERY`](crate::http::turns::YIELD_EVERY)-th request of the isolate: a zero-delay
/// timer fires only once the event loop has run out of ready work and polled for I/O. Why
/// and how often: `crate::http::turns`. The same remedy as Tokio's cooperative budget.
async fn yield_to_io() {
    if BUDGET.with(|b| {
        let mut budget = b.get();
        let due = budget.take();
        b.set(budget);
        due
    }) {
        worker::Delay::from(std::time::Duration::ZERO).await;
    }
}

thread_local! {
    static BUDGET: std::cell::Cell<YieldBudget> = std::cell::Cell::new(YieldBudget::default());
}

/// The usage queue's consumer (`crate::usage::edge::consume`).
#[event(queue)]
async fn queue(batch: MessageBatch<String>, env: Env, _ctx: Context) -> Result<()> {
    crate::usage::edge::consume(&batch, &env).await;
    Ok(())
}

async fn handle(req: Request, env: &Env, ctx: &Context) -> std::result::Result<Response, Problem> {
    let url = req.url().map_err(|_| Problem::new(Code::InvalidUrl))?;
    let host = req
        .headers()
        .get("host")
        .ok()
        .flatten()
        .or_else(|| url.host_str().map(str::to_owned));
    let platform_domain = bindings::var(env, PLATFORM_DOMAIN).unwrap_or_default();
    match resolve(host.as_deref().unwrap_or(""), url.path(), &platform_domain)? {
        Target::Dashboard { rest } => crate::dashboard::edge::serve(&req, env, &rest).await,
        Target::Platform { rest } => {
            crate::platform::edge::handle(req, env, &rest, url.query()).await
        }
        Target::Index => respond::json(
            200,
            &serde_json::json!({
                "service": "402claw edge",
                "tenants": "/t/{slug}/... or {slug}.<platform domain>",
            }),
        ),
        Target::Discovery { path } => {
            crate::discovery::edge::handle(&req, env, &path, url.query()).await
        }
        Target::Mcp => Ok(crate::mcp::edge::handle(req, env, ctx).await),
        Target::Tenant { slug, rest } => tenant(req, env, ctx, &url, &slug, &rest).await,
    }
}

/// A call to tenant `slug` (`rest`: the path it sees): the one way in for HTTP callers and
/// for MCP tool calls, so both go through the same limit -> paywall -> dispatch -> settle.
pub(crate) async fn tenant(
    req: Request,
    env: &Env,
    ctx: &Context,
    url: &worker::Url,
    slug: &str,
    rest: &str,
) -> std::result::Result<Response, Problem> {
    let record = registry::existing(env, slug).await?;
    if record.status == TenantStatus::Suspended {
        let p = Problem::new(Code::TenantSuspended).detail(format!("tenant {slug:?} is suspended"));
        return Ok(crate::usage::edge::refuse(
            &req,
            env,
            ctx,
            &record.config,
            rest,
            &p,
        ));
    }
    crate::call::serve(req, env, ctx, &record.config, url, rest).await
}
