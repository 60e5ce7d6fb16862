//! The dispatcher's side of the registry object: tenant lookups (cached in the isolate) and
//! forwarding of admin calls.

use std::cell::RefCell;
use std::rc::Rc;

use claw_durable::problem::{Code, Problem};
use claw_durable::registry::{TenantPage, TenantRecord};
use worker::{Env, Method, Response};

use super::cache::{ConfigCache, Lookup};
use crate::bindings::REGISTRY;
use crate::http::objects;

/// The registry is one object: every config behind one strongly consistent store.
const REGISTRY_OBJECT: &str = "global";

thread_local! {
    static CACHE: RefCell<ConfigCache<Rc<TenantRecord>>> = RefCell::new(ConfigCache::default());
}

fn unavailable(e: worker::Error) -> Problem {
    worker::console_error!("registry_unavailable: {e}");
    unavailable_problem()
}

fn unavailable_problem() -> Problem {
    Problem::new(Code::RegistryUnavailable)
}

/// Sends one request to the registry object. `path_and_query` starts with `/`.
pub async fn call(
    env: &Env,
    method: Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
) -> Result<Response, Problem> {
    let namespace = env.durable_object(REGISTRY).map_err(unavailable)?;
    let stub = namespace
        .id_from_name(REGISTRY_OBJECT)
        .and_then(|id| id.get_stub())
        .map_err(unavailable)?;
    let body = body.map(|b| worker::js_sys::Uint8Array::from(b.as_slice()).into());
    let req = objects::request(
        &format!("https://registry.internal{path_and_query}"),
        method,
        body,
    )
    .map_err(|_| Problem::new(Code::InvalidUrl))?;
    stub.fetch_with_request(req).await.map_err(unavailable)
}

/// The tenant's record, from the isolate cache or the registry; `None` if there is none.
pub async fn tenant(env: &Env, slug: &str) -> Result<Option<Rc<TenantRecord>>, Problem> {
    let now = crate::http::respond::now_ms();
    if let Lookup::Hit(v) = CACHE.with(|c| c.borrow_mut().lookup(slug, now)) {
        return Ok(v);
    }
    let fetched = fetch_record(env, slug).await;
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        match &fetched {
            Ok(record) => c.put(slug, record.clone(), now),
            Err(_) => c.refresh_failed(slug),
        }
    });
    fetched
}

/// The tenant's record as the registry has it now.
async fn fetch_record(env: &Env, slug: &str) -> Result<Option<Rc<TenantRecord>>, Problem> {
    let resp = call(env, Method::Get, &format!("/tenants/{slug}"), None).await?;
    let record = match resp.status_code() {
        200 => {
            let rec: TenantRecord = claw_durable::http::body_json(&resp)
                .await
                .map_err(unavailable)?;
            Some(Rc::new(rec))
        }
        404 => None,
        s => {
            worker::console_error!("registry answered {s} for a lookup");
            return Err(unavailable_problem());
        }
    };
    Ok(record)
}

/// Drops a cached config after this isolate changed it.
pub fn invalidate(slug: &str) {
    CACHE.with(|c| c.borrow_mut().invalidate(slug));
    crate::discovery::edge::invalidate();
}

/// 404 `tenant_not_found` unless `slug` is registered: per-tenant objects (ledgers, usage
/// events) are made for registered tenants only, so a made-up slug cannot create storage.
pub async fn existing(env: &Env, slug: &str) -> Result<Rc<TenantRecord>, Problem> {
    tenant(env, slug).await?.ok_or_else(|| not_found(slug))
}

pub fn not_found(slug: &str) -> Problem {
    Problem::new(Code::TenantNotFound).detail(format!("no tenant {slug:?}"))
}

/// A page of tenants (`/tenants?limit=&after=`), read from the registry.
pub async fn page(env: &Env, path_and_query: &str) -> Result<TenantPage, Problem> {
    let resp = call(env, Method::Get, path_and_query, None).await?;
    if resp.status_code() != 200 {
        return Err(unavailable_problem());
    }
    claw_durable::http::body_json(&resp)
        .await
        .map_err(unavailable)
}
