//! The outbound Worker of the dispatch namespace (this Worker deployed with
//! `WORKER_ROLE=outbound`, see `wrangler.egress.toml`): every `fetch` a tenant's own Worker
//! makes arrives here first, is checked by `crate::egress::egress_decision` against
//! the tenant's `allowedHosts` (deny by default, never back into the platform), recorded,
//! and then sent on or refused with a 403 problem.
//!
//! The call's parameters (`tenant`, `allowedHosts`, `callId`) are the outbound parameters
//! the dispatcher passes to the namespace's `get`; Workers for Platforms hands them to this
//! Worker as `env` members. The local namespace emulator cannot do that, so locally (and only
//! with `OUTBOUND_PARAMS_FROM_EMULATOR=true`) they come in the `x-wfp-emulator-outbound`
//! request header instead. The header is removed before the request goes on, in both modes.
//!
//! Each subrequest is one JSON log line `{"egress": {tenant, callId, host, allowed, code}}`:
//! the record a call's usage event counts its subrequests from.

use claw_durable::problem::{Code, Problem};
use worker::js_sys::{Object, Reflect, JSON};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{web_sys, Env, Request, Response};

use crate::bindings::{
    self, ALLOW_LOOPBACK_UPSTREAMS, OUTBOUND_PARAMS_FROM_EMULATOR, PLATFORM_DOMAIN, PLATFORM_HOSTS,
};
use crate::egress::{egress_decision, EgressDecision, EgressPolicy, EgressRecord, OutboundParams};
use crate::http::respond;
use crate::proxy::{platform_hosts, setting_enabled};

/// The namespace emulator's stand-in for outbound parameters (local runs only).
pub const EMULATOR_PARAMS_HEADER: &str = "x-wfp-emulator-outbound";
/// On every answer to the tenant: `allowed` (the destination's response) or `denied`.
pub const EGRESS_HEADER: &str = "x-claw-egress";

pub async fn handle(req: Request, env: &Env) -> Response {
    let inner = req.inner();
    let params = params(env, &inner.headers());
    let policy = EgressPolicy {
        platform: platform_hosts(
            &bindings::var(env, PLATFORM_DOMAIN).unwrap_or_default(),
            bindings::var(env, PLATFORM_HOSTS).as_deref(),
            None,
        ),
        allow_loopback: setting_enabled(bindings::var(env, ALLOW_LOOPBACK_UPSTREAMS).as_deref()),
    };
    let url = inner.url();
    let decision = egress_decision(&params.allowed_hosts, &url, &policy);
    worker::console_log!(
        "{}",
        EgressRecord::new(&params, &url, &decision).to_log_line()
    );
    let outcome = match decision {
        EgressDecision::Deny(d) => Err(Problem::new(d.code()).detail(d.reason())),
        EgressDecision::Allow => forward(inner).await.map_err(|e| {
            worker::console_error!(
                "egress for {} failed: {}",
                params.tenant,
                e.as_string().unwrap_or_default()
            );
            Problem::new(Code::EgressFetchFailed)
        }),
    };
    let (mut response, marker) = match outcome {
        Ok(r) => (r, "allowed"),
        Err(p) => (respond::problem(&p), "denied"),
    };
    let _ = response.headers_mut().set(EGRESS_HEADER, marker);
    response
}

fn params(env: &Env, headers: &web_sys::Headers) -> OutboundParams {
    if setting_enabled(bindings::var(env, OUTBOUND_PARAMS_FROM_EMULATOR).as_deref()) {
        return headers
            .get(EMULATOR_PARAMS_HEADER)
            .ok()
            .flatten()
            .map(|h| OutboundParams::from_json(&h))
            .unwrap_or_default();
    }
    // Workers for Platforms: the parameters are members of env.
    let collected = Object::new();
    for name in ["tenant", "allowedHosts", "callId"] {
        if let Ok(v) = Reflect::get(env.as_ref(), &name.into()) {
            let _ = Reflect::set(&collected, &name.into(), &v);
        }
    }
    JSON::stringify(&collected)
        .ok()
        .and_then(|s| s.as_string())
        .map(|s| OutboundParams::from_json(&s))
        .unwrap_or_default()
}

/// Sends the tenant's request on as it is (body streamed), without the emulator's header
/// and without following redirects: a redirect comes back to the tenant's runtime, whose
/// next request passes through here again.
async fn forward(request: &web_sys::Request) -> Result<Response, JsValue> {
    let headers = web_sys::Headers::new_with_headers(&request.headers())?;
    headers.delete(EMULATOR_PARAMS_HEADER)?;
    let init = web_sys::RequestInit::new();
    init.set_headers(&headers);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    let onward = web_sys::Request::new_with_request_and_init(request, &init)?;
    let global: web_sys::WorkerGlobalScope = worker::js_sys::global().unchecked_into();
    let answer: web_sys::Response = JsFuture::from(global.fetch_with_request(&onward))
        .await?
        .dyn_into()?;
    // The answer's headers are immutable: a copy takes the marker.
    crate::http::respond::restream(&answer, |_| false)
}
