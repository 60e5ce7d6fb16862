//! The egress policy the outbound Worker of the dispatch namespace applies to every `fetch`
//! a tenant's own Worker makes.
//!
//! Deny by default. In order:
//! 1. the URL must parse (printable ASCII, no backslash, WHATWG rules), scheme `http` or
//!    `https`, no userinfo;
//! 2. no host of the platform (its domain, its subdomains, and each listed platform host and
//!    its subdomains): a tenant must not call back into the platform, which would loop
//!    (recursive fetch) or launder calls past the paywall;
//! 3. no address or name outside the public Internet, as [`crate::proxy::ssrf`] defines it;
//! 4. no IP literal at all: the allowlist names hosts (config validation refuses
//!    IP-looking entries), so an IP literal never matches;
//! 5. the host must match an `allowedHosts` entry: `api.example.com` matches exactly that
//!    host; `*.example.com` matches any subdomain at any depth (`a.example.com`,
//!    `a.b.example.com`) but not `example.com` itself. Case and a trailing dot are ignored.
//!    Ports are not part of the match.
//!
//! Local development only ([`EgressPolicy::allow_loopback`], off by default): loopback
//! destinations pass step 3 when the tenant lists `localhost`, which then also covers
//! loopback IP literals (the local platform domain is `localhost`, so step 2 still refuses
//! the name `localhost` there; the upstream fakes listen on `127.0.0.1`).

use claw_durable::problem::Code;
#[cfg(target_arch = "wasm32")]
pub mod edge;

use serde::{Deserialize, Serialize};
use url::Host;

use crate::proxy::ssrf::{
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
    pub fn code(&self) -> Code {
        match self {
            EgressDenial::InvalidUrl => Code::EgressInvalidUrl,
            EgressDenial::Scheme(_) => Code::EgressSchemeRefused,
            EgressDenial::Userinfo => Code::EgressUserinfoRefused,
            EgressDenial::PlatformHost(_) => Code::EgressPlatformRefused,
            EgressDenial::Blocked { .. } => Code::EgressHostRefused,
            EgressDenial::IpLiteral(_) => Code::EgressIpLiteralRefused,
            EgressDenial::NotAllowed(_) => Code::EgressHostNotAllowed,
        }
    }

    /// The tenant's Worker asked for something its config does not allow: 403.
    pub fn status(&self) -> u16 {
        self.code().status()
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

/// The outbound Worker's settings (from its environment, not from the tenant).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    pub platform: PlatformHosts,
    /// Local development only: loopback destinations are allowed when `allowedHosts` lists
    /// `localhost` (see the module documentation).
    pub allow_loopback: bool,
}

/// The `allowedHosts` entry that stands for loopback destinations in local development.
pub const LOOPBACK_ENTRY: &str = "localhost";

/// Whether a tenant's Worker may fetch `url`.
pub fn egress_decision(
    allowed_hosts: &[String],
    url: &str,
    policy: &EgressPolicy,
) -> EgressDecision {
    match decide(allowed_hosts, url, policy) {
        Ok(()) => EgressDecision::Allow,
        Err(d) => EgressDecision::Deny(d),
    }
}

fn decide(allowed_hosts: &[String], url: &str, policy: &EgressPolicy) -> Result<(), EgressDenial> {
    let parsed = parse_strict(url).map_err(|e| match e {
        SsrfError::Userinfo => EgressDenial::Userinfo,
        _ => EgressDenial::InvalidUrl,
    })?;
    let scheme = parsed.scheme();
    if !matches!(scheme, "http" | "https") {
        return Err(EgressDenial::Scheme(scheme.to_owned()));
    }
    let host = parsed.host().ok_or(EgressDenial::InvalidUrl)?;
    let loopback = classify_host(&host) == Some(BlockedRange::Loopback);
    let loopback_listed = policy.allow_loopback
        && loopback
        && allowed_hosts
            .iter()
            .any(|e| e.trim_end_matches('.').eq_ignore_ascii_case(LOOPBACK_ENTRY));
    match check_host(&host, &policy.platform) {
        Ok(()) => {}
        Err(SsrfError::Blocked {
            range: BlockedRange::Loopback,
            ..
        }) if loopback_listed => {}
        Err(SsrfError::PlatformHost(h)) => return Err(EgressDenial::PlatformHost(h)),
        Err(SsrfError::Blocked { host, range }) => {
            return Err(EgressDenial::Blocked { host, range })
        }
        Err(_) => return Err(EgressDenial::InvalidUrl),
    }
    let name = match host {
        Host::Domain(name) => name.trim_end_matches('.').to_ascii_lowercase(),
        _ if loopback_listed => return Ok(()),
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

/// The outbound parameters the dispatcher passes with each call
/// (`get(name, args, {outbound: {tenant, allowedHosts, callId}})`). Workers for Platforms
/// hands them to the outbound Worker as `env.tenant`, `env.allowedHosts`, `env.callId`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundParams {
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Names the call, so each subrequest record can be added to the call's usage event.
    #[serde(default)]
    pub call_id: String,
}

/// Longest outbound parameters document accepted, in bytes (32 hosts of 255 bytes fit).
pub const MAX_OUTBOUND_PARAMS_BYTES: usize = 16 * 1024;

impl OutboundParams {
    /// Reads the parameters (JSON). Missing or unreadable parameters allow nothing: the
    /// policy is deny by default.
    pub fn from_json(text: &str) -> OutboundParams {
        if text.len() > MAX_OUTBOUND_PARAMS_BYTES {
            return OutboundParams::default();
        }
        serde_json::from_str(text).unwrap_or_default()
    }
}

/// One subrequest as the outbound Worker records it (one JSON log line each): what the usage
/// event of call `callId` counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressRecord<'a> {
    pub tenant: &'a str,
    pub call_id: &'a str,
    /// The destination host (empty when the URL does not parse).
    pub host: String,
    pub allowed: bool,
    /// The denial code, when denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

impl<'a> EgressRecord<'a> {
    pub fn new(params: &'a OutboundParams, url: &str, decision: &EgressDecision) -> Self {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.chars().take(255).collect()))
            .unwrap_or_default();
        EgressRecord {
            tenant: &params.tenant,
            call_id: &params.call_id,
            host,
            allowed: *decision == EgressDecision::Allow,
            code: match decision {
                EgressDecision::Allow => None,
                EgressDecision::Deny(d) => Some(d.code().as_str()),
            },
        }
    }

    /// `{"egress":{...}}`, one line.
    pub fn to_log_line(&self) -> String {
        serde_json::json!({ "egress": self }).to_string()
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

    fn policy() -> EgressPolicy {
        EgressPolicy {
            platform: platform(),
            allow_loopback: false,
        }
    }

    fn decide(allowed: &[&str], url: &str) -> EgressDecision {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        egress_decision(&allowed, url, &policy())
    }

    fn denied(allowed: &[&str], url: &str) -> &'static str {
        match decide(allowed, url) {
            EgressDecision::Deny(d) => d.code().as_str(),
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
        for (url, code) in [
            ("ftp://api.example.com/", "egress_scheme_refused"),
            ("wss://api.example.com/", "egress_scheme_refused"),
            ("data:text/plain,hi", "egress_scheme_refused"),
            ("https://u:p@api.example.com/", "egress_userinfo_refused"),
        ] {
            assert_eq!(denied(&allowed, url), code, "{url}");
        }
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
        for (allowed, url) in [
            ("8.8.8.8", "https://8.8.8.8/"),
            ("*.com", "https://[2606:4700::1111]/"),
        ] {
            assert_eq!(
                denied(&[allowed], url),
                "egress_ip_literal_refused",
                "{url}"
            );
        }
    }

    #[test]
    fn local_loopback_needs_the_setting_and_the_localhost_entry() {
        let local = |allowed: &[&str], url: &str| {
            let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
            let p = EgressPolicy {
                platform: PlatformHosts::new("localhost", []),
                allow_loopback: true,
            };
            match egress_decision(&allowed, url, &p) {
                EgressDecision::Allow => "allowed",
                EgressDecision::Deny(d) => d.code().as_str(),
            }
        };
        for url in [
            "http://127.0.0.1:9000/x",
            "http://127.0.0.2/",
            "http://[::1]:80/",
            "http://0x7f.1/",
        ] {
            assert_eq!(local(&["localhost"], url), "allowed", "{url}");
            assert_eq!(
                local(&["api.example.com"], url),
                "egress_host_refused",
                "{url}"
            );
            // Without the setting, listing localhost changes nothing.
            assert_eq!(denied(&["localhost"], url), "egress_host_refused", "{url}");
        }
        // The local platform domain is still the platform.
        for url in ["http://localhost:8787/t/x", "http://demo.localhost:8787/"] {
            assert_eq!(
                local(&["localhost"], url),
                "egress_platform_refused",
                "{url}"
            );
        }
        // Other ranges stay refused.
        for url in [
            "http://10.0.0.1/",
            "http://169.254.169.254/",
            "http://[fe80::1]/",
        ] {
            assert_eq!(local(&["localhost"], url), "egress_host_refused", "{url}");
        }
        assert_eq!(
            local(&["localhost"], "https://8.8.8.8/"),
            "egress_ip_literal_refused"
        );
        assert_eq!(
            local(&[], "https://api.example.com/"),
            "egress_host_not_allowed"
        );
    }

    #[test]
    fn outbound_params_default_to_nothing_allowed() {
        let p = OutboundParams::from_json(
            r#"{"tenant":"acme","allowedHosts":["api.example.com"],"callId":"c1"}"#,
        );
        assert_eq!(p.allowed_hosts, ["api.example.com"]);
        assert_eq!((p.tenant.as_str(), p.call_id.as_str()), ("acme", "c1"));
        for bad in ["", "null", "[]", "{\"allowedHosts\":\"x\"}", "{"] {
            assert_eq!(
                OutboundParams::from_json(bad),
                OutboundParams::default(),
                "{bad}"
            );
        }
        let huge = format!(
            r#"{{"allowedHosts":["a.com"],"pad":"{}"}}"#,
            "x".repeat(MAX_OUTBOUND_PARAMS_BYTES)
        );
        assert!(OutboundParams::from_json(&huge).allowed_hosts.is_empty());
        let d = decide(&[], "https://evil.net/x");
        let line = EgressRecord::new(&p, "https://evil.net/x", &d).to_log_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["egress"]["tenant"], "acme");
        assert_eq!(v["egress"]["callId"], "c1");
        assert_eq!(v["egress"]["host"], "evil.net");
        assert_eq!(v["egress"]["allowed"], false);
        assert_eq!(v["egress"]["code"], "egress_host_not_allowed");
        let ok = EgressRecord::new(&p, "https://api.example.com/", &EgressDecision::Allow);
        assert!(ok.allowed && ok.code.is_none());
        assert_eq!(EgressRecord::new(&p, "::", &d).host, "");
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
