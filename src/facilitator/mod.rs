//! The x402 facilitator as the paywall uses it: its wire (`wire`: the `POST /verify` and
//! `POST /settle` bodies and the parsing of their answers), how an HTTP answer is read
//! ([`read_verify`], [`read_settle`]: a 4xx counts only as an explicit refusal), the ways an
//! exchange can fail ([`FacilitatorFailure`]: never served), and the HTTP client with its
//! deadline (`edge`, wasm only).

use claw_durable::problem::{Code, Problem};

#[cfg(target_arch = "wasm32")]
pub mod edge;
pub mod wire;

pub use wire::{
    check_settle_response, check_verify_response, facilitator_request_body, parse_settle_response,
    parse_verify_response, SettleResponse, VerifyResponse, MAX_FACILITATOR_RESPONSE_BYTES,
};

use crate::x402::X402Error;

/// `FACILITATOR_TIMEOUT_MS` when unset: the whole exchange (connect, answer, body) with the
/// facilitator, per call (verify and settle each get this much).
pub const DEFAULT_FACILITATOR_TIMEOUT_MS: u32 = 5_000;
/// Largest `FACILITATOR_TIMEOUT_MS` accepted.
pub const MAX_FACILITATOR_TIMEOUT_MS: u32 = 60_000;
/// Why a facilitator exchange produced no usable answer: the call is not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FacilitatorFailure {
    /// No answer within the timeout.
    Timeout,
    /// Connection refused, reset, DNS, TLS, ...
    Unreachable,
    /// An HTTP status that carries no verify/settle answer.
    Status(u16),
    /// A body that is not the protocol's answer (garbage, too large, wrong types).
    BadResponse(X402Error),
}

impl FacilitatorFailure {
    /// Stable code, also the `errorReason` of a failed payment-response header.
    pub fn code(&self) -> Code {
        match self {
            FacilitatorFailure::Timeout => Code::FacilitatorTimeout,
            FacilitatorFailure::Unreachable | FacilitatorFailure::Status(_) => {
                Code::FacilitatorUnavailable
            }
            FacilitatorFailure::BadResponse(_) => Code::FacilitatorBadResponse,
        }
    }

    pub fn to_problem(&self, step: &str) -> Problem {
        let detail = match self {
            FacilitatorFailure::Timeout => format!("no {step} answer in time"),
            FacilitatorFailure::Unreachable => {
                format!("the facilitator could not be reached for {step}")
            }
            FacilitatorFailure::Status(s) => {
                format!("the facilitator answered {step} with HTTP {s}")
            }
            FacilitatorFailure::BadResponse(e) => format!("{step}: {e}"),
        };
        Problem::new(self.code()).detail(format!("{detail}; the call was not served"))
    }
}

/// Reads `POST /verify`'s answer. 2xx must be a verify answer; a 4xx is accepted only when
/// it carries one saying the payment is invalid (some facilitators answer 400 so); anything
/// else is a failure.
pub fn read_verify(status: u16, body: &[u8]) -> Result<VerifyResponse, FacilitatorFailure> {
    read_answer(status, body, parse_verify_response, |v| !v.is_valid)
}

/// Reads `POST /settle`'s answer, like [`read_verify`]: a 4xx counts only as an explicit
/// `success: false`.
pub fn read_settle(status: u16, body: &[u8]) -> Result<SettleResponse, FacilitatorFailure> {
    read_answer(status, body, parse_settle_response, |s| !s.success)
}

fn read_answer<T>(
    status: u16,
    body: &[u8],
    parse: fn(&[u8]) -> Result<T, X402Error>,
    is_refusal: fn(&T) -> bool,
) -> Result<T, FacilitatorFailure> {
    match status {
        200..=299 => parse(body).map_err(FacilitatorFailure::BadResponse),
        400..=499 => match parse(body) {
            Ok(answer) if is_refusal(&answer) => Ok(answer),
            _ => Err(FacilitatorFailure::Status(status)),
        },
        _ => Err(FacilitatorFailure::Status(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facilitator_answers_are_read_strictly() {
        let valid = br#"{"isValid":true,"payer":"0x857b06519E91e3A54538791bDbb0E22373e36b66"}"#;
        assert!(read_verify(200, valid).unwrap().is_valid);
        let invalid = br#"{"isValid":false,"invalidReason":"invalid_exact_evm_payload_signature"}"#;
        assert!(!read_verify(400, invalid).unwrap().is_valid);
        // A 4xx saying "valid" is not an answer; neither is a 5xx or a redirect.
        assert_eq!(
            read_verify(400, valid),
            Err(FacilitatorFailure::Status(400))
        );
        assert_eq!(
            read_verify(500, invalid),
            Err(FacilitatorFailure::Status(500))
        );
        assert_eq!(read_verify(302, b""), Err(FacilitatorFailure::Status(302)));
        let garbage = read_verify(200, b"<html>oops</html>").unwrap_err();
        assert_eq!(garbage.code(), "facilitator_bad_response");
        let big = vec![b' '; MAX_FACILITATOR_RESPONSE_BYTES + 1];
        assert_eq!(
            read_verify(200, &big).unwrap_err().code(),
            "facilitator_bad_response"
        );

        let failed = br#"{"success":false,"errorReason":"insufficient_funds","transaction":""}"#;
        assert!(!read_settle(200, failed).unwrap().success);
        assert!(!read_settle(402, failed).unwrap().success);
        let ok = br#"{"success":true,"transaction":"0xab","network":"base-sepolia"}"#;
        assert_eq!(read_settle(400, ok), Err(FacilitatorFailure::Status(400)));
        assert!(read_settle(200, ok).unwrap().success);
        assert_eq!(
            read_settle(503, b"")
                .unwrap_err()
                .to_problem("settle")
                .status,
            502
        );
        assert_eq!(
            FacilitatorFailure::Timeout.to_problem("verify").code,
            "facilitator_timeout"
        );
    }
}
