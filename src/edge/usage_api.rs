//! The platform's usage routes (the one arm in `admin.rs` delegates here):
//!
//! | route | token | does |
//! |---|---|---|
//! | `GET /__platform/events?tenant=&stage=&since=&limit=` | analytics (none if `PLATFORM_EVENTS_PUBLIC=true`) | one tenant's events, in ingest order, paginated by `nextCursor` |
//! | `GET /__platform/trending?window=&limit=` | public | the ranking of tenants over a window |
//! | `GET /__platform/usage/{slug}?window=` | analytics | the tenant's series: calls, payers, revenue per bucket |
//! | `POST /__platform/usage/{slug}/rollup` | analytics | roll the tenant's counts up to the ranking now (tests, operations) |
//! | `GET /__platform/usage/{slug}/retention` | analytics | the tenant's event retention |
//! | `PUT /__platform/usage/{slug}/retention` `{retentionMs}` | admin | change it (8 to 400 days) |
//!
//! The token is checked before anything else, so a 401 says nothing about tenants or
//! parameters. The ranking is cached in the isolate for 5 s (the trending object is one
//! object: the public route must not send every request to it); a rollup made through this
//! isolate drops the cache.

use std::cell::RefCell;
use std::rc::Rc;

use claw_durable::problem::{Problem, CONTENT_TYPE};
use claw_durable::tenant::validate_slug;
use claw_durable::trending::MAX_TOP;
use worker::wasm_bindgen::JsValue;
use worker::{Env, Method, Request, Response};

use super::bindings::{
    self, PLATFORM_ADMIN_TOKEN, PLATFORM_ANALYTICS_TOKEN, PLATFORM_EVENTS_PUBLIC, TRENDING,
    USAGE_EVENTS,
};
use super::body::read_bounded;
use super::objects;
use super::{registry_client, respond};
use crate::auth::bearer_matches;
use crate::config_cache::{ConfigCache, Lookup};
use crate::usage::{cut_top, FeedQuery, WindowQuery};

/// The one trending object's name (`claw_durable::trending::object::TRENDING_OBJECT`).
const TRENDING_OBJECT: &str = "global";
/// A retention change is `{"retentionMs": n}`.
const MAX_RETENTION_BODY: usize = 1_024;

thread_local! {
    /// The trending object's top [`MAX_TOP`] per window, for 5 s.
    static TOP: RefCell<ConfigCache<Rc<serde_json::Value>>> = RefCell::new(ConfigCache::default());
}

/// Whether `rest` (the path after `/__platform`) is one of these routes.
pub fn owns(rest: &str) -> bool {
    let first = rest.trim_start_matches('/').split('/').next().unwrap_or("");
    matches!(first, "events" | "trending" | "usage")
}

fn not_found() -> Problem {
    Problem::new(404, "route_not_found", "No such platform route")
}

fn unauthorized() -> Problem {
    Problem::new(401, "unauthorized", "Missing or wrong bearer token")
}

fn method_not_allowed(method: &Method, rest: &str) -> Problem {
    Problem::new(405, "method_not_allowed", "Method not allowed")
        .detail(format!("{} is not allowed on {rest}", method.as_ref()))
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Problem {
    worker::console_error!("{what} unavailable: {e}");
    Problem::new(503, "usage_unavailable", "Usage data unavailable")
}

/// Which token a route needs.
enum Access {
    Public,
    Analytics,
    Admin,
}

fn authorize(req: &Request, env: &Env, access: Access) -> Result<(), Problem> {
    let token = match access {
        Access::Public => return Ok(()),
        Access::Analytics => bindings::var(env, PLATFORM_ANALYTICS_TOKEN),
        Access::Admin => bindings::var(env, PLATFORM_ADMIN_TOKEN),
    };
    let authorization = req.headers().get("authorization").ok().flatten();
    if bearer_matches(authorization.as_deref(), token.as_deref()) {
        Ok(())
    } else {
        Err(unauthorized())
    }
}

/// `rest` is the path after `/__platform`.
pub async fn handle(
    mut req: Request,
    env: &Env,
    rest: &str,
    query: Option<&str>,
) -> Result<Response, Problem> {
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let method = req.method();
    let is = |m: Method| method == m;
    match segments.as_slice() {
        ["events"] => {
            let public = bindings::var(env, PLATFORM_EVENTS_PUBLIC).as_deref() == Some("true");
            authorize(
                &req,
                env,
                if public {
                    Access::Public
                } else {
                    Access::Analytics
                },
            )?;
            if !is(Method::Get) {
                return Err(method_not_allowed(&method, rest));
            }
            let q = FeedQuery::parse(query)?;
            existing_tenant(env, &q.tenant).await?;
            let answer = events_object(env, &q.tenant, Method::Get, &q.object_path(), None).await?;
            Ok(relay(answer).await)
        }
        ["trending"] => {
            if !is(Method::Get) {
                return Err(method_not_allowed(&method, rest));
            }
            let q = WindowQuery::parse(query)?;
            let top = top(env, q.window.as_str()).await?;
            let mut resp = respond::json(200, &cut_top(&top, q.limit))?;
            let _ = resp.headers_mut().set("cache-control", "public, max-age=5");
            Ok(resp)
        }
        ["usage", slug, tail @ ..] => {
            let access = match (tail, &method) {
                (["retention"], Method::Put) => Access::Admin,
                _ => Access::Analytics,
            };
            authorize(&req, env, access)?;
            validate_slug(slug)
                .map_err(|e| Problem::new(400, "invalid_slug", "Invalid tenant slug").detail(e))?;
            match (tail, &method) {
                ([], Method::Get) => {
                    let q = WindowQuery::parse(query)?;
                    let path = format!("/series?tenant={slug}&window={}", q.window.as_str());
                    Ok(relay(trending_object(env, &path).await?).await)
                }
                (["rollup"], Method::Post) => {
                    existing_tenant(env, slug).await?;
                    let answer = events_object(env, slug, Method::Post, "/rollup", None).await?;
                    TOP.with(|c| *c.borrow_mut() = ConfigCache::default());
                    Ok(relay(answer).await)
                }
                (["retention"], Method::Get) => {
                    existing_tenant(env, slug).await?;
                    let answer = events_object(env, slug, Method::Get, "/config", None).await?;
                    Ok(relay(answer).await)
                }
                (["retention"], Method::Put) => {
                    existing_tenant(env, slug).await?;
                    let body =
                        read_bounded(&mut req, MAX_RETENTION_BODY, "a retention setting").await?;
                    let answer =
                        events_object(env, slug, Method::Put, "/config", Some(body)).await?;
                    Ok(relay(answer).await)
                }
                ([] | ["rollup"] | ["retention"], _) => Err(method_not_allowed(&method, rest)),
                _ => Err(not_found()),
            }
        }
        _ => Err(not_found()),
    }
}

/// 404 unless the tenant is registered: events objects are made for registered tenants
/// only (a made-up slug must not create storage).
async fn existing_tenant(env: &Env, slug: &str) -> Result<(), Problem> {
    match registry_client::tenant(env, slug).await? {
        Some(_) => Ok(()),
        None => Err(Problem::new(404, "tenant_not_found", "Tenant not found")
            .detail(format!("no tenant {slug:?}"))),
    }
}

/// The trending object's top [`MAX_TOP`] of `window`, from the isolate cache or the object.
async fn top(env: &Env, window: &str) -> Result<Rc<serde_json::Value>, Problem> {
    let now = respond::now_ms();
    if let Lookup::Hit(Some(v)) = TOP.with(|c| c.borrow().get(window, now)) {
        return Ok(v);
    }
    let mut answer = trending_object(env, &format!("/top?window={window}&limit={MAX_TOP}")).await?;
    if answer.status_code() != 200 {
        return Err(unavailable(
            "trending",
            format!("answered {}", answer.status_code()),
        ));
    }
    let value: serde_json::Value = answer
        .json()
        .await
        .map_err(|e| unavailable("trending", e))?;
    let value = Rc::new(value);
    TOP.with(|c| c.borrow_mut().put(window, Some(value.clone()), now));
    Ok(value)
}

async fn trending_object(env: &Env, path_and_query: &str) -> Result<Response, Problem> {
    let stub = env
        .durable_object(TRENDING)
        .and_then(|ns| ns.get_by_name(TRENDING_OBJECT))
        .map_err(|e| unavailable("trending", e))?;
    let req = Request::new(
        &format!("https://trending.internal{path_and_query}"),
        Method::Get,
    )
    .map_err(|_| Problem::internal("building the trending request"))?;
    stub.fetch_with_request(req)
        .await
        .map_err(|e| unavailable("trending", e))
}

async fn events_object(
    env: &Env,
    tenant: &str,
    method: Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
) -> Result<Response, Problem> {
    let stub = env
        .durable_object(USAGE_EVENTS)
        .and_then(|ns| ns.get_by_name(tenant))
        .map_err(|e| unavailable("usage events", e))?;
    let body = body.map(|b| JsValue::from(worker::js_sys::Uint8Array::from(b.as_slice())));
    let req = objects::request(
        &format!("https://events.internal{path_and_query}"),
        method,
        body,
    )
    .map_err(|_| Problem::internal("building the events request"))?;
    stub.fetch_with_request(req)
        .await
        .map_err(|e| unavailable("usage events", e))
}

/// An object's answer passed on: its status, body and content type (JSON or problem+json),
/// never cached.
async fn relay(mut answer: Response) -> Response {
    let status = answer.status_code();
    let problem = answer
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|ct| ct.starts_with(CONTENT_TYPE));
    let body = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => return respond::problem(&unavailable("usage answer", e)),
    };
    let content_type = if problem {
        CONTENT_TYPE
    } else {
        "application/json"
    };
    respond::with_body(status, content_type, body)
}
