//! Why a payment is refused, with stable codes clients and operators can act on.

use claw_durable::problem::{Code, Problem};

/// Longest piece of client input quoted back in an error's detail.
const MAX_QUOTED: usize = 64;

/// Quotes client input in an error detail: bounded and printable ASCII only.
pub(crate) fn quote(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_QUOTED)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().count() > MAX_QUOTED {
        out.push_str("...");
    }
    out
}

/// Every way the x402 core refuses a payment or a facilitator answer. [`X402Error::code`] is
/// stable; the message (`Display`) explains the occurrence and never carries secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X402Error {
    // --- decoding the payment header ---
    #[error("the payment header is larger than {max_bytes} bytes")]
    HeaderTooLarge { max_bytes: usize },
    #[error("both X-PAYMENT and PAYMENT-SIGNATURE were sent; send one")]
    AmbiguousPaymentHeaders,
    /// Not base64, not UTF-8, not JSON, not an object, or a field of the wrong type.
    #[error("the payment header is malformed: {0}")]
    InvalidPaymentHeader(String),
    #[error("x402Version {0} is not supported")]
    UnsupportedVersion(String),
    /// X-PAYMENT must carry x402Version 1 and PAYMENT-SIGNATURE x402Version 2.
    #[error("the {header} header must carry x402Version {expected}")]
    VersionHeaderMismatch { header: &'static str, expected: u8 },
    #[error("scheme {0:?} is not supported; only \"exact\" is")]
    UnsupportedScheme(String),
    #[error("network {0:?} is not supported")]
    UnsupportedNetwork(String),
    /// A field of the exact-EVM payload has the right type but an invalid value.
    #[error("payload field {field} {reason}")]
    InvalidPayload {
        field: &'static str,
        reason: &'static str,
    },

    // --- matching against the tenant's offer ---
    #[error("the payment is for network {got}, the offer is on {want}")]
    NetworkMismatch { got: String, want: &'static str },
    #[error("the payment is for asset {got}, the offer asks for {want}")]
    AssetMismatch { got: String, want: String },
    #[error("the authorization pays {got}, the offer's payTo is {want}")]
    RecipientMismatch { got: String, want: String },
    #[error("the authorization is for {got} atomic units, the price is exactly {want}")]
    AmountMismatch { got: u128, want: u128 },
    /// A v2 `accepted` that is not the offer we made.
    #[error("accepted.{field} does not match the offer")]
    OfferMismatch { field: &'static str },
    #[error("the authorization is valid only after {valid_after_s} (now {now_s})")]
    AuthorizationNotYetValid { valid_after_s: u64, now_s: u64 },
    #[error("the authorization expires at {valid_before_s}, too soon to settle (now {now_s})")]
    AuthorizationExpired { valid_before_s: u64, now_s: u64 },

    // --- local signature verification ---
    #[error("the signature is invalid: {0}")]
    InvalidSignature(&'static str),
    #[error("the signature has a high s value (malleable); wallets produce low-s signatures")]
    MalleableSignature,
    #[error("the authorization is signed by {recovered}, not by its from address {from}")]
    SignerMismatch { recovered: String, from: String },

    // --- facilitator ---
    /// The facilitator said the payment is invalid (its reason is opaque and passed on).
    #[error("the facilitator rejected the payment: {}", reason.as_deref().unwrap_or("no reason given"))]
    VerificationFailed { reason: Option<String> },
    #[error("settlement failed: {}", reason.as_deref().unwrap_or("no reason given"))]
    SettlementFailed { reason: Option<String> },
    /// The facilitator's answer is not what the protocol promises: treat as not served.
    #[error("the facilitator answered with an invalid response: {0}")]
    FacilitatorBadResponse(String),

    // --- our side ---
    /// The tenant's price cannot be offered (validated configs never get here).
    #[error("the tenant's price cannot be offered: {0}")]
    OfferMisconfigured(&'static str),
}

impl X402Error {
    /// The stable machine-readable code.
    pub fn code(&self) -> Code {
        use X402Error::*;
        match self {
            HeaderTooLarge { .. } => Code::PaymentHeaderTooLarge,
            AmbiguousPaymentHeaders => Code::AmbiguousPaymentHeaders,
            InvalidPaymentHeader(_) => Code::InvalidPaymentHeader,
            UnsupportedVersion(_) => Code::UnsupportedX402Version,
            VersionHeaderMismatch { .. } => Code::X402VersionHeaderMismatch,
            UnsupportedScheme(_) => Code::UnsupportedScheme,
            UnsupportedNetwork(_) => Code::UnsupportedNetwork,
            InvalidPayload { .. } => Code::InvalidPaymentPayload,
            NetworkMismatch { .. } => Code::NetworkMismatch,
            AssetMismatch { .. } => Code::AssetMismatch,
            RecipientMismatch { .. } => Code::RecipientMismatch,
            AmountMismatch { .. } => Code::AmountMismatch,
            OfferMismatch { .. } => Code::OfferMismatch,
            AuthorizationNotYetValid { .. } => Code::AuthorizationNotYetValid,
            AuthorizationExpired { .. } => Code::AuthorizationExpired,
            InvalidSignature(_) => Code::InvalidSignature,
            MalleableSignature => Code::MalleableSignature,
            SignerMismatch { .. } => Code::SignerMismatch,
            VerificationFailed { .. } => Code::PaymentVerificationFailed,
            SettlementFailed { .. } => Code::SettlementFailed,
            FacilitatorBadResponse(_) => Code::FacilitatorBadResponse,
            OfferMisconfigured(_) => Code::OfferMisconfigured,
        }
    }

    /// The HTTP status to answer with, as the v2 HTTP transport maps them: a header that
    /// cannot be read is a 400; a payment that was read but is refused (including one for a
    /// version, scheme or network we do not take) is a 402, sent with fresh requirements so
    /// the client can pay again; the facilitator's fault is a 502, ours a 500.
    pub fn status(&self) -> u16 {
        self.code().status()
    }

    /// Whether the caller is at fault (as opposed to the facilitator or the platform).
    pub fn is_caller_error(&self) -> bool {
        matches!(self.status(), 400 | 402)
    }

    pub fn title(&self) -> &'static str {
        self.code().title()
    }

    pub fn to_problem(&self) -> Problem {
        Problem::new(self.code()).detail(self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_bounded_and_printable() {
        assert_eq!(quote("exact"), "exact");
        assert_eq!(quote("a\nb\u{0}é"), "a?b??");
        let long = "x".repeat(1000);
        assert_eq!(quote(&long).len(), MAX_QUOTED + 3);
    }

    #[test]
    fn problems_carry_the_code() {
        let p = X402Error::AmountMismatch { got: 1, want: 2 }.to_problem();
        assert_eq!((p.status, &*p.code), (402, "amount_mismatch"));
        assert_eq!(X402Error::FacilitatorBadResponse("x".into()).status(), 502);
        assert!(!X402Error::OfferMisconfigured("x").is_caller_error());
        assert_eq!(X402Error::InvalidPaymentHeader("x".into()).status(), 400);
        assert_eq!(X402Error::UnsupportedScheme("upto".into()).status(), 402);
        assert!(X402Error::MalleableSignature.is_caller_error());
    }
}
