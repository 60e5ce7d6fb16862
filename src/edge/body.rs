//! Reading a request body the platform itself consumes, with a hard size limit.

use claw_durable::problem::Problem;
use futures::StreamExt;
use worker::Request;

/// Reads at most `limit` bytes: a declared larger length is refused before reading, and the
/// body is read as a stream, so a chunked body without a length cannot grow past the limit.
/// `what` names the body in the 413 detail ("a tenant config").
pub async fn read_bounded(req: &mut Request, limit: usize, what: &str) -> Result<Vec<u8>, Problem> {
    let too_large = || {
        Problem::new(413, "body_too_large", "Request body too large")
            .detail(format!("{what} is at most {limit} bytes"))
    };
    let declared = req.headers().get("content-length").ok().flatten();
    if declared
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > limit)
    {
        return Err(too_large());
    }
    let Ok(mut stream) = req.stream() else {
        return Ok(Vec::new());
    };
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|_| Problem::new(400, "invalid_body", "Request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
