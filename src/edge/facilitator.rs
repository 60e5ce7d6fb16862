//! The HTTP client for the x402 facilitator: `POST {base}/verify` and `POST {base}/settle`
//! with a deadline over the whole exchange (connect, headers, body) and a bounded answer.
//! Reading the answer is pure (`crate::paywall_rules::read_verify` / `read_settle`).

use std::time::Duration;

use futures::future::{select, Either};
use futures::StreamExt;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

use crate::paywall_rules::FacilitatorFailure;
use crate::x402::facilitator::MAX_FACILITATOR_RESPONSE_BYTES;

/// `POST {base}{path}` with `body` (JSON). Returns the status and at most
/// [`MAX_FACILITATOR_RESPONSE_BYTES`] + 1 bytes of the answer (one more than allowed, so
/// the parser refuses an oversized answer without reading it all). No answer within
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
        let mut resp = Fetch::Request(req)
            .send_with_signal(&signal)
            .await
            .map_err(|e| {
                worker::console_error!("facilitator {path}: {e}");
                FacilitatorFailure::Unreachable
            })?;
        let status = resp.status_code();
        let mut bytes = Vec::new();
        if let Ok(mut stream) = resp.stream() {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|_| FacilitatorFailure::Unreachable)?;
                let room = MAX_FACILITATOR_RESPONSE_BYTES + 1 - bytes.len();
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if bytes.len() > MAX_FACILITATOR_RESPONSE_BYTES {
                    break;
                }
            }
        }
        Ok((status, bytes))
    };
    let deadline = Delay::from(Duration::from_millis(u64::from(timeout_ms)));
    match select(Box::pin(exchange), deadline).await {
        Either::Left((outcome, _)) => outcome,
        Either::Right(((), _)) => {
            controller.abort();
            worker::console_error!("facilitator {path}: no answer within {timeout_ms} ms");
            Err(FacilitatorFailure::Timeout)
        }
    }
}
