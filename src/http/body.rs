//! Reading a platform route's request body with a hard size bound (over
//! [`super::capped::read_capped`]).

use claw_durable::problem::{Code, Problem};
use worker::Request;

use super::capped::{read_capped, ReadError};

/// Reads at most `limit` bytes of a platform route's body: a declared larger length is
/// refused before reading. `what` names the body in the 413 detail ("a tenant config").
pub async fn read_bounded(req: &mut Request, limit: usize, what: &str) -> Result<Vec<u8>, Problem> {
    let too_large =
        || Problem::new(Code::BodyTooLarge).detail(format!("{what} is at most {limit} bytes"));
    let declared = req.headers().get("content-length").ok().flatten();
    if declared
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > limit)
    {
        return Err(too_large());
    }
    let Ok(stream) = req.stream() else {
        return Ok(Vec::new());
    };
    read_capped(stream, limit).await.map_err(|e| match e {
        ReadError::TooLarge => too_large(),
        ReadError::Broken => Problem::new(Code::InvalidBody),
    })
}
