//! Reading bodies with a hard size bound (the rule: [`super::capped`]): a platform route's
//! request body, and any answer the platform reads (a facilitator's, a tenant's, an
//! upstream's, Cloudflare's API).
//!
//! A body with a declared length within the bound is read whole in one native call
//! (`arrayBuffer()`; the HTTP framing holds it to that length). Any other is read through
//! one reader, a native `read()` per chunk, instead of workers-rs's stream adapter, which
//! takes and releases a reader lock on every poll (a tenth of a paid call's CPU before).

use claw_durable::problem::{Code, Problem};
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::prelude::*;
use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{ReadableStream, ReadableStreamDefaultReader};
use worker::{Request, Response, ResponseBody};

use super::capped::{whole_read_fits, CappedBody, ReadError};

#[wasm_bindgen]
extern "C" {
    /// What a reader's `read()` resolves to.
    type ReadChunk;
    #[wasm_bindgen(method, getter)]
    fn done(this: &ReadChunk) -> bool;
    #[wasm_bindgen(method, getter)]
    fn value(this: &ReadChunk) -> JsValue;
}

/// Reads `stream` chunk by chunk through one reader, handing each chunk to `take`, until the
/// stream ends (`Ok`) or breaks off or `take` refuses a chunk (that `Err`, and the stream is
/// cancelled: nothing more is wanted of it).
async fn each_chunk(
    stream: &ReadableStream,
    mut take: impl FnMut(&Uint8Array) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let reader = ReadableStreamDefaultReader::new(stream).map_err(|_| ReadError::Broken)?;
    loop {
        let chunk: ReadChunk = JsFuture::from(reader.read())
            .await
            .map_err(|_| ReadError::Broken)?
            .unchecked_into();
        if chunk.done() {
            return Ok(());
        }
        let taken = chunk
            .value()
            .dyn_into::<Uint8Array>()
            .map_err(|_| ReadError::Broken)
            .and_then(|bytes| take(&bytes));
        if let Err(e) = taken {
            // The promise settles either way.
            let _ = reader.cancel();
            return Err(e);
        }
    }
}

/// Reads `stream` to its end within `limit` bytes; past it, the stream is cancelled.
pub async fn read_stream(stream: &ReadableStream, limit: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = CappedBody::new(limit);
    each_chunk(stream, |bytes| {
        bytes.copy_to(body.extend(bytes.length() as usize)?);
        Ok(())
    })
    .await?;
    Ok(body.finish())
}

/// Reads and drops at most `limit` bytes of a request body that will not be used (the
/// request is refused before its route reads it), so the client gets the refusal on a
/// connection still in step instead of seeing it closed under a body it is still sending.
/// A longer body is cancelled past the limit (its connection may then close), as HTTP
/// servers commonly do (Go's reads up to 256 KB).
pub async fn discard(req: &Request, limit: usize) {
    let Some(stream) = req.inner().body() else {
        return;
    };
    let mut seen = 0usize;
    let _ = each_chunk(&stream, |bytes| {
        seen = seen.saturating_add(bytes.length() as usize);
        if seen > limit {
            Err(ReadError::TooLarge)
        } else {
            Ok(())
        }
    })
    .await;
}

/// A response's body within `limit` bytes (see the module docs).
pub async fn read_response(resp: &Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    match resp.body() {
        ResponseBody::Empty => Ok(Vec::new()),
        ResponseBody::Body(bytes) if bytes.len() <= limit => Ok(bytes.clone()),
        ResponseBody::Body(_) => Err(ReadError::TooLarge),
        ResponseBody::Stream(stream) => {
            let declared = resp.headers().get("content-length").ok().flatten();
            if whole_read_fits(declared.as_deref(), limit) {
                claw_durable::http::body_bytes(resp)
                    .await
                    .map_err(|_| ReadError::Broken)
            } else {
                read_stream(stream, limit).await
            }
        }
    }
}

/// Reads at most `limit` bytes of a platform route's body: a declared larger length is
/// refused before reading. `what` names the body in the 413 detail ("a tenant config").
pub async fn read_bounded(req: &mut Request, limit: usize, what: &str) -> Result<Vec<u8>, Problem> {
    let too_large =
        || Problem::new(Code::BodyTooLarge).detail(format!("{what} is at most {limit} bytes"));
    let declared = req.headers().get("content-length").ok().flatten();
    if declared
        .as_deref()
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > limit)
    {
        return Err(too_large());
    }
    let Some(stream) = req.inner().body() else {
        return Ok(Vec::new());
    };
    read_stream(&stream, limit).await.map_err(|e| match e {
        ReadError::TooLarge => too_large(),
        ReadError::Broken => Problem::new(Code::InvalidBody),
    })
}
