//! Usage events of tenant calls, as pure rules: what one call attempt records while it
//! proceeds ([`CallRecord`]), and the [`UsageEvent`] it becomes when its answer is known
//! ([`CallRecord::finish`]). The Worker glue (`edge/usage.rs`) fills the record from the
//! request, the limiter, the paywall and the answer, then posts the event to the tenant's
//! `UsageEvents` object off the response path.
//!
//! # Stages
//!
//! The stage follows what the call went through, checked against the status it ended with:
//!
//! | marks (set by the steps) | final status | stage |
//! |---|---|---|
//! | [`CallRecord::rate_limited`] | 429 | `rate_limited` |
//! | [`CallRecord::challenged`] (no payment presented) | 402 | `challenged` |
//! | [`CallRecord::verify_failed`] (a payment was refused before dispatch) | any | `verify_failed` |
//! | [`CallRecord::settlement_failed`] (dispatched; settling failed) | any | `settlement_failed` |
//! | [`CallRecord::settled`] with payer and amount | < 400 | `settled` |
//! | none | < 400 | `served` |
//! | anything else | any | `error` |
//!
//! So a call the platform failed (a problem such as `tenant_worker_failed`, 5xx) is `error`
//! with the problem's code, and so is a tenant's own answer of 400 or more (code
//! [`TENANT_STATUS_CODE`]): it was not served, the paywall does not settle it, and counting
//! it would let anyone push a free tenant up the ranking with requests that fail. Payment
//! stages exist only for paid tenants. Whatever the marks, the event is valid for the events
//! core (`UsageEvent::validate`), a property the tests check over any mark sequence.
//!
//! # Privacy
//!
//! The raw caller key (IP, API key hash, claimed payer) and the payer address stay in the
//! record; the event carries only their salted hashes ([`hash_caller`], [`hash_payer`]). The
//! route is the path remainder without the query string, which may carry secrets.

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod edge;

use claw_durable::events::{
    hash_caller, hash_payer, Stage, UsageEvent, MAX_ERROR_CODE_LEN, MAX_ID_LEN, MAX_ROUTE_LEN,
    MAX_SETTLEMENT_RESULT_LEN, MAX_WORKER_NAME_LEN,
};
use claw_durable::tenant::{parse_evm_address, TenantConfig};
use sha2::{Digest, Sha256};

/// Events per object request in the queue consumer: well within the object's 500 events
/// and 1 MiB per batch (an event is at most about 1.4 KB of JSON).
pub const BATCH: usize = 200;
/// The largest event's JSON, bounded by its longest fields (id, tenant, worker name, route,
/// settlement result, error code, two 64-hex hashes) plus generous room for the rest.
const MAX_EVENT_JSON_BYTES: usize = MAX_ID_LEN
    + 63
    + MAX_WORKER_NAME_LEN
    + MAX_ROUTE_LEN
    + MAX_SETTLEMENT_RESULT_LEN
    + MAX_ERROR_CODE_LEN
    + 2 * 64
    + 512;
// A batch never exceeds what the events object accepts in one request.
const _: () = assert!(BATCH <= claw_durable::events::MAX_BATCH);
const _: () = assert!(BATCH * MAX_EVENT_JSON_BYTES <= claw_durable::events::MAX_BATCH_BYTES);

pub mod query;

/// A queue message carries many events (a JSON array of them): the local queue keeps a timer
/// per message and Cloudflare Queues bills per 64 KB operation, so one message per event
/// would cost a timer (locally) and an operation (in production) per call. At most this
/// many bytes of events per message: one 64 KB operation.
pub const MESSAGE_BYTES: usize = 64 * 1024 - 64;
/// Messages per `sendBatch` at most, and their bytes (Queues' limits: 100 and 256 KB).
pub const SEND_BATCH_MESSAGES: usize = 100;
pub const SEND_BATCH_BYTES: usize = 256 * 1024 - 1024;
// Any one event fits a message; any one message fits a sendBatch and Queues' 128 KB per message.
const _: () = assert!(MAX_EVENT_JSON_BYTES + 2 <= MESSAGE_BYTES);
const _: () = assert!(MESSAGE_BYTES <= SEND_BATCH_BYTES && MESSAGE_BYTES <= 128 * 1024);

/// Packs event JSONs, in order, into queue message bodies (JSON arrays) of at most
/// [`MESSAGE_BYTES`] each.
pub fn pack_events(events: &[String]) -> Vec<String> {
    let mut messages = Vec::new();
    let mut current = String::new();
    for event in events {
        if !current.is_empty() && current.len() + 1 + event.len() + 1 > MESSAGE_BYTES {
            current.push(']');
            messages.push(std::mem::take(&mut current));
        }
        current.push(if current.is_empty() { '[' } else { ',' });
        current.push_str(event);
    }
    if !current.is_empty() {
        current.push(']');
        messages.push(current);
    }
    messages
}

/// Splits message bodies, in order, into `sendBatch` calls within Queues' limits.
pub fn send_batches(messages: &[String]) -> Vec<&[String]> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        if i > start && (i - start == SEND_BATCH_MESSAGES || bytes + m.len() > SEND_BATCH_BYTES) {
            batches.push(&messages[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += m.len();
    }
    if start < messages.len() {
        batches.push(&messages[start..]);
    }
    batches
}

/// The events a queue message carries: a JSON array of events (what [`pack_events`] makes),
/// or one event (a message sent one event at a time). `None`: not events.
pub fn unpack_events(body: &str) -> Option<Vec<UsageEvent>> {
    if body.trim_start().starts_with('[') {
        serde_json::from_str(body).ok()
    } else {
        serde_json::from_str(body).ok().map(|e| vec![e])
    }
}

/// The error code of a call the tenant answered with a status of 400 or more.
pub const TENANT_STATUS_CODE: &str = "tenant_status";

/// The shortest salt accepted from `USAGE_SALT` (bytes).
pub const MIN_SALT_LEN: usize = 16;

/// Domain separation of the fallback salt derived from the admin token.
const DERIVED_SALT_CONTEXT: &[u8] = b"402claw usage-event caller salt v1\0";

/// What the payment steps reported.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mark {
    None,
    RateLimited,
    Challenged,
    VerifyFailed,
    Settled { transaction: String },
    SettlementFailed { reason: String },
}

/// One call attempt, filled in as it proceeds. Build it with [`CallRecord::new`] when the
/// call starts; every step reports to it; [`CallRecord::finish`] makes the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    tenant: String,
    worker_name: Option<String>,
    route: String,
    start_ms: i64,
    payment_required: bool,
    /// The price asked (paid tenants).
    price_atomic: Option<u128>,
    /// The tenant's payTo, lowercase (paid tenants).
    pay_to: Option<String>,
    /// Raw caller key (`payer:0x..`, `key:<sha256>`, `ip:..`, `anon`): hashed on finish.
    caller_key: Option<String>,
    mark: Mark,
    /// Lowercase payer address, when a payment named one.
    payer: Option<String>,
    /// The amount of the payment presented.
    amount_atomic: Option<u128>,
    error_code: Option<String>,
    subrequests: Option<u32>,
}

impl CallRecord {
    /// A call to `config`'s tenant starting at `start_ms`; `rest` is the path the tenant
    /// sees (query excluded).
    pub fn new(config: &TenantConfig, rest: &str, start_ms: i64) -> Self {
        let price = config.price.as_ref();
        CallRecord {
            tenant: config.slug.clone(),
            worker_name: config.script_name().as_deref().and_then(worker_name),
            route: route(rest),
            start_ms,
            payment_required: price.is_some(),
            price_atomic: price.map(|p| p.amount()).filter(|a| *a > 0),
            pay_to: price.and_then(|p| parse_evm_address(&p.pay_to).ok()),
            caller_key: None,
            mark: Mark::None,
            payer: None,
            amount_atomic: None,
            error_code: None,
            subrequests: None,
        }
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Whether the caller key is known yet (the limiter reports it when it runs).
    pub fn has_caller(&self) -> bool {
        self.caller_key.is_some()
    }

    /// The caller's key as the limiter names callers (`crate::limiter::identify`).
    pub fn caller(&mut self, key: &str) {
        self.caller_key = Some(key.to_owned());
    }

    /// The limiter refused the call (429).
    pub fn rate_limited(&mut self) {
        self.mark = Mark::RateLimited;
    }

    /// The call ended in a platform problem; its `code` is the event's error code.
    pub fn problem(&mut self, code: &str) {
        self.error_code = code_of(code);
    }

    /// The tenant's Worker made `n` subrequests (when known).
    pub fn subrequests(&mut self, n: u32) {
        self.subrequests = Some(n);
    }

    // --- The paywall's steps -------------------------------------------------------------

    /// 402 with the payment requirements: no payment was presented.
    pub fn challenged(&mut self) {
        self.mark = Mark::Challenged;
    }

    /// A payment was presented: its payer (any spelling of the address) and amount.
    /// Recorded hashed; a payer equal to the tenant's payTo marks the call self-dealing.
    pub fn payment(&mut self, payer: &str, amount_atomic: u128) {
        self.payer = parse_evm_address(payer.trim()).ok();
        self.amount_atomic = Some(amount_atomic);
    }

    /// The payment was refused before dispatch (decode, offer match, verification,
    /// reservation); `code` is the refusal's problem code.
    pub fn verify_failed(&mut self, code: &str) {
        self.mark = Mark::VerifyFailed;
        self.error_code = code_of(code);
    }

    /// Settled: `transaction` is the settlement's transaction (or local reference).
    pub fn settled(&mut self, transaction: &str) {
        self.mark = Mark::Settled {
            transaction: transaction.to_owned(),
        };
    }

    /// The tenant answered but settlement failed; `reason` is the facilitator's reason or
    /// the failure's code. The caller did not get the body.
    pub fn settlement_failed(&mut self, reason: &str) {
        self.error_code = code_of(reason);
        self.mark = Mark::SettlementFailed {
            reason: reason.to_owned(),
        };
    }

    // --- The event -----------------------------------------------------------------------

    /// The stage the call ended at, given the final status (see the module docs).
    pub fn stage(&self, status: u16) -> Stage {
        let paid = self.payment_required;
        match &self.mark {
            Mark::RateLimited if status == 429 => Stage::RateLimited,
            Mark::Challenged if paid && status == 402 => Stage::Challenged,
            Mark::VerifyFailed if paid => Stage::VerifyFailed,
            Mark::SettlementFailed { .. } if paid => Stage::SettlementFailed,
            Mark::Settled { transaction }
                if paid
                    && status < 400
                    && self.payer.is_some()
                    && self.amount().is_some_and(|a| a > 0)
                    && settlement_text(transaction).is_some() =>
            {
                Stage::Settled
            }
            Mark::None if status < 400 => Stage::Served,
            _ => Stage::Error,
        }
    }

    fn amount(&self) -> Option<u128> {
        if !self.payment_required {
            return None;
        }
        self.amount_atomic.or(self.price_atomic)
    }

    /// The event of this call, answered with `status` at `now_ms`. `id` must be unique per
    /// call (an invalid one is replaced by a digest of it); `salt` is the caller salt.
    pub fn finish(&self, id: &str, status: u16, now_ms: i64, salt: &[u8]) -> UsageEvent {
        let status = if (100..=599).contains(&status) {
            status
        } else {
            500
        };
        let stage = self.stage(status);
        let caller = self.caller_key.as_deref().unwrap_or("anon");
        let payer_hash = self.payer.as_deref().map(|p| hash_payer(salt, p));
        let self_dealing = self.payer.is_some() && self.payer == self.pay_to;
        let settlement_result = match &self.mark {
            Mark::Settled { transaction } => settlement_text(transaction),
            Mark::SettlementFailed { reason } => settlement_text(reason),
            _ => None,
        };
        let error_code = match stage {
            Stage::Served | Stage::Settled | Stage::Challenged => None,
            Stage::RateLimited => Some("rate_limited".to_owned()),
            Stage::Error => self
                .error_code
                .clone()
                .or_else(|| (status >= 400).then(|| TENANT_STATUS_CODE.to_owned())),
            Stage::VerifyFailed | Stage::SettlementFailed => self.error_code.clone(),
        };
        let amount = self.amount().filter(|a| *a > 0).map(|a| a.to_string());
        let latency = now_ms
            .saturating_sub(self.start_ms)
            .clamp(0, i64::from(u32::MAX));
        let event = UsageEvent {
            id: event_id(id),
            time_ms: self.start_ms.clamp(0, now_ms.max(0)),
            tenant: self.tenant.clone(),
            worker_name: self.worker_name.clone(),
            route: self.route.clone(),
            caller_hash: hash_caller(salt, caller),
            stage,
            payment_required: self.payment_required,
            payment_success: stage == Stage::Settled,
            settlement_result,
            amount_atomic: amount,
            status_code: status,
            error_code,
            latency_ms: u32::try_from(latency).unwrap_or(u32::MAX),
            subrequests: self.subrequests,
            payer_hash,
            self_dealing,
            countable: false,
            billable: false,
        }
        .classified();
        debug_assert_eq!(event.validate(now_ms), Ok(()), "{event:?}");
        event
    }
}

/// The route an event records: the path remainder, without query or fragment, only
/// visible ASCII (anything else, which a parsed URL path never holds, becomes `_`), at most
/// [`MAX_ROUTE_LEN`] bytes, always starting with `/`.
pub fn route(rest: &str) -> String {
    let path = rest.split(['?', '#']).next().unwrap_or("");
    let mut out = String::with_capacity(path.len().min(MAX_ROUTE_LEN) + 1);
    if !path.starts_with('/') {
        out.push('/');
    }
    for c in path.chars() {
        if out.len() >= MAX_ROUTE_LEN {
            break;
        }
        out.push(if c.is_ascii_graphic() { c } else { '_' });
    }
    out
}

fn worker_name(name: &str) -> Option<String> {
    let ok = (1..=MAX_WORKER_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    ok.then(|| name.to_owned())
}

fn is_code_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')
}

/// An error code as events store it: `A-Z a-z 0-9 _ . : -`, at most
/// [`MAX_ERROR_CODE_LEN`]; other bytes become `_`; empty is none.
fn code_of(code: &str) -> Option<String> {
    let out: String = code
        .bytes()
        .take(MAX_ERROR_CODE_LEN)
        .map(|b| if is_code_byte(b) { b as char } else { '_' })
        .collect();
    (!out.is_empty()).then_some(out)
}

/// A settlement result as events store it: printable ASCII, at most
/// [`MAX_SETTLEMENT_RESULT_LEN`]; other characters become `_`; empty is none.
fn settlement_text(s: &str) -> Option<String> {
    let out: String = s
        .trim()
        .chars()
        .take(MAX_SETTLEMENT_RESULT_LEN)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '_'
            }
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

/// `id` if it is a valid event id, else a SHA-256 hex digest of it (still unique per call).
fn event_id(id: &str) -> String {
    let valid = (1..=MAX_ID_LEN).contains(&id.len()) && id.bytes().all(is_code_byte);
    if valid {
        id.to_owned()
    } else {
        hex::encode(Sha256::digest(id.as_bytes()))
    }
}

/// Where the caller salt came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Salt {
    /// `USAGE_SALT`, at least [`MIN_SALT_LEN`] bytes.
    Configured(Vec<u8>),
    /// `USAGE_SALT` unset or too short: SHA-256 of a fixed context and the admin token, a
    /// per-deployment secret too. Hashes change if the admin token is rotated. The glue
    /// logs loudly while this is in use.
    DerivedFromAdminToken(Vec<u8>),
}

impl Salt {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Salt::Configured(b) | Salt::DerivedFromAdminToken(b) => b,
        }
    }
}

/// The caller salt from `USAGE_SALT`, else derived from `PLATFORM_ADMIN_TOKEN`; `None`
/// when neither secret exists: then no event is recorded, since hashes under a salt that
/// is not secret could be reversed by hashing every IPv4 address.
pub fn salt(usage_salt: Option<&str>, admin_token: Option<&str>) -> Option<Salt> {
    if let Some(s) = usage_salt.filter(|s| s.len() >= MIN_SALT_LEN) {
        return Some(Salt::Configured(s.as_bytes().to_vec()));
    }
    let token = admin_token.filter(|t| !t.is_empty())?;
    let mut h = Sha256::new();
    h.update(DERIVED_SALT_CONTEXT);
    h.update(token.as_bytes());
    Some(Salt::DerivedFromAdminToken(h.finalize().to_vec()))
}

/// What `USAGE_EVENTS_ENABLED` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// Anything but the values below, and unset: events are recorded (the default).
    On,
    /// `false`: no event is made.
    Off,
    /// `build-only`: each event is made, then dropped, never sent.
    BuildOnly,
}

/// `USAGE_EVENTS_ENABLED`. `false` and `build-only` exist to measure what recording costs
/// on the call itself and off it (`scripts/bench-usage`), never for production.
pub fn recording(var: Option<&str>) -> Recording {
    match var.map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("false") => Recording::Off,
        Some(v) if v.eq_ignore_ascii_case("build-only") => Recording::BuildOnly,
        _ => Recording::On,
    }
}

/// The subrequest count from the local namespace emulator's `x-wfp-emulator-subrequests`
/// (`{"total":n,"denied":m}`). Read only when the dispatcher runs on the emulator: in
/// production a tenant could set this header on its answer.
pub fn emulator_subrequests(header: &str) -> Option<u32> {
    #[derive(serde::Deserialize)]
    struct Count {
        total: u32,
    }
    serde_json::from_str::<Count>(header).ok().map(|c| c.total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use claw_durable::events::classify;
    use proptest::prelude::*;

    fn event_json(i: usize) -> String {
        format!(
            r#"{{"id":"e{i}","timeMs":1,"tenant":"t","route":"/","callerHash":"{}","stage":"served","paymentRequired":false,"paymentSuccess":false,"statusCode":200,"latencyMs":1,"countable":true,"billable":false}}"#,
            "a".repeat(64)
        )
    }

    #[test]
    fn packed_events_come_back_in_order_within_the_message_bounds() {
        for n in [0usize, 1, 2, 99, 100, 101, 250, 1000] {
            let events: Vec<String> = (0..n).map(event_json).collect();
            let messages = pack_events(&events);
            assert!(messages.iter().all(|m| m.len() <= MESSAGE_BYTES));
            let back: Vec<String> = messages
                .iter()
                .flat_map(|m| serde_json::from_str::<Vec<serde_json::Value>>(m).unwrap())
                .map(|v| v["id"].as_str().unwrap().to_owned())
                .collect();
            let ids: Vec<String> = (0..n).map(|i| format!("e{i}")).collect();
            assert_eq!(back, ids, "n = {n}");
            let batches = send_batches(&messages);
            assert_eq!(batches.concat(), messages);
            assert!(batches.iter().all(|b| !b.is_empty()
                && b.len() <= SEND_BATCH_MESSAGES
                && b.iter().map(String::len).sum::<usize>() <= SEND_BATCH_BYTES));
        }
    }

    #[test]
    fn many_small_messages_split_by_count() {
        let messages: Vec<String> = (0..250).map(|i| format!("[{i}]")).collect();
        let sizes: Vec<usize> = send_batches(&messages).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
    }

    #[test]
    fn a_message_holds_an_array_of_events_or_one_event() {
        let one = event_json(7);
        let two = pack_events(&[event_json(1), event_json(2)]);
        assert_eq!(two.len(), 1);
        let ids = |v: Option<Vec<UsageEvent>>| {
            v.map(|es| es.into_iter().map(|e| e.id).collect::<Vec<_>>())
        };
        assert_eq!(
            ids(unpack_events(&two[0])),
            Some(vec!["e1".into(), "e2".into()])
        );
        assert_eq!(ids(unpack_events(&one)), Some(vec!["e7".into()]));
        assert_eq!(ids(unpack_events("[]")), Some(vec![]));
        assert!(unpack_events("not json").is_none());
        assert!(unpack_events("[1, 2]").is_none());
    }

    const SALT: &[u8] = b"test-salt-0123456789";
    const NOW: i64 = 1_800_000_000_000;
    const PAY_TO: &str = "0x1111111111111111111111111111111111111111";
    const PAYER: &str = "0x857b06519E91e3A54538791bDbb0E22373e36b66";
    const TX: &str = "0x3e7c2f0b5e0e4b8d9a1c6f4e2d3b5a7c9e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b";

    fn config(extra: &str) -> TenantConfig {
        let body =
            format!(r#"{{"resourceType":"function","workerName":"demo-fn","plan":"free"{extra}}}"#);
        TenantConfig::parse(body.as_bytes(), "acme").unwrap()
    }

    fn free() -> TenantConfig {
        config("")
    }

    fn paid() -> TenantConfig {
        config(&format!(
            r#","price":{{"amountAtomic":"1000","network":"base-sepolia",
            "asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"{PAY_TO}"}}"#
        ))
    }

    fn record(c: &TenantConfig) -> CallRecord {
        let mut r = CallRecord::new(c, "/v1/search", NOW - 25);
        r.caller("ip:203.0.113.7");
        r
    }

    #[test]
    fn served_free_call_is_countable() {
        let mut r = record(&free());
        r.subrequests(2);
        let e = r.finish("call-1", 200, NOW, SALT);
        assert_eq!(e.stage, Stage::Served);
        assert!(e.countable && !e.billable && !e.payment_required);
        assert_eq!(e.latency_ms, 25);
        assert_eq!(e.time_ms, NOW - 25);
        assert_eq!(e.route, "/v1/search");
        assert_eq!(e.worker_name.as_deref(), Some("demo-fn"));
        assert_eq!(e.subrequests, Some(2));
        assert_eq!(e.caller_hash, hash_caller(SALT, "ip:203.0.113.7"));
        assert_eq!(
            (e.amount_atomic, e.error_code, e.payer_hash),
            (None, None, None)
        );
    }

    #[test]
    fn tenant_and_platform_failures_are_errors() {
        let e = record(&free()).finish("a", 404, NOW, SALT);
        assert_eq!(e.stage, Stage::Error);
        assert_eq!(e.error_code.as_deref(), Some(TENANT_STATUS_CODE));
        assert!(!e.countable);
        let mut r = record(&free());
        r.problem("tenant_worker_failed");
        let e = r.finish("b", 502, NOW, SALT);
        assert_eq!(
            (e.stage, e.error_code.as_deref()),
            (Stage::Error, Some("tenant_worker_failed"))
        );
    }

    #[test]
    fn rate_limited_is_recorded_never_counted() {
        for c in [free(), paid()] {
            let mut r = record(&c);
            r.rate_limited();
            r.problem("rate_limited");
            let e = r.finish("r", 429, NOW, SALT);
            assert_eq!(e.stage, Stage::RateLimited);
            assert_eq!(e.error_code.as_deref(), Some("rate_limited"));
            assert!(!e.countable && !e.billable);
        }
        // A limiter failure (503) is an error, not a rate limit.
        let mut r = record(&paid());
        r.problem("rate_limiter_unavailable");
        let e = r.finish("u", 503, NOW, SALT);
        assert_eq!(e.stage, Stage::Error);
    }

    #[test]
    fn paywall_stages() {
        let mut r = record(&paid());
        r.challenged();
        let e = r.finish("c", 402, NOW, SALT);
        assert_eq!(e.stage, Stage::Challenged);
        assert_eq!(e.amount_atomic.as_deref(), Some("1000"), "the price asked");
        assert!(e.payment_required && !e.countable);

        let paying = || {
            let mut r = record(&paid());
            r.payment(PAYER, 1000);
            r
        };
        let mut r = paying();
        r.verify_failed("invalid_signature");
        let e = r.finish("v", 402, NOW, SALT);
        assert_eq!(e.stage, Stage::VerifyFailed);
        assert_eq!(e.error_code.as_deref(), Some("invalid_signature"));
        assert!(e.payer_hash.is_some() && !e.countable);

        let mut r = paying();
        r.settled(TX);
        let e = r.finish("s", 200, NOW, SALT);
        assert_eq!(e.stage, Stage::Settled);
        assert!(e.payment_success && e.countable && e.billable && !e.self_dealing);
        assert_eq!(e.settlement_result.as_deref(), Some(TX));
        assert_eq!(e.payer_hash, Some(hash_payer(SALT, PAYER)));
        assert!(e.counts_for_trending());

        let mut r = paying();
        r.settlement_failed("insufficient_funds");
        let e = r.finish("f", 402, NOW, SALT);
        assert_eq!(e.stage, Stage::SettlementFailed);
        assert_eq!(e.settlement_result.as_deref(), Some("insufficient_funds"));
        assert!(!e.payment_success && !e.countable);
    }

    #[test]
    fn paying_oneself_is_recorded_but_not_counted() {
        let mut r = record(&paid());
        r.payment(&PAY_TO.to_uppercase().replace("0X", "0x"), 1000);
        r.settled(TX);
        let e = r.finish("s", 200, NOW, SALT);
        assert_eq!(e.stage, Stage::Settled);
        assert!(e.billable && e.countable && e.self_dealing);
        assert!(!e.counts_for_trending());
    }

    #[test]
    fn a_paid_tenant_served_without_settling_is_not_countable() {
        // E.g. a paid tenant before the paywall runs: served, never counted.
        let e = record(&paid()).finish("p", 200, NOW, SALT);
        assert_eq!(e.stage, Stage::Served);
        assert_eq!(classify(e.stage, false), (false, false));
        assert!(!e.countable);
    }

    #[test]
    fn marks_that_do_not_fit_the_status_fall_back_to_error() {
        let mut r = record(&free());
        r.challenged(); // a free tenant has no payment stages
        assert_eq!(r.finish("a", 402, NOW, SALT).stage, Stage::Error);
        let mut r = record(&paid());
        r.challenged();
        assert_eq!(r.finish("b", 500, NOW, SALT).stage, Stage::Error);
        let mut r = record(&paid());
        r.settled(TX); // no payer reported
        assert_eq!(r.finish("c", 200, NOW, SALT).stage, Stage::Error);
        let mut r = record(&paid());
        r.rate_limited();
        assert_eq!(r.finish("d", 503, NOW, SALT).stage, Stage::Error);
    }

    #[test]
    fn routes_never_carry_the_query() {
        assert_eq!(route("/a/b?key=secret"), "/a/b");
        assert_eq!(route("/a#frag"), "/a");
        assert_eq!(route(""), "/");
        assert_eq!(route("x y"), "/x_y");
        assert_eq!(route("/é"), "/_");
        assert_eq!(route(&format!("/{}", "a".repeat(600))).len(), MAX_ROUTE_LEN);
    }

    #[test]
    fn ids_and_codes_are_made_valid() {
        assert_eq!(event_id("3b1f-uuid"), "3b1f-uuid");
        let hashed = event_id("bad id");
        assert_eq!(hashed.len(), 64);
        assert_ne!(hashed, event_id("bad id2"));
        assert_eq!(code_of("a b").as_deref(), Some("a_b"));
        assert_eq!(code_of(""), None);
        assert_eq!(code_of(&"x".repeat(100)).unwrap().len(), MAX_ERROR_CODE_LEN);
        assert_eq!(settlement_text(" \u{7}x ").as_deref(), Some("_x"));
        assert_eq!(settlement_text("  "), None);
    }

    #[test]
    fn salt_prefers_the_secret_and_never_runs_unsalted() {
        let s = salt(Some("0123456789abcdef"), Some("admin")).unwrap();
        assert_eq!(s, Salt::Configured(b"0123456789abcdef".to_vec()));
        let d = salt(Some("short"), Some("admin")).unwrap();
        assert!(matches!(d, Salt::DerivedFromAdminToken(_)));
        assert_eq!(d.bytes().len(), 32);
        assert_ne!(d, salt(None, Some("admin2")).unwrap());
        assert_eq!(d, salt(None, Some("admin")).unwrap());
        assert_eq!(salt(None, None), None);
        assert_eq!(salt(Some(""), Some("")), None);
    }

    #[test]
    fn switches_and_emulator_header() {
        assert_eq!(recording(None), Recording::On);
        assert_eq!(recording(Some("true")), Recording::On);
        assert_eq!(recording(Some(" FALSE ")), Recording::Off);
        assert_eq!(recording(Some("build-only")), Recording::BuildOnly);
        assert_eq!(emulator_subrequests(r#"{"total":3,"denied":1}"#), Some(3));
        assert_eq!(emulator_subrequests("3"), None);
        assert_eq!(emulator_subrequests(r#"{"total":-1}"#), None);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Caller(String),
        RateLimited,
        Problem(String),
        Subrequests(u32),
        Challenged,
        Payment(String, u128),
        VerifyFailed(String),
        Settled(String),
        SettlementFailed(String),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            "[ -~]{0,80}".prop_map(Step::Caller),
            Just(Step::RateLimited),
            "[ -~]{0,80}".prop_map(Step::Problem),
            any::<u32>().prop_map(Step::Subrequests),
            Just(Step::Challenged),
            (
                prop_oneof![
                    Just(PAYER.to_owned()),
                    Just(PAY_TO.to_owned()),
                    "[ -~]{0,50}"
                ],
                any::<u128>()
            )
                .prop_map(|(p, a)| Step::Payment(p, a)),
            "[ -~]{0,80}".prop_map(Step::VerifyFailed),
            "\\PC{0,200}".prop_map(Step::Settled),
            "\\PC{0,200}".prop_map(Step::SettlementFailed),
        ]
    }

    proptest! {
        /// Whatever the steps reported, in any order, and whatever the status, id and
        /// route: the event is valid for the events core, its flags are the classification
        /// of its stage, only settled paid and served free calls are countable, and no raw
        /// caller key or payer address appears in it.
        #[test]
        fn any_call_makes_one_valid_private_event(
            is_paid in any::<bool>(),
            steps in proptest::collection::vec(step(), 0..8),
            status in 0u16..1000,
            id in "\\PC{0,140}",
            rest in "\\PC{0,600}",
            latency in 0i64..100_000,
        ) {
            let c = if is_paid { paid() } else { free() };
            let mut r = CallRecord::new(&c, &rest, NOW - latency);
            for s in &steps {
                match s {
                    Step::Caller(k) => r.caller(k),
                    Step::RateLimited => r.rate_limited(),
                    Step::Problem(code) => r.problem(code),
                    Step::Subrequests(n) => r.subrequests(*n),
                    Step::Challenged => r.challenged(),
                    Step::Payment(p, a) => r.payment(p, *a),
                    Step::VerifyFailed(code) => r.verify_failed(code),
                    Step::Settled(tx) => r.settled(tx),
                    Step::SettlementFailed(why) => r.settlement_failed(why),
                }
            }
            let e = r.finish(&id, status, NOW, SALT);
            prop_assert_eq!(e.validate(NOW), Ok(()));
            prop_assert_eq!((e.countable, e.billable), classify(e.stage, !is_paid));
            if e.countable {
                prop_assert!(matches!((e.stage, is_paid), (Stage::Settled, true) | (Stage::Served, false)));
            }
            let json = serde_json::to_string(&e).unwrap();
            for s in &steps {
                if let Step::Caller(k) = s {
                    if k.len() >= 8 {
                        prop_assert!(!json.contains(k.as_str()));
                    }
                }
            }
            prop_assert!(!json.to_ascii_lowercase().contains(&PAYER.to_ascii_lowercase()[2..]));
        }
    }
}
