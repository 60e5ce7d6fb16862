//! The per-tenant settlement ledger, over [`SqlStore`].
//!
//! One ledger object per tenant. It is an append-only journal (`ledger_entries`): every state
//! change appends one immutable entry with the next `seq` (1, 2, 3, ... with no gaps), and
//! the current-state tables (`ledger_payments`, `ledger_payouts`), the balance summary
//! (`ledger_balances`, one row) and the UTC day buckets (`ledger_days`) are updated in the
//! same [`SqlStore::atomically`] step, so they always agree with the journal. [`Ledger::audit`]
//! replays the journal and checks that they do.
//!
//! Payments: `reserved -> settled | voided | unknown`, `unknown -> settled | voided`, keyed
//! by the caller's idempotency key (network + asset + payer + EIP-3009 nonce). A key is
//! reserved at most once, ever. `unknown` is a payment whose settlement outcome the
//! platform does not know (the facilitator timed out or answered garbage after settle was
//! sent, or the reservation outlived any live call: the dispatcher died, or the ledger was
//! unreachable after a settle). Only the chain decides an unknown payment: the reconciler
//! ([`reconcile`]) asks the token's `authorizationState(payer, nonce)` and books it settled
//! (with the transaction from the chain's logs) or voided (unused, and the chain's clock is
//! past `validBefore`, so it can never settle). No timer ever voids a payment.
//! Payouts: `pending -> posted | voided`, keyed by the payout job's idempotency key.
//!
//! Money is `u128` atomic units, stored as decimal TEXT, with checked arithmetic only.
//! Fee rounding: `fee = floor(gross * fee_bps / 10_000)`, `net = gross - fee`; the creator
//! gets the rounding remainder, so `fee + net == gross` exactly and the fee is never
//! overstated (see [`split_fee`]).
//!
//! Invariants (checked on every write, re-checked from scratch by [`Ledger::audit`]):
//! - `settled_gross == settled_fee + settled_net`, per payment and in total;
//! - `settled_net == available + payouts_pending + payouts_posted`, with `available >= 0`
//!   (a payout above `available` is refused, so the balance never goes negative);
//! - `settled_gross + reserved_gross + unknown_gross` fits in `u128` (checked when reserving,
//!   so settling can never overflow);
//! - `seq` strictly increasing from 1 without gaps; entries are only ever inserted;
//! - every payment key and payout idempotency key is applied at most once.

use serde::{Serialize, Serializer};

use crate::problem::{Code, Problem};
use crate::store::{checked_int, Row, SqlStore, SqlValue, StoreError, MAX_SAFE_INTEGER};
use crate::tenant::{parse_atomic_amount, Network};

mod answers;
mod events;
mod payments;
mod payouts;
mod read;
pub mod reconcile;
pub mod wire;

#[cfg(test)]
mod tests;

#[cfg(target_arch = "wasm32")]
pub mod object;

pub use answers::{StoredAnswer, ANSWER_TTL_MS, MAX_STORED_ANSWER_BYTES};
pub use events::{PendingEvent, EVENTS_BATCH};
pub use payments::{ChainFacts, SweepReport};
pub use payouts::PayoutPage;
pub use read::{AuditReport, DayEarnings, Earnings, EntryPage};

/// Basis points in one whole.
pub const BPS_DENOMINATOR: u32 = 10_000;
/// Longest payment key / payout idempotency key, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Longest request fingerprint, in bytes (a hex SHA-256 is 64).
pub const MAX_FINGERPRINT_LEN: usize = 128;
/// Longest transaction reference, in bytes (an EVM tx hash is 66).
pub const MAX_TX_REF_LEN: usize = 128;
/// Longest void reason, in bytes.
pub const MAX_REASON_LEN: usize = 256;
/// Entries per page when reading the journal.
pub const MAX_PAGE: u32 = 500;
pub const DEFAULT_PAGE: u32 = 100;
/// Day buckets returned by [`Ledger::earnings`] at most.
pub const MAX_DAYS: u32 = 366;
pub const DEFAULT_DAYS: u32 = 30;
pub const DAY_MS: i64 = 86_400_000;
/// A reservation still `reserved` this long after it was made is overdue: the sweep
/// ([`Ledger::sweep_expired`], run by the object's alarm) marks it `unknown` with reason
/// [`EXPIRED_REASON`], for the reconciler to decide from the chain. A paid call holds its
/// reservation for at most the facilitator's verify and settle timeouts plus the
/// dispatcher's deadline for the tenant (a compile-time assert in the dispatcher keeps it
/// so), so this only ever catches calls whose dispatcher died mid-call or whose settlement
/// could not be recorded.
pub const RESERVATION_TTL_MS: i64 = 15 * 60 * 1_000;
/// The reason the sweep records when it marks an overdue reservation `unknown`.
pub const EXPIRED_REASON: &str = "reservation_expired";
/// Reservations marked per sweep at most (the alarm runs again at once if more are due).
pub const SWEEP_BATCH: u32 = 200;
/// A local (development verifier) settlement's `txRef` is this prefix plus the payment's
/// fingerprint: never a transaction hash, and unique per signed payment.
pub const LOCAL_TX_PREFIX: &str = "local:";

/// The last object [`SCHEMA`] creates: when it exists, the whole schema does. A schema
/// change must create a new marker last, name it here, and migrate from the previous one.
const SCHEMA_MARKER: &str = "ledger_events_at";
/// The second schema's marker (unknown payments, before stored answers).
const SCHEMA_V2_MARKER: &str = "ledger_payments_unknown";
/// The first schema's marker: a ledger that has it and not [`SCHEMA_MARKER`] is migrated
/// ([`MIGRATE_V1`]) before use.
const SCHEMA_V1_MARKER: &str = "ledger_payments_tx";

/// The tables, created on open. Entries are only ever inserted (the code has no UPDATE or
/// DELETE on `ledger_entries`).
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS ledger_entries (
        seq INTEGER PRIMARY KEY CHECK (seq > 0),
        at_ms INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('payment_reserved', 'payment_settled',
            'payment_voided', 'payment_unknown', 'payout_created', 'payout_posted',
            'payout_voided')),
        payment_key TEXT,
        payout_id TEXT,
        amount TEXT NOT NULL,
        fee TEXT,
        net TEXT,
        fee_bps INTEGER,
        tx_ref TEXT,
        network TEXT,
        payer TEXT,
        local_settlement INTEGER,
        destination TEXT,
        reason TEXT,
        CHECK ((payment_key IS NULL) <> (payout_id IS NULL))
    )",
    "CREATE TABLE IF NOT EXISTS ledger_payments (
        payment_key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('reserved', 'settled', 'voided', 'unknown')),
        gross TEXT NOT NULL,
        fee TEXT,
        net TEXT,
        fee_bps INTEGER,
        tx_ref TEXT,
        network TEXT,
        payer TEXT,
        local_settlement INTEGER,
        void_reason TEXT,
        reserved_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        reserved_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        asset TEXT,
        nonce TEXT,
        valid_before_s INTEGER,
        unknown_reason TEXT
    )",
    // The sweep finds expired reservations; settle finds a transaction hash already used.
    "CREATE INDEX IF NOT EXISTS ledger_payments_reserved ON ledger_payments (reserved_at_ms)
        WHERE state = 'reserved'",
    "CREATE TABLE IF NOT EXISTS ledger_payouts (
        payout_id TEXT PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'posted', 'voided')),
        amount TEXT NOT NULL,
        destination TEXT NOT NULL,
        tx_ref TEXT,
        void_reason TEXT,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        created_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS ledger_balances (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_seq INTEGER NOT NULL,
        reserved_gross TEXT NOT NULL,
        reserved_count INTEGER NOT NULL,
        settled_gross TEXT NOT NULL,
        settled_fee TEXT NOT NULL,
        settled_net TEXT NOT NULL,
        settled_count INTEGER NOT NULL,
        local_net TEXT NOT NULL,
        local_count INTEGER NOT NULL,
        voided_count INTEGER NOT NULL,
        payouts_pending TEXT NOT NULL,
        payouts_pending_count INTEGER NOT NULL,
        payouts_posted TEXT NOT NULL,
        payouts_posted_count INTEGER NOT NULL,
        payouts_voided_count INTEGER NOT NULL,
        unknown_gross TEXT NOT NULL DEFAULT '0',
        unknown_count INTEGER NOT NULL DEFAULT 0
    )",
    "INSERT OR IGNORE INTO ledger_balances VALUES
        (1, 0, '0', 0, '0', '0', '0', 0, '0', 0, 0, '0', 0, '0', 0, 0, '0', 0)",
    "CREATE TABLE IF NOT EXISTS ledger_days (
        day INTEGER PRIMARY KEY,
        gross TEXT NOT NULL,
        fee TEXT NOT NULL,
        net TEXT NOT NULL,
        count INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS ledger_payments_tx ON ledger_payments (tx_ref)
        WHERE tx_ref IS NOT NULL",
    // The reconciler finds unknown payments.
    "CREATE INDEX IF NOT EXISTS ledger_payments_unknown ON ledger_payments (updated_at_ms)
        WHERE state = 'unknown'",
    // A paid call's buffered answer, kept before settling for a retry of the same payment
    // (`answers`): status, headers as a JSON array of pairs, the body when it fits.
    "CREATE TABLE IF NOT EXISTS ledger_answers (
        payment_key TEXT PRIMARY KEY,
        status INTEGER NOT NULL,
        headers TEXT NOT NULL,
        body BLOB,
        body_bytes INTEGER NOT NULL,
        stored_at_ms INTEGER NOT NULL
    )",
    // The payment-identifier extension: a client's id, bound to the one payment it named.
    "CREATE TABLE IF NOT EXISTS ledger_payment_ids (
        payment_id TEXT PRIMARY KEY,
        payment_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL
    )",
    // The sweep drops expired answers (this index was the third schema's marker).
    "CREATE INDEX IF NOT EXISTS ledger_answers_stored ON ledger_answers (stored_at_ms)",
    // A settled call's usage event, written with its settlement and written on into the
    // tenant's events object by the alarm (`events`): it cannot be lost once the payment is
    // settled.
    "CREATE TABLE IF NOT EXISTS ledger_events (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        event TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    )",
    // Last: the marker Ledger::open looks for.
    "CREATE INDEX IF NOT EXISTS ledger_events_at ON ledger_events (at_ms)",
];

/// From the first schema to this one, in one atomic step: the journal and the payments
/// table are rebuilt (their CHECK constraints gain the `unknown` state and entry kind; the
/// payments gain the chain facts the reconciler needs), the balance row gains the unknown
/// totals. Rows are copied as they are; then [`SCHEMA`] creates what is missing.
pub const MIGRATE_V1: &[&str] = &[
    "DROP INDEX IF EXISTS ledger_payments_reserved",
    "DROP INDEX IF EXISTS ledger_payments_tx",
    "ALTER TABLE ledger_entries RENAME TO ledger_entries_v1",
    "ALTER TABLE ledger_payments RENAME TO ledger_payments_v1",
    "ALTER TABLE ledger_balances ADD COLUMN unknown_gross TEXT NOT NULL DEFAULT '0'",
    "ALTER TABLE ledger_balances ADD COLUMN unknown_count INTEGER NOT NULL DEFAULT 0",
];

/// After [`SCHEMA`] created the new tables: copy the old rows and drop the old tables.
pub const MIGRATE_V1_COPY: &[&str] = &[
    "INSERT INTO ledger_entries SELECT * FROM ledger_entries_v1",
    "INSERT INTO ledger_payments (payment_key, fingerprint, state, gross, fee, net, fee_bps,
        tx_ref, network, payer, local_settlement, void_reason, reserved_at_ms, updated_at_ms,
        reserved_seq, last_seq)
     SELECT payment_key, fingerprint, state, gross, fee, net, fee_bps, tx_ref, network, payer,
        local_settlement, void_reason, reserved_at_ms, updated_at_ms, reserved_seq, last_seq
     FROM ledger_payments_v1",
    "DROP TABLE ledger_entries_v1",
    "DROP TABLE ledger_payments_v1",
];

// ---------------------------------------------------------------------------------------
// Errors

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LedgerError {
    #[error("{field} {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("no payment with key {0:?}")]
    PaymentNotFound(String),
    #[error("the payment is reserved and not yet settled or voided")]
    PaymentInFlight,
    #[error("the payment was already settled")]
    PaymentAlreadySettled,
    #[error("the payment was already voided")]
    PaymentAlreadyVoided,
    #[error("the payment's settlement outcome is unknown until the chain is asked")]
    PaymentOutcomeUnknown,
    #[error("the payment identifier was already used for a different payment")]
    PaymentIdentifierReused,
    #[error("the payment key was already used for a different payment")]
    PaymentKeyReused,
    #[error("the payment was already settled differently ({0})")]
    SettlementConflict(&'static str),
    /// An on-chain transaction settles one payment: a second payment claiming the same
    /// transaction hash is refused (a facilitator bug or a lie, never a real settlement).
    #[error("transaction {0} already settled another payment")]
    TransactionAlreadyRecorded(String),
    #[error("no payout {0:?}")]
    PayoutNotFound(String),
    #[error("the idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("payout of {requested} exceeds the available balance of {available}")]
    InsufficientFunds { requested: u128, available: u128 },
    #[error("the payout was already posted")]
    PayoutAlreadyPosted,
    #[error("the payout was already voided")]
    PayoutAlreadyVoided,
    #[error("the ledger's totals would exceed 2^128 - 1 atomic units")]
    AmountOverflow,
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("ledger state is inconsistent: {0}")]
    Corrupt(String),
}

impl LedgerError {
    /// The stable problem code clients act on.
    pub fn code(&self) -> Code {
        match self {
            LedgerError::Invalid { .. } => Code::InvalidField,
            LedgerError::PaymentNotFound(_) => Code::PaymentNotFound,
            LedgerError::PaymentInFlight => Code::PaymentInFlight,
            LedgerError::PaymentAlreadySettled => Code::PaymentAlreadySettled,
            LedgerError::PaymentAlreadyVoided => Code::PaymentAlreadyVoided,
            LedgerError::PaymentOutcomeUnknown => Code::PaymentOutcomeUnknown,
            LedgerError::PaymentIdentifierReused => Code::PaymentIdentifierReused,
            LedgerError::PaymentKeyReused => Code::PaymentKeyReused,
            LedgerError::SettlementConflict(_) => Code::SettlementConflict,
            LedgerError::TransactionAlreadyRecorded(_) => Code::TransactionAlreadyRecorded,
            LedgerError::PayoutNotFound(_) => Code::PayoutNotFound,
            LedgerError::IdempotencyKeyReused => Code::IdempotencyKeyReused,
            LedgerError::InsufficientFunds { .. } => Code::InsufficientFunds,
            LedgerError::PayoutAlreadyPosted => Code::PayoutAlreadyPosted,
            LedgerError::PayoutAlreadyVoided => Code::PayoutAlreadyVoided,
            LedgerError::AmountOverflow => Code::AmountOverflow,
            LedgerError::Store(_) => Code::InternalError,
            LedgerError::Corrupt(_) => Code::LedgerCorrupt,
        }
    }

    pub fn status(&self) -> u16 {
        self.code().status()
    }
}

impl From<LedgerError> for Problem {
    fn from(e: LedgerError) -> Problem {
        let p = Problem::new(e.code()).detail(e.to_string());
        match e {
            LedgerError::Invalid { field, .. } => p.field(field),
            _ => p,
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> LedgerError {
    LedgerError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn corrupt(what: impl Into<String>) -> LedgerError {
    LedgerError::Corrupt(what.into())
}

// ---------------------------------------------------------------------------------------
// Input checks (all run before anything is written)

/// An opaque token: 1..=max bytes of printable ASCII without spaces.
fn check_token(field: &'static str, v: &str, max: usize) -> Result<(), LedgerError> {
    if v.is_empty() || v.len() > max {
        return Err(invalid(field, format!("must be 1 to {max} bytes")));
    }
    if !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(field, "must be printable ASCII without spaces"));
    }
    Ok(())
}

/// Free text (a void reason): 1..=max bytes, no control characters.
fn check_text(field: &'static str, v: &str, max: usize) -> Result<(), LedgerError> {
    if v.is_empty() || v.len() > max {
        return Err(invalid(field, format!("must be 1 to {max} bytes")));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_positive(field: &'static str, v: u128) -> Result<(), LedgerError> {
    if v == 0 {
        return Err(invalid(field, "must be greater than zero"));
    }
    Ok(())
}

fn check_now(now_ms: i64) -> Result<(), LedgerError> {
    if !(0..=MAX_SAFE_INTEGER).contains(&now_ms) {
        return Err(invalid("nowMs", "must be a time in ms since the epoch"));
    }
    Ok(())
}

/// Splits a gross amount into the platform fee and the creator's net.
///
/// `fee = floor(gross * fee_bps / 10_000)`, computed without the overflowing product as
/// `(gross / 10_000) * bps + (gross % 10_000) * bps / 10_000` (exact, since the first term is
/// an integer); `net = gross - fee`. Rounding always favours the creator by less than one
/// atomic unit.
pub fn split_fee(gross: u128, fee_bps: u32) -> Result<(u128, u128), LedgerError> {
    if fee_bps > BPS_DENOMINATOR {
        return Err(invalid("feeBps", "must be 0 to 10000"));
    }
    let bps = u128::from(fee_bps);
    let den = u128::from(BPS_DENOMINATOR);
    let fee = (gross / den)
        .checked_mul(bps)
        .and_then(|whole| {
            (gross % den)
                .checked_mul(bps)
                .map(|part| part / den)
                .and_then(|part| whole.checked_add(part))
        })
        .ok_or(LedgerError::AmountOverflow)?;
    let net = gross
        .checked_sub(fee)
        .ok_or_else(|| corrupt("fee exceeds gross"))?;
    debug_assert_eq!(fee.checked_add(net), Some(gross));
    Ok((fee, net))
}

// ---------------------------------------------------------------------------------------
// Records

fn ser_amount<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn ser_opt_amount<S: Serializer>(v: &Option<u128>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    Reserved,
    Settled,
    Voided,
    /// The settlement's outcome is not known; only the chain decides it (reconciliation).
    Unknown,
}

impl PaymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Reserved => "reserved",
            PaymentState::Settled => "settled",
            PaymentState::Voided => "voided",
            PaymentState::Unknown => "unknown",
        }
    }
    fn parse(s: &str) -> Result<Self, LedgerError> {
        match s {
            "reserved" => Ok(PaymentState::Reserved),
            "settled" => Ok(PaymentState::Settled),
            "voided" => Ok(PaymentState::Voided),
            "unknown" => Ok(PaymentState::Unknown),
            other => Err(corrupt(format!("payment state {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutState {
    Pending,
    Posted,
    Voided,
}

impl PayoutState {
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutState::Pending => "pending",
            PayoutState::Posted => "posted",
            PayoutState::Voided => "voided",
        }
    }
    fn parse(s: &str) -> Result<Self, LedgerError> {
        match s {
            "pending" => Ok(PayoutState::Pending),
            "posted" => Ok(PayoutState::Posted),
            "voided" => Ok(PayoutState::Voided),
            other => Err(corrupt(format!("payout state {other:?}"))),
        }
    }
}

/// How a reserved payment was settled: the inputs of [`Ledger::settle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement<'a> {
    /// The transaction hash (or, for a local settlement, the local verifier's reference).
    pub tx_ref: &'a str,
    pub network: Network,
    /// The payer's EVM address; stored lowercased.
    pub payer: &'a str,
    /// True when the payment was settled locally (dev verifier), NOT on chain.
    pub local_settlement: bool,
    /// The tenant plan's fee ([`crate::tenant::Plan::fee_bps`]), 0..=10000.
    pub fee_bps: u32,
    /// Why it was booked this way, when not by its own call (reconciliation).
    pub reason: Option<&'a str>,
}

/// A payment's current state (one row per payment key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub key: String,
    pub fingerprint: String,
    pub state: PaymentState,
    #[serde(serialize_with = "ser_amount")]
    pub gross: u128,
    #[serde(
        serialize_with = "ser_opt_amount",
        skip_serializing_if = "Option::is_none"
    )]
    pub fee: Option<u128>,
    #[serde(
        serialize_with = "ser_opt_amount",
        skip_serializing_if = "Option::is_none"
    )]
    pub net: Option<u128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee_bps: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_settlement: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub void_reason: Option<String>,
    pub reserved_at_ms: i64,
    pub updated_at_ms: i64,
    pub reserved_seq: i64,
    pub last_seq: i64,
    /// The token (reserve time), for reconciliation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// The EIP-3009 nonce (reserve time), for reconciliation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The authorization's `validBefore` (unix seconds, reserve time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_before_s: Option<i64>,
    /// Why the outcome became unknown (`unknown` payments, and kept once decided).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
}

/// A payout's current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payout {
    pub id: String,
    pub idempotency_key: String,
    pub fingerprint: String,
    pub state: PayoutState,
    #[serde(serialize_with = "ser_amount")]
    pub amount: u128,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub void_reason: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub created_seq: i64,
    pub last_seq: i64,
}

/// The result of a state change: the record, and whether this call was a repeat of one
/// already applied (then nothing was written and `record` is the original outcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied<T> {
    #[serde(flatten)]
    pub record: T,
    pub replayed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    PaymentReserved,
    PaymentSettled,
    PaymentVoided,
    PaymentUnknown,
    PayoutCreated,
    PayoutPosted,
    PayoutVoided,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::PaymentReserved => "payment_reserved",
            EntryKind::PaymentSettled => "payment_settled",
            EntryKind::PaymentVoided => "payment_voided",
            EntryKind::PaymentUnknown => "payment_unknown",
            EntryKind::PayoutCreated => "payout_created",
            EntryKind::PayoutPosted => "payout_posted",
            EntryKind::PayoutVoided => "payout_voided",
        }
    }
    fn parse(s: &str) -> Result<Self, LedgerError> {
        Ok(match s {
            "payment_reserved" => EntryKind::PaymentReserved,
            "payment_settled" => EntryKind::PaymentSettled,
            "payment_voided" => EntryKind::PaymentVoided,
            "payment_unknown" => EntryKind::PaymentUnknown,
            "payout_created" => EntryKind::PayoutCreated,
            "payout_posted" => EntryKind::PayoutPosted,
            "payout_voided" => EntryKind::PayoutVoided,
            other => return Err(corrupt(format!("entry kind {other:?}"))),
        })
    }
}

/// One immutable journal entry. `amount` is the payment's gross for payment entries and the
/// payout amount for payout entries; `fee`/`net`/`feeBps` and the settlement references are
/// set on `payment_settled` only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub seq: i64,
    pub at_ms: i64,
    pub kind: EntryKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payout_id: Option<String>,
    #[serde(serialize_with = "ser_amount")]
    pub amount: u128,
    #[serde(
        serialize_with = "ser_opt_amount",
        skip_serializing_if = "Option::is_none"
    )]
    pub fee: Option<u128>,
    #[serde(
        serialize_with = "ser_opt_amount",
        skip_serializing_if = "Option::is_none"
    )]
    pub net: Option<u128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee_bps: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_settlement: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl LedgerEntry {
    /// An entry of `kind` with everything optional unset; `seq` is assigned by [`append`].
    fn new(kind: EntryKind, at_ms: i64, amount: u128) -> Self {
        LedgerEntry {
            seq: 0,
            at_ms,
            kind,
            payment_key: None,
            payout_id: None,
            amount,
            fee: None,
            net: None,
            fee_bps: None,
            tx_ref: None,
            network: None,
            payer: None,
            local_settlement: None,
            destination: None,
            reason: None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Row decoding

fn amount_at(row: &Row, i: usize) -> Result<u128, LedgerError> {
    let text = row.text(i)?;
    parse_atomic_amount(text).map_err(|e| corrupt(format!("stored amount {text:?} {e}")))
}

fn opt_amount_at(row: &Row, i: usize) -> Result<Option<u128>, LedgerError> {
    match row.opt_text(i)? {
        None => Ok(None),
        Some(text) => parse_atomic_amount(text)
            .map(Some)
            .map_err(|e| corrupt(format!("stored amount {text:?} {e}"))),
    }
}

fn opt_bps_at(row: &Row, i: usize) -> Result<Option<u32>, LedgerError> {
    row.opt_int(i)?
        .map(|v| u32::try_from(v).map_err(|_| corrupt(format!("stored fee_bps {v}"))))
        .transpose()
}

fn opt_network_at(row: &Row, i: usize) -> Result<Option<Network>, LedgerError> {
    row.opt_text(i)?
        .map(|s| Network::parse(s).ok_or_else(|| corrupt(format!("stored network {s:?}"))))
        .transpose()
}

fn opt_bool_at(row: &Row, i: usize) -> Result<Option<bool>, LedgerError> {
    Ok(row.opt_int(i)?.map(|v| v != 0))
}

fn opt_string_at(row: &Row, i: usize) -> Result<Option<String>, LedgerError> {
    Ok(row.opt_text(i)?.map(str::to_owned))
}

fn count_at(row: &Row, i: usize) -> Result<u64, LedgerError> {
    let v = row.int(i)?;
    u64::try_from(v).map_err(|_| corrupt(format!("stored count {v}")))
}

fn amount_sql(v: u128) -> SqlValue {
    SqlValue::Text(v.to_string())
}

fn opt_amount_sql(v: Option<u128>) -> SqlValue {
    v.map_or(SqlValue::Null, amount_sql)
}

fn count_sql(v: u64) -> Result<SqlValue, LedgerError> {
    let v = i64::try_from(v).map_err(|_| StoreError::IntegerOutOfRange(i64::MAX))?;
    Ok(checked_int(v)?)
}

// ---------------------------------------------------------------------------------------
// Balances: the one-row summary every write keeps current

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Balances {
    last_seq: i64,
    reserved_gross: u128,
    reserved_count: u64,
    settled_gross: u128,
    settled_fee: u128,
    settled_net: u128,
    settled_count: u64,
    local_net: u128,
    local_count: u64,
    voided_count: u64,
    payouts_pending: u128,
    payouts_pending_count: u64,
    payouts_posted: u128,
    payouts_posted_count: u64,
    payouts_voided_count: u64,
    unknown_gross: u128,
    unknown_count: u64,
}

const BALANCE_COLUMNS: &str = "last_seq, reserved_gross, reserved_count, settled_gross, \
    settled_fee, settled_net, settled_count, local_net, local_count, voided_count, \
    payouts_pending, payouts_pending_count, payouts_posted, payouts_posted_count, \
    payouts_voided_count, unknown_gross, unknown_count";
/// [`BALANCE_COLUMNS`] of the balance row joined as `b`.
const B_BALANCE_COLUMNS: &str = "b.last_seq, b.reserved_gross, b.reserved_count, \
    b.settled_gross, b.settled_fee, b.settled_net, b.settled_count, b.local_net, \
    b.local_count, b.voided_count, b.payouts_pending, b.payouts_pending_count, \
    b.payouts_posted, b.payouts_posted_count, b.payouts_voided_count, b.unknown_gross, \
    b.unknown_count";
/// How many columns [`BALANCE_COLUMNS`] names.
const BALANCE_COLUMN_COUNT: usize = 17;
const _: () = assert!(column_count(BALANCE_COLUMNS) == BALANCE_COLUMN_COUNT);
const _: () = assert!(column_count(B_BALANCE_COLUMNS) == BALANCE_COLUMN_COUNT);

/// The number of columns a comma-separated column list names.
const fn column_count(list: &str) -> usize {
    let bytes = list.as_bytes();
    let mut n = 1;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b',' {
            n += 1;
        }
        i += 1;
    }
    n
}

/// `a + b`, or [`LedgerError::AmountOverflow`].
fn add(a: u128, b: u128) -> Result<u128, LedgerError> {
    a.checked_add(b).ok_or(LedgerError::AmountOverflow)
}

/// `a - b` where the books say `a >= b`; anything else is corruption.
fn sub(a: u128, b: u128, what: &str) -> Result<u128, LedgerError> {
    a.checked_sub(b)
        .ok_or_else(|| corrupt(format!("{what} would go below zero")))
}

fn inc(n: u64) -> Result<u64, LedgerError> {
    n.checked_add(1).ok_or_else(|| corrupt("count overflow"))
}

fn dec(n: u64, what: &str) -> Result<u64, LedgerError> {
    n.checked_sub(1)
        .ok_or_else(|| corrupt(format!("{what} count would go below zero")))
}

impl Balances {
    fn load<S: SqlStore>(s: &mut S) -> Result<Balances, LedgerError> {
        let row = s
            .query_opt(
                &format!("SELECT {BALANCE_COLUMNS} FROM ledger_balances WHERE id = 1"),
                &[],
            )?
            .ok_or_else(|| corrupt("balance row missing"))?;
        Balances::at(&row, 0)
    }

    /// The balances in `row` from column `base` on, in [`BALANCE_COLUMNS`] order (a read
    /// that joins the balance row to what else a write needs: one statement).
    fn at(row: &Row, base: usize) -> Result<Balances, LedgerError> {
        Ok(Balances {
            last_seq: row.int(base)?,
            reserved_gross: amount_at(row, base + 1)?,
            reserved_count: count_at(row, base + 2)?,
            settled_gross: amount_at(row, base + 3)?,
            settled_fee: amount_at(row, base + 4)?,
            settled_net: amount_at(row, base + 5)?,
            settled_count: count_at(row, base + 6)?,
            local_net: amount_at(row, base + 7)?,
            local_count: count_at(row, base + 8)?,
            voided_count: count_at(row, base + 9)?,
            payouts_pending: amount_at(row, base + 10)?,
            payouts_pending_count: count_at(row, base + 11)?,
            payouts_posted: amount_at(row, base + 12)?,
            payouts_posted_count: count_at(row, base + 13)?,
            payouts_voided_count: count_at(row, base + 14)?,
            unknown_gross: amount_at(row, base + 15)?,
            unknown_count: count_at(row, base + 16)?,
        })
    }

    /// Checks the invariants, then writes the row. Every write path ends here, inside its
    /// `atomically`, so a violation rolls the whole operation back.
    fn save<S: SqlStore>(&self, s: &mut S) -> Result<(), LedgerError> {
        self.check()?;
        s.exec(
            "UPDATE ledger_balances SET last_seq = ?, reserved_gross = ?, reserved_count = ?,
                settled_gross = ?, settled_fee = ?, settled_net = ?, settled_count = ?,
                local_net = ?, local_count = ?, voided_count = ?,
                payouts_pending = ?, payouts_pending_count = ?, payouts_posted = ?,
                payouts_posted_count = ?, payouts_voided_count = ?, unknown_gross = ?,
                unknown_count = ?
             WHERE id = 1",
            &[
                checked_int(self.last_seq)?,
                amount_sql(self.reserved_gross),
                count_sql(self.reserved_count)?,
                amount_sql(self.settled_gross),
                amount_sql(self.settled_fee),
                amount_sql(self.settled_net),
                count_sql(self.settled_count)?,
                amount_sql(self.local_net),
                count_sql(self.local_count)?,
                count_sql(self.voided_count)?,
                amount_sql(self.payouts_pending),
                count_sql(self.payouts_pending_count)?,
                amount_sql(self.payouts_posted),
                count_sql(self.payouts_posted_count)?,
                count_sql(self.payouts_voided_count)?,
                amount_sql(self.unknown_gross),
                count_sql(self.unknown_count)?,
            ],
        )?;
        Ok(())
    }

    /// What can still be paid out: settled net minus pending and posted payouts.
    fn available(&self) -> Result<u128, LedgerError> {
        self.settled_net
            .checked_sub(self.payouts_pending)
            .and_then(|v| v.checked_sub(self.payouts_posted))
            .ok_or_else(|| corrupt("payouts exceed settled net: balance below zero"))
    }

    fn check(&self) -> Result<(), LedgerError> {
        if self.settled_fee.checked_add(self.settled_net) != Some(self.settled_gross) {
            return Err(corrupt("settled fee + net != settled gross"));
        }
        if self
            .settled_gross
            .checked_add(self.reserved_gross)
            .and_then(|v| v.checked_add(self.unknown_gross))
            .is_none()
        {
            return Err(corrupt("settled + reserved + unknown gross overflows"));
        }
        if self.local_net > self.settled_net || self.local_count > self.settled_count {
            return Err(corrupt("local settlements exceed all settlements"));
        }
        let available = self.available()?;
        // Money is conserved: every settled net unit is available, pending or paid out.
        debug_assert_eq!(
            add(available, self.payouts_pending)
                .and_then(|v| add(v, self.payouts_posted))
                .ok(),
            Some(self.settled_net)
        );
        if !(0..=MAX_SAFE_INTEGER).contains(&self.last_seq) {
            return Err(corrupt("last_seq out of range"));
        }
        Ok(())
    }

    /// The seq the next appended entry gets.
    fn next_seq(&self) -> Result<i64, LedgerError> {
        self.last_seq
            .checked_add(1)
            .filter(|s| *s <= MAX_SAFE_INTEGER)
            .ok_or_else(|| corrupt("seq exhausted"))
    }
}

/// A replay: nothing was written, `record` is the original outcome.
fn replayed<T>(record: T) -> Result<Applied<T>, LedgerError> {
    Ok(Applied {
        record,
        replayed: true,
    })
}

/// The ending every state change shares: saves the balances, then answers with the record
/// as written (`reload` reads row `key` back).
fn commit<S: SqlStore, T>(
    s: &mut S,
    b: &Balances,
    reload: fn(&mut S, &str) -> Result<T, LedgerError>,
    key: &str,
) -> Result<Applied<T>, LedgerError> {
    b.save(s)?;
    Ok(Applied {
        record: reload(s, key)?,
        replayed: false,
    })
}

/// A table of records that open in one state and close once (payments, payouts); names are
/// constants, never input.
struct Records {
    table: &'static str,
    key: &'static str,
    open: &'static str,
}

/// Moves the open record `key` to its final `state`, setting `set.0` (a constant column) to
/// `set.1`. False when the record was not open: a broken invariant the caller reports.
fn close<S: SqlStore>(
    s: &mut S,
    t: &Records,
    key: &str,
    state: &str,
    set: (&'static str, &str),
    now_ms: i64,
    seq: i64,
) -> Result<bool, LedgerError> {
    let Records {
        table,
        key: key_column,
        open,
    } = t;
    let column = set.0;
    let sql = format!(
        "UPDATE {table} SET state = ?, {column} = ?, updated_at_ms = ?, last_seq = ?
         WHERE {key_column} = ? AND state = '{open}' RETURNING {key_column}"
    );
    let updated = s.query_opt(
        &sql,
        &[
            state.into(),
            set.1.into(),
            checked_int(now_ms)?,
            checked_int(seq)?,
            key.into(),
        ],
    )?;
    Ok(updated.is_some())
}

/// Appends one entry with the next seq and advances `b.last_seq` (saved by the caller in the
/// same atomic step). Returns the seq.
fn append<S: SqlStore>(s: &mut S, b: &mut Balances, e: &LedgerEntry) -> Result<i64, LedgerError> {
    let seq = b.next_seq()?;
    s.exec(
        "INSERT INTO ledger_entries (seq, at_ms, kind, payment_key, payout_id, amount, fee, net,
            fee_bps, tx_ref, network, payer, local_settlement, destination, reason)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            checked_int(seq)?,
            checked_int(e.at_ms)?,
            e.kind.as_str().into(),
            e.payment_key.as_deref().into(),
            e.payout_id.as_deref().into(),
            amount_sql(e.amount),
            opt_amount_sql(e.fee),
            opt_amount_sql(e.net),
            e.fee_bps.into(),
            e.tx_ref.as_deref().into(),
            e.network.map(Network::caip2).into(),
            e.payer.as_deref().into(),
            e.local_settlement.into(),
            e.destination.as_deref().into(),
            e.reason.as_deref().into(),
        ],
    )?;
    debug_assert!(seq > b.last_seq);
    b.last_seq = seq;
    Ok(seq)
}

// ---------------------------------------------------------------------------------------
// The ledger

pub struct Ledger<'s, S: SqlStore> {
    store: &'s mut S,
}

impl<'s, S: SqlStore> Ledger<'s, S> {
    /// Opens the ledger, creating its tables on first use. One lookup when the schema is
    /// in place (the object opens the ledger on every request), else the whole [`SCHEMA`]
    /// (idempotent: `IF NOT EXISTS`).
    pub fn open(store: &'s mut S) -> Result<Self, LedgerError> {
        if store.schema_known(SCHEMA_MARKER) {
            return Ok(Ledger { store });
        }
        let ready = store
            .query_opt(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                &[SCHEMA_MARKER.into()],
            )?
            .is_some();
        if !ready {
            store.atomically(&mut |s| {
                let has = |s: &mut S, name: &str| -> Result<bool, LedgerError> {
                    Ok(s.query_opt(
                        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                        &[name.into()],
                    )?
                    .is_some())
                };
                // The first schema needs its tables rebuilt; the second only gains tables.
                let v1 = has(s, SCHEMA_V1_MARKER)? && !has(s, SCHEMA_V2_MARKER)?;
                let steps: [&[&str]; 3] = if v1 {
                    [MIGRATE_V1, SCHEMA, MIGRATE_V1_COPY]
                } else {
                    [&[], SCHEMA, &[]]
                };
                for stmt in steps.concat() {
                    s.exec(stmt, &[])?;
                }
                Ok::<(), LedgerError>(())
            })?;
        }
        store.note_schema(SCHEMA_MARKER);
        Ok(Ledger { store })
    }
}
