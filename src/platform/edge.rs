//! The platform API's glue: find the route ([`super::route`]), check its token (the one
//! place bearer tokens are compared) or creator key (verified by the registry on every
//! request: no verdict is cached, so a revocation holds at once), check the key's scope
//! ([`super::creator_may`]), check its parameters, and hand it to its room.

use claw_durable::problem::{Code, Problem};
use worker::{Env, Request, Response};

use claw_durable::registry::keys::{key_hash, parse_key};
use serde_json::json;

use super::auth::{bearer, bearer_matches};
use super::{creator_may, method_not_allowed, route, Access, Caller, Lookup, Route};
use crate::bindings::{self, PLATFORM_EVENTS_PUBLIC};
use crate::http::respond;

/// A platform route's request, as the room that serves it receives it (after the token
/// and the path's parameters were checked).
pub struct PlatformCall<'a> {
    pub req: Request,
    pub env: &'a Env,
    pub query: Option<&'a str>,
    /// Who called (the rooms filter by a creator key's scope where a route lists tenants).
    pub caller: Caller,
}

impl<'a> PlatformCall<'a> {
    pub fn into_parts(self) -> (Request, &'a Env, Option<&'a str>) {
        (self.req, self.env, self.query)
    }
}

/// A refused request's body is read (and dropped) up to this many bytes before the refusal
/// is sent (`crate::http::body::discard`).
const REFUSED_BODY_DRAIN: usize = 1 << 20;

/// `rest` is the path after `/__platform`.
pub async fn handle(
    req: Request,
    env: &Env,
    rest: &str,
    query: Option<&str>,
) -> Result<Response, Problem> {
    let (route, caller) = match admit(&req, env, rest, query).await {
        Ok(admitted) => admitted,
        Err(p) => {
            crate::http::body::discard(&req, REFUSED_BODY_DRAIN).await;
            return Err(p);
        }
    };
    let call = PlatformCall {
        req,
        env,
        query,
        caller,
    };
    match route {
        Route::Tenants(r) => crate::registry::api::handle(call, r).await,
        Route::Ledger(r) => crate::ledger::api::handle(call, r).await,
        Route::Usage(r) => crate::usage::api::handle(call, r).await,
        Route::Keys(r) => crate::registry::keys::handle(call, r).await,
        Route::Whoami => whoami(&call.caller),
        Route::Deploy(r) => crate::deploy::api::handle(call, r).await,
    }
}

/// The route and the caller, or why the request is refused before its route runs (no or a
/// wrong token, a creator key out of its scope, a method the route does not take, a path
/// the route cannot use).
async fn admit(
    req: &Request,
    env: &Env,
    rest: &str,
    query: Option<&str>,
) -> Result<(Route, Caller), Problem> {
    let method = req.method();
    let lookup = route(method.as_ref(), rest)?;
    let (Lookup::Found {
        access, creator, ..
    }
    | Lookup::MethodNotAllowed {
        access, creator, ..
    }) = &lookup;
    let creator_row = *creator;
    let caller = authorize(req, env, *access).await?;
    if matches!(caller, Caller::Creator(_)) && !creator_row {
        return Err(Problem::new(Code::Forbidden).detail("this route is for operators only"));
    }
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
    if let Caller::Creator(grant) = &caller {
        creator_may(grant, creator_row, &route, query)?;
    }
    route.validate()?;
    Ok((route, caller))
}

/// `GET /__platform/whoami`: what the bearer is.
fn whoami(caller: &Caller) -> Result<Response, Problem> {
    let body = match caller {
        Caller::Creator(g) => json!({
            "kind": "creator",
            "id": g.id,
            "prefix": g.prefix,
            "tenants": g.tenants,
            "expiresAt": g.expires_at,
        }),
        Caller::Operator | Caller::Open => json!({ "kind": "operator", "tenants": null }),
    };
    respond::json(200, &body)
}

fn unauthorized() -> Problem {
    Problem::new(Code::Unauthorized)
}

/// The bearer check of every platform route. A token that is not configured closes its
/// routes: nothing matches it. A bearer that is not one of the row's tokens but has a
/// creator key's shape is asked about at the registry (by its id and hash: the key itself
/// does not leave this function): unknown, revoked or expired is 401, like a wrong token.
async fn authorize(req: &Request, env: &Env, access: Access) -> Result<Caller, Problem> {
    if access == Access::Public {
        return Ok(Caller::Open);
    }
    if access == Access::EventsFeed
        && bindings::var(env, PLATFORM_EVENTS_PUBLIC).as_deref() == Some("true")
    {
        return Ok(Caller::Open);
    }
    let authorization = req.headers().get("authorization").ok().flatten();
    let operator = access.token_names().iter().any(|name| {
        let expected = bindings::var(env, name);
        bearer_matches(authorization.as_deref(), expected.as_deref())
    });
    if operator {
        return Ok(Caller::Operator);
    }
    let Some(key) = bearer(authorization.as_deref()) else {
        return Err(unauthorized());
    };
    let Some(id) = parse_key(key) else {
        return Err(unauthorized());
    };
    match crate::registry::keys::verify(env, id, key_hash(key)).await? {
        Some(grant) => Ok(Caller::Creator(grant)),
        None => Err(unauthorized()),
    }
}
