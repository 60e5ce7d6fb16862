//! Native tests of the ledger core and its protocol, on in-memory SQLite.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::wire::handle;
use super::*;
use crate::memsql::MemSql;
use crate::store::{Row, SqlStore, SqlValue, StoreError};

const T0: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z
const PAYER_A: &str = "0x1111111111111111111111111111111111111111";
const PAYER_B: &str = "0x2222222222222222222222222222222222222222";
const DEST_A: &str = "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const DEST_B: &str = "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn settlement(tx: &str, fee_bps: u32) -> Settlement<'_> {
    Settlement {
        tx_ref: tx,
        network: Network::BaseSepolia,
        payer: PAYER_A,
        local_settlement: false,
        fee_bps,
    }
}

fn code<T>(r: Result<T, LedgerError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

// ---------------------------------------------------------------------------------------
// Fee rounding

#[test]
fn fee_is_floored_and_net_takes_the_remainder() {
    assert_eq!(split_fee(1_000, 1_000).unwrap(), (100, 900));
    assert_eq!(split_fee(999, 250).unwrap(), (24, 975)); // 24.975 -> 24
    assert_eq!(split_fee(1, 9_999).unwrap(), (0, 1));
    assert_eq!(split_fee(12_345, 0).unwrap(), (0, 12_345));
    assert_eq!(split_fee(12_345, 10_000).unwrap(), (12_345, 0));
    assert_eq!(split_fee(u128::MAX, 10_000).unwrap(), (u128::MAX, 0));
    // u128::MAX = ...1455: floor(MAX / 10000) * 1 + floor(1455 * 1 / 10000).
    assert_eq!(
        split_fee(u128::MAX, 1).unwrap().0,
        34_028_236_692_093_846_346_337_460_743_176_821
    );
    assert_eq!(code(split_fee(1, 10_001)), "invalid_field");
}

proptest! {
    #[test]
    fn split_fee_matches_the_plain_formula(gross in 0u128..(1u128 << 114), bps in 0u32..=10_000) {
        let (fee, net) = split_fee(gross, bps).unwrap();
        prop_assert_eq!(fee, gross * u128::from(bps) / 10_000);
        prop_assert_eq!(fee + net, gross);
    }

    #[test]
    fn split_fee_never_overflows(gross in any::<u128>(), bps in 0u32..=10_000) {
        let (fee, net) = split_fee(gross, bps).unwrap();
        prop_assert_eq!(fee.checked_add(net), Some(gross));
        prop_assert!(fee <= gross);
    }
}

// ---------------------------------------------------------------------------------------
// Payments

#[test]
fn payment_lifecycle_and_refusals() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();

    let p = l.reserve("k1", "fp1", 1_000, T0).unwrap();
    assert_eq!(
        (p.state, p.gross, p.reserved_seq),
        (PaymentState::Reserved, 1_000, 1)
    );
    // Every second reservation of a key is refused, precisely.
    assert_eq!(code(l.reserve("k1", "fp1", 1_000, T0)), "payment_in_flight");
    assert_eq!(
        code(l.reserve("k1", "fp2", 1_000, T0)),
        "payment_key_reused"
    );
    assert_eq!(code(l.reserve("k1", "fp1", 999, T0)), "payment_key_reused");

    let e = l.earnings(30).unwrap();
    assert_eq!((e.pending, e.pending_count, e.available), (1_000, 1, 0));

    let s = l.settle("k1", &settlement("0xtx1", 250), T0 + 5).unwrap();
    assert!(!s.replayed);
    let p = s.record;
    assert_eq!(p.state, PaymentState::Settled);
    assert_eq!((p.fee, p.net, p.fee_bps), (Some(25), Some(975), Some(250)));
    assert_eq!(p.last_seq, 2);
    assert_eq!(
        code(l.reserve("k1", "fp1", 1_000, T0)),
        "payment_already_settled"
    );

    // Same settlement again: the original. Different references: a conflict.
    let again = l.settle("k1", &settlement("0xtx1", 250), T0 + 9).unwrap();
    assert!(again.replayed);
    assert_eq!(again.record, p);
    assert_eq!(
        code(l.settle("k1", &settlement("0xtx2", 250), T0)),
        "settlement_conflict"
    );
    assert_eq!(
        code(l.settle("k1", &settlement("0xtx1", 500), T0)),
        "settlement_conflict"
    );
    assert_eq!(code(l.void("k1", "late", T0)), "payment_already_settled");

    l.reserve("k2", "fp", 500, T0).unwrap();
    let v = l.void("k2", "tenant answered 500", T0 + 1).unwrap();
    assert!(!v.replayed);
    assert_eq!(v.record.void_reason.as_deref(), Some("tenant answered 500"));
    let v2 = l.void("k2", "another reason", T0 + 2).unwrap();
    assert!(v2.replayed);
    assert_eq!(v2.record, v.record);
    assert_eq!(
        code(l.settle("k2", &settlement("0xtx", 250), T0)),
        "payment_already_voided"
    );
    assert_eq!(
        code(l.reserve("k2", "fp", 500, T0)),
        "payment_already_voided"
    );

    assert_eq!(
        code(l.settle("nope", &settlement("0xtx", 250), T0)),
        "payment_not_found"
    );
    assert_eq!(code(l.void("nope", "x", T0)), "payment_not_found");

    let e = l.earnings(30).unwrap();
    assert_eq!(
        (e.gross, e.fees, e.net, e.settled_count),
        (1_000, 25, 975, 1)
    );
    assert_eq!((e.pending, e.voided_count, e.available), (0, 1, 975));
    assert_eq!(e.last_seq, 4);
    assert_eq!(l.audit().unwrap().entries, 4);
}

#[test]
fn inputs_are_validated_before_anything_is_written() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    let field = |r: Result<Payment, LedgerError>| match r {
        Err(LedgerError::Invalid { field, .. }) => field,
        other => panic!("expected invalid, got {other:?}"),
    };
    assert_eq!(field(l.reserve("", "fp", 1, T0)), "key");
    assert_eq!(field(l.reserve("a b", "fp", 1, T0)), "key");
    assert_eq!(
        field(l.reserve(&"k".repeat(MAX_KEY_LEN + 1), "fp", 1, T0)),
        "key"
    );
    assert_eq!(field(l.reserve("k", "", 1, T0)), "fingerprint");
    assert_eq!(field(l.reserve("k", "fp", 0, T0)), "gross");
    assert_eq!(field(l.reserve("k", "fp", 1, -1)), "nowMs");
    l.reserve("k", "fp", 10, T0).unwrap();
    let mut bad = settlement("0xtx", 250);
    bad.payer = "0x123";
    assert_eq!(code(l.settle("k", &bad, T0)), "invalid_field");
    assert_eq!(
        code(l.settle("k", &settlement("0xtx", 10_001), T0)),
        "invalid_field"
    );
    assert_eq!(
        code(l.settle("k", &settlement("", 250), T0)),
        "invalid_field"
    );
    assert_eq!(code(l.void("k", "line\nbreak", T0)), "invalid_field");
    assert_eq!(
        code(l.create_payout(
            "pk",
            "fp",
            1,
            "0x0000000000000000000000000000000000000000",
            T0
        )),
        "invalid_field"
    );
    assert_eq!(
        code(l.create_payout("pk", "fp", 0, DEST_A, T0)),
        "invalid_field"
    );
    assert_eq!(
        l.earnings(1).unwrap().last_seq,
        1,
        "nothing but the reservation was written"
    );
}

#[test]
fn settlement_references_are_recorded_and_payer_normalized() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    l.reserve("k", "fp", 10_000, T0).unwrap();
    let upper = "0xABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCD";
    let s = Settlement {
        tx_ref: "local:fp",
        network: Network::Base,
        payer: upper,
        local_settlement: true,
        fee_bps: 1_000,
    };
    let p = l.settle("k", &s, T0).unwrap().record;
    assert_eq!(
        p.payer.as_deref(),
        Some(upper.to_ascii_lowercase().as_str())
    );
    // A retry carrying the payer in another case is the same settlement.
    assert!(l.settle("k", &s, T0).unwrap().replayed);
    let page = l.entries(0, 10).unwrap();
    let settled = &page.entries[1];
    assert_eq!(settled.kind, EntryKind::PaymentSettled);
    assert_eq!(settled.local_settlement, Some(true));
    assert_eq!(settled.network, Some(Network::Base));
    assert_eq!(settled.tx_ref.as_deref(), Some("local:fp"));
    let e = l.earnings(1).unwrap();
    assert_eq!((e.local_net, e.local_count, e.net), (9_000, 1, 9_000));
}

#[test]
fn totals_cannot_overflow() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    l.reserve("big", "fp", u128::MAX - 10, T0).unwrap();
    assert_eq!(code(l.reserve("more", "fp", 11, T0)), "amount_overflow");
    l.reserve("fits", "fp", 10, T0).unwrap();
    l.settle("big", &settlement("0x1", 10_000), T0).unwrap();
    l.settle("fits", &settlement("0x2", 0), T0).unwrap();
    let e = l.earnings(1).unwrap();
    assert_eq!((e.gross, e.fees, e.net), (u128::MAX, u128::MAX - 10, 10));
    assert_eq!(code(l.reserve("one", "fp", 1, T0)), "amount_overflow");
    l.audit().unwrap();
}

// ---------------------------------------------------------------------------------------
// Payouts

fn funded(db: &mut MemSql, net_wanted: u128) {
    let mut l = Ledger::open(db).unwrap();
    l.reserve("fund", "fp", net_wanted, T0).unwrap();
    l.settle("fund", &settlement("0xfund", 0), T0).unwrap();
}

#[test]
fn payouts_hold_release_and_never_overdraw() {
    let mut db = MemSql::new();
    funded(&mut db, 1_000);
    let mut l = Ledger::open(&mut db).unwrap();

    match l.create_payout("pk1", "h1", 1_001, DEST_A, T0) {
        Err(LedgerError::InsufficientFunds {
            requested,
            available,
        }) => {
            assert_eq!((requested, available), (1_001, 1_000))
        }
        other => panic!("{other:?}"),
    }
    let a = l.create_payout("pk1", "h1", 600, DEST_A, T0).unwrap();
    assert!(!a.replayed);
    assert_eq!(
        (a.record.id.as_str(), a.record.state),
        ("po_3", PayoutState::Pending)
    );
    assert_eq!(l.earnings(1).unwrap().available, 400);

    // Same key and body: the original, even though 600 no longer fits.
    let again = l.create_payout("pk1", "h1", 600, DEST_A, T0 + 1).unwrap();
    assert!(again.replayed);
    assert_eq!(again.record, a.record);
    assert_eq!(
        code(l.create_payout("pk1", "h2", 600, DEST_A, T0)),
        "idempotency_key_reused"
    );
    assert_eq!(
        code(l.create_payout("pk1", "h1", 601, DEST_A, T0)),
        "idempotency_key_reused"
    );
    assert_eq!(
        code(l.create_payout("pk1", "h1", 600, DEST_B, T0)),
        "idempotency_key_reused"
    );

    // Another payout to the same destination while one is pending is fine, within funds.
    assert_eq!(
        code(l.create_payout("pk2", "h", 401, DEST_A, T0)),
        "insufficient_funds"
    );
    let b = l.create_payout("pk2", "h", 400, DEST_A, T0).unwrap().record;
    assert_eq!(l.earnings(1).unwrap().available, 0);

    let posted = l.post_payout(&a.record.id, "0xpaid", T0 + 2).unwrap();
    assert_eq!(
        (posted.record.state, posted.replayed),
        (PayoutState::Posted, false)
    );
    assert!(
        l.post_payout(&a.record.id, "0xpaid", T0 + 3)
            .unwrap()
            .replayed
    );
    assert_eq!(
        code(l.post_payout(&a.record.id, "0xother", T0)),
        "payout_already_posted"
    );
    assert_eq!(
        code(l.void_payout(&a.record.id, "oops", T0)),
        "payout_already_posted"
    );

    let voided = l.void_payout(&b.id, "bad destination", T0 + 4).unwrap();
    assert_eq!(
        (voided.record.state, voided.replayed),
        (PayoutState::Voided, false)
    );
    assert!(l.void_payout(&b.id, "again", T0).unwrap().replayed);
    assert_eq!(
        code(l.post_payout(&b.id, "0xlate", T0)),
        "payout_already_voided"
    );

    assert_eq!(code(l.post_payout("po_999", "0x", T0)), "payout_not_found");
    assert_eq!(code(l.void_payout("../etc", "x", T0)), "payout_not_found");
    assert_eq!(l.payout("po_999").unwrap(), None);

    let e = l.earnings(1).unwrap();
    assert_eq!((e.paid_out, e.payouts_pending, e.available), (600, 0, 400));
    assert_eq!((e.paid_out_count, e.payouts_voided_count), (1, 1));
    assert_eq!(e.net, e.available + e.payouts_pending + e.paid_out);
    l.audit().unwrap();
}

// ---------------------------------------------------------------------------------------
// Reading

#[test]
fn entries_page_in_order_with_a_cursor() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    for i in 0..7 {
        l.reserve(&format!("k{i}"), "fp", 10, T0).unwrap();
    }
    let p = l.entries(0, 3).unwrap();
    assert_eq!(
        p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!((p.next_cursor, p.has_more), (3, true));
    let p = l.entries(6, 3).unwrap();
    assert_eq!((p.entries.len(), p.next_cursor, p.has_more), (1, 7, false));
    let p = l.entries(7, 3).unwrap();
    assert_eq!((p.entries.len(), p.next_cursor, p.has_more), (0, 7, false));
    assert_eq!(code(l.entries(0, 0)), "invalid_field");
    assert_eq!(code(l.entries(0, 501)), "invalid_field");
    assert_eq!(code(l.entries(-1, 5)), "invalid_field");
    assert_eq!(l.entries(0, 500).unwrap().entries.len(), 7);
}

#[test]
fn earnings_bucket_settlements_by_utc_day() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    let day = |ms: i64, key: &str, gross: u128, l: &mut Ledger<'_, MemSql>| {
        l.reserve(key, "fp", gross, ms).unwrap();
        l.settle(key, &settlement(key, 1_000), ms).unwrap();
    };
    day(T0, "a", 1_000, &mut l); // 2023-11-14T22:13:20Z
    let midnight = (T0 / DAY_MS + 1) * DAY_MS; // 2023-11-15T00:00:00Z
    day(midnight - 1, "b", 2_000, &mut l);
    day(midnight, "c", 3_000, &mut l);
    day(midnight + 5 * DAY_MS, "d", 4_001, &mut l);
    // Reserved on one day, settled on the next: counted on the settle day.
    l.reserve("e", "fp", 5, T0).unwrap();

    let e = l.earnings(MAX_DAYS).unwrap();
    let days: Vec<(&str, u128, u128, u128, u64)> = e
        .days
        .iter()
        .map(|d| (d.day.as_str(), d.gross, d.fee, d.net, d.count))
        .collect();
    assert_eq!(
        days,
        [
            ("2023-11-14", 3_000, 300, 2_700, 2),
            ("2023-11-15", 3_000, 300, 2_700, 1),
            ("2023-11-20", 4_001, 400, 3_601, 1),
        ]
    );
    assert_eq!(
        (e.gross, e.fees, e.net, e.pending),
        (10_001, 1_000, 9_001, 5)
    );
    let recent = l.earnings(2).unwrap();
    assert_eq!(
        recent
            .days
            .iter()
            .map(|d| d.day.as_str())
            .collect::<Vec<_>>(),
        ["2023-11-15", "2023-11-20"]
    );
    assert_eq!(code(l.earnings(0)), "invalid_field");
}

#[test]
fn records_serialize_camel_case_with_string_amounts() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    l.reserve("k", "fp", u128::MAX, T0).unwrap();
    let s = l.settle("k", &settlement("0xt", 1), T0).unwrap();
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["gross"], json!(u128::MAX.to_string()));
    assert_eq!(
        v["net"],
        json!((u128::MAX - split_fee(u128::MAX, 1).unwrap().0).to_string())
    );
    assert_eq!(v["feeBps"], json!(1));
    assert_eq!(v["state"], json!("settled"));
    assert_eq!(v["network"], json!("eip155:84532"));
    assert_eq!(v["replayed"], json!(false));
    let page = serde_json::to_value(l.entries(0, 5).unwrap()).unwrap();
    assert_eq!(page["nextCursor"], json!(2));
    assert_eq!(page["entries"][0]["kind"], json!("payment_reserved"));
    assert_eq!(page["entries"][0]["paymentKey"], json!("k"));
    assert!(page["entries"][0].get("fee").is_none());
    assert_eq!(page["entries"][1]["localSettlement"], json!(false));
}

// ---------------------------------------------------------------------------------------
// Invariants are enforced, not just reported

fn raw(db: &mut MemSql, sql: &str) {
    db.exec(sql, &[]).unwrap();
}

#[test]
fn a_corrupt_balance_row_blocks_writes_and_fails_the_audit() {
    let mut db = MemSql::new();
    funded(&mut db, 100);
    raw(&mut db, "UPDATE ledger_balances SET payouts_posted = '101'");
    let mut l = Ledger::open(&mut db).unwrap();
    assert_eq!(
        code(l.create_payout("pk", "fp", 1, DEST_A, T0)),
        "ledger_corrupt"
    );
    assert_eq!(code(l.reserve("k", "fp", 1, T0)), "ledger_corrupt");
    assert_eq!(code(l.earnings(1)), "ledger_corrupt");
    assert_eq!(code(l.audit()), "ledger_corrupt");
}

#[test]
fn the_audit_catches_tables_drifting_from_the_journal() {
    let tamper = [
        "UPDATE ledger_payments SET net = '99' WHERE payment_key = 'fund'",
        "DELETE FROM ledger_entries WHERE seq = 1",
        "UPDATE ledger_days SET count = 2",
        "UPDATE ledger_entries SET fee = '1' WHERE seq = 2",
        "UPDATE ledger_balances SET settled_fee = '1', settled_net = '99'",
    ];
    for sql in tamper {
        let mut db = MemSql::new();
        funded(&mut db, 100);
        Ledger::open(&mut db).unwrap().audit().unwrap();
        raw(&mut db, sql);
        assert_eq!(
            code(Ledger::open(&mut db).unwrap().audit()),
            "ledger_corrupt",
            "{sql}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Crashes: a store that fails its n-th statement, to cut operations midway

#[derive(Default)]
struct Fault {
    /// Statements left before the injected failure.
    countdown: Cell<Option<u32>>,
    tripped: Cell<bool>,
}

struct Faulty {
    inner: MemSql,
    fault: Rc<Fault>,
    depth: u32,
}

impl Faulty {
    fn new() -> (Self, Rc<Fault>) {
        let fault = Rc::new(Fault::default());
        let mut db = Faulty {
            inner: MemSql::new(),
            fault: Rc::clone(&fault),
            depth: 0,
        };
        Ledger::open(&mut db).unwrap();
        (db, fault)
    }
}

impl SqlStore for Faulty {
    fn exec(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        match self.fault.countdown.get() {
            Some(0) => {
                self.fault.countdown.set(None);
                self.fault.tripped.set(true);
                return Err(StoreError::Sql("injected crash".into()));
            }
            Some(n) => self.fault.countdown.set(Some(n - 1)),
            None => {}
        }
        self.inner.exec(sql, params)
    }

    fn atomically<T, E>(&mut self, op: &mut dyn FnMut(&mut Self) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.depth += 1;
        let name = format!("fsp{}", self.depth);
        self.inner.exec(&format!("SAVEPOINT {name}"), &[])?;
        let result = op(self);
        if result.is_err() {
            self.inner.exec(&format!("ROLLBACK TO {name}"), &[])?;
        }
        self.inner.exec(&format!("RELEASE {name}"), &[])?;
        self.depth -= 1;
        result
    }
}

/// Every ledger table, in a fixed order.
fn snapshot<S: SqlStore>(s: &mut S) -> Vec<Vec<Row>> {
    [
        "SELECT * FROM ledger_entries ORDER BY seq",
        "SELECT * FROM ledger_payments ORDER BY payment_key",
        "SELECT * FROM ledger_payouts ORDER BY payout_id",
        "SELECT * FROM ledger_balances",
        "SELECT * FROM ledger_days ORDER BY day",
    ]
    .iter()
    .map(|q| s.exec(q, &[]).unwrap())
    .collect()
}

#[test]
fn a_crash_at_any_statement_rolls_the_whole_operation_back() {
    type Step = fn(&mut Ledger<'_, Faulty>) -> Result<(), LedgerError>;
    let steps: [(&str, Step); 6] = [
        ("reserve", |l| l.reserve("k", "fp", 1_000, T0).map(drop)),
        ("settle", |l| {
            l.settle("k", &settlement("0xt", 500), T0).map(drop)
        }),
        ("payout", |l| {
            l.create_payout("pk", "fp", 300, DEST_A, T0).map(drop)
        }),
        ("post", |l| l.post_payout("po_3", "0xp", T0).map(drop)),
        ("payout2", |l| {
            l.create_payout("pk2", "fp", 100, DEST_A, T0).map(drop)
        }),
        ("void payout", |l| l.void_payout("po_5", "r", T0).map(drop)),
    ];
    let (mut db, fault) = Faulty::new();
    for (name, step) in steps {
        let mut crashes = 0;
        for n in 0.. {
            let before = snapshot(&mut db);
            let mut l = Ledger::open(&mut db).unwrap();
            fault.tripped.set(false);
            fault.countdown.set(Some(n));
            let r = step(&mut l);
            fault.countdown.set(None);
            if !fault.tripped.get() {
                r.unwrap();
                break;
            }
            crashes += 1;
            assert_eq!(code(r), "internal_error", "{name} at statement {n}");
            assert_eq!(
                snapshot(&mut db),
                before,
                "{name} crashed at {n} left writes"
            );
            Ledger::open(&mut db).unwrap().audit().unwrap();
        }
        assert!(crashes >= 3, "{name}: only {crashes} crash points");
    }
    let mut l = Ledger::open(&mut db).unwrap();
    let e = l.earnings(1).unwrap();
    assert_eq!(
        (e.net, e.paid_out, e.available, e.last_seq),
        (950, 300, 650, 6)
    );
}

// ---------------------------------------------------------------------------------------
// The internal protocol

fn call(db: &mut MemSql, method: &str, path: &str, body: Value) -> (u16, Value) {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let query: Vec<(String, String)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    match handle(db, method, &segs, &query, &bytes, T0) {
        Ok(r) => r,
        Err(p) => {
            let v = serde_json::to_value(&p).unwrap();
            (p.status, v)
        }
    }
}

fn reserve_body(key: &str, fp: &str, gross: &str) -> Value {
    json!({"key": key, "fingerprint": fp, "gross": gross})
}

fn settle_body(key: &str, tx: &str) -> Value {
    json!({"key": key, "txRef": tx, "network": "base-sepolia", "payer": PAYER_B,
           "localSettlement": false, "feeBps": 1000})
}

#[test]
fn protocol_payments() {
    let mut db = MemSql::new();
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/reserve",
        reserve_body("k", "fp", "1000"),
    );
    assert_eq!(
        (s, v["state"].as_str(), v["gross"].as_str()),
        (201, Some("reserved"), Some("1000"))
    );
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/reserve",
        reserve_body("k", "fp", "1000"),
    );
    assert_eq!((s, v["code"].as_str()), (409, Some("payment_in_flight")));
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/reserve",
        reserve_body("k", "other", "1000"),
    );
    assert_eq!((s, v["code"].as_str()), (422, Some("payment_key_reused")));
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/reserve",
        reserve_body("k2", "fp", "01"),
    );
    assert_eq!(
        (s, v["code"].as_str(), v["field"].as_str()),
        (400, Some("invalid_field"), Some("gross"))
    );
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/reserve",
        reserve_body("k2", "fp", "0"),
    );
    assert_eq!((s, v["field"].as_str()), (400, Some("gross")));
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/reserve",
        json!({"key": "k3", "fingerprint": "f", "gross": 5}),
    );
    assert_eq!(
        (s, v["code"].as_str(), v["field"].as_str()),
        (400, Some("invalid_body"), Some("gross"))
    );
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/reserve",
        json!({"key": "k3", "fingerprint": "f", "gross": "5", "x": 1}),
    );
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_body")));
    let big = json!({"key": "k".repeat(5_000), "fingerprint": "f", "gross": "5"});
    let (s, v) = call(&mut db, "POST", "/payments/reserve", big);
    assert_eq!((s, v["code"].as_str()), (413, Some("body_too_large")));

    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/settle",
        settle_body("k", "0xabc"),
    );
    assert_eq!(
        (s, v["state"].as_str(), v["fee"].as_str(), v["net"].as_str()),
        (200, Some("settled"), Some("100"), Some("900"))
    );
    assert_eq!(
        (v["replayed"].as_bool(), v["network"].as_str()),
        (Some(false), Some("eip155:84532"))
    );
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/settle",
        settle_body("k", "0xabc"),
    );
    assert_eq!((s, v["replayed"].as_bool()), (200, Some(true)));
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/settle",
        settle_body("k", "0xdef"),
    );
    assert_eq!((s, v["code"].as_str()), (409, Some("settlement_conflict")));
    let mut bad_net = settle_body("k", "0xabc");
    bad_net["network"] = json!("solana");
    let (s, v) = call(&mut db, "POST", "/payments/settle", bad_net);
    assert_eq!(
        (s, v["code"].as_str(), v["field"].as_str()),
        (400, Some("invalid_body"), Some("network"))
    );
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/void",
        json!({"key": "k", "reason": "r"}),
    );
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("payment_already_settled"))
    );
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/void",
        json!({"key": "zz", "reason": "r"}),
    );
    assert_eq!((s, v["code"].as_str()), (404, Some("payment_not_found")));

    let (s, v) = call(&mut db, "GET", "/payments?key=k", Value::Null);
    assert_eq!((s, v["txRef"].as_str()), (200, Some("0xabc")));
    let (s, v) = call(&mut db, "GET", "/payments?key=zz", Value::Null);
    assert_eq!((s, v["code"].as_str()), (404, Some("payment_not_found")));
    let (s, _) = call(&mut db, "GET", "/payments", Value::Null);
    assert_eq!(s, 400);
}

#[test]
fn protocol_payouts_entries_earnings() {
    let mut db = MemSql::new();
    call(
        &mut db,
        "POST",
        "/payments/reserve",
        reserve_body("k", "fp", "1000"),
    );
    call(
        &mut db,
        "POST",
        "/payments/settle",
        settle_body("k", "0xabc"),
    );
    let payout = |amount: &str, fp: &str| json!({"idempotencyKey": "job-1", "fingerprint": fp, "amount": amount, "destination": DEST_A});
    let (s, v) = call(&mut db, "POST", "/payouts", payout("901", "h"));
    assert_eq!((s, v["code"].as_str()), (409, Some("insufficient_funds")));
    let (s, v) = call(&mut db, "POST", "/payouts", payout("900", "h"));
    assert_eq!(
        (
            s,
            v["id"].as_str(),
            v["state"].as_str(),
            v["replayed"].as_bool()
        ),
        (201, Some("po_3"), Some("pending"), Some(false))
    );
    let (s, v) = call(&mut db, "POST", "/payouts", payout("900", "h"));
    assert_eq!(
        (s, v["id"].as_str(), v["replayed"].as_bool()),
        (200, Some("po_3"), Some(true))
    );
    let (s, v) = call(&mut db, "POST", "/payouts", payout("900", "h2"));
    assert_eq!(
        (s, v["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    let (s, v) = call(&mut db, "GET", "/payouts/po_3", Value::Null);
    assert_eq!((s, v["amount"].as_str()), (200, Some("900")));
    let (s, v) = call(
        &mut db,
        "POST",
        "/payouts/po_3/post",
        json!({"txRef": "0xpaid"}),
    );
    assert_eq!((s, v["state"].as_str()), (200, Some("posted")));
    let (s, v) = call(
        &mut db,
        "POST",
        "/payouts/po_3/void",
        json!({"reason": "r"}),
    );
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("payout_already_posted"))
    );
    let (s, v) = call(
        &mut db,
        "POST",
        "/payouts/po_77/void",
        json!({"reason": "r"}),
    );
    assert_eq!((s, v["code"].as_str()), (404, Some("payout_not_found")));
    let (s, v) = call(&mut db, "GET", "/payouts/nope", Value::Null);
    assert_eq!((s, v["code"].as_str()), (404, Some("payout_not_found")));

    let (s, v) = call(&mut db, "GET", "/entries?after=1&limit=2", Value::Null);
    assert_eq!(
        (s, v["nextCursor"].as_i64(), v["hasMore"].as_bool()),
        (200, Some(3), Some(true))
    );
    let kinds: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["payment_settled", "payout_created"]);
    for bad in [
        "/entries?limit=0",
        "/entries?limit=501",
        "/entries?after=-1",
        "/entries?after=x",
        "/earnings?days=367",
    ] {
        let (s, v) = call(&mut db, "GET", bad, Value::Null);
        assert_eq!(
            (s, v["code"].as_str()),
            (400, Some("invalid_query")),
            "{bad}"
        );
    }
    let (s, v) = call(&mut db, "GET", "/earnings", Value::Null);
    assert_eq!(s, 200);
    assert_eq!(
        (v["gross"].as_str(), v["fees"].as_str(), v["net"].as_str()),
        (Some("1000"), Some("100"), Some("900"))
    );
    assert_eq!(
        (
            v["paidOut"].as_str(),
            v["available"].as_str(),
            v["lastSeq"].as_i64()
        ),
        (Some("900"), Some("0"), Some(4))
    );
    assert_eq!(v["days"][0]["day"].as_str(), Some("2023-11-14"));

    let (s, v) = call(&mut db, "DELETE", "/entries", Value::Null);
    assert_eq!((s, v["code"].as_str()), (404, Some("route_not_found")));
}

// ---------------------------------------------------------------------------------------
// Randomized interleavings against a reference model

#[derive(Debug, Clone)]
enum Op {
    Reserve {
        key: u8,
        tamper: bool,
        gross: u128,
    },
    Settle {
        key: u8,
        tx: u8,
        payer: u8,
        local: bool,
        bps: u32,
    },
    Void {
        key: u8,
        reason: u8,
    },
    CreatePayout {
        key: u8,
        tamper: bool,
        amount: u128,
        dest: u8,
    },
    PostPayout {
        which: u8,
        tx: u8,
    },
    VoidPayout {
        which: u8,
        reason: u8,
    },
}

#[derive(Debug, Clone)]
struct Step {
    op: Op,
    deliveries: u8,
    crash_at: Option<u32>,
    advance_ms: i64,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let gross = prop_oneof![30 => 1u128..5_000, 1 => (u128::MAX / 4)..=u128::MAX];
    let bps = prop_oneof![Just(250u32), Just(500), Just(1_000), 0u32..=10_000];
    prop_oneof![
        3 => (0u8..6, prop::bool::weighted(0.15), gross)
            .prop_map(|(key, tamper, gross)| Op::Reserve { key, tamper, gross }),
        3 => (0u8..6, 0u8..2, 0u8..2, prop::bool::weighted(0.2), bps)
            .prop_map(|(key, tx, payer, local, bps)| Op::Settle { key, tx, payer, local, bps }),
        1 => (0u8..6, 0u8..2).prop_map(|(key, reason)| Op::Void { key, reason }),
        2 => (0u8..4, prop::bool::weighted(0.15), 1u128..3_000, 0u8..2)
            .prop_map(|(key, tamper, amount, dest)| Op::CreatePayout { key, tamper, amount, dest }),
        2 => (0u8..8, 0u8..2).prop_map(|(which, tx)| Op::PostPayout { which, tx }),
        1 => (0u8..8, 0u8..2).prop_map(|(which, reason)| Op::VoidPayout { which, reason }),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    (
        op_strategy(),
        1u8..=3,
        prop::option::weighted(0.25, 0u32..9),
        0i64..(2 * DAY_MS),
    )
        .prop_map(|(op, deliveries, crash_at, advance_ms)| Step {
            op,
            deliveries,
            crash_at,
            advance_ms,
        })
}

/// What a call returned, reduced to what the model predicts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Payment {
        state: PaymentState,
        gross: u128,
        fee: Option<u128>,
        net: Option<u128>,
        replayed: bool,
    },
    Payout {
        id: String,
        state: PayoutState,
        amount: u128,
        replayed: bool,
    },
    Failed(&'static str),
}

fn of_payment(p: &Payment, replayed: bool) -> Outcome {
    Outcome::Payment {
        state: p.state,
        gross: p.gross,
        fee: p.fee,
        net: p.net,
        replayed,
    }
}

fn of_payout(p: &Payout, replayed: bool) -> Outcome {
    Outcome::Payout {
        id: p.id.clone(),
        state: p.state,
        amount: p.amount,
        replayed,
    }
}

#[derive(Debug, Clone)]
struct MPayment {
    fingerprint: String,
    gross: u128,
    state: PaymentState,
    /// (tx, payer, local, bps) once settled.
    settled: Option<(String, String, bool, u32)>,
    fee: Option<u128>,
    net: Option<u128>,
}

#[derive(Debug, Clone)]
struct MPayout {
    id: String,
    key: String,
    fingerprint: String,
    amount: u128,
    dest: String,
    state: PayoutState,
    tx: Option<String>,
}

/// The ledger's rules, restated as plain maps and counters.
#[derive(Debug, Default)]
struct Model {
    seq: i64,
    payments: BTreeMap<String, MPayment>,
    payouts: Vec<MPayout>,
    reserved: u128,
    reserved_count: u64,
    gross: u128,
    fee: u128,
    net: u128,
    settled_count: u64,
    local_net: u128,
    local_count: u64,
    voided_count: u64,
    pending: u128,
    pending_count: u64,
    posted: u128,
    posted_count: u64,
    payouts_voided: u64,
    days: BTreeMap<i64, (u128, u128, u128, u64)>,
}

fn payer(i: u8) -> &'static str {
    if i == 0 {
        PAYER_A
    } else {
        PAYER_B
    }
}

fn dest(i: u8) -> &'static str {
    if i == 0 {
        DEST_A
    } else {
        DEST_B
    }
}

fn model_fee(gross: u128, bps: u32) -> u128 {
    match gross.checked_mul(u128::from(bps)) {
        Some(p) => p / 10_000,
        // Beyond the plain product: the unit-tested closed form.
        None => split_fee(gross, bps).unwrap().0,
    }
}

impl Model {
    fn available(&self) -> u128 {
        self.net - self.pending - self.posted
    }

    /// A settlement's reference: on chain `0xtx<n>` (shared between payments on purpose,
    /// to exercise the one-payment-per-transaction rule); local `local:<fingerprint>`.
    fn tx_ref(&self, key: &str, tx: u8, local: bool) -> String {
        if local {
            let fp = self
                .payments
                .get(key)
                .map_or("none", |p| p.fingerprint.as_str());
            format!("local:{fp}")
        } else {
            format!("0xtx{tx}")
        }
    }

    fn payout_id(&self, which: u8) -> String {
        let i = usize::from(which) % (self.payouts.len() + 1);
        match self.payouts.get(i) {
            Some(p) => p.id.clone(),
            None => "po_999999".into(),
        }
    }

    fn apply(&mut self, op: &Op, now: i64) -> Outcome {
        use Outcome::Failed;
        match op {
            Op::Reserve { key, tamper, gross } => {
                let key = format!("pay-{key}");
                let fp = format!("{}{gross}", if *tamper { "t" } else { "f" });
                if let Some(p) = self.payments.get(&key) {
                    if p.fingerprint != fp || p.gross != *gross {
                        return Failed("payment_key_reused");
                    }
                    return Failed(match p.state {
                        PaymentState::Reserved => "payment_in_flight",
                        PaymentState::Settled => "payment_already_settled",
                        PaymentState::Voided => "payment_already_voided",
                    });
                }
                let fits = self
                    .reserved
                    .checked_add(*gross)
                    .and_then(|r| r.checked_add(self.gross));
                if fits.is_none() {
                    return Failed("amount_overflow");
                }
                self.seq += 1;
                self.reserved += gross;
                self.reserved_count += 1;
                let p = MPayment {
                    fingerprint: fp,
                    gross: *gross,
                    state: PaymentState::Reserved,
                    settled: None,
                    fee: None,
                    net: None,
                };
                self.payments.insert(key, p);
                Outcome::Payment {
                    state: PaymentState::Reserved,
                    gross: *gross,
                    fee: None,
                    net: None,
                    replayed: false,
                }
            }
            Op::Settle {
                key,
                tx,
                payer: who,
                local,
                bps,
            } => {
                let key = format!("pay-{key}");
                let tx_ref = self.tx_ref(&key, *tx, *local);
                let wanted = (tx_ref.clone(), payer(*who).to_owned(), *local, *bps);
                let reused = !*local
                    && self.payments.iter().any(|(k, p)| {
                        *k != key && p.settled.as_ref().is_some_and(|s| s.0 == tx_ref)
                    });
                let Some(p) = self.payments.get_mut(&key) else {
                    return Failed("payment_not_found");
                };
                match p.state {
                    PaymentState::Voided => return Failed("payment_already_voided"),
                    PaymentState::Settled if p.settled.as_ref() == Some(&wanted) => {
                        return Outcome::Payment {
                            state: p.state,
                            gross: p.gross,
                            fee: p.fee,
                            net: p.net,
                            replayed: true,
                        }
                    }
                    PaymentState::Settled => return Failed("settlement_conflict"),
                    PaymentState::Reserved => {}
                }
                if reused {
                    return Failed("transaction_already_recorded");
                }
                let fee = model_fee(p.gross, *bps);
                let net = p.gross - fee;
                p.state = PaymentState::Settled;
                p.settled = Some(wanted);
                p.fee = Some(fee);
                p.net = Some(net);
                let gross = p.gross;
                self.seq += 1;
                self.reserved -= gross;
                self.reserved_count -= 1;
                self.gross += gross;
                self.fee += fee;
                self.net += net;
                self.settled_count += 1;
                if *local {
                    self.local_net += net;
                    self.local_count += 1;
                }
                let d = self.days.entry(now / DAY_MS).or_default();
                *d = (d.0 + gross, d.1 + fee, d.2 + net, d.3 + 1);
                Outcome::Payment {
                    state: PaymentState::Settled,
                    gross,
                    fee: Some(fee),
                    net: Some(net),
                    replayed: false,
                }
            }
            Op::Void { key, .. } => {
                let key = format!("pay-{key}");
                let Some(p) = self.payments.get_mut(&key) else {
                    return Failed("payment_not_found");
                };
                let replayed = match p.state {
                    PaymentState::Settled => return Failed("payment_already_settled"),
                    PaymentState::Voided => true,
                    PaymentState::Reserved => false,
                };
                if !replayed {
                    p.state = PaymentState::Voided;
                    self.seq += 1;
                    self.reserved -= p.gross;
                    self.reserved_count -= 1;
                    self.voided_count += 1;
                }
                Outcome::Payment {
                    state: PaymentState::Voided,
                    gross: p.gross,
                    fee: None,
                    net: None,
                    replayed,
                }
            }
            Op::CreatePayout {
                key,
                tamper,
                amount,
                dest: d,
            } => {
                let key = format!("job-{key}");
                let fp = format!("{}:{amount}:{d}", if *tamper { "x" } else { "h" });
                if let Some(p) = self.payouts.iter().find(|p| p.key == key) {
                    return if p.fingerprint == fp && p.amount == *amount && p.dest == dest(*d) {
                        Outcome::Payout {
                            id: p.id.clone(),
                            state: p.state,
                            amount: p.amount,
                            replayed: true,
                        }
                    } else {
                        Failed("idempotency_key_reused")
                    };
                }
                if *amount > self.available() {
                    return Failed("insufficient_funds");
                }
                self.seq += 1;
                let id = format!("po_{}", self.seq);
                self.pending += amount;
                self.pending_count += 1;
                self.payouts.push(MPayout {
                    id: id.clone(),
                    key,
                    fingerprint: fp,
                    amount: *amount,
                    dest: dest(*d).to_owned(),
                    state: PayoutState::Pending,
                    tx: None,
                });
                Outcome::Payout {
                    id,
                    state: PayoutState::Pending,
                    amount: *amount,
                    replayed: false,
                }
            }
            Op::PostPayout { which, tx } => {
                let id = self.payout_id(*which);
                let tx = format!("0xpo{tx}");
                let Some(p) = self.payouts.iter_mut().find(|p| p.id == id) else {
                    return Failed("payout_not_found");
                };
                let replayed = match p.state {
                    PayoutState::Posted if p.tx.as_deref() == Some(tx.as_str()) => true,
                    PayoutState::Posted => return Failed("payout_already_posted"),
                    PayoutState::Voided => return Failed("payout_already_voided"),
                    PayoutState::Pending => false,
                };
                if !replayed {
                    p.state = PayoutState::Posted;
                    p.tx = Some(tx);
                    self.seq += 1;
                    self.pending -= p.amount;
                    self.pending_count -= 1;
                    self.posted += p.amount;
                    self.posted_count += 1;
                }
                Outcome::Payout {
                    id,
                    state: PayoutState::Posted,
                    amount: p.amount,
                    replayed,
                }
            }
            Op::VoidPayout { which, .. } => {
                let id = self.payout_id(*which);
                let Some(p) = self.payouts.iter_mut().find(|p| p.id == id) else {
                    return Failed("payout_not_found");
                };
                let replayed = match p.state {
                    PayoutState::Posted => return Failed("payout_already_posted"),
                    PayoutState::Voided => true,
                    PayoutState::Pending => false,
                };
                if !replayed {
                    p.state = PayoutState::Voided;
                    self.seq += 1;
                    self.pending -= p.amount;
                    self.pending_count -= 1;
                    self.payouts_voided += 1;
                }
                Outcome::Payout {
                    id,
                    state: PayoutState::Voided,
                    amount: p.amount,
                    replayed,
                }
            }
        }
    }
}

/// Runs `op` on the real ledger, with the same inputs the model derives.
fn run<S: SqlStore>(l: &mut Ledger<'_, S>, m: &Model, op: &Op, now: i64) -> Outcome {
    let r = match op {
        Op::Reserve { key, tamper, gross } => {
            let fp = format!("{}{gross}", if *tamper { "t" } else { "f" });
            l.reserve(&format!("pay-{key}"), &fp, *gross, now)
                .map(|p| of_payment(&p, false))
        }
        Op::Settle {
            key,
            tx,
            payer: who,
            local,
            bps,
        } => {
            let tx = m.tx_ref(&format!("pay-{key}"), *tx, *local);
            let s = Settlement {
                tx_ref: &tx,
                network: Network::BaseSepolia,
                payer: payer(*who),
                local_settlement: *local,
                fee_bps: *bps,
            };
            l.settle(&format!("pay-{key}"), &s, now)
                .map(|a| of_payment(&a.record, a.replayed))
        }
        Op::Void { key, reason } => l
            .void(&format!("pay-{key}"), &format!("reason {reason}"), now)
            .map(|a| of_payment(&a.record, a.replayed)),
        Op::CreatePayout {
            key,
            tamper,
            amount,
            dest: d,
        } => {
            let fp = format!("{}:{amount}:{d}", if *tamper { "x" } else { "h" });
            l.create_payout(&format!("job-{key}"), &fp, *amount, dest(*d), now)
                .map(|a| of_payout(&a.record, a.replayed))
        }
        Op::PostPayout { which, tx } => l
            .post_payout(&m.payout_id(*which), &format!("0xpo{tx}"), now)
            .map(|a| of_payout(&a.record, a.replayed)),
        Op::VoidPayout { which, reason } => l
            .void_payout(&m.payout_id(*which), &format!("reason {reason}"), now)
            .map(|a| of_payout(&a.record, a.replayed)),
    };
    match r {
        Ok(o) => o,
        Err(e) => Outcome::Failed(e.code()),
    }
}

/// Every invariant, checked on the real ledger and against the model.
fn check_all(db: &mut Faulty, m: &Model, page: u32) -> Result<(), TestCaseError> {
    let mut l = Ledger::open(db).unwrap();
    let report = l
        .audit()
        .map_err(|e| TestCaseError::fail(format!("audit: {e}")))?;
    prop_assert_eq!(report.entries, u64::try_from(m.seq).unwrap());

    let e = l.earnings(MAX_DAYS).unwrap();
    prop_assert_eq!(e.gross, e.fees + e.net, "gross = fee + net");
    prop_assert_eq!(
        e.net,
        e.available + e.payouts_pending + e.paid_out,
        "money conserved"
    );
    prop_assert_eq!(
        (e.gross, e.fees, e.net, e.settled_count),
        (m.gross, m.fee, m.net, m.settled_count)
    );
    prop_assert_eq!((e.local_net, e.local_count), (m.local_net, m.local_count));
    prop_assert_eq!(
        (e.pending, e.pending_count, e.voided_count),
        (m.reserved, m.reserved_count, m.voided_count)
    );
    prop_assert_eq!(
        (e.payouts_pending, e.payouts_pending_count),
        (m.pending, m.pending_count)
    );
    prop_assert_eq!(
        (e.paid_out, e.paid_out_count, e.payouts_voided_count),
        (m.posted, m.posted_count, m.payouts_voided)
    );
    prop_assert_eq!(e.available, m.available());
    prop_assert_eq!(e.last_seq, m.seq);
    let days: Vec<_> = e
        .days
        .iter()
        .map(|d| (d.gross, d.fee, d.net, d.count))
        .collect();
    let want: Vec<_> = m.days.values().copied().collect();
    prop_assert_eq!(days, want);

    // Seq: 1..=n, strictly increasing, no gaps, for any page size.
    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let p = l.entries(after, page).unwrap();
        prop_assert!(p.entries.len() <= page as usize);
        seqs.extend(p.entries.iter().map(|e| e.seq));
        after = p.next_cursor;
        if !p.has_more {
            break;
        }
    }
    prop_assert_eq!(seqs, (1..=m.seq).collect::<Vec<_>>());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// Random interleavings of every operation, each delivered 1-3 times, some cut short by
    /// a crash at a random statement: after every step the ledger matches the model and
    /// every invariant holds.
    #[test]
    fn ledger_matches_model_under_duplicates_and_crashes(
        steps in proptest::collection::vec(step_strategy(), 1..60),
        page in 1u32..9,
    ) {
        let (mut db, fault) = Faulty::new();
        let mut m = Model::default();
        let mut now = T0;
        for step in &steps {
            now += step.advance_ms;
            let mut deliveries = u32::from(step.deliveries);
            if let Some(n) = step.crash_at {
                let before = snapshot(&mut db);
                let mut l = Ledger::open(&mut db).unwrap();
                fault.tripped.set(false);
                fault.countdown.set(Some(n));
                let got = run(&mut l, &m, &step.op, now);
                fault.countdown.set(None);
                if fault.tripped.get() {
                    prop_assert_eq!(got, Outcome::Failed("internal_error"));
                    prop_assert_eq!(snapshot(&mut db), before, "crash left partial writes");
                } else {
                    // The operation finished before the crash point: a normal delivery.
                    let want = m.apply(&step.op, now);
                    prop_assert_eq!(got, want, "{:?}", step.op);
                    deliveries -= 1;
                }
            }
            for _ in 0..deliveries {
                let want = m.apply(&step.op, now);
                let mut l = Ledger::open(&mut db).unwrap();
                let got = run(&mut l, &m, &step.op, now);
                prop_assert_eq!(got, want, "{:?}", step.op);
            }
            check_all(&mut db, &m, page)?;
        }
    }
}

// ---------------------------------------------------------------------------------------
// One payment per transaction; local references

#[test]
fn a_transaction_hash_settles_one_payment_only() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    l.reserve("k1", "fp1", 1_000, T0).unwrap();
    l.reserve("k2", "fp2", 1_000, T0).unwrap();
    l.settle("k1", &settlement("0xaaa", 500), T0).unwrap();
    // Another payment claiming the same transaction: refused, nothing written.
    let last = l.entries(0, 10).unwrap().next_cursor;
    assert_eq!(
        code(l.settle("k2", &settlement("0xaaa", 500), T0)),
        "transaction_already_recorded"
    );
    assert_eq!(l.entries(0, 10).unwrap().next_cursor, last);
    assert_eq!(
        l.payment("k2").unwrap().unwrap().state,
        PaymentState::Reserved
    );
    // The original settlement replays; k2 can still settle with its own transaction.
    assert!(
        l.settle("k1", &settlement("0xaaa", 500), T0)
            .unwrap()
            .replayed
    );
    l.settle("k2", &settlement("0xbbb", 500), T0).unwrap();
    let err = LedgerError::TransactionAlreadyRecorded("0xaaa".into());
    assert_eq!(
        (err.status(), err.code()),
        (409, "transaction_already_recorded")
    );
    l.audit().unwrap();
}

#[test]
fn local_settlements_are_keyed_by_the_payment_fingerprint() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    l.reserve("k1", "fpA", 1_000, T0).unwrap();
    l.reserve("k2", "fpB", 1_000, T0).unwrap();
    let local = |tx: &'static str| Settlement {
        tx_ref: tx,
        network: Network::BaseSepolia,
        payer: PAYER_A,
        local_settlement: true,
        fee_bps: 1_000,
    };
    // A local settlement must carry its own payment's fingerprint ...
    assert_eq!(
        code(l.settle("k1", &local("local:fpB"), T0)),
        "invalid_field"
    );
    assert_eq!(code(l.settle("k1", &local("0xabc"), T0)), "invalid_field");
    // ... and an on-chain one must not look local.
    assert_eq!(
        code(l.settle("k1", &settlement("local:fpA", 0), T0)),
        "invalid_field"
    );
    let p = l.settle("k1", &local("local:fpA"), T0).unwrap().record;
    assert_eq!(p.local_settlement, Some(true));
    l.settle("k2", &local("local:fpB"), T0).unwrap();
    l.audit().unwrap();
}

// ---------------------------------------------------------------------------------------
// The reservation sweep

#[test]
fn the_sweep_voids_only_expired_reservations() {
    let ttl = RESERVATION_TTL_MS;
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    let empty = l.sweep_expired(T0, ttl, SWEEP_BATCH).unwrap();
    assert_eq!(
        empty,
        SweepReport {
            voided: 0,
            next_due_ms: None
        }
    );

    l.reserve("old", "fp", 100, T0).unwrap();
    l.reserve("settled", "fp", 100, T0).unwrap();
    l.settle("settled", &settlement("0xs", 0), T0).unwrap();
    l.reserve("young", "fp", 100, T0 + 60_000).unwrap();

    // Not yet due: nothing happens, and the next sweep is when "old" falls due.
    let r = l.sweep_expired(T0 + ttl - 1, ttl, SWEEP_BATCH).unwrap();
    assert_eq!(
        r,
        SweepReport {
            voided: 0,
            next_due_ms: Some(T0 + ttl)
        }
    );

    let r = l.sweep_expired(T0 + ttl, ttl, SWEEP_BATCH).unwrap();
    assert_eq!(
        r,
        SweepReport {
            voided: 1,
            next_due_ms: Some(T0 + 60_000 + ttl)
        }
    );
    let old = l.payment("old").unwrap().unwrap();
    assert_eq!(old.state, PaymentState::Voided);
    assert_eq!(old.void_reason.as_deref(), Some(EXPIRED_REASON));
    assert_eq!(
        l.payment("settled").unwrap().unwrap().state,
        PaymentState::Settled
    );
    assert_eq!(
        l.payment("young").unwrap().unwrap().state,
        PaymentState::Reserved
    );
    // A late settle of a swept payment is refused: it can never count twice.
    assert_eq!(
        code(l.settle("old", &settlement("0xlate", 0), T0)),
        "payment_already_voided"
    );
    let e = l.earnings(1).unwrap();
    assert_eq!((e.pending, e.pending_count, e.voided_count), (100, 1, 1));
    l.audit().unwrap();

    assert_eq!(code(l.sweep_expired(T0, -1, 10)), "invalid_field");
}

#[test]
fn the_sweep_works_in_batches_and_is_atomic() {
    let (mut db, fault) = Faulty::new();
    let mut l = Ledger::open(&mut db).unwrap();
    for i in 0..5 {
        l.reserve(&format!("k{i}"), "fp", 10, T0 + i).unwrap();
    }
    let later = T0 + RESERVATION_TTL_MS + 10;
    let r = l.sweep_expired(later, RESERVATION_TTL_MS, 2).unwrap();
    // Two voided, the rest already due: the alarm runs again at once.
    assert_eq!(r.voided, 2);
    assert_eq!(r.next_due_ms, Some(T0 + 2 + RESERVATION_TTL_MS));
    assert_eq!(
        l.payment("k0").unwrap().unwrap().state,
        PaymentState::Voided
    );
    assert_eq!(
        l.payment("k2").unwrap().unwrap().state,
        PaymentState::Reserved
    );

    // A crash mid-sweep leaves nothing half voided.
    let before = snapshot(&mut db);
    let mut l = Ledger::open(&mut db).unwrap();
    fault.tripped.set(false);
    fault.countdown.set(Some(5));
    assert_eq!(
        code(l.sweep_expired(later, RESERVATION_TTL_MS, 10)),
        "internal_error"
    );
    fault.countdown.set(None);
    assert!(fault.tripped.get());

    assert_eq!(snapshot(&mut db), before);

    let mut l = Ledger::open(&mut db).unwrap();
    let r = l.sweep_expired(later, RESERVATION_TTL_MS, 10).unwrap();
    assert_eq!(
        r,
        SweepReport {
            voided: 3,
            next_due_ms: None
        }
    );
    l.audit().unwrap();
}

proptest! {
    /// Whatever mix of reservations, settlements and ages: a sweep voids exactly the
    /// reservations at or past the TTL, touches nothing else, and the books still audit.
    #[test]
    fn sweeping_voids_exactly_the_expired(
        ages in proptest::collection::vec((0i64..(2 * RESERVATION_TTL_MS), any::<bool>()), 1..40),
    ) {
        let mut db = MemSql::new();
        let mut l = Ledger::open(&mut db).unwrap();
        let now = T0 + 2 * RESERVATION_TTL_MS;
        for (i, (age, settle)) in ages.iter().enumerate() {
            let key = format!("k{i}");
            l.reserve(&key, "fp", 7, now - age).unwrap();
            if *settle {
                l.settle(&key, &settlement(&format!("0x{i}"), 100), now - age).unwrap();
            }
        }
        let r = l.sweep_expired(now, RESERVATION_TTL_MS, SWEEP_BATCH).unwrap();
        let mut expired = 0u64;
        let mut oldest_open: Option<i64> = None;
        for (i, (age, settle)) in ages.iter().enumerate() {
            let p = l.payment(&format!("k{i}")).unwrap().unwrap();
            let want = if *settle {
                PaymentState::Settled
            } else if *age >= RESERVATION_TTL_MS {
                expired += 1;
                PaymentState::Voided
            } else {
                let at = now - age;
                oldest_open = Some(oldest_open.map_or(at, |o| o.min(at)));
                PaymentState::Reserved
            };
            prop_assert_eq!(p.state, want);
        }
        prop_assert_eq!(r.voided, expired);
        prop_assert_eq!(r.next_due_ms, oldest_open.map(|o| o + RESERVATION_TTL_MS));
        l.audit().unwrap();
    }
}
