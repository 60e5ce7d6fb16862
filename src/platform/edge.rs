//! The platform API's glue: find the route ([`super::route`]), check its token (the one
//! place bearer tokens are compared), check its parameters, and hand it to its room.

use claw_durable::problem::{Code, Problem};
use worker::{Env, Request, Response};

use super::auth::bearer_matches;
use super::{method_not_allowed, route, Access, Lookup, Route};
use crate::bindings::{self, PLATFORM_EVENTS_PUBLIC};

/// A platform route's request, as the room that serves it receives it (after the token
/// and the path's parameters were checked).
pub struct PlatformCall<'a> {
    pub req: Request,
    pub env: &'a Env,
    pub query: Option<&'a str>,
}

impl<'a> PlatformCall<'a> {
    pub fn into_parts(self) -> (Request, &'a Env, Option<&'a str>) {
        (self.req, self.env, self.query)
    }
}

/// `rest` is the path after `/__platform`.
pub async fn handle(
    req: Request,
    env: &Env,
    rest: &str,
    query: Option<&str>,
) -> Result<Response, Problem> {
    let method = req.method();
    let lookup = route(method.as_ref(), rest)?;
    let (Lookup::Found { access, .. } | Lookup::MethodNotAllowed { access, .. }) = &lookup;
    authorize(&req, env, *access)?;
    let route = match lookup {
        Lookup::Found { route, .. } => route,
        Lookup::MethodNotAllowed { allow, .. } => {
            let p = method_not_allowed(method.as_ref(), rest);
            let detail = format!(
                "{} (allowed: {allow})",
                p.detail.clone().unwrap_or_default()
            );
            return Err(p.detail(detail));
        }
    };
    route.validate()?;
    let call = PlatformCall { req, env, query };
    match route {
        Route::Tenants(r) => crate::registry::api::handle(call, r).await,
        Route::Ledger(r) => crate::ledger::api::handle(call, r).await,
        Route::Usage(r) => crate::usage::api::handle(call, r).await,
        Route::Deploy(r) => crate::deploy::api::handle(call, r).await,
    }
}

fn unauthorized() -> Problem {
    Problem::new(Code::Unauthorized)
}

/// The bearer check of every platform route. A token that is not configured closes its
/// routes: nothing matches it.
fn authorize(req: &Request, env: &Env, access: Access) -> Result<(), Problem> {
    if access == Access::Public {
        return Ok(());
    }
    if access == Access::EventsFeed
        && bindings::var(env, PLATFORM_EVENTS_PUBLIC).as_deref() == Some("true")
    {
        return Ok(());
    }
    let secret = access
        .token_name()
        .and_then(|name| bindings::var(env, name));
    let authorization = req.headers().get("authorization").ok().flatten();
    if bearer_matches(authorization.as_deref(), secret.as_deref()) {
        Ok(())
    } else {
        Err(unauthorized())
    }
}
