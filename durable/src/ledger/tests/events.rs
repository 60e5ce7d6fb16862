//! Usage events kept with their settlement and handed to the queue.

use super::*;
use crate::events::fixtures::{event, NOW};
use crate::events::{Stage, UsageEvent};

fn settled_event(id: &str) -> UsageEvent {
    event(
        id,
        "tn",
        NOW - 10,
        Stage::Settled,
        false,
        1,
        Some(1),
        1_000,
        false,
    )
}

#[test]
fn a_settled_call_keeps_its_event_in_the_same_step() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    l.reserve("k", "fp", 1_000, NOW).unwrap();
    let e = settled_event("ev-1");
    let s = settlement("0xabc", 100);
    let applied = l.settle_with_event("k", &s, Some(&e), NOW).unwrap();
    assert!(!applied.replayed);
    let pending = l.pending_events(10).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, "ev-1");
    let back: UsageEvent = serde_json::from_str(&pending[0].json).unwrap();
    assert_eq!(back, e);

    // A replayed settlement (the dispatcher retried) keeps nothing more.
    let again = l
        .settle_with_event("k", &s, Some(&settled_event("ev-2")), NOW)
        .unwrap();
    assert!(again.replayed);
    assert_eq!(l.pending_events(10).unwrap().len(), 1);

    // Once the queue took it, it is forgotten.
    l.events_sent(&["ev-1".to_owned()]).unwrap();
    assert!(l.pending_events(10).unwrap().is_empty());
}

#[test]
fn a_refused_settlement_keeps_no_event_and_a_bad_event_settles_nothing() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    l.reserve("k", "fp", 1_000, NOW).unwrap();
    l.void("k", "tenant_failed", NOW).unwrap();
    let refused = l.settle_with_event(
        "k",
        &settlement("0xabc", 100),
        Some(&settled_event("ev-1")),
        NOW,
    );
    assert_eq!(code(refused), "payment_already_voided");
    assert!(l.pending_events(10).unwrap().is_empty());

    // An event the events objects would refuse rolls the settlement back with it.
    l.reserve("k2", "fp2", 1_000, NOW).unwrap();
    let mut bad = settled_event("ev-2");
    bad.id = String::new();
    let refused = l.settle_with_event("k2", &settlement("0xdef", 100), Some(&bad), NOW);
    assert_eq!(code(refused), "invalid_field");
    assert_eq!(
        l.payment("k2").unwrap().unwrap().state,
        PaymentState::Reserved
    );
    assert!(l.pending_events(10).unwrap().is_empty());
}

#[test]
fn pending_events_come_oldest_first_in_batches() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    for i in 0..5 {
        let key = format!("k{i}");
        l.reserve(&key, &format!("fp{i}"), 1_000, NOW).unwrap();
        let e = settled_event(&format!("ev-{i}"));
        l.settle_with_event(
            &key,
            &settlement(&format!("0x{i:03}"), 0),
            Some(&e),
            NOW + i,
        )
        .unwrap();
    }
    let first: Vec<String> = l
        .pending_events(3)
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(first, ["ev-0", "ev-1", "ev-2"]);
    l.events_sent(&first).unwrap();
    let rest: Vec<String> = l
        .pending_events(3)
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(rest, ["ev-3", "ev-4"]);
}
