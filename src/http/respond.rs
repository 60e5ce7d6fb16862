//! Building responses without ever failing.

use claw_durable::problem::{Problem, CONTENT_TYPE};
use serde::Serialize;
use worker::wasm_bindgen::JsValue;
use worker::{web_sys, Headers, Response, ResponseBuilder};

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

/// `answer` with its body streamed through and its headers copied (a fetched answer's
/// headers are immutable), minus those `drop` selects by lowercase name. Its status text is
/// not carried (HTTP/2 and 3 have none). A status the runtime's `Response` refuses (outside
/// 200-599, e.g. a 101 upgrade) is an `Err` here, never a panic where the Worker answers.
pub fn restream(
    answer: &web_sys::Response,
    drop: impl Fn(&str) -> bool,
) -> Result<Response, JsValue> {
    let status = answer.status();
    if !(200..=599).contains(&status) {
        return Err(JsValue::from_str("answer status outside 200-599"));
    }
    let headers = web_sys::Headers::new_with_headers(&answer.headers())?;
    drop_headers(&headers, drop)?;
    // Built on the Rust side: the runtime's Response is made once, where the Worker answers
    // (workers-rs converts it then), not here and again there.
    let builder = worker::ResponseBuilder::new()
        .with_status(status)
        .with_headers(worker::Headers(headers));
    Ok(match answer.body() {
        Some(body) => builder.stream(body),
        None => builder.empty(),
    })
}

/// Deletes every header whose (lowercase) name `drop` selects.
pub fn drop_headers(
    headers: &web_sys::Headers,
    drop: impl Fn(&str) -> bool,
) -> Result<(), JsValue> {
    let doomed: Vec<String> = headers
        .keys()
        .into_iter()
        .filter_map(|k| k.ok().and_then(|k| k.as_string()))
        .filter(|k| drop(k))
        .collect();
    for name in doomed {
        headers.delete(&name)?;
    }
    Ok(())
}

/// Headers from name-value pairs (appended in order, so repeated names stay repeated).
pub fn js_headers(pairs: &[(String, String)]) -> Result<web_sys::Headers, JsValue> {
    let h = web_sys::Headers::new()?;
    for (n, v) in pairs {
        h.append(n, v)?;
    }
    Ok(h)
}
