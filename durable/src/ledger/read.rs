//! Reading the ledger: the journal by cursor, earnings, and the full audit.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    add, amount_at, corrupt, count_at, dec, inc, invalid, opt_amount_at, opt_bool_at, opt_bps_at,
    opt_network_at, opt_string_at, ser_amount, split_fee, sub, Balances, EntryKind, Ledger,
    LedgerEntry, LedgerError, PaymentState, PayoutState, DAY_MS, MAX_DAYS, MAX_PAGE,
};
use crate::store::{checked_int, Row, SqlStore, SqlValue, MAX_SAFE_INTEGER};

const ENTRY_COLUMNS: &str = "seq, at_ms, kind, payment_key, payout_id, amount, fee, net, \
    fee_bps, tx_ref, network, payer, local_settlement, destination, reason";

fn entry(row: &Row) -> Result<LedgerEntry, LedgerError> {
    Ok(LedgerEntry {
        seq: row.int(0)?,
        at_ms: row.int(1)?,
        kind: EntryKind::parse(row.text(2)?)?,
        payment_key: opt_string_at(row, 3)?,
        payout_id: opt_string_at(row, 4)?,
        amount: amount_at(row, 5)?,
        fee: opt_amount_at(row, 6)?,
        net: opt_amount_at(row, 7)?,
        fee_bps: opt_bps_at(row, 8)?,
        tx_ref: opt_string_at(row, 9)?,
        network: opt_network_at(row, 10)?,
        payer: opt_string_at(row, 11)?,
        local_settlement: opt_bool_at(row, 12)?,
        destination: opt_string_at(row, 13)?,
        reason: opt_string_at(row, 14)?,
    })
}

/// One page of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryPage {
    pub entries: Vec<LedgerEntry>,
    /// Pass as `after` for the next page: the last seq returned, or the `after` given when
    /// the page is empty (so a poller can always keep it).
    pub next_cursor: i64,
    /// Whether entries beyond this page exist right now.
    pub has_more: bool,
}

/// Settled totals for one UTC day (by settle time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DayEarnings {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    #[serde(serialize_with = "ser_amount")]
    pub gross: u128,
    #[serde(serialize_with = "ser_amount")]
    pub fee: u128,
    #[serde(serialize_with = "ser_amount")]
    pub net: u128,
    pub count: u64,
}

/// A tenant's earnings, read from the balance row (one row) plus the day buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Earnings {
    /// Settled gross, platform fees and creator net (`gross == fees + net`).
    #[serde(serialize_with = "ser_amount")]
    pub gross: u128,
    #[serde(serialize_with = "ser_amount")]
    pub fees: u128,
    #[serde(serialize_with = "ser_amount")]
    pub net: u128,
    pub settled_count: u64,
    /// The part of `net` settled locally (dev verifier), not on chain.
    #[serde(serialize_with = "ser_amount")]
    pub local_net: u128,
    pub local_count: u64,
    /// Gross of payments reserved and not yet settled or voided.
    #[serde(serialize_with = "ser_amount")]
    pub pending: u128,
    pub pending_count: u64,
    /// Gross of payments whose settlement outcome is unknown until reconciliation asks the
    /// chain (not in `gross`, not available).
    #[serde(serialize_with = "ser_amount")]
    pub unknown: u128,
    pub unknown_count: u64,
    pub voided_count: u64,
    /// Posted payouts.
    #[serde(serialize_with = "ser_amount")]
    pub paid_out: u128,
    pub paid_out_count: u64,
    #[serde(serialize_with = "ser_amount")]
    pub payouts_pending: u128,
    pub payouts_pending_count: u64,
    pub payouts_voided_count: u64,
    /// `net - payouts_pending - paid_out`, never negative.
    #[serde(serialize_with = "ser_amount")]
    pub available: u128,
    /// The journal's last seq (0 when empty).
    pub last_seq: i64,
    /// The most recent day buckets with settlements, oldest first.
    pub days: Vec<DayEarnings>,
}

/// What [`Ledger::audit`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditReport {
    pub entries: u64,
    pub payments: u64,
    pub payouts: u64,
}

impl<S: SqlStore> Ledger<'_, S> {
    /// Entries with `seq > after`, in seq order, at most `limit` (1..=500).
    pub fn entries(&mut self, after: i64, limit: u32) -> Result<EntryPage, LedgerError> {
        if !(0..=MAX_SAFE_INTEGER).contains(&after) {
            return Err(invalid("after", "must be a seq, 0 or more"));
        }
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(invalid("limit", format!("must be 1 to {MAX_PAGE}")));
        }
        // One extra row tells whether another page exists.
        let rows = self.store.exec(
            &format!(
                "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE seq > ? ORDER BY seq LIMIT ?"
            ),
            &[checked_int(after)?, SqlValue::from(limit + 1)],
        )?;
        let mut entries = rows.iter().map(entry).collect::<Result<Vec<_>, _>>()?;
        let has_more = entries.len() > limit as usize;
        entries.truncate(limit as usize);
        let mut prev = after;
        for e in &entries {
            if e.seq <= prev {
                return Err(corrupt("entries out of seq order"));
            }
            prev = e.seq;
        }
        Ok(EntryPage {
            next_cursor: prev,
            entries,
            has_more,
        })
    }

    /// Earnings totals plus the most recent `days` (1..=366) UTC day buckets. Reads one
    /// summary row and at most `days` bucket rows, whatever the ledger's size.
    pub fn earnings(&mut self, days: u32) -> Result<Earnings, LedgerError> {
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(invalid("days", format!("must be 1 to {MAX_DAYS}")));
        }
        let b = Balances::load(self.store)?;
        b.check()?;
        let rows = self.store.exec(
            "SELECT date(day * 86400, 'unixepoch'), gross, fee, net, count
             FROM ledger_days ORDER BY day DESC LIMIT ?",
            &[SqlValue::from(days)],
        )?;
        let mut buckets = rows
            .iter()
            .map(|r| {
                Ok(DayEarnings {
                    day: r.text(0)?.to_owned(),
                    gross: amount_at(r, 1)?,
                    fee: amount_at(r, 2)?,
                    net: amount_at(r, 3)?,
                    count: count_at(r, 4)?,
                })
            })
            .collect::<Result<Vec<_>, LedgerError>>()?;
        buckets.reverse();
        Ok(Earnings {
            gross: b.settled_gross,
            fees: b.settled_fee,
            net: b.settled_net,
            settled_count: b.settled_count,
            local_net: b.local_net,
            local_count: b.local_count,
            pending: b.reserved_gross,
            pending_count: b.reserved_count,
            unknown: b.unknown_gross,
            unknown_count: b.unknown_count,
            voided_count: b.voided_count,
            paid_out: b.payouts_posted,
            paid_out_count: b.payouts_posted_count,
            payouts_pending: b.payouts_pending,
            payouts_pending_count: b.payouts_pending_count,
            payouts_voided_count: b.payouts_voided_count,
            available: b.available()?,
            last_seq: b.last_seq,
            days: buckets,
        })
    }

    /// Replays the whole journal and checks it against every derived table: seq runs 1..n
    /// without gaps, each transition is legal, fees match the rounding rule, the available
    /// balance was never negative at any point in history, and the payments, payouts,
    /// balance and day tables equal what the journal implies. O(entries): for tests and
    /// operator checks, not the hot path.
    pub fn audit(&mut self) -> Result<AuditReport, LedgerError> {
        let mut replay = Replay::default();
        let mut after = 0;
        loop {
            let page = self.entries(after, MAX_PAGE)?;
            for e in &page.entries {
                replay.apply(e)?;
            }
            after = page.next_cursor;
            if !page.has_more {
                break;
            }
        }
        replay.compare(self.store)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DerivedPayment {
    state: PaymentState,
    gross: u128,
    fee: Option<u128>,
    net: Option<u128>,
    last_seq: i64,
}

impl DerivedPayment {
    fn is_open(&self) -> bool {
        matches!(self.state, PaymentState::Reserved | PaymentState::Unknown)
    }
}

/// Takes an open payment's gross out of its bucket, as the write path does.
fn release(b: &mut Balances, p: &DerivedPayment) -> Result<(), LedgerError> {
    if p.state == PaymentState::Unknown {
        b.unknown_gross = sub(b.unknown_gross, p.gross, "unknown")?;
        b.unknown_count = dec(b.unknown_count, "unknown")?;
    } else {
        b.reserved_gross = sub(b.reserved_gross, p.gross, "reserved")?;
        b.reserved_count = dec(b.reserved_count, "reserved")?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DerivedPayout {
    state: PayoutState,
    amount: u128,
    last_seq: i64,
}

#[derive(Default)]
struct Replay {
    b: Balances,
    payments: BTreeMap<String, DerivedPayment>,
    payouts: BTreeMap<String, DerivedPayout>,
    days: BTreeMap<i64, (u128, u128, u128, u64)>,
}

impl Replay {
    fn apply(&mut self, e: &LedgerEntry) -> Result<(), LedgerError> {
        let bad = |what: &str| corrupt(format!("entry {}: {what}", e.seq));
        if Some(e.seq) != self.b.last_seq.checked_add(1) {
            return Err(bad("seq gap"));
        }
        self.b.last_seq = e.seq;
        let b = &mut self.b;
        match e.kind {
            EntryKind::PaymentReserved
            | EntryKind::PaymentSettled
            | EntryKind::PaymentVoided
            | EntryKind::PaymentUnknown => {
                let key = e.payment_key.clone().ok_or_else(|| bad("no payment key"))?;
                let prev = self.payments.get(&key).copied();
                let next = match (e.kind, prev) {
                    (EntryKind::PaymentReserved, None) => {
                        b.reserved_gross = add(b.reserved_gross, e.amount)?;
                        b.reserved_count = inc(b.reserved_count)?;
                        DerivedPayment {
                            state: PaymentState::Reserved,
                            gross: e.amount,
                            fee: None,
                            net: None,
                            last_seq: e.seq,
                        }
                    }
                    (EntryKind::PaymentUnknown, Some(p)) if p.state == PaymentState::Reserved => {
                        if p.gross != e.amount {
                            return Err(bad("unknown amount disagrees"));
                        }
                        release(b, &p)?;
                        b.unknown_gross = add(b.unknown_gross, e.amount)?;
                        b.unknown_count = inc(b.unknown_count)?;
                        DerivedPayment {
                            state: PaymentState::Unknown,
                            last_seq: e.seq,
                            ..p
                        }
                    }
                    (EntryKind::PaymentSettled, Some(p)) if p.is_open() => {
                        let bps = e.fee_bps.ok_or_else(|| bad("no fee_bps"))?;
                        let (fee, net) = split_fee(e.amount, bps)?;
                        if p.gross != e.amount || e.fee != Some(fee) || e.net != Some(net) {
                            return Err(bad("settled amounts disagree"));
                        }
                        release(b, &p)?;
                        b.settled_gross = add(b.settled_gross, e.amount)?;
                        b.settled_fee = add(b.settled_fee, fee)?;
                        b.settled_net = add(b.settled_net, net)?;
                        b.settled_count = inc(b.settled_count)?;
                        if e.local_settlement.ok_or_else(|| bad("no local flag"))? {
                            b.local_net = add(b.local_net, net)?;
                            b.local_count = inc(b.local_count)?;
                        }
                        let d = self.days.entry(e.at_ms / DAY_MS).or_default();
                        *d = (
                            add(d.0, e.amount)?,
                            add(d.1, fee)?,
                            add(d.2, net)?,
                            inc(d.3)?,
                        );
                        DerivedPayment {
                            state: PaymentState::Settled,
                            fee: Some(fee),
                            net: Some(net),
                            last_seq: e.seq,
                            ..p
                        }
                    }
                    (EntryKind::PaymentVoided, Some(p)) if p.is_open() => {
                        if p.gross != e.amount {
                            return Err(bad("voided amount disagrees"));
                        }
                        release(b, &p)?;
                        b.voided_count = inc(b.voided_count)?;
                        DerivedPayment {
                            state: PaymentState::Voided,
                            last_seq: e.seq,
                            ..p
                        }
                    }
                    _ => return Err(bad("illegal payment transition")),
                };
                self.payments.insert(key, next);
            }
            EntryKind::PayoutCreated | EntryKind::PayoutPosted | EntryKind::PayoutVoided => {
                let id = e.payout_id.clone().ok_or_else(|| bad("no payout id"))?;
                let prev = self.payouts.get(&id).copied();
                let next = match (e.kind, prev) {
                    (EntryKind::PayoutCreated, None) => {
                        if id != format!("po_{}", e.seq) {
                            return Err(bad("payout id is not po_<seq>"));
                        }
                        b.payouts_pending = add(b.payouts_pending, e.amount)?;
                        b.payouts_pending_count = inc(b.payouts_pending_count)?;
                        DerivedPayout {
                            state: PayoutState::Pending,
                            amount: e.amount,
                            last_seq: e.seq,
                        }
                    }
                    (EntryKind::PayoutPosted | EntryKind::PayoutVoided, Some(p))
                        if p.state == PayoutState::Pending =>
                    {
                        if p.amount != e.amount {
                            return Err(bad("payout amount disagrees"));
                        }
                        b.payouts_pending = sub(b.payouts_pending, e.amount, "pending payouts")?;
                        b.payouts_pending_count = dec(b.payouts_pending_count, "pending")?;
                        let state = if e.kind == EntryKind::PayoutPosted {
                            b.payouts_posted = add(b.payouts_posted, e.amount)?;
                            b.payouts_posted_count = inc(b.payouts_posted_count)?;
                            PayoutState::Posted
                        } else {
                            b.payouts_voided_count = inc(b.payouts_voided_count)?;
                            PayoutState::Voided
                        };
                        DerivedPayout {
                            state,
                            last_seq: e.seq,
                            ..p
                        }
                    }
                    _ => return Err(bad("illegal payout transition")),
                };
                self.payouts.insert(id, next);
            }
        }
        // The balance was never negative at any point in history.
        self.b
            .check()
            .map_err(|_| bad("invariant broken after this entry"))?;
        Ok(())
    }

    fn compare<S: SqlStore>(self, s: &mut S) -> Result<AuditReport, LedgerError> {
        let stored = Balances::load(s)?;
        if stored != self.b {
            return Err(corrupt(format!(
                "balance row {stored:?} != journal {:?}",
                self.b
            )));
        }
        agrees(
            s,
            "SELECT payment_key, state, gross, fee, net, last_seq FROM ledger_payments",
            |r| {
                let p = DerivedPayment {
                    state: PaymentState::parse(r.text(1)?)?,
                    gross: amount_at(r, 2)?,
                    fee: opt_amount_at(r, 3)?,
                    net: opt_amount_at(r, 4)?,
                    last_seq: r.int(5)?,
                };
                Ok((r.text(0)?.to_owned(), p))
            },
            &self.payments,
            "payments table disagrees with the journal",
        )?;
        agrees(
            s,
            "SELECT payout_id, state, amount, last_seq FROM ledger_payouts",
            |r| {
                let p = DerivedPayout {
                    state: PayoutState::parse(r.text(1)?)?,
                    amount: amount_at(r, 2)?,
                    last_seq: r.int(3)?,
                };
                Ok((r.text(0)?.to_owned(), p))
            },
            &self.payouts,
            "payouts table disagrees with the journal",
        )?;
        agrees(
            s,
            "SELECT day, gross, fee, net, count FROM ledger_days",
            |r| {
                let totals = (
                    amount_at(r, 1)?,
                    amount_at(r, 2)?,
                    amount_at(r, 3)?,
                    count_at(r, 4)?,
                );
                Ok((r.int(0)?, totals))
            },
            &self.days,
            "day buckets disagree with the journal",
        )?;
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Ok(AuditReport {
            entries: u64::try_from(self.b.last_seq).unwrap_or(0),
            payments: count(self.payments.len()),
            payouts: count(self.payouts.len()),
        })
    }
}

/// Reads every row of `sql` as a (key, value) pair and checks that the table holds exactly
/// what the journal derived; else `corrupt(what)`.
fn agrees<S: SqlStore, K: Ord, V: PartialEq>(
    s: &mut S,
    sql: &str,
    row: fn(&Row) -> Result<(K, V), LedgerError>,
    derived: &BTreeMap<K, V>,
    what: &str,
) -> Result<(), LedgerError> {
    let stored = s
        .exec(sql, &[])?
        .iter()
        .map(row)
        .collect::<Result<BTreeMap<K, V>, LedgerError>>()?;
    if &stored != derived {
        return Err(corrupt(what));
    }
    Ok(())
}
