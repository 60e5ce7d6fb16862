//! Reading any byte stream with a hard size bound: a platform route's body, a facilitator's
//! answer, a paid call's tenant answer, a proxy upstream's body. Pure (any `Stream`), so it
//! is tested natively.

use futures::{Stream, StreamExt};

/// Why a capped read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// More than the cap: nothing past it was kept.
    TooLarge,
    /// The stream broke off.
    Broken,
}

/// Reads `stream` to its end, refusing at the first chunk that would take it past
/// `limit` bytes, so a body without a declared length cannot grow past the bound.
pub async fn read_capped<S, E>(mut stream: S, limit: usize) -> Result<Vec<u8>, ReadError>
where
    S: Stream<Item = Result<Vec<u8>, E>> + Unpin,
{
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ReadError::Broken)?;
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether a body whose declared `content-length` is `declared` can be read whole, in one
/// piece, within `limit`: only when a length is declared and fits (the HTTP framing then
/// holds the body to it). Otherwise [`read_capped`] reads it chunk by chunk.
pub fn whole_read_fits(declared: Option<&str>, limit: usize) -> bool {
    declared
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|n| n <= limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::stream;

    fn chunks(parts: &[&[u8]]) -> impl Stream<Item = Result<Vec<u8>, ()>> + Unpin {
        stream::iter(parts.iter().map(|p| Ok(p.to_vec())).collect::<Vec<_>>())
    }

    #[test]
    fn only_a_declared_length_within_the_cap_is_read_whole() {
        assert!(whole_read_fits(Some("10"), 10));
        assert!(whole_read_fits(Some(" 0 "), 10));
        assert!(!whole_read_fits(Some("11"), 10));
        assert!(!whole_read_fits(Some("-1"), 10));
        assert!(!whole_read_fits(Some("ten"), 10));
        assert!(!whole_read_fits(None, 10));
    }

    #[test]
    fn reads_up_to_the_cap_and_refuses_past_it() {
        assert_eq!(
            block_on(read_capped(chunks(&[b"12345", b"", b"67890"]), 10)),
            Ok(b"1234567890".to_vec())
        );
        assert_eq!(
            block_on(read_capped(chunks(&[b"12345", b"67890", b"1"]), 10)),
            Err(ReadError::TooLarge)
        );
        assert_eq!(
            block_on(read_capped(chunks(&[b"12345678901"]), 10)),
            Err(ReadError::TooLarge)
        );
        assert_eq!(block_on(read_capped(chunks(&[]), 0)), Ok(Vec::new()));
    }

    #[test]
    fn a_broken_stream_is_an_error() {
        let s = stream::iter(vec![Ok(b"ab".to_vec()), Err(())]);
        assert_eq!(block_on(read_capped(s, 10)), Err(ReadError::Broken));
    }
}
