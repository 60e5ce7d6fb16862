//! The rate-limit step of a tenant call (the glue of [`crate::ratelimit`], which has the
//! rules): identify the caller, ask its limiter object, then, if still admitted, one shard
//! of the tenant's global limit, in that order; answer 429 (or 503 when a limiter cannot be
//! reached and the tenant fails closed) or let the call through with its RateLimit fields.

use std::cell::Cell;

use claw_durable::limiter::Decision;
use claw_durable::problem::Problem;
use claw_durable::tenant::TenantConfig;
use worker::wasm_bindgen::JsValue;
use worker::{Env, Headers, Method, Request, Response};

use crate::bindings::RATE_LIMITER;
use crate::http::deadline::within;
use crate::http::{objects, respond};
use crate::limiter::{
    applies, identify, identify_signed, identify_unpaid, plan, unusable_policy, Admission,
    CallerHeaders, Check, Checked, Refusal, Verdict, HEADER_CONNECTING_IP,
};
use crate::x402::{HEADER_PAYMENT_SIGNATURE, HEADER_X_PAYMENT};

/// The limiter object's internal route (the host is never resolved).
const CHECK_URL: &str = "https://limiter.internal/check";

thread_local! {
    /// Round-robin counter over global shards, per isolate. It starts at a random point so
    /// that fresh isolates do not all begin on shard 0.
    static SHARD_SEQ: Cell<Option<u64>> = const { Cell::new(None) };
}

fn next_shard_seq() -> u64 {
    SHARD_SEQ.with(|c| {
        // In [0, 2^32): the cast cannot truncate.
        let n = c
            .get()
            .unwrap_or_else(|| (worker::js_sys::Math::random() * 4_294_967_296.0) as u64);
        c.set(Some(n.wrapping_add(1)));
        n
    })
}

/// Runs the step. `Ok`: the call goes on, and every response to it carries the admission's
/// headers ([`admitted`]). `Err`: answer [`refused`] and stop.
///
/// Hook for usage events (issue 5): a `Refusal` with `RefusalReason::RateLimited` is a
/// non-countable `rate_limited` event of `refusal.caller_key`.
pub async fn check(req: &Request, env: &Env, config: &TenantConfig) -> Result<Admission, Refusal> {
    if !applies(config) {
        return Ok(Admission::default());
    }
    let (caller_key, signer) = with_headers_of(req, config, identify_signed);
    let signed = |v: Verdict| match v {
        Verdict::Admit(a) => Ok(Admission { signer, ..a }),
        Verdict::Refuse(r) => Err(r),
    };
    let plan = match plan(config, caller_key.clone(), next_shard_seq()) {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(Admission::default()),
        Err(e) => {
            worker::console_error!("rate limit policy of {} unusable: {e}", config.slug);
            return signed(unusable_policy(config, caller_key));
        }
    };
    let caller = match &plan.caller {
        Some(c) => Some(ask(env, c, &config.slug, "caller").await),
        None => None,
    };
    let global = match &plan.global {
        Some(g) if plan.wants_global(caller.as_ref()) => {
            Some(ask(env, g, &config.slug, "global").await)
        }
        _ => None,
    };
    signed(plan.verdict(caller, global))
}

/// The response to a refused call: problem+json with its RateLimit fields and Retry-After.
pub fn refused(refusal: &Refusal) -> Response {
    with_headers(respond::problem(&refusal.problem), &refusal.headers)
}

/// The answer to an admitted call, or the platform problem it ended in, with the
/// admission's RateLimit fields (which replace any the tenant set: these are the
/// platform's limits).
pub fn admitted(admission: &Admission, answer: Result<Response, Problem>) -> Response {
    let response = answer.unwrap_or_else(|p| respond::problem(&p));
    with_headers(response, &admission.headers)
}

fn with_headers(mut response: Response, headers: &[(&'static str, String)]) -> Response {
    if headers.is_empty()
        || headers
            .iter()
            .all(|(name, value)| response.headers_mut().set(name, value).is_ok())
    {
        return response;
    }
    // The headers were immutable (a response passed on as fetched): answer with a copy.
    let copy = Headers::new();
    for (name, value) in response.headers().entries() {
        let _ = copy.append(&name, &value);
    }
    for (name, value) in headers {
        let _ = copy.set(name, value);
    }
    response.with_headers(copy)
}

/// Who the caller is for `config`'s limits (`crate::limiter::identify`): read from the
/// payment, API key and connecting-IP headers.
pub fn caller_key(req: &Request, config: &TenantConfig) -> String {
    with_headers_of(req, config, identify)
}

/// [`caller_key`] without reading payment headers (`crate::limiter::identify_unpaid`).
pub fn caller_key_unpaid(req: &Request, config: &TenantConfig) -> String {
    with_headers_of(req, config, identify_unpaid)
}

fn with_headers_of<T>(
    req: &Request,
    config: &TenantConfig,
    identify: fn(&TenantConfig, &CallerHeaders<'_>) -> T,
) -> T {
    let headers = req.headers();
    let get = |name: &str| headers.get(name).ok().flatten();
    let (x_payment, payment_signature, connecting_ip) = (
        get(HEADER_X_PAYMENT),
        get(HEADER_PAYMENT_SIGNATURE),
        get(HEADER_CONNECTING_IP),
    );
    let api_key = config.api_key_header.as_deref().and_then(get);
    identify(
        config,
        &CallerHeaders {
            x_payment: x_payment.as_deref(),
            payment_signature: payment_signature.as_deref(),
            api_key: api_key.as_deref(),
            connecting_ip: connecting_ip.as_deref(),
        },
    )
}

/// A limiter object that has not answered by then counts as unreachable, and the tenant's
/// failure mode decides. An admission it stores late costs that caller one unit; it can never
/// admit more than the policy.
const LIMITER_TIMEOUT_MS: u64 = 2_000;

/// Asks one limiter object; a failure is logged and reported as
/// [`Checked::Failed`] for the tenant's failure mode to decide.
async fn ask(env: &Env, check: &Check, slug: &str, which: &str) -> Checked {
    let outcome = within(LIMITER_TIMEOUT_MS, fetch_decision(env, check))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {LIMITER_TIMEOUT_MS} ms")));
    match outcome {
        Ok(d) => Checked::Decided(d),
        Err(e) => {
            worker::console_error!("rate limiter unavailable ({which} limit of {slug}): {e}");
            Checked::Failed
        }
    }
}

async fn fetch_decision(env: &Env, check: &Check) -> Result<Decision, String> {
    let namespace = env
        .durable_object(RATE_LIMITER)
        .map_err(|e| format!("binding {RATE_LIMITER}: {e}"))?;
    let stub = namespace
        .id_from_name(&check.object)
        .and_then(|id| id.get_stub())
        .map_err(|e| format!("stub: {e}"))?;
    let body = serde_json::to_string(&check.request).map_err(|e| e.to_string())?;
    let req = objects::request(CHECK_URL, Method::Post, Some(JsValue::from_str(&body)))
        .map_err(|e| format!("request: {e}"))?;
    let resp = stub
        .fetch_with_request(req)
        .await
        .map_err(|e| format!("fetch: {e}"))?;
    let status = resp.status_code();
    if status != 200 {
        let text = claw_durable::http::answer_excerpt(&resp).await;
        return Err(format!("answered {status}: {text}"));
    }
    claw_durable::http::body_json::<Decision>(&resp)
        .await
        .map_err(|e| format!("unreadable decision: {e}"))
}
