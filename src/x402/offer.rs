//! What a paid call costs, as x402 says it: the v1 402 body and the v2 `PAYMENT-REQUIRED`
//! header, both sent on every 402 so v1 and v2 clients can pay the same endpoint.

use base64::Engine as _;
use claw_durable::tenant::{parse_atomic_amount, Network, Price};
use serde::{Deserialize, Serialize};

use super::error::X402Error;
use super::evm::Address;
use super::{X402Version, SCHEME_EXACT};

/// Longest resource URL an offer names.
pub const MAX_RESOURCE_URL_BYTES: usize = 2048;
/// Longest MIME type an offer names.
pub const MAX_MIME_TYPE_BYTES: usize = 128;

/// The one payment a tenant accepts for one resource, built from its [`Price`].
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub network: Network,
    /// The token contract; also the EIP-712 `verifyingContract`.
    pub asset: Address,
    pub pay_to: Address,
    pub amount_atomic: u128,
    /// The token's EIP-712 domain name and version (`extra.name`, `extra.version`).
    pub asset_name: String,
    pub asset_version: String,
    pub max_timeout_seconds: u32,
    pub resource_url: String,
    pub description: String,
    pub mime_type: String,
    /// v1 `outputSchema`, when the tenant describes its API (not set by `from_price`).
    pub output_schema: Option<serde_json::Value>,
    /// The v2 402's `bazaar` extension and the resource's service metadata, when the tenant
    /// describes this route (`crate::discovery::for_call`; not set by `from_price`).
    pub discovery: Option<OfferDiscovery>,
}

/// What discovery adds to a v2 402: `extensions.bazaar` and `resource.{serviceName, tags,
/// iconUrl}`, all validated when the tenant's config was saved.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OfferDiscovery {
    pub bazaar: serde_json::Value,
    pub service_name: Option<String>,
    pub tags: Vec<String>,
    pub icon_url: Option<String>,
}

impl Offer {
    /// The offer for `resource_url` (the URL the caller requested, as x402 clients see it)
    /// whose successful response has `mime_type`. `price` comes from a validated config; the
    /// checks here only guard against a config that bypassed validation.
    pub fn from_price(
        price: &Price,
        resource_url: &str,
        mime_type: &str,
    ) -> Result<Offer, X402Error> {
        let amount_atomic = parse_atomic_amount(&price.amount_atomic)
            .ok()
            .filter(|a| *a > 0)
            .ok_or(X402Error::OfferMisconfigured(
                "amountAtomic is not a positive integer",
            ))?;
        let asset = Address::parse(&price.asset)
            .map_err(|_| X402Error::OfferMisconfigured("asset is not an address"))?;
        let pay_to = Address::parse(&price.pay_to)
            .map_err(|_| X402Error::OfferMisconfigured("payTo is not an address"))?;
        let (Some(asset_name), Some(asset_version)) = (&price.asset_name, &price.asset_version)
        else {
            return Err(X402Error::OfferMisconfigured(
                "the asset's EIP-712 name and version are unknown",
            ));
        };
        let url_ok = resource_url.len() <= MAX_RESOURCE_URL_BYTES
            && (resource_url.starts_with("https://") || resource_url.starts_with("http://"))
            && resource_url.bytes().all(|b| b.is_ascii_graphic());
        if !url_ok {
            return Err(X402Error::OfferMisconfigured(
                "the resource URL is not a printable http(s) URL of at most 2048 bytes",
            ));
        }
        let mime_ok = mime_type.len() <= MAX_MIME_TYPE_BYTES
            && mime_type.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        if !mime_ok {
            return Err(X402Error::OfferMisconfigured(
                "the MIME type is not printable ASCII of at most 128 bytes",
            ));
        }
        Ok(Offer {
            network: price.network,
            asset,
            pay_to,
            amount_atomic,
            asset_name: asset_name.clone(),
            asset_version: asset_version.clone(),
            max_timeout_seconds: price.max_timeout_seconds,
            resource_url: resource_url.to_owned(),
            description: price.description.clone().unwrap_or_default(),
            mime_type: mime_type.to_owned(),
            output_schema: None,
            discovery: None,
        })
    }

    /// The same offer, described for discovery (or not, for `None`).
    pub fn with_discovery(mut self, discovery: Option<OfferDiscovery>) -> Offer {
        self.discovery = discovery;
        self
    }

    fn extra(&self) -> AssetDomain {
        AssetDomain {
            name: self.asset_name.clone(),
            version: self.asset_version.clone(),
        }
    }

    /// The offer as a v1 `PaymentRequirements` (also what `/verify` and `/settle` get for v1).
    pub fn requirements_v1(&self) -> RequirementsV1 {
        RequirementsV1 {
            scheme: SCHEME_EXACT,
            network: self.network.v1_name(),
            max_amount_required: self.amount_atomic.to_string(),
            resource: self.resource_url.clone(),
            description: self.description.clone(),
            mime_type: self.mime_type.clone(),
            output_schema: self.output_schema.clone(),
            pay_to: self.pay_to.to_checksum(),
            max_timeout_seconds: self.max_timeout_seconds,
            asset: self.asset.to_checksum(),
            extra: self.extra(),
        }
    }

    /// The offer as a v2 `PaymentRequirements`: what a v2 client copies into `accepted`.
    pub fn requirements_v2(&self) -> RequirementsV2 {
        RequirementsV2 {
            scheme: SCHEME_EXACT,
            network: self.network.caip2(),
            amount: self.amount_atomic.to_string(),
            asset: self.asset.to_checksum(),
            pay_to: self.pay_to.to_checksum(),
            max_timeout_seconds: self.max_timeout_seconds,
            extra: self.extra(),
        }
    }

    /// The 402 answer. `refusal` is why a payment that was sent is refused; `None` when the
    /// request carried no payment.
    pub fn challenge(&self, refusal: Option<&X402Error>) -> Challenge {
        let (error_v1, error_v2, detail) = match refusal {
            None => (
                "X-PAYMENT header is required".to_owned(),
                "PAYMENT-SIGNATURE header is required".to_owned(),
                None,
            ),
            Some(e) => (
                e.code().as_str().to_owned(),
                e.code().as_str().to_owned(),
                Some(e.to_string()),
            ),
        };
        let v1 = PaymentRequiredV1 {
            x402_version: X402Version::V1.number(),
            error: error_v1,
            accepts: vec![self.requirements_v1()],
            detail,
        };
        let mut extensions = payment_identifier_declaration();
        let d = self.discovery.as_ref();
        if let (Some(d), Some(map)) = (d, extensions.as_object_mut()) {
            map.insert("bazaar".into(), d.bazaar.clone());
        }
        let v2 = PaymentRequiredV2 {
            x402_version: X402Version::V2.number(),
            error: error_v2,
            resource: ResourceInfo {
                url: self.resource_url.clone(),
                description: self.description.clone(),
                mime_type: self.mime_type.clone(),
                service_name: d.and_then(|d| d.service_name.clone()),
                tags: d.map(|d| d.tags.clone()).unwrap_or_default(),
                icon_url: d.and_then(|d| d.icon_url.clone()),
            },
            accepts: vec![self.requirements_v2()],
            extensions,
        };
        Challenge {
            body_v1: to_json(&v1),
            header_v2: base64::engine::general_purpose::STANDARD.encode(to_json(&v2)),
        }
    }
}

/// The 402's declaration of the `payment-identifier` extension: optional for clients; an id
/// they send makes a retry of the same payment idempotent (the kept answer), and a reuse of
/// it for another payment a 409.
fn payment_identifier_declaration() -> serde_json::Value {
    use super::payment::{PAYMENT_IDENTIFIER, PAYMENT_ID_MAX_CHARS, PAYMENT_ID_MIN_CHARS};
    serde_json::json!({
        PAYMENT_IDENTIFIER: {
            "info": { "required": false },
            "schema": {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "required": { "type": "boolean" },
                    "id": {
                        "type": "string",
                        "minLength": PAYMENT_ID_MIN_CHARS,
                        "maxLength": PAYMENT_ID_MAX_CHARS,
                        "pattern": "^[a-zA-Z0-9_-]+$"
                    }
                },
                "required": ["required"]
            }
        }
    })
}

/// Serializing these plain structs of strings and integers cannot fail.
pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| String::from("{}"))
}

/// A 402 as the dispatcher sends it: status 402, `Content-Type: application/json`, body
/// `body_v1`, header [`super::HEADER_PAYMENT_REQUIRED`] = `header_v2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `{"x402Version":1,"error":...,"accepts":[RequirementsV1],"detail"?:...}`
    pub body_v1: String,
    /// base64(`{"x402Version":2,"error":...,"resource":{...},"accepts":[RequirementsV2]}`)
    pub header_v2: String,
}

/// `extra` of the exact EVM scheme: the token's EIP-712 domain name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetDomain {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequirementsV1 {
    pub scheme: &'static str,
    pub network: &'static str,
    pub max_amount_required: String,
    pub resource: String,
    pub description: String,
    pub mime_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
    pub pay_to: String,
    pub max_timeout_seconds: u32,
    pub asset: String,
    pub extra: AssetDomain,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequirementsV2 {
    pub scheme: &'static str,
    pub network: &'static str,
    pub amount: String,
    pub asset: String,
    pub pay_to: String,
    pub max_timeout_seconds: u32,
    pub extra: AssetDomain,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    pub url: String,
    pub description: String,
    pub mime_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentRequiredV1 {
    x402_version: u8,
    error: String,
    accepts: Vec<RequirementsV1>,
    /// Ours, not the spec's: the human explanation of a refusal. Clients ignore it.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentRequiredV2 {
    x402_version: u8,
    error: String,
    resource: ResourceInfo,
    accepts: Vec<RequirementsV2>,
    /// After `accepts`: the spec's example is a prefix of ours.
    extensions: serde_json::Value,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{json, Value};

    pub(crate) fn usdc_price() -> Price {
        Price {
            amount_atomic: "10000".into(),
            network: Network::BaseSepolia,
            asset: "0x036cbd53842c5426634e7929541ec2318f3dcf7e".into(),
            pay_to: "0x209693bc6afc0c5328ba36faf03c514ef312287c".into(),
            asset_name: Some("USDC".into()),
            asset_version: Some("2".into()),
            max_timeout_seconds: 60,
            description: Some("Access to premium market data".into()),
        }
    }

    pub(crate) fn usdc_offer() -> Offer {
        Offer::from_price(
            &usdc_price(),
            "https://api.example.com/premium-data",
            "application/json",
        )
        .unwrap()
    }

    #[test]
    fn v1_body_is_the_spec_shape() {
        let c = usdc_offer().challenge(None);
        let body: Value = serde_json::from_str(&c.body_v1).unwrap();
        assert_eq!(
            body,
            json!({
                "x402Version": 1,
                "error": "X-PAYMENT header is required",
                "accepts": [{
                    "scheme": "exact",
                    "network": "base-sepolia",
                    "maxAmountRequired": "10000",
                    "resource": "https://api.example.com/premium-data",
                    "description": "Access to premium market data",
                    "mimeType": "application/json",
                    "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
                    "maxTimeoutSeconds": 60,
                    "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
                    "extra": {"name": "USDC", "version": "2"}
                }]
            })
        );
    }

    #[test]
    fn v2_header_is_the_spec_example() {
        // The transports-v2 HTTP spec's example PAYMENT-REQUIRED header, decoded, plus the
        // payment-identifier extension's declaration (compared on its own below).
        let c = usdc_offer().challenge(None);
        let json = base64::engine::general_purpose::STANDARD
            .decode(&c.header_v2)
            .unwrap();
        let mut header: Value = serde_json::from_slice(&json).unwrap();
        let extensions = header
            .as_object_mut()
            .unwrap()
            .remove("extensions")
            .unwrap();
        assert_eq!(
            extensions["payment-identifier"]["info"],
            json!({"required": false})
        );
        assert_eq!(
            extensions["payment-identifier"]["schema"]["properties"]["id"]["minLength"],
            16
        );
        assert_eq!(
            header,
            json!({
                "x402Version": 2,
                "error": "PAYMENT-SIGNATURE header is required",
                "resource": {
                    "url": "https://api.example.com/premium-data",
                    "description": "Access to premium market data",
                    "mimeType": "application/json"
                },
                "accepts": [{
                    "scheme": "exact",
                    "network": "eip155:84532",
                    "amount": "10000",
                    "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
                    "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
                    "maxTimeoutSeconds": 60,
                    "extra": {"name": "USDC", "version": "2"}
                }]
            })
        );
        // Standard alphabet, padded.
        assert_eq!(c.header_v2.len() % 4, 0);
        assert!(c
            .header_v2
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
    }

    #[test]
    fn refusals_name_their_code() {
        let e = X402Error::AmountMismatch {
            got: 1,
            want: 10_000,
        };
        let c = usdc_offer().challenge(Some(&e));
        let body: Value = serde_json::from_str(&c.body_v1).unwrap();
        assert_eq!(body["error"], "amount_mismatch");
        assert!(body["detail"].as_str().unwrap().contains("10000"));
        assert_eq!(body["accepts"][0]["maxAmountRequired"], "10000");
    }

    #[test]
    fn unofferable_prices_are_errors() {
        let mut p = usdc_price();
        p.asset_name = None;
        assert_eq!(
            Offer::from_price(&p, "https://x/y", "application/json")
                .unwrap_err()
                .code(),
            "offer_misconfigured"
        );
        let mut p = usdc_price();
        p.amount_atomic = "0".into();
        assert!(Offer::from_price(&p, "https://x/y", "").is_err());
        let p = usdc_price();
        assert!(Offer::from_price(&p, "ftp://x/y", "").is_err());
        assert!(Offer::from_price(&p, "https://x/ y", "").is_err());
        assert!(Offer::from_price(&p, "https://x/y", "a\nb").is_err());
        let long = format!("https://x/{}", "a".repeat(MAX_RESOURCE_URL_BYTES));
        assert!(Offer::from_price(&p, &long, "").is_err());
    }
}
