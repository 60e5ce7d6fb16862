//! Pure rules for proxy tenants and for the egress of tenants' own Workers.
//!
//! A proxy call, in the order the dispatcher applies these rules (before any payment is
//! taken, everything up to the upstream URL is checked, so a bad request costs nothing):
//! 1. [`methods::check_method`]: 405 with `Allow` when the method is not listed;
//! 2. [`upstream_url`]: join the caller's path and query onto `upstreamUrl`
//!    ([`join`]) and check the result against the SSRF rules ([`ssrf`]);
//! 3. [`cache::cache_lookup_allowed`] / [`cache::cache_key`]: answer from the cache;
//! 4. [`headers`]: the upstream request's headers, injected credentials last;
//! 5. fetch with `redirect: "manual"` (a followed redirect would skip these checks), bounded
//!    by `timeoutMs` and `maxResponseBytes`;
//! 6. [`cache::cache_policy`]: store the raw upstream response;
//! 7. [`transform::apply_transform`] when [`transform::transform_applies`];
//! 8. [`headers::proxy_response_header`] filters the headers going back.
//!
//! [`egress::egress_decision`] is the outbound Worker's rule for tenants' own fetches.

pub mod cache;
pub mod egress;
pub mod headers;
pub mod join;
pub mod methods;
pub mod ssrf;
pub mod transform;

use claw_durable::problem::Problem;
use claw_durable::tenant::ProxyConfig;
use thiserror::Error;

pub use join::{JoinError, UpstreamBase, MAX_UPSTREAM_URL_BYTES};
pub use ssrf::{check_upstream, BlockedRange, PlatformHosts, SsrfError, SsrfPolicy};

/// Every way a proxy call can fail before or after the upstream fetch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProxyError {
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error(transparent)]
    Ssrf(#[from] SsrfError),
    #[error(transparent)]
    Method(#[from] methods::MethodNotAllowed),
    #[error(transparent)]
    Header(#[from] headers::HeaderError),
    #[error(transparent)]
    Transform(#[from] transform::TransformError),
}

impl ProxyError {
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::Join(e) => e.code(),
            ProxyError::Ssrf(e) => e.code(),
            ProxyError::Method(e) => e.code(),
            ProxyError::Header(e) => e.code(),
            ProxyError::Transform(e) => e.code(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ProxyError::Join(e) => e.status(),
            ProxyError::Ssrf(e) => e.status(),
            ProxyError::Method(e) => e.status(),
            ProxyError::Header(e) => e.status(),
            ProxyError::Transform(e) => e.status(),
        }
    }

    /// The caller-facing problem. Details about the tenant's setup (upstream host, secret
    /// names) stay out of it: log `self` for those.
    pub fn to_problem(&self) -> Problem {
        let (title, detail) = match self {
            ProxyError::Join(JoinError::InvalidBase(_)) | ProxyError::Ssrf(_) => (
                "Upstream not reachable",
                "the tenant's upstream URL is not allowed by the platform".to_owned(),
            ),
            ProxyError::Join(e) => ("Invalid request URL", e.to_string()),
            ProxyError::Method(e) => ("Method not allowed", e.to_string()),
            ProxyError::Header(_) => (
                "Upstream credentials misconfigured",
                "the tenant's upstream credentials are not set up".to_owned(),
            ),
            ProxyError::Transform(e) => ("Bad upstream response", e.to_string()),
        };
        Problem::new(self.status(), self.code(), title).detail(detail)
    }

    /// The `Allow` header value the 405 must carry.
    pub fn allow_header(&self) -> Option<&str> {
        match self {
            ProxyError::Method(e) => Some(&e.allow),
            _ => None,
        }
    }
}

/// The URL to fetch for a caller's encoded path remainder (`rest`, starting with `/`) and
/// query (without `?`): joined under the tenant's base, then checked against the SSRF rules.
pub fn upstream_url(
    config: &ProxyConfig,
    rest: &str,
    query: Option<&str>,
    policy: &SsrfPolicy,
) -> Result<String, ProxyError> {
    let base = UpstreamBase::parse(&config.upstream_url)?;
    check_upstream(base.prefix(), policy)?;
    let url = base.join(rest, query)?;
    // The host comes from the base alone; checking the final string too costs little.
    check_upstream(&url, policy)?;
    Ok(url)
}

/// Admin-time check of a proxy config's upstream, so operators learn of a refused upstream
/// when they save it: `400 invalid_field` on `proxy.upstreamUrl`.
pub fn validate_upstream(config: &ProxyConfig, policy: &SsrfPolicy) -> Result<(), Problem> {
    let base = UpstreamBase::parse(&config.upstream_url)
        .map_err(|e| Problem::invalid_field("proxy.upstreamUrl", e.to_string()))?;
    check_upstream(base.prefix(), policy)
        .map_err(|e| Problem::invalid_field("proxy.upstreamUrl", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> ProxyConfig {
        let json = format!(r#"{{"upstreamUrl":"{url}"}}"#);
        serde_json::from_str(&json).unwrap()
    }

    fn policy() -> SsrfPolicy {
        SsrfPolicy {
            allow_loopback_http: false,
            platform: PlatformHosts::new("402claw.dev", []),
        }
    }

    #[test]
    fn end_to_end_url() {
        let c = config("https://api.x.com/v1/");
        assert_eq!(
            upstream_url(&c, "/a/b", Some("c=d"), &policy()).as_deref(),
            Ok("https://api.x.com/v1/a/b?c=d")
        );
        let e = upstream_url(&c, "/a/%2e%2e/b", None, &policy()).unwrap_err();
        assert_eq!((e.status(), e.code()), (400, "path_traversal"));
        let e = upstream_url(&config("https://127.0.0.1/"), "/", None, &policy()).unwrap_err();
        assert_eq!((e.status(), e.code()), (502, "upstream_host_refused"));
        let p = e.to_problem();
        assert!(!p.detail.unwrap_or_default().contains("127.0.0.1"));
        let e = upstream_url(&config("https://x.402claw.dev/"), "/", None, &policy()).unwrap_err();
        assert_eq!(e.code(), "upstream_is_platform");
        let e = upstream_url(&config("ftp://x.com"), "/", None, &policy()).unwrap_err();
        assert_eq!((e.status(), e.code()), (502, "upstream_config_invalid"));
    }

    #[test]
    fn admin_validation_names_the_field() {
        assert_eq!(
            validate_upstream(&config("https://api.x.com/v1"), &policy()),
            Ok(())
        );
        for bad in [
            "https://10.0.0.1/",
            "http://api.x.com/",
            "https://api.x.com/../a",
            "https://402claw.dev/",
        ] {
            let p = validate_upstream(&config(bad), &policy()).unwrap_err();
            assert_eq!(
                (p.status, p.field.as_deref()),
                (400, Some("proxy.upstreamUrl")),
                "{bad}"
            );
        }
    }

    #[test]
    fn method_problem_carries_allow() {
        let e: ProxyError = methods::check_method("DELETE", &["GET".to_owned()])
            .unwrap_err()
            .into();
        assert_eq!(e.allow_header(), Some("GET"));
        assert_eq!(e.to_problem().status, 405);
    }
}
