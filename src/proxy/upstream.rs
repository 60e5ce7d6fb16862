//! What the proxy does with an upstream's answer: which ones it refuses, how much it reads,
//! and which headers the caller, or the cache, gets.
//!
//! - The whole exchange (response head and body) is bounded by the tenant's `timeoutMs`:
//!   past it the call is `504 upstream_timeout`.
//! - The body is read into memory up to `maxResponseBytes`: a declared `Content-Length` above
//!   it is refused before reading, and a body that grows past it while being read is refused
//!   at that point (`502 upstream_too_large`). Reading it whole is what lets the paywall know
//!   the call was served before it settles, and what the cache and the transform need.
//! - Redirects are not followed (`redirect: "manual"`: a followed redirect would skip the
//!   SSRF rules) and not passed on: a wrapped API that answers 3xx (but 304) has moved or is
//!   misconfigured, and the caller could not follow it past the platform without being
//!   charged for nothing, so it is `502 upstream_redirect`.
//! - A network failure is `502 upstream_unreachable`. Every other status, 4xx and 5xx
//!   included, goes back as the upstream sent it (the paywall settles only below 400).
//! - Cached copies keep the upstream's headers (after the caller filter), with the cache's
//!   lifetime in their `Cache-Control` and the upstream's own `Cache-Control` saved in
//!   [`STORED_CACHE_CONTROL`], restored on a hit.

use claw_durable::problem::Code;
use claw_durable::tenant::InjectedHeader;
use thiserror::Error;

use super::headers::proxy_response_header;
use crate::dispatch::connection_tokens;

/// Response header on every proxy answer: how the cache took part.
pub const CACHE_STATUS_HEADER: &str = "x-claw-cache";

/// In a cached copy only: the upstream's own `Cache-Control`.
pub const STORED_CACHE_CONTROL: &str = "x-claw-upstream-cache-control";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Answered from the cache; the upstream was not called.
    Hit,
    /// The cache was consulted and had nothing; the upstream answered.
    Miss,
    /// The cache does not apply (not a GET, or the tenant's `cacheTtlS` is 0).
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UpstreamError {
    #[error("the upstream did not answer within {timeout_ms} ms")]
    Timeout { timeout_ms: u32 },
    #[error("the upstream response is larger than {max_bytes} bytes")]
    TooLarge { max_bytes: u32 },
    #[error("the upstream could not be reached")]
    Unreachable,
    #[error("the upstream answered with a redirect ({status})")]
    Redirect { status: u16 },
}

impl UpstreamError {
    pub fn code(&self) -> Code {
        match self {
            UpstreamError::Timeout { .. } => Code::UpstreamTimeout,
            UpstreamError::TooLarge { .. } => Code::UpstreamTooLarge,
            UpstreamError::Unreachable => Code::UpstreamUnreachable,
            UpstreamError::Redirect { .. } => Code::UpstreamRedirect,
        }
    }

    pub fn status(&self) -> u16 {
        self.code().status()
    }
}

/// Refuses a redirect (any 3xx but 304).
pub fn check_status(status: u16) -> Result<(), UpstreamError> {
    if (300..400).contains(&status) && status != 304 {
        return Err(UpstreamError::Redirect { status });
    }
    Ok(())
}

/// Refuses a declared `Content-Length` above the cap. An unparsable one is left to the
/// reading, which counts the bytes anyway.
pub fn check_declared_length(
    content_length: Option<&str>,
    max_bytes: u32,
) -> Result<(), UpstreamError> {
    match content_length.and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(n) if n > u64::from(max_bytes) => Err(UpstreamError::TooLarge { max_bytes }),
        _ => Ok(()),
    }
}

/// Whether the runtime's `fetch` hands over the body already decoded for this
/// `Content-Encoding`: it decodes `gzip` and `br` (a single coding), and passes any other
/// coding through as it came.
pub fn decoded_by_runtime(content_encoding: &str) -> bool {
    let c = content_encoding.trim();
    c.eq_ignore_ascii_case("gzip") || c.eq_ignore_ascii_case("br")
}

/// The upstream's headers as the caller gets them: the proxy's response filter
/// ([`proxy_response_header`]), with the upstream's `Connection` tokens, without
/// `content-length` (the body is sent from a buffer; the runtime sets the length), and
/// without a `content-encoding` the runtime already decoded (the buffer holds the decoded
/// bytes; labelled so, they would be encoded again, and a cached copy read back encoded).
pub fn caller_headers(
    upstream: &[(String, String)],
    injected: &[InjectedHeader],
    body_rewritten: bool,
) -> Vec<(String, String)> {
    let connection = upstream
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let tokens = connection_tokens(Some(&connection));
    upstream
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("content-length"))
        .filter(|(n, v)| !(n.eq_ignore_ascii_case("content-encoding") && decoded_by_runtime(v)))
        .filter(|(n, _)| proxy_response_header(n, &tokens, injected, body_rewritten))
        .cloned()
        .collect()
}

/// The headers of the copy put in the cache for `ttl_s` seconds: the caller's headers for
/// the raw body, `Cache-Control: s-maxage={ttl_s}`, and the upstream's `Cache-Control` in
/// [`STORED_CACHE_CONTROL`].
pub fn stored_headers(
    upstream: &[(String, String)],
    injected: &[InjectedHeader],
    ttl_s: u32,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut original: Vec<&str> = Vec::new();
    for (n, v) in caller_headers(upstream, injected, false) {
        // `ttl_s` already counts the upstream's Age: a stored Age would make the cache
        // subtract it a second time.
        if n.eq_ignore_ascii_case("age") {
            continue;
        }
        if n.eq_ignore_ascii_case("cache-control") {
            original.push(
                upstream
                    .iter()
                    .find(|(un, uv)| un.eq_ignore_ascii_case(&n) && *uv == v)
                    .map_or("", |(_, uv)| uv.as_str()),
            );
        } else {
            out.push((n, v));
        }
    }
    out.push(("cache-control".to_owned(), format!("s-maxage={ttl_s}")));
    let original = original.join(", ");
    if !original.is_empty() {
        out.push((STORED_CACHE_CONTROL.to_owned(), original));
    }
    out
}

/// A cached copy's headers as the upstream had sent them: the saved `Cache-Control` back in
/// place of the cache's own, and no internal header. Run [`caller_headers`] on the result.
pub fn hit_headers(stored: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = stored
        .iter()
        .filter(|(n, _)| {
            !n.eq_ignore_ascii_case("cache-control")
                && !n.eq_ignore_ascii_case(STORED_CACHE_CONTROL)
        })
        .cloned()
        .collect();
    if let Some((_, v)) = stored
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(STORED_CACHE_CONTROL))
    {
        out.push(("cache-control".to_owned(), v.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_for_declared_bodies() {
        assert_eq!(check_declared_length(Some("100"), 100), Ok(()));
        assert_eq!(check_declared_length(None, 100), Ok(()));
        assert_eq!(check_declared_length(Some("x"), 100), Ok(()));
        assert_eq!(
            check_declared_length(Some(" 101 "), 100)
                .unwrap_err()
                .code(),
            "upstream_too_large"
        );
        assert!(check_declared_length(Some("99999999999999999999999"), 100).is_ok());
    }
    use proptest::prelude::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn injected() -> Vec<InjectedHeader> {
        vec![InjectedHeader {
            name: "X-Api-Key".into(),
            secret: "UPSTREAM_KEY".into(),
        }]
    }

    #[test]
    fn statuses() {
        for s in [200, 201, 204, 206, 304, 400, 404, 429, 500, 503] {
            assert_eq!(check_status(s), Ok(()), "{s}");
        }
        for s in [300, 301, 302, 303, 307, 308, 399] {
            let e = check_status(s).unwrap_err();
            assert_eq!(
                (e.code().as_str(), e.status()),
                ("upstream_redirect", 502),
                "{s}"
            );
        }
        assert_eq!(
            UpstreamError::Timeout { timeout_ms: 5 }.status(),
            504,
            "a timeout is a gateway timeout"
        );
        assert_eq!(UpstreamError::Unreachable.code(), "upstream_unreachable");
    }

    #[test]
    fn caller_headers_filter_and_drop_the_length() {
        let up = h(&[
            ("Content-Type", "application/json"),
            ("Content-Length", "42"),
            ("Connection", "x-hop"),
            ("X-Hop", "1"),
            ("Set-Cookie", "a=b"),
            ("X-Api-Key", "echoed-secret"),
            ("x-claw-cache", "forged"),
            ("ETag", "\"v1\""),
            ("Cache-Control", "max-age=60"),
        ]);
        assert_eq!(
            caller_headers(&up, &injected(), false),
            h(&[
                ("Content-Type", "application/json"),
                ("ETag", "\"v1\""),
                ("Cache-Control", "max-age=60")
            ])
        );
        assert_eq!(
            caller_headers(&up, &injected(), true),
            h(&[
                ("Content-Type", "application/json"),
                ("Cache-Control", "max-age=60")
            ])
        );
    }

    #[test]
    fn encodings_the_runtime_decoded_are_dropped() {
        for (ce, kept) in [
            ("gzip", false),
            ("GZIP", false),
            (" br ", false),
            ("deflate", true),
            ("gzip, br", true),
            ("zstd", true),
        ] {
            let up = h(&[
                ("content-type", "application/json"),
                ("content-encoding", ce),
            ]);
            let out = caller_headers(&up, &[], false);
            assert_eq!(
                out.iter().any(|(n, _)| n == "content-encoding"),
                kept,
                "{ce}"
            );
        }
    }

    #[test]
    fn a_stored_copy_gives_back_the_upstream_headers_on_a_hit() {
        let up = h(&[
            ("content-type", "text/plain"),
            ("cache-control", "public, max-age=60"),
            ("set-cookie", "s=1"),
            ("age", "30"),
            ("x-claw-upstream-cache-control", "forged"),
        ]);
        // The TTL already counts the Age, which is not stored (or it would count twice).
        let stored = stored_headers(&up, &injected(), 30);
        assert_eq!(
            stored,
            h(&[
                ("content-type", "text/plain"),
                ("cache-control", "s-maxage=30"),
                (STORED_CACHE_CONTROL, "public, max-age=60"),
            ])
        );
        assert_eq!(
            hit_headers(&stored),
            h(&[
                ("content-type", "text/plain"),
                ("cache-control", "public, max-age=60")
            ])
        );
        // No upstream Cache-Control: none comes back on a hit.
        let stored = stored_headers(&h(&[("content-type", "a/b")]), &[], 5);
        assert_eq!(hit_headers(&stored), h(&[("content-type", "a/b")]));
        assert_eq!(CacheStatus::Hit.as_str(), "hit");
    }

    proptest! {
        /// Whatever the upstream sends, the caller never gets an injected header's name, an
        /// internal header, a cookie or a length.
        #[test]
        fn caller_headers_never_leak(names in proptest::collection::vec("(x-api-key|X-API-KEY|x-claw-[a-z]{1,4}|set-cookie|content-length|x-[a-z]{1,4})", 0..8)) {
            let up: Vec<(String, String)> = names.iter().map(|n| (n.clone(), "v".to_owned())).collect();
            for (n, _) in caller_headers(&up, &injected(), false) {
                let n = n.to_ascii_lowercase();
                prop_assert!(n != "x-api-key" && !n.starts_with("x-claw-") && n != "set-cookie" && n != "content-length");
            }
        }
    }
}
