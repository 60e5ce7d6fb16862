//! The facilitator's wire: request bodies for `POST /verify` and `POST /settle`, and the
//! parsing of their answers. Parsing is tolerant of extra fields, strict about the types of
//! the fields we use, and bounded; anything else is [`X402Error::FacilitatorBadResponse`],
//! which the caller treats as "not served" (fail closed).

use claw_durable::tenant::Network;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::x402::error::{quote, X402Error};
use crate::x402::evm::{Address, B256};
use crate::x402::offer::{to_json, Offer};
use crate::x402::payment::PaymentPayload;
use crate::x402::receipt::Settlement;
use crate::x402::X402Version;

/// Largest facilitator answer read, in bytes.
pub const MAX_FACILITATOR_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest reason string kept from a facilitator answer (reasons are opaque).
pub const MAX_REASON_CHARS: usize = 256;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FacilitatorRequest<'a, R: Serialize> {
    x402_version: u8,
    payment_payload: &'a RawValue,
    payment_requirements: R,
}

/// The JSON body of both `POST /verify` and `POST /settle`:
/// `{"x402Version":N,"paymentPayload":<the decoded header JSON as received>,
/// "paymentRequirements":<the offer in version N's form>}`.
pub fn facilitator_request_body(payment: &PaymentPayload, offer: &Offer) -> String {
    let version = payment.version.number();
    let raw = payment.raw_json();
    match payment.version {
        X402Version::V1 => to_json(&FacilitatorRequest {
            x402_version: version,
            payment_payload: raw,
            payment_requirements: offer.requirements_v1(),
        }),
        X402Version::V2 => to_json(&FacilitatorRequest {
            x402_version: version,
            payment_payload: raw,
            payment_requirements: offer.requirements_v2(),
        }),
    }
}

/// `POST /verify`'s answer. Strings are as received (the body is bounded); they are
/// validated by the `check_*` functions before any use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyResponse {
    pub is_valid: bool,
    pub invalid_reason: Option<String>,
    /// As the facilitator wrote it; checked against the payment by [`check_verify_response`].
    pub payer: Option<String>,
}

/// `POST /settle`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleResponse {
    pub success: bool,
    /// The transaction hash; `""` or absent when settlement failed.
    pub transaction: Option<String>,
    pub network: Option<String>,
    pub payer: Option<String>,
    pub error_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireVerify {
    is_valid: bool,
    #[serde(default)]
    invalid_reason: Option<String>,
    #[serde(default)]
    payer: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSettle {
    success: bool,
    #[serde(default)]
    transaction: Option<String>,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    payer: Option<String>,
    #[serde(default)]
    error_reason: Option<String>,
}

fn parse_bounded<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, X402Error> {
    if body.len() > MAX_FACILITATOR_RESPONSE_BYTES {
        return Err(X402Error::FacilitatorBadResponse(format!(
            "larger than {MAX_FACILITATOR_RESPONSE_BYTES} bytes"
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| X402Error::FacilitatorBadResponse(quote(&e.to_string())))
}

/// Opaque reasons are kept, bounded and printable.
fn reason(r: Option<String>) -> Option<String> {
    r.filter(|r| !r.is_empty()).map(|r| {
        r.chars()
            .take(MAX_REASON_CHARS)
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect()
    })
}

pub fn parse_verify_response(body: &[u8]) -> Result<VerifyResponse, X402Error> {
    let w: WireVerify = parse_bounded(body)?;
    Ok(VerifyResponse {
        is_valid: w.is_valid,
        invalid_reason: reason(w.invalid_reason),
        payer: w.payer,
    })
}

pub fn parse_settle_response(body: &[u8]) -> Result<SettleResponse, X402Error> {
    let w: WireSettle = parse_bounded(body)?;
    Ok(SettleResponse {
        success: w.success,
        transaction: w.transaction,
        network: w.network,
        payer: w.payer,
        error_reason: reason(w.error_reason),
    })
}

/// A payer the facilitator names must be the payment's `from`.
fn check_payer(payer: Option<&str>, payment: &PaymentPayload) -> Result<(), X402Error> {
    match payer.filter(|p| !p.is_empty()) {
        None => Ok(()),
        Some(p) if Address::parse(p).ok() == Some(payment.payer()) => Ok(()),
        Some(_) => Err(X402Error::FacilitatorBadResponse(
            "payer is not the authorization's from address".into(),
        )),
    }
}

/// Turns a verify answer into the paywall's decision: `Ok` to serve.
pub fn check_verify_response(
    response: &VerifyResponse,
    payment: &PaymentPayload,
) -> Result<(), X402Error> {
    if !response.is_valid {
        return Err(X402Error::VerificationFailed {
            reason: response.invalid_reason.clone(),
        });
    }
    check_payer(response.payer.as_deref(), payment)
}

/// Turns a settle answer into a [`Settlement`]: `success` with a transaction hash
/// (`0x` + 64 hex) on the payment's network (either spelling), else an error.
pub fn check_settle_response(
    response: &SettleResponse,
    payment: &PaymentPayload,
) -> Result<Settlement, X402Error> {
    if !response.success {
        return Err(X402Error::SettlementFailed {
            reason: response.error_reason.clone(),
        });
    }
    let transaction = response
        .transaction
        .as_deref()
        .and_then(|t| B256::parse(t).ok())
        .ok_or_else(|| {
            X402Error::FacilitatorBadResponse(
                "success without a 0x-prefixed 32-byte transaction hash".into(),
            )
        })?;
    let network = response.network.as_deref().and_then(Network::parse);
    if network != Some(payment.network) {
        return Err(X402Error::FacilitatorBadResponse(
            "settled on a network other than the payment's".into(),
        ));
    }
    check_payer(response.payer.as_deref(), payment)?;
    Ok(Settlement {
        transaction: transaction.to_lower_hex(),
        network: payment.network,
        payer: payment.payer(),
        local: false,
    })
}
