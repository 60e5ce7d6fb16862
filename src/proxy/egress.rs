//! The egress policy the outbound Worker of the dispatch namespace applies to every `fetch`
//! a tenant's own Worker makes.
//!
//! Deny by default. In order:
//! 1. the URL must parse (printable ASCII, no backslash, WHATWG rules), scheme `http` or
//!    `https`, no userinfo;
//! 2. no host of the platform (its domain, its subdomains, and each listed platform host and
//!    its subdomains): a tenant must not call back into the platform, which would loop
//!    (recursive fetch) or launder calls past the paywall;
//! 3. no address or name outside the public Internet, as [`super::ssrf`] defines it;
//! 4. no IP literal at all: the allowlist names hosts (config validation refuses
//!    IP-looking entries), so an IP literal never matches;
//! 5. the host must match an `allowedHosts` entry: `api.example.com` matches exactly that
//!    host; `*.example.com` matches any subdomain at any depth (`a.example.com`,
//!    `a.b.example.com`) but not `example.com` itself. Case and a trailing dot are ignored.
//!    Ports are not part of the match.

use url::Host;

use super::ssrf::{
    check_host, classify_host, parse_strict, BlockedRange, PlatformHosts, SsrfError,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressDecision {
    Allow,
    Deny(EgressDenial),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressDenial {
    InvalidUrl,
    Scheme(String),
    Userinfo,
    PlatformHost(String),
    Blocked { host: String, range: BlockedRange },
    IpLiteral(String),
    NotAllowed(String),
}

impl EgressDenial {
    /// Stable code for the outbound Worker's 403 problem.
    pub fn code(&self) -> &'static str {
        match self {
            EgressDenial::InvalidUrl => "egress_invalid_url",
            EgressDenial::Scheme(_) => "egress_scheme_refused",
            EgressDenial::Userinfo => "egress_userinfo_refused",
            EgressDenial::PlatformHost(_) => "egress_platform_refused",
            EgressDenial::Blocked { .. } => "egress_host_refused",
            EgressDenial::IpLiteral(_) => "egress_ip_literal_refused",
            EgressDenial::NotAllowed(_) => "egress_host_not_allowed",
        }
    }

    /// The tenant's Worker asked for something its config does not allow: 403.
    pub fn status(&self) -> u16 {
        403
    }

    pub fn reason(&self) -> String {
        match self {
            EgressDenial::InvalidUrl => "the URL is not valid".into(),
            EgressDenial::Scheme(s) => format!("scheme {s:?} is not allowed; use http or https"),
            EgressDenial::Userinfo => "URLs with credentials are refused".into(),
            EgressDenial::PlatformHost(h) => format!("{h} is the platform itself"),
            EgressDenial::Blocked { host, range } => format!("{host} is {range}"),
            EgressDenial::IpLiteral(h) => format!("{h} is an IP address; allowedHosts names hosts"),
            EgressDenial::NotAllowed(h) => format!("{h} is not in the tenant's allowedHosts"),
        }
    }
}

/// Whether a tenant's Worker may fetch `url`.
pub fn egress_decision(
    allowed_hosts: &[String],
    url: &str,
    platform: &PlatformHosts,
) -> EgressDecision {
    match decide(allowed_hosts, url, platform) {
        Ok(()) => EgressDecision::Allow,
        Err(d) => EgressDecision::Deny(d),
    }
}

fn decide(
    allowed_hosts: &[String],
    url: &str,
    platform: &PlatformHosts,
) -> Result<(), EgressDenial> {
    let parsed = parse_strict(url).map_err(|e| match e {
        SsrfError::Userinfo => EgressDenial::Userinfo,
        _ => EgressDenial::InvalidUrl,
    })?;
    let scheme = parsed.scheme();
    if !matches!(scheme, "http" | "https") {
        return Err(EgressDenial::Scheme(scheme.to_owned()));
    }
    let host = parsed.host().ok_or(EgressDenial::InvalidUrl)?;
    check_host(&host, platform).map_err(|e| match e {
        SsrfError::PlatformHost(h) => EgressDenial::PlatformHost(h),
        SsrfError::Blocked { host, range } => EgressDenial::Blocked { host, range },
        _ => EgressDenial::InvalidUrl,
    })?;
    let name = match host {
        Host::Domain(name) => name.trim_end_matches('.').to_ascii_lowercase(),
        ip => {
            debug_assert!(classify_host(&ip).is_none());
            return Err(EgressDenial::IpLiteral(ip.to_string()));
        }
    };
    if allowed_hosts.iter().any(|entry| host_matches(entry, &name)) {
        Ok(())
    } else {
        Err(EgressDenial::NotAllowed(name))
    }
}

/// `entry` is `host` or `*.suffix`; `name` is lowercase without a trailing dot.
fn host_matches(entry: &str, name: &str) -> bool {
    let entry = entry.trim_end_matches('.').to_ascii_lowercase();
    match entry.strip_prefix("*.") {
        Some(suffix) => {
            !suffix.is_empty()
                && name
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        }
        None => !entry.is_empty() && entry == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn platform() -> PlatformHosts {
        PlatformHosts::new("402claw.dev", ["claw.acme.workers.dev"])
    }

    fn decide(allowed: &[&str], url: &str) -> EgressDecision {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        egress_decision(&allowed, url, &platform())
    }

    fn denied(allowed: &[&str], url: &str) -> &'static str {
        match decide(allowed, url) {
            EgressDecision::Deny(d) => d.code(),
            EgressDecision::Allow => "allowed",
        }
    }

    #[test]
    fn exact_and_wildcard_matches() {
        let allowed = ["api.example.com", "*.data.org"];
        for url in [
            "https://api.example.com/v1?x",
            "http://API.Example.com./",
            "https://api.example.com:8443/",
            "https://eu.data.org/",
            "https://a.b.data.org/x",
        ] {
            assert_eq!(decide(&allowed, url), EgressDecision::Allow, "{url}");
        }
        for url in [
            "https://example.com/",
            "https://x.api.example.com/",
            "https://api.example.com.evil.net/",
            "https://data.org/",
            "https://xdata.org/",
            "https://evil.net/",
            "https://api-example.com/",
        ] {
            assert_eq!(denied(&allowed, url), "egress_host_not_allowed", "{url}");
        }
        // Deny by default.
        assert_eq!(
            denied(&[], "https://api.example.com/"),
            "egress_host_not_allowed"
        );
    }

    #[test]
    fn schemes_userinfo_and_garbage() {
        let allowed = ["api.example.com"];
        assert_eq!(
            denied(&allowed, "ftp://api.example.com/"),
            "egress_scheme_refused"
        );
        assert_eq!(
            denied(&allowed, "wss://api.example.com/"),
            "egress_scheme_refused"
        );
        assert_eq!(
            denied(&allowed, "data:text/plain,hi"),
            "egress_scheme_refused"
        );
        assert_eq!(
            denied(&allowed, "https://u:p@api.example.com/"),
            "egress_userinfo_refused"
        );
        for url in [
            "",
            "api.example.com",
            "https://api.example.com\\@x/",
            "https://a pi.example.com/",
            "https://",
        ] {
            assert_eq!(denied(&allowed, url), "egress_invalid_url", "{url:?}");
        }
    }

    #[test]
    fn the_platform_and_private_hosts_are_refused_even_when_listed() {
        let allowed = [
            "402claw.dev",
            "*.402claw.dev",
            "claw.acme.workers.dev",
            "localhost",
            "metadata.google.internal",
            "*.internal",
        ];
        for url in [
            "https://402claw.dev/t/x/",
            "https://demo.402claw.dev/",
            "https://claw.acme.workers.dev/",
            "https://x.claw.acme.workers.dev/",
        ] {
            assert_eq!(denied(&allowed, url), "egress_platform_refused", "{url}");
        }
        for url in [
            "http://localhost/",
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://10.0.0.1/",
            "http://169.254.169.254/",
            "http://metadata.google.internal/",
            "http://db.internal/",
            "http://[fd00:ec2::254]/",
        ] {
            assert_eq!(denied(&allowed, url), "egress_host_refused", "{url}");
        }
        assert_eq!(
            denied(&["8.8.8.8"], "https://8.8.8.8/"),
            "egress_ip_literal_refused"
        );
        assert_eq!(
            denied(&["*.com"], "https://[2606:4700::1111]/"),
            "egress_ip_literal_refused"
        );
    }

    #[test]
    fn denials_explain_themselves() {
        let EgressDecision::Deny(d) = decide(&[], "https://evil.net/") else {
            panic!()
        };
        assert_eq!(
            (d.status(), d.reason()),
            (
                403,
                "evil.net is not in the tenant's allowedHosts".to_owned()
            )
        );
    }

    proptest! {
        /// A wildcard never matches its apex, and matches exactly the names ending in ".suffix".
        #[test]
        fn wildcard_semantics(labels in proptest::collection::vec("[a-z0-9]{1,5}", 1..4), apex in "[a-z]{1,6}\\.(com|org)") {
            let entry = format!("*.{apex}");
            let sub = format!("{}.{apex}", labels.join("."));
            prop_assert!(host_matches(&entry, &sub));
            prop_assert!(!host_matches(&entry, &apex));
            let glued = format!("{}{}", labels.join(""), apex);
            prop_assert!(!host_matches(&entry, &glued));
            prop_assert!(host_matches(&apex, &apex));
            prop_assert!(!host_matches(&apex, &sub));
        }

        #[test]
        fn never_allows_without_an_entry(url in "\\PC{0,60}") {
            prop_assert_ne!(decide(&[], &url), EgressDecision::Allow);
        }
    }
}
