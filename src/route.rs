//! Which part of the platform a request is for: a tenant (by path or by host), the
//! platform's own API, or nothing.

use claw_durable::problem::{Code, Problem};
use claw_durable::tenant::validate_slug;

pub const PLATFORM_PREFIX: &str = "/__platform";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The web dashboard under `/__platform/dashboard`; `rest` is the path after it (empty
    /// or starting with `/`).
    Dashboard { rest: String },
    /// `/__platform/...`; `rest` is the path after the prefix, starting with `/`.
    Platform { rest: String },
    /// A tenant; `rest` is the path the tenant sees, starting with `/`, still encoded.
    Tenant { slug: String, rest: String },
    /// `/` on the platform host.
    Index,
    /// `/discovery/...` on the platform host: x402 discovery (`crate::discovery`).
    Discovery { path: String },
    /// `/mcp` on the platform host: the MCP endpoint (`crate::mcp`).
    Mcp,
}

/// Resolves a request from its `Host` (port allowed) and its encoded path.
///
/// `{slug}.{platform_domain}` selects a tenant by host; otherwise `/t/{slug}/...` does. The
/// platform API lives under `/__platform` on every host, so no tenant can shadow it.
pub fn resolve(host: &str, path: &str, platform_domain: &str) -> Result<Target, Problem> {
    if let Some(rest) = path.strip_prefix(crate::dashboard::PREFIX) {
        if rest.is_empty() || rest.starts_with('/') {
            return Ok(Target::Dashboard { rest: rest.into() });
        }
    }
    if path == PLATFORM_PREFIX || path.starts_with("/__platform/") {
        let rest = &path[PLATFORM_PREFIX.len()..];
        return Ok(Target::Platform {
            rest: if rest.is_empty() {
                "/".into()
            } else {
                rest.into()
            },
        });
    }
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    if let Some(slug) = tenant_from_host(host, platform_domain) {
        checked_slug(slug)?;
        // A parsed URL's path always starts with `/`; anything else is given one, so the
        // tenant always sees an absolute path.
        let rest = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        return Ok(Target::Tenant {
            slug: slug.into(),
            rest,
        });
    }
    if let Some(after) = path.strip_prefix("/t/") {
        let (slug, rest) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, "/"),
        };
        checked_slug(slug)?;
        return Ok(Target::Tenant {
            slug: slug.into(),
            rest: rest.into(),
        });
    }
    if path == "/" {
        return Ok(Target::Index);
    }
    if path == "/mcp" {
        return Ok(Target::Mcp);
    }
    if path.starts_with("/discovery/") {
        return Ok(Target::Discovery { path: path.into() });
    }
    Err(Problem::new(Code::RouteNotFound)
        .detail("tenants are reached at /t/{slug}/... or {slug}.<platform domain>"))
}

fn tenant_from_host<'h>(host: &'h str, platform_domain: &str) -> Option<&'h str> {
    if platform_domain.is_empty() || host.len() <= platform_domain.len() + 1 {
        return None;
    }
    let split = host.len() - platform_domain.len();
    // `get` rather than slicing: a non-ASCII host may not split on a char boundary.
    let (label, domain) = (host.get(..split)?, host.get(split..)?);
    let label = label.strip_suffix('.')?;
    (domain.eq_ignore_ascii_case(platform_domain) && !label.contains('.')).then_some(label)
}

fn checked_slug(slug: &str) -> Result<(), Problem> {
    validate_slug(slug)
        .map_err(|reason| Problem::new(Code::InvalidSlug).detail(format!("the slug {reason}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "402claw.dev";

    fn tenant(slug: &str, rest: &str) -> Result<Target, Problem> {
        Ok(Target::Tenant {
            slug: slug.into(),
            rest: rest.into(),
        })
    }

    #[test]
    fn platform_and_index() {
        assert_eq!(resolve("localhost", "/", D), Ok(Target::Index));
        assert_eq!(
            resolve("localhost", "/__platform/tenants", D),
            Ok(Target::Platform {
                rest: "/tenants".into()
            })
        );
        assert_eq!(
            resolve("localhost", "/__platform", D),
            Ok(Target::Platform { rest: "/".into() })
        );
        assert_eq!(
            resolve("localhost", "/__platformx", D).unwrap_err().code,
            "route_not_found"
        );
        assert_eq!(resolve("localhost", "/nope", D).unwrap_err().status, 404);
        // The dashboard, on any host (a tenant's host too: no tenant can shadow it).
        for host in ["localhost", "acme.402claw.dev"] {
            assert_eq!(
                resolve(host, "/__platform/dashboard/app.js", D),
                Ok(Target::Dashboard {
                    rest: "/app.js".into()
                })
            );
            assert_eq!(
                resolve(host, "/__platform/dashboard", D),
                Ok(Target::Dashboard { rest: "".into() })
            );
        }
        assert_eq!(
            resolve("localhost", "/__platform/dashboardx", D),
            Ok(Target::Platform {
                rest: "/dashboardx".into()
            })
        );
    }

    /// Discovery and MCP on the platform host; on a tenant's host those paths are the tenant's.
    #[test]
    fn discovery_and_mcp() {
        assert_eq!(resolve("localhost", "/mcp", D), Ok(Target::Mcp));
        assert_eq!(
            resolve("localhost", "/discovery/resources", D),
            Ok(Target::Discovery {
                path: "/discovery/resources".into()
            })
        );
        assert_eq!(resolve("localhost", "/mcpx", D).unwrap_err().status, 404);
        assert_eq!(
            resolve("demo-fn.402claw.dev", "/mcp", D),
            tenant("demo-fn", "/mcp")
        );
        assert_eq!(
            resolve("demo-fn.402claw.dev", "/discovery/search", D),
            tenant("demo-fn", "/discovery/search")
        );
    }

    /// Tenants by path (`/t/{slug}/...`) and by host (`{slug}.{domain}`).
    #[test]
    fn tenant_routing() {
        for (host, path, rest) in [
            ("localhost:8787", "/t/demo-fn/hello", "/hello"),
            ("localhost:8787", "/t/demo-fn", "/"),
            ("localhost:8787", "/t/demo-fn/", "/"),
            ("x", "/t/demo-fn/a%2Fb/../c", "/a%2Fb/../c"),
            ("demo-fn.402claw.dev", "/x?y", "/x?y"),
            ("demo-fn.402CLAW.dev:443", "/", "/"),
            // Host routing wins over the path form, so /t/ is an ordinary tenant path there.
            ("demo-fn.402claw.dev", "/t/other/x", "/t/other/x"),
            ("402claw.dev", "/t/demo-fn/x", "/x"),
        ] {
            assert_eq!(
                resolve(host, path, D),
                tenant("demo-fn", rest),
                "{host}{path}"
            );
        }
        // Deeper subdomains and look-alike domains are not tenants.
        assert_eq!(
            resolve("a.b.402claw.dev", "/x", D).unwrap_err().code,
            "route_not_found"
        );
        assert_eq!(
            resolve("demo-fn.evil402claw.dev", "/x", D)
                .unwrap_err()
                .code,
            "route_not_found"
        );
        assert_eq!(
            resolve("demo-fn.402claw.dev.evil.com", "/", D),
            Ok(Target::Index)
        );
        assert_eq!(
            resolve("demo-fn.402claw.dev", "/__platform/tenants", D),
            Ok(Target::Platform {
                rest: "/tenants".into()
            })
        );
    }

    #[test]
    fn bad_slugs_are_400() {
        for path in [
            "/t/",
            "/t//x",
            "/t/A/x",
            "/t/a--b",
            "/t/%61%62/x",
            "/t/www/x",
        ] {
            assert_eq!(
                resolve("localhost", path, D).unwrap_err().code,
                "invalid_slug",
                "{path}"
            );
        }
        assert_eq!(
            resolve("Bad_Host.402claw.dev", "/", D).unwrap_err().code,
            "invalid_slug"
        );
    }

    proptest::proptest! {
        /// Any host and path: an answer, never a panic; a tenant answer has a valid slug.
        #[test]
        fn never_panics(
            host in "\\PC{0,40}|[a-zA-Z0-9.-]{0,12}\\.402claw\\.dev(:[0-9]{1,5})?|[a-z][a-z0-9-]{0,10}[a-z0-9]\\.402CLAW\\.dev",
            path in "/[a-z0-9%./_-]{0,60}|/t/[a-z0-9-]{0,12}(/[a-z0-9%._-]{0,10}){0,3}|/__platform/[a-z/]{0,20}|\\PC{0,60}",
        ) {
            let target = resolve(&host, &path, D);
            if let Ok(Target::Tenant { slug, rest }) = &target {
                proptest::prop_assert!(validate_slug(slug).is_ok());
                proptest::prop_assert!(rest.starts_with('/'));
            }
            // The platform API is reached on every host; no tenant can shadow it.
            if path.starts_with("/__platform/") {
                let is_platform = matches!(target, Ok(Target::Platform { .. }));
                proptest::prop_assert!(is_platform);
            }
        }
    }
}
