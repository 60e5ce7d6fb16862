//! The dispatcher's side of the tenant ledgers: one `TenantLedger` object per tenant, named
//! by the tenant's slug, spoken to over its internal fetch protocol
//! (`claw_durable::ledger::wire`: one type per body, shared with the object).

use claw_durable::problem::{Code, Problem};
use serde_json::Value;
use worker::wasm_bindgen::JsValue;
use worker::{Env, Method};

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
    let namespace = env
        .durable_object(LEDGER)
        .map_err(|e| Unreachable(format!("ledger binding: {e}")))?;
    let stub = namespace
        .id_from_name(slug)
        .and_then(|id| id.get_stub())
        .map_err(|e| Unreachable(format!("ledger stub: {e}")))?;
    let body = body.map(JsValue::from);
    let req = objects::request(
        &format!("https://ledger.internal{path_and_query}"),
        method,
        body,
    )
    .map_err(|e| Unreachable(format!("ledger request: {e}")))?;
    let mut resp = stub
        .fetch_with_request(req)
        .await
        .map_err(|e| Unreachable(format!("ledger fetch: {e}")))?;
    let status = resp.status_code();
    let body: Value = resp
        .json()
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
