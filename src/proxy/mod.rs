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
//! [`upstream`] holds the rules for the upstream's answer (timeout, size cap, redirects, and
//! the headers of cached copies); [`plan`] applies steps 1 to 3 in one call.
//!
//! [`egress::egress_decision`] is the outbound Worker's rule for tenants' own fetches.

#[cfg(target_arch = "wasm32")]
pub mod edge;

pub mod cache;
pub mod headers;
pub mod join;
pub mod methods;
pub mod ssrf;
pub mod transform;
pub mod upstream;

use claw_durable::problem::{Code, Problem};
use claw_durable::tenant::ProxyConfig;
use thiserror::Error;

pub use join::{JoinError, UpstreamBase, MAX_UPSTREAM_URL_BYTES};
pub use ssrf::{check_upstream, BlockedRange, PlatformHosts, SsrfError, SsrfPolicy};
pub use upstream::{CacheStatus, UpstreamError};

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
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl ProxyError {
    pub fn code(&self) -> Code {
        match self {
            ProxyError::Join(e) => e.code(),
            ProxyError::Ssrf(e) => e.code(),
            ProxyError::Method(e) => e.code(),
            ProxyError::Header(e) => e.code(),
            ProxyError::Transform(e) => e.code(),
            ProxyError::Upstream(e) => e.code(),
        }
    }

    pub fn status(&self) -> u16 {
        self.code().status()
    }

    /// The caller-facing problem. Details about the tenant's setup (upstream host, secret
    /// names) stay out of it: log `self` for those.
    pub fn to_problem(&self) -> Problem {
        let detail = match self {
            ProxyError::Join(JoinError::InvalidBase(_)) | ProxyError::Ssrf(_) => {
                "the tenant's upstream URL is not allowed by the platform".to_owned()
            }
            ProxyError::Header(_) => "the tenant's upstream credentials are not set up".to_owned(),
            ProxyError::Join(e) => e.to_string(),
            ProxyError::Method(e) => e.to_string(),
            ProxyError::Transform(e) => e.to_string(),
            ProxyError::Upstream(e) => e.to_string(),
        };
        Problem::new(self.code()).detail(detail)
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

/// What the dispatcher does for one proxy call, decided before any I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamPlan {
    /// The URL to fetch (joined and checked).
    pub url: String,
    /// The cache key, when the cache applies to this call ([`CacheStatus::Bypass`] if not).
    pub cache_key: Option<String>,
    /// Whether a JSON transform is configured.
    pub transforming: bool,
}

/// Steps 1 to 3: the method allowlist, the upstream URL (joining and SSRF rules), and
/// whether the cache applies, for tenant `slug`.
pub fn plan(
    slug: &str,
    config: &ProxyConfig,
    method: &str,
    rest: &str,
    query: Option<&str>,
    policy: &SsrfPolicy,
) -> Result<UpstreamPlan, ProxyError> {
    methods::check_method(method, &config.allowed_methods)?;
    let url = upstream_url(config, rest, query, policy)?;
    let cache_key = cache::cache_lookup_allowed(method, config.cache_ttl_s)
        .then(|| cache::cache_key(slug, &url));
    Ok(UpstreamPlan {
        url,
        cache_key,
        transforming: config.transform.is_some(),
    })
}

/// The platform's hosts as the dispatcher knows them: `PLATFORM_DOMAIN`, the
/// comma-separated `PLATFORM_HOSTS` (other names the platform answers on, e.g. its
/// `workers.dev` name), and the host the current request came in on.
pub fn platform_hosts(
    domain: &str,
    extra_hosts: Option<&str>,
    request_host: Option<&str>,
) -> PlatformHosts {
    PlatformHosts::new(
        domain,
        extra_hosts
            .unwrap_or("")
            .split(',')
            .chain(request_host)
            .map(str::trim),
    )
}

/// A boolean setting is on only when it is exactly `true`.
pub fn setting_enabled(value: Option<&str>) -> bool {
    value == Some("true")
}

/// Admin-time check of a proxy config's upstream, so operators learn of a refused upstream
/// when they save it: `400 invalid_field` on `proxy.upstreamUrl`.
pub fn validate_upstream(config: &ProxyConfig, policy: &SsrfPolicy) -> Result<(), Problem> {
    let base = UpstreamBase::parse(&config.upstream_url)
        .map_err(|e| Problem::invalid_field("proxy.upstreamUrl", e.to_string()))?;
    check_upstream(base.prefix(), policy)
        .map_err(|e| Problem::invalid_field("proxy.upstreamUrl", e.to_string()))
}

/// Admin-time check that every injected header names a secret in tenant `slug`'s scope
/// ([`headers::secret_prefix`]): `400 invalid_field` on `proxy.injectHeaders.secret`.
pub fn validate_secret_scope(slug: &str, config: &ProxyConfig) -> Result<(), Problem> {
    headers::check_secret_scope(slug, &config.inject_headers).map_err(|_| {
        Problem::invalid_field(
            "proxy.injectHeaders.secret",
            format!(
                "must name a secret binding starting with {}",
                headers::secret_prefix(slug)
            ),
        )
    })
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
        assert_eq!((e.status(), e.code().as_str()), (400, "path_traversal"));
        let e = upstream_url(&config("https://127.0.0.1/"), "/", None, &policy()).unwrap_err();
        assert_eq!(
            (e.status(), e.code().as_str()),
            (502, "upstream_host_refused")
        );
        let p = e.to_problem();
        assert!(!p.detail.unwrap_or_default().contains("127.0.0.1"));
        let e = upstream_url(&config("https://x.402claw.dev/"), "/", None, &policy()).unwrap_err();
        assert_eq!(e.code(), "upstream_is_platform");
        let e = upstream_url(&config("ftp://x.com"), "/", None, &policy()).unwrap_err();
        assert_eq!(
            (e.status(), e.code().as_str()),
            (502, "upstream_config_invalid")
        );
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
    fn plan_checks_method_then_url_then_cache() {
        let mut c = config("https://api.x.com/v1");
        c.cache_ttl_s = 30;
        c.allowed_methods = vec!["GET".into(), "POST".into()];
        let p = plan("acme", &c, "GET", "/a", Some("b=1"), &policy()).unwrap();
        assert_eq!(p.url, "https://api.x.com/v1/a?b=1");
        assert_eq!(
            p.cache_key.as_deref(),
            Some(cache::cache_key("acme", "https://api.x.com/v1/a?b=1").as_str())
        );
        assert!(!p.transforming);
        assert_eq!(
            plan("acme", &c, "POST", "/a", None, &policy())
                .unwrap()
                .cache_key,
            None
        );
        let e = plan("acme", &c, "DELETE", "/%2e%2e", None, &policy()).unwrap_err();
        assert_eq!(
            e.code(),
            "method_not_allowed",
            "the method is checked first"
        );
        assert_eq!(e.allow_header(), Some("GET, POST"));
        c.cache_ttl_s = 0;
        assert_eq!(
            plan("acme", &c, "GET", "/", None, &policy())
                .unwrap()
                .cache_key,
            None
        );
        // Another tenant, same URL: another key.
        c.cache_ttl_s = 30;
        assert_ne!(
            plan("acme", &c, "GET", "/", None, &policy())
                .unwrap()
                .cache_key,
            plan("other", &c, "GET", "/", None, &policy())
                .unwrap()
                .cache_key
        );
    }

    #[test]
    fn platform_hosts_from_the_environment() {
        let p = platform_hosts(
            "402claw.dev",
            Some(" claw.acme.workers.dev, ,api.acme.com:443"),
            Some("edge.example.net:8443"),
        );
        for h in [
            "402claw.dev",
            "x.402claw.dev",
            "claw.acme.workers.dev",
            "api.acme.com",
            "edge.example.net",
        ] {
            assert!(p.contains(h), "{h}");
        }
        assert!(!p.contains("example.net"));
        assert!(setting_enabled(Some("true")));
        for v in [None, Some("1"), Some("TRUE"), Some("yes"), Some("")] {
            assert!(!setting_enabled(v), "{v:?}");
        }
    }

    #[test]
    fn upstream_failures_map_to_gateway_problems() {
        let e: ProxyError = UpstreamError::Timeout { timeout_ms: 300 }.into();
        let p = e.to_problem();
        assert_eq!((p.status, p.code.as_ref()), (504, "upstream_timeout"));
        let e: ProxyError = UpstreamError::TooLarge { max_bytes: 10 }.into();
        assert_eq!((e.status(), e.code().as_str()), (502, "upstream_too_large"));
    }

    #[test]
    fn admin_refuses_secrets_outside_the_tenant_scope() {
        let c: ProxyConfig = serde_json::from_str(
            r#"{"upstreamUrl":"https://x.com","injectHeaders":[{"name":"x-key","secret":"PLATFORM_ADMIN_TOKEN"}]}"#,
        )
        .unwrap();
        let p = validate_secret_scope("acme", &c).unwrap_err();
        assert_eq!(
            (p.status, p.field.as_deref()),
            (400, Some("proxy.injectHeaders.secret"))
        );
        assert!(p.detail.unwrap_or_default().contains("ACME__"));
        let ok: ProxyConfig = serde_json::from_str(
            r#"{"upstreamUrl":"https://x.com","injectHeaders":[{"name":"x-key","secret":"ACME__KEY"}]}"#,
        )
        .unwrap();
        assert_eq!(validate_secret_scope("acme", &ok), Ok(()));
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
