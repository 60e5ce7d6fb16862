//! The payment-response header: `X-PAYMENT-RESPONSE` (v1) or `PAYMENT-RESPONSE` (v2),
//! base64 (standard, padded) over JSON `{success, transaction, network, payer,
//! errorReason?}`, with `network` in the version's own spelling.
//!
//! A settlement made by the local development verifier never touches a chain. It says so
//! twice: `transaction` is `local:<payment fingerprint>` (never a `0x` hash) and the JSON has
//! an extra `"localSettlement": true`.

use base64::Engine as _;
use claw_durable::tenant::Network;
use serde::Serialize;

use super::check::AcceptedPayment;
use super::evm::Address;
use super::offer::to_json;
use super::{X402Version, HEADER_PAYMENT_RESPONSE, HEADER_X_PAYMENT_RESPONSE};

/// Prefix of a local (not on chain) settlement's transaction.
pub use claw_durable::ledger::LOCAL_TX_PREFIX as LOCAL_TRANSACTION_PREFIX;

/// A settled payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// `0x` + 64 lowercase hex from a facilitator, or `local:<fingerprint>`.
    pub transaction: String,
    pub network: Network,
    pub payer: Address,
    /// Settled by the development verifier: no funds moved.
    pub local: bool,
}

/// The settlement the local verifier reports for a payment it accepted.
pub fn local_settlement(payment: &AcceptedPayment) -> Settlement {
    Settlement {
        transaction: format!("{LOCAL_TRANSACTION_PREFIX}{}", payment.fingerprint),
        network: payment.network,
        payer: payment.payer,
        local: true,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentResponse<'a> {
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_reason: Option<&'a str>,
    transaction: &'a str,
    network: &'static str,
    payer: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    local_settlement: bool,
}

fn header_name(version: X402Version) -> &'static str {
    match version {
        X402Version::V1 => HEADER_X_PAYMENT_RESPONSE,
        X402Version::V2 => HEADER_PAYMENT_RESPONSE,
    }
}

fn network_name(version: X402Version, network: Network) -> &'static str {
    match version {
        X402Version::V1 => network.v1_name(),
        X402Version::V2 => network.caip2(),
    }
}

fn encode(response: &PaymentResponse<'_>) -> String {
    base64::engine::general_purpose::STANDARD.encode(to_json(response))
}

/// `(header name, value)` for a successful settlement, answered with the tenant's response.
pub fn payment_response_header(
    version: X402Version,
    settlement: &Settlement,
) -> (&'static str, String) {
    let value = encode(&PaymentResponse {
        success: true,
        error_reason: None,
        transaction: &settlement.transaction,
        network: network_name(version, settlement.network),
        payer: settlement.payer.to_checksum(),
        local_settlement: settlement.local,
    });
    (header_name(version), value)
}

/// `(header name, value)` for a failed settlement, answered with a 402 and no body from the
/// tenant. `error_reason` is a stable code or the facilitator's opaque reason.
pub fn payment_failure_header(
    version: X402Version,
    network: Network,
    payer: &Address,
    error_reason: &str,
) -> (&'static str, String) {
    let value = encode(&PaymentResponse {
        success: false,
        error_reason: Some(error_reason),
        transaction: "",
        network: network_name(version, network),
        payer: payer.to_checksum(),
        local_settlement: false,
    });
    (header_name(version), value)
}
