//! Which hosts the platform's own fetches may reach (server-side request forgery rules).
//!
//! What is checked: the URL as the runtime's `fetch` will read it. We parse with the WHATWG
//! URL standard (the `url` crate), the same one `fetch` applies, so every spelling of an
//! address is normalized before we look at it: `2130706433`, `0x7f.1`, `017700000001`,
//! `127.1`, `%31%32%37.0.0.1` and `127.0.0.1.` all become `127.0.0.1`, `[::ffff:7f00:1]`
//! becomes an IPv6 address whose embedded IPv4 we check, and internationalized names are
//! mapped to their ASCII form. Raw input must be printable ASCII without backslash, because
//! the standard silently drops tabs and newlines and reads `\` as `/`.
//!
//! What is refused: IP literals outside global unicast (loopback, private, link-local,
//! CGNAT, unspecified, multicast, broadcast, documentation, benchmarking and reserved
//! ranges, cloud metadata addresses, and IPv6 forms that embed such an IPv4: mapped,
//! compatible, NAT64, 6to4), names that only resolve locally (`localhost`, `*.localhost`,
//! `metadata.google.internal`, `*.internal`, `*.local`, `*.localdomain`, `*.home.arpa`,
//! RFC 2606/6761 `*.test`, `*.invalid`, `*.example`, `*.onion`, single-label names), the
//! platform's own hosts and their subdomains, userinfo, and schemes other than https.
//!
//! What is out of scope: a public name that resolves to a private address (DNS rebinding).
//! A Worker cannot resolve a name before `fetch`, so the dispatcher cannot check it; it does
//! not need to, because Cloudflare's egress from Workers reaches only the public Internet,
//! never a private network or the platform's own origin. IP literals and known names are
//! what we check, as defense in depth and for the local runtime, where the network is real.

use claw_durable::problem::Code;
use std::net::{Ipv4Addr, Ipv6Addr};

use thiserror::Error;
use url::{Host, Url};

/// The platform's own hosts: each entry blocks itself and every subdomain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformHosts {
    suffixes: Vec<String>,
}

impl PlatformHosts {
    /// `domain` is the platform domain (`402claw.dev`); `extra` lists other hosts that
    /// reach the platform (a `workers.dev` name, a custom API host). Ports, case and a
    /// trailing dot are ignored; empty entries are skipped.
    pub fn new<'a>(domain: &'a str, extra: impl IntoIterator<Item = &'a str>) -> PlatformHosts {
        let suffixes = std::iter::once(domain)
            .chain(extra)
            .map(|h| {
                let h = h.trim();
                // Drop a port, but not from a bracketed IPv6 literal.
                let h = match h.rsplit_once(':') {
                    Some((name, port))
                        if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        name
                    }
                    _ => h,
                };
                normalize_name(h)
            })
            .filter(|h| !h.is_empty())
            .collect();
        PlatformHosts { suffixes }
    }

    /// Whether `host` (a name as the URL parser serialized it) is, or is under, a platform host.
    pub fn contains(&self, host: &str) -> bool {
        let host = normalize_name(host);
        self.suffixes.iter().any(|s| {
            host == *s
                || host
                    .strip_suffix(s.as_str())
                    .is_some_and(|head| head.ends_with('.'))
        })
    }
}

fn normalize_name(h: &str) -> String {
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// The dispatcher's setting for the proxy's upstream fetches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SsrfPolicy {
    /// Local development only: allow `http` and `https` to loopback hosts (`127.0.0.0/8`,
    /// `::1`, `localhost`). Nothing else that is not https is allowed, even then.
    pub allow_loopback_http: bool,
    pub platform: PlatformHosts,
}

/// Why an address or name is not reachable from the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockedRange {
    Loopback,
    Private,
    LinkLocal,
    /// Carrier-grade NAT, `100.64.0.0/10`.
    SharedAddressSpace,
    Unspecified,
    Multicast,
    Broadcast,
    /// Cloud instance metadata endpoints.
    Metadata,
    /// Documentation, benchmarking, protocol-assignment and reserved ranges.
    Reserved,
    /// Names that resolve only on a local network or nowhere.
    LocalName,
}

impl BlockedRange {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockedRange::Loopback => "loopback",
            BlockedRange::Private => "private",
            BlockedRange::LinkLocal => "link-local",
            BlockedRange::SharedAddressSpace => "shared address space (CGNAT)",
            BlockedRange::Unspecified => "unspecified",
            BlockedRange::Multicast => "multicast",
            BlockedRange::Broadcast => "broadcast",
            BlockedRange::Metadata => "a cloud metadata endpoint",
            BlockedRange::Reserved => "reserved",
            BlockedRange::LocalName => "a local-only name",
        }
    }
}

impl std::fmt::Display for BlockedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SsrfError {
    #[error("not a valid absolute URL")]
    InvalidUrl,
    #[error("scheme {0:?} is not allowed; use https")]
    Scheme(String),
    #[error("URLs with credentials are refused")]
    Userinfo,
    #[error("the URL has no host")]
    NoHost,
    #[error("host {host} is {range}")]
    Blocked { host: String, range: BlockedRange },
    #[error("host {0} belongs to the platform")]
    PlatformHost(String),
}

impl SsrfError {
    /// Stable problem code.
    pub fn code(&self) -> Code {
        match self {
            SsrfError::InvalidUrl | SsrfError::NoHost => Code::UpstreamUrlInvalid,
            SsrfError::Scheme(_) => Code::UpstreamSchemeRefused,
            SsrfError::Userinfo => Code::UpstreamUserinfoRefused,
            SsrfError::Blocked { .. } => Code::UpstreamHostRefused,
            SsrfError::PlatformHost(_) => Code::UpstreamIsPlatform,
        }
    }

    /// At dispatch the tenant's upstream is unreachable by policy: 502 (the caller is not at
    /// fault). At config time the admin API answers 400 `invalid_field` `proxy.upstreamUrl`.
    pub fn status(&self) -> u16 {
        self.code().status()
    }
}

/// Checks an upstream URL (the tenant's base, and the joined URL before each fetch).
pub fn check_upstream(url: &str, policy: &SsrfPolicy) -> Result<(), SsrfError> {
    let parsed = parse_strict(url)?;
    let scheme = parsed.scheme();
    if !matches!(scheme, "https" | "http") {
        return Err(SsrfError::Scheme(scheme.to_owned()));
    }
    let host = parsed.host().ok_or(SsrfError::NoHost)?;
    check_host(&host, &policy.platform).or_else(|e| match e {
        SsrfError::Blocked {
            range: BlockedRange::Loopback,
            ..
        } if policy.allow_loopback_http => Ok(()),
        e => Err(e),
    })?;
    let loopback = classify_host(&host) == Some(BlockedRange::Loopback);
    if scheme == "http" && !(policy.allow_loopback_http && loopback) {
        return Err(SsrfError::Scheme(scheme.to_owned()));
    }
    Ok(())
}

/// Parses with the WHATWG rules after refusing what those rules would silently rewrite, and
/// refuses userinfo (even an empty `@`).
pub(crate) fn parse_strict(url: &str) -> Result<Url, SsrfError> {
    if url.is_empty() || url.len() > super::join::MAX_UPSTREAM_URL_BYTES {
        return Err(SsrfError::InvalidUrl);
    }
    if url.bytes().any(|b| !b.is_ascii_graphic() || b == b'\\') {
        return Err(SsrfError::InvalidUrl);
    }
    let parsed = Url::parse(url).map_err(|_| SsrfError::InvalidUrl)?;
    let authority = url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
        .unwrap_or("");
    if authority.contains('@') || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(SsrfError::Userinfo);
    }
    Ok(parsed)
}

/// Platform membership, then the address or name rules.
pub(crate) fn check_host(host: &Host<&str>, platform: &PlatformHosts) -> Result<(), SsrfError> {
    if let Host::Domain(name) = host {
        if platform.contains(name) {
            return Err(SsrfError::PlatformHost(normalize_name(name)));
        }
    }
    match classify_host(host) {
        Some(range) => Err(SsrfError::Blocked {
            host: host.to_string(),
            range,
        }),
        None => Ok(()),
    }
}

/// `None` when the host may be fetched as far as its address or name tells.
pub fn classify_host(host: &Host<&str>) -> Option<BlockedRange> {
    match host {
        Host::Domain(name) => classify_name(name),
        Host::Ipv4(ip) => classify_ipv4(*ip),
        Host::Ipv6(ip) => classify_ipv6(*ip),
    }
}

const METADATA_NAMES: &[&str] = &["metadata.google.internal", "metadata", "instance-data"];
const LOCAL_SUFFIXES: &[&str] = &[
    "internal",
    "local",
    "localdomain",
    "home.arpa",
    "test",
    "invalid",
    "example",
    "onion",
];

fn classify_name(name: &str) -> Option<BlockedRange> {
    let name = normalize_name(name);
    if name.is_empty() {
        return Some(BlockedRange::LocalName);
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return Some(BlockedRange::Loopback);
    }
    if METADATA_NAMES.contains(&name.as_str()) {
        return Some(BlockedRange::Metadata);
    }
    let under = |suffix: &str| {
        name == suffix || name.strip_suffix(suffix).is_some_and(|h| h.ends_with('.'))
    };
    if !name.contains('.') || LOCAL_SUFFIXES.iter().any(|s| under(s)) {
        return Some(BlockedRange::LocalName);
    }
    None
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

/// IPv4 ranges that are not global unicast (IANA special-purpose registry), most specific
/// first so the reason is precise.
const V4_BLOCKED: &[([u8; 4], u32, BlockedRange)] = &[
    ([169, 254, 169, 254], 32, BlockedRange::Metadata),
    ([168, 63, 129, 16], 32, BlockedRange::Metadata), // Azure wire server
    ([255, 255, 255, 255], 32, BlockedRange::Broadcast),
    ([0, 0, 0, 0], 8, BlockedRange::Unspecified),
    ([10, 0, 0, 0], 8, BlockedRange::Private),
    ([100, 64, 0, 0], 10, BlockedRange::SharedAddressSpace),
    ([127, 0, 0, 0], 8, BlockedRange::Loopback),
    ([169, 254, 0, 0], 16, BlockedRange::LinkLocal),
    ([172, 16, 0, 0], 12, BlockedRange::Private),
    ([192, 0, 0, 0], 24, BlockedRange::Reserved),
    ([192, 0, 2, 0], 24, BlockedRange::Reserved),
    ([192, 88, 99, 0], 24, BlockedRange::Reserved),
    ([192, 168, 0, 0], 16, BlockedRange::Private),
    ([198, 18, 0, 0], 15, BlockedRange::Reserved),
    ([198, 51, 100, 0], 24, BlockedRange::Reserved),
    ([203, 0, 113, 0], 24, BlockedRange::Reserved),
    ([224, 0, 0, 0], 4, BlockedRange::Multicast),
    ([240, 0, 0, 0], 4, BlockedRange::Reserved),
];

pub fn classify_ipv4(ip: Ipv4Addr) -> Option<BlockedRange> {
    V4_BLOCKED
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, range)| *range)
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

/// The IPv4 address in the low 32 bits.
fn low_v4(ip: Ipv6Addr) -> Ipv4Addr {
    Ipv4Addr::from((u128::from(ip) & 0xffff_ffff) as u32)
}

pub fn classify_ipv6(ip: Ipv6Addr) -> Option<BlockedRange> {
    const Z: u16 = 0;
    if ip.is_unspecified() {
        return Some(BlockedRange::Unspecified);
    }
    if ip.is_loopback() {
        return Some(BlockedRange::Loopback);
    }
    // Forms that carry an IPv4 address: judge by it. Mapped and compatible addresses are
    // never global destinations themselves.
    if in_v6(ip, [Z, Z, Z, Z, Z, 0xffff, Z, Z], 96) || in_v6(ip, [Z; 8], 96) {
        return Some(classify_ipv4(low_v4(ip)).unwrap_or(BlockedRange::Reserved));
    }
    if in_v6(ip, [0x64, 0xff9b, Z, Z, Z, Z, Z, Z], 96) {
        return classify_ipv4(low_v4(ip));
    }
    if in_v6(ip, [0x2002, Z, Z, Z, Z, Z, Z, Z], 16) {
        let embedded = Ipv4Addr::from(((u128::from(ip) >> 80) & 0xffff_ffff) as u32);
        return classify_ipv4(embedded);
    }
    const V6_BLOCKED: &[([u16; 8], u32, BlockedRange)] = &[
        (
            [0xfd00, 0xec2, Z, Z, Z, Z, Z, 0x254],
            128,
            BlockedRange::Metadata,
        ),
        ([0x64, 0xff9b, 1, Z, Z, Z, Z, Z], 48, BlockedRange::Private),
        ([0x100, Z, Z, Z, Z, Z, Z, Z], 64, BlockedRange::Reserved),
        (
            [0x2001, 0xdb8, Z, Z, Z, Z, Z, Z],
            32,
            BlockedRange::Reserved,
        ),
        ([0x2001, Z, Z, Z, Z, Z, Z, Z], 23, BlockedRange::Reserved),
        ([0x3fff, Z, Z, Z, Z, Z, Z, Z], 20, BlockedRange::Reserved),
        ([0xfc00, Z, Z, Z, Z, Z, Z, Z], 7, BlockedRange::Private),
        ([0xfe80, Z, Z, Z, Z, Z, Z, Z], 10, BlockedRange::LinkLocal),
        ([0xfec0, Z, Z, Z, Z, Z, Z, Z], 10, BlockedRange::Private),
        ([0xff00, Z, Z, Z, Z, Z, Z, Z], 8, BlockedRange::Multicast),
    ];
    if let Some((_, _, range)) = V6_BLOCKED.iter().find(|(net, p, _)| in_v6(ip, *net, *p)) {
        return Some(*range);
    }
    // Only 2000::/3 is allocated for global unicast.
    if !in_v6(ip, [0x2000, Z, Z, Z, Z, Z, Z, Z], 3) {
        return Some(BlockedRange::Reserved);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> SsrfPolicy {
        SsrfPolicy {
            allow_loopback_http: false,
            platform: PlatformHosts::new("402claw.dev", ["claw.acme.workers.dev:443"]),
        }
    }

    fn range(url: &str, p: &SsrfPolicy) -> Option<BlockedRange> {
        match check_upstream(url, p) {
            Err(SsrfError::Blocked { range, .. }) => Some(range),
            _ => None,
        }
    }

    #[test]
    fn public_https_is_allowed() {
        let p = policy();
        for url in [
            "https://api.example.com/v1",
            "https://API.Example.COM./x?y",
            "https://8.8.8.8/",
            "https://[2606:4700:4700::1111]/",
            "https://[64:ff9b::808:808]/",
            "https://[2002:808:808::1]/",
            "https://api.example.com:8443/",
            "https://bücher.de/",
            "https://402claw.dev.evil.com/",
            "https://not402claw.dev/",
        ] {
            // Non-ASCII input is refused on purpose (write punycode).
            if url.is_ascii() {
                assert_eq!(check_upstream(url, &p), Ok(()), "{url}");
            } else {
                assert_eq!(check_upstream(url, &p), Err(SsrfError::InvalidUrl), "{url}");
            }
        }
    }

    #[test]
    fn every_ipv4_spelling_of_loopback_is_refused() {
        let p = policy();
        for url in [
            "https://127.0.0.1/",
            "https://127.1/",
            "https://127.0.0.1./",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://0x7F000001/",
            "https://017700000001/",
            "https://0177.0.0.1/",
            "https://%31%32%37.0.0.1/",
            "https://127.255.255.254/",
            "https://[::1]/",
            "https://[0:0:0:0:0:0:0:1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[::127.0.0.1]/",
            "https://[64:ff9b::7f00:1]/",
            "https://[2002:7f00:1::]/",
            "https://localhost/",
            "https://LOCALHOST./",
            "https://api.localhost/",
        ] {
            assert_eq!(range(url, &p), Some(BlockedRange::Loopback), "{url}");
        }
    }

    #[test]
    fn special_ranges_are_refused_with_their_reason() {
        use BlockedRange::*;
        let p = policy();
        let cases = [
            ("https://10.1.2.3/", Private),
            ("https://172.16.0.1/", Private),
            ("https://172.31.255.255/", Private),
            ("https://192.168.1.1/", Private),
            ("https://[fc00::1]/", Private),
            ("https://[fd12:3456::1]/", Private),
            ("https://[::ffff:10.0.0.1]/", Private),
            ("https://[::ffff:192.168.0.1]/", Private),
            ("https://169.254.1.1/", LinkLocal),
            ("https://[fe80::1]/", LinkLocal),
            ("https://100.64.0.1/", SharedAddressSpace),
            ("https://100.127.255.255/", SharedAddressSpace),
            ("https://0.0.0.0/", Unspecified),
            ("https://0/", Unspecified),
            ("https://[::]/", Unspecified),
            ("https://224.0.0.1/", Multicast),
            ("https://[ff02::1]/", Multicast),
            ("https://255.255.255.255/", Broadcast),
            ("https://169.254.169.254/latest/meta-data", Metadata),
            ("https://0xa9fea9fe/", Metadata),
            ("https://2852039166/", Metadata),
            ("https://[::ffff:169.254.169.254]/", Metadata),
            ("https://[fd00:ec2::254]/", Metadata),
            ("https://metadata.google.internal/", Metadata),
            ("https://METADATA.google.internal./", Metadata),
            ("https://metadata/", Metadata),
            ("https://192.0.2.1/", Reserved),
            ("https://198.18.0.1/", Reserved),
            ("https://240.0.0.1/", Reserved),
            ("https://[2001:db8::1]/", Reserved),
            ("https://[::ffff:8.8.8.8]/", Reserved),
            ("https://[::8.8.8.8]/", Reserved),
            ("https://[100::1]/", Reserved),
            ("https://[4000::1]/", Reserved),
            ("https://intranet/", LocalName),
            ("https://db.internal/", LocalName),
            ("https://printer.local/", LocalName),
            ("https://nas.home.arpa/", LocalName),
            ("https://x.onion/", LocalName),
        ];
        for (url, want) in cases {
            assert_eq!(range(url, &p), Some(want), "{url}");
        }
        // Just outside the ranges.
        for url in [
            "https://172.32.0.1/",
            "https://100.128.0.1/",
            "https://11.0.0.1/",
            "https://169.255.0.1/",
        ] {
            assert_eq!(check_upstream(url, &p), Ok(()), "{url}");
        }
    }

    #[test]
    fn scheme_userinfo_and_platform_rules() {
        let p = policy();
        assert_eq!(
            check_upstream("http://api.example.com/", &p),
            Err(SsrfError::Scheme("http".into()))
        );
        assert_eq!(
            check_upstream("ftp://api.example.com/", &p),
            Err(SsrfError::Scheme("ftp".into()))
        );
        assert_eq!(
            check_upstream("file:///etc/passwd", &p),
            Err(SsrfError::Scheme("file".into()))
        );
        for url in [
            "https://u:p@api.example.com/",
            "https://u@api.example.com/",
            "https://@api.example.com/",
        ] {
            assert_eq!(check_upstream(url, &p), Err(SsrfError::Userinfo), "{url}");
        }
        for url in [
            "https://402claw.dev/t/x",
            "https://demo.402claw.dev/",
            "https://a.b.402CLAW.dev./",
            "https://claw.acme.workers.dev/",
        ] {
            assert!(
                matches!(check_upstream(url, &p), Err(SsrfError::PlatformHost(_))),
                "{url}"
            );
        }
        for url in [
            "",
            "api.example.com",
            "https://",
            "https://exa\tmple.com/",
            "https://api.example.com\\@evil/",
            " https://api.example.com",
            "https://[::1",
            "https://1.2.3.4.5/",
        ] {
            assert_eq!(
                check_upstream(url, &p),
                Err(SsrfError::InvalidUrl),
                "{url:?}"
            );
        }
    }

    #[test]
    fn loopback_dev_setting_allows_only_loopback() {
        let p = SsrfPolicy {
            allow_loopback_http: true,
            ..policy()
        };
        for url in [
            "http://127.0.0.1:8080/",
            "https://127.0.0.1/",
            "http://localhost:9/",
            "http://[::1]/",
            "http://2130706433/",
        ] {
            assert_eq!(check_upstream(url, &p), Ok(()), "{url}");
        }
        assert_eq!(
            check_upstream("http://api.example.com/", &p),
            Err(SsrfError::Scheme("http".into()))
        );
        assert_eq!(range("http://10.0.0.1/", &p), Some(BlockedRange::Private));
        assert_eq!(
            range("https://169.254.169.254/", &p),
            Some(BlockedRange::Metadata)
        );
        assert_eq!(
            check_upstream("ftp://127.0.0.1/", &p),
            Err(SsrfError::Scheme("ftp".into()))
        );
        assert_eq!(
            check_upstream("http://u@127.0.0.1/", &p),
            Err(SsrfError::Userinfo)
        );
    }

    #[test]
    fn platform_hosts_match_whole_labels() {
        let h = PlatformHosts::new("402claw.dev", ["", "[::1]:8787", "api.other.net."]);
        assert!(h.contains("402claw.dev"));
        assert!(h.contains("x.402claw.dev."));
        assert!(!h.contains("x402claw.dev"));
        assert!(!h.contains("402claw.dev.com"));
        assert!(h.contains("API.other.net"));
        assert!(!h.contains("other.net"));
        assert!(!h.contains(""));
    }

    proptest! {
        #[test]
        fn any_spelling_of_a_private_ipv4_is_refused(a in any::<u32>(), form in 0u8..4) {
            let ip = Ipv4Addr::from(a);
            let host = match form {
                0 => ip.to_string(),
                1 => a.to_string(),
                2 => format!("0x{a:x}"),
                _ => format!("0{a:o}"),
            };
            let url = format!("https://{host}/");
            let got = check_upstream(&url, &policy());
            match classify_ipv4(ip) {
                Some(range) => prop_assert!(matches!(got, Err(SsrfError::Blocked { range: r, .. }) if r == range), "{url}: {got:?}"),
                None => prop_assert_eq!(got, Ok(())),
            }
            let mapped = format!("https://[{}]/", ip.to_ipv6_mapped());
            prop_assert!(check_upstream(&mapped, &policy()).is_err());
        }

        #[test]
        fn check_never_panics(s in "\\PC{0,60}") {
            let _ = check_upstream(&s, &policy());
            let _ = check_upstream(&format!("https://{s}"), &policy());
        }
    }
}
