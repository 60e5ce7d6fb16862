//! The ledger object's internal protocol (its wire): one request type per body, used by both
//! the dispatcher (`claw_edge::paywall`, `claw_edge::ledger`) and this object, so a drift fails
//! to compile. The routes are answered by [`handle`], a pure function of (method, path, query, body,
//! now) so it is tested natively; `object.rs` only moves bytes. JSON is camelCase; amounts
//! are decimal strings of atomic units; errors are problem+json with a stable `code`.
//!
//! | route | body | success |
//! |---|---|---|
//! | `POST /payments/reserve` | `{key, fingerprint, gross, network, asset, payer, nonce, validBeforeS, feeBps}` | 201 payment |
//! | `POST /payments/settle` | `{key, txRef, network, payer, localSettlement, feeBps}` | 200 payment + `replayed` |
//! | `POST /payments/void` | `{key, reason}` | 200 payment + `replayed` |
//! | `POST /payments/unknown` | `{key, reason}` | 200 payment + `replayed` (the outcome is for the chain to say) |
//! | `POST /reconcile` | | 200 report (the object asks the chain: `super::reconcile`) |
//! | `POST /payments/answer` | the answer's body; [`ANSWER_META_HEADER`]: [`StoreAnswerMeta`] | 200 `{stored}` (the first answer stands) |
//! | `POST /payments/recover` | [`RecoverRequest`] | 200, [`ANSWER_META_HEADER`]: [`Recovery`], body: the kept answer's body |
//! | `GET /payments?key=` | | 200 payment |
//! | `POST /payouts` | `{idempotencyKey, fingerprint, amount, destination}` | 201 payout + `replayed: false`, 200 on replay |
//! | `GET /payouts?after=&limit=` | | 200 `{payouts, nextCursor, hasMore}` (creation order) |
//! | `GET /payouts/{id}` | | 200 payout |
//! | `POST /payouts/{id}/post` | `{txRef}` | 200 payout + `replayed` |
//! | `POST /payouts/{id}/void` | `{reason}` | 200 payout + `replayed` |
//! | `GET /entries?after=&limit=` | | 200 `{entries, nextCursor, hasMore}` |
//! | `GET /earnings?days=` | | 200 earnings |
//!
//! 409 always means "the ledger's current state refuses this" (`payment_in_flight`,
//! `payment_already_settled`, `payment_already_voided`, `settlement_conflict`,
//! `transaction_already_recorded`, `insufficient_funds`, `payout_already_posted`,
//! `payout_already_voided`). 422 means an idempotency key came back with a different request (`payment_key_reused`,
//! `idempotency_key_reused`) or totals would overflow (`amount_overflow`). There is no
//! `idempotency_key_in_flight`: the object is single-threaded and each operation runs
//! synchronously in one atomic step after its body is read, so a second delivery always
//! sees the first one complete (a repeated payout create answers 200 with the original).

// `Problem` is the error response itself, built at most once per request on the way out;
// boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    ChainFacts, Ledger, PaymentState, Settlement, StoredAnswer, DEFAULT_DAYS, DEFAULT_PAGE,
    MAX_DAYS, MAX_PAGE,
};
use crate::problem::{Code, Problem};
use crate::store::{SqlStore, MAX_SAFE_INTEGER};
use crate::tenant::{parse_atomic_amount, Network};

/// Request bodies are small JSON objects; anything larger is refused unread.
pub const MAX_BODY_BYTES: usize = 4_096;

/// `POST /payments/reserve`: the payment, and what the chain needs to decide it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReserveRequest {
    pub key: String,
    pub fingerprint: String,
    /// Atomic units, decimal.
    pub gross: String,
    pub network: Network,
    pub asset: String,
    pub payer: String,
    /// The EIP-3009 nonce, `0x` + 64 hex.
    pub nonce: String,
    /// The authorization's `validBefore`, unix seconds.
    pub valid_before_s: i64,
    /// The tenant plan's fee, for a settlement booked by reconciliation.
    pub fee_bps: u32,
    /// The client's payment-identifier id, bound to this payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
}

/// `POST /payments/settle`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettleRequest {
    pub key: String,
    pub tx_ref: String,
    pub network: Network,
    pub payer: String,
    pub local_settlement: bool,
    pub fee_bps: u32,
}

/// The header that carries an answer's metadata next to its raw body (`/payments/answer`,
/// `/payments/recover`).
pub const ANSWER_META_HEADER: &str = "x-claw-answer";

/// `POST /payments/answer`'s metadata (the body is the answer's body, when kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreAnswerMeta {
    pub key: String,
    pub fingerprint: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body_bytes: u64,
    pub body_stored: bool,
}

/// `POST /payments/recover`: a retry of this payment, named by its key or by the client's
/// payment id (the payment-identifier extension). With an id unknown to the ledger: 404; an
/// id bound to another payment: 409 `payment_identifier_reused`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecoverRequest {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub payment_id: Option<String>,
    pub fingerprint: String,
}

/// What a retry needs of its payment: its state and, once settled, its receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveredPayment {
    pub state: PaymentState,
    pub tx_ref: Option<String>,
    pub network: Option<Network>,
    pub payer: Option<String>,
    pub local_settlement: Option<bool>,
}

/// `POST /payments/recover`'s answer (its body is the kept answer's body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    pub payment: RecoveredPayment,
    pub answer: Option<StoredAnswer>,
}

impl Recovery {
    pub fn of(p: &super::Payment, answer: Option<StoredAnswer>) -> Recovery {
        Recovery {
            payment: RecoveredPayment {
                state: p.state,
                tx_ref: p.tx_ref.clone(),
                network: p.network,
                payer: p.payer.clone(),
                local_settlement: p.local_settlement,
            },
            answer,
        }
    }
}

/// `POST /payments/void` and `POST /payments/unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VoidRequest {
    pub key: String,
    pub reason: String,
}

/// `POST /payouts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PayoutRequest {
    pub idempotency_key: String,
    /// Hex SHA-256 of the platform API request body that asked for the payout.
    pub fingerprint: String,
    /// Atomic units, decimal.
    pub amount: String,
    pub destination: String,
}

/// `POST /payouts/{id}/post`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostPayoutRequest {
    pub tx_ref: String,
}

/// `POST /payouts/{id}/void`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VoidPayoutRequest {
    pub reason: String,
}

pub fn body_too_large() -> Problem {
    Problem::new(Code::BodyTooLarge).detail(format!("at most {MAX_BODY_BYTES} bytes"))
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    if body.len() > MAX_BODY_BYTES {
        return Err(body_too_large());
    }
    let invalid = |detail: String, path: Option<String>| {
        let p = Problem::new(Code::InvalidBody).detail(detail);
        match path {
            Some(f) if f != "." => p.field(f),
            _ => p,
        }
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| invalid(e.inner().to_string(), Some(e.path().to_string())))?;
    de.end().map_err(|e| invalid(e.to_string(), None))?;
    Ok(value)
}

fn amount(field: &str, s: &str) -> Result<u128, Problem> {
    parse_atomic_amount(s).map_err(|e| Problem::invalid_field(field, e))
}

fn invalid_query(field: &str, detail: String) -> Problem {
    Problem::new(Code::InvalidQuery).field(field).detail(detail)
}

/// The last value of query parameter `name`, parsed as an integer in `range`.
fn query_int<T>(
    query: &[(String, String)],
    name: &str,
    range: std::ops::RangeInclusive<T>,
    default: T,
) -> Result<T, Problem>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some((_, raw)) = query.iter().rev().find(|(k, _)| k == name) else {
        return Ok(default);
    };
    raw.parse::<T>()
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| {
            invalid_query(
                name,
                format!("{name} must be {} to {}", range.start(), range.end()),
            )
        })
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn route_not_found() -> Problem {
    Problem::new(Code::RouteNotFound)
}

/// Answers one internal request: `(status, JSON)` or a problem.
pub fn handle<S: SqlStore>(
    store: &mut S,
    method: &str,
    segments: &[&str],
    query: &[(String, String)],
    body: &[u8],
    now_ms: i64,
) -> Result<(u16, Value), Problem> {
    let mut ledger = Ledger::open(store)?;
    match (method, segments) {
        ("POST", ["payments", "reserve"]) => {
            let b: ReserveRequest = parse_body(body)?;
            let gross = amount("gross", &b.gross)?;
            let facts = ChainFacts {
                network: b.network,
                asset: &b.asset,
                payer: &b.payer,
                nonce: &b.nonce,
                valid_before_s: b.valid_before_s,
                fee_bps: b.fee_bps,
            };
            let id = b.payment_id.as_deref();
            let p = ledger.reserve_identified(
                &b.key,
                &b.fingerprint,
                gross,
                Some(&facts),
                id,
                now_ms,
            )?;
            Ok((201, to_value(&p)))
        }
        ("POST", ["payments", "settle"]) => {
            let b: SettleRequest = parse_body(body)?;
            let settlement = Settlement {
                tx_ref: &b.tx_ref,
                network: b.network,
                payer: &b.payer,
                local_settlement: b.local_settlement,
                fee_bps: b.fee_bps,
                reason: None,
            };
            let applied = ledger.settle(&b.key, &settlement, now_ms)?;
            Ok((200, to_value(&applied)))
        }
        ("POST", ["payments", "void"]) => {
            let b: VoidRequest = parse_body(body)?;
            Ok((200, to_value(&ledger.void(&b.key, &b.reason, now_ms)?)))
        }
        ("POST", ["payments", "unknown"]) => {
            let b: VoidRequest = parse_body(body)?;
            let applied = ledger.mark_unknown(&b.key, &b.reason, now_ms)?;
            Ok((200, to_value(&applied)))
        }
        ("GET", ["payments"]) => {
            let key = query
                .iter()
                .rev()
                .find(|(k, _)| k == "key")
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| invalid_query("key", "key is required".into()))?;
            let p = ledger
                .payment(key)?
                .ok_or_else(|| super::LedgerError::PaymentNotFound(key.to_owned()))?;
            Ok((200, to_value(&p)))
        }
        ("POST", ["payouts"]) => {
            let b: PayoutRequest = parse_body(body)?;
            let amt = amount("amount", &b.amount)?;
            let applied = ledger.create_payout(
                &b.idempotency_key,
                &b.fingerprint,
                amt,
                &b.destination,
                now_ms,
            )?;
            let status = if applied.replayed { 200 } else { 201 };
            Ok((status, to_value(&applied)))
        }
        ("GET", ["payouts"]) => {
            let after = query_int(query, "after", 0..=MAX_SAFE_INTEGER, 0)?;
            let limit = query_int(query, "limit", 1..=MAX_PAGE, DEFAULT_PAGE)?;
            Ok((200, to_value(&ledger.payouts(after, limit)?)))
        }
        ("GET", ["payouts", id]) => {
            let p = ledger
                .payout(id)?
                .ok_or_else(|| super::LedgerError::PayoutNotFound((*id).to_owned()))?;
            Ok((200, to_value(&p)))
        }
        ("POST", ["payouts", id, "post"]) => {
            let b: PostPayoutRequest = parse_body(body)?;
            Ok((200, to_value(&ledger.post_payout(id, &b.tx_ref, now_ms)?)))
        }
        ("POST", ["payouts", id, "void"]) => {
            let b: VoidPayoutRequest = parse_body(body)?;
            Ok((200, to_value(&ledger.void_payout(id, &b.reason, now_ms)?)))
        }
        ("GET", ["entries"]) => {
            let after = query_int(query, "after", 0..=MAX_SAFE_INTEGER, 0)?;
            let limit = query_int(query, "limit", 1..=MAX_PAGE, DEFAULT_PAGE)?;
            Ok((200, to_value(&ledger.entries(after, limit)?)))
        }
        ("GET", ["earnings"]) => {
            let days = query_int(query, "days", 1..=MAX_DAYS, DEFAULT_DAYS)?;
            Ok((200, to_value(&ledger.earnings(days)?)))
        }
        _ => Err(route_not_found()),
    }
}
