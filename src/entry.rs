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

/// Lets the runtime look at its sockets before this request runs: a zero-delay timer fires
/// only once the event loop has run out of ready work and polled for I/O.
///
/// workerd's event loop (KJ) polls sockets only when its queue of ready events is empty. A
/// dispatcher call is a chain of in-process steps (limiter, registry, ledger and usage
/// objects, the tenant Worker), and on a keep-alive connection whose next request is already
/// buffered the read completes at once too. So under saturation the queue never empties:
/// connections with bytes in flight are served again and again while a connection that had
/// to wait (a slower client, a new connection) is not read for seconds.
/// `scripts/bench/stalls.mjs` showed every probe of the process stalled together for 1.4-4.6 s
/// (one `strace` saw 25 s without an `epoll_wait`), and the free bench dropped connections;
/// with this yield the worst call was 0.56 s and none was dropped in 50,000. It is the same remedy as Tokio's cooperative budget: every
/// request passes one point where waiting I/O gets its turn. Cost: one timer per request.
async fn yield_to_io() {
    worker::Delay::from(std::time::Duration::ZERO).await;
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
