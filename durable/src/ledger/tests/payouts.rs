//! Payouts: holds, releases, and never overdrawing.

use super::*;

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
    // The same key with another fingerprint, amount or destination: refused.
    for (fp, amount, dest) in [
        ("h2", 600, DEST_A),
        ("h1", 601, DEST_A),
        ("h1", 600, DEST_B),
    ] {
        refused(
            l.create_payout("pk1", fp, amount, dest, T0),
            "idempotency_key_reused",
        );
    }

    // Another payout to the same destination while one is pending is fine, within funds.
    refused(
        l.create_payout("pk2", "h", 401, DEST_A, T0),
        "insufficient_funds",
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
    refused(
        l.post_payout(&a.record.id, "0xother", T0),
        "payout_already_posted",
    );
    refused(
        l.void_payout(&a.record.id, "oops", T0),
        "payout_already_posted",
    );

    let voided = l.void_payout(&b.id, "bad destination", T0 + 4).unwrap();
    assert_eq!(
        (voided.record.state, voided.replayed),
        (PayoutState::Voided, false)
    );
    assert!(l.void_payout(&b.id, "again", T0).unwrap().replayed);
    refused(l.post_payout(&b.id, "0xlate", T0), "payout_already_voided");

    refused(l.post_payout("po_999", "0x", T0), "payout_not_found");
    refused(l.void_payout("../etc", "x", T0), "payout_not_found");
    assert_eq!(l.payout("po_999").unwrap(), None);

    let e = l.earnings(1).unwrap();
    assert_eq!((e.paid_out, e.payouts_pending, e.available), (600, 0, 400));
    assert_eq!((e.paid_out_count, e.payouts_voided_count), (1, 1));
    assert_eq!(e.net, e.available + e.payouts_pending + e.paid_out);
    l.audit().unwrap();
}

#[test]
fn payouts_list_in_creation_order_by_cursor() {
    let mut db = MemSql::new();
    funded(&mut db, 1_000);
    let mut l = Ledger::open(&mut db).unwrap();
    let empty = l.payouts(0, 10).unwrap();
    assert_eq!(
        (empty.payouts.len(), empty.next_cursor, empty.has_more),
        (0, 0, false)
    );

    let mut ids = Vec::new();
    for i in 0..5u128 {
        let key = format!("pk{i}");
        let p = l
            .create_payout(&key, "h", 10 + i, DEST_A, T0)
            .unwrap()
            .record;
        ids.push(p.id);
    }
    // Posting and voiding add journal entries but do not move a payout in the list.
    l.post_payout(&ids[0], "0xpaid", T0 + 1).unwrap();
    l.void_payout(&ids[1], "wrong", T0 + 1).unwrap();
    for page in 1..=6u32 {
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let p = l.payouts(after, page).unwrap();
            assert!(p.payouts.len() <= page as usize);
            seen.extend(p.payouts.iter().map(|p| p.id.clone()));
            after = p.next_cursor;
            if !p.has_more {
                break;
            }
        }
        assert_eq!(seen, ids, "page size {page}");
    }
    let first = l.payouts(0, 1).unwrap();
    assert_eq!(first.payouts[0].state, PayoutState::Posted);
    refused(l.payouts(-1, 10), "invalid_field");
    refused(l.payouts(0, 0), "invalid_field");
    refused(l.payouts(0, MAX_PAGE + 1), "invalid_field");
}
