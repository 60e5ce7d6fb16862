//! The paywall's pure rules: which verifier is in force (fail closed), the resource URL an
//! offer names, how a facilitator's HTTP answer is read, and the problems a paid call that
//! is not served ends with. The Worker glue (`edge::paywall`) does the I/O in this order:
//!
//! 1. no verifier configured: 503 `payments_unavailable`, never served;
//! 2. no payment header: 402 (v1 body + v2 `PAYMENT-REQUIRED` header);
//! 3. decode + match the offer + local checks (payTo, amount, network, asset, window);
//! 4. verify (facilitator `POST /verify`, or the local EIP-712 verifier in development);
//! 5. reserve the payment in the tenant's ledger (key = network + asset + payer + nonce);
//! 6. dispatch, buffering the tenant's answer (at most [`MAX_PAID_RESPONSE_BYTES`], within
//!    [`TENANT_DEADLINE_MS`]);
//! 7. tenant answered below 400: settle, then post the ledger entry with the transaction;
//!    otherwise, or when settlement fails, void the reservation.

#[cfg(target_arch = "wasm32")]
pub mod edge;

use claw_durable::problem::{Code, Problem};
use url::Url;

use crate::facilitator::{DEFAULT_FACILITATOR_TIMEOUT_MS, MAX_FACILITATOR_TIMEOUT_MS};
use crate::http::capped::ReadError;
use crate::x402::{AcceptedPayment, Settlement};
use claw_durable::ledger::wire::Recovery;
use claw_durable::ledger::PaymentState;
use claw_durable::ledger::RESERVATION_TTL_MS;
use claw_durable::store::MAX_SAFE_INTEGER;

/// A paid answer is buffered before it is settled (as the reference servers do), so it is
/// bounded: a tenant answer larger than this is not served and not charged.
pub const MAX_PAID_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// How long the paywall waits for the tenant's complete answer (headers and body). Past
/// it the reservation is voided and the caller gets a 504. With two facilitator calls at
/// most [`MAX_FACILITATOR_TIMEOUT_MS`] each, a paid call holds its reservation well under
/// the ledger's 15-minute sweep (`claw_durable::ledger::RESERVATION_TTL_MS`).
pub const TENANT_DEADLINE_MS: u32 = 5 * 60 * 1_000;
// A live paid call (verify, dispatch, settle: each at its longest) always ends before the
// ledger's sweep may touch its reservation, with a minute to spare for the ledger calls.
const _: () = assert!(
    TENANT_DEADLINE_MS as i64 + 2 * MAX_FACILITATOR_TIMEOUT_MS as i64 + 60_000 < RESERVATION_TTL_MS
);
/// Set to `true` on an answer that was paid for (settled and recorded).
pub const CHARGED_HEADER: &str = "x-claw-charged";
/// Set to `true` on a kept answer given again to a retry of the payment that paid for it.
pub const REPLAY_HEADER: &str = "x-claw-replay";
/// Env value that enables the local verifier when no facilitator is configured.
pub const LOCAL_VERIFICATION_ON: &str = "true";

/// How payments are verified and settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verifier {
    /// A facilitator at `base` (`{base}/verify`, `{base}/settle`).
    Facilitator { base: String, timeout_ms: u32 },
    /// Development only: EIP-712 recovery in the Worker and a recorded local settlement
    /// that moves no funds (`ALLOW_LOCAL_X402_VERIFICATION=true`, no `FACILITATOR_URL`).
    Local,
}

fn unavailable(detail: &str) -> Problem {
    Problem::new(Code::PaymentsUnavailable).detail(detail)
}

/// The verifier in force, from the Worker's variables. Fail closed: without a facilitator
/// URL and without the explicit development override, paid calls are refused (503), as
/// they are when a variable is malformed. A facilitator URL, when set, always wins over the
/// override. Details name the variable, never its value.
pub fn verifier(
    facilitator_url: Option<&str>,
    timeout_ms: Option<&str>,
    allow_local: Option<&str>,
) -> Result<Verifier, Problem> {
    let Some(raw) = facilitator_url.map(str::trim).filter(|u| !u.is_empty()) else {
        return if allow_local.map(str::trim) == Some(LOCAL_VERIFICATION_ON) {
            Ok(Verifier::Local)
        } else {
            Err(unavailable(
                "no payment facilitator is configured (FACILITATOR_URL)",
            ))
        };
    };
    let url = Url::parse(raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .filter(|u| u.host_str().is_some() && u.query().is_none() && u.fragment().is_none())
        .ok_or_else(|| unavailable("FACILITATOR_URL is not an http(s) URL without a query"))?;
    let timeout_ms = match timeout_ms.map(str::trim).filter(|t| !t.is_empty()) {
        None => DEFAULT_FACILITATOR_TIMEOUT_MS,
        Some(t) => t
            .parse::<u32>()
            .ok()
            .filter(|t| (1..=MAX_FACILITATOR_TIMEOUT_MS).contains(t))
            .ok_or_else(|| {
                unavailable("FACILITATOR_TIMEOUT_MS must be an integer from 1 to 60000")
            })?,
    };
    Ok(Verifier::Facilitator {
        base: url.as_str().trim_end_matches('/').to_owned(),
        timeout_ms,
    })
}

/// The resource an offer names: the public URL of the call without query or fragment (the
/// query may carry the caller's own parameters; the path identifies the resource). A URL
/// longer than the offer allows falls back to the origin.
pub fn resource_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let full = u.as_str().to_owned();
    if full.len() <= crate::x402::offer::MAX_RESOURCE_URL_BYTES {
        full
    } else {
        format!("{}/", url.origin().ascii_serialization())
    }
}

/// A void reason for the ledger: printable, at most 200 bytes.
pub fn void_reason(what: &str, detail: &str) -> String {
    let mut r = format!("{what}: {detail}");
    r.retain(|c| c.is_ascii_graphic() || c == ' ');
    r.truncate(200);
    r
}

/// Statuses whose responses have no body (a Response with a body and one of these throws).
pub fn is_null_body_status(status: u16) -> bool {
    matches!(status, 101 | 204 | 205 | 304)
}

/// The answer when the ledger refuses to reserve: its own problem (`payment_in_flight`,
/// `payment_already_settled`, `payment_already_voided` with 409, `payment_key_reused` with
/// 422) for the caller, with a detail that says the call was not served. Any other answer
/// means the ledger is unusable: 503 `ledger_unavailable`.
pub fn reserve_refusal(ledger_status: u16, ledger_problem: Option<Problem>) -> Problem {
    match ledger_problem {
        Some(p) if matches!(ledger_status, 409 | 422) => {
            let detail = match &*p.code {
                "payment_in_flight" => {
                    "this payment is being used by another request right now; sign a new one"
                }
                "payment_already_settled" => "this payment already paid for a call; sign a new one",
                "payment_already_voided" => {
                    "this payment was refused or its call failed; it cannot be reused, sign a new one"
                }
                _ => "this payment's nonce was already used by a different payment",
            };
            p.detail(detail)
        }
        _ => ledger_unavailable(),
    }
}

/// The ledger refused to record a settlement (4xx: e.g. a transaction hash that already
/// settled another payment): not a valid settlement, so the call is not served. The answer
/// is 502 `settlement_not_recorded`; the detail names the ledger's own code.
pub fn settle_refusal(ledger_problem: Option<&Problem>) -> Problem {
    let why = ledger_problem.map_or("an unreadable answer", |p| p.code.as_str());
    Problem::new(Code::SettlementNotRecorded).detail(format!(
        "the ledger refused the settlement ({why}); the call was not served"
    ))
}

/// No complete tenant answer within [`TENANT_DEADLINE_MS`]: not served, not charged.
pub fn tenant_timeout() -> Problem {
    Problem::new(Code::TenantTimeout).detail(format!(
        "no complete answer within {TENANT_DEADLINE_MS} ms; the call was not charged"
    ))
}

/// The tenant's answer could not be buffered: not served, not charged.
pub fn paid_answer_unreadable(e: ReadError) -> Problem {
    let (code, detail) = match e {
        ReadError::TooLarge => (
            Code::TenantResponseTooLarge,
            format!("a paid answer is at most {MAX_PAID_RESPONSE_BYTES} bytes"),
        ),
        ReadError::Broken => (
            Code::TenantWorkerFailed,
            "the tenant's answer broke off".to_owned(),
        ),
    };
    Problem::new(code).detail(format!("{detail}; the call was not charged"))
}

/// An authorization's `validBefore` as the ledger records it for reconciliation. The ledger
/// keeps integers below 2^53; an authorization valid past that (any u64 passes the local
/// checks) never expires in practice, and is recorded as the latest time the ledger keeps,
/// which the chain's clock never reaches either: reconciliation treats both the same.
pub fn ledger_valid_before(valid_before_s: u64) -> i64 {
    i64::try_from(valid_before_s)
        .unwrap_or(i64::MAX)
        .min(MAX_SAFE_INTEGER)
}

/// What a retry of a payment gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// The kept answer, with this receipt.
    Answer(Settlement),
    /// A problem, with the receipt when the payment was charged.
    Refusal(Problem, Option<Settlement>),
    /// Nothing to give back: the caller's original refusal stands.
    Nothing,
}

/// The decision for a retry of payment `a`, from the ledger's [`Recovery`]: a settled
/// payment gets its kept answer (or, when the body was too large to keep or has expired, a
/// problem that says it was charged, with the receipt); a payment still in flight or whose
/// outcome the chain has not decided gets a problem that says so; a voided one nothing.
pub fn recovered(rec: &Recovery, a: &AcceptedPayment) -> Recovered {
    match rec.payment.state {
        PaymentState::Settled => {
            let settlement = Settlement {
                transaction: rec.payment.tx_ref.clone().unwrap_or_default(),
                network: rec.payment.network.unwrap_or(a.network),
                payer: a.payer,
                local: rec.payment.local_settlement.unwrap_or(false),
            };
            match &rec.answer {
                Some(kept) if kept.body_stored => Recovered::Answer(settlement),
                _ => Recovered::Refusal(
                    Problem::new(Code::PaidAnswerNotKept).detail(
                        "this payment settled and was charged; its answer was too large to keep, \
                         or has expired: the receipt is attached",
                    ),
                    Some(settlement),
                ),
            }
        }
        PaymentState::Reserved => Recovered::Refusal(
            Problem::new(Code::PaymentInFlight)
                .detail("the first call with this payment is still running; retry shortly"),
            None,
        ),
        PaymentState::Unknown => Recovered::Refusal(
            Problem::new(Code::PaymentOutcomeUnknown).detail(
                "whether this payment settled is being reconciled against the chain; retry \
                 later with the same payment",
            ),
            None,
        ),
        PaymentState::Voided => Recovered::Nothing,
    }
}

pub fn ledger_unavailable() -> Problem {
    Problem::new(Code::LedgerUnavailable)
        .detail("the payment could not be recorded; the call was not served")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_closed_without_a_facilitator_or_the_override() {
        let code = |r: Result<Verifier, Problem>| r.map_err(|p| (p.status, p.code.as_str())).err();
        assert_eq!(
            code(verifier(None, None, None)),
            Some((503, "payments_unavailable"))
        );
        for not_true in ["", "1", "yes", "TRUE", "false"] {
            assert!(verifier(None, None, Some(not_true)).is_err(), "{not_true}");
        }
        assert!(verifier(Some("  "), None, Some("no")).is_err());
        assert_eq!(verifier(None, None, Some("true")), Ok(Verifier::Local));
        for bad in [
            "ftp://f.example",
            "not a url",
            "https://f.example/?k=v",
            "/relative",
        ] {
            let p = verifier(Some(bad), None, Some("true")).unwrap_err();
            assert_eq!(p.code, "payments_unavailable");
            assert!(!p.detail.unwrap().contains(bad), "the value is not echoed");
        }
    }

    #[test]
    fn the_facilitator_wins_and_its_timeout_is_bounded() {
        assert_eq!(
            verifier(
                Some("https://x402.example/facilitator/"),
                None,
                Some("true")
            ),
            Ok(Verifier::Facilitator {
                base: "https://x402.example/facilitator".into(),
                timeout_ms: DEFAULT_FACILITATOR_TIMEOUT_MS,
            })
        );
        assert_eq!(
            verifier(Some("http://127.0.0.1:9/"), Some("250"), None),
            Ok(Verifier::Facilitator {
                base: "http://127.0.0.1:9".into(),
                timeout_ms: 250,
            })
        );
        for bad in ["0", "-1", "60001", "5s", "1.5"] {
            assert!(verifier(Some("https://f.example"), Some(bad), None).is_err());
        }
    }

    #[test]
    fn resource_urls_drop_the_query_and_stay_bounded() {
        let u = Url::parse("https://api.402claw.dev/t/weather/v1/now?city=Lisbon#x").unwrap();
        assert_eq!(resource_url(&u), "https://api.402claw.dev/t/weather/v1/now");
        let u = Url::parse("http://demo.localhost:8787/a%20b").unwrap();
        assert_eq!(resource_url(&u), "http://demo.localhost:8787/a%20b");
        let long = Url::parse(&format!("https://h.example/{}", "p".repeat(3000))).unwrap();
        assert_eq!(resource_url(&long), "https://h.example/");
    }

    #[test]
    fn ledger_refusals_pass_through_with_a_clear_detail() {
        let p = Problem::new(Code::PaymentAlreadySettled);
        let r = reserve_refusal(409, Some(p));
        assert_eq!((r.status, &*r.code), (409, "payment_already_settled"));
        assert!(r.detail.unwrap().contains("sign a new one"));
        let reused = Problem::new(Code::PaymentKeyReused);
        assert_eq!(reserve_refusal(422, Some(reused)).status, 422);
        // Anything else: the ledger is not usable, the call is not served.
        let internal = Problem::internal("boom");
        assert_eq!(
            reserve_refusal(500, Some(internal)).code,
            "ledger_unavailable"
        );
        assert_eq!(reserve_refusal(409, None).status, 503);
    }

    #[test]
    fn ledger_refusals_of_a_settlement_are_502_with_the_ledger_code() {
        let p = settle_refusal(Some(&Problem::new(Code::TransactionAlreadyRecorded)));
        assert_eq!((p.status, &*p.code), (502, "settlement_not_recorded"));
        let detail = p.detail.unwrap();
        assert!(detail.contains("transaction_already_recorded") && detail.contains("not served"));
        assert_eq!(settle_refusal(None).code, "settlement_not_recorded");
    }

    #[test]
    fn unreadable_paid_answers_are_not_charged() {
        let big = paid_answer_unreadable(ReadError::TooLarge);
        assert_eq!((big.status, &*big.code), (502, "tenant_response_too_large"));
        let broken = paid_answer_unreadable(ReadError::Broken);
        assert_eq!(broken.code, "tenant_worker_failed");
        for p in [big, broken, tenant_timeout()] {
            assert!(p.detail.unwrap().contains("not charged"));
        }
    }

    #[test]
    fn a_retry_gets_the_kept_answer_only_once_settled() {
        use crate::x402::evm::{Address, B256};
        use claw_durable::ledger::wire::RecoveredPayment;
        use claw_durable::ledger::StoredAnswer;
        use claw_durable::tenant::Network;
        let payer = Address::parse("0x857b06519E91e3A54538791bDbb0E22373e36b66").unwrap();
        let a = AcceptedPayment {
            version: crate::x402::X402Version::V2,
            network: Network::BaseSepolia,
            asset: payer,
            payer,
            pay_to: payer,
            amount_atomic: 1,
            nonce: B256([7; 32]),
            valid_before_s: 1,
            idempotency_key: "k".into(),
            fingerprint: "fp".into(),
        };
        let rec = |state, stored: Option<bool>| Recovery {
            payment: RecoveredPayment {
                state,
                tx_ref: Some("0xabc".into()),
                network: Some(Network::BaseSepolia),
                payer: Some(payer.to_lower_hex()),
                local_settlement: Some(false),
            },
            answer: stored.map(|s| StoredAnswer {
                status: 200,
                headers: vec![],
                body_bytes: 3,
                body_stored: s,
                body: vec![],
            }),
        };
        match recovered(&rec(PaymentState::Settled, Some(true)), &a) {
            Recovered::Answer(s) => assert_eq!((s.transaction.as_str(), s.local), ("0xabc", false)),
            other => panic!("{other:?}"),
        }
        for not_kept in [Some(false), None] {
            match recovered(&rec(PaymentState::Settled, not_kept), &a) {
                Recovered::Refusal(p, Some(s)) => {
                    assert_eq!((p.status, &*p.code), (410, "paid_answer_not_kept"));
                    assert_eq!(s.transaction, "0xabc", "the receipt of what was charged");
                }
                other => panic!("{other:?}"),
            }
        }
        let code = |state| match recovered(&rec(state, Some(true)), &a) {
            Recovered::Refusal(p, None) => p.code.as_str().to_owned(),
            other => format!("{other:?}"),
        };
        assert_eq!(code(PaymentState::Reserved), "payment_in_flight");
        assert_eq!(code(PaymentState::Unknown), "payment_outcome_unknown");
        assert_eq!(
            recovered(&rec(PaymentState::Voided, Some(true)), &a),
            Recovered::Nothing
        );
    }

    #[test]
    fn a_far_future_valid_before_is_recorded_within_the_ledger_range() {
        assert_eq!(ledger_valid_before(1_900_000_000), 1_900_000_000);
        assert_eq!(ledger_valid_before(u64::MAX), MAX_SAFE_INTEGER);
        assert_eq!(ledger_valid_before(1 << 60), MAX_SAFE_INTEGER);
        assert_eq!(
            ledger_valid_before(MAX_SAFE_INTEGER as u64),
            MAX_SAFE_INTEGER
        );
    }

    #[test]
    fn void_reasons_are_bounded_and_printable() {
        assert_eq!(void_reason("tenant_status", "503"), "tenant_status: 503");
        let r = void_reason("x", &"\u{0}é\n".repeat(300));
        assert!(r.len() <= 200 && r.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
    }
}
