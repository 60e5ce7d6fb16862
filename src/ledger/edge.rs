//! The dispatcher's side of the tenant ledgers: one `TenantLedger` object per tenant, named
//! by the tenant's slug, spoken to over its internal fetch protocol
//! (`claw_durable::ledger::wire`: one type per body, shared with the object).

use claw_durable::problem::{Code, Problem};
use serde_json::Value;
use worker::wasm_bindgen::JsValue;
use worker::{Env, Method};

use claw_durable::ledger::wire::ANSWER_META_HEADER;

use crate::bindings::LEDGER;
use crate::http::objects;

/// What the ledger object answered: its status and JSON (a record, or a problem).
#[derive(Debug)]
pub struct LedgerAnswer {
    pub status: u16,
    pub body: Value,
}

impl LedgerAnswer {
    /// The answer as a problem, when it is one.
    pub fn problem(&self) -> Option<Problem> {
        serde_json::from_value(self.body.clone()).ok()
    }
}

/// The ledger object could not be asked (binding missing, object unreachable, unreadable
/// answer): the caller decides what that means for its request.
#[derive(Debug)]
pub struct Unreachable(pub String);

/// Sends one request to `slug`'s ledger. `path_and_query` starts with `/`; `body` is a wire
/// type's JSON ([`wire_json`]).
pub async fn call(
    env: &Env,
    slug: &str,
    method: Method,
    path_and_query: &str,
    body: Option<String>,
) -> Result<LedgerAnswer, Unreachable> {
    let body = body.map(JsValue::from);
    let req = objects::request(
        &format!("https://ledger.internal{path_and_query}"),
        method,
        body,
    )
    .map_err(|e| Unreachable(format!("ledger request: {e}")))?;
    let resp = send(env, slug, req).await?;
    let status = resp.status_code();
    let body: Value = claw_durable::http::body_json(&resp)
        .await
        .map_err(|e| Unreachable(format!("ledger answer {status}: {e}")))?;
    Ok(LedgerAnswer { status, body })
}

/// A ledger answer as the platform API's response: its status and JSON as they are
/// (problem+json stays problem+json).
pub fn to_response(answer: &LedgerAnswer) -> Result<worker::Response, Problem> {
    match answer.problem().filter(|_| answer.status >= 400) {
        Some(p) => Ok(crate::http::respond::problem(&p)),
        None => crate::http::respond::json(answer.status, &answer.body),
    }
}

pub fn unavailable(e: &Unreachable) -> Problem {
    worker::console_error!("ledger_unavailable: {}", e.0);
    Problem::new(Code::LedgerUnavailable)
}

/// A wire request's JSON. The wire types are plain strings, integers and booleans:
/// serializing them cannot fail.
pub fn wire_json<T: serde::Serialize>(request: &T) -> String {
    serde_json::to_string(request).unwrap_or_default()
}

/// An answer that carries its metadata in a header and raw bytes as its body
/// (`/payments/answer`, `/payments/recover`).
pub struct RawAnswer {
    pub status: u16,
    pub meta: Option<String>,
    pub body: Vec<u8>,
}

impl RawAnswer {
    /// The answer as a problem, when it is one.
    pub fn problem(&self) -> Option<Problem> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// `POST {path}` to `slug`'s ledger with `meta` in [`ANSWER_META_HEADER`] and `body` raw.
pub async fn call_raw(
    env: &Env,
    slug: &str,
    path: &str,
    meta: Option<&str>,
    body: Vec<u8>,
) -> Result<RawAnswer, Unreachable> {
    let headers = worker::Headers::new();
    if let Some(m) = meta {
        headers
            .set(ANSWER_META_HEADER, m)
            .map_err(|e| Unreachable(format!("answer metadata: {e}")))?;
    }
    let mut init = worker::RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(
            worker::js_sys::Uint8Array::from(body.as_slice()).into(),
        ));
    let req = worker::Request::new_with_init(&format!("https://ledger.internal{path}"), &init)
        .map_err(|e| Unreachable(format!("ledger request: {e}")))?;
    let resp = send(env, slug, req).await?;
    let status = resp.status_code();
    let meta = resp.headers().get(ANSWER_META_HEADER).ok().flatten();
    let body = claw_durable::http::body_bytes(&resp)
        .await
        .map_err(|e| Unreachable(format!("ledger answer {status}: {e}")))?;
    Ok(RawAnswer { status, meta, body })
}

/// `req` to `slug`'s ledger object.
async fn send(
    env: &Env,
    slug: &str,
    req: worker::Request,
) -> Result<worker::Response, Unreachable> {
    let stub = env
        .durable_object(LEDGER)
        .and_then(|ns| ns.get_by_name(slug))
        .map_err(|e| Unreachable(format!("ledger stub: {e}")))?;
    stub.fetch_with_request(req)
        .await
        .map_err(|e| Unreachable(format!("ledger fetch: {e}")))
}
