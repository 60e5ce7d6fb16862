//! The reservation sweep.

use super::*;

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
    assert_eq!(state_of(&mut l, "settled"), PaymentState::Settled);
    assert_eq!(state_of(&mut l, "young"), PaymentState::Reserved);
    // A late settle of a swept payment is refused: it can never count twice.
    refused(
        l.settle("old", &settlement("0xlate", 0), T0),
        "payment_already_voided",
    );
    let e = l.earnings(1).unwrap();
    assert_eq!((e.pending, e.pending_count, e.voided_count), (100, 1, 1));
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
    assert_eq!(r.voided, 2);
    assert_eq!(r.next_due_ms, Some(T0 + 2 + RESERVATION_TTL_MS));
    assert_eq!(state_of(&mut l, "k0"), PaymentState::Voided);
    assert_eq!(state_of(&mut l, "k2"), PaymentState::Reserved);

    // A crash mid-sweep leaves nothing half voided.
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
