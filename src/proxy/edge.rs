//! Proxy tenants, served by the dispatcher itself: the Worker glue around `crate::proxy`.
//!
//! The order is the one `crate::proxy` documents: method allowlist, upstream URL (joining and
//! SSRF rules), cache lookup, injected headers, the upstream fetch (redirects not followed,
//! the whole exchange under `timeoutMs`, the body read under `maxResponseBytes`), cache store,
//! JSON transform, response headers. Like `dispatch::to_tenant`, the answer is a `Problem` or
//! a response; a status >= 400 means "not served". Every proxy answer carries
//! `x-claw-cache: hit|miss|bypass`.

use std::collections::HashMap;

use claw_durable::problem::{Code, Problem};
use claw_durable::tenant::{ProxyConfig, TenantConfig};
use worker::js_sys::{Function, Promise, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{web_sys, Cache, Env, Request, Response, Url};

use crate::bindings::{self, ALLOW_LOOPBACK_UPSTREAMS, PLATFORM_DOMAIN, PLATFORM_HOSTS};
use crate::http::body::read_response;
use crate::http::capped::ReadError;
use crate::http::deadline::within;
use crate::http::respond::{self, js_headers};
use crate::proxy::cache::{cache_policy, CacheInput};
use crate::proxy::headers::{
    check_secret_scope, resolve_injected, sends_caller_authorization, upstream_request_headers,
    HeaderError, RequestHeaderRules,
};
use crate::proxy::transform::{apply_transform, transform_applies};
use crate::proxy::upstream::{
    caller_headers, check_declared_length, check_status, hit_headers, stored_headers,
    CACHE_STATUS_HEADER,
};
use crate::proxy::{
    plan, platform_hosts, setting_enabled, CacheStatus, ProxyError, SsrfPolicy, UpstreamError,
    UpstreamPlan,
};

/// The SSRF policy in force for a request that came in on `request_host`.
pub fn ssrf_policy(env: &Env, request_host: Option<&str>) -> SsrfPolicy {
    let domain = bindings::var(env, PLATFORM_DOMAIN).unwrap_or_default();
    let extra = bindings::var(env, PLATFORM_HOSTS);
    SsrfPolicy {
        allow_loopback_http: setting_enabled(
            bindings::var(env, ALLOW_LOOPBACK_UPSTREAMS).as_deref(),
        ),
        platform: platform_hosts(&domain, extra.as_deref(), request_host),
    }
}

fn cap(max_bytes: u32) -> usize {
    usize::try_from(max_bytes).unwrap_or(usize::MAX)
}

/// An upstream answer, read whole.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Serves one call of proxy tenant `config` (whose `proxy` is `proxy`).
pub async fn serve(
    req: Request,
    env: &Env,
    config: &TenantConfig,
    proxy: &ProxyConfig,
    url: &Url,
    rest: &str,
) -> Result<Response, Problem> {
    let slug = config.slug.as_str();
    let inner = req.inner();
    let method = inner.method();
    let request_host = req.headers().get("host").ok().flatten();
    let policy = ssrf_policy(env, request_host.as_deref());
    let plan = match plan(slug, proxy, &method, rest, url.query(), &policy) {
        Ok(p) => p,
        Err(e) => return refuse(slug, &e),
    };
    let cache = plan.cache_key.as_ref().map(|_| Cache::default());
    if let (Some(cache), Some(key)) = (&cache, &plan.cache_key) {
        match cache.get(key.as_str(), false).await {
            Ok(Some(hit)) => {
                if let Some(answer) = read_hit(hit, proxy.max_response_bytes).await {
                    let headers = hit_headers(&answer.headers);
                    return respond_with(
                        slug,
                        proxy,
                        &plan,
                        answer.status,
                        headers,
                        answer.body,
                        CacheStatus::Hit,
                    );
                }
            }
            Ok(None) => {}
            Err(e) => worker::console_error!("proxy {slug}: cache lookup failed: {e}"),
        }
    }
    let resolved = injected_headers(env, slug, proxy).await.map_err(|e| {
        worker::console_error!("proxy {slug}: {e}");
        ProxyError::from(e).to_problem()
    })?;
    let rules = RequestHeaderRules {
        injected: &proxy.inject_headers,
        api_key_header: config.api_key_header.as_deref(),
        transforming: plan.transforming,
    };
    let caller = header_pairs(&inner.headers());
    let outgoing = upstream_request_headers(
        caller.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        &rules,
        &resolved,
    );
    let caller_authorization = sends_caller_authorization(
        outgoing.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        &rules,
    );
    let answer = fetch_upstream(inner, &method, &plan.url, &outgoing, proxy)
        .await
        .map_err(|e| {
            worker::console_error!("proxy {slug}: {} {}: {e}", method, plan.url);
            ProxyError::from(e).to_problem()
        })?;
    let cache_status = match (&cache, &plan.cache_key) {
        (Some(cache), Some(key)) => {
            store(
                cache,
                key,
                slug,
                proxy,
                &method,
                &answer,
                caller_authorization,
            )
            .await;
            CacheStatus::Miss
        }
        _ => CacheStatus::Bypass,
    };
    respond_with(
        slug,
        proxy,
        &plan,
        answer.status,
        answer.headers,
        answer.body,
        cache_status,
    )
}

/// A refusal before any upstream call: the 405 keeps its `Allow` header (as a response, so
/// the header survives; its status says "not served" all the same).
fn refuse(slug: &str, e: &ProxyError) -> Result<Response, Problem> {
    if e.status() >= 500 {
        // The tenant's setup is at fault (e.g. an upstream the SSRF rules now refuse).
        worker::console_error!("proxy {slug}: refused: {e}");
    }
    let problem = e.to_problem();
    match e.allow_header() {
        Some(allow) => {
            let mut r = respond::problem(&problem);
            let _ = r.headers_mut().set("allow", allow);
            Ok(r)
        }
        None => Err(problem),
    }
}

/// The injected headers with their values. Only secrets in the tenant's scope are read
/// (checked again here: a config stored before the rule, or by another path, gets nothing).
async fn injected_headers(
    env: &Env,
    slug: &str,
    proxy: &ProxyConfig,
) -> Result<Vec<(String, String)>, HeaderError> {
    check_secret_scope(slug, &proxy.inject_headers)?;
    let secrets = secret_values(env, proxy).await;
    resolve_injected(&proxy.inject_headers, |name| secrets.get(name).cloned())
}

/// Each injected header's secret: a Worker secret or variable (a string binding), or a
/// Secrets Store binding (an object whose `get()` resolves to the value). Unbound names are
/// left out; `resolve_injected` reports them.
async fn secret_values(env: &Env, proxy: &ProxyConfig) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for h in &proxy.inject_headers {
        if out.contains_key(&h.secret) {
            continue;
        }
        if let Some(v) = secret_value(env, &h.secret).await {
            out.insert(h.secret.clone(), v);
        }
    }
    out
}

async fn secret_value(env: &Env, name: &str) -> Option<String> {
    let binding = Reflect::get(env.as_ref(), &name.into()).ok()?;
    if let Some(s) = binding.as_string() {
        return Some(s);
    }
    if !binding.is_object() {
        return None;
    }
    let get = Reflect::get(&binding, &"get".into())
        .ok()?
        .dyn_into::<Function>()
        .ok()?;
    let promise = get.call0(&binding).ok()?.dyn_into::<Promise>().ok()?;
    JsFuture::from(promise).await.ok()?.as_string()
}

fn header_pairs(headers: &web_sys::Headers) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in headers.entries() {
        let Ok(pair) = pair else { continue };
        let pair: worker::js_sys::Array = pair.unchecked_into();
        if let (Some(n), Some(v)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
            out.push((n, v));
        }
    }
    out
}

/// The upstream exchange, head and body, under the tenant's timeout. Past it, or on an
/// early refusal, the fetch is aborted so the upstream's body stops downloading.
async fn fetch_upstream(
    caller: &web_sys::Request,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    proxy: &ProxyConfig,
) -> Result<Answer, UpstreamError> {
    let controller = web_sys::AbortController::new().map_err(|_| UpstreamError::Unreachable)?;
    let request = upstream_request(caller, method, url, headers, &controller.signal())
        .map_err(|_| UpstreamError::Unreachable)?;
    let exchange = exchange(request, proxy.max_response_bytes);
    let outcome = within(u64::from(proxy.timeout_ms), exchange)
        .await
        .unwrap_or(Err(UpstreamError::Timeout {
            timeout_ms: proxy.timeout_ms,
        }));
    if outcome.is_err() {
        controller.abort();
    }
    outcome
}

fn upstream_request(
    caller: &web_sys::Request,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    signal: &web_sys::AbortSignal,
) -> Result<web_sys::Request, JsValue> {
    let h = js_headers(headers)?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(&h);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    init.set_signal(Some(signal));
    if !matches!(method, "GET" | "HEAD") {
        if let Some(body) = caller.body() {
            init.set_body(&body);
        }
    }
    web_sys::Request::new_with_str_and_init(url, &init)
}

async fn exchange(request: web_sys::Request, max_bytes: u32) -> Result<Answer, UpstreamError> {
    let global: web_sys::WorkerGlobalScope = worker::js_sys::global().unchecked_into();
    let response = JsFuture::from(global.fetch_with_request(&request))
        .await
        .map_err(|e| {
            worker::console_error!(
                "upstream fetch failed: {:?}",
                e.as_string().unwrap_or_default()
            );
            UpstreamError::Unreachable
        })?;
    let response: web_sys::Response = response
        .dyn_into()
        .map_err(|_| UpstreamError::Unreachable)?;
    let status = response.status();
    check_status(status)?;
    let headers = header_pairs(&response.headers());
    check_declared_length(
        response
            .headers()
            .get("content-length")
            .ok()
            .flatten()
            .as_deref(),
        max_bytes,
    )?;
    let response = Response::from(response);
    let body = read_response(&response, cap(max_bytes))
        .await
        .map_err(|e| match e {
            ReadError::TooLarge => UpstreamError::TooLarge { max_bytes },
            ReadError::Broken => UpstreamError::Unreachable,
        })?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A cached copy, read whole; `None` (refetch) if it cannot be read or is now above the cap.
async fn read_hit(mut hit: Response, max_bytes: u32) -> Option<Answer> {
    let headers = header_pairs(&hit.headers().0);
    let body = hit.bytes().await.ok()?;
    if body.len() > cap(max_bytes) {
        return None;
    }
    Some(Answer {
        status: hit.status_code(),
        headers,
        body,
    })
}

/// Stores the raw upstream answer when the cache rules allow it. A failure to store only
/// costs a later upstream call.
async fn store(
    cache: &Cache,
    key: &str,
    slug: &str,
    proxy: &ProxyConfig,
    method: &str,
    answer: &Answer,
    caller_authorization: bool,
) {
    let find = |name: &str| {
        answer
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (cache_control, vary, age) = (find("cache-control"), find("vary"), find("age"));
    let non_empty = |s: &str| -> Option<String> { (!s.is_empty()).then(|| s.to_owned()) };
    let (cache_control, vary, age) = (non_empty(&cache_control), non_empty(&vary), non_empty(&age));
    let Some(ttl_s) = cache_policy(&CacheInput {
        method,
        status: answer.status,
        cache_control: cache_control.as_deref(),
        vary: vary.as_deref(),
        age: age.as_deref(),
        caller_authorization,
        ttl_s: proxy.cache_ttl_s,
    }) else {
        return;
    };
    let copy = build_response(
        answer.status,
        &stored_headers(&answer.headers, &proxy.inject_headers, ttl_s),
        &answer.body,
    );
    match copy {
        Ok(copy) => {
            if let Err(e) = cache.put(key, copy).await {
                worker::console_error!("proxy {slug}: cache store failed: {e}");
            }
        }
        Err(_) => worker::console_error!("proxy {slug}: building the cached copy failed"),
    }
}

/// The caller's answer: the transform when configured and the status carries a body, the
/// filtered headers, and `x-claw-cache`.
fn respond_with(
    slug: &str,
    proxy: &ProxyConfig,
    plan: &UpstreamPlan,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    cache_status: CacheStatus,
) -> Result<Response, Problem> {
    let (body, rewritten) = match &proxy.transform {
        Some(t) if plan.transforming && transform_applies(status) => {
            let out = apply_transform(&body, t).map_err(|e| {
                worker::console_error!("proxy {slug}: transform: {e}");
                ProxyError::from(e).to_problem()
            })?;
            (out, true)
        }
        _ => (body, false),
    };
    let mut headers = caller_headers(&headers, &proxy.inject_headers, rewritten);
    headers.push((
        CACHE_STATUS_HEADER.to_owned(),
        cache_status.as_str().to_owned(),
    ));
    build_response(status, &headers, &body).map_err(|_| {
        worker::console_error!("proxy {slug}: building the response failed");
        Problem::new(Code::UpstreamResponseInvalid)
    })
}

fn build_response(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Response, JsValue> {
    let h = js_headers(headers)?;
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    init.set_headers(&h);
    // Statuses that may not carry a body (and HEAD answers) get none.
    let out = if body.is_empty() {
        web_sys::Response::new_with_opt_js_u8_array_and_init(None, &init)?
    } else {
        let bytes = Uint8Array::from(body);
        web_sys::Response::new_with_opt_js_u8_array_and_init(Some(&bytes), &init)?
    };
    Ok(Response::from(out))
}
