//! Payments: fee rounding, the reserve/settle/void lifecycle, input checks, settlement
//! references (one payment per transaction; local references).

use super::*;

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
    refused(split_fee(1, 10_001), "invalid_field");
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
    refused(l.reserve("k1", "fp1", 1_000, T0), "payment_in_flight");
    refused(l.reserve("k1", "fp2", 1_000, T0), "payment_key_reused");
    refused(l.reserve("k1", "fp1", 999, T0), "payment_key_reused");

    let e = l.earnings(30).unwrap();
    assert_eq!((e.pending, e.pending_count, e.available), (1_000, 1, 0));

    let s = l.settle("k1", &settlement("0xtx1", 250), T0 + 5).unwrap();
    assert!(!s.replayed);
    let p = s.record;
    assert_eq!(p.state, PaymentState::Settled);
    assert_eq!((p.fee, p.net, p.fee_bps), (Some(25), Some(975), Some(250)));
    assert_eq!(p.last_seq, 2);
    refused(l.reserve("k1", "fp1", 1_000, T0), "payment_already_settled");

    // Same settlement again: the original. Different references: a conflict.
    let again = l.settle("k1", &settlement("0xtx1", 250), T0 + 9).unwrap();
    assert!(again.replayed);
    assert_eq!(again.record, p);
    refused(
        l.settle("k1", &settlement("0xtx2", 250), T0),
        "settlement_conflict",
    );
    refused(
        l.settle("k1", &settlement("0xtx1", 500), T0),
        "settlement_conflict",
    );
    refused(l.void("k1", "late", T0), "payment_already_settled");

    l.reserve("k2", "fp", 500, T0).unwrap();
    let v = l.void("k2", "tenant answered 500", T0 + 1).unwrap();
    assert!(!v.replayed);
    assert_eq!(v.record.void_reason.as_deref(), Some("tenant answered 500"));
    let v2 = l.void("k2", "another reason", T0 + 2).unwrap();
    assert!(v2.replayed);
    assert_eq!(v2.record, v.record);
    refused(
        l.settle("k2", &settlement("0xtx", 250), T0),
        "payment_already_voided",
    );
    refused(l.reserve("k2", "fp", 500, T0), "payment_already_voided");

    refused(
        l.settle("nope", &settlement("0xtx", 250), T0),
        "payment_not_found",
    );
    refused(l.void("nope", "x", T0), "payment_not_found");

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
    refused(l.settle("k", &bad, T0), "invalid_field");
    refused(
        l.settle("k", &settlement("0xtx", 10_001), T0),
        "invalid_field",
    );
    refused(l.settle("k", &settlement("", 250), T0), "invalid_field");
    refused(l.void("k", "line\nbreak", T0), "invalid_field");
    refused(
        l.create_payout(
            "pk",
            "fp",
            1,
            "0x0000000000000000000000000000000000000000",
            T0,
        ),
        "invalid_field",
    );
    refused(l.create_payout("pk", "fp", 0, DEST_A, T0), "invalid_field");
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
        reason: None,
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
    refused(l.reserve("more", "fp", 11, T0), "amount_overflow");
    l.reserve("fits", "fp", 10, T0).unwrap();
    l.settle("big", &settlement("0x1", 10_000), T0).unwrap();
    l.settle("fits", &settlement("0x2", 0), T0).unwrap();
    let e = l.earnings(1).unwrap();
    assert_eq!((e.gross, e.fees, e.net), (u128::MAX, u128::MAX - 10, 10));
    refused(l.reserve("one", "fp", 1, T0), "amount_overflow");
    l.audit().unwrap();
}

// ---------------------------------------------------------------------------------------
// One payment per transaction; local references

/// Reserves payments "k1" and "k2" of 1,000 with the given fingerprints.
fn reserve_two<S: SqlStore>(l: &mut Ledger<'_, S>, fingerprints: [&str; 2]) {
    l.reserve("k1", fingerprints[0], 1_000, T0).unwrap();
    l.reserve("k2", fingerprints[1], 1_000, T0).unwrap();
}

#[test]
fn a_transaction_hash_settles_one_payment_only() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    reserve_two(&mut l, ["fp1", "fp2"]);
    l.settle("k1", &settlement("0xaaa", 500), T0).unwrap();
    // Another payment claiming the same transaction: refused, nothing written.
    let last = l.entries(0, 10).unwrap().next_cursor;
    refused(
        l.settle("k2", &settlement("0xaaa", 500), T0),
        "transaction_already_recorded",
    );
    assert_eq!(l.entries(0, 10).unwrap().next_cursor, last);
    assert_eq!(state_of(&mut l, "k2"), PaymentState::Reserved);
    // The original settlement replays; k2 can still settle with its own transaction.
    assert!(
        l.settle("k1", &settlement("0xaaa", 500), T0)
            .unwrap()
            .replayed
    );
    l.settle("k2", &settlement("0xbbb", 500), T0).unwrap();
    let err = LedgerError::TransactionAlreadyRecorded("0xaaa".into());
    assert_eq!(
        (err.status(), err.code().as_str()),
        (409, "transaction_already_recorded")
    );
    l.audit().unwrap();
}

#[test]
fn local_settlements_are_keyed_by_the_payment_fingerprint() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    reserve_two(&mut l, ["fpA", "fpB"]);
    let local = |tx: &'static str| Settlement {
        tx_ref: tx,
        network: Network::BaseSepolia,
        payer: PAYER_A,
        local_settlement: true,
        fee_bps: 1_000,
        reason: None,
    };
    // A local settlement must carry its own payment's fingerprint ...
    refused(l.settle("k1", &local("local:fpB"), T0), "invalid_field");
    refused(l.settle("k1", &local("0xabc"), T0), "invalid_field");
    // ... and an on-chain one must not look local.
    refused(
        l.settle("k1", &settlement("local:fpA", 0), T0),
        "invalid_field",
    );
    let p = l.settle("k1", &local("local:fpA"), T0).unwrap().record;
    assert_eq!(p.local_settlement, Some(true));
    l.settle("k2", &local("local:fpB"), T0).unwrap();
    l.audit().unwrap();
}
