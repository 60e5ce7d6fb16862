//! Discovery's glue: the catalog from the registry's paid listing and the trending signals,
//! cached in the isolate for [`CACHE_TTL_MS`] (dropped at once when this isolate changes a
//! tenant), and the two public routes.
//!
//! | route | answers |
//! |---|---|
//! | `GET /discovery/resources?type&payTo&scheme&network&extensions&limit&offset` | [`ListQuery`] |
//! | `GET /discovery/search?query&type&payTo&scheme&network&extensions&limit&cursor` | [`SearchQuery`] |
//!
//! The trending signals are best effort: when the trending object cannot answer, the catalog
//! is built with zero signals (logged) rather than failing discovery.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use claw_durable::problem::{Code, Problem};
use claw_durable::registry::{TenantPage, TenantRecord};
use claw_durable::trending::object::TRENDING_OBJECT;
use claw_durable::trending::Signal;
use serde::Deserialize;
use worker::{Env, Method, Request, Response};

use super::{catalog, Entry, ListQuery, SearchQuery, CACHE_TTL_MS};
use crate::bindings::TRENDING;
use crate::http::respond;
use crate::registry::edge as registry;

/// At most this many listing pages (of 1,000) are read: a bound on one build.
const MAX_LISTING_PAGES: usize = 20;

struct Cached {
    origin: String,
    built_ms: i64,
    snapshot: Snapshot,
}

/// The active paid tenants and their catalog, as of one build.
#[derive(Clone)]
pub struct Snapshot {
    pub records: Rc<Vec<TenantRecord>>,
    pub entries: Rc<Vec<Entry>>,
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

/// Admin-time: a config's discovery icon URL against the SSRF rules ([`super::validate_icon`]),
/// which need the platform's hosts. A config that does not parse is left to the registry.
pub fn check_icon(req: &Request, env: &Env, body: &[u8], slug: &str) -> Result<(), Problem> {
    let Ok(config) = claw_durable::tenant::TenantConfig::parse(body, slug) else {
        return Ok(());
    };
    let host = req.headers().get("host").ok().flatten();
    super::validate_icon(
        &config,
        &crate::proxy::edge::ssrf_policy(env, host.as_deref()),
    )
}

/// Drops the cached catalog (a tenant changed in this isolate).
pub fn invalidate() {
    CACHE.with(|c| c.borrow_mut().take());
}

/// `path` is `/discovery/resources` or `/discovery/search`.
pub async fn handle(
    req: &Request,
    env: &Env,
    path: &str,
    query: Option<&str>,
) -> Result<Response, Problem> {
    let method = req.method();
    if method != Method::Get && method != Method::Head {
        return Err(Problem::new(Code::MethodNotAllowed)
            .detail(format!("{method} is not allowed on {path} (allowed: GET)")));
    }
    let origin = req
        .url()
        .map(|u| u.origin().ascii_serialization())
        .map_err(|_| Problem::new(Code::InvalidUrl))?;
    let mut resp = match path {
        "/discovery/resources" => {
            let q = ListQuery::parse(query)?;
            respond::json(200, &q.answer(&snapshot(env, &origin).await?.entries))?
        }
        "/discovery/search" => {
            let q = SearchQuery::parse(query)?;
            respond::json(200, &q.answer(&snapshot(env, &origin).await?.entries))?
        }
        _ => return Err(crate::platform::not_found()),
    };
    let max_age = CACHE_TTL_MS / 1_000;
    let _ = resp
        .headers_mut()
        .set("cache-control", &format!("public, max-age={max_age}"));
    let _ = resp.headers_mut().set("access-control-allow-origin", "*");
    Ok(resp)
}

/// The tenants and catalog as seen from `origin`, from the isolate cache or built anew.
pub async fn snapshot(env: &Env, origin: &str) -> Result<Snapshot, Problem> {
    let now = respond::now_ms();
    let hit = CACHE.with(|c| {
        c.borrow().as_ref().and_then(|c| {
            let fresh = c.origin == origin && now >= c.built_ms && now - c.built_ms < CACHE_TTL_MS;
            fresh.then(|| c.snapshot.clone())
        })
    });
    if let Some(s) = hit {
        return Ok(s);
    }
    let records = paid_tenants(env).await?;
    let signals = signals(env).await;
    let built = Snapshot {
        entries: Rc::new(catalog(origin, &records, &signals)),
        records: Rc::new(records),
    };
    CACHE.with(|c| {
        *c.borrow_mut() = Some(Cached {
            origin: origin.to_owned(),
            built_ms: now,
            snapshot: built.clone(),
        })
    });
    Ok(built)
}

/// Every active paid tenant, from the registry's listing.
pub async fn paid_tenants(env: &Env) -> Result<Vec<TenantRecord>, Problem> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_LISTING_PAGES {
        let path = match &after {
            Some(a) => format!("/listing?after={a}"),
            None => "/listing".to_owned(),
        };
        let page: TenantPage = registry::page(env, &path).await?;
        out.extend(page.tenants);
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
struct Signals {
    tenants: Vec<Signal>,
}

async fn signals(env: &Env) -> HashMap<String, Signal> {
    match read_signals(env).await {
        Ok(s) => s
            .tenants
            .into_iter()
            .map(|s| (s.tenant.clone(), s))
            .collect(),
        Err(e) => {
            worker::console_error!("discovery: trending signals unavailable: {e}");
            HashMap::new()
        }
    }
}

async fn read_signals(env: &Env) -> worker::Result<Signals> {
    let stub = env.durable_object(TRENDING)?.get_by_name(TRENDING_OBJECT)?;
    let req = Request::new("https://trending.internal/signals", Method::Get)?;
    let resp = stub.fetch_with_request(req).await?;
    if resp.status_code() != 200 {
        return Err(worker::Error::RustError(format!(
            "status {}",
            resp.status_code()
        )));
    }
    claw_durable::http::body_json(&resp).await
}
