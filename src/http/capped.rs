//! Reading a body with a hard size bound: a platform route's body, a facilitator's answer,
//! a paid call's tenant answer, a proxy upstream's body, Cloudflare's API answers. The rule
//! is pure ([`CappedBody`], tested natively); `super::body::read_stream` feeds it a body
//! stream's chunks in the Worker build.

/// Why a capped read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// More than the cap: nothing past it was kept.
    TooLarge,
    /// The stream broke off.
    Broken,
}

/// A body being read chunk by chunk, refused at the first chunk that would take it past
/// its limit, so a body without a declared length cannot grow past the bound.
#[derive(Debug)]
pub struct CappedBody {
    body: Vec<u8>,
    limit: usize,
}

impl CappedBody {
    pub fn new(limit: usize) -> Self {
        CappedBody {
            body: Vec::new(),
            limit,
        }
    }

    /// Room for a chunk of `len` bytes, or [`ReadError::TooLarge`]: the slice to fill.
    pub fn extend(&mut self, len: usize) -> Result<&mut [u8], ReadError> {
        let start = self.body.len();
        let end = start
            .checked_add(len)
            .filter(|&end| end <= self.limit)
            .ok_or(ReadError::TooLarge)?;
        self.body.resize(end, 0);
        Ok(&mut self.body[start..])
    }

    pub fn finish(self) -> Vec<u8> {
        self.body
    }
}

/// Whether a body whose declared `content-length` is `declared` can be read whole, in one
/// piece, within `limit`: only when a length is declared and fits (the HTTP framing then
/// holds the body to it). Otherwise `super::body::read_stream` reads it chunk by chunk.
pub fn whole_read_fits(declared: Option<&str>, limit: usize) -> bool {
    declared
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|n| n <= limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends `chunk` within the limit, as the Worker build's `body::read_stream` does.
    fn push(body: &mut CappedBody, chunk: &[u8]) -> Result<(), ReadError> {
        body.extend(chunk.len())?.copy_from_slice(chunk);
        Ok(())
    }

    fn read(parts: &[&[u8]], limit: usize) -> Result<Vec<u8>, ReadError> {
        let mut body = CappedBody::new(limit);
        for p in parts {
            push(&mut body, p)?;
        }
        Ok(body.finish())
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
            read(&[b"12345", b"", b"67890"], 10),
            Ok(b"1234567890".to_vec())
        );
        assert_eq!(
            read(&[b"12345", b"67890", b"1"], 10),
            Err(ReadError::TooLarge)
        );
        assert_eq!(read(&[b"12345678901"], 10), Err(ReadError::TooLarge));
        assert_eq!(read(&[], 0), Ok(Vec::new()));
    }

    #[test]
    fn a_refused_chunk_keeps_nothing_of_itself() {
        let mut body = CappedBody::new(4);
        push(&mut body, b"ab").unwrap();
        assert_eq!(push(&mut body, b"cde"), Err(ReadError::TooLarge));
        assert_eq!(body.extend(usize::MAX).err(), Some(ReadError::TooLarge));
        assert_eq!(body.finish(), b"ab".to_vec());
    }
}
