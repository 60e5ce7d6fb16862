//! Payments: `reserved -> settled | voided | unknown`, `unknown -> settled | voided`.

use super::{
    add, check_now, check_positive, check_text, check_token, corrupt, dec, inc, split_fee, sub,
    Applied, Balances, EntryKind, Ledger, LedgerEntry, LedgerError, Payment, PaymentState, Records,
    Settlement, DAY_MS, EXPIRED_REASON, LOCAL_TX_PREFIX, MAX_FINGERPRINT_LEN, MAX_KEY_LEN,
    MAX_REASON_LEN, MAX_TX_REF_LEN,
};
use super::{amount_at, amount_sql, append, close, commit, count_at, count_sql, replayed};
use super::{column_count, BALANCE_COLUMN_COUNT, B_BALANCE_COLUMNS};
use super::{opt_amount_at, opt_bool_at, opt_bps_at, opt_network_at, opt_string_at};
use crate::store::{checked_int, Row, SqlStore, SqlValue};
use crate::tenant::parse_evm_address;

const PAYMENT_COLUMNS: &str = "payment_key, fingerprint, state, gross, fee, net, fee_bps, \
    tx_ref, network, payer, local_settlement, void_reason, reserved_at_ms, updated_at_ms, \
    reserved_seq, last_seq, asset, nonce, valid_before_s, unknown_reason";
/// [`PAYMENT_COLUMNS`] of a payment row joined as `p`.
const P_PAYMENT_COLUMNS: &str = "p.payment_key, p.fingerprint, p.state, p.gross, p.fee, \
    p.net, p.fee_bps, p.tx_ref, p.network, p.payer, p.local_settlement, p.void_reason, \
    p.reserved_at_ms, p.updated_at_ms, p.reserved_seq, p.last_seq, p.asset, p.nonce, \
    p.valid_before_s, p.unknown_reason";
const PAYMENT_COLUMN_COUNT: usize = 20;
const _: () = assert!(column_count(PAYMENT_COLUMNS) == PAYMENT_COLUMN_COUNT);
const _: () = assert!(column_count(P_PAYMENT_COLUMNS) == PAYMENT_COLUMN_COUNT);

fn payment(row: &Row) -> Result<Payment, LedgerError> {
    payment_at(row, 0)
}

/// The payment in `row` from column `b` on, in [`PAYMENT_COLUMNS`] order.
fn payment_at(row: &Row, b: usize) -> Result<Payment, LedgerError> {
    Ok(Payment {
        key: row.text(b)?.to_owned(),
        fingerprint: row.text(b + 1)?.to_owned(),
        state: PaymentState::parse(row.text(b + 2)?)?,
        gross: amount_at(row, b + 3)?,
        fee: opt_amount_at(row, b + 4)?,
        net: opt_amount_at(row, b + 5)?,
        fee_bps: opt_bps_at(row, b + 6)?,
        tx_ref: opt_string_at(row, b + 7)?,
        network: opt_network_at(row, b + 8)?,
        payer: opt_string_at(row, b + 9)?,
        local_settlement: opt_bool_at(row, b + 10)?,
        void_reason: opt_string_at(row, b + 11)?,
        reserved_at_ms: row.int(b + 12)?,
        updated_at_ms: row.int(b + 13)?,
        reserved_seq: row.int(b + 14)?,
        last_seq: row.int(b + 15)?,
        asset: opt_string_at(row, b + 16)?,
        nonce: opt_string_at(row, b + 17)?,
        valid_before_s: row.opt_int(b + 18)?,
        unknown_reason: opt_string_at(row, b + 19)?,
    })
}

pub(super) fn load_payment<S: SqlStore>(
    s: &mut S,
    key: &str,
) -> Result<Option<Payment>, LedgerError> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM ledger_payments WHERE payment_key = ?");
    s.query_opt(&sql, &[key.into()])?
        .as_ref()
        .map(payment)
        .transpose()
}

const PAYMENTS: Records = Records {
    table: "ledger_payments",
    key: "payment_key",
    open: "reserved",
};

fn reload<S: SqlStore>(s: &mut S, key: &str) -> Result<Payment, LedgerError> {
    load_payment(s, key)?.ok_or_else(|| corrupt(format!("payment {key:?} vanished after write")))
}

/// A settlement as it is stored: the payer normalized.
struct Normalized<'a> {
    tx_ref: &'a str,
    network: crate::tenant::Network,
    payer: String,
    local_settlement: bool,
    fee_bps: u32,
    reason: Option<&'a str>,
}

impl Normalized<'_> {
    /// Which field differs from how `p` was settled, if any.
    fn differs_from(&self, p: &Payment) -> Option<&'static str> {
        if p.tx_ref.as_deref() != Some(self.tx_ref) {
            Some("txRef")
        } else if p.network != Some(self.network) {
            Some("network")
        } else if p.payer.as_deref() != Some(self.payer.as_str()) {
            Some("payer")
        } else if p.local_settlement != Some(self.local_settlement) {
            Some("localSettlement")
        } else if p.fee_bps != Some(self.fee_bps) {
            Some("feeBps")
        } else {
            None
        }
    }
}

/// What the chain needs to answer for a payment, recorded when it is reserved: the
/// network and token, the authorization's payer and nonce and `validBefore`, and the
/// tenant plan's fee (so a payment the reconciler settles is split as the call would
/// have been).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFacts<'a> {
    pub network: crate::tenant::Network,
    pub asset: &'a str,
    pub payer: &'a str,
    /// `0x` + 64 hex digits.
    pub nonce: &'a str,
    pub valid_before_s: i64,
    pub fee_bps: u32,
}

/// [`ChainFacts`] as stored: addresses and nonce lowercased, all checked.
struct CheckedFacts {
    network: crate::tenant::Network,
    asset: String,
    payer: String,
    nonce: String,
    valid_before_s: i64,
    fee_bps: u32,
}

fn check_facts(f: &ChainFacts<'_>) -> Result<CheckedFacts, LedgerError> {
    let asset = parse_evm_address(f.asset).map_err(|e| super::invalid("asset", e))?;
    let payer = parse_evm_address(f.payer).map_err(|e| super::invalid("payer", e))?;
    let nonce_ok = f.nonce.len() == 66
        && f.nonce.starts_with("0x")
        && f.nonce[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !nonce_ok {
        return Err(super::invalid(
            "nonce",
            "must be 0x followed by 64 hex digits",
        ));
    }
    if !(0..=crate::store::MAX_SAFE_INTEGER).contains(&f.valid_before_s) {
        return Err(super::invalid("validBeforeS", "must be unix seconds"));
    }
    split_fee(0, f.fee_bps)?;
    Ok(CheckedFacts {
        network: f.network,
        asset,
        payer,
        nonce: f.nonce.to_ascii_lowercase(),
        valid_before_s: f.valid_before_s,
        fee_bps: f.fee_bps,
    })
}

impl<S: SqlStore> Ledger<'_, S> {
    /// The payment with this key, in its current state.
    pub fn payment(&mut self, key: &str) -> Result<Option<Payment>, LedgerError> {
        check_token("key", key, MAX_KEY_LEN)?;
        load_payment(self.store, key)
    }

    /// Reserves a verified payment before the tenant is called. A key is reserved at most
    /// once, ever: a key seen before is refused with `payment_key_reused` when the
    /// fingerprint or gross differ, else with its state (`payment_in_flight`,
    /// `payment_already_settled`, `payment_already_voided`), so one payment can never pay
    /// for two calls.
    pub fn reserve(
        &mut self,
        key: &str,
        fingerprint: &str,
        gross: u128,
        now_ms: i64,
    ) -> Result<Payment, LedgerError> {
        self.reserve_with(key, fingerprint, gross, None, now_ms)
    }

    /// [`Ledger::reserve`], recording what reconciliation needs ([`ChainFacts`]). A payment
    /// reserved without them can still be settled and voided by its call, but if its
    /// outcome becomes unknown no chain can decide it: it stays `unknown`, visible.
    pub fn reserve_with(
        &mut self,
        key: &str,
        fingerprint: &str,
        gross: u128,
        facts: Option<&ChainFacts<'_>>,
        now_ms: i64,
    ) -> Result<Payment, LedgerError> {
        self.reserve_identified(key, fingerprint, gross, facts, None, now_ms)
    }

    /// [`Ledger::reserve_with`], binding the client's `payment_id` (the x402
    /// payment-identifier extension) to this payment: an id already bound to another
    /// payment is refused (`payment_identifier_reused`) and nothing is reserved.
    pub fn reserve_identified(
        &mut self,
        key: &str,
        fingerprint: &str,
        gross: u128,
        facts: Option<&ChainFacts<'_>>,
        payment_id: Option<&str>,
        now_ms: i64,
    ) -> Result<Payment, LedgerError> {
        check_token("key", key, MAX_KEY_LEN)?;
        check_token("fingerprint", fingerprint, MAX_FINGERPRINT_LEN)?;
        check_positive("gross", gross)?;
        check_now(now_ms)?;
        if let Some(id) = payment_id {
            check_token("paymentId", id, MAX_KEY_LEN)?;
        }
        let facts = facts.map(check_facts).transpose()?;
        self.store.atomically(&mut |s| {
            if let Some(id) = payment_id {
                bind_payment_id(s, id, key, fingerprint)?;
            }
            reserve_in(s, key, fingerprint, gross, facts.as_ref(), now_ms)
        })
    }

    /// The payment (key, fingerprint) a client's payment id is bound to.
    pub fn payment_by_id(&mut self, id: &str) -> Result<Option<(String, String)>, LedgerError> {
        check_token("paymentId", id, MAX_KEY_LEN)?;
        let row = self.store.query_opt(
            "SELECT payment_key, fingerprint FROM ledger_payment_ids WHERE payment_id = ?",
            &[id.into()],
        )?;
        row.map(|r| Ok((r.text(0)?.to_owned(), r.text(1)?.to_owned())))
            .transpose()
    }

    /// Settles a reserved payment, splitting its gross into fee and net at `fee_bps` and
    /// crediting the net to the available balance. Repeating a settlement with the same
    /// references returns the original (`replayed`); different references are a
    /// `settlement_conflict`. A voided payment cannot be settled.
    pub fn settle(
        &mut self,
        key: &str,
        settlement: &Settlement<'_>,
        now_ms: i64,
    ) -> Result<Applied<Payment>, LedgerError> {
        self.settle_with_event(key, settlement, None, now_ms)
    }

    /// [`Ledger::settle`], keeping the call's usage `event` in the same atomic step when
    /// the payment settles now (not on a replay): see `super::events`.
    pub fn settle_with_event(
        &mut self,
        key: &str,
        settlement: &Settlement<'_>,
        event: Option<&crate::events::UsageEvent>,
        now_ms: i64,
    ) -> Result<Applied<Payment>, LedgerError> {
        check_token("key", key, MAX_KEY_LEN)?;
        check_token("txRef", settlement.tx_ref, MAX_TX_REF_LEN)?;
        let payer = parse_evm_address(settlement.payer).map_err(|e| super::invalid("payer", e))?;
        // Validates fee_bps before anything is read or written.
        split_fee(0, settlement.fee_bps)?;
        check_now(now_ms)?;
        let n = Normalized {
            tx_ref: settlement.tx_ref,
            network: settlement.network,
            payer,
            local_settlement: settlement.local_settlement,
            fee_bps: settlement.fee_bps,
            reason: settlement.reason,
        };
        self.store.atomically(&mut |s| {
            let applied = settle_in(s, key, &n, now_ms)?;
            if let (Some(e), false) = (event, applied.replayed) {
                super::events::keep(s, e, now_ms)?;
            }
            Ok(applied)
        })
    }

    /// Voids a reserved payment (the tenant failed, or settlement was refused). Voiding a
    /// voided payment returns the original (`replayed`); a settled payment cannot be
    /// voided, nor can an `unknown` one (only the chain decides those:
    /// the reconciler, [`Close::VoidUnsettled`]).
    pub fn void(
        &mut self,
        key: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<Applied<Payment>, LedgerError> {
        self.close_payment(key, reason, now_ms, Close::Void)
    }

    /// Marks a reserved payment `unknown`: its settlement was sent and no usable answer
    /// came back (timeout, garbage, a dropped connection), so it may or may not have
    /// settled. Repeating it returns the original (`replayed`); a settled or voided payment
    /// is refused with its state.
    pub fn mark_unknown(
        &mut self,
        key: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<Applied<Payment>, LedgerError> {
        self.close_payment(key, reason, now_ms, Close::MarkUnknown)
    }

    /// Closes a payment: voids it (its own call: only a reserved one; the reconciler,
    /// [`Close::VoidUnsettled`]: also an unknown one the chain says can never settle, its
    /// authorization unused and the chain's clock past its `validBefore`), or marks it
    /// unknown. The checks and the atomic step all three share.
    pub(super) fn close_payment(
        &mut self,
        key: &str,
        reason: &str,
        now_ms: i64,
        how: Close,
    ) -> Result<Applied<Payment>, LedgerError> {
        check_token("key", key, MAX_KEY_LEN)?;
        check_text("reason", reason, MAX_REASON_LEN)?;
        check_now(now_ms)?;
        self.store.atomically(&mut |s| match how {
            Close::Void => void_in(s, key, reason, false, now_ms),
            Close::VoidUnsettled => void_in(s, key, reason, true, now_ms),
            Close::MarkUnknown => mark_unknown_in(s, key, reason, now_ms),
        })
    }
}

#[derive(Clone, Copy)]
pub(super) enum Close {
    Void,
    VoidUnsettled,
    MarkUnknown,
}

/// Binds `id` to the payment `key`; the same binding again is fine, another is refused.
fn bind_payment_id<S: SqlStore>(
    s: &mut S,
    id: &str,
    key: &str,
    fingerprint: &str,
) -> Result<(), LedgerError> {
    let bound = s.query_opt(
        "SELECT payment_key, fingerprint FROM ledger_payment_ids WHERE payment_id = ?",
        &[id.into()],
    )?;
    match bound {
        Some(r) if r.text(0)? == key && r.text(1)? == fingerprint => Ok(()),
        Some(_) => Err(LedgerError::PaymentIdentifierReused),
        None => {
            s.exec(
                "INSERT INTO ledger_payment_ids (payment_id, payment_key, fingerprint)
                 VALUES (?, ?, ?)",
                &[id.into(), key.into(), fingerprint.into()],
            )?;
            Ok(())
        }
    }
}

/// Moves a payment's gross out of its open bucket (`reserved` or `unknown`).
fn release(b: &mut Balances, p: &Payment) -> Result<(), LedgerError> {
    match p.state {
        PaymentState::Reserved => {
            b.reserved_gross = sub(b.reserved_gross, p.gross, "reserved gross")?;
            b.reserved_count = dec(b.reserved_count, "reserved")?;
        }
        PaymentState::Unknown => {
            b.unknown_gross = sub(b.unknown_gross, p.gross, "unknown gross")?;
            b.unknown_count = dec(b.unknown_count, "unknown")?;
        }
        PaymentState::Settled | PaymentState::Voided => {
            return Err(corrupt(format!("payment {:?} is not open", p.key)))
        }
    }
    Ok(())
}

fn mark_unknown_in<S: SqlStore>(
    s: &mut S,
    key: &str,
    reason: &str,
    now_ms: i64,
) -> Result<Applied<Payment>, LedgerError> {
    let p = load_payment(s, key)?.ok_or_else(|| LedgerError::PaymentNotFound(key.to_owned()))?;
    match p.state {
        PaymentState::Unknown => return replayed(p),
        PaymentState::Settled => return Err(LedgerError::PaymentAlreadySettled),
        PaymentState::Voided => return Err(LedgerError::PaymentAlreadyVoided),
        PaymentState::Reserved => {}
    }
    let mut b = Balances::load(s)?;
    release(&mut b, &p)?;
    b.unknown_gross = add(b.unknown_gross, p.gross)?;
    b.unknown_count = inc(b.unknown_count)?;
    let mut e = LedgerEntry::new(EntryKind::PaymentUnknown, now_ms, p.gross);
    e.payment_key = Some(key.to_owned());
    e.reason = Some(reason.to_owned());
    let seq = append(s, &mut b, &e)?;
    let moved = s.query_opt(
        "UPDATE ledger_payments SET state = 'unknown', unknown_reason = ?, updated_at_ms = ?,
            last_seq = ?
         WHERE payment_key = ? AND state = 'reserved' RETURNING payment_key",
        &[
            reason.into(),
            checked_int(now_ms)?,
            checked_int(seq)?,
            key.into(),
        ],
    )?;
    if moved.is_none() {
        return Err(corrupt(format!("payment {key:?} left reserved mid-mark")));
    }
    commit(s, &b, reload, key)
}

fn reserve_in<S: SqlStore>(
    s: &mut S,
    key: &str,
    fingerprint: &str,
    gross: u128,
    facts: Option<&CheckedFacts>,
    now_ms: i64,
) -> Result<Payment, LedgerError> {
    // One read: the balance row, and the payment if this key was ever reserved.
    let row = s
        .query_opt(
            &format!(
                "SELECT {B_BALANCE_COLUMNS}, {P_PAYMENT_COLUMNS} FROM ledger_balances b
                 LEFT JOIN ledger_payments p ON p.payment_key = ? WHERE b.id = 1"
            ),
            &[key.into()],
        )?
        .ok_or_else(|| corrupt("balance row missing"))?;
    if row.opt_text(BALANCE_COLUMN_COUNT)?.is_some() {
        let p = payment_at(&row, BALANCE_COLUMN_COUNT)?;
        if p.fingerprint != fingerprint || p.gross != gross {
            return Err(LedgerError::PaymentKeyReused);
        }
        return Err(match p.state {
            PaymentState::Reserved => LedgerError::PaymentInFlight,
            PaymentState::Settled => LedgerError::PaymentAlreadySettled,
            PaymentState::Voided => LedgerError::PaymentAlreadyVoided,
            PaymentState::Unknown => LedgerError::PaymentOutcomeUnknown,
        });
    }
    let mut b = Balances::at(&row, 0)?;
    b.reserved_gross = add(b.reserved_gross, gross)?;
    // Keep settled + reserved + unknown within u128, so settling can never overflow.
    add(add(b.settled_gross, b.reserved_gross)?, b.unknown_gross)?;
    b.reserved_count = inc(b.reserved_count)?;

    let mut e = LedgerEntry::new(EntryKind::PaymentReserved, now_ms, gross);
    e.payment_key = Some(key.to_owned());
    let seq = append(s, &mut b, &e)?;
    s.exec(
        "INSERT INTO ledger_payments (payment_key, fingerprint, state, gross, reserved_at_ms,
            updated_at_ms, reserved_seq, last_seq, network, asset, payer, nonce,
            valid_before_s, fee_bps)
         VALUES (?, ?, 'reserved', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            key.into(),
            fingerprint.into(),
            amount_sql(gross),
            checked_int(now_ms)?,
            checked_int(now_ms)?,
            checked_int(seq)?,
            checked_int(seq)?,
            facts.map(|f| f.network.caip2()).into(),
            facts.map(|f| f.asset.as_str()).into(),
            facts.map(|f| f.payer.as_str()).into(),
            facts.map(|f| f.nonce.as_str()).into(),
            match facts {
                Some(f) => checked_int(f.valid_before_s)?,
                None => SqlValue::Null,
            },
            facts.map(|f| f.fee_bps).into(),
        ],
    )?;
    b.save(s)?;
    // The row as just written, not read back.
    Ok(Payment {
        key: key.to_owned(),
        fingerprint: fingerprint.to_owned(),
        state: PaymentState::Reserved,
        gross,
        fee: None,
        net: None,
        fee_bps: facts.map(|f| f.fee_bps),
        tx_ref: None,
        network: facts.map(|f| f.network),
        payer: facts.map(|f| f.payer.clone()),
        local_settlement: None,
        void_reason: None,
        reserved_at_ms: now_ms,
        updated_at_ms: now_ms,
        reserved_seq: seq,
        last_seq: seq,
        asset: facts.map(|f| f.asset.clone()),
        nonce: facts.map(|f| f.nonce.clone()),
        valid_before_s: facts.map(|f| f.valid_before_s),
        unknown_reason: None,
    })
}

fn settle_in<S: SqlStore>(
    s: &mut S,
    key: &str,
    n: &Normalized<'_>,
    now_ms: i64,
) -> Result<Applied<Payment>, LedgerError> {
    // One read: the payment, the balances, another payment already settled with this
    // transaction hash (if any), and today's bucket.
    let day = now_ms / DAY_MS;
    let row = s
        .query_opt(
            &format!(
                "SELECT {P_PAYMENT_COLUMNS}, {B_BALANCE_COLUMNS},
                    (SELECT o.payment_key FROM ledger_payments o
                     WHERE o.tx_ref = ? AND o.payment_key <> p.payment_key LIMIT 1),
                    d.gross, d.fee, d.net, d.count
                 FROM ledger_payments p JOIN ledger_balances b ON b.id = 1
                 LEFT JOIN ledger_days d ON d.day = ?
                 WHERE p.payment_key = ?"
            ),
            &[n.tx_ref.into(), checked_int(day)?, key.into()],
        )?
        .ok_or_else(|| LedgerError::PaymentNotFound(key.to_owned()))?;
    let p = payment_at(&row, 0)?;
    match p.state {
        PaymentState::Settled => {
            return match n.differs_from(&p) {
                None => replayed(p),
                Some(field) => Err(LedgerError::SettlementConflict(field)),
            }
        }
        PaymentState::Voided => return Err(LedgerError::PaymentAlreadyVoided),
        PaymentState::Reserved | PaymentState::Unknown => {}
    }
    let after = PAYMENT_COLUMN_COUNT + BALANCE_COLUMN_COUNT;
    check_tx_ref(&p, n, row.opt_text(after)?)?;
    let (fee, net) = split_fee(p.gross, n.fee_bps)?;

    let mut b = Balances::at(&row, PAYMENT_COLUMN_COUNT)?;
    release(&mut b, &p)?;
    b.settled_gross = add(b.settled_gross, p.gross)?;
    b.settled_fee = add(b.settled_fee, fee)?;
    b.settled_net = add(b.settled_net, net)?;
    b.settled_count = inc(b.settled_count)?;
    if n.local_settlement {
        b.local_net = add(b.local_net, net)?;
        b.local_count = inc(b.local_count)?;
    }
    let today = if row.opt_text(after + 1)?.is_some() {
        DayTotals {
            gross: amount_at(&row, after + 1)?,
            fee: amount_at(&row, after + 2)?,
            net: amount_at(&row, after + 3)?,
            count: count_at(&row, after + 4)?,
        }
    } else {
        DayTotals::default()
    };
    add_to_day(s, day, today, p.gross, fee, net)?;

    let mut e = LedgerEntry::new(EntryKind::PaymentSettled, now_ms, p.gross);
    e.payment_key = Some(key.to_owned());
    e.fee = Some(fee);
    e.net = Some(net);
    e.fee_bps = Some(n.fee_bps);
    e.tx_ref = Some(n.tx_ref.to_owned());
    e.network = Some(n.network);
    e.payer = Some(n.payer.clone());
    e.local_settlement = Some(n.local_settlement);
    e.reason = n.reason.map(str::to_owned);
    let seq = append(s, &mut b, &e)?;
    let updated = s.query_opt(
        "UPDATE ledger_payments SET state = 'settled', fee = ?, net = ?, fee_bps = ?,
            tx_ref = ?, network = ?, payer = ?, local_settlement = ?, updated_at_ms = ?,
            last_seq = ?
         WHERE payment_key = ? AND state IN ('reserved', 'unknown') RETURNING payment_key",
        &[
            amount_sql(fee),
            amount_sql(net),
            n.fee_bps.into(),
            n.tx_ref.into(),
            n.network.caip2().into(),
            n.payer.as_str().into(),
            n.local_settlement.into(),
            checked_int(now_ms)?,
            checked_int(seq)?,
            key.into(),
        ],
    )?;
    if updated.is_none() {
        return Err(corrupt(format!("payment {key:?} left open mid-settle")));
    }
    b.save(s)?;
    // The row as just written, not read back.
    Ok(Applied {
        record: Payment {
            state: PaymentState::Settled,
            fee: Some(fee),
            net: Some(net),
            fee_bps: Some(n.fee_bps),
            tx_ref: Some(n.tx_ref.to_owned()),
            network: Some(n.network),
            payer: Some(n.payer.clone()),
            local_settlement: Some(n.local_settlement),
            updated_at_ms: now_ms,
            last_seq: seq,
            ..p
        },
        replayed: false,
    })
}

/// A settlement's reference must identify it alone. A local settlement's is
/// `local:<the payment's fingerprint>` (unique per signed payment by construction); an
/// on-chain one is a transaction hash that no other payment of this ledger settled with,
/// and never starts with `local:`, so the two kinds cannot be confused.
fn check_tx_ref(p: &Payment, n: &Normalized<'_>, other: Option<&str>) -> Result<(), LedgerError> {
    let local_ref = n.tx_ref.starts_with(LOCAL_TX_PREFIX);
    if n.local_settlement {
        if n.tx_ref.strip_prefix(LOCAL_TX_PREFIX) != Some(p.fingerprint.as_str()) {
            return Err(super::invalid(
                "txRef",
                "a local settlement's txRef must be local:<the payment's fingerprint>",
            ));
        }
        return Ok(());
    }
    if local_ref {
        return Err(super::invalid(
            "txRef",
            "the local: prefix is reserved for local settlements",
        ));
    }
    match other {
        Some(_) => Err(LedgerError::TransactionAlreadyRecorded(n.tx_ref.to_owned())),
        None => Ok(()),
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Overdue reservations this sweep marked `unknown` (for the reconciler).
    pub marked_unknown: u64,
    /// When the oldest reservation still open falls due (its `reserved_at_ms + ttl_ms`),
    /// or `None` when no payment is reserved: when to run the next sweep.
    pub next_due_ms: Option<i64>,
}

impl<S: SqlStore> Ledger<'_, S> {
    /// Marks `unknown`, oldest first and at most `max`, every payment still reserved at or
    /// before `now_ms - ttl_ms`, with reason [`EXPIRED_REASON`]: its call is over (the
    /// dispatcher died between reserve and settle/void, or could not record the outcome),
    /// and whether it settled is for the chain to say, never for a timer. All of one
    /// sweep's changes land together or not at all.
    pub fn sweep_expired(
        &mut self,
        now_ms: i64,
        ttl_ms: i64,
        max: u32,
    ) -> Result<SweepReport, LedgerError> {
        check_now(now_ms)?;
        if !(0..=now_ms).contains(&ttl_ms) {
            return Err(super::invalid("ttlMs", "must be 0 to now"));
        }
        let cutoff = now_ms - ttl_ms;
        // The next due time is read in the same atomic step: a failure after the marks
        // would otherwise report an error for work that did land.
        let (marked, oldest) = self.store.atomically(&mut |s| {
            let rows = s.exec(
                "SELECT payment_key FROM ledger_payments
                 WHERE state = 'reserved' AND reserved_at_ms <= ?
                 ORDER BY reserved_at_ms, payment_key LIMIT ?",
                &[checked_int(cutoff)?, max.into()],
            )?;
            let mut marked = 0u64;
            for row in &rows {
                let key = row.text(0)?.to_owned();
                let applied = mark_unknown_in(s, &key, EXPIRED_REASON, now_ms)?;
                debug_assert!(!applied.replayed);
                marked = inc(marked)?;
            }
            let oldest = s
                .query_one(
                    "SELECT MIN(reserved_at_ms) FROM ledger_payments WHERE state = 'reserved'",
                    &[],
                )?
                .opt_int(0)?;
            Ok::<_, LedgerError>((marked, oldest))
        })?;
        Ok(SweepReport {
            marked_unknown: marked,
            next_due_ms: oldest.map(|at| at.saturating_add(ttl_ms)),
        })
    }
}

/// A UTC day bucket's totals as stored.
#[derive(Debug, Default, Clone, Copy)]
struct DayTotals {
    gross: u128,
    fee: u128,
    net: u128,
    count: u64,
}

/// Adds one settlement to its UTC day bucket (`day` = days since the epoch), whose totals
/// were `was` (read with the payment).
fn add_to_day<S: SqlStore>(
    s: &mut S,
    day: i64,
    was: DayTotals,
    gross: u128,
    fee: u128,
    net: u128,
) -> Result<(), LedgerError> {
    s.exec(
        "INSERT INTO ledger_days (day, gross, fee, net, count) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (day) DO UPDATE SET gross = excluded.gross, fee = excluded.fee,
            net = excluded.net, count = excluded.count",
        &[
            checked_int(day)?,
            amount_sql(add(was.gross, gross)?),
            amount_sql(add(was.fee, fee)?),
            amount_sql(add(was.net, net)?),
            count_sql(inc(was.count)?)?,
        ],
    )?;
    Ok(())
}

fn void_in<S: SqlStore>(
    s: &mut S,
    key: &str,
    reason: &str,
    unknown_too: bool,
    now_ms: i64,
) -> Result<Applied<Payment>, LedgerError> {
    let p = load_payment(s, key)?.ok_or_else(|| LedgerError::PaymentNotFound(key.to_owned()))?;
    match p.state {
        PaymentState::Voided => return replayed(p),
        PaymentState::Settled => return Err(LedgerError::PaymentAlreadySettled),
        PaymentState::Unknown if !unknown_too => return Err(LedgerError::PaymentOutcomeUnknown),
        PaymentState::Reserved | PaymentState::Unknown => {}
    }
    let mut b = Balances::load(s)?;
    release(&mut b, &p)?;
    b.voided_count = inc(b.voided_count)?;

    let mut e = LedgerEntry::new(EntryKind::PaymentVoided, now_ms, p.gross);
    e.payment_key = Some(key.to_owned());
    e.reason = Some(reason.to_owned());
    let seq = append(s, &mut b, &e)?;
    let voided = PaymentState::Voided.as_str();
    let records = Records {
        open: p.state.as_str(),
        ..PAYMENTS
    };
    if !close(
        s,
        &records,
        key,
        voided,
        ("void_reason", reason),
        now_ms,
        seq,
    )? {
        return Err(corrupt(format!("payment {key:?} left open mid-void")));
    }
    commit(s, &b, reload, key)
}
