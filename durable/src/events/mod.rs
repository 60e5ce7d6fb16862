//! Usage events: one record per paid-API call attempt, lifecycle-aware, over [`SqlStore`].
//!
//! # Sharding
//! Events live in one `UsageEvents` object per tenant, named by the tenant slug. The
//! dispatcher posts each call's event to its tenant's object off the response path
//! (`ctx.waitUntil`), retrying safely because event ids are idempotent. There is no
//! cross-tenant `__all` object: it would take every event of the platform, the one hot
//! object this design avoids, and a second write that can diverge from the first. The
//! operator feed therefore requires a tenant (it reads that tenant's object); cross-tenant
//! views come from the trending object's compact per-tenant summaries. Nothing is lost: each
//! event is written once, to exactly one object, with its trending counts in the same atomic
//! write.
//!
//! # Privacy
//! Callers are stored only as salted hashes ([`hash_caller`]); payers too ([`hash_payer`]):
//! an address is public on chain, but a feed linking it to a caller's traffic is not. The
//! settlement ledger keeps the address where money needs it.
//!
//! # Invariants
//! - `seq` strictly increases with every insert and is never reused, even after retention
//!   deleted every row (the last seq is kept in `events_meta`).
//! - An event id is stored at most once; re-delivery reports the original seq.
//! - Retention is at least [`MIN_RETENTION_MS`] (longer than the 7d trending window), so an
//!   event that trending may still count is always present for de-duplication, and an event
//!   older than retention is refused (`expired`), never re-counted.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::problem::Problem;
use crate::store::{checked_int, SqlStore, SqlValue, StoreError, MAX_SAFE_INTEGER};
use crate::tenant::{parse_atomic_amount, validate_slug};
use crate::trending::{CountedCall, TenantTrend, TrendError, TrendPolicy, MAX_CLOCK_SKEW_MS};

#[cfg(target_arch = "wasm32")]
pub mod object;

pub const MAX_BATCH: usize = 500;
pub const MAX_BATCH_BYTES: usize = 1 << 20;
pub const MAX_PAGE: u32 = 500;
pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_ID_LEN: usize = 128;
pub const MAX_ROUTE_LEN: usize = 512;
pub const MAX_SETTLEMENT_RESULT_LEN: usize = 128;
pub const MAX_ERROR_CODE_LEN: usize = 64;
pub const MAX_WORKER_NAME_LEN: usize = 63;

const DAY_MS: i64 = 86_400_000;
pub const DEFAULT_RETENTION_MS: i64 = 30 * DAY_MS;
/// Longer than the 7d trending window plus a bucket, so de-duplication covers trending.
pub const MIN_RETENTION_MS: i64 = 8 * DAY_MS;
pub const MAX_RETENTION_MS: i64 = 400 * DAY_MS;
/// How often the retention sweep runs when it has caught up.
pub const SWEEP_INTERVAL_MS: i64 = 60 * 60_000;
/// Rows one sweep deletes at most; more pending means another sweep soon.
pub const SWEEP_BATCH: u32 = 1_000;
/// Expired trending buckets one alarm deletes at most (each holds at most
/// `max_payers_per_bucket` identity rows).
pub const EXPIRE_BATCH: u32 = 16;

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

/// An event with its ingest cursor, as the feed returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub seq: i64,
    #[serde(flatten)]
    pub event: UsageEvent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Inserted,
    /// Same id, same content: already stored (seq is the original's).
    Duplicate,
    /// Same id, different content: the first write stands (seq is the original's).
    Conflict,
    /// Older than retention: not stored.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendResult {
    pub id: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendReport {
    pub inserted: u32,
    pub duplicates: u32,
    pub conflicts: u32,
    pub expired: u32,
    /// One per submitted event, in order.
    pub results: Vec<AppendResult>,
    /// Whether a trending count changed (the object then schedules a rollup).
    #[serde(skip)]
    pub trending_changed: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub stage: Option<Stage>,
    /// Return events with a seq strictly greater than this.
    pub since: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// Pass as `since` to continue: the last seq returned, else the `since` given, else "0".
    /// Present on the last page too, so a reader can poll for new events.
    pub next_cursor: String,
    /// Whether more events matched than the page held.
    pub has_more: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub deleted: u32,
    pub more: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsConfig {
    pub retention_ms: i64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventsError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("trending: {0}")]
    Trend(#[from] TrendError),
    #[error("event {index}: {field}: {reason}")]
    Invalid {
        index: usize,
        field: &'static str,
        reason: String,
    },
    #[error("a batch holds at most {MAX_BATCH} events, got {0}")]
    BatchTooLarge(usize),
    #[error("this object holds events of tenant {expected:?}, got {got:?}")]
    TenantMismatch { expected: String, got: String },
    #[error("retentionMs must be {MIN_RETENTION_MS} to {MAX_RETENTION_MS}")]
    InvalidRetention,
    #[error("stored event is unreadable: {0}")]
    Corrupt(String),
}

impl From<EventsError> for Problem {
    fn from(e: EventsError) -> Problem {
        let detail = e.to_string();
        match e {
            EventsError::Invalid { index, field, .. } => {
                Problem::new(400, "invalid_event", "A usage event is invalid")
                    .field(format!("[{index}].{field}"))
                    .detail(detail)
            }
            EventsError::BatchTooLarge(_) => {
                Problem::new(413, "batch_too_large", "Too many events in one batch").detail(detail)
            }
            EventsError::TenantMismatch { .. } => {
                Problem::new(409, "tenant_mismatch", "Event belongs to another tenant")
                    .field("tenant")
                    .detail(detail)
            }
            EventsError::InvalidRetention => Problem::invalid_field("retentionMs", detail),
            EventsError::Trend(t) => t.into(),
            EventsError::Store(_) | EventsError::Corrupt(_) => Problem::internal(detail),
        }
    }
}

pub const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        time_ms INTEGER NOT NULL,
        stage TEXT NOT NULL,
        body TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS events_stage_seq ON events (stage, seq)",
    "CREATE INDEX IF NOT EXISTS events_time ON events (time_ms)",
    "CREATE TABLE IF NOT EXISTS events_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        tenant TEXT,
        last_seq INTEGER NOT NULL,
        retention_ms INTEGER NOT NULL,
        next_sweep_ms INTEGER
    )",
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    tenant: Option<String>,
    last_seq: i64,
    retention_ms: i64,
    next_sweep_ms: Option<i64>,
}

pub struct EventStore<'s, S: SqlStore> {
    store: &'s mut S,
}

impl<'s, S: SqlStore> EventStore<'s, S> {
    /// Opens the events tables (and the tenant's trending tables), creating them on first use.
    pub fn open(store: &'s mut S) -> Result<Self, EventsError> {
        for stmt in SCHEMA {
            store.exec(stmt, &[])?;
        }
        store.exec(
            "INSERT OR IGNORE INTO events_meta (id, tenant, last_seq, retention_ms, next_sweep_ms)
             VALUES (1, NULL, 0, ?, NULL)",
            &[DEFAULT_RETENTION_MS.into()],
        )?;
        TenantTrend::open(store)?;
        Ok(EventStore { store })
    }

    fn meta(&mut self) -> Result<Meta, EventsError> {
        let row = self.store.query_one(
            "SELECT tenant, last_seq, retention_ms, next_sweep_ms FROM events_meta WHERE id = 1",
            &[],
        )?;
        Ok(Meta {
            tenant: row.opt_text(0)?.map(str::to_owned),
            last_seq: row.int(1)?,
            retention_ms: row.int(2)?,
            next_sweep_ms: row.opt_int(3)?,
        })
    }

    /// The tenant this object holds events of; None before the first event.
    pub fn tenant(&mut self) -> Result<Option<String>, EventsError> {
        Ok(self.meta()?.tenant)
    }

    pub fn config(&mut self) -> Result<EventsConfig, EventsError> {
        Ok(EventsConfig {
            retention_ms: self.meta()?.retention_ms,
        })
    }

    pub fn set_config(&mut self, config: &EventsConfig) -> Result<EventsConfig, EventsError> {
        if !(MIN_RETENTION_MS..=MAX_RETENTION_MS).contains(&config.retention_ms) {
            return Err(EventsError::InvalidRetention);
        }
        self.store.exec(
            "UPDATE events_meta SET retention_ms = ? WHERE id = 1",
            &[config.retention_ms.into()],
        )?;
        self.config()
    }

    /// Appends a batch in one atomic write. Every event is validated first (one invalid event
    /// refuses the batch, naming its index); then each is inserted, or reported duplicate,
    /// conflicting or expired. Countable events update the tenant's trending buckets in the
    /// same write.
    pub fn append(
        &mut self,
        events: &[UsageEvent],
        now_ms: i64,
        policy: &TrendPolicy,
    ) -> Result<AppendReport, EventsError> {
        if events.len() > MAX_BATCH {
            return Err(EventsError::BatchTooLarge(events.len()));
        }
        let mut bodies = Vec::with_capacity(events.len());
        for (index, ev) in events.iter().enumerate() {
            ev.validate(now_ms)
                .map_err(|EventInvalid { field, reason }| EventsError::Invalid {
                    index,
                    field,
                    reason,
                })?;
            // A struct of strings, integers and enums always serializes.
            let body =
                serde_json::to_string(ev).map_err(|e| EventsError::Corrupt(e.to_string()))?;
            bodies.push(body);
        }
        if events.is_empty() {
            return Ok(AppendReport::default());
        }
        self.store.atomically(&mut |s| {
            let mut report = AppendReport::default();
            let meta = EventStore { store: &mut *s }.meta()?;
            let expected = match &meta.tenant {
                Some(t) => t.clone(),
                None => events.first().map(|e| e.tenant.clone()).unwrap_or_default(),
            };
            if let Some(ev) = events.iter().find(|e| e.tenant != expected) {
                return Err(EventsError::TenantMismatch {
                    expected,
                    got: ev.tenant.clone(),
                });
            }
            let oldest_kept = now_ms.saturating_sub(meta.retention_ms);
            let mut last_seq = meta.last_seq;
            for (ev, body) in events.iter().zip(&bodies) {
                let existing = s.query_opt(
                    "SELECT seq, body FROM events WHERE id = ?",
                    &[ev.id.as_str().into()],
                )?;
                let (outcome, seq) = if let Some(row) = existing {
                    let seq = row.int(0)?;
                    if row.text(1)? == body {
                        (Outcome::Duplicate, Some(seq))
                    } else {
                        (Outcome::Conflict, Some(seq))
                    }
                } else if ev.time_ms < oldest_kept {
                    (Outcome::Expired, None)
                } else {
                    let seq = last_seq
                        .checked_add(1)
                        .filter(|v| *v <= MAX_SAFE_INTEGER)
                        .ok_or(StoreError::IntegerOutOfRange(last_seq))?;
                    debug_assert!(seq > last_seq);
                    s.exec(
                        "INSERT INTO events (seq, id, time_ms, stage, body) VALUES (?, ?, ?, ?, ?)",
                        &[
                            checked_int(seq)?,
                            ev.id.as_str().into(),
                            checked_int(ev.time_ms)?,
                            ev.stage.as_str().into(),
                            body.as_str().into(),
                        ],
                    )?;
                    last_seq = seq;
                    if ev.counts_for_trending() {
                        let amount = match &ev.amount_atomic {
                            Some(a) => parse_atomic_amount(a).map_err(EventsError::Corrupt)?,
                            None => 0,
                        };
                        let call = CountedCall {
                            time_ms: ev.time_ms,
                            identity: ev.trend_identity(),
                            amount_atomic: amount,
                        };
                        TenantTrend::attach(&mut *s).record(&call, seq, now_ms, policy)?;
                        report.trending_changed = true;
                    }
                    (Outcome::Inserted, Some(seq))
                };
                match outcome {
                    Outcome::Inserted => report.inserted += 1,
                    Outcome::Duplicate => report.duplicates += 1,
                    Outcome::Conflict => report.conflicts += 1,
                    Outcome::Expired => report.expired += 1,
                }
                report.results.push(AppendResult {
                    id: ev.id.clone(),
                    outcome,
                    seq,
                });
            }
            let next_sweep = meta
                .next_sweep_ms
                .unwrap_or_else(|| now_ms.saturating_add(SWEEP_INTERVAL_MS));
            s.exec(
                "UPDATE events_meta SET tenant = ?, last_seq = ?, next_sweep_ms = ? WHERE id = 1",
                &[
                    expected.as_str().into(),
                    checked_int(last_seq)?,
                    checked_int(next_sweep)?,
                ],
            )?;
            Ok(report)
        })
    }

    /// Events in seq order after `since`, optionally of one stage; `limit` clamped to 1..=500.
    pub fn query(&mut self, q: &EventQuery) -> Result<EventPage, EventsError> {
        let limit = q.limit.clamp(1, MAX_PAGE);
        let since = q.since.unwrap_or(0);
        // One extra row tells whether another page exists.
        let rows = match q.stage {
            Some(stage) => self.store.exec(
                "SELECT seq, body FROM events WHERE stage = ? AND seq > ? ORDER BY seq LIMIT ?",
                &[
                    stage.as_str().into(),
                    checked_int(since)?,
                    SqlValue::from(limit + 1),
                ],
            )?,
            None => self.store.exec(
                "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                &[checked_int(since)?, SqlValue::from(limit + 1)],
            )?,
        };
        let has_more = rows.len() > limit as usize;
        let mut events = Vec::with_capacity(rows.len().min(limit as usize));
        for row in rows.iter().take(limit as usize) {
            let seq = row.int(0)?;
            let event: UsageEvent = serde_json::from_str(row.text(1)?)
                .map_err(|e| EventsError::Corrupt(format!("seq {seq}: {e}")))?;
            events.push(StoredEvent { seq, event });
        }
        let next_cursor = events.last().map_or(since, |e| e.seq).to_string();
        Ok(EventPage {
            events,
            next_cursor,
            has_more,
        })
    }

    /// Deletes up to `max_rows` events older than the retention, oldest first, and schedules
    /// the next sweep (soon when more are pending).
    pub fn sweep(&mut self, now_ms: i64, max_rows: u32) -> Result<SweepReport, EventsError> {
        let meta = self.meta()?;
        let cutoff = now_ms.saturating_sub(meta.retention_ms);
        let gone = self.store.exec(
            "DELETE FROM events WHERE seq IN
               (SELECT seq FROM events WHERE time_ms < ? ORDER BY time_ms LIMIT ?)
             RETURNING seq",
            &[checked_int(cutoff)?, max_rows.into()],
        )?;
        let deleted = u32::try_from(gone.len()).unwrap_or(u32::MAX);
        let more = deleted >= max_rows;
        let empty = self
            .store
            .query_opt("SELECT 1 FROM events LIMIT 1", &[])?
            .is_none();
        // An empty table needs no sweep until the next insert schedules one.
        let next = match (more, empty) {
            (true, _) => Some(now_ms.saturating_add(1_000)),
            (false, true) => None,
            (false, false) => Some(now_ms.saturating_add(SWEEP_INTERVAL_MS)),
        };
        self.store.exec(
            "UPDATE events_meta SET next_sweep_ms = ? WHERE id = 1",
            &[next.map(checked_int).transpose()?.unwrap_or(SqlValue::Null)],
        )?;
        Ok(SweepReport { deleted, more })
    }

    /// Whether the retention sweep is due at `now_ms`.
    pub fn sweep_due(&mut self, now_ms: i64) -> Result<bool, EventsError> {
        Ok(self.meta()?.next_sweep_ms.is_some_and(|t| t <= now_ms))
    }

    /// When the object should next wake: the retention sweep or the trending rollup,
    /// whichever is first; None when neither is pending.
    pub fn next_wake(&mut self, now_ms: i64) -> Result<Option<i64>, EventsError> {
        let sweep = self.meta()?.next_sweep_ms;
        let trend = TenantTrend::attach(&mut *self.store).next_wake(now_ms)?;
        Ok(earliest(sweep, trend))
    }
}

/// The earlier of two optional wake-up times.
pub fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// Valid events for tests, here and in the trending tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub const SALT: &[u8] = b"test-salt-0123456789";

    /// One call attempt. `payer`: which payer paid (settled calls need one). Free tenants only
    /// produce `served`, `rate_limited` and `error`.
    #[allow(clippy::too_many_arguments)]
    pub fn event(
        id: &str,
        tenant: &str,
        time_ms: i64,
        stage: Stage,
        free: bool,
        caller: u32,
        payer: Option<u32>,
        amount: u128,
        self_dealing: bool,
    ) -> UsageEvent {
        let status_code = match stage {
            Stage::Challenged | Stage::VerifyFailed | Stage::SettlementFailed => 402,
            Stage::RateLimited => 429,
            Stage::Served | Stage::Settled => 200,
            Stage::Error => 502,
        };
        let payer_hash = payer.map(|p| hash_payer(SALT, &format!("0x{p:040x}")));
        UsageEvent {
            id: id.to_owned(),
            time_ms,
            tenant: tenant.to_owned(),
            worker_name: Some(format!("w-{tenant}")),
            route: "/v1/search".into(),
            caller_hash: hash_caller(SALT, &format!("ip:10.0.0.{caller}")),
            stage,
            payment_required: !free,
            payment_success: stage == Stage::Settled,
            settlement_result: match stage {
                Stage::Settled => Some(format!("0x{:064x}", time_ms)),
                Stage::SettlementFailed => Some("insufficient_funds".into()),
                _ => None,
            },
            amount_atomic: (!free).then(|| amount.to_string()),
            status_code,
            error_code: (stage == Stage::Error).then(|| "upstream_failed".into()),
            latency_ms: 12,
            subrequests: Some(1),
            self_dealing: self_dealing && payer_hash.is_some(),
            payer_hash,
            countable: false,
            billable: false,
        }
        .classified()
    }

    pub fn settled(id: &str, tenant: &str, time_ms: i64, payer: u32, amount: u128) -> UsageEvent {
        event(
            id,
            tenant,
            time_ms,
            Stage::Settled,
            false,
            payer,
            Some(payer),
            amount,
            false,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::memsql::MemSql;
    use proptest::prelude::*;

    const NOW: i64 = 1_700_000_000_000;

    fn policy() -> TrendPolicy {
        TrendPolicy::default()
    }

    fn count(db: &mut MemSql, sql: &str) -> i64 {
        db.query_one(sql, &[]).unwrap().int(0).unwrap()
    }

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
        let mut challenge = event(
            "c",
            "demo",
            NOW,
            Stage::Challenged,
            false,
            1,
            None,
            10,
            false,
        );
        challenge.status_code = 200;
        assert_eq!(challenge.validate(NOW).unwrap_err().field, "statusCode");
        let mut limited = event(
            "r",
            "demo",
            NOW,
            Stage::RateLimited,
            false,
            1,
            None,
            10,
            false,
        );
        limited.status_code = 402;
        assert_eq!(limited.validate(NOW).unwrap_err().field, "statusCode");
        let mut free_challenge = event(
            "c",
            "demo",
            NOW,
            Stage::Challenged,
            false,
            1,
            None,
            1,
            false,
        );
        free_challenge.payment_required = false;
        assert_eq!(
            free_challenge.validate(NOW).unwrap_err().field,
            "paymentRequired"
        );
        let mut selfish = event("s", "demo", NOW, Stage::Served, true, 1, None, 0, false);
        selfish.self_dealing = true;
        assert_eq!(selfish.validate(NOW).unwrap_err().field, "selfDealing");
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

    #[test]
    fn append_is_idempotent_per_event_id() {
        let mut db = MemSql::new();
        let mut store = EventStore::open(&mut db).unwrap();
        let a = settled("a", "demo", NOW, 1, 10);
        let b = event(
            "b",
            "demo",
            NOW,
            Stage::Challenged,
            false,
            2,
            None,
            10,
            false,
        );
        let r = store
            .append(&[a.clone(), b.clone()], NOW, &policy())
            .unwrap();
        assert_eq!((r.inserted, r.duplicates), (2, 0));
        assert!(r.trending_changed);
        assert_eq!(r.results[0].seq, Some(1));
        assert_eq!(r.results[1].seq, Some(2));

        let mut changed = a.clone();
        changed.latency_ms += 1;
        let old = settled("old", "demo", NOW - DEFAULT_RETENTION_MS - 1, 1, 10);
        let c = settled("c", "demo", NOW, 1, 10);
        let r = store
            .append(&[b.clone(), changed, old, c.clone(), c], NOW, &policy())
            .unwrap();
        let outcomes: Vec<_> = r.results.iter().map(|x| (x.outcome, x.seq)).collect();
        assert_eq!(
            outcomes,
            vec![
                (Outcome::Duplicate, Some(2)),
                (Outcome::Conflict, Some(1)),
                (Outcome::Expired, None),
                (Outcome::Inserted, Some(3)),
                (Outcome::Duplicate, Some(3)),
            ]
        );
        assert_eq!(
            (r.inserted, r.duplicates, r.conflicts, r.expired),
            (1, 2, 1, 1)
        );
        let page = store
            .query(&EventQuery {
                stage: None,
                since: None,
                limit: 10,
            })
            .unwrap();
        assert_eq!(page.events.len(), 3);
        assert_eq!(page.events[0].event, a, "the first write stands");
        // Trending counted a and c once each, in both grains.
        assert_eq!(count(&mut db, "SELECT sum(calls) FROM trend_buckets"), 4);
    }

    #[test]
    fn an_invalid_event_refuses_the_whole_batch() {
        let mut db = MemSql::new();
        let mut store = EventStore::open(&mut db).unwrap();
        let mut bad = settled("b", "demo", NOW, 1, 10);
        bad.route = "/x?token=1".into();
        let err = store
            .append(&[settled("a", "demo", NOW, 1, 10), bad], NOW, &policy())
            .unwrap_err();
        assert!(matches!(
            err,
            EventsError::Invalid {
                index: 1,
                field: "route",
                ..
            }
        ));
        let p: Problem = err.into();
        assert_eq!(
            (p.status, &*p.code, p.field.as_deref()),
            (400, "invalid_event", Some("[1].route"))
        );
        assert_eq!(count(&mut db, "SELECT count(*) FROM events"), 0);
        assert_eq!(count(&mut db, "SELECT count(*) FROM trend_buckets"), 0);
        assert_eq!(count(&mut db, "SELECT last_seq FROM events_meta"), 0);
    }

    #[test]
    fn an_object_holds_one_tenant() {
        let mut db = MemSql::new();
        let mut store = EventStore::open(&mut db).unwrap();
        assert_eq!(store.tenant().unwrap(), None);
        let err = store
            .append(
                &[
                    settled("a", "demo", NOW, 1, 10),
                    settled("b", "other", NOW, 1, 10),
                ],
                NOW,
                &policy(),
            )
            .unwrap_err();
        assert!(matches!(err, EventsError::TenantMismatch { .. }));
        assert_eq!(
            store.tenant().unwrap(),
            None,
            "the refused batch claimed nothing"
        );
        store
            .append(&[settled("a", "demo", NOW, 1, 10)], NOW, &policy())
            .unwrap();
        assert_eq!(store.tenant().unwrap().as_deref(), Some("demo"));
        let err = store
            .append(&[settled("b", "other", NOW, 1, 10)], NOW, &policy())
            .unwrap_err();
        assert_eq!(Problem::from(err).code, "tenant_mismatch");
    }

    #[test]
    fn batches_are_bounded() {
        let mut db = MemSql::new();
        let mut store = EventStore::open(&mut db).unwrap();
        let many: Vec<_> = (0..=MAX_BATCH)
            .map(|i| settled(&format!("e{i}"), "demo", NOW, 1, 1))
            .collect();
        let err = store.append(&many, NOW, &policy()).unwrap_err();
        assert_eq!(err, EventsError::BatchTooLarge(MAX_BATCH + 1));
        assert_eq!(Problem::from(err).status, 413);
        let r = store.append(&many[..MAX_BATCH], NOW, &policy()).unwrap();
        assert_eq!(r.inserted as usize, MAX_BATCH);
        assert_eq!(
            store.append(&[], NOW, &policy()).unwrap(),
            AppendReport::default()
        );
    }

    #[test]
    fn retention_sweep_is_bounded_and_seq_is_never_reused() {
        let mut db = MemSql::new();
        let mut store = EventStore::open(&mut db).unwrap();
        let old: Vec<_> = (0..25)
            .map(|i| settled(&format!("o{i}"), "demo", NOW + i, 1, 1))
            .collect();
        store.append(&old, NOW + 100, &policy()).unwrap();
        let later = NOW + DEFAULT_RETENTION_MS + 20;
        store
            .append(&[settled("new", "demo", later, 1, 1)], later, &policy())
            .unwrap();
        assert!(!store.sweep_due(NOW + 100).unwrap());
        assert!(store.sweep_due(later).unwrap());
        let r = store.sweep(later, 10).unwrap();
        assert_eq!(
            r,
            SweepReport {
                deleted: 10,
                more: true
            }
        );
        let r = store.sweep(later, 10).unwrap();
        assert_eq!(
            r,
            SweepReport {
                deleted: 10,
                more: true
            }
        );
        // Events at NOW+20..NOW+24 are not yet older than the retention at `later`.
        let r = store.sweep(later, 10).unwrap();
        assert_eq!(
            r,
            SweepReport {
                deleted: 0,
                more: false
            }
        );
        let r = store.sweep(later + 100, 10).unwrap();
        assert_eq!(
            r,
            SweepReport {
                deleted: 5,
                more: false
            }
        );
        let left = store
            .query(&EventQuery {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            left.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![26]
        );
        // Sweep everything: no more sweeps are scheduled; the next event still gets a fresh
        // seq and schedules the next sweep.
        let much_later = later + DEFAULT_RETENTION_MS + 1;
        store.sweep(much_later, 10).unwrap();
        assert!(!store.sweep_due(i64::MAX).unwrap(), "no sweep scheduled");
        let r = store
            .append(
                &[settled("next", "demo", much_later, 1, 1)],
                much_later,
                &policy(),
            )
            .unwrap();
        assert_eq!(r.results[0].seq, Some(27));
        assert!(!store.sweep_due(much_later).unwrap());
        assert!(store.sweep_due(much_later + SWEEP_INTERVAL_MS).unwrap());
    }

    #[test]
    fn retention_is_configurable_within_bounds() {
        let mut db = MemSql::new();
        let mut store = EventStore::open(&mut db).unwrap();
        assert_eq!(store.config().unwrap().retention_ms, DEFAULT_RETENTION_MS);
        for bad in [MIN_RETENTION_MS - 1, MAX_RETENTION_MS + 1, -1] {
            let err = store
                .set_config(&EventsConfig { retention_ms: bad })
                .unwrap_err();
            assert_eq!(Problem::from(err).field.as_deref(), Some("retentionMs"));
        }
        let c = store
            .set_config(&EventsConfig {
                retention_ms: MIN_RETENTION_MS,
            })
            .unwrap();
        assert_eq!(c.retention_ms, MIN_RETENTION_MS);
        let r = store
            .append(
                &[settled("a", "demo", NOW - MIN_RETENTION_MS - 1, 1, 1)],
                NOW,
                &policy(),
            )
            .unwrap();
        assert_eq!(r.expired, 1);
    }

    #[test]
    fn next_wake_covers_sweep_and_rollup() {
        let mut db = MemSql::new();
        let mut store = EventStore::open(&mut db).unwrap();
        assert_eq!(
            store.next_wake(NOW).unwrap(),
            None,
            "nothing to do before any event"
        );
        let challenge = event(
            "c",
            "demo",
            NOW,
            Stage::Challenged,
            false,
            1,
            None,
            1,
            false,
        );
        store.append(&[challenge], NOW, &policy()).unwrap();
        assert_eq!(store.next_wake(NOW).unwrap(), Some(NOW + SWEEP_INTERVAL_MS));
        store
            .append(&[settled("s", "demo", NOW, 1, 1)], NOW, &policy())
            .unwrap();
        assert_eq!(
            store.next_wake(NOW).unwrap(),
            Some(NOW + crate::trending::ROLLUP_DELAY_MS)
        );
        assert_eq!(earliest(None, Some(3)), Some(3));
        assert_eq!(earliest(Some(2), Some(3)), Some(2));
        assert_eq!(earliest(None, None), None);
    }

    fn any_stage() -> impl Strategy<Value = Stage> {
        proptest::sample::select(Stage::ALL.to_vec())
    }

    proptest! {
        /// Walking the cursor, with or without a stage filter, visits every matching event
        /// exactly once, in ingest order, for any page size; seq strictly increases.
        #[test]
        fn cursor_pages_cover_everything_once(
            stages in proptest::collection::vec(any_stage(), 0..60),
            page in 1u32..9,
            filter in proptest::option::of(any_stage()),
        ) {
            let mut db = MemSql::new();
            let mut store = EventStore::open(&mut db).unwrap();
            let events: Vec<_> = stages.iter().enumerate()
                .map(|(i, s)| event(&format!("e{i}"), "demo", NOW + i as i64, *s, false, 1, Some(1), 5, false))
                .collect();
            for chunk in events.chunks(7) {
                store.append(chunk, NOW + 100, &policy()).unwrap();
            }
            let mut seen = Vec::new();
            let mut since = None;
            loop {
                let p = store.query(&EventQuery { stage: filter, since, limit: page }).unwrap();
                prop_assert!(p.events.len() <= page as usize);
                seen.extend(p.events.iter().map(|e| (e.seq, e.event.id.clone())));
                since = Some(p.next_cursor.parse().unwrap());
                if !p.has_more { break; }
            }
            let expected: Vec<_> = events.iter().enumerate()
                .filter(|(_, e)| filter.is_none_or(|f| f == e.stage))
                .map(|(i, e)| (i as i64 + 1, e.id.clone()))
                .collect();
            prop_assert_eq!(seen, expected);
            // Polling past the end returns nothing and keeps the cursor.
            let p = store.query(&EventQuery { stage: filter, since, limit: page }).unwrap();
            prop_assert!(p.events.is_empty());
            prop_assert_eq!(Some(p.next_cursor.parse::<i64>().unwrap()), since);
        }

        /// Any delivery schedule (re-batched, duplicated, reordered) stores each event once
        /// and counts each countable one once in trending.
        #[test]
        fn duplicate_deliveries_store_and_count_once(
            n in 1usize..40,
            deliveries in proptest::collection::vec((0usize..40, 1usize..6), 1..30),
        ) {
            let events: Vec<_> = (0..n)
                .map(|i| {
                    let stage = if i % 3 == 0 { Stage::Challenged } else { Stage::Settled };
                    event(&format!("e{i}"), "demo", NOW + i as i64, stage, false, 1, Some(i as u32 % 4), 5, false)
                })
                .collect();
            let mut db = MemSql::new();
            let mut store = EventStore::open(&mut db).unwrap();
            let mut schedule: Vec<Vec<UsageEvent>> = deliveries.iter()
                .map(|(start, len)| events.iter().cycle().skip(*start).take(*len).cloned().collect())
                .collect();
            schedule.push(events.clone()); // finally everything arrives
            let mut last_seq = 0;
            for batch in &schedule {
                let r = store.append(batch, NOW + 100, &policy()).unwrap();
                for res in &r.results {
                    if res.outcome == Outcome::Inserted {
                        let seq = res.seq.unwrap();
                        prop_assert!(seq > last_seq);
                        last_seq = seq;
                    }
                    prop_assert_ne!(res.outcome, Outcome::Conflict);
                }
            }
            let page = store.query(&EventQuery { limit: MAX_PAGE, ..Default::default() }).unwrap();
            let mut ids: Vec<_> = page.events.iter().map(|e| e.event.id.clone()).collect();
            ids.sort();
            let mut expected: Vec<_> = events.iter().map(|e| e.id.clone()).collect();
            expected.sort();
            prop_assert_eq!(ids, expected);
            let countable = events.iter().filter(|e| e.counts_for_trending()).count() as i64;
            prop_assert_eq!(count(&mut db, "SELECT coalesce(sum(calls), 0) FROM trend_buckets WHERE grain_ms = 300000"), countable);
            prop_assert_eq!(count(&mut db, "SELECT coalesce(sum(calls), 0) FROM trend_buckets WHERE grain_ms = 3600000"), countable);
        }
    }
}
