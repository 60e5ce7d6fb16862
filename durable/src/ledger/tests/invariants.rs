//! Invariants are enforced, not just reported; a crash at any statement rolls back.

use super::*;

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
    refused(l.create_payout("pk", "fp", 1, DEST_A, T0), "ledger_corrupt");
    refused(l.reserve("k", "fp", 1, T0), "ledger_corrupt");
    refused(l.earnings(1), "ledger_corrupt");
    refused(l.audit(), "ledger_corrupt");
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
