//! The HTTP client for the x402 facilitator: `POST {base}/verify` and `POST {base}/settle`
//! with a deadline over the whole exchange (connect, headers, body) and a bounded answer.
//! Reading the answer is pure (`super::read_verify` / `read_settle`).

use worker::{AbortController, Fetch, Headers, Method, Request, RequestInit};

use super::{FacilitatorFailure, MAX_FACILITATOR_RESPONSE_BYTES};
use crate::http::body::read_response;
use crate::http::capped::ReadError;
use crate::http::deadline::{within, TimedOut};
use crate::x402::X402Error;

/// `POST {base}{path}` with `body` (JSON). Returns the status and the answer, at most
/// [`MAX_FACILITATOR_RESPONSE_BYTES`] (a larger one is a bad response, not read further).
/// No answer within
/// `timeout_ms` aborts the request: [`FacilitatorFailure::Timeout`].
pub async fn post(
    base: &str,
    path: &str,
    body: &str,
    timeout_ms: u32,
) -> Result<(u16, Vec<u8>), FacilitatorFailure> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let exchange = async move {
        let headers = Headers::new();
        let _ = headers.set("content-type", "application/json");
        let _ = headers.set("accept", "application/json");
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_redirect(worker::RequestRedirect::Manual)
            .with_body(Some(body.into()));
        let req = Request::new_with_init(&format!("{base}{path}"), &init).map_err(|e| {
            worker::console_error!("facilitator request could not be built: {e}");
            FacilitatorFailure::Unreachable
        })?;
        let resp = Fetch::Request(req)
            .send_with_signal(&signal)
            .await
            .map_err(|e| {
                worker::console_error!("facilitator {path}: {e}");
                FacilitatorFailure::Unreachable
            })?;
        let status = resp.status_code();
        match read_response(&resp, MAX_FACILITATOR_RESPONSE_BYTES).await {
            Ok(bytes) => Ok((status, bytes)),
            Err(ReadError::Broken) => Err(FacilitatorFailure::Unreachable),
            Err(ReadError::TooLarge) => Err(FacilitatorFailure::BadResponse(
                X402Error::FacilitatorBadResponse(format!(
                    "answer larger than {MAX_FACILITATOR_RESPONSE_BYTES} bytes"
                )),
            )),
        }
    };
    within(u64::from(timeout_ms), exchange)
        .await
        .unwrap_or_else(|TimedOut| {
            controller.abort();
            worker::console_error!("facilitator {path}: no answer within {timeout_ms} ms");
            Err(FacilitatorFailure::Timeout)
        })
}
