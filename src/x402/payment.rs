//! Decoding a payment header: `X-PAYMENT` (v1) or `PAYMENT-SIGNATURE` (v2), base64 over JSON.
//!
//! Strict and bounded: the header is at most [`MAX_PAYMENT_HEADER_BYTES`], a JSON field we
//! use must have its exact type and format, a duplicated field is refused (so we and the
//! facilitator cannot read different values), unknown fields are ignored (forward
//! compatibility). Every failure is an [`X402Error`]; nothing here panics.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use claw_durable::tenant::Network;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{quote, X402Error};
use super::evm::{parse_u128_dec, parse_u64_dec, Address, EvmSignature, B256};
use super::{X402Version, HEADER_PAYMENT_SIGNATURE, HEADER_X_PAYMENT, SCHEME_EXACT};

/// Largest payment header accepted, in bytes (a real one is about 1.5 KiB for v2, plus the
/// extensions the client echoes: a described route's `bazaar` extension, see
/// `crate::discovery`).
pub const MAX_PAYMENT_HEADER_BYTES: usize = 24 * 1024;

/// Standard alphabet; padding is optional on input (we always pad on output). Non-canonical
/// trailing bits are refused.
const LENIENT_PADDING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An EIP-3009 `TransferWithAuthorization`, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorization {
    pub from: Address,
    pub to: Address,
    /// Atomic units of the asset.
    pub value: u128,
    pub valid_after_s: u64,
    pub valid_before_s: u64,
    pub nonce: B256,
}

/// A v2 payment's `accepted`: the offer the client says it took, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedV2 {
    pub scheme: String,
    pub network: String,
    pub amount: String,
    pub asset: String,
    pub pay_to: String,
    pub max_timeout_seconds: u64,
    pub extra_name: Option<String>,
    pub extra_version: Option<String>,
}

/// A decoded payment header.
#[derive(Debug, Clone)]
pub struct PaymentPayload {
    pub version: X402Version,
    /// v1: the payload's `network`; v2: `accepted.network`.
    pub network: Network,
    pub authorization: Authorization,
    pub signature: EvmSignature,
    /// v2 only.
    pub accepted: Option<AcceptedV2>,
    /// v2's `payment-identifier` extension: the client's idempotency id, checked
    /// ([`PAYMENT_ID_MIN_CHARS`]..=[`PAYMENT_ID_MAX_CHARS`] of `A-Z a-z 0-9 _ -`).
    pub payment_id: Option<String>,
    /// The decoded JSON exactly as the client sent it: what the facilitator gets.
    raw: Box<RawValue>,
}

impl PaymentPayload {
    pub fn payer(&self) -> Address {
        self.authorization.from
    }

    /// The payment payload JSON as received (for `paymentPayload` in facilitator calls).
    pub fn raw_json(&self) -> &RawValue {
        &self.raw
    }
}

/// The `payment-identifier` extension's name (x402 v2 extensions).
pub const PAYMENT_IDENTIFIER: &str = "payment-identifier";
pub const PAYMENT_ID_MIN_CHARS: usize = 16;
pub const PAYMENT_ID_MAX_CHARS: usize = 128;

/// The client's payment id from a v2 payload's `extensions["payment-identifier"].info.id`:
/// absent (no extension, or an echo of the server's declaration without an id) is `None`;
/// present, it must be 16-128 characters of `A-Z a-z 0-9 _ -`.
fn payment_id(
    extensions: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<Option<String>, X402Error> {
    let Some(id) = extensions
        .and_then(|e| e.get(PAYMENT_IDENTIFIER))
        .and_then(|x| x.get("info"))
        .and_then(|info| info.get("id"))
    else {
        return Ok(None);
    };
    let ok = id.as_str().filter(|s| {
        (PAYMENT_ID_MIN_CHARS..=PAYMENT_ID_MAX_CHARS).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    match ok {
        Some(s) => Ok(Some(s.to_owned())),
        None => Err(X402Error::InvalidPayload {
            field: "extensions.payment-identifier.info.id",
            reason: "must be 16 to 128 characters of A-Z a-z 0-9 _ -",
        }),
    }
}

/// Which payment header a request carries. Both at once is refused: a real client sends
/// one, and two payments in one request would be ambiguous about what was paid.
pub fn select_payment_header<'a>(
    x_payment: Option<&'a str>,
    payment_signature: Option<&'a str>,
) -> Result<Option<(X402Version, &'a str)>, X402Error> {
    match (x_payment, payment_signature) {
        (None, None) => Ok(None),
        (Some(v1), None) => Ok(Some((X402Version::V1, v1))),
        (None, Some(v2)) => Ok(Some((X402Version::V2, v2))),
        (Some(_), Some(_)) => Err(X402Error::AmbiguousPaymentHeaders),
    }
}

/// Decodes the value of the header for `version` (`X-PAYMENT` for v1, `PAYMENT-SIGNATURE`
/// for v2).
pub fn decode_payment_header(
    version: X402Version,
    header_value: &str,
) -> Result<PaymentPayload, X402Error> {
    if header_value.len() > MAX_PAYMENT_HEADER_BYTES {
        return Err(X402Error::HeaderTooLarge {
            max_bytes: MAX_PAYMENT_HEADER_BYTES,
        });
    }
    let bytes = LENIENT_PADDING
        .decode(header_value.trim_matches([' ', '\t']))
        .map_err(|_| X402Error::InvalidPaymentHeader("not base64 (standard alphabet)".into()))?;
    let json = String::from_utf8(bytes)
        .map_err(|_| X402Error::InvalidPaymentHeader("not UTF-8".into()))?;

    let sent = probe_version(&json)?;
    if sent != version {
        let header = match version {
            X402Version::V1 => HEADER_X_PAYMENT,
            X402Version::V2 => HEADER_PAYMENT_SIGNATURE,
        };
        return Err(X402Error::VersionHeaderMismatch {
            header,
            expected: version.number(),
        });
    }

    let (network, accepted, payload, payment_id) = match version {
        X402Version::V1 => {
            let wire: WireV1 = from_json(&json)?;
            check_scheme(&wire.scheme)?;
            let network = parse_network(&wire.network, X402Version::V1)?;
            (network, None, wire.payload, None)
        }
        X402Version::V2 => {
            let wire: WireV2 = from_json(&json)?;
            let a = wire.accepted;
            check_scheme(&a.scheme)?;
            let network = parse_network(&a.network, X402Version::V2)?;
            let extra = a.extra.unwrap_or_default();
            let accepted = AcceptedV2 {
                scheme: a.scheme,
                network: a.network,
                amount: a.amount,
                asset: a.asset,
                pay_to: a.pay_to,
                max_timeout_seconds: a.max_timeout_seconds,
                extra_name: extra.name,
                extra_version: extra.version,
            };
            let id = payment_id(wire.extensions.as_ref())?;
            (network, Some(accepted), wire.payload, id)
        }
    };
    let payload: WireExactPayload = from_json(payload.get())?;
    let (authorization, signature) = parse_exact_payload(&payload)?;
    let raw = RawValue::from_string(json)
        .map_err(|_| X402Error::InvalidPaymentHeader("not JSON".into()))?;
    Ok(PaymentPayload {
        version,
        network,
        authorization,
        signature,
        accepted,
        payment_id,
        raw,
    })
}

fn from_json<'a, T: Deserialize<'a>>(json: &'a str) -> Result<T, X402Error> {
    serde_json::from_str(json).map_err(|e| X402Error::InvalidPaymentHeader(quote(&e.to_string())))
}

fn probe_version(json: &str) -> Result<X402Version, X402Error> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "x402Version")]
        x402_version: Option<serde_json::Value>,
    }
    let probe: Probe = from_json(json)?;
    let v = probe
        .x402_version
        .ok_or_else(|| X402Error::InvalidPaymentHeader("missing field `x402Version`".into()))?;
    match v.as_u64() {
        Some(1) => Ok(X402Version::V1),
        Some(2) => Ok(X402Version::V2),
        Some(n) => Err(X402Error::UnsupportedVersion(n.to_string())),
        None => Err(X402Error::InvalidPaymentHeader(
            "x402Version must be an integer".into(),
        )),
    }
}

fn check_scheme(scheme: &str) -> Result<(), X402Error> {
    if scheme == SCHEME_EXACT {
        Ok(())
    } else {
        Err(X402Error::UnsupportedScheme(quote(scheme)))
    }
}

/// v1 names networks `base-sepolia`; v2 uses CAIP-2 `eip155:84532`. Each version must use
/// its own spelling, as the offers it answers do.
fn parse_network(s: &str, version: X402Version) -> Result<Network, X402Error> {
    let network = Network::parse(s).filter(|n| match version {
        X402Version::V1 => n.v1_name() == s,
        X402Version::V2 => n.caip2() == s,
    });
    network.ok_or_else(|| X402Error::UnsupportedNetwork(quote(s)))
}

fn parse_exact_payload(p: &WireExactPayload) -> Result<(Authorization, EvmSignature), X402Error> {
    let a = &p.authorization;
    let field = |field: &'static str| {
        move |reason: &'static str| X402Error::InvalidPayload { field, reason }
    };
    let authorization = Authorization {
        from: Address::parse(&a.from).map_err(field("payload.authorization.from"))?,
        to: Address::parse(&a.to).map_err(field("payload.authorization.to"))?,
        value: parse_u128_dec(&a.value).map_err(field("payload.authorization.value"))?,
        valid_after_s: parse_u64_dec(&a.valid_after)
            .map_err(field("payload.authorization.validAfter"))?,
        valid_before_s: parse_u64_dec(&a.valid_before)
            .map_err(field("payload.authorization.validBefore"))?,
        nonce: B256::parse(&a.nonce).map_err(field("payload.authorization.nonce"))?,
    };
    let signature = EvmSignature::parse(&p.signature).map_err(field("payload.signature"))?;
    Ok((authorization, signature))
}

#[derive(Deserialize)]
struct WireV1 {
    scheme: String,
    network: String,
    payload: Box<RawValue>,
}

#[derive(Deserialize)]
struct WireV2 {
    accepted: WireAccepted,
    payload: Box<RawValue>,
    /// Optional in v2; type-checked, not used.
    #[serde(default)]
    #[allow(dead_code)]
    resource: Option<serde_json::Map<String, serde_json::Value>>,
    /// Type-checked; `payment-identifier` is read.
    #[serde(default)]
    extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAccepted {
    scheme: String,
    network: String,
    amount: String,
    asset: String,
    pay_to: String,
    max_timeout_seconds: u64,
    #[serde(default)]
    extra: Option<WireExtra>,
}

#[derive(Deserialize, Default)]
struct WireExtra {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
    // Other scheme-specific keys (e.g. `assetTransferMethod`) are ignored.
}

#[derive(Deserialize)]
struct WireExactPayload {
    signature: String,
    authorization: WireAuthorization,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAuthorization {
    from: String,
    to: String,
    value: String,
    valid_after: String,
    valid_before: String,
    nonce: String,
}
