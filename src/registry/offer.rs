//! A tenant's public offer (`GET /__platform/market/{slug}`, no token): what the
//! marketplace shows next to a trending entry. It holds only what any caller already learns
//! from the tenant's 402 challenge (price, network, asset, payTo, description) plus its kind
//! and whether it is suspended; never the Worker's name, limits, hosts, proxy upstream or
//! secret names.

use claw_durable::registry::{TenantRecord, TenantStatus};
use claw_durable::tenant::{Network, ResourceType};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer<'a> {
    pub slug: &'a str,
    pub resource_type: ResourceType,
    pub suspended: bool,
    /// Where the API is called, relative to the platform's host.
    pub path: String,
    /// None: a free API.
    pub price: Option<OfferPrice<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferPrice<'a> {
    pub amount_atomic: &'a str,
    pub network: Network,
    pub asset: &'a str,
    pub pay_to: &'a str,
    /// The token's EIP-712 name (e.g. `USDC`), when the config names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asset_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
}

pub fn offer(record: &TenantRecord) -> Offer<'_> {
    let c = &record.config;
    Offer {
        slug: &c.slug,
        resource_type: c.resource_type,
        suspended: record.status == TenantStatus::Suspended,
        path: format!("/t/{}/", c.slug),
        price: c.price.as_ref().map(|p| OfferPrice {
            amount_atomic: &p.amount_atomic,
            network: p.network,
            asset: &p.asset,
            pay_to: &p.pay_to,
            asset_name: p.asset_name.as_deref(),
            description: p.description.as_deref(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claw_durable::tenant::TenantConfig;

    fn record(config: &str, status: TenantStatus) -> TenantRecord {
        TenantRecord {
            config: TenantConfig::parse(config.as_bytes(), "acme").unwrap(),
            status,
            version: 1,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn a_paid_tenant_shows_its_price_and_nothing_private() {
        let r = record(
            r#"{"resourceType":"proxy","plan":"pro","apiKeyHeader":"x-key",
                "price":{"amountAtomic":"1000","network":"base-sepolia",
                  "asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e",
                  "payTo":"0x1111111111111111111111111111111111111111","description":"weather"},
                "rateLimit":{"perCaller":"5/10s"},
                "proxy":{"upstreamUrl":"https://api.example.com/v1",
                  "injectHeaders":[{"name":"x-api-key","secret":"ACME__API_KEY"}]}}"#,
            TenantStatus::Active,
        );
        let v = serde_json::to_value(offer(&r)).unwrap();
        assert_eq!(v["slug"], "acme");
        assert_eq!(v["path"], "/t/acme/");
        assert_eq!(v["suspended"], false);
        assert_eq!(v["price"]["amountAtomic"], "1000");
        assert_eq!(v["price"]["network"], "eip155:84532");
        assert_eq!(v["price"]["description"], "weather");
        let text = v.to_string();
        for private in [
            "api.example.com",
            "ACME__API_KEY",
            "x-key",
            "5/10s",
            "perCaller",
        ] {
            assert!(!text.contains(private), "{private} in {text}");
        }
    }

    #[test]
    fn a_free_suspended_tenant() {
        let r = record(
            r#"{"resourceType":"function","workerName":"acme-fn","plan":"free"}"#,
            TenantStatus::Suspended,
        );
        let v = serde_json::to_value(offer(&r)).unwrap();
        assert_eq!(v["suspended"], true);
        assert!(v["price"].is_null());
        assert!(!v.to_string().contains("acme-fn"));
    }
}
