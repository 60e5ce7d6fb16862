//! Building responses without ever failing.

use claw_durable::problem::{Problem, CONTENT_TYPE};
use serde::Serialize;
use worker::{Headers, Response, ResponseBuilder};

/// A platform answer: `body` with its content type, never cached.
pub fn with_body(status: u16, content_type: &str, body: Vec<u8>) -> Response {
    let headers = Headers::new();
    // Valid header names and values: setting them cannot fail.
    let _ = headers.set("content-type", content_type);
    let _ = headers.set("cache-control", "no-store");
    ResponseBuilder::new()
        .with_status(status)
        .with_headers(headers)
        .fixed(body)
}

pub fn problem(p: &Problem) -> Response {
    let mut r = with_body(p.status, CONTENT_TYPE, p.to_json().into_bytes());
    if p.status == 401 {
        let _ = r.headers_mut().set("www-authenticate", "Bearer");
    }
    r
}

pub fn json<T: Serialize>(status: u16, body: &T) -> Result<Response, Problem> {
    let text = serde_json::to_string(body).map_err(|e| Problem::internal(e.to_string()))?;
    Ok(with_body(status, "application/json", text.into_bytes()))
}

/// Milliseconds since the epoch, from the runtime's clock.
pub fn now_ms() -> i64 {
    worker::js_sys::Date::now() as i64
}
