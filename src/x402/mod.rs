//! The x402 protocol core of the paywall: pure functions, no I/O, no clock.
//!
//! A paid call goes through it in this order (the Worker glue does the fetching):
//! 1. no payment header: [`Offer::challenge`] gives the 402 (v1 JSON body and v2
//!    `PAYMENT-REQUIRED` header at once, so v1 and v2 clients can both pay);
//! 2. [`select_payment_header`] + [`decode_payment_header`]: `X-PAYMENT` (v1) or
//!    `PAYMENT-SIGNATURE` (v2) into a [`PaymentPayload`];
//! 3. [`check_payment`]: network, asset, recipient, exact amount, validity window, v2
//!    `accepted` == our offer; yields the ledger's idempotency key and fingerprint;
//! 4. verification: `crate::facilitator::facilitator_request_body` for `POST /verify`,
//!    then its `parse_verify_response` + `check_verify_response`; or, in development only,
//!    [`verify_locally`] (EIP-712 digest + secp256k1 recovery);
//! 5. settlement: the same request body for `POST /settle`, then the facilitator room's
//!    `parse_settle_response` + `check_settle_response` (or [`local_settlement`]); the answer carries
//!    [`payment_response_header`], a failure [`payment_failure_header`].
//!
//! Only the `exact` scheme on EVM networks with EIP-3009 tokens (USDC) and 65-byte EOA
//! signatures is accepted.

pub mod check;
pub mod eip712;
pub mod error;
pub mod evm;
pub mod identity;
pub mod offer;
pub mod payment;
pub mod receipt;

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

pub use check::{check_payment, verify_locally, AcceptedPayment, VALID_BEFORE_MARGIN_S};
pub use error::X402Error;
pub use identity::{idempotency_key, payment_fingerprint};
pub use offer::{Challenge, Offer};
pub use payment::{
    decode_payment_header, select_payment_header, Authorization, PaymentPayload,
    MAX_PAYMENT_HEADER_BYTES,
};
pub use receipt::{local_settlement, payment_failure_header, payment_response_header, Settlement};

/// v1: the client pays with this header.
pub const HEADER_X_PAYMENT: &str = "X-PAYMENT";
/// v1: the server's settlement receipt.
pub const HEADER_X_PAYMENT_RESPONSE: &str = "X-PAYMENT-RESPONSE";
/// v2: the server's requirements on a 402.
pub const HEADER_PAYMENT_REQUIRED: &str = "PAYMENT-REQUIRED";
/// v2: the client pays with this header.
pub const HEADER_PAYMENT_SIGNATURE: &str = "PAYMENT-SIGNATURE";
/// v2: the server's settlement receipt.
pub const HEADER_PAYMENT_RESPONSE: &str = "PAYMENT-RESPONSE";
/// The only scheme offered and accepted.
pub const SCHEME_EXACT: &str = "exact";

/// The protocol version a payment speaks; it decides header names, network spellings and
/// the requirements' shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum X402Version {
    V1,
    V2,
}

impl X402Version {
    pub fn number(self) -> u8 {
        match self {
            X402Version::V1 => 1,
            X402Version::V2 => 2,
        }
    }
}
