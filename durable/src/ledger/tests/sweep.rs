//! The reservation sweep.

use super::*;

// ---------------------------------------------------------------------------------------
// The reservation sweep

#[test]
fn the_sweep_marks_only_overdue_reservations_unknown_and_voids_nothing() {
    let ttl = RESERVATION_TTL_MS;
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    let empty = l.sweep_expired(T0, ttl, SWEEP_BATCH).unwrap();
    assert_eq!(
        empty,
        SweepReport {
            marked_unknown: 0,
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
            marked_unknown: 0,
            next_due_ms: Some(T0 + ttl)
        }
    );

    let r = l.sweep_expired(T0 + ttl, ttl, SWEEP_BATCH).unwrap();
    assert_eq!(
        r,
        SweepReport {
            marked_unknown: 1,
            next_due_ms: Some(T0 + 60_000 + ttl)
        }
    );
    let old = l.payment("old").unwrap().unwrap();
    assert_eq!(old.state, PaymentState::Unknown);
    assert_eq!(old.unknown_reason.as_deref(), Some(EXPIRED_REASON));
    assert_eq!(state_of(&mut l, "settled"), PaymentState::Settled);
    assert_eq!(state_of(&mut l, "young"), PaymentState::Reserved);
    let e = l.earnings(1).unwrap();
    assert_eq!(
        (
            e.pending,
            e.pending_count,
            e.unknown,
            e.unknown_count,
            e.voided_count
        ),
        (100, 1, 100, 1, 0)
    );
    // Its own call cannot void it any more (only the chain can), and a second sweep
    // leaves it alone.
    refused(l.void("old", "late", T0 + ttl), "payment_outcome_unknown");
    let again = l.sweep_expired(T0 + ttl, ttl, SWEEP_BATCH).unwrap();
    assert_eq!(again.marked_unknown, 0);
    // A late settlement with a transaction books it, once.
    let late = l.settle("old", &settlement("0xlate", 0), T0 + ttl).unwrap();
    assert_eq!(
        (late.record.state, late.replayed),
        (PaymentState::Settled, false)
    );
    let e = l.earnings(1).unwrap();
    assert_eq!((e.unknown_count, e.settled_count, e.gross), (0, 2, 200));
    l.audit().unwrap();

    refused(l.sweep_expired(T0, -1, 10), "invalid_field");
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
    assert_eq!(r.marked_unknown, 2);
    assert_eq!(r.next_due_ms, Some(T0 + 2 + RESERVATION_TTL_MS));
    assert_eq!(state_of(&mut l, "k0"), PaymentState::Unknown);
    assert_eq!(state_of(&mut l, "k2"), PaymentState::Reserved);

    // A crash mid-sweep leaves nothing half marked.
    let before = snapshot(&mut db);
    let mut l = Ledger::open(&mut db).unwrap();
    fault.tripped.set(false);
    fault.countdown.set(Some(5));
    refused(
        l.sweep_expired(later, RESERVATION_TTL_MS, 10),
        "internal_error",
    );
    fault.countdown.set(None);
    assert!(fault.tripped.get());

    assert_eq!(snapshot(&mut db), before);

    let mut l = Ledger::open(&mut db).unwrap();
    let r = l.sweep_expired(later, RESERVATION_TTL_MS, 10).unwrap();
    assert_eq!(
        r,
        SweepReport {
            marked_unknown: 3,
            next_due_ms: None
        }
    );
    l.audit().unwrap();
}

proptest! {
    /// Whatever mix of reservations, settlements and ages: a sweep marks exactly the
    /// reservations at or past the TTL unknown, touches nothing else, and the books still
    /// audit.
    #[test]
    fn sweeping_marks_exactly_the_overdue(
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
                PaymentState::Unknown
            } else {
                let at = now - age;
                oldest_open = Some(oldest_open.map_or(at, |o| o.min(at)));
                PaymentState::Reserved
            };
            prop_assert_eq!(p.state, want);
        }
        prop_assert_eq!(r.marked_unknown, expired);
        prop_assert_eq!(r.next_due_ms, oldest_open.map(|o| o + RESERVATION_TTL_MS));
        l.audit().unwrap();
    }
}
