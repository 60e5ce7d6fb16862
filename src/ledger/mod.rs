//! The ledger room, the dispatcher's side: the rules of the platform's ledger API (the
//! internal ledger request each route becomes, the sum of earnings across tenants), the
//! ledger object's client (`edge`) and the routes' glue (`api`). The routes and their tokens
//! are rows of `crate::platform::ROUTES`; the object and its wire are
//! `claw_durable::ledger`.
//!
//! Payout job (`PLATFORM_PAYOUT_TOKEN`), under `/__platform/ledger/{slug}`:
//! `GET entries?after=&limit=`, `GET earnings?days=`, `POST payouts` (header
//! `Idempotency-Key` required; body `{amount, destination}`), `GET payouts/{id}`,
//! `POST payouts/{id}/post` (`{txRef}`), `POST payouts/{id}/void` (`{reason}`).
//! Operators (`PLATFORM_OPERATOR_TOKEN`): `GET /__platform/earnings/{slug}?days=` and
//! `GET /__platform/earnings?after=&limit=&days=` (tenants in slug order, a page at a time).

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod edge;

use claw_durable::ledger::wire::PayoutRequest;
use claw_durable::problem::{Code, Problem};
use claw_durable::tenant::{parse_atomic_amount, validate_slug};
use serde::Deserialize;

use crate::http::query::{invalid_query, Query};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Longest `Idempotency-Key` accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;
/// Largest payout request body, in bytes.
pub const MAX_PAYOUT_BODY_BYTES: usize = 4_096;
/// Tenants per page of cross-tenant earnings (each costs one ledger call).
pub const MAX_EARNINGS_PAGE: u32 = 25;
pub const DEFAULT_EARNINGS_PAGE: u32 = 10;
/// Day buckets per tenant in the cross-tenant view at most (the per-tenant view allows the
/// ledger's own maximum).
pub const MAX_EARNINGS_PAGE_DAYS: u32 = 31;

/// The `Idempotency-Key` header: required, 1..=200 bytes of printable ASCII, no spaces.
pub fn idempotency_key(header: Option<&str>) -> Result<String, Problem> {
    let key = header
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            Problem::new(Code::IdempotencyKeyRequired)
                .detail("creating a payout needs an Idempotency-Key header, reused on every retry")
        })?;
    if key.len() > MAX_IDEMPOTENCY_KEY_BYTES || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::new(Code::InvalidIdempotencyKey).detail(format!(
            "1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes of printable ASCII, no spaces"
        )));
    }
    Ok(key.to_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayoutBody {
    amount: String,
    destination: String,
}

/// The ledger request for a payout creation: the body's `{amount, destination}` plus the
/// idempotency key and the request's fingerprint, the hex SHA-256 of the body bytes (so the
/// same key with any other body is a different request: 422 `idempotency_key_reused`).
pub fn payout_request(body: &[u8], key: &str) -> Result<PayoutRequest, Problem> {
    if body.len() > MAX_PAYOUT_BODY_BYTES {
        return Err(Problem::new(Code::BodyTooLarge)
            .detail(format!("at most {MAX_PAYOUT_BODY_BYTES} bytes")));
    }
    let req: PayoutBody = serde_json::from_slice(body).map_err(|e| {
        Problem::new(Code::InvalidBody).detail(format!(
            "expected {{\"amount\": \"<atomic units>\", \"destination\": \"0x...\"}}: {e}"
        ))
    })?;
    Ok(PayoutRequest {
        idempotency_key: key.to_owned(),
        fingerprint: hex::encode(Sha256::digest(body)),
        amount: req.amount,
        destination: req.destination,
    })
}

/// `limit` (1..=25, default 10), `after` (a slug cursor) and `days` (1..=31, default 7) of
/// the cross-tenant earnings page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarningsPageQuery {
    pub after: Option<String>,
    pub limit: u32,
    pub days: u32,
}

pub fn earnings_page_query(query: Option<&str>) -> Result<EarningsPageQuery, Problem> {
    let q = Query::parse(query);
    let after = match q.last("after").filter(|a| !a.is_empty()) {
        None => None,
        Some(a) if validate_slug(a).is_ok() => Some(a.to_owned()),
        Some(_) => {
            return Err(invalid_query(
                "after",
                "after must be a tenant slug (a nextCursor)",
            ))
        }
    };
    let limit_detail = format!("limit must be 1 to {MAX_EARNINGS_PAGE}");
    let days_detail = format!("days must be 1 to {MAX_EARNINGS_PAGE_DAYS}");
    Ok(EarningsPageQuery {
        after,
        limit: q
            .int("limit", 1..=MAX_EARNINGS_PAGE, &limit_detail)?
            .unwrap_or(DEFAULT_EARNINGS_PAGE),
        days: q
            .int("days", 1..=MAX_EARNINGS_PAGE_DAYS, &days_detail)?
            .unwrap_or(7),
    })
}

/// Amount fields of a ledger earnings answer summed across tenants.
pub const SUMMED_FIELDS: &[&str] = &[
    "gross",
    "fees",
    "net",
    "localNet",
    "pending",
    "unknown",
    "paidOut",
    "payoutsPending",
    "available",
];

/// Sums [`SUMMED_FIELDS`] of several earnings answers, exactly (u128, checked): decimal
/// strings in, decimal strings out. A malformed answer is an error, never a guess.
pub fn sum_earnings<'a>(answers: impl IntoIterator<Item = &'a Value>) -> Result<Value, String> {
    let mut totals = vec![0u128; SUMMED_FIELDS.len()];
    for a in answers {
        for (i, field) in SUMMED_FIELDS.iter().enumerate() {
            let text = a
                .get(field)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("earnings answer without {field}"))?;
            let v = parse_atomic_amount(text).map_err(|e| format!("{field}: {e}"))?;
            totals[i] = totals[i]
                .checked_add(v)
                .ok_or_else(|| format!("{field} total overflows"))?;
        }
    }
    let mut out = serde_json::Map::new();
    for (field, total) in SUMMED_FIELDS.iter().zip(totals) {
        out.insert((*field).to_owned(), Value::String(total.to_string()));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn idempotency_keys_are_required_and_bounded() {
        assert_eq!(
            idempotency_key(None).unwrap_err().code,
            "idempotency_key_required"
        );
        assert_eq!(
            idempotency_key(Some("  ")).unwrap_err().code,
            "idempotency_key_required"
        );
        assert_eq!(idempotency_key(Some(" k-1 ")).unwrap(), "k-1");
        assert_eq!(
            idempotency_key(Some("a b")).unwrap_err().code,
            "invalid_idempotency_key"
        );
        let long = "k".repeat(MAX_IDEMPOTENCY_KEY_BYTES + 1);
        assert!(idempotency_key(Some(&long)).is_err());
    }

    #[test]
    fn payout_requests_are_fingerprinted_by_their_body() {
        let body =
            br#"{"amount":"900","destination":"0x1111111111111111111111111111111111111111"}"#;
        let v = payout_request(body, "job-1").unwrap();
        assert_eq!(v.idempotency_key, "job-1");
        assert_eq!(v.amount, "900");
        assert_eq!(
            v.fingerprint,
            hex::encode(Sha256::digest(body)),
            "sha-256 of the body bytes"
        );
        let other =
            br#"{"amount":"901","destination":"0x1111111111111111111111111111111111111111"}"#;
        assert_ne!(
            payout_request(other, "job-1").unwrap().fingerprint,
            v.fingerprint
        );
        assert_eq!(
            payout_request(b"{\"amount\":\"1\"}", "k").unwrap_err().code,
            "invalid_body"
        );
        assert_eq!(
            payout_request(br#"{"amount":"1","destination":"0x1","extra":1}"#, "k")
                .unwrap_err()
                .code,
            "invalid_body"
        );
        let big = vec![b' '; MAX_PAYOUT_BODY_BYTES + 1];
        assert_eq!(payout_request(&big, "k").unwrap_err().status, 413);
    }

    #[test]
    fn earnings_page_queries() {
        assert_eq!(
            earnings_page_query(None).unwrap(),
            EarningsPageQuery {
                after: None,
                limit: DEFAULT_EARNINGS_PAGE,
                days: 7
            }
        );
        let q = earnings_page_query(Some("after=acme&limit=25&days=31")).unwrap();
        assert_eq!(
            (q.after.as_deref(), q.limit, q.days),
            (Some("acme"), 25, 31)
        );
        for bad in ["limit=0", "limit=26", "days=32", "after=BAD", "limit=x"] {
            assert_eq!(
                earnings_page_query(Some(bad)).unwrap_err().code,
                "invalid_query",
                "{bad}"
            );
        }
    }

    #[test]
    fn earnings_sum_exactly() {
        let a = json!({"gross":"340282366920938463463374607431768211000","fees":"1","net":"2",
            "localNet":"0","pending":"5","unknown":"7","paidOut":"0","payoutsPending":"0",
            "available":"2"});
        let b = json!({"gross":"455","fees":"3","net":"4","localNet":"4","pending":"0",
            "unknown":"1","paidOut":"1","payoutsPending":"1","available":"2"});
        let s = sum_earnings([&a, &b]).unwrap();
        assert_eq!(s["gross"], "340282366920938463463374607431768211455");
        assert_eq!(s["available"], "4");
        assert_eq!(s["localNet"], "4");
        assert_eq!(s["unknown"], "8");
        let one_more = json!({"gross":"1","fees":"0","net":"0","localNet":"0","pending":"0",
            "unknown":"0","paidOut":"0","payoutsPending":"0","available":"0"});
        assert!(sum_earnings([&a, &b, &one_more]).is_err());
        assert!(sum_earnings([&json!({"gross": 1})]).is_err());
        assert_eq!(sum_earnings([]).unwrap()["net"], "0");
    }
}
