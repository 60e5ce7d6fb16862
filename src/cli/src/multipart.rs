//! The deployment upload: `multipart/form-data` as Cloudflare's script upload takes it, a
//! `metadata` JSON part first, then one part per module named by its file name. Built in
//! memory (bundles are small, and the exact length gives the progress line its total).

/// One part of the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The form field name (`metadata`, or the module's file name).
    pub name: String,
    /// The `filename` parameter, for file parts.
    pub filename: Option<String>,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// A finished form: its `content-type` (with the boundary) and its bytes.
#[derive(Debug, Clone)]
pub struct Form {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Quotes a header parameter value: names here are file names we chose or checked, so
/// quotes, backslashes and line breaks are refused rather than escaped.
fn check_param(value: &str) -> Result<&str, String> {
    if value.is_empty()
        || value
            .bytes()
            .any(|b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f)
    {
        return Err(format!("{value:?} cannot name a form part"));
    }
    Ok(value)
}

/// A boundary that occurs in no part: `seed` varies it (the caller passes something
/// unpredictable enough, e.g. time and pid); collisions are retried with the next seed.
fn boundary_for(parts: &[Part], mut seed: u64) -> String {
    loop {
        let b = format!("claw-{seed:016x}-form-boundary");
        let needle = format!("--{b}");
        let clash = parts
            .iter()
            .any(|p| p.body.windows(needle.len()).any(|w| w == needle.as_bytes()));
        if !clash {
            return b;
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
}

/// Builds the form. `seed` chooses the boundary.
pub fn build(parts: &[Part], seed: u64) -> Result<Form, String> {
    let boundary = boundary_for(parts, seed);
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let name = check_param(&p.name)?;
        let disposition = match &p.filename {
            Some(f) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{}\"\r\n",
                check_param(f)?
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        if p.content_type.bytes().any(|b| b < 0x20) {
            return Err(format!("{:?} is not a content type", p.content_type));
        }
        body.extend_from_slice(format!("Content-Type: {}\r\n\r\n", p.content_type).as_bytes());
        body.extend_from_slice(&p.body);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok(Form {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        body,
    })
}

/// A seed for the boundary from the clock and the process id (not a secret: it only has to
/// differ from the content, which [`build`] checks).
pub fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(name: &str, ct: &str, body: &[u8]) -> Part {
        Part {
            name: name.into(),
            filename: Some(name.into()),
            content_type: ct.into(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn builds_the_cloudflare_upload_shape() {
        let meta = Part {
            name: "metadata".into(),
            filename: None,
            content_type: "application/json".into(),
            body: br#"{"main_module":"worker.js"}"#.to_vec(),
        };
        let code = part(
            "worker.js",
            "application/javascript+module",
            b"export default {}",
        );
        let form = build(&[meta, code], 0xabc).unwrap();
        let b = "claw-0000000000000abc-form-boundary";
        assert_eq!(
            form.content_type,
            format!("multipart/form-data; boundary={b}")
        );
        let want = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n\
             {{\"main_module\":\"worker.js\"}}\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"worker.js\"; filename=\"worker.js\"\r\n\
             Content-Type: application/javascript+module\r\n\r\nexport default {{}}\r\n--{b}--\r\n"
        );
        assert_eq!(String::from_utf8(form.body).unwrap(), want);
    }

    #[test]
    fn the_boundary_never_occurs_in_a_part() {
        let evil = format!("x\r\n--claw-{:016x}-form-boundary\r\n", 7u64);
        let form = build(&[part("data.csv", "text/csv", evil.as_bytes())], 7).unwrap();
        let boundary = form
            .content_type
            .split("boundary=")
            .nth(1)
            .unwrap()
            .to_owned();
        assert_ne!(boundary, format!("claw-{:016x}-form-boundary", 7u64));
        let needle = format!("--{boundary}");
        let count = form
            .body
            .windows(needle.len())
            .filter(|w| *w == needle.as_bytes())
            .count();
        assert_eq!(count, 2, "one opening and one closing delimiter");
    }

    #[test]
    fn refuses_names_that_would_break_the_header() {
        for bad in ["a\"b", "a\r\nb", "", "a\\b"] {
            assert!(
                build(&[part(bad, "text/plain", b"")], 1).is_err(),
                "{bad:?}"
            );
        }
        // Binary bodies pass unchanged.
        let bytes: Vec<u8> = (0..=255).collect();
        let form = build(&[part("m.wasm", "application/wasm", &bytes)], 1).unwrap();
        assert!(form.body.windows(256).any(|w| w == bytes.as_slice()));
    }
}
