//! The dispatcher's side of the registry object: tenant lookups (cached in the isolate) and
//! forwarding of admin calls.

use std::cell::RefCell;
use std::rc::Rc;

use claw_durable::problem::Problem;
use claw_durable::registry::TenantRecord;
use worker::{Env, Method, Response};

use super::bindings::REGISTRY;
use super::objects;
use crate::config_cache::{ConfigCache, Lookup};

/// The registry is one object: every config behind one strongly consistent store.
const REGISTRY_OBJECT: &str = "global";

thread_local! {
    static CACHE: RefCell<ConfigCache<Rc<TenantRecord>>> = RefCell::new(ConfigCache::default());
}

fn unavailable(e: worker::Error) -> Problem {
    worker::console_error!("registry_unavailable: {e}");
    Problem::new(503, "registry_unavailable", "Tenant registry unavailable")
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
    .map_err(|_| Problem::new(400, "invalid_url", "Invalid request URL"))?;
    stub.fetch_with_request(req).await.map_err(unavailable)
}

/// The tenant's record, from the isolate cache or the registry; `None` if there is none.
pub async fn tenant(env: &Env, slug: &str) -> Result<Option<Rc<TenantRecord>>, Problem> {
    let now = crate::edge::respond::now_ms();
    if let Lookup::Hit(v) = CACHE.with(|c| c.borrow().get(slug, now)) {
        return Ok(v);
    }
    let mut resp = call(env, Method::Get, &format!("/tenants/{slug}"), None).await?;
    let record = match resp.status_code() {
        200 => {
            let rec: TenantRecord = resp.json().await.map_err(unavailable)?;
            Some(Rc::new(rec))
        }
        404 => None,
        s => {
            worker::console_error!("registry answered {s} for a lookup");
            return Err(Problem::new(
                503,
                "registry_unavailable",
                "Tenant registry unavailable",
            ));
        }
    };
    CACHE.with(|c| c.borrow_mut().put(slug, record.clone(), now));
    Ok(record)
}

/// Drops a cached config after this isolate changed it.
pub fn invalidate(slug: &str) {
    CACHE.with(|c| c.borrow_mut().invalidate(slug));
}
