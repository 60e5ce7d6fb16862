//! Joining a caller's path and query onto a proxy tenant's `upstreamUrl`.
//!
//! The rules, each tested below:
//! - The result is `prefix + rest + ["?" + query]`, where `prefix` is the base URL's origin
//!   (scheme and host lowercased, default port dropped) plus its path without trailing
//!   slashes. `https://api.x.com/v1` and `https://api.x.com/v1/` give the same prefix, so
//!   `/a/b?c=d` becomes `https://api.x.com/v1/a/b?c=d` with either.
//! - `rest` is the encoded path the caller sent after the tenant prefix; it starts with `/`.
//!   `rest == "/"` maps to `prefix + "/"`. A trailing slash is kept.
//! - Runs of `/` are collapsed to one (in the base path and in `rest`): an empty segment
//!   never reaches the upstream. This is a choice over rejecting, because `//` is almost
//!   always a client joining strings carelessly, and collapsing it changes no encoded byte.
//! - A segment that is `.` or `..` in any spelling is refused ([`JoinError::DotSegment`]):
//!   after percent-decoding (repeated until nothing changes, so `%252e` counts too), a
//!   segment is split on `/` and `\` (so `..%2f` counts), each piece is cut at `;` (so
//!   `..;jsessionid` counts, as Tomcat reads it), and the overlong UTF-8 dot `%c0%ae` and the
//!   fullwidth dot U+FF0E count as `.`. Nothing is resolved: an escape attempt is an error.
//! - Every other byte goes through unchanged: `%2F` stays `%2F`, `%2f` stays `%2f`.
//! - Only bytes that a WHATWG-serialized URL can hold are accepted, so parsing the result
//!   (as the runtime's `fetch` does) gives back exactly the string we checked. Controls,
//!   space, backslash, non-ASCII, `"`, `<`, `>`, `` ` ``, `{`, `}`, `#` are refused in the
//!   path, as is `?` (the query comes separately) and a `%` not followed by two hex digits.
//!   Percent-encoded controls (`%00`..`%1f`, `%7f`) are refused in the path.
//! - The query is appended as given when non-empty (`Some("")` adds no `?`); it may not hold
//!   controls, space, backslash, non-ASCII, `"`, `#`, `<`, `>`, `'` or a bad `%` escape.
//! - There is never a fragment; the whole URL is at most [`MAX_UPSTREAM_URL_BYTES`].

use claw_durable::problem::Code;
use thiserror::Error;
use url::Url;

/// Longest URL the proxy sends upstream, in bytes.
pub const MAX_UPSTREAM_URL_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JoinError {
    /// The tenant's `upstreamUrl` is unusable (config error, not the caller's).
    #[error("the upstream URL is invalid: {0}")]
    InvalidBase(&'static str),
    /// A path segment is `.` or `..` in some spelling.
    #[error("the path has a '.' or '..' segment")]
    DotSegment,
    #[error("the path is invalid: {0}")]
    InvalidPath(&'static str),
    #[error("the query is invalid: {0}")]
    InvalidQuery(&'static str),
    #[error("the upstream URL would exceed {MAX_UPSTREAM_URL_BYTES} bytes")]
    TooLong,
}

impl JoinError {
    /// Stable problem code.
    pub fn code(&self) -> Code {
        match self {
            JoinError::InvalidBase(_) => Code::UpstreamConfigInvalid,
            JoinError::DotSegment => Code::PathTraversal,
            JoinError::InvalidPath(_) => Code::InvalidPath,
            JoinError::InvalidQuery(_) => Code::InvalidQuery,
            JoinError::TooLong => Code::UriTooLong,
        }
    }

    /// Suggested HTTP status: a bad base is the tenant's fault seen from the caller (502).
    pub fn status(&self) -> u16 {
        self.code().status()
    }
}

/// A parsed, checked `upstreamUrl`, ready to take callers' paths. Parse it once per config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamBase {
    /// Origin plus base path, no trailing slash: `https://api.x.com/v1`.
    prefix: String,
    /// Length of the origin part of `prefix`.
    origin_len: usize,
}

impl UpstreamBase {
    /// Parses a tenant's `upstreamUrl`: `http` or `https`, a host, no credentials, no query
    /// or fragment, and a base path that obeys the same segment rules as callers' paths.
    /// Whether the host may be reached at all is [`super::ssrf::check_upstream`]'s business.
    pub fn parse(upstream_url: &str) -> Result<UpstreamBase, JoinError> {
        let bad = JoinError::InvalidBase;
        if upstream_url.len() > MAX_UPSTREAM_URL_BYTES {
            return Err(bad("too long"));
        }
        if upstream_url
            .bytes()
            .any(|b| !b.is_ascii_graphic() || b == b'\\')
        {
            return Err(bad(
                "has a control character, space, backslash or non-ASCII",
            ));
        }
        let after_scheme = ["https://", "http://"]
            .iter()
            .find_map(|scheme| {
                let head = upstream_url.get(..scheme.len())?;
                head.eq_ignore_ascii_case(scheme)
                    .then(|| &upstream_url[scheme.len()..])
            })
            .ok_or(bad("must start with https:// or http://"))?;
        if upstream_url.contains(['?', '#']) {
            return Err(bad("must not have a query or fragment"));
        }
        let (authority, raw_path) = match after_scheme.find('/') {
            Some(i) => after_scheme.split_at(i),
            None => (after_scheme, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("must have a host and no credentials"));
        }
        if !raw_path.is_empty() {
            check_path(raw_path).map_err(|_| bad("its path is not acceptable"))?;
        }
        let url = Url::parse(upstream_url).map_err(|_| bad("does not parse"))?;
        if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must have a host and no credentials"));
        }
        let origin = &url[..url::Position::BeforePath];
        let mut prefix = String::with_capacity(upstream_url.len());
        prefix.push_str(origin);
        let origin_len = prefix.len();
        // The raw path passed `check_path`, so the parser left it as it was.
        for segment in url.path().split('/').filter(|s| !s.is_empty()) {
            prefix.push('/');
            prefix.push_str(segment);
        }
        Ok(UpstreamBase { prefix, origin_len })
    }

    /// `https://api.x.com/v1`: origin plus base path, without a trailing slash.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `https://api.x.com`.
    pub fn origin(&self) -> &str {
        &self.prefix[..self.origin_len]
    }

    /// The upstream URL for a caller's encoded `rest` (starting with `/`) and `query`
    /// (without `?`).
    pub fn join(&self, rest: &str, query: Option<&str>) -> Result<String, JoinError> {
        if !rest.starts_with('/') {
            return Err(JoinError::InvalidPath("must start with '/'"));
        }
        check_path(rest)?;
        let query = query.filter(|q| !q.is_empty());
        if let Some(q) = query {
            check_query(q)?;
        }
        let bound = self.prefix.len() + rest.len() + query.map_or(0, |q| q.len() + 1);
        if bound > MAX_UPSTREAM_URL_BYTES + rest.len() {
            // Even a fully collapsed `rest` could not fit; do not build it.
            return Err(JoinError::TooLong);
        }
        let mut out = String::with_capacity(bound);
        out.push_str(&self.prefix);
        let mut any = false;
        for segment in rest.split('/').filter(|s| !s.is_empty()) {
            out.push('/');
            out.push_str(segment);
            any = true;
        }
        if !any || rest.ends_with('/') {
            out.push('/');
        }
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        if out.len() > MAX_UPSTREAM_URL_BYTES {
            return Err(JoinError::TooLong);
        }
        debug_assert!(out.starts_with(&self.prefix));
        debug_assert!(!out[self.origin_len..]
            .split('?')
            .next()
            .unwrap_or("")
            .contains("//"));
        Ok(out)
    }
}

/// Bytes a WHATWG-serialized path holds unchanged: printable ASCII but for the path
/// percent-encode set, `?` and `#`; and no backslash (special URLs read it as `/`).
fn path_byte_ok(b: u8) -> bool {
    b.is_ascii_graphic()
        && !matches!(
            b,
            b'"' | b'#' | b'<' | b'>' | b'?' | b'`' | b'{' | b'}' | b'\\'
        )
}

/// Same for a special URL's query (its percent-encode set includes `'`).
fn query_byte_ok(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'"' | b'#' | b'<' | b'>' | b'\'' | b'\\')
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Every `%` is followed by two hex digits.
fn escapes_well_formed(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let ok = s
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(|b| hex_val(*b).is_some()));
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// One round of percent-decoding; a `%` without two hex digits stays as it is.
fn percent_decode_once(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let decoded = match (s[i], s.get(i + 1), s.get(i + 2)) {
            (b'%', Some(h), Some(l)) => hex_val(*h).zip(hex_val(*l)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(s[i]);
                i += 1;
            }
        }
    }
    out
}

/// Whether some reading of `segment` is a `.` or `..` step (see the module docs).
pub(crate) fn is_dot_like(segment: &str) -> bool {
    let mut current = segment.as_bytes().to_vec();
    loop {
        if has_dot_piece(&current) {
            return true;
        }
        let next = percent_decode_once(&current);
        if next == current {
            return false;
        }
        // Each round that changes something is shorter, so this ends.
        debug_assert!(next.len() < current.len());
        current = next;
    }
}

fn has_dot_piece(bytes: &[u8]) -> bool {
    // Look-alike dots some servers fold to '.': overlong UTF-8 and fullwidth full stop.
    let mut folded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(&[0xC0, 0xAE]) {
            folded.push(b'.');
            i += 2;
        } else if bytes[i..].starts_with(&[0xEF, 0xBC, 0x8E]) {
            folded.push(b'.');
            i += 3;
        } else {
            folded.push(bytes[i]);
            i += 1;
        }
    }
    folded.split(|b| *b == b'/' || *b == b'\\').any(|piece| {
        let piece = piece.split(|b| *b == b';').next().unwrap_or(&[]);
        piece == b"." || piece == b".."
    })
}

/// Checks an encoded path (base path or caller's `rest`) byte by byte and segment by segment.
fn check_path(path: &str) -> Result<(), JoinError> {
    let bytes = path.as_bytes();
    if let Some(b) = bytes.iter().find(|b| !path_byte_ok(**b)) {
        return Err(JoinError::InvalidPath(match b {
            b'?' | b'#' => "'?' and '#' do not belong in a path",
            b'\\' => "backslashes are refused",
            b if b.is_ascii_control() || *b == b' ' => "control characters and spaces are refused",
            b if !b.is_ascii() => "non-ASCII bytes must be percent-encoded",
            _ => "has a character that must be percent-encoded",
        }));
    }
    if !escapes_well_formed(bytes) {
        return Err(JoinError::InvalidPath(
            "'%' must be followed by two hex digits",
        ));
    }
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        if is_dot_like(segment) {
            return Err(JoinError::DotSegment);
        }
        if percent_decode_once(segment.as_bytes())
            .iter()
            .any(|b| b.is_ascii_control())
        {
            return Err(JoinError::InvalidPath(
                "encoded control characters are refused",
            ));
        }
    }
    Ok(())
}

fn check_query(query: &str) -> Result<(), JoinError> {
    let bytes = query.as_bytes();
    if bytes.iter().any(|b| !query_byte_ok(*b)) {
        return Err(JoinError::InvalidQuery(
            "has a control character, space, backslash, non-ASCII or a character that must be percent-encoded",
        ));
    }
    if !escapes_well_formed(bytes) {
        return Err(JoinError::InvalidQuery(
            "'%' must be followed by two hex digits",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn join(base: &str, rest: &str, query: Option<&str>) -> Result<String, JoinError> {
        UpstreamBase::parse(base)?.join(rest, query)
    }

    #[test]
    fn base_path_is_kept_with_or_without_trailing_slash() {
        for base in [
            "https://api.x.com/v1",
            "https://api.x.com/v1/",
            "https://api.x.com/v1//",
            "HTTPS://API.X.COM/v1",
            "https://api.x.com:443/v1",
        ] {
            assert_eq!(
                join(base, "/a/b", Some("c=d")).as_deref(),
                Ok("https://api.x.com/v1/a/b?c=d"),
                "{base}"
            );
            assert_eq!(
                join(base, "/", None).as_deref(),
                Ok("https://api.x.com/v1/")
            );
        }
        for base in ["https://api.x.com", "https://api.x.com/"] {
            assert_eq!(join(base, "/a", None).as_deref(), Ok("https://api.x.com/a"));
            assert_eq!(join(base, "/", None).as_deref(), Ok("https://api.x.com/"));
        }
        assert_eq!(
            join("http://127.0.0.1:8080/base", "/x/", Some("")).as_deref(),
            Ok("http://127.0.0.1:8080/base/x/")
        );
        let b = UpstreamBase::parse("https://api.x.com:8443/v1/").unwrap();
        assert_eq!(b.prefix(), "https://api.x.com:8443/v1");
        assert_eq!(b.origin(), "https://api.x.com:8443");
    }

    #[test]
    fn double_slashes_collapse() {
        let b = "https://api.x.com/v1";
        assert_eq!(
            join(b, "//a///b//", None).as_deref(),
            Ok("https://api.x.com/v1/a/b/")
        );
        assert_eq!(join(b, "//", None).as_deref(), Ok("https://api.x.com/v1/"));
        assert_eq!(
            join("https://api.x.com//v1//v2", "/a", None).as_deref(),
            Ok("https://api.x.com/v1/v2/a")
        );
    }

    #[test]
    fn encoded_bytes_are_preserved() {
        let b = "https://api.x.com/v1";
        assert_eq!(
            join(b, "/a%2Fb/%2f/caf%C3%A9/%25/~!$&'()*+,;=:@|^[]", Some("q=%2F%2f&x=a+b&y=?/")).as_deref(),
            Ok("https://api.x.com/v1/a%2Fb/%2f/caf%C3%A9/%25/~!$&'()*+,;=:@|^[]?q=%2F%2f&x=a+b&y=?/")
        );
        // Dots inside a name are fine.
        assert_eq!(
            join(b, "/a.b/.well-known/...x/..x/x../file.", None).as_deref(),
            Ok("https://api.x.com/v1/a.b/.well-known/...x/..x/x../file.")
        );
    }

    #[test]
    fn dot_segments_in_any_spelling_are_refused() {
        let b = "https://api.x.com/v1";
        for rest in [
            "/..",
            "/../x",
            "/a/../b",
            "/.",
            "/./a",
            "/a/.",
            "/%2e",
            "/%2E%2e",
            "/.%2e/x",
            "/%2e./x",
            "/%252e%252e/x",
            "/%25252E%25252E",
            "/..%2f",
            "/..%2Fadmin",
            "/a%2f..%2fb",
            "/..%5c",
            "/%2e%2e%5cx",
            "/..;",
            "/..;jsessionid=1/x",
            "/.;x",
            "/%c0%ae%c0%ae/x",
            "/%EF%BC%8E%EF%BC%8E",
            "//..//x",
            "/a/..",
        ] {
            assert_eq!(join(b, rest, None), Err(JoinError::DotSegment), "{rest}");
        }
        for base in [
            "https://x.com/v1/../admin",
            "https://x.com/%2e%2e/a",
            "https://x.com/./a",
        ] {
            assert!(
                matches!(UpstreamBase::parse(base), Err(JoinError::InvalidBase(_))),
                "{base}"
            );
        }
    }

    #[test]
    fn bad_bytes_are_refused() {
        let b = "https://api.x.com/v1";
        for rest in [
            "/a\\b",
            "/a b",
            "/a\tb",
            "/a\nb",
            "/a\u{0}",
            "/a\u{7f}",
            "/é",
            "/a#f",
            "/a?b",
            "/a\"",
            "/<a>",
            "/`",
            "/{x}",
            "/%",
            "/%2",
            "/%zz",
            "/a%0d%0aX",
            "/%00",
            "/%7F",
        ] {
            assert!(
                matches!(join(b, rest, None), Err(JoinError::InvalidPath(_))),
                "{rest:?}: {:?}",
                join(b, rest, None)
            );
        }
        assert!(matches!(join(b, "a", None), Err(JoinError::InvalidPath(_))));
        assert!(matches!(join(b, "", None), Err(JoinError::InvalidPath(_))));
        for q in ["a b", "a\\b", "x#y", "a\u{1}", "é", "'", "<", "%g0", "x=%"] {
            assert!(
                matches!(join(b, "/", Some(q)), Err(JoinError::InvalidQuery(_))),
                "{q:?}"
            );
        }
        // An encoded control is data in a query.
        assert!(join(b, "/", Some("text=a%0Ab")).is_ok());
    }

    #[test]
    fn bad_bases_are_refused() {
        for base in [
            "ftp://x.com",
            "https://",
            "https:///a",
            "https://u:p@x.com",
            "https://@x.com",
            "https://x.com/a?b",
            "https://x.com#f",
            "https://x.com/a b",
            "https://x.com\\@y.com",
            "https://x .com",
            "https://x.com/é",
            "https://[::1",
            "//x.com",
        ] {
            assert!(
                matches!(UpstreamBase::parse(base), Err(JoinError::InvalidBase(_))),
                "{base}"
            );
        }
    }

    #[test]
    fn length_is_bounded() {
        let b = "https://api.x.com/v1";
        let fits = format!("/{}", "a".repeat(MAX_UPSTREAM_URL_BYTES - b.len() - 1));
        assert_eq!(
            join(b, &fits, None).map(|u| u.len()),
            Ok(MAX_UPSTREAM_URL_BYTES)
        );
        let over = format!("/{}", "a".repeat(MAX_UPSTREAM_URL_BYTES - b.len()));
        assert_eq!(join(b, &over, None), Err(JoinError::TooLong));
        assert_eq!(
            join(b, "/", Some(&"q".repeat(MAX_UPSTREAM_URL_BYTES))),
            Err(JoinError::TooLong)
        );
        // Collapsed slashes do not count.
        let slashes = format!("{}a", "/".repeat(MAX_UPSTREAM_URL_BYTES));
        assert_eq!(
            join(b, &slashes, None).as_deref(),
            Ok("https://api.x.com/v1/a")
        );
    }

    #[test]
    fn codes_and_statuses() {
        assert_eq!(
            (
                JoinError::DotSegment.code().as_str(),
                JoinError::DotSegment.status()
            ),
            ("path_traversal", 400)
        );
        assert_eq!(JoinError::TooLong.status(), 414);
        assert_eq!(JoinError::InvalidBase("x").status(), 502);
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            2 => Just(String::new()),
            1 => Just(".".to_owned()),
            1 => Just("..".to_owned()),
            1 => Just("%2e".to_owned()),
            1 => Just("%2E%2e".to_owned()),
            1 => Just("..%2f".to_owned()),
            1 => Just("..;x".to_owned()),
            2 => Just("%2F".to_owned()),
            2 => Just("a%2Fb".to_owned()),
            12 => "[a-zA-Z0-9._~;:@!$&'()*+,=-]{1,8}",
            4 => "([a-z]|%[0-9a-fA-F]{2}){1,4}",
            2 => "[ -~]{0,6}",
        ]
    }

    fn base() -> impl Strategy<Value = String> {
        (
            prop_oneof![
                Just("https://api.x.com"),
                Just("http://127.0.0.1:8080"),
                Just("https://A.B.example:444")
            ],
            proptest::collection::vec("[a-z0-9._~-]{0,5}", 0..4),
            any::<bool>(),
        )
            .prop_map(|(origin, segs, slash)| {
                let mut s = origin.to_owned();
                for seg in segs {
                    s.push('/');
                    s.push_str(&seg);
                }
                if slash {
                    s.push('/');
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn joined_urls_stay_under_the_base(
            base in base(),
            segs in proptest::collection::vec(segment(), 0..8),
            trailing in any::<bool>(),
            query in proptest::option::of("[ -~]{0,12}"),
        ) {
            let Ok(b) = UpstreamBase::parse(&base) else {
                // Only bases with a dot segment are refused here.
                prop_assert!(base.split('/').skip(3).any(is_dot_like));
                return Ok(());
            };
            let mut rest = String::from("/");
            rest.push_str(&segs.join("/"));
            if trailing { rest.push('/'); }
            let url = match b.join(&rest, query.as_deref()) {
                Ok(url) => url,
                Err(JoinError::DotSegment) => {
                    prop_assert!(rest.split('/').any(is_dot_like), "{rest}");
                    return Ok(());
                }
                Err(e) => {
                    prop_assert!(matches!(e, JoinError::InvalidPath(_) | JoinError::InvalidQuery(_)), "{e:?}");
                    return Ok(());
                }
            };

            prop_assert!(url.starts_with(b.prefix()));
            let path_and_query = &url[b.origin().len()..];
            let path = path_and_query.split('?').next().unwrap_or("");
            prop_assert!(path.starts_with('/'));
            prop_assert!(!path.contains("//"), "{url}");
            prop_assert!(!path.contains("/../") && !path.ends_with("/..") && !path.contains("/./"), "{url}");
            prop_assert!(path.split('/').all(|s| !is_dot_like(s)), "{url}");
            prop_assert!(!url.contains('#'));
            prop_assert!(url.len() <= MAX_UPSTREAM_URL_BYTES);
            // What fetch sends is what we checked: the WHATWG parser changes nothing.
            let parsed = Url::parse(&url).unwrap();
            prop_assert_eq!(parsed.as_str(), url.as_str());
            prop_assert_eq!(&parsed[..url::Position::BeforePath], b.origin());
            // Encoded segments go through verbatim and in order.
            let kept: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
            let got: Vec<&str> = path[b.prefix().len() - b.origin().len()..].split('/').filter(|s| !s.is_empty()).collect();
            prop_assert_eq!(kept, got);
        }

        #[test]
        fn join_never_panics(rest in "\\PC{0,40}", query in proptest::option::of("\\PC{0,20}")) {
            let b = UpstreamBase::parse("https://api.x.com/v1").unwrap();
            if let Ok(url) = b.join(&rest, query.as_deref()) {
                prop_assert!(url.starts_with("https://api.x.com/v1/"));
                let parsed = Url::parse(&url).unwrap();
                prop_assert_eq!(parsed.as_str(), url.as_str());
            }
        }
    }
}
