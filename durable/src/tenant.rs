//! A tenant's configuration: its grammar, its validation, and the plan table.
//!
//! The registry object stores only configs that passed [`TenantConfig::parse`]; the
//! dispatcher reads them back with the same types. Every rejection names the field.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::problem::{Code, Problem};

/// Largest accepted config document, in bytes.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024;

/// Slugs that would collide with platform hosts or paths.
const RESERVED_SLUGS: &[&str] = &[
    "admin",
    "api",
    "app",
    "assets",
    "dashboard",
    "docs",
    "platform",
    "static",
    "status",
    "www",
];

/// A slug: 2 to 63 characters of `a-z`, `0-9` and `-`, starting with a letter, ending with a
/// letter or digit, no `--` (which DNS reserves for encodings like `xn--`). It is a DNS label,
/// so it can be a host's first label as well as a path segment.
pub fn validate_slug(slug: &str) -> Result<(), String> {
    let bytes = slug.as_bytes();
    if !(2..=63).contains(&bytes.len()) {
        return Err("must be 2 to 63 characters".into());
    }
    if !bytes[0].is_ascii_lowercase() {
        return Err("must start with a lowercase letter".into());
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err("may contain only a-z, 0-9 and '-'".into());
    }
    if bytes[bytes.len() - 1] == b'-' {
        return Err("must not end with '-'".into());
    }
    if slug.contains("--") {
        return Err("must not contain '--'".into());
    }
    if RESERVED_SLUGS.contains(&slug) {
        return Err("is reserved by the platform".into());
    }
    Ok(())
}

/// The script the deployment API manages for `slug`.
pub fn deployed_script_name(slug: &str) -> String {
    format!("{DEPLOYED_SCRIPT_PREFIX}{slug}")
}

/// A Worker script name in the dispatch namespace.
fn validate_worker_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    if !(1..=63).contains(&bytes.len()) {
        return Err("must be 1 to 63 characters".into());
    }
    if !(bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit()) {
        return Err("must start with a lowercase letter or digit".into());
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
    {
        return Err("may contain only a-z, 0-9, '-' and '_'".into());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    Function,
    Dataset,
    Proxy,
}

/// A plan maps to the custom limits the dispatcher passes to the namespace and to the
/// platform fee. The table is code, not config, so every isolate agrees on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Pro,
    Business,
}

/// `{cpuMs, subRequests}` as Workers for Platforms takes them in `get(name, args, {limits})`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomLimits {
    pub cpu_ms: u32,
    pub sub_requests: u32,
}

impl Plan {
    pub fn limits(self) -> CustomLimits {
        match self {
            Plan::Free => CustomLimits {
                cpu_ms: 50,
                sub_requests: 10,
            },
            Plan::Pro => CustomLimits {
                cpu_ms: 200,
                sub_requests: 50,
            },
            Plan::Business => CustomLimits {
                cpu_ms: 1_000,
                sub_requests: 200,
            },
        }
    }

    /// Platform fee on each settled payment, in basis points of the gross amount.
    pub fn fee_bps(self) -> u32 {
        match self {
            Plan::Free => 1_000,
            Plan::Pro => 500,
            Plan::Business => 250,
        }
    }
}

/// EVM networks the paywall accepts. Both x402 spellings are read; CAIP-2 is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Base,
    BaseSepolia,
}

impl Network {
    pub fn parse(s: &str) -> Option<Network> {
        match s {
            "base" | "eip155:8453" => Some(Network::Base),
            "base-sepolia" | "eip155:84532" => Some(Network::BaseSepolia),
            _ => None,
        }
    }
    /// The x402 v1 name.
    pub fn v1_name(self) -> &'static str {
        match self {
            Network::Base => "base",
            Network::BaseSepolia => "base-sepolia",
        }
    }
    /// The CAIP-2 identifier used by x402 v2.
    pub fn caip2(self) -> &'static str {
        match self {
            Network::Base => "eip155:8453",
            Network::BaseSepolia => "eip155:84532",
        }
    }
    pub fn chain_id(self) -> u64 {
        match self {
            Network::Base => 8453,
            Network::BaseSepolia => 84532,
        }
    }
}

impl Serialize for Network {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.caip2())
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Network::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown network {s:?}; expected base, base-sepolia, eip155:8453 or eip155:84532"
            ))
        })
    }
}

/// Parses an amount in atomic units: a plain decimal integer, no sign, no leading zeros,
/// that fits in u128. Money never goes through floats.
pub fn parse_atomic_amount(s: &str) -> Result<u128, String> {
    if s.is_empty() || s.len() > 39 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be a decimal integer string of atomic units".into());
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err("must not have leading zeros".into());
    }
    s.parse::<u128>().map_err(|_| "is too large".into())
}

/// `0x` and 40 hex digits; returned lowercased so comparisons are exact.
pub fn parse_evm_address(s: &str) -> Result<String, String> {
    let hex = s.strip_prefix("0x").ok_or("must start with 0x")?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("must be 0x followed by 40 hex digits".into());
    }
    Ok(format!("0x{}", hex.to_ascii_lowercase()))
}

/// What one call costs and where the money goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Price {
    /// Atomic units of `asset`, as a decimal string.
    pub amount_atomic: String,
    pub network: Network,
    /// The token contract (e.g. USDC).
    pub asset: String,
    pub pay_to: String,
    /// The token's EIP-712 domain name and version; defaulted for known assets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_version: Option<String>,
    #[serde(default = "default_max_timeout_s")]
    pub max_timeout_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The `invalid_field` problem for `field` when `invalid` holds.
fn invalid_if(invalid: bool, field: &str, detail: &'static str) -> Result<(), Problem> {
    if invalid {
        return Err(Problem::invalid_field(field, detail));
    }
    Ok(())
}

fn default_max_timeout_s() -> u32 {
    60
}

/// USDC's EIP-712 domain on the networks we know.
fn known_asset_domain(network: Network, asset: &str) -> Option<(&'static str, &'static str)> {
    match (network, asset) {
        (Network::BaseSepolia, "0x036cbd53842c5426634e7929541ec2318f3dcf7e") => Some(("USDC", "2")),
        (Network::Base, "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913") => Some(("USD Coin", "2")),
        _ => None,
    }
}

impl Price {
    pub fn amount(&self) -> u128 {
        // Validated at parse time; 0 would never match a real payment.
        parse_atomic_amount(&self.amount_atomic).unwrap_or(0)
    }

    fn validate(&mut self) -> Result<(), Problem> {
        let amount = parse_atomic_amount(&self.amount_atomic)
            .map_err(|e| Problem::invalid_field("price.amountAtomic", e))?;
        invalid_if(
            amount == 0,
            "price.amountAtomic",
            "must be greater than zero; omit price for a free tenant",
        )?;
        self.asset =
            parse_evm_address(&self.asset).map_err(|e| Problem::invalid_field("price.asset", e))?;
        self.pay_to = parse_evm_address(&self.pay_to)
            .map_err(|e| Problem::invalid_field("price.payTo", e))?;
        invalid_if(
            self.pay_to == "0x0000000000000000000000000000000000000000",
            "price.payTo",
            "must not be the zero address",
        )?;
        // Clients sign validBefore = now + maxTimeoutSeconds and the paywall wants 6 s of slack,
        // so short timeouts could never be paid.
        invalid_if(
            !(30..=3_600).contains(&self.max_timeout_seconds),
            "price.maxTimeoutSeconds",
            "must be 30 to 3600",
        )?;
        match (self.asset_name.as_deref(), self.asset_version.as_deref()) {
            (Some(n), Some(v)) => {
                invalid_if(
                    n.is_empty() || n.len() > 64,
                    "price.assetName",
                    "must be 1 to 64 characters",
                )?;
                invalid_if(
                    v.is_empty() || v.len() > 16,
                    "price.assetVersion",
                    "must be 1 to 16 characters",
                )?;
            }
            (None, None) => {
                let (n, v) = known_asset_domain(self.network, &self.asset).ok_or_else(|| {
                    Problem::invalid_field(
                        "price.assetName",
                        "unknown asset: give assetName and assetVersion (its EIP-712 domain)",
                    )
                })?;
                self.asset_name = Some(n.into());
                self.asset_version = Some(v.into());
            }
            (None, Some(_)) => {
                return Err(Problem::invalid_field(
                    "price.assetName",
                    "required with assetVersion",
                ))
            }
            (Some(_), None) => {
                return Err(Problem::invalid_field(
                    "price.assetVersion",
                    "required with assetName",
                ))
            }
        }
        invalid_if(
            self.description.as_ref().is_some_and(|d| d.len() > 256),
            "price.description",
            "must be at most 256 characters",
        )?;
        Ok(())
    }
}

/// `limit` requests per `window_s` seconds. Accepted as `{"limit":100,"windowS":60}` or in
/// the compact forms `100/60s`, `10000/1h`, `5/m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    pub limit: u32,
    pub window_s: u32,
}

pub const MAX_RATE_LIMIT: u32 = 1_000_000_000;
pub const MAX_WINDOW_S: u32 = 30 * 86_400;

impl Rate {
    pub fn new(limit: u32, window_s: u32) -> Result<Rate, String> {
        if !(1..=MAX_RATE_LIMIT).contains(&limit) {
            return Err(format!("limit must be 1 to {MAX_RATE_LIMIT}"));
        }
        if !(1..=MAX_WINDOW_S).contains(&window_s) {
            return Err(format!("window must be 1s to {MAX_WINDOW_S}s (30 days)"));
        }
        Ok(Rate { limit, window_s })
    }

    /// Parses `100/60s`, `10000/1h`, `5/m`, `2/1d`.
    pub fn parse_compact(s: &str) -> Result<Rate, String> {
        let (limit, window) = s
            .split_once('/')
            .ok_or("expected LIMIT/WINDOW, e.g. 100/60s")?;
        let limit: u32 = limit
            .trim()
            .parse()
            .map_err(|_| "limit must be a positive integer")?;
        let window = window.trim();
        let unit = window.chars().last().ok_or("missing window")?;
        let scale = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err("window unit must be s, m, h or d".into()),
        };
        let count = &window[..window.len() - 1];
        let count: u64 = if count.is_empty() {
            1
        } else {
            count
                .parse()
                .map_err(|_| "window must be a positive integer and a unit")?
        };
        let window_s = count
            .checked_mul(scale)
            .filter(|w| *w <= u64::from(MAX_WINDOW_S));
        let window_s =
            window_s.ok_or(format!("window must be at most {MAX_WINDOW_S}s (30 days)"))?;
        Rate::new(limit, window_s as u32)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.limit, self.window_s)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Compact(String),
            #[serde(rename_all = "camelCase")]
            Full {
                limit: u32,
                window_s: u32,
            },
        }
        let rate = match Repr::deserialize(d)? {
            Repr::Compact(s) => Rate::parse_compact(&s),
            Repr::Full { limit, window_s } => Rate::new(limit, window_s),
        };
        rate.map_err(serde::de::Error::custom)
    }
}

/// What the dispatcher does when the limiter cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    Open,
    Closed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_caller: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<Rate>,
    /// Extra requests allowed at once above the steady rate, for each limit set (per caller,
    /// and the global limit split over its shards). Unset: 0, a strict pacer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Unset: closed for paid tenants, open for free ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_limiter_failure: Option<FailureMode>,
}

pub const MAX_BURST: u32 = 1_000_000;

/// An upstream header whose value comes from a secret, named here, never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InjectedHeader {
    pub name: String,
    /// The Worker secret (or Secrets Store binding) that holds the value.
    pub secret: String,
}

/// Declarative JSON reshaping of a proxy's response: no code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JsonTransform {
    /// Keep only these top-level fields (all, when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select: Vec<String>,
    /// Rename fields: `{"old": "new"}`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub rename: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfig {
    pub upstream_url: String,
    #[serde(default = "default_methods")]
    pub allowed_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inject_headers: Vec<InjectedHeader>,
    #[serde(default)]
    pub cache_ttl_s: u32,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<JsonTransform>,
}

fn default_methods() -> Vec<String> {
    vec!["GET".into()]
}
fn default_timeout_ms() -> u32 {
    10_000
}
fn default_max_response_bytes() -> u32 {
    5 * 1024 * 1024
}

/// Hop-by-hop headers (RFC 9110 7.6.1): they never cross a proxy. The dispatcher's forwarding
/// rules and the injectable-header check both use this one list.
pub const HOP_BY_HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers an operator may not inject besides the hop-by-hop ones: framing, routing, and the
/// platform's own.
const NOT_INJECTABLE: &[&str] = &[
    "host",
    "content-length",
    "content-encoding",
    "expect",
    "x-payment",
    "payment-signature",
    "cf-worker",
];

const KNOWN_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fn is_header_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_secret_name(s: &str) -> bool {
    // Room for the dispatcher's per-tenant prefix (`{SLUG}__`, up to 65 bytes) and a name.
    !s.is_empty()
        && s.len() <= 128
        && s.as_bytes()[0].is_ascii_alphabetic()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl ProxyConfig {
    fn validate(&mut self) -> Result<(), Problem> {
        let url = &self.upstream_url;
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| Problem::invalid_field("proxy.upstreamUrl", "must be an http(s) URL"))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        invalid_if(
            url.bytes().any(|b| !b.is_ascii_graphic() || b == b'\\'),
            "proxy.upstreamUrl",
            "must be printable ASCII without spaces or backslashes (write IDN hosts in punycode)",
        )?;
        invalid_if(
            host.is_empty() || host.contains('@') || url.len() > 2048 || url.contains(['?', '#']),
            "proxy.upstreamUrl",
            "must have a host, no credentials, no query or fragment, at most 2048 characters",
        )?;
        invalid_if(
            self.allowed_methods.is_empty() || self.allowed_methods.len() > KNOWN_METHODS.len(),
            "proxy.allowedMethods",
            "must list 1 to 7 methods",
        )?;
        for m in &mut self.allowed_methods {
            *m = m.to_ascii_uppercase();
            if !KNOWN_METHODS.contains(&m.as_str()) {
                return Err(Problem::invalid_field(
                    "proxy.allowedMethods",
                    format!("unknown method {m:?}"),
                ));
            }
        }
        invalid_if(
            self.inject_headers.len() > 16,
            "proxy.injectHeaders",
            "at most 16 headers",
        )?;
        for (i, h) in self.inject_headers.iter().enumerate() {
            invalid_if(
                !is_header_token(&h.name),
                "proxy.injectHeaders.name",
                "must be a header name",
            )?;
            let lower = h.name.to_ascii_lowercase();
            if HOP_BY_HOP_HEADERS.contains(&lower.as_str())
                || NOT_INJECTABLE.contains(&lower.as_str())
                || lower.starts_with("x-claw-")
            {
                return Err(Problem::invalid_field(
                    "proxy.injectHeaders.name",
                    format!("{:?} is managed by the platform or the runtime", h.name),
                ));
            }
            if self.inject_headers[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&h.name))
            {
                return Err(Problem::invalid_field(
                    "proxy.injectHeaders.name",
                    format!("{:?} is listed twice", h.name),
                ));
            }
            invalid_if(
                !is_secret_name(&h.secret),
                "proxy.injectHeaders.secret",
                "must name a secret binding (letters, digits, '_')",
            )?;
        }
        invalid_if(
            self.cache_ttl_s > 86_400,
            "proxy.cacheTtlS",
            "must be at most 86400",
        )?;
        invalid_if(
            !(100..=30_000).contains(&self.timeout_ms),
            "proxy.timeoutMs",
            "must be 100 to 30000",
        )?;
        invalid_if(
            !(1..=25 * 1024 * 1024).contains(&self.max_response_bytes),
            "proxy.maxResponseBytes",
            "must be 1 to 26214400",
        )?;
        if let Some(t) = &self.transform {
            let names = t
                .select
                .iter()
                .chain(t.drop.iter())
                .chain(t.rename.keys())
                .chain(t.rename.values());
            invalid_if(
                t.select.len() + t.drop.len() + t.rename.len() > 64,
                "proxy.transform",
                "at most 64 rules",
            )?;
            for n in names {
                invalid_if(
                    n.is_empty() || n.len() > 128,
                    "proxy.transform",
                    "field names must be 1 to 128 characters",
                )?;
            }
            let mut targets: Vec<&String> = t.rename.values().collect();
            targets.sort();
            invalid_if(
                targets.windows(2).any(|w| w[0] == w[1]),
                "proxy.transform.rename",
                "two fields must not be renamed to the same name",
            )?;
        }
        Ok(())
    }
}

/// A tenant as operators submit it and the dispatcher reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantConfig {
    pub slug: String,
    pub resource_type: ResourceType,
    /// The user Worker's script name in the dispatch namespace (function and dataset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_name: Option<String>,
    pub plan: Plan,
    /// None: a free tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
    #[serde(default)]
    pub rate_limit: RateLimitPolicy,
    /// Header carrying a caller's API key, when the tenant identifies callers that way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_header: Option<String>,
    /// Hosts the tenant's own Worker may fetch (deny by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyConfig>,
    /// Function and dataset tenants deployed through the API: the time budget the policy
    /// wrapper gives each call (ms, [`MAX_DURATION_MS`] at most; unset: the maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_ms: Option<u32>,
    /// The env names (secrets) the tenant's deployed Worker sees; none listed: an empty env.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_env: Vec<String>,
}

/// The longest time budget a deployed Worker may ask for: the paywall's own tenant deadline.
pub const MAX_DURATION_MS: u32 = 300_000;
/// At most this many env names may be exposed to a deployed Worker.
pub const MAX_EXPOSE_ENV: usize = 32;
/// Scripts deployed through the API are named `tenant-{slug}` in the dispatch namespace.
pub const DEPLOYED_SCRIPT_PREFIX: &str = "tenant-";

/// An env (secret) name: `A-Z`, `0-9`, `_`, starting with a letter or `_`, 1 to 64 long.
pub fn validate_env_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    if !(1..=64).contains(&b.len()) {
        return Err("must be 1 to 64 characters".into());
    }
    if b[0].is_ascii_digit() {
        return Err("must not start with a digit".into());
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
    {
        return Err("may contain only A-Z, 0-9 and '_'".into());
    }
    Ok(())
}

impl TenantConfig {
    /// Parses and validates a config document; `path_slug` is the slug in the admin URL,
    /// which the body must match when it names one.
    pub fn parse(body: &[u8], path_slug: &str) -> Result<TenantConfig, Problem> {
        if body.len() > MAX_CONFIG_BYTES {
            return Err(Problem::new(Code::BodyTooLarge).detail(format!(
                "a tenant config is at most {MAX_CONFIG_BYTES} bytes"
            )));
        }
        let mut value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| Problem::new(Code::InvalidJson).detail(e.to_string()))?;
        let obj = value
            .as_object_mut()
            .ok_or_else(|| Problem::new(Code::InvalidJson))?;
        match obj.get("slug") {
            None => {
                obj.insert("slug".into(), serde_json::Value::String(path_slug.into()));
            }
            Some(serde_json::Value::String(s)) if s == path_slug => {}
            Some(_) => {
                return Err(Problem::invalid_field(
                    "slug",
                    "must match the slug in the URL",
                ))
            }
        }
        let mut config: TenantConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                unknown_field_name(e.inner())
            } else {
                camel_path(&path)
            };
            Problem::invalid_field(&field, e.inner().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&mut self) -> Result<(), Problem> {
        validate_slug(&self.slug).map_err(|e| Problem::invalid_field("slug", e))?;
        match self.resource_type {
            ResourceType::Function | ResourceType::Dataset => {
                // Absent: the tenant's Worker is deployed through the deployment API.
                if let Some(name) = self.worker_name.as_deref() {
                    validate_worker_name(name)
                        .map_err(|e| Problem::invalid_field("workerName", e))?;
                    invalid_if(
                        name.starts_with(DEPLOYED_SCRIPT_PREFIX),
                        "workerName",
                        "tenant-* scripts belong to the deployment API",
                    )?;
                }
                if self.proxy.is_some() {
                    return Err(Problem::invalid_field("proxy", "only for proxy tenants"));
                }
            }
            ResourceType::Proxy => {
                invalid_if(
                    self.worker_name.is_some(),
                    "workerName",
                    "proxy tenants are served by the platform",
                )?;
                self.proxy
                    .as_mut()
                    .ok_or_else(|| Problem::invalid_field("proxy", "required for proxy tenants"))?
                    .validate()?;
                invalid_if(
                    self.max_duration_ms.is_some() || !self.expose_env.is_empty(),
                    "maxDurationMs",
                    "maxDurationMs and exposeEnv are for deployed function and dataset tenants",
                )?;
            }
        }
        if let Some(ms) = self.max_duration_ms {
            invalid_if(
                !(1..=MAX_DURATION_MS).contains(&ms),
                "maxDurationMs",
                "must be 1 to 300000",
            )?;
        }
        invalid_if(
            self.expose_env.len() > MAX_EXPOSE_ENV,
            "exposeEnv",
            "at most 32 names",
        )?;
        for name in &self.expose_env {
            validate_env_name(name)
                .map_err(|e| Problem::invalid_field("exposeEnv", format!("{name:?} {e}")))?;
        }
        if let Some(price) = &mut self.price {
            price.validate()?;
        }
        if let Some(b) = self.rate_limit.burst {
            if b > MAX_BURST {
                return Err(Problem::invalid_field(
                    "rateLimit.burst",
                    format!("must be at most {MAX_BURST}"),
                ));
            }
            // The burst applies to each limit the tenant sets (split over the global shards).
            invalid_if(
                self.rate_limit.per_caller.is_none() && self.rate_limit.global.is_none(),
                "rateLimit.burst",
                "needs rateLimit.perCaller or rateLimit.global",
            )?;
        }
        if let Some(h) = &self.api_key_header {
            invalid_if(!is_header_token(h), "apiKeyHeader", "must be a header name")?;
        }
        if self.allowed_hosts.len() > 32 {
            return Err(Problem::invalid_field("allowedHosts", "at most 32 hosts"));
        }
        for h in &mut self.allowed_hosts {
            *h = h.to_ascii_lowercase();
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            };
            let wildcard = h.starts_with("*.");
            let name = h.strip_prefix("*.").unwrap_or(h);
            if name.len() > 253 || !name.split('.').all(label_ok) {
                return Err(Problem::invalid_field(
                    "allowedHosts",
                    format!("{h:?} is not a host name"),
                ));
            }
            // A URL parser reads a name ending in a number as an IPv4 address.
            let last = name.rsplit('.').next().unwrap_or("");
            if last.bytes().all(|b| b.is_ascii_digit())
                || last.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x"))
            {
                return Err(Problem::invalid_field(
                    "allowedHosts",
                    format!("{h:?} is an IP address; name a host"),
                ));
            }
            if wildcard && !name.contains('.') {
                return Err(Problem::invalid_field(
                    "allowedHosts",
                    format!("{h:?} would allow a whole top-level domain"),
                ));
            }
        }
        Ok(())
    }

    /// The tenant's script in the dispatch namespace: its `workerName`, else the script the
    /// deployment API manages (`tenant-{slug}`). `None` for proxy tenants.
    pub fn script_name(&self) -> Option<String> {
        match self.resource_type {
            ResourceType::Proxy => None,
            ResourceType::Function | ResourceType::Dataset => Some(
                self.worker_name
                    .clone()
                    .unwrap_or_else(|| deployed_script_name(&self.slug)),
            ),
        }
    }

    pub fn is_paid(&self) -> bool {
        self.price.is_some()
    }

    /// The limiter-failure behaviour in force: explicit, else closed for paid tenants.
    pub fn limiter_failure_mode(&self) -> FailureMode {
        self.rate_limit
            .on_limiter_failure
            .unwrap_or(if self.is_paid() {
                FailureMode::Closed
            } else {
                FailureMode::Open
            })
    }
}

/// serde_path_to_error reports the path as `price.payTo`, already in the JSON's spelling;
/// `[0]` indices are dropped so the field names one config key.
fn camel_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            _ if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

/// For errors at the document root ("missing field `plan`", "unknown field `x`"), the field
/// name is inside the message.
fn unknown_field_name(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    msg.split('`').nth(1).unwrap_or("(root)").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<TenantConfig, Problem> {
        TenantConfig::parse(json.as_bytes(), "demo-fn")
    }

    const BASE: &str = r#"{"resourceType":"function","workerName":"demo-fn","plan":"pro"}"#;

    #[test]
    fn slug_grammar() {
        for ok in ["ab", "demo-fn", "a1", "weather-api-2", &"a".repeat(63)] {
            assert_eq!(validate_slug(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a",
            "1abc",
            "-ab",
            "ab-",
            "a--b",
            "Abc",
            "a_b",
            "a.b",
            "ab/",
            "www",
            &"a".repeat(64),
            "ä-b",
        ] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn minimal_function_tenant_parses_and_takes_the_path_slug() {
        let c = parse(BASE).unwrap();
        assert_eq!(c.slug, "demo-fn");
        assert_eq!(
            c.plan.limits(),
            CustomLimits {
                cpu_ms: 200,
                sub_requests: 50
            }
        );
        assert!(!c.is_paid());
        assert_eq!(c.limiter_failure_mode(), FailureMode::Open);
    }

    #[test]
    fn deployed_tenants_have_no_worker_name_and_a_policy() {
        let c = parse(
            r#"{"resourceType":"function","plan":"free","maxDurationMs":2500,"exposeEnv":["API_KEY","_X1"]}"#,
        )
        .unwrap();
        assert_eq!(c.script_name().as_deref(), Some("tenant-demo-fn"));
        assert_eq!(c.max_duration_ms, Some(2500));
        assert_eq!(c.expose_env, ["API_KEY", "_X1"]);
        let named = parse(BASE).unwrap();
        assert_eq!(named.script_name().as_deref(), Some("demo-fn"));
        for bad in ["", "1AB", "A-B", "a", &"A".repeat(65)] {
            assert!(validate_env_name(bad).is_err(), "{bad}");
        }
        let proxy_with_budget = parse(
            r#"{"resourceType":"proxy","plan":"free","maxDurationMs":10,
                "proxy":{"upstreamUrl":"https://api.example.com"}}"#,
        )
        .unwrap_err();
        assert_eq!(proxy_with_budget.field.as_deref(), Some("maxDurationMs"));
    }

    #[test]
    fn body_slug_must_match_path() {
        let p =
            parse(r#"{"slug":"other","resourceType":"function","workerName":"x","plan":"free"}"#)
                .unwrap_err();
        assert_eq!(p.field.as_deref(), Some("slug"));
    }

    #[test]
    fn compact_and_full_rates() {
        assert_eq!(
            Rate::parse_compact("100/60s"),
            Ok(Rate {
                limit: 100,
                window_s: 60
            })
        );
        assert_eq!(
            Rate::parse_compact("10000/1h"),
            Ok(Rate {
                limit: 10_000,
                window_s: 3_600
            })
        );
        assert_eq!(
            Rate::parse_compact("5/m"),
            Ok(Rate {
                limit: 5,
                window_s: 60
            })
        );
        assert_eq!(
            Rate::parse_compact("2/1d"),
            Ok(Rate {
                limit: 2,
                window_s: 86_400
            })
        );
        for bad in [
            "",
            "100",
            "0/60s",
            "100/0s",
            "100/60",
            "100/60x",
            "-1/60s",
            "100/31d",
            "1/99999999999999999999s",
        ] {
            assert!(Rate::parse_compact(bad).is_err(), "{bad}");
        }
        let c = parse(
            r#"{"resourceType":"function","workerName":"demo-fn","plan":"free",
                "rateLimit":{"perCaller":"100/60s","global":{"limit":10000,"windowS":3600},"burst":20}}"#,
        )
        .unwrap();
        assert_eq!(
            c.rate_limit.per_caller,
            Some(Rate {
                limit: 100,
                window_s: 60
            })
        );
        assert_eq!(
            c.rate_limit.global,
            Some(Rate {
                limit: 10_000,
                window_s: 3_600
            })
        );
        assert_eq!(c.rate_limit.burst, Some(20));
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (
                r#"{"resourceType":"function","workerName":"tenant-x","plan":"free"}"#,
                "workerName",
            ),
            (
                r#"{"resourceType":"function","plan":"free","maxDurationMs":0}"#,
                "maxDurationMs",
            ),
            (
                r#"{"resourceType":"function","plan":"free","exposeEnv":["lower"]}"#,
                "exposeEnv",
            ),
            (
                r#"{"resourceType":"lambda","workerName":"x","plan":"free"}"#,
                "resourceType",
            ),
            (r#"{"resourceType":"function","workerName":"x"}"#, "plan"),
            (
                r#"{"resourceType":"function","workerName":"x","plan":"gold"}"#,
                "plan",
            ),
            (
                r#"{"resourceType":"function","workerName":"x","plan":"free","color":"red"}"#,
                "color",
            ),
            (
                r#"{"resourceType":"function","workerName":"x","plan":"free","rateLimit":{"perCaller":"fast"}}"#,
                "rateLimit.perCaller",
            ),
            (
                r#"{"resourceType":"function","workerName":"x","plan":"free","rateLimit":{"burst":5}}"#,
                "rateLimit.burst",
            ),
            (
                r#"{"resourceType":"function","workerName":"X Y","plan":"free"}"#,
                "workerName",
            ),
            (r#"{"resourceType":"proxy","plan":"free"}"#, "proxy"),
            (
                r#"{"resourceType":"proxy","plan":"free","proxy":{"upstreamUrl":"ftp://x"}}"#,
                "proxy.upstreamUrl",
            ),
            (
                r#"{"resourceType":"proxy","plan":"free","proxy":{"upstreamUrl":"https://x","allowedMethods":["BREW"]}}"#,
                "proxy.allowedMethods",
            ),
            (
                r#"{"resourceType":"proxy","plan":"free","proxy":{"upstreamUrl":"https://x","injectHeaders":[{"name":"x-key","secret":"a b"}]}}"#,
                "proxy.injectHeaders.secret",
            ),
        ];
        for (json, field) in cases {
            let p = parse(json).unwrap_err();
            assert_eq!(p.status, 400, "{json}");
            assert_eq!(p.field.as_deref(), Some(field), "{json}: {p:?}");
        }
    }

    fn priced(price: &str) -> Result<TenantConfig, Problem> {
        parse(&format!(
            r#"{{"resourceType":"function","workerName":"demo-fn","plan":"free","price":{price}}}"#
        ))
    }

    #[test]
    fn prices_are_exact_and_checked() {
        let c = priced(
            r#"{"amountAtomic":"1000","network":"base-sepolia",
                "asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e",
                "payTo":"0x1111111111111111111111111111111111111111"}"#,
        )
        .unwrap();
        let p = c.price.as_ref().unwrap();
        assert_eq!(p.amount(), 1000);
        assert_eq!(p.network, Network::BaseSepolia);
        assert_eq!(p.asset, "0x036cbd53842c5426634e7929541ec2318f3dcf7e");
        assert_eq!(p.asset_name.as_deref(), Some("USDC"));
        assert_eq!(c.limiter_failure_mode(), FailureMode::Closed);
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(r#""network":"eip155:84532""#), "{json}");

        let bad = [
            (r#""1.5""#, "price.amountAtomic"),
            (r#""0""#, "price.amountAtomic"),
            (r#""007""#, "price.amountAtomic"),
            (r#""-5""#, "price.amountAtomic"),
            (
                r#""340282366920938463463374607431768211456""#,
                "price.amountAtomic",
            ),
        ];
        for (amount, field) in bad {
            let p = priced(&format!(
                r#"{{"amountAtomic":{amount},"network":"base","asset":"0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
                    "payTo":"0x1111111111111111111111111111111111111111"}}"#
            ))
            .unwrap_err();
            assert_eq!(p.field.as_deref(), Some(field), "{amount}");
        }
        let p = priced(r#"{"amountAtomic":1000,"network":"base","asset":"0x1","payTo":"0x2"}"#)
            .unwrap_err();
        assert_eq!(p.field.as_deref(), Some("price.amountAtomic"));
        let p = priced(r#"{"amountAtomic":"1","network":"solana","asset":"0x1","payTo":"0x2"}"#)
            .unwrap_err();
        assert_eq!(p.field.as_deref(), Some("price.network"));
        let p = priced(
            r#"{"amountAtomic":"1","network":"base","asset":"0x2222222222222222222222222222222222222222",
                "payTo":"0x1111111111111111111111111111111111111111"}"#,
        )
        .unwrap_err();
        assert_eq!(p.field.as_deref(), Some("price.assetName"));
    }

    #[test]
    fn garbage_is_a_problem_not_a_panic() {
        for body in [
            "",
            "null",
            "[]",
            "{",
            "\u{0}",
            "{\"plan\":{}}",
            &"[".repeat(10_000),
        ] {
            assert!(parse(body).is_err());
        }
        let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_CONFIG_BYTES));
        assert_eq!(parse(&huge).unwrap_err().status, 413);
    }

    #[test]
    fn proxy_and_egress_rules_for_the_proxy_module() {
        let proxy = |p: &str| {
            parse(&format!(
                r#"{{"resourceType":"proxy","plan":"free","proxy":{{"upstreamUrl":"https://x.com",{p}}}}}"#
            ))
        };
        for (p, field) in [
            (
                r#""injectHeaders":[{"name":"Host","secret":"A"}]"#,
                "proxy.injectHeaders.name",
            ),
            (
                r#""injectHeaders":[{"name":"transfer-encoding","secret":"A"}]"#,
                "proxy.injectHeaders.name",
            ),
            (
                r#""injectHeaders":[{"name":"x-claw-tenant","secret":"A"}]"#,
                "proxy.injectHeaders.name",
            ),
            (
                r#""injectHeaders":[{"name":"x-key","secret":"A"},{"name":"X-Key","secret":"B"}]"#,
                "proxy.injectHeaders.name",
            ),
            (
                r#""transform":{"rename":{"a":"x","b":"x"}}"#,
                "proxy.transform.rename",
            ),
        ] {
            assert_eq!(proxy(p).unwrap_err().field.as_deref(), Some(field), "{p}");
        }
        assert!(proxy(r#""injectHeaders":[{"name":"Authorization","secret":"A"},{"name":"x-key","secret":"B"}],"transform":{"rename":{"a":"b","b":"a"}}"#).is_ok());
        for url in [
            "https://x.com/a b",
            "https://x.com\\@y",
            "https://bücher.de",
            "https://x.com/\t",
        ] {
            let p = parse(&format!(
                r#"{{"resourceType":"proxy","plan":"free","proxy":{{"upstreamUrl":{}}}}}"#,
                serde_json::to_string(url).unwrap()
            ))
            .unwrap_err();
            assert_eq!(p.field.as_deref(), Some("proxy.upstreamUrl"), "{url}");
        }
        let hosts = |h: &str| {
            parse(&format!(
                r#"{{"resourceType":"function","workerName":"w","plan":"free","allowedHosts":[{h}]}}"#
            ))
        };
        for bad in [
            r#""*.com""#,
            r#""1.2.3.4""#,
            r#""2130706433""#,
            r#""0x7f.1""#,
            r#""*""#,
            r#""a.b.""#,
        ] {
            assert_eq!(
                hosts(bad).unwrap_err().field.as_deref(),
                Some("allowedHosts"),
                "{bad}"
            );
        }
        let ok = hosts(r#""API.example.com","*.data.org","x1.io""#).unwrap();
        assert_eq!(ok.allowed_hosts, ["api.example.com", "*.data.org", "x1.io"]);
    }

    #[test]
    fn config_round_trips_through_json() {
        let c = parse(
            r#"{"resourceType":"proxy","plan":"business","rateLimit":{"perCaller":"10/1s","burst":5,"onLimiterFailure":"closed"},
                "proxy":{"upstreamUrl":"https://api.example.com/v1","allowedMethods":["get","post"],
                "injectHeaders":[{"name":"x-api-key","secret":"WEATHER_KEY"}],"cacheTtlS":30,
                "transform":{"select":["a"],"rename":{"a":"b"}}}}"#,
        )
        .unwrap();
        let json = serde_json::to_vec(&c).unwrap();
        assert_eq!(TenantConfig::parse(&json, "demo-fn").unwrap(), c);
        assert_eq!(c.proxy.as_ref().unwrap().allowed_methods, ["GET", "POST"]);
    }

    /// Valid configs that between them reach every part of the parser: a paid function with
    /// both rates, and a proxy with headers and a transform.
    const FUZZ_SEEDS: [&str; 2] = [
        r#"{"resourceType":"function","workerName":"demo-fn","plan":"pro",
            "rateLimit":{"perCaller":"100/60s","global":{"limit":10000,"windowS":3600},"burst":20},
            "price":{"amountAtomic":"1000","network":"base-sepolia",
                "asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e",
                "payTo":"0x1111111111111111111111111111111111111111"},
            "allowedHosts":["api.example.com","*.data.org"]}"#,
        r#"{"resourceType":"proxy","plan":"business","rateLimit":{"perCaller":"10/1s","burst":5,"onLimiterFailure":"closed"},
            "proxy":{"upstreamUrl":"https://api.example.com/v1","allowedMethods":["get","post"],
            "injectHeaders":[{"name":"x-api-key","secret":"WEATHER_KEY"}],"cacheTtlS":30,
            "transform":{"select":["a"],"rename":{"a":"b"}}}}"#,
    ];

    #[test]
    fn fuzz_seeds_are_valid() {
        for seed in FUZZ_SEEDS {
            assert!(parse(seed).is_ok(), "{seed}");
        }
    }

    /// One edit of a JSON document, at a node chosen by the property.
    #[derive(Debug, Clone)]
    enum Edit {
        Replace(serde_json::Value),
        Remove,
        Insert(String, serde_json::Value),
    }

    /// Field names of the config grammar, so inserted keys also reach the parser's depths.
    const KEYS: &str =
        "slug|resourceType|workerName|plan|rateLimit|perCaller|global|limit|windowS|\
        burst|onLimiterFailure|price|amountAtomic|network|asset|payTo|apiKeyHeader|allowedHosts|\
        proxy|upstreamUrl|allowedMethods|injectHeaders|name|secret|cacheTtlS|timeoutMs|\
        maxResponseBytes|transform|select|rename|drop|[a-zA-Z]{1,8}";

    /// Random JSON, biased towards the values the grammar reads: amounts, rates, addresses,
    /// slugs, URLs.
    fn any_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u32>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[0-9]{0,41}".prop_map(Value::from),
            "[0-9]{1,6}/[0-9]{0,5}[smhd]?".prop_map(Value::from),
            "0x[0-9a-fA-F]{38,42}".prop_map(Value::from),
            "(https?|ftp)://[a-z.*]{0,20}(/[a-z]{0,5})?".prop_map(Value::from),
            "[a-z0-9-]{0,10}".prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(KEYS, inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn any_edit() -> impl proptest::strategy::Strategy<Value = Edit> {
        use proptest::prelude::*;
        prop_oneof![
            any_json().prop_map(Edit::Replace),
            Just(Edit::Remove),
            (KEYS, any_json()).prop_map(|(k, v)| Edit::Insert(k, v)),
        ]
    }

    /// Every JSON pointer into `v`, its root ("") included.
    fn pointers(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, child) in m {
                    pointers(child, format!("{at}/{k}"), out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    pointers(child, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }

    fn apply(doc: &mut serde_json::Value, at: proptest::sample::Index, edit: Edit) {
        use serde_json::Value;
        let mut all = Vec::new();
        pointers(doc, String::new(), &mut all);
        let ptr = at.get(&all).clone();
        match edit {
            Edit::Replace(v) => *doc.pointer_mut(&ptr).unwrap() = v,
            Edit::Remove => {
                let Some((parent, last)) = ptr.rsplit_once('/') else {
                    return;
                };
                match doc.pointer_mut(parent).unwrap() {
                    Value::Object(m) => {
                        m.remove(last);
                    }
                    Value::Array(a) => {
                        a.remove(last.parse::<usize>().unwrap());
                    }
                    _ => {}
                }
            }
            Edit::Insert(k, v) => {
                if let Some(Value::Object(m)) = doc.pointer_mut(&ptr) {
                    m.insert(k, v);
                }
            }
        }
    }

    proptest::proptest! {
        /// Valid configs with random edits anywhere in them (values replaced by random JSON,
        /// fields removed or added), and arbitrary JSON-ish documents: a config or a problem,
        /// never a panic; every accepted config re-validates after a round trip.
        #[test]
        fn parse_never_panics(
            seed in proptest::sample::select(FUZZ_SEEDS.to_vec()),
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), any_edit()), 1..5),
        ) {
            let mut doc: serde_json::Value = serde_json::from_str(seed).unwrap();
            for (at, edit) in edits {
                apply(&mut doc, at, edit);
            }
            let body = serde_json::to_vec(&doc).unwrap();
            if let Ok(c) = TenantConfig::parse(&body, "demo-fn") {
                let again = serde_json::to_vec(&c).unwrap();
                proptest::prop_assert_eq!(TenantConfig::parse(&again, "demo-fn").unwrap(), c);
            }
        }

        #[test]
        fn parse_json_shapes(
            rt in "function|dataset|proxy|x",
            plan in "free|pro|business|x",
            rate in "[0-9]{0,4}/[0-9]{0,3}[smhdx]?",
            amount in "[0-9]{0,41}|-1|1e3",
            burst in proptest::num::i64::ANY,
        ) {
            let doc = format!(
                r#"{{"resourceType":"{rt}","workerName":"w","plan":"{plan}",
                    "rateLimit":{{"perCaller":"{rate}","burst":{burst}}},
                    "price":{{"amountAtomic":"{amount}","network":"base",
                      "asset":"0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
                      "payTo":"0x1111111111111111111111111111111111111111"}}}}"#
            );
            if let Ok(c) = TenantConfig::parse(doc.as_bytes(), "demo-fn") {
                let again = serde_json::to_vec(&c).unwrap();
                proptest::prop_assert_eq!(TenantConfig::parse(&again, "demo-fn").unwrap(), c);
            }
        }
    }
}
