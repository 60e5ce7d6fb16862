//! One usage event: its stage, its classification for trending and billing, the hashes that
//! stand in for callers and payers, and its validation.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    MAX_ERROR_CODE_LEN, MAX_ID_LEN, MAX_ROUTE_LEN, MAX_SETTLEMENT_RESULT_LEN, MAX_WORKER_NAME_LEN,
};
use crate::store::MAX_SAFE_INTEGER;
use crate::tenant::{parse_atomic_amount, validate_slug};
use crate::trending::MAX_CLOCK_SKEW_MS;

/// Where a call attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Answered 402 with payment requirements.
    Challenged,
    /// Answered 429.
    RateLimited,
    /// A payment was presented and failed verification.
    VerifyFailed,
    /// Dispatched and answered below 400 without a payment being settled.
    Served,
    /// Dispatched, answered below 400, payment settled.
    Settled,
    /// Dispatched, but settlement failed: the caller got 402, not the body.
    SettlementFailed,
    /// Anything else that went wrong (tenant error, upstream failure, internal error).
    Error,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Challenged,
        Stage::RateLimited,
        Stage::VerifyFailed,
        Stage::Served,
        Stage::Settled,
        Stage::SettlementFailed,
        Stage::Error,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Challenged => "challenged",
            Stage::RateLimited => "rate_limited",
            Stage::VerifyFailed => "verify_failed",
            Stage::Served => "served",
            Stage::Settled => "settled",
            Stage::SettlementFailed => "settlement_failed",
            Stage::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// `(countable, billable)` for a call that ended at `stage`. Countable (for trending): a
/// settled paid call, or a served call of a free tenant. Billable: a settled paid call.
/// Challenges, rate limits and failures are recorded but never either.
pub fn classify(stage: Stage, is_free_tenant: bool) -> (bool, bool) {
    match (stage, is_free_tenant) {
        (Stage::Settled, false) => (true, true),
        (Stage::Served, true) => (true, false),
        _ => (false, false),
    }
}

/// SHA-256 hex of `salt || 0x00 || raw_id`. The salt is a platform secret (at least 16
/// bytes), so hashes cannot be reversed by hashing every IPv4 address. Prefix `raw_id` with
/// its kind (`ip:`, `key:`) so different kinds never collide.
pub fn hash_caller(salt: &[u8], raw_id: &str) -> String {
    debug_assert!(salt.len() >= 16, "the caller salt must be a real secret");
    let mut h = Sha256::new();
    h.update(salt);
    h.update([0u8]);
    h.update(raw_id.as_bytes());
    format!("{:x}", h.finalize())
}

/// [`hash_caller`] of `payer:<address lowercased>`, so checksummed and lowercase spellings
/// of one address hash alike.
pub fn hash_payer(salt: &[u8], address: &str) -> String {
    hash_caller(salt, &format!("payer:{}", address.to_ascii_lowercase()))
}

/// One call attempt, as the dispatcher reports it and the feed returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageEvent {
    /// Made by the dispatcher, unique per call attempt: the idempotency key.
    pub id: String,
    pub time_ms: i64,
    pub tenant: String,
    /// The user Worker's script name (absent for proxy tenants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_name: Option<String>,
    /// The request path (never the query string: it may carry secrets).
    pub route: String,
    /// [`hash_caller`] of the caller's IP or API key.
    pub caller_hash: String,
    pub stage: Stage,
    pub payment_required: bool,
    pub payment_success: bool,
    /// The settlement transaction, or the facilitator's failure reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement_result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_atomic: Option<String>,
    pub status_code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    pub latency_ms: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subrequests: Option<u32>,
    /// [`hash_payer`] of the paying address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_hash: Option<String>,
    /// The payer is the tenant's own payTo: recorded, never counted for trending.
    #[serde(default)]
    pub self_dealing: bool,
    /// Must equal [`classify`]`(stage, !payment_required)`.
    pub countable: bool,
    pub billable: bool,
}

/// Why one event was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInvalid {
    pub field: &'static str,
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> EventInvalid {
    EventInvalid {
        field,
        reason: reason.into(),
    }
}

fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_code(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

impl UsageEvent {
    /// Sets `countable` and `billable` from the stage and whether payment was required.
    pub fn classified(mut self) -> Self {
        (self.countable, self.billable) = classify(self.stage, !self.payment_required);
        self
    }

    /// Whether trending counts this call.
    pub fn counts_for_trending(&self) -> bool {
        self.countable && !self.self_dealing
    }

    /// Who trending counts the call for: the payer, else (free calls) the caller.
    pub fn trend_identity(&self) -> &str {
        self.payer_hash.as_deref().unwrap_or(&self.caller_hash)
    }

    /// Checks bounds, formats and lifecycle consistency.
    pub fn validate(&self, now_ms: i64) -> Result<(), EventInvalid> {
        if !is_code(&self.id, MAX_ID_LEN) {
            return Err(bad(
                "id",
                format!("must be 1 to {MAX_ID_LEN} characters of A-Z a-z 0-9 _ . : -"),
            ));
        }
        if !(0..=MAX_SAFE_INTEGER).contains(&self.time_ms) {
            return Err(bad("timeMs", "out of range"));
        }
        if self.time_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(bad("timeMs", "is in the future"));
        }
        validate_slug(&self.tenant).map_err(|e| bad("tenant", e))?;
        if let Some(w) = &self.worker_name {
            let ok = (1..=MAX_WORKER_NAME_LEN).contains(&w.len())
                && w.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                return Err(bad("workerName", "must be a Worker script name"));
            }
        }
        let route = self.route.as_bytes();
        if !(1..=MAX_ROUTE_LEN).contains(&route.len())
            || route.first() != Some(&b'/')
            || !route
                .iter()
                .all(|b| b.is_ascii_graphic() && *b != b'?' && *b != b'#')
        {
            return Err(bad(
                "route",
                format!("must be a path of 1 to {MAX_ROUTE_LEN} visible ASCII characters starting with '/', without query or fragment"),
            ));
        }
        if !is_hash(&self.caller_hash) {
            return Err(bad("callerHash", "must be 64 lowercase hex digits"));
        }
        if let Some(p) = &self.payer_hash {
            if !is_hash(p) {
                return Err(bad("payerHash", "must be 64 lowercase hex digits"));
            }
        }
        if let Some(s) = &self.settlement_result {
            let ok = (1..=MAX_SETTLEMENT_RESULT_LEN).contains(&s.len())
                && s.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
            if !ok {
                return Err(bad(
                    "settlementResult",
                    format!("must be 1 to {MAX_SETTLEMENT_RESULT_LEN} printable ASCII characters"),
                ));
            }
        }
        let amount = match &self.amount_atomic {
            Some(a) => Some(parse_atomic_amount(a).map_err(|e| bad("amountAtomic", e))?),
            None => None,
        };
        if !(100..=599).contains(&self.status_code) {
            return Err(bad("statusCode", "must be 100 to 599"));
        }
        if let Some(c) = &self.error_code {
            if !is_code(c, MAX_ERROR_CODE_LEN) {
                return Err(bad(
                    "errorCode",
                    format!("must be 1 to {MAX_ERROR_CODE_LEN} characters of A-Z a-z 0-9 _ . : -"),
                ));
            }
        }
        self.validate_lifecycle(amount)
    }

    fn validate_lifecycle(&self, amount: Option<u128>) -> Result<(), EventInvalid> {
        let stage = self.stage.as_str();
        if self.payment_success != (self.stage == Stage::Settled) {
            return Err(bad("paymentSuccess", "is true exactly for settled calls"));
        }
        match self.stage {
            Stage::Settled => {
                if !self.payment_required {
                    return Err(bad("paymentRequired", "a settled call required payment"));
                }
                if self.payer_hash.is_none() {
                    return Err(bad("payerHash", "required for settled calls"));
                }
                if amount.is_none_or(|a| a == 0) {
                    return Err(bad(
                        "amountAtomic",
                        "a positive amount is required for settled calls",
                    ));
                }
                if self.settlement_result.is_none() {
                    return Err(bad(
                        "settlementResult",
                        "the transaction is required for settled calls",
                    ));
                }
            }
            Stage::Challenged | Stage::VerifyFailed | Stage::SettlementFailed => {
                if !self.payment_required {
                    return Err(bad("paymentRequired", format!("must be true for {stage}")));
                }
            }
            Stage::RateLimited | Stage::Served | Stage::Error => {}
        }
        let status_ok = match self.stage {
            Stage::Challenged => self.status_code == 402,
            Stage::RateLimited => self.status_code == 429,
            Stage::Served | Stage::Settled => self.status_code < 400,
            _ => true,
        };
        if !status_ok {
            return Err(bad(
                "statusCode",
                format!("{} does not fit stage {stage}", self.status_code),
            ));
        }
        if self.self_dealing && self.payer_hash.is_none() {
            return Err(bad("selfDealing", "needs payerHash"));
        }
        if (self.countable, self.billable) != classify(self.stage, !self.payment_required) {
            return Err(bad(
                "countable",
                "countable and billable must equal classify(stage, !paymentRequired)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::fixtures::*;
    use crate::events::StoredEvent;

    #[test]
    fn classify_counts_only_settled_paid_and_served_free_calls() {
        for stage in Stage::ALL {
            for free in [false, true] {
                let expected = match (stage, free) {
                    (Stage::Settled, false) => (true, true),
                    (Stage::Served, true) => (true, false),
                    _ => (false, false),
                };
                assert_eq!(classify(stage, free), expected, "{stage:?} free={free}");
            }
        }
    }

    #[test]
    fn stage_names_round_trip() {
        for stage in Stage::ALL {
            assert_eq!(Stage::parse(stage.as_str()), Some(stage));
            let json = serde_json::to_string(&stage).unwrap();
            assert_eq!(json, format!("\"{}\"", stage.as_str()));
        }
        assert_eq!(Stage::parse("settled "), None);
    }

    #[test]
    fn caller_hash_is_salted_sha256_hex() {
        assert_eq!(
            hash_caller(b"0123456789abcdef", "ip:203.0.113.7"),
            "3e055dcf97e9fe6c9b4874e3504eb5fb96cf3750eaebcb50dc40c0baa7f81837"
        );
        assert_ne!(
            hash_caller(b"0123456789abcdef", "ip:203.0.113.7"),
            hash_caller(b"0123456789abcdeF", "ip:203.0.113.7")
        );
        let addr = "0xAbCdEf0123456789aBcDeF0123456789AbCdEf01";
        assert_eq!(
            hash_payer(SALT, addr),
            hash_payer(SALT, &addr.to_lowercase())
        );
        assert_eq!(
            hash_payer(SALT, addr),
            hash_caller(SALT, &format!("payer:{}", addr.to_lowercase()))
        );
    }

    #[test]
    fn fixtures_are_valid() {
        for stage in Stage::ALL {
            let e = event("e1", "demo", NOW, stage, false, 1, Some(1), 10, false);
            assert_eq!(e.validate(NOW), Ok(()), "{stage:?}");
        }
        for stage in [Stage::Served, Stage::RateLimited, Stage::Error] {
            let e = event("e1", "demo", NOW, stage, true, 1, None, 0, false);
            assert_eq!(e.validate(NOW), Ok(()), "{stage:?} free");
        }
    }

    #[test]
    fn validation_names_the_offending_field() {
        let base = settled("e1", "demo", NOW, 1, 10);
        type Mutation = fn(&mut UsageEvent);
        let cases: Vec<(&str, Mutation)> = vec![
            ("id", |e| e.id = String::new()),
            ("id", |e| e.id = "x".repeat(MAX_ID_LEN + 1)),
            ("id", |e| e.id = "a b".into()),
            ("timeMs", |e| e.time_ms = -1),
            ("timeMs", |e| e.time_ms = NOW + MAX_CLOCK_SKEW_MS + 1),
            ("tenant", |e| e.tenant = "Demo".into()),
            ("workerName", |e| e.worker_name = Some("W!".into())),
            ("route", |e| e.route = "v1".into()),
            ("route", |e| e.route = "/v1?key=secret".into()),
            ("route", |e| e.route = "/a\nb".into()),
            ("route", |e| {
                e.route = format!("/{}", "a".repeat(MAX_ROUTE_LEN))
            }),
            ("callerHash", |e| e.caller_hash = "203.0.113.7".into()),
            ("callerHash", |e| {
                e.caller_hash = e.caller_hash.to_uppercase()
            }),
            ("payerHash", |e| e.payer_hash = Some("0xabc".into())),
            ("settlementResult", |e| {
                e.settlement_result = Some("x".repeat(129))
            }),
            ("settlementResult", |e| e.settlement_result = None),
            ("amountAtomic", |e| e.amount_atomic = Some("1.5".into())),
            ("amountAtomic", |e| e.amount_atomic = Some("0".into())),
            ("amountAtomic", |e| e.amount_atomic = None),
            ("statusCode", |e| e.status_code = 99),
            ("statusCode", |e| e.status_code = 500),
            ("errorCode", |e| e.error_code = Some("bad code".into())),
            ("paymentSuccess", |e| e.payment_success = false),
            ("paymentRequired", |e| e.payment_required = false),
            ("payerHash", |e| e.payer_hash = None),
            ("countable", |e| e.countable = false),
            ("countable", |e| e.billable = false),
        ];
        for (field, mutate) in cases {
            let mut e = base.clone();
            mutate(&mut e);
            let err = e.validate(NOW).expect_err(field);
            assert_eq!(err.field, field, "{e:?}");
        }
        // Rules that depend on the stage, each broken from a valid event of that stage.
        let staged =
            |stage, free, amount| event("c", "demo", NOW, stage, free, 1, None, amount, false);
        let stage_cases: Vec<(UsageEvent, &str, Mutation)> = vec![
            (staged(Stage::Challenged, false, 10), "statusCode", |e| {
                e.status_code = 200
            }),
            (staged(Stage::RateLimited, false, 10), "statusCode", |e| {
                e.status_code = 402
            }),
            (
                staged(Stage::Challenged, false, 1),
                "paymentRequired",
                |e| e.payment_required = false,
            ),
            (staged(Stage::Served, true, 0), "selfDealing", |e| {
                e.self_dealing = true
            }),
        ];
        for (mut e, field, mutate) in stage_cases {
            mutate(&mut e);
            assert_eq!(e.validate(NOW).unwrap_err().field, field, "{e:?}");
        }
    }

    #[test]
    fn wire_shape_is_camel_case_and_strict() {
        let e = settled("e1", "demo", NOW, 7, 1000);
        let v = serde_json::to_value(&e).unwrap();
        for key in [
            "id",
            "timeMs",
            "tenant",
            "workerName",
            "route",
            "callerHash",
            "stage",
            "paymentRequired",
            "paymentSuccess",
            "settlementResult",
            "amountAtomic",
            "statusCode",
            "latencyMs",
            "subrequests",
            "payerHash",
            "selfDealing",
            "countable",
            "billable",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        let mut with_ip = v.clone();
        with_ip["ip"] = serde_json::json!("203.0.113.7");
        assert!(serde_json::from_value::<UsageEvent>(with_ip).is_err());
        let stored = StoredEvent { seq: 3, event: e };
        let sv = serde_json::to_value(&stored).unwrap();
        assert_eq!(sv["seq"], 3);
        assert_eq!(sv["stage"], "settled");
    }
}
