//! The usage routes' glue (rows of `crate::platform::ROUTES`; tokens checked there):
//!
//! | route | token | does |
//! |---|---|---|
//! | `GET /__platform/events?tenant=&stage=&since=&limit=` | analytics (none if `PLATFORM_EVENTS_PUBLIC=true`) | one tenant's events, in ingest order, paginated by `nextCursor` |
//! | `GET /__platform/trending?window=&limit=` | public | the ranking of tenants over a window |
//! | `GET /__platform/usage/{slug}?window=` | analytics | the tenant's series: calls, payers, revenue per bucket |
//! | `GET /__platform/usage/{slug}/stats?days=` | analytics | calls per UTC day by stage, distinct payers and callers, latency percentiles, top routes (1..=31 days, default 7) |
//! | `POST /__platform/usage/{slug}/rollup` | analytics | roll the tenant's counts up to the ranking now (tests, operations) |
//! | `GET /__platform/usage/{slug}/retention` | analytics | the tenant's event retention |
//! | `PUT /__platform/usage/{slug}/retention` `{retentionMs}` | admin | change it (8 to 400 days) |
//!
//! The token is checked before anything else (by the platform glue), so a 401 says nothing
//! about tenants or parameters. The ranking is cached in the isolate for 5 s (the trending object is one
//! object: the public route must not send every request to it); a rollup made through this
//! isolate drops the cache.

use std::cell::RefCell;
use std::rc::Rc;

use claw_durable::problem::{Code, Problem, CONTENT_TYPE};
use claw_durable::trending::object::TRENDING_OBJECT;
use claw_durable::trending::MAX_TOP;
use worker::wasm_bindgen::JsValue;
use worker::{Env, Method, Request, Response};

use crate::bindings::{TRENDING, USAGE_EVENTS};
use crate::http::body::read_bounded;
use crate::http::objects;
use crate::http::respond;
use crate::platform::edge::PlatformCall;
use crate::platform::UsageRoute;
use crate::registry::cache::{ConfigCache, Lookup};
use crate::registry::edge as registry;
use crate::usage::query::{cut_top, FeedQuery, StatsQuery, WindowQuery};

/// A retention change is `{"retentionMs": n}`.
const MAX_RETENTION_BODY: usize = 1_024;

thread_local! {
    /// The trending object's top [`MAX_TOP`] per window, for 5 s.
    static TOP: RefCell<ConfigCache<Rc<serde_json::Value>>> = RefCell::new(ConfigCache::default());
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Problem {
    worker::console_error!("{what} unavailable: {e}");
    Problem::new(Code::UsageUnavailable)
}

pub async fn handle(call: PlatformCall<'_>, route: UsageRoute) -> Result<Response, Problem> {
    let (mut req, env, query) = call.into_parts();
    match route {
        UsageRoute::Events => {
            let q = FeedQuery::parse(query)?;
            registry::existing(env, &q.tenant).await?;
            let answer = events_object(env, &q.tenant, Method::Get, &q.object_path(), None).await?;
            Ok(relay(answer).await)
        }
        UsageRoute::Trending => {
            let q = WindowQuery::parse(query)?;
            let top = top(env, q.window.as_str()).await?;
            let mut resp = respond::json(200, &cut_top(&top, q.limit))?;
            let _ = resp.headers_mut().set("cache-control", "public, max-age=5");
            Ok(resp)
        }
        UsageRoute::Series { slug } => {
            let q = WindowQuery::parse(query)?;
            let path = format!("/series?tenant={slug}&window={}", q.window.as_str());
            Ok(relay(trending_object(env, &path).await?).await)
        }
        UsageRoute::Stats { slug } => {
            let days = StatsQuery::parse(query)?.days;
            registry::existing(env, &slug).await?;
            let path = format!("/stats?days={days}");
            let answer = events_object(env, &slug, Method::Get, &path, None).await?;
            Ok(relay(answer).await)
        }
        UsageRoute::Rollup { slug } => {
            registry::existing(env, &slug).await?;
            let answer = events_object(env, &slug, Method::Post, "/rollup", None).await?;
            TOP.with(|c| *c.borrow_mut() = ConfigCache::default());
            Ok(relay(answer).await)
        }
        UsageRoute::GetRetention { slug } => {
            registry::existing(env, &slug).await?;
            let answer = events_object(env, &slug, Method::Get, "/config", None).await?;
            Ok(relay(answer).await)
        }
        UsageRoute::PutRetention { slug } => {
            registry::existing(env, &slug).await?;
            let body = read_bounded(&mut req, MAX_RETENTION_BODY, "a retention setting").await?;
            let answer = events_object(env, &slug, Method::Put, "/config", Some(body)).await?;
            Ok(relay(answer).await)
        }
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
async fn relay(answer: Response) -> Response {
    let status = answer.status_code();
    let problem = answer
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|ct| ct.starts_with(CONTENT_TYPE));
    let body = match claw_durable::http::body_bytes(&answer).await {
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
