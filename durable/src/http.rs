//! Glue shared by the objects: responses, request bodies, alarms, the clock.

use std::cell::Cell;

use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Headers, Method, Request, Response, ResponseBody, Result, ScheduledTime, State, Url};

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

/// A response's whole body, read in one native call (`arrayBuffer()` on the body stream)
/// instead of workers-rs's `bytes()`/`json()`/`text()`, which pull the stream through a
/// reader chunk by chunk (getReader, read, releaseLock: Wasm<->JS crossings per chunk; about
/// a tenth of a paid call's CPU when the platform's own objects answered that way). For
/// answers the platform trusts to be small (its objects, or a declared length within a cap,
/// see `claw_edge::http::capped::whole_read_fits`); anything else goes through a capped read.
pub async fn body_bytes(resp: &Response) -> Result<Vec<u8>> {
    match resp.body() {
        ResponseBody::Empty => Ok(Vec::new()),
        ResponseBody::Body(bytes) => Ok(bytes.clone()),
        ResponseBody::Stream(stream) => {
            let whole = worker::web_sys::Response::new_with_opt_readable_stream(Some(stream))?;
            let buffer = JsFuture::from(whole.array_buffer()?).await?;
            Ok(js_sys::Uint8Array::new(&buffer).to_vec())
        }
    }
}

/// [`body_bytes`] as UTF-8 text.
pub async fn body_text(resp: &Response) -> Result<String> {
    String::from_utf8(body_bytes(resp).await?).map_err(|e| worker::Error::RustError(e.to_string()))
}

/// Longest piece of a failed answer that goes into a log line.
pub const MAX_LOGGED_ANSWER_BYTES: usize = 200;

/// The start of a failed answer's body, for a log line: at most
/// [`MAX_LOGGED_ANSWER_BYTES`], cut at a character boundary; empty when unreadable.
pub async fn answer_excerpt(resp: &Response) -> String {
    let mut text = body_text(resp).await.unwrap_or_default();
    text.truncate(text.floor_char_boundary(MAX_LOGGED_ANSWER_BYTES));
    text
}

/// [`body_bytes`] as JSON.
pub async fn body_json<T: DeserializeOwned>(resp: &Response) -> Result<T> {
    serde_json::from_slice(&body_bytes(resp).await?).map_err(worker::Error::from)
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

/// A request as the objects' routes read it: the method, the URL and the body.
pub struct Call {
    pub method: Method,
    pub url: Url,
    pub body: Vec<u8>,
}

impl Call {
    /// Reads `req`, with its body (at most `limit` bytes, else the 413 problem) when its
    /// method is one of `with_body`; other methods get an empty body.
    pub async fn read(
        req: &mut Request,
        with_body: &[Method],
        limit: usize,
    ) -> Result<std::result::Result<Call, Problem>> {
        let url = req.url()?;
        let method = req.method();
        let body = if with_body.contains(&method) {
            match read_body(req, limit).await? {
                Ok(body) => body,
                Err(p) => return Ok(Err(p)),
            }
        } else {
            Vec::new()
        };
        Ok(Ok(Call { method, url, body }))
    }

    /// The path's segments, empty ones included.
    pub fn segments(&self) -> Vec<&str> {
        self.url
            .path_segments()
            .map(|s| s.collect())
            .unwrap_or_default()
    }
}

/// A route's answer: a status and its JSON body, or a problem.
pub type Answer = std::result::Result<(u16, serde_json::Value), Problem>;

/// The response for a route's answer.
pub fn reply(answer: Answer) -> Result<Response> {
    match answer {
        Ok((status, value)) => json(status, &value),
        Err(p) => problem(&p),
    }
}

/// A query parameter the route cannot use.
pub fn invalid_query(field: &str, detail: impl Into<String>) -> Problem {
    Problem::new(Code::InvalidQuery).field(field).detail(detail)
}

/// A record as a JSON value for an answer.
pub fn to_value<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
