//! `multipart/form-data` (RFC 7578 over RFC 2046), both ways: reading a creator's upload
//! and writing the bundle sent to Cloudflare. Written here rather than taken from a crate:
//! the upload is already in memory (bounded), the format needed is small, and `multer`
//! (the mature crate) is a streaming parser built around `http`/`bytes` streams that would
//! add more than it saves in a Worker.
//!
//! Reading is strict and bounded: the boundary from the `Content-Type` (1 to 70 characters),
//! at most [`MAX_PARTS`] parts, at most [`MAX_HEADER_BYTES`] of headers per part, each part
//! needs `Content-Disposition: form-data; name="..."`, and the body must end with the close
//! delimiter (a truncated upload is an error, never a shorter one). Preamble and epilogue
//! are ignored, as RFC 2046 says.

/// More parts than any valid upload has (modules plus metadata).
pub const MAX_PARTS: usize = 128;
/// Headers of one part.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The form field name (`name=`): for Cloudflare's layout, `metadata` or a module's name.
    pub name: String,
    pub filename: Option<String>,
    /// The part's `Content-Type`, as sent (absent: `None`).
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("the content type must be multipart/form-data with a boundary")]
    NotMultipart,
    #[error("the multipart boundary must be 1 to 70 characters")]
    BadBoundary,
    #[error("the body does not start with the multipart boundary")]
    NoFirstBoundary,
    #[error("the body ends before the closing boundary")]
    Truncated,
    #[error("a part's headers are malformed: {0}")]
    BadHeaders(String),
    #[error("a part has no Content-Disposition form-data name")]
    NoName,
    #[error("more than {MAX_PARTS} parts")]
    TooManyParts,
}

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let (essence, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !essence.trim().eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::NotMultipart);
    }
    let b = header_params(params)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)
        .ok_or(MultipartError::NotMultipart)?;
    if b.is_empty() || b.len() > 70 || b.bytes().any(|c| c.is_ascii_control()) {
        return Err(MultipartError::BadBoundary);
    }
    Ok(b)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() || from > hay.len() - needle.len() {
        return None;
    }
    let first = needle[0];
    let last_start = hay.len() - needle.len();
    let mut i = from;
    while i <= last_start {
        match hay[i..=last_start].iter().position(|&b| b == first) {
            None => return None,
            Some(p) => i += p,
        }
        if &hay[i..i + needle.len()] == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// `; k=v; k2="v 2"` parameters (quoted strings with `\` escapes), in order.
fn header_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ';' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        let mut was_quoted = false;
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                was_quoted = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        c => value.push(c),
                    }
                }
                // Anything after the closing quote up to `;` is ignored.
                while chars.peek().is_some_and(|c| *c != ';') {
                    chars.next();
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ';' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        if !was_quoted {
            value = value.trim_end().to_owned();
        }
        out.push((key.trim().to_owned(), value));
    }
}

fn parse_headers(block: &[u8]) -> Result<Part, MultipartError> {
    let text =
        std::str::from_utf8(block).map_err(|_| MultipartError::BadHeaders("not UTF-8".into()))?;
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| MultipartError::BadHeaders(format!("no ':' in {line:?}")))?;
        if k.eq_ignore_ascii_case("content-disposition") {
            let (kind, params) = v.split_once(';').unwrap_or((v, ""));
            if !kind.trim().eq_ignore_ascii_case("form-data") {
                return Err(MultipartError::NoName);
            }
            for (pk, pv) in header_params(params) {
                if pk.eq_ignore_ascii_case("name") {
                    name = Some(pv);
                } else if pk.eq_ignore_ascii_case("filename") {
                    filename = Some(pv);
                }
            }
        } else if k.eq_ignore_ascii_case("content-type") {
            content_type = Some(v.trim().to_owned());
        }
    }
    Ok(Part {
        name: name
            .filter(|n| !n.is_empty())
            .ok_or(MultipartError::NoName)?,
        filename,
        content_type,
        body: Vec::new(),
    })
}

/// Reads a whole `multipart/form-data` body.
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, MultipartError> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(MultipartError::BadBoundary);
    }
    let dash = format!("--{boundary}").into_bytes();
    let delim = format!("\r\n--{boundary}").into_bytes();
    // The first delimiter may open the body (no CRLF before it) or follow a preamble.
    let mut pos = if body.starts_with(&dash) {
        dash.len()
    } else {
        find(body, &delim, 0).ok_or(MultipartError::NoFirstBoundary)? + delim.len()
    };
    let mut parts = Vec::new();
    loop {
        // After a delimiter: `--` closes, else optional whitespace then CRLF.
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let ws = rest
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        if !rest[ws..].starts_with(b"\r\n") {
            return Err(MultipartError::Truncated);
        }
        pos += ws + 2;
        if parts.len() == MAX_PARTS {
            return Err(MultipartError::TooManyParts);
        }
        let head_end = find(body, b"\r\n\r\n", pos);
        let (headers, body_start) = match head_end {
            // A part without headers: its body starts right after the empty line.
            _ if body[pos..].starts_with(b"\r\n") => (&body[pos..pos], pos + 2),
            Some(end) if end + 4 - pos <= MAX_HEADER_BYTES + 4 => (&body[pos..end], end + 4),
            Some(_) => {
                return Err(MultipartError::BadHeaders(format!(
                    "more than {MAX_HEADER_BYTES} bytes"
                )))
            }
            None => return Err(MultipartError::Truncated),
        };
        let mut part = parse_headers(headers)?;
        let end = find(body, &delim, body_start).ok_or(MultipartError::Truncated)?;
        part.body = body[body_start..end].to_vec();
        parts.push(part);
        pos = end + delim.len();
    }
}

/// A part to write.
pub struct OutPart<'a> {
    pub name: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// Writes parts as `multipart/form-data`; returns the content type and the body. The
/// boundary is derived from `seed` and lengthened until no part contains it.
pub fn build(parts: &[OutPart<'_>], seed: &str) -> (String, Vec<u8>) {
    let mut boundary = format!("claw-{seed}");
    while parts
        .iter()
        .any(|p| find(p.body, boundary.as_bytes(), 0).is_some() || p.name.contains(&boundary))
        || boundary.len() < 8
    {
        boundary.push('x');
        if boundary.len() > 70 {
            boundary = format!("claw-{}", boundary.len());
        }
    }
    let mut out = Vec::new();
    for p in parts {
        let name = p.name.replace('\\', "\\\\").replace('"', "\\\"");
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: {}\r\n\r\n",
                p.content_type
            )
            .as_bytes(),
        );
        out.extend_from_slice(p.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_what_browsers_and_wrangler_send() {
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n{\"main_module\":\"a.js\"}\r\n--XyZ\r\ncontent-disposition: form-data; name=\"a.js\"; filename=\"a.js\"\r\ncontent-type: application/javascript+module\r\n\r\nexport default {}\r\n\r\n--XyZ--\r\nepilogue";
        let parts = parse(body, "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "metadata");
        assert_eq!(parts[0].body, b"{\"main_module\":\"a.js\"}");
        assert_eq!(parts[1].filename.as_deref(), Some("a.js"));
        assert_eq!(
            parts[1].content_type.as_deref(),
            Some("application/javascript+module")
        );
        assert_eq!(parts[1].body, b"export default {}\r\n");
    }

    #[test]
    fn boundaries_from_content_types() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").unwrap(),
            "abc"
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b;c\"").unwrap(),
            "a b;c"
        );
        assert_eq!(
            boundary("application/json"),
            Err(MultipartError::NotMultipart)
        );
        assert_eq!(
            boundary("multipart/form-data"),
            Err(MultipartError::NotMultipart)
        );
        assert_eq!(
            boundary(&format!("multipart/form-data; boundary={}", "b".repeat(71))),
            Err(MultipartError::BadBoundary)
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let ok = b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--";
        assert!(parse(ok, "b").is_ok());
        // Truncated anywhere before the close delimiter.
        for cut in 0..ok.len() - 2 {
            assert!(parse(&ok[..cut], "b").is_err(), "cut at {cut}");
        }
        let nameless = b"--b\r\nContent-Disposition: form-data\r\n\r\n1\r\n--b--";
        assert_eq!(parse(nameless, "b"), Err(MultipartError::NoName));
        let attachment = b"--b\r\nContent-Disposition: attachment; name=\"x\"\r\n\r\n1\r\n--b--";
        assert_eq!(parse(attachment, "b"), Err(MultipartError::NoName));
        let mut many = Vec::new();
        for i in 0..=MAX_PARTS {
            many.extend_from_slice(
                format!("--b\r\nContent-Disposition: form-data; name=\"p{i}\"\r\n\r\nx\r\n")
                    .as_bytes(),
            );
        }
        many.extend_from_slice(b"--b--");
        assert_eq!(parse(&many, "b"), Err(MultipartError::TooManyParts));
    }

    fn any_part() -> impl Strategy<Value = (String, String, Vec<u8>)> {
        (
            "[a-zA-Z0-9._/ \"\\\\-]{1,20}",
            prop_oneof![
                Just("application/javascript+module".to_owned()),
                Just("text/plain".to_owned()),
                Just("application/wasm".to_owned()),
            ],
            // Bodies full of CRLFs, dashes and boundary-like text.
            proptest::collection::vec(
                prop_oneof![
                    Just(b'\r'),
                    Just(b'\n'),
                    Just(b'-'),
                    Just(b'c'),
                    Just(b'l'),
                    Just(b'a'),
                    Just(b'w'),
                    any::<u8>()
                ],
                0..200,
            ),
        )
    }

    proptest! {
        /// Whatever the parts hold, what `build` writes `parse` reads back exactly.
        #[test]
        fn build_then_parse_round_trips(parts in proptest::collection::vec(any_part(), 1..8), seed in "[a-z]{0,6}") {
            let out: Vec<OutPart<'_>> = parts
                .iter()
                .map(|(n, t, b)| OutPart { name: n, content_type: t, body: b })
                .collect();
            let (ct, body) = build(&out, &seed);
            let b = boundary(&ct).unwrap();
            let read = parse(&body, &b).unwrap();
            prop_assert_eq!(read.len(), parts.len());
            for (r, (n, t, bytes)) in read.iter().zip(&parts) {
                prop_assert_eq!(&r.name, n);
                prop_assert_eq!(r.content_type.as_deref(), Some(t.as_str()));
                prop_assert_eq!(&r.body, bytes);
            }
        }

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400), b in "[a-z-]{1,4}") {
            let _ = parse(&body, &b);
            let mut framed = format!("--{b}\r\n").into_bytes();
            framed.extend_from_slice(&body);
            let _ = parse(&framed, &b);
        }
    }
}
