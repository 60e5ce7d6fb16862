//! Paid answers kept for a retry of the same payment.

use super::*;

fn kept(body: &[u8], stored: bool) -> StoredAnswer {
    StoredAnswer {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body_bytes: u64::try_from(body.len()).unwrap(),
        body_stored: stored,
        body: if stored { body.to_vec() } else { Vec::new() },
    }
}

#[test]
fn the_first_answer_stands_and_a_retry_gets_it_with_its_payment() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    l.reserve("k", "fp", 1_000, T0).unwrap();
    assert!(l
        .store_answer("k", "fp", &kept(b"{\"a\":1}", true), T0)
        .unwrap());
    // A second answer for the same payment changes nothing.
    assert!(!l
        .store_answer("k", "fp", &kept(b"other", true), T0)
        .unwrap());
    let a = l.answer("k").unwrap().unwrap();
    assert_eq!(
        (a.status, a.body.as_slice(), a.body_stored),
        (200, &b"{\"a\":1}"[..], true)
    );
    assert_eq!(a.headers, kept(b"", true).headers);

    l.settle("k", &settlement("0xk", 500), T0).unwrap();
    let (p, answer) = l.recovery("k", "fp").unwrap();
    assert_eq!(
        (p.state, answer.map(|a| a.body)),
        (PaymentState::Settled, Some(b"{\"a\":1}".to_vec()))
    );
    // Another payment under the same key, or no payment: nothing comes back.
    refused(l.recovery("k", "other-fp"), "payment_key_reused");
    refused(l.recovery("nope", "fp"), "payment_not_found");
    refused(
        l.store_answer("k", "other-fp", &kept(b"x", true), T0),
        "payment_key_reused",
    );
    refused(
        l.store_answer("nope", "fp", &kept(b"x", true), T0),
        "payment_not_found",
    );
    l.audit().unwrap();
}

#[test]
fn answers_over_the_bound_are_kept_without_their_body_and_expire() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    l.reserve("big", "fp", 10, T0).unwrap();
    let huge = vec![b'x'; MAX_STORED_ANSWER_BYTES + 1];
    // Claiming to keep a body over the bound is refused; keeping its metadata is not.
    refused(
        l.store_answer("big", "fp", &kept(&huge, true), T0),
        "invalid_field",
    );
    let mut meta_only = kept(&huge, false);
    meta_only.body_bytes = u64::try_from(huge.len()).unwrap();
    assert!(l.store_answer("big", "fp", &meta_only, T0).unwrap());
    let a = l.answer("big").unwrap().unwrap();
    assert_eq!(
        (a.body_stored, a.body_bytes, a.body.len()),
        (false, huge.len() as u64, 0)
    );
    let bad = StoredAnswer {
        status: 42,
        ..kept(b"", true)
    };
    l.reserve("b2", "fp", 10, T0).unwrap();
    refused(l.store_answer("b2", "fp", &bad, T0), "invalid_field");

    // Kept for ANSWER_TTL_MS, then swept.
    assert_eq!(
        l.sweep_answers(T0 + ANSWER_TTL_MS - 1, ANSWER_TTL_MS, 10)
            .unwrap(),
        0
    );
    assert_eq!(
        l.sweep_answers(T0 + ANSWER_TTL_MS, ANSWER_TTL_MS, 10)
            .unwrap(),
        1
    );
    assert!(l.answer("big").unwrap().is_none());
}

#[test]
fn a_payment_id_names_one_payment() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    let id = "pay_7d5d747be160e280504c099d984bcfe0";
    l.reserve_identified("k1", "fp1", 10, None, Some(id), T0)
        .unwrap();
    assert_eq!(
        l.payment_by_id(id).unwrap(),
        Some(("k1".into(), "fp1".into()))
    );
    // The same id for another payment: refused, and that payment is not reserved.
    refused(
        l.reserve_identified("k2", "fp2", 10, None, Some(id), T0),
        "payment_identifier_reused",
    );
    assert!(l.payment("k2").unwrap().is_none());
    assert_eq!(l.payment_by_id("pay_unknown_000000000000").unwrap(), None);
    // The same payment again with its id: the payment's own state decides.
    refused(
        l.reserve_identified("k1", "fp1", 10, None, Some(id), T0),
        "payment_in_flight",
    );
    l.audit().unwrap();
}
