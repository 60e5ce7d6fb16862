//! Whether, and for how long, the proxy caches an upstream response; and under which key.
//!
//! Choices:
//! - Only `GET` answered `200` is stored. Other cacheable statuses (203, 204, 301, 404, ...)
//!   are not: a paid API's errors and redirects should reach the upstream each time, and one
//!   status keeps the rules easy to check.
//! - The upstream's `no-store`, `private` and `no-cache` (with or without a field list) each
//!   mean "do not store". `max-age`/`s-maxage` cap the lifetime (`s-maxage` wins, as this is a
//!   shared cache), minus the response's `Age`; an unparsable value counts as 0. The
//!   tenant's `cacheTtlS` is the upper bound; 0 disables caching.
//! - `Vary` with anything but `accept-encoding` (or `*`) means "do not store": the cache key
//!   holds only the URL, so a response that depends on other request headers must not be
//!   shared between callers.
//! - A request that sent the caller's own `Authorization` upstream is stored only when the
//!   response says `public` or `s-maxage` (RFC 9111 section 3.5).
//! - The key is the tenant slug plus the SHA-256 of the full upstream URL, on a host that
//!   never resolves. Store the upstream response before any JSON transform, and transform on
//!   each hit, so a config change to the transform takes effect at once.

use sha2::{Digest, Sha256};

/// Origin of cache keys (the Cache API wants a URL; this host never resolves).
pub const CACHE_KEY_ORIGIN: &str = "https://cache.402claw.internal";

/// What the cache decision looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheInput<'a> {
    pub method: &'a str,
    pub status: u16,
    /// The upstream response's `Cache-Control`, if any.
    pub cache_control: Option<&'a str>,
    /// The upstream response's `Vary`, if any.
    pub vary: Option<&'a str>,
    /// The upstream response's `Age`, if any.
    pub age: Option<&'a str>,
    /// Whether the upstream request carried the caller's own `Authorization`.
    pub caller_authorization: bool,
    /// The tenant's `cacheTtlS`.
    pub ttl_s: u32,
}

/// Whether a request may be answered from the cache at all.
pub fn cache_lookup_allowed(method: &str, ttl_s: u32) -> bool {
    method == "GET" && ttl_s > 0
}

/// How long to keep the response, in seconds, or `None` to not store it.
pub fn cache_policy(input: &CacheInput) -> Option<u32> {
    if !cache_lookup_allowed(input.method, input.ttl_s) || input.status != 200 {
        return None;
    }
    if let Some(vary) = input.vary {
        let varies = vary
            .split(',')
            .map(str::trim)
            .any(|v| !v.is_empty() && !v.eq_ignore_ascii_case("accept-encoding"));
        if varies {
            return None;
        }
    }
    let mut public = false;
    let mut max_age: Option<u64> = None;
    let mut s_maxage: Option<u64> = None;
    for (name, value) in directives(input.cache_control.unwrap_or("")) {
        match name.as_str() {
            "no-store" | "private" | "no-cache" => return None,
            "public" => public = true,
            "max-age" => max_age = Some(max_age.map_or(seconds(value), |m| m.min(seconds(value)))),
            "s-maxage" => {
                s_maxage = Some(s_maxage.map_or(seconds(value), |m| m.min(seconds(value))))
            }
            _ => {}
        }
    }
    if input.caller_authorization && !public && s_maxage.is_none() {
        return None;
    }
    let mut ttl = u64::from(input.ttl_s);
    if let Some(lifetime) = s_maxage.or(max_age) {
        let age = input.age.map_or(0, |a| seconds(Some(a)));
        ttl = ttl.min(lifetime.saturating_sub(age));
    }
    // ttl <= input.ttl_s, so it fits.
    u32::try_from(ttl).ok().filter(|t| *t > 0)
}

/// A delta-seconds value; a missing or unparsable one counts as 0 (stale), a huge one is
/// capped.
fn seconds(value: Option<&str>) -> u64 {
    let v = value.unwrap_or("").trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    v.parse::<u64>().unwrap_or(u64::MAX)
}

/// `Cache-Control` directives as (lowercased name, value without quotes). Commas inside
/// quoted strings do not split.
fn directives(header: &str) -> Vec<(String, Option<&str>)> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in header.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&header[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (
                n.trim().to_ascii_lowercase(),
                Some(v.trim().trim_matches('"')),
            ),
            None => (p.to_ascii_lowercase(), None),
        })
        .collect()
}

/// `https://cache.402claw.internal/{slug}/{sha256(upstream_url) in hex}`.
pub fn cache_key(slug: &str, upstream_url: &str) -> String {
    format!(
        "{CACHE_KEY_ORIGIN}/{slug}/{:x}",
        Sha256::digest(upstream_url.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn get(cc: Option<&str>) -> CacheInput<'_> {
        CacheInput {
            method: "GET",
            status: 200,
            cache_control: cc,
            ttl_s: 60,
            ..CacheInput::default()
        }
    }

    #[test]
    fn only_get_200_with_a_ttl() {
        assert_eq!(cache_policy(&get(None)), Some(60));
        for method in ["HEAD", "POST", "get", "PUT"] {
            assert_eq!(
                cache_policy(&CacheInput {
                    method,
                    ..get(None)
                }),
                None,
                "{method}"
            );
        }
        for status in [201, 203, 204, 206, 301, 304, 404, 500] {
            assert_eq!(
                cache_policy(&CacheInput {
                    status,
                    ..get(None)
                }),
                None,
                "{status}"
            );
        }
        assert_eq!(
            cache_policy(&CacheInput {
                ttl_s: 0,
                ..get(None)
            }),
            None
        );
        assert!(cache_lookup_allowed("GET", 1));
        assert!(!cache_lookup_allowed("GET", 0));
        assert!(!cache_lookup_allowed("POST", 60));
    }

    #[test]
    fn upstream_directives_are_honoured() {
        for cc in [
            "no-store",
            "No-Store",
            "private",
            "private=\"set-cookie\"",
            "no-cache",
            "no-cache=\"x, y\"",
            "public, max-age=30, no-store",
            "max-age=0",
            "max-age=abc",
            "max-age=-5",
            "s-maxage=0, max-age=30",
        ] {
            assert_eq!(cache_policy(&get(Some(cc))), None, "{cc}");
        }
        assert_eq!(cache_policy(&get(Some("max-age=30"))), Some(30));
        assert_eq!(cache_policy(&get(Some("public, max-age=3600"))), Some(60));
        assert_eq!(
            cache_policy(&get(Some("max-age=30, s-maxage=10"))),
            Some(10)
        );
        assert_eq!(cache_policy(&get(Some("max-age=\"20\""))), Some(20));
        assert_eq!(cache_policy(&get(Some("max-age=30, max-age=5"))), Some(5));
        assert_eq!(
            cache_policy(&get(Some("max-age=99999999999999999999999"))),
            Some(60)
        );
        // A comma inside a quoted value does not start a directive.
        assert_eq!(
            cache_policy(&get(Some("community=\"a, no-store\", max-age=9"))),
            Some(9)
        );
        assert_eq!(
            cache_policy(&get(Some("must-revalidate, immutable"))),
            Some(60)
        );
        // Age eats into the lifetime; no lifetime, no Age effect.
        assert_eq!(
            cache_policy(&CacheInput {
                age: Some("25"),
                ..get(Some("max-age=30"))
            }),
            Some(5)
        );
        assert_eq!(
            cache_policy(&CacheInput {
                age: Some("30"),
                ..get(Some("max-age=30"))
            }),
            None
        );
        assert_eq!(
            cache_policy(&CacheInput {
                age: Some("30"),
                ..get(None)
            }),
            Some(60)
        );
    }

    #[test]
    fn vary_and_authorization() {
        let vary = |v| {
            cache_policy(&CacheInput {
                vary: Some(v),
                ..get(None)
            })
        };
        assert_eq!(vary("Accept-Encoding"), Some(60));
        assert_eq!(vary(""), Some(60));
        assert_eq!(vary("accept-encoding, Accept-Language"), None);
        assert_eq!(vary("*"), None);
        assert_eq!(vary("Authorization"), None);
        let auth = |cc| {
            cache_policy(&CacheInput {
                caller_authorization: true,
                ..get(cc)
            })
        };
        assert_eq!(auth(None), None);
        assert_eq!(auth(Some("max-age=30")), None);
        assert_eq!(auth(Some("public, max-age=30")), Some(30));
        assert_eq!(auth(Some("s-maxage=30")), Some(30));
    }

    #[test]
    fn keys() {
        let k = cache_key("weather", "https://api.x.com/v1/a?b=c");
        assert!(
            k.starts_with("https://cache.402claw.internal/weather/"),
            "{k}"
        );
        let hash = k.rsplit('/').next().unwrap();
        assert_eq!(hash.len(), 64);
        assert!(hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(
            cache_key("a", ""),
            "https://cache.402claw.internal/a/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(k, cache_key("weather", "https://api.x.com/v1/a?b=d"));
        assert_ne!(k, cache_key("weather2", "https://api.x.com/v1/a?b=c"));
        assert_eq!(k, cache_key("weather", "https://api.x.com/v1/a?b=c"));
    }

    fn directive() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("no-store".to_owned()),
            Just("Private".to_owned()),
            Just("no-cache".to_owned()),
            Just("public".to_owned()),
            Just("must-revalidate".to_owned()),
            "(max-age|s-maxage|MAX-AGE)=[0-9]{0,6}",
            "x=\"[a-z, -]{0,10}\"",
        ]
    }

    proptest! {
        #[test]
        fn ttl_is_bounded_and_refusals_win(
            dirs in proptest::collection::vec(directive(), 0..5),
            age in proptest::option::of("[0-9]{0,4}"),
            ttl_s in 0u32..100_000,
            auth in any::<bool>(),
        ) {
            let cc = dirs.join(", ");
            let got = cache_policy(&CacheInput { age: age.as_deref(), ttl_s, caller_authorization: auth, ..get(Some(&cc)) });
            let has = |d: &str| dirs.iter().any(|x| x.eq_ignore_ascii_case(d));
            if has("no-store") || has("private") || has("no-cache") || ttl_s == 0 {
                prop_assert_eq!(got, None);
            }
            if let Some(t) = got {
                prop_assert!(t > 0 && t <= ttl_s);
                prop_assert!(!auth || has("public") || cc.contains("s-maxage"));
            }
        }

        #[test]
        fn never_panics(cc in "\\PC{0,60}", age in proptest::option::of("\\PC{0,8}")) {
            let _ = cache_policy(&CacheInput { age: age.as_deref(), ..get(Some(&cc)) });
        }
    }
}
