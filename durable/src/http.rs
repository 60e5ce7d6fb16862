//! Glue shared by the objects: responses, request bodies, alarms, the clock.

use std::cell::Cell;

use serde::Serialize;
use worker::wasm_bindgen::JsValue;
use worker::{Headers, Request, Response, Result, ScheduledTime, State};

use crate::problem::{Code, Problem, CONTENT_TYPE};

pub fn json<T: Serialize>(status: u16, body: &T) -> Result<Response> {
    let text = serde_json::to_string(body).map_err(|e| worker::Error::RustError(e.to_string()))?;
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    Ok(Response::ok(text)?
        .with_status(status)
        .with_headers(headers))
}

pub fn problem(p: &Problem) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", CONTENT_TYPE)?;
    Ok(Response::ok(p.to_json())?
        .with_status(p.status)
        .with_headers(headers))
}

/// Milliseconds since the epoch, from the runtime's clock.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// An alarm time from epoch milliseconds. The cores keep times below 2^53, which an f64
/// (a JS Date) carries exactly.
pub fn at_ms(ms: i64) -> ScheduledTime {
    ScheduledTime::new(js_sys::Date::new(&JsValue::from_f64(ms as f64)))
}

/// Makes sure an alarm is pending, setting one for `due_ms` if none is; `known` remembers
/// (per instance, re-learned after eviction) that one is, to skip the storage round trip.
/// A failure is logged, not returned: the caller's write already stands, and the next call
/// tries again.
pub async fn ensure_alarm(state: &State, known: &Cell<bool>, due_ms: i64, what: &str) {
    if known.get() {
        return;
    }
    let storage = state.storage();
    let armed = match storage.get_alarm().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => storage.set_alarm(at_ms(due_ms)).await,
        Err(e) => Err(e),
    };
    match armed {
        Ok(()) => known.set(true),
        Err(e) => worker::console_error!("{what}: alarm not set: {e}"),
    }
}

/// Reads a request body of at most `limit` bytes; a larger one is a 413 problem.
pub async fn read_body(
    req: &mut Request,
    limit: usize,
) -> Result<std::result::Result<Vec<u8>, Problem>> {
    let too_large = || Problem::new(Code::BodyTooLarge).detail(format!("at most {limit} bytes"));
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Ok(Err(too_large()));
    }
    let body = req.bytes().await?;
    if body.len() > limit {
        return Ok(Err(too_large()));
    }
    Ok(Ok(body))
}
