//! The web dashboard: static files built from `src/dashboard/web/` by `scripts/build` into
//! `build/dashboard/`, served through the Worker's static assets binding (`ASSETS`,
//! wrangler.toml `[assets]` with `run_worker_first = true`, so a file can never shadow a
//! tenant's path on its host) at `/__platform/dashboard/`.
//!
//! The rules here are pure: which file a path names ([`asset_path`]) and the headers every
//! dashboard answer carries ([`SECURITY_HEADERS`]: a strict Content-Security-Policy, no
//! framing, no sniffing, no referrer). The page reads the platform API on the same origin
//! with a bearer token from the tab's session storage; it sets no cookies.

#[cfg(target_arch = "wasm32")]
pub mod edge;

/// Where the dashboard lives (the platform API's prefix plus `/dashboard`).
pub const PREFIX: &str = "/__platform/dashboard";

/// The static assets binding holding `build/dashboard/`.
pub const ASSETS: &str = "ASSETS";

/// Sent with every dashboard answer. Scripts and styles come only from the dashboard's own
/// files (no inline script or style, no `eval`); the page talks only to its own origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    // Files keep their names across builds: revalidate (ETag) on every load.
    ("cache-control", "no-cache"),
];

/// What a dashboard path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asset {
    /// `/__platform/dashboard` without its slash: the page's relative URLs need it.
    Redirect,
    /// A file of `build/dashboard/`, as a path starting with `/`.
    File(String),
}

/// Longest file path the dashboard serves.
const MAX_PATH_BYTES: usize = 128;

/// The asset `rest` (the path after [`PREFIX`], still percent-encoded) names, or `None`
/// for anything that is not a plain file name: only `A-Z a-z 0-9 . _ -` segments, none
/// starting with `.` (so no `..`, no hidden files), no empty segment.
pub fn asset_path(rest: &str) -> Option<Asset> {
    if rest.is_empty() {
        return Some(Asset::Redirect);
    }
    let file = rest.strip_prefix('/')?;
    if file.is_empty() {
        return Some(Asset::File("/index.html".into()));
    }
    let plain = |seg: &str| {
        !seg.is_empty()
            && !seg.starts_with('.')
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    (file.len() <= MAX_PATH_BYTES && file.split('/').all(plain))
        .then(|| Asset::File(format!("/{file}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(p: &str) -> Option<Asset> {
        Some(Asset::File(p.into()))
    }

    #[test]
    fn paths_name_files_or_nothing() {
        assert_eq!(asset_path(""), Some(Asset::Redirect));
        assert_eq!(asset_path("/"), file("/index.html"));
        assert_eq!(asset_path("/app.js"), file("/app.js"));
        assert_eq!(asset_path("/app.css"), file("/app.css"));
        assert_eq!(asset_path("/fonts/a-b_c.woff2"), file("/fonts/a-b_c.woff2"));
        for bad in [
            "x",
            "/..",
            "/../wrangler.toml",
            "/a/../b",
            "/%2e%2e/x",
            "/.hidden",
            "//app.js",
            "/a//b",
            "/app.js/",
            "/a b",
            "/a?b",
            "/a\\b",
        ] {
            assert_eq!(asset_path(bad), None, "{bad}");
        }
        assert_eq!(
            asset_path(&format!("/{}", "a".repeat(MAX_PATH_BYTES + 1))),
            None
        );
    }

    #[test]
    fn the_policy_allows_nothing_inline_and_only_this_origin() {
        let csp = CONTENT_SECURITY_POLICY;
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(!csp.contains("http"), "no other origin: {csp}");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{directive}");
        }
        let names: Vec<&str> = SECURITY_HEADERS.iter().map(|(n, _)| *n).collect();
        assert!(names.contains(&"content-security-policy"));
        assert!(!names.iter().any(|n| n.contains("cookie")));
    }
}
