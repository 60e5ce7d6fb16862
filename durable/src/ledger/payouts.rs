//! Payouts: `pending -> posted | voided`.
//!
//! Idempotency: a create with a known idempotency key and the same request (fingerprint,
//! amount, destination) returns the original payout, whatever its state now; with a
//! different request it is `idempotency_key_reused`. Each create runs as one synchronous
//! atomic step inside a single-threaded object, so no create is ever observed half done:
//! there is no "in flight" state for a key (see `wire` for what 409 means on payouts).

use super::{
    add, check_now, check_positive, check_text, check_token, corrupt, dec, inc, sub, Applied,
    Balances, EntryKind, Ledger, LedgerEntry, LedgerError, Payout, PayoutState, Records,
    MAX_FINGERPRINT_LEN, MAX_KEY_LEN, MAX_REASON_LEN, MAX_TX_REF_LEN,
};
use super::{amount_at, amount_sql, append, close, commit, opt_string_at, replayed};
use crate::store::{checked_int, Row, SqlStore, SqlValue, MAX_SAFE_INTEGER};
use crate::tenant::parse_evm_address;

/// Payout ids are `po_<seq of the payout_created entry>`: unique and sans-IO.
const PAYOUT_ID_PREFIX: &str = "po_";
const MAX_PAYOUT_ID_LEN: usize = 32;

const PAYOUT_COLUMNS: &str = "payout_id, idempotency_key, fingerprint, state, amount, \
    destination, tx_ref, void_reason, created_at_ms, updated_at_ms, created_seq, last_seq";

fn payout(row: &Row) -> Result<Payout, LedgerError> {
    Ok(Payout {
        id: row.text(0)?.to_owned(),
        idempotency_key: row.text(1)?.to_owned(),
        fingerprint: row.text(2)?.to_owned(),
        state: PayoutState::parse(row.text(3)?)?,
        amount: amount_at(row, 4)?,
        destination: row.text(5)?.to_owned(),
        tx_ref: opt_string_at(row, 6)?,
        void_reason: opt_string_at(row, 7)?,
        created_at_ms: row.int(8)?,
        updated_at_ms: row.int(9)?,
        created_seq: row.int(10)?,
        last_seq: row.int(11)?,
    })
}

fn load_by<S: SqlStore>(s: &mut S, column: &str, v: &str) -> Result<Option<Payout>, LedgerError> {
    let sql = format!("SELECT {PAYOUT_COLUMNS} FROM ledger_payouts WHERE {column} = ?");
    s.query_opt(&sql, &[v.into()])?
        .as_ref()
        .map(payout)
        .transpose()
}

pub(super) fn load_payout<S: SqlStore>(s: &mut S, id: &str) -> Result<Option<Payout>, LedgerError> {
    load_by(s, "payout_id", id)
}

const PAYOUTS: Records = Records {
    table: "ledger_payouts",
    key: "payout_id",
    open: "pending",
};

fn reload<S: SqlStore>(s: &mut S, id: &str) -> Result<Payout, LedgerError> {
    load_payout(s, id)?.ok_or_else(|| corrupt(format!("payout {id:?} vanished after write")))
}

/// A well-formed id, or `payout_not_found` (ids only ever come from this module).
fn check_payout_id(id: &str) -> Result<(), LedgerError> {
    let ok = id.len() <= MAX_PAYOUT_ID_LEN
        && id
            .strip_prefix(PAYOUT_ID_PREFIX)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(LedgerError::PayoutNotFound(id.to_owned()))
    }
}

/// A payout destination: an EVM address (stored lowercased), not the zero address.
fn check_destination(destination: &str) -> Result<String, LedgerError> {
    let d = parse_evm_address(destination).map_err(|e| super::invalid("destination", e))?;
    if d.bytes().skip(2).all(|b| b == b'0') {
        return Err(super::invalid(
            "destination",
            "must not be the zero address",
        ));
    }
    Ok(d)
}

/// One page of payouts, in creation order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PayoutPage {
    pub payouts: Vec<Payout>,
    /// Pass as `after` for the next page: the last payout's `createdSeq`, or the `after`
    /// given when the page is empty.
    pub next_cursor: i64,
    /// Whether payouts beyond this page exist right now.
    pub has_more: bool,
}

impl<S: SqlStore> Ledger<'_, S> {
    /// Payouts created after journal seq `after` (their `createdSeq`), oldest first, at most
    /// `limit` (1..=500). Payouts are few (an operator's batch job makes them), so the scan
    /// has no index of its own.
    pub fn payouts(&mut self, after: i64, limit: u32) -> Result<PayoutPage, LedgerError> {
        if !(0..=MAX_SAFE_INTEGER).contains(&after) {
            return Err(super::invalid("after", "must be a seq, 0 or more"));
        }
        if !(1..=super::MAX_PAGE).contains(&limit) {
            return Err(super::invalid(
                "limit",
                format!("must be 1 to {}", super::MAX_PAGE),
            ));
        }
        // One extra row tells whether another page exists.
        let rows = self.store.exec(
            &format!(
                "SELECT {PAYOUT_COLUMNS} FROM ledger_payouts WHERE created_seq > ?
                 ORDER BY created_seq LIMIT ?"
            ),
            &[checked_int(after)?, SqlValue::from(limit + 1)],
        )?;
        let mut payouts = rows.iter().map(payout).collect::<Result<Vec<_>, _>>()?;
        let has_more = payouts.len() > limit as usize;
        payouts.truncate(limit as usize);
        Ok(PayoutPage {
            next_cursor: payouts.last().map_or(after, |p| p.created_seq),
            payouts,
            has_more,
        })
    }

    pub fn payout(&mut self, id: &str) -> Result<Option<Payout>, LedgerError> {
        if check_payout_id(id).is_err() {
            return Ok(None);
        }
        load_payout(self.store, id)
    }

    /// Creates a pending payout of `amount` to `destination`, holding it against the
    /// available balance until it is posted or voided. Refused with `insufficient_funds`
    /// when `amount` exceeds what is available, so the balance never goes negative.
    pub fn create_payout(
        &mut self,
        idempotency_key: &str,
        request_fingerprint: &str,
        amount: u128,
        destination: &str,
        now_ms: i64,
    ) -> Result<Applied<Payout>, LedgerError> {
        check_token("idempotencyKey", idempotency_key, MAX_KEY_LEN)?;
        check_token("fingerprint", request_fingerprint, MAX_FINGERPRINT_LEN)?;
        check_positive("amount", amount)?;
        let destination = check_destination(destination)?;
        check_now(now_ms)?;
        self.store.atomically(&mut |s| {
            create_in(
                s,
                idempotency_key,
                request_fingerprint,
                amount,
                &destination,
                now_ms,
            )
        })
    }

    /// Records that a pending payout went out, with its transaction reference. Posting it
    /// again with the same reference returns the original (`replayed`); with another it is
    /// `payout_already_posted`. A voided payout cannot be posted.
    pub fn post_payout(
        &mut self,
        id: &str,
        tx_ref: &str,
        now_ms: i64,
    ) -> Result<Applied<Payout>, LedgerError> {
        check_payout_id(id)?;
        check_token("txRef", tx_ref, MAX_TX_REF_LEN)?;
        check_now(now_ms)?;
        self.store
            .atomically(&mut |s| post_in(s, id, tx_ref, now_ms))
    }

    /// Cancels a pending payout, releasing its amount back to available. Voiding it again
    /// returns the original (`replayed`); a posted payout cannot be voided.
    pub fn void_payout(
        &mut self,
        id: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<Applied<Payout>, LedgerError> {
        check_payout_id(id)?;
        check_text("reason", reason, MAX_REASON_LEN)?;
        check_now(now_ms)?;
        self.store
            .atomically(&mut |s| void_in(s, id, reason, now_ms))
    }
}

fn create_in<S: SqlStore>(
    s: &mut S,
    key: &str,
    fingerprint: &str,
    amount: u128,
    destination: &str,
    now_ms: i64,
) -> Result<Applied<Payout>, LedgerError> {
    if let Some(p) = load_by(s, "idempotency_key", key)? {
        // The original answer, even if funds have moved since: it was applied once.
        return if p.fingerprint == fingerprint && p.amount == amount && p.destination == destination
        {
            replayed(p)
        } else {
            Err(LedgerError::IdempotencyKeyReused)
        };
    }
    let mut b = Balances::load(s)?;
    let available = b.available()?;
    if amount > available {
        return Err(LedgerError::InsufficientFunds {
            requested: amount,
            available,
        });
    }
    b.payouts_pending = add(b.payouts_pending, amount)?;
    b.payouts_pending_count = inc(b.payouts_pending_count)?;

    let id = format!("{PAYOUT_ID_PREFIX}{}", b.next_seq()?);
    let mut e = LedgerEntry::new(EntryKind::PayoutCreated, now_ms, amount);
    e.payout_id = Some(id.clone());
    e.destination = Some(destination.to_owned());
    let seq = append(s, &mut b, &e)?;
    debug_assert_eq!(id, format!("{PAYOUT_ID_PREFIX}{seq}"));
    s.exec(
        "INSERT INTO ledger_payouts (payout_id, idempotency_key, fingerprint, state, amount,
            destination, created_at_ms, updated_at_ms, created_seq, last_seq)
         VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
        &[
            id.as_str().into(),
            key.into(),
            fingerprint.into(),
            amount_sql(amount),
            destination.into(),
            checked_int(now_ms)?,
            checked_int(now_ms)?,
            checked_int(seq)?,
            checked_int(seq)?,
        ],
    )?;
    commit(s, &b, reload, &id)
}

fn post_in<S: SqlStore>(
    s: &mut S,
    id: &str,
    tx_ref: &str,
    now_ms: i64,
) -> Result<Applied<Payout>, LedgerError> {
    let p = load_payout(s, id)?.ok_or_else(|| LedgerError::PayoutNotFound(id.to_owned()))?;
    match p.state {
        PayoutState::Posted if p.tx_ref.as_deref() == Some(tx_ref) => return replayed(p),
        PayoutState::Posted => return Err(LedgerError::PayoutAlreadyPosted),
        PayoutState::Voided => return Err(LedgerError::PayoutAlreadyVoided),
        PayoutState::Pending => {}
    }
    let mut b = Balances::load(s)?;
    b.payouts_pending = sub(b.payouts_pending, p.amount, "pending payouts")?;
    b.payouts_pending_count = dec(b.payouts_pending_count, "pending payouts")?;
    b.payouts_posted = add(b.payouts_posted, p.amount)?;
    b.payouts_posted_count = inc(b.payouts_posted_count)?;

    let mut e = LedgerEntry::new(EntryKind::PayoutPosted, now_ms, p.amount);
    e.payout_id = Some(id.to_owned());
    e.destination = Some(p.destination.clone());
    e.tx_ref = Some(tx_ref.to_owned());
    let seq = append(s, &mut b, &e)?;
    finish(s, id, PayoutState::Posted, ("tx_ref", tx_ref), now_ms, seq)?;
    commit(s, &b, reload, id)
}

fn void_in<S: SqlStore>(
    s: &mut S,
    id: &str,
    reason: &str,
    now_ms: i64,
) -> Result<Applied<Payout>, LedgerError> {
    let p = load_payout(s, id)?.ok_or_else(|| LedgerError::PayoutNotFound(id.to_owned()))?;
    match p.state {
        PayoutState::Voided => return replayed(p),
        PayoutState::Posted => return Err(LedgerError::PayoutAlreadyPosted),
        PayoutState::Pending => {}
    }
    let mut b = Balances::load(s)?;
    b.payouts_pending = sub(b.payouts_pending, p.amount, "pending payouts")?;
    b.payouts_pending_count = dec(b.payouts_pending_count, "pending payouts")?;
    b.payouts_voided_count = inc(b.payouts_voided_count)?;

    let mut e = LedgerEntry::new(EntryKind::PayoutVoided, now_ms, p.amount);
    e.payout_id = Some(id.to_owned());
    e.destination = Some(p.destination.clone());
    e.reason = Some(reason.to_owned());
    let seq = append(s, &mut b, &e)?;
    finish(
        s,
        id,
        PayoutState::Voided,
        ("void_reason", reason),
        now_ms,
        seq,
    )?;
    commit(s, &b, reload, id)
}

/// Moves a pending payout to its final `state`, setting `set.0` (a constant column).
fn finish<S: SqlStore>(
    s: &mut S,
    id: &str,
    state: PayoutState,
    set: (&'static str, &str),
    now_ms: i64,
    seq: i64,
) -> Result<(), LedgerError> {
    if !close(s, &PAYOUTS, id, state.as_str(), set, now_ms, seq)? {
        return Err(corrupt(format!("payout {id:?} was not pending")));
    }
    Ok(())
}
