//! Who a caller is, for rate limiting, and which object holds its state.
//!
//! Pass only identities that were *authenticated*: a payer whose payment signature was
//! checked, an API key that was looked up. An unchecked claim lets a client mint a fresh
//! key (and so a fresh limit) per request; when in doubt, pass the IP only.

use std::net::{IpAddr, Ipv6Addr};

use sha2::{Digest, Sha256};

use crate::tenant::parse_evm_address;

/// The namespaced caller key, the first that applies:
/// - `payer:0x<40 lowercase hex>` for a well-formed EVM payer address;
/// - `key:<sha256 hex of the API key>` (the raw key is never stored or logged);
/// - `ip:<address>` for a parseable IP: IPv4 as dotted quad (IPv4-mapped IPv6 included),
///   IPv6 by its /64 prefix (`ip:2001:db8:1:2::/64`), since one host controls a whole /64;
/// - `anon`, shared by every caller without any of these.
///
/// Empty or malformed inputs count as absent.
pub fn caller_key(payer: Option<&str>, api_key: Option<&str>, ip: Option<&str>) -> String {
    if let Some(addr) = payer.and_then(|p| parse_evm_address(p.trim()).ok()) {
        return format!("payer:{addr}");
    }
    if let Some(key) = api_key.filter(|k| !k.is_empty()) {
        return format!("key:{}", sha256_hex(key.as_bytes()));
    }
    if let Some(ip) = ip.and_then(|s| s.trim().parse::<IpAddr>().ok()) {
        return format!("ip:{}", ip_bucket(ip));
    }
    "anon".to_owned()
}

fn ip_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The limiter object (and key) of a caller of a tenant: `{slug}/caller/{caller_key}`.
pub fn caller_object_name(tenant_slug: &str, caller_key: &str) -> String {
    format!("{tenant_slug}/caller/{caller_key}")
}

/// The limiter object (and key) of a tenant's global shard: `{slug}/global/{shard}`.
pub fn global_object_name(tenant_slug: &str, shard: u32) -> String {
    format!("{tenant_slug}/global/{shard}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "0xAbCdEf0123456789aBcDeF0123456789ABCDEF01";

    #[test]
    fn payer_first_lowercased() {
        assert_eq!(
            caller_key(Some(ADDR), Some("k"), Some("192.0.2.1")),
            "payer:0xabcdef0123456789abcdef0123456789abcdef01"
        );
        assert_eq!(
            caller_key(Some(&format!(" {ADDR} ")), None, None),
            "payer:0xabcdef0123456789abcdef0123456789abcdef01"
        );
    }

    #[test]
    fn malformed_payer_falls_through() {
        assert_eq!(
            caller_key(Some("0x1234"), None, Some("192.0.2.1")),
            "ip:192.0.2.1"
        );
        assert_eq!(caller_key(Some(""), None, None), "anon");
    }

    #[test]
    fn api_key_is_hashed_never_raw() {
        let k = caller_key(None, Some("sk_live_secret"), Some("192.0.2.1"));
        assert!(k.starts_with("key:"));
        assert!(!k.contains("secret"));
        assert_eq!(k.len(), 4 + 64);
        // sha256("abc")
        assert_eq!(
            caller_key(None, Some("abc"), None),
            "key:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(caller_key(None, Some(""), None), "anon");
    }

    #[test]
    fn ips_are_canonical_and_v6_by_prefix() {
        assert_eq!(caller_key(None, None, Some(" 192.0.2.1 ")), "ip:192.0.2.1");
        assert_eq!(
            caller_key(None, None, Some("2001:DB8:1:2:3:4:5:6")),
            "ip:2001:db8:1:2::/64"
        );
        assert_eq!(
            caller_key(None, None, Some("2001:db8:1:2::ffff")),
            caller_key(None, None, Some("2001:db8:1:2:aaaa::1"))
        );
        assert_eq!(
            caller_key(None, None, Some("::ffff:192.0.2.1")),
            "ip:192.0.2.1"
        );
        assert_eq!(caller_key(None, None, Some("not-an-ip")), "anon");
        assert_eq!(caller_key(None, None, None), "anon");
    }

    #[test]
    fn object_names_do_not_collide() {
        assert_eq!(
            caller_object_name("demo", "ip:192.0.2.1"),
            "demo/caller/ip:192.0.2.1"
        );
        assert_eq!(global_object_name("demo", 3), "demo/global/3");
        assert_ne!(
            caller_object_name("demo", "global"),
            global_object_name("demo", 0)
        );
    }
}
