//! Dispatch to a tenant's Worker in the Workers for Platforms namespace.
//!
//! workers-rs's `DynamicDispatcher::get` passes no options, so the namespace's
//! `get(name, args, options)` is bound here directly, to pass the plan's custom limits
//! `{limits: {cpuMs, subRequests}}` and the outbound Worker's parameters
//! `{outbound: {tenant, allowedHosts, callId}}` on every call.
//!
//! Proxy tenants have no Worker: `crate::proxy::edge` serves them, with the same contract.

use claw_durable::problem::{Code, Problem};
use claw_durable::tenant::{CustomLimits, ResourceType, TenantConfig};
use worker::js_sys::{Array, Object, Promise, Reflect};
use worker::wasm_bindgen::prelude::*;
use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys;
use worker::{Env, Request, Response, Url};

use crate::bindings::DISPATCHER;
use crate::dispatch::{connection_tokens, forward_request_header, forward_response_header};

#[wasm_bindgen]
extern "C" {
    /// The dispatch namespace binding (`[[dispatch_namespaces]]` in wrangler.toml).
    #[wasm_bindgen(js_name = Object)]
    type DispatchNamespace;

    #[wasm_bindgen(method, catch, js_name = get)]
    fn get_with_options(
        this: &DispatchNamespace,
        name: &str,
        args: &JsValue,
        options: &JsValue,
    ) -> Result<UserWorker, JsValue>;

    /// A user Worker's fetcher, as the namespace returns it.
    #[wasm_bindgen(js_name = Object)]
    type UserWorker;

    #[wasm_bindgen(method, catch, js_name = fetch)]
    fn fetch(this: &UserWorker, request: &web_sys::Request) -> Result<Promise, JsValue>;
}

/// The options object `{limits: {cpuMs, subRequests}, outbound: {tenant, allowedHosts,
/// callId}}`. The outbound Worker receives `outbound`'s members as its `env` (they are
/// declared as the namespace's outbound `parameters` in wrangler.toml).
fn options(limits: CustomLimits, config: &TenantConfig, call_id: &str) -> Result<JsValue, JsValue> {
    let l = Object::new();
    Reflect::set(&l, &"cpuMs".into(), &limits.cpu_ms.into())?;
    Reflect::set(&l, &"subRequests".into(), &limits.sub_requests.into())?;
    let hosts = Array::new();
    for h in &config.allowed_hosts {
        hosts.push(&h.into());
    }
    let outbound = Object::new();
    Reflect::set(&outbound, &"tenant".into(), &config.slug.as_str().into())?;
    Reflect::set(&outbound, &"allowedHosts".into(), &hosts)?;
    Reflect::set(&outbound, &"callId".into(), &call_id.into())?;
    let o = Object::new();
    Reflect::set(&o, &"limits".into(), &l)?;
    Reflect::set(&o, &"outbound".into(), &outbound)?;
    Ok(o.into())
}

fn js_message(e: &JsValue) -> String {
    e.dyn_ref::<worker::js_sys::Error>()
        .map(|err| String::from(err.message()))
        .or_else(|| e.as_string())
        .unwrap_or_default()
}

/// Forwards the caller's request to the tenant and returns the tenant's answer, streamed.
/// `call_id` is the call's usage event id (`crate::usage::edge::Usage::id`): the outbound
/// parameter the egress Worker logs each subrequest of the call under.
pub async fn to_tenant(
    req: Request,
    env: &Env,
    config: &TenantConfig,
    url: &Url,
    rest: &str,
    call_id: &str,
) -> Result<Response, Problem> {
    if config.resource_type == ResourceType::Proxy {
        let proxy = config
            .proxy
            .as_ref()
            .ok_or_else(|| Problem::internal("proxy tenant without proxy config"))?;
        return crate::proxy::edge::serve(req, env, config, proxy, url, rest).await;
    }
    // `workerName`, or the script the deployment API manages (`tenant-{slug}`).
    let script = config
        .script_name()
        .ok_or_else(|| Problem::internal("tenant has no script"))?;
    let worker_name = script.as_str();
    let namespace = Reflect::get(env.as_ref(), &DISPATCHER.into())
        .ok()
        .filter(|v| v.is_object())
        .ok_or_else(|| Problem::new(Code::DispatchUnavailable))?
        .unchecked_into::<DispatchNamespace>();
    let forwarded = forward_request(&req, url, rest).map_err(|e| {
        worker::console_error!("building the forwarded request failed: {}", js_message(&e));
        Problem::new(Code::InvalidRequest)
    })?;
    let opts = options(config.plan.limits(), config, call_id)
        .map_err(|_| Problem::internal("building dispatch options"))?;
    let user_worker = namespace
        .get_with_options(worker_name, &JsValue::UNDEFINED, &opts)
        .map_err(|e| tenant_failure(worker_name, &e))?;
    let promise = user_worker
        .fetch(&forwarded)
        .map_err(|e| tenant_failure(worker_name, &e))?;
    let answer = JsFuture::from(promise)
        .await
        .map_err(|e| tenant_failure(worker_name, &e))?;
    let answer: web_sys::Response = answer
        .dyn_into()
        .map_err(|_| Problem::new(Code::TenantWorkerFailed))?;
    // The tenant's answer streamed through, hop-by-hop headers dropped.
    crate::http::respond::restream(&answer, |name| !forward_response_header(name))
        .map_err(|_| Problem::new(Code::TenantWorkerFailed))
}

/// The namespace throws `Worker not found` for a script it does not hold; anything else
/// thrown is the tenant's own failure (exception, exceeded limits). Neither reveals details.
fn tenant_failure(worker_name: &str, e: &JsValue) -> Problem {
    let message = js_message(e);
    worker::console_error!("dispatch to {worker_name} failed: {message}");
    if message.to_ascii_lowercase().contains("worker not found") {
        Problem::new(Code::TenantWorkerMissing)
            .detail("the tenant's Worker is not in the dispatch namespace")
    } else {
        Problem::new(Code::TenantWorkerFailed)
    }
}

/// The caller's request as the tenant sees it: same method, body (streamed) and query, the
/// path remainder, headers minus hop-by-hop and platform ones, plus `x-claw-tenant`.
fn forward_request(req: &Request, url: &Url, rest: &str) -> Result<web_sys::Request, JsValue> {
    let inner = req.inner();
    let tokens = connection_tokens(inner.headers().get("connection")?.as_deref());
    // Copy natively, then delete what must not cross: fewer Wasm/JS crossings per header
    // than rebuilding the set entry by entry.
    let headers = web_sys::Headers::new_with_headers(&inner.headers())?;
    crate::http::respond::drop_headers(&headers, |name| !forward_request_header(name, &tokens))?;
    let mut target = format!("{}{}", url.origin().ascii_serialization(), rest);
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let init = web_sys::RequestInit::new();
    init.set_method(&inner.method());
    init.set_headers(&headers);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if let Some(body) = inner.body() {
        init.set_body(&body);
    }
    web_sys::Request::new_with_str_and_init(&target, &init)
}
