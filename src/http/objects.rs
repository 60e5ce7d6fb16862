//! Requests to the platform's Durable Objects, which answer on internal fetch routes.

use worker::wasm_bindgen::JsValue;
use worker::{Headers, Method, Request, RequestInit};

/// A request for an object's internal route `url`; a `json` body (text or bytes of JSON)
/// goes with its content type.
pub fn request(url: &str, method: Method, json: Option<JsValue>) -> worker::Result<Request> {
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some(body) = json {
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        init.with_headers(headers).with_body(Some(body));
    }
    Request::new_with_init(url, &init)
}
