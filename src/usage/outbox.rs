//! Batching of usage events in the isolate, without a background task.
//!
//! Each call's `waitUntil` owns the delivery of its own event: it [`Outbox::push`]es the
//! event, then [`Outbox::poll`]s until the event is done. A poll either says *wait* (a batch
//! of that tenant is being sent by some call), *send this batch* (nothing is in flight for
//! the tenant: the caller becomes its sender, for every event queued so far, up to
//! [`BATCH`]), or *done*. So at most one request per tenant is in flight from an isolate, and
//! everything that arrives while it is in flight goes in the next one: under load one
//! object request carries many events; when idle each event goes alone, at once.
//!
//! No call ever waits on another call's promise (the Workers runtime forbids I/O on behalf
//! of another request); waiters only look at this shared state, on their own timers.
//!
//! Failure: a sender reports whether its batch landed ([`Outbox::complete`]); its events are
//! then done, delivered or not (the glue retries a batch once before reporting failure, as
//! ids are idempotent). A sender that vanished (its request cancelled) is taken over after
//! [`STALE_MS`]: its events are queued again and resent (a duplicate of a batch that did
//! land is stored once, by id).
//!
//! Bounds: every queued event has a live waiter (its own call's `waitUntil`), so the outbox
//! holds at most the isolate's calls still delivering; a batch holds at most [`BATCH`]
//! events of one tenant.

use std::collections::{HashMap, VecDeque};

use claw_durable::events::{
    UsageEvent, MAX_BATCH, MAX_BATCH_BYTES, MAX_ERROR_CODE_LEN, MAX_ID_LEN, MAX_ROUTE_LEN,
    MAX_SETTLEMENT_RESULT_LEN, MAX_WORKER_NAME_LEN,
};

/// Events per object request: well within the object's 500 events and 1 MiB per batch
/// (an event is at most about 1.4 KB of JSON).
pub const BATCH: usize = 200;
/// The largest event's JSON, bounded by its longest fields (id, tenant, worker name, route,
/// settlement result, error code, two 64-hex hashes) plus generous room for the rest.
const MAX_EVENT_JSON_BYTES: usize = MAX_ID_LEN
    + 63
    + MAX_WORKER_NAME_LEN
    + MAX_ROUTE_LEN
    + MAX_SETTLEMENT_RESULT_LEN
    + MAX_ERROR_CODE_LEN
    + 2 * 64
    + 512;
// A batch never exceeds what the events object accepts in one request.
const _: () = assert!(BATCH <= MAX_BATCH);
const _: () = assert!(BATCH * MAX_EVENT_JSON_BYTES <= MAX_BATCH_BYTES);
/// A batch in flight this long is presumed lost with its sender, and its events resent.
pub const STALE_MS: i64 = 10_000;

/// Where one event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Queued,
    Sending(u64),
    Done { delivered: bool },
}

#[derive(Debug)]
struct InFlight {
    batch: u64,
    since_ms: i64,
    /// Kept to queue them again if the sender vanishes.
    events: Vec<UsageEvent>,
}

#[derive(Debug, Default)]
struct TenantBox {
    queue: VecDeque<UsageEvent>,
    in_flight: Option<InFlight>,
}

/// A batch to send to one tenant's events object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub id: u64,
    pub tenant: String,
    pub events: Vec<UsageEvent>,
}

/// What a waiter does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The event is done: stop waiting.
    Done { delivered: bool },
    /// Send this batch, then report it with [`Outbox::complete`] and poll again.
    Send(Batch),
    /// Another call is sending this tenant's batch: poll again a little later.
    Wait,
}

#[derive(Debug, Default)]
pub struct Outbox {
    tenants: HashMap<String, TenantBox>,
    slots: HashMap<String, Slot>,
    next_batch: u64,
}

impl Outbox {
    /// Queues an event. Gives it back (nothing queued) if an event with this id is still
    /// pending: ids are unique per call, so that one is not this call's to wait for.
    #[must_use = "an event given back was not queued"]
    pub fn push(&mut self, event: UsageEvent) -> Option<UsageEvent> {
        if self.slots.contains_key(&event.id) {
            return Some(event);
        }
        self.slots.insert(event.id.clone(), Slot::Queued);
        self.tenants
            .entry(event.tenant.clone())
            .or_default()
            .queue
            .push_back(event);
        None
    }

    /// The next step of the waiter of event `id` of `tenant`, at `now_ms`.
    pub fn poll(&mut self, id: &str, tenant: &str, now_ms: i64) -> Step {
        match self.slots.get(id) {
            None => return Step::Done { delivered: false },
            Some(Slot::Done { delivered }) => {
                let delivered = *delivered;
                self.slots.remove(id);
                return Step::Done { delivered };
            }
            Some(Slot::Queued | Slot::Sending(_)) => {}
        }
        let Some(b) = self.tenants.get_mut(tenant) else {
            // Pending without a box cannot happen; never leave a waiter hanging.
            self.slots.remove(id);
            return Step::Done { delivered: false };
        };
        if let Some(f) = &b.in_flight {
            if now_ms.saturating_sub(f.since_ms) < STALE_MS {
                return Step::Wait;
            }
            // The sender vanished: queue its events again, in their order, first.
            if let Some(f) = b.in_flight.take() {
                for e in f.events.into_iter().rev() {
                    if self.slots.get(&e.id) == Some(&Slot::Sending(f.batch)) {
                        self.slots.insert(e.id.clone(), Slot::Queued);
                        b.queue.push_front(e);
                    }
                }
            }
        }
        if b.queue.is_empty() {
            self.slots.remove(id);
            return Step::Done { delivered: false };
        }
        self.next_batch = self.next_batch.wrapping_add(1);
        let batch = self.next_batch;
        let n = b.queue.len().min(BATCH);
        let events: Vec<UsageEvent> = b.queue.drain(..n).collect();
        for e in &events {
            self.slots.insert(e.id.clone(), Slot::Sending(batch));
        }
        b.in_flight = Some(InFlight {
            batch,
            since_ms: now_ms,
            events: events.clone(),
        });
        debug_assert!(events.iter().all(|e| e.tenant == tenant));
        Step::Send(Batch {
            id: batch,
            tenant: tenant.to_owned(),
            events,
        })
    }

    /// The sender of `batch` reports whether it landed. A report for a batch that was taken
    /// over changes nothing (its events were queued again).
    pub fn complete(&mut self, batch: &Batch, delivered: bool) {
        for e in &batch.events {
            if self.slots.get(&e.id) == Some(&Slot::Sending(batch.id)) {
                self.slots.insert(e.id.clone(), Slot::Done { delivered });
            }
        }
        let empty = match self.tenants.get_mut(&batch.tenant) {
            Some(b) => {
                if b.in_flight.as_ref().is_some_and(|f| f.batch == batch.id) {
                    b.in_flight = None;
                }
                b.queue.is_empty() && b.in_flight.is_none()
            }
            None => false,
        };
        if empty {
            self.tenants.remove(&batch.tenant);
        }
    }

    /// Events not yet reported to their waiters.
    pub fn pending(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::CallRecord;
    use claw_durable::tenant::TenantConfig;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_800_000_000_000;

    fn event(tenant: &str, id: &str) -> UsageEvent {
        let body = r#"{"resourceType":"function","workerName":"demo-fn","plan":"free"}"#;
        let config = TenantConfig::parse(body.as_bytes(), tenant).unwrap();
        CallRecord::new(&config, "/x", NOW).finish(id, 200, NOW, b"test-salt-0123456789")
    }

    #[test]
    fn idle_events_go_alone_and_busy_ones_batch() {
        let mut o = Outbox::default();
        assert!(o.push(event("acme", "a")).is_none());
        let Step::Send(b1) = o.poll("a", "acme", NOW) else {
            panic!("the first waiter sends")
        };
        assert_eq!(b1.events.len(), 1);
        // While it is in flight, others queue and wait.
        for id in ["b", "c"] {
            assert!(o.push(event("acme", id)).is_none());
            assert_eq!(o.poll(id, "acme", NOW), Step::Wait);
        }
        // Another tenant is independent.
        assert!(o.push(event("other", "x")).is_none());
        assert!(matches!(o.poll("x", "other", NOW), Step::Send(_)));
        o.complete(&b1, true);
        assert_eq!(o.poll("a", "acme", NOW), Step::Done { delivered: true });
        let Step::Send(b2) = o.poll("c", "acme", NOW) else {
            panic!("c sends the next batch")
        };
        let ids: Vec<_> = b2.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(o.poll("b", "acme", NOW), Step::Wait);
        o.complete(&b2, false);
        assert_eq!(o.poll("b", "acme", NOW), Step::Done { delivered: false });
        assert_eq!(o.poll("c", "acme", NOW), Step::Done { delivered: false });
        assert!(
            !o.tenants.contains_key("acme"),
            "an idle tenant leaves no state"
        );
        assert_eq!(o.pending(), 1);
    }

    #[test]
    fn batches_are_bounded() {
        let mut o = Outbox::default();
        for i in 0..(BATCH + 5) {
            assert!(o.push(event("acme", &format!("e{i}"))).is_none());
        }
        let Step::Send(b) = o.poll("e0", "acme", NOW) else {
            panic!()
        };
        assert_eq!(b.events.len(), BATCH);
        o.complete(&b, true);
        let last = format!("e{}", BATCH + 4);
        let Step::Send(b) = o.poll(&last, "acme", NOW) else {
            panic!()
        };
        assert_eq!(b.events.len(), 5);
    }

    #[test]
    fn a_vanished_sender_is_taken_over() {
        let mut o = Outbox::default();
        assert!(o.push(event("acme", "a")).is_none());
        let Step::Send(lost) = o.poll("a", "acme", NOW) else {
            panic!()
        };
        assert!(o.push(event("acme", "b")).is_none());
        assert_eq!(o.poll("b", "acme", NOW + STALE_MS - 1), Step::Wait);
        let Step::Send(again) = o.poll("b", "acme", NOW + STALE_MS) else {
            panic!("taken over")
        };
        let ids: Vec<_> = again.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"], "the lost batch first, in order");
        // The vanished sender's late report changes nothing.
        o.complete(&lost, false);
        assert_eq!(o.poll("a", "acme", NOW + STALE_MS), Step::Wait);
        o.complete(&again, true);
        assert_eq!(o.poll("a", "acme", NOW), Step::Done { delivered: true });
        assert_eq!(o.poll("b", "acme", NOW), Step::Done { delivered: true });
    }

    #[test]
    fn a_pending_id_is_not_pushed_twice() {
        let mut o = Outbox::default();
        assert!(o.push(event("acme", "a")).is_none());
        assert_eq!(
            o.push(event("acme", "a")).map(|e| e.id).as_deref(),
            Some("a")
        );
        assert_eq!(o.pending(), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A new call of tenant t pushes its event.
        Push(u8),
        /// Waiter i (by arrival) polls.
        Poll(usize),
        /// In-flight send j completes (delivered or not), or its sender vanishes.
        Finish(usize, bool),
        Vanish(usize),
        /// Time passes.
        Tick(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..3).prop_map(Op::Push),
            5 => (0usize..64).prop_map(Op::Poll),
            2 => ((0usize..8), prop::bool::weighted(0.8)).prop_map(|(j, ok)| Op::Finish(j, ok)),
            1 => (0usize..8).prop_map(Op::Vanish),
            1 => (0i64..STALE_MS).prop_map(Op::Tick),
        ]
    }

    proptest! {
        /// Any interleaving of calls, polls, sends that land or fail, vanished senders and
        /// time: every waiter ends done exactly once; an event reported delivered was in a
        /// batch that landed; at most one batch per tenant is in flight unless its sender
        /// is stale; batches hold one tenant's events, at most BATCH; nothing is left over.
        #[test]
        fn every_event_is_done_exactly_once(ops in proptest::collection::vec(op(), 1..200)) {
            let mut o = Outbox::default();
            let mut now = NOW;
            let mut waiters: Vec<(String, String, Option<bool>)> = Vec::new();
            let mut sends: Vec<Batch> = Vec::new();
            let mut landed: BTreeMap<String, u32> = BTreeMap::new();
            // Per tenant: the last batch handed out, when, and whether it was reported.
            let mut last: BTreeMap<String, (u64, i64, bool)> = BTreeMap::new();
            let step = |o: &mut Outbox,
                            w: &mut (String, String, Option<bool>),
                            now: i64,
                            sends: &mut Vec<Batch>,
                            last: &mut BTreeMap<String, (u64, i64, bool)>|
             -> Result<(), TestCaseError> {
                if w.2.is_some() {
                    return Ok(());
                }
                match o.poll(&w.0, &w.1, now) {
                    Step::Done { delivered } => w.2 = Some(delivered),
                    Step::Send(b) => {
                        prop_assert!(!b.events.is_empty() && b.events.len() <= BATCH);
                        prop_assert!(b.events.iter().all(|e| e.tenant == b.tenant));
                        if let Some((_, since, reported)) = last.get(&b.tenant) {
                            prop_assert!(*reported || now - since >= STALE_MS, "two live batches of {}", b.tenant);
                        }
                        last.insert(b.tenant.clone(), (b.id, now, false));
                        sends.push(b);
                    }
                    Step::Wait => {}
                }
                Ok(())
            };
            for op in &ops {
                match op {
                    Op::Push(t) => {
                        let id = format!("e{}", waiters.len());
                        let tenant = format!("t{t}x");
                        prop_assert!(o.push(event(&tenant, &id)).is_none());
                        waiters.push((id, tenant, None));
                    }
                    Op::Poll(i) => {
                        if !waiters.is_empty() {
                            let i = i % waiters.len();
                            step(&mut o, &mut waiters[i], now, &mut sends, &mut last)?;
                        }
                    }
                    Op::Finish(j, ok) => {
                        if !sends.is_empty() {
                            let b = sends.remove(j % sends.len());
                            if *ok {
                                for e in &b.events {
                                    *landed.entry(e.id.clone()).or_default() += 1;
                                }
                            }
                            if let Some(l) = last.get_mut(&b.tenant) {
                                if l.0 == b.id {
                                    l.2 = true;
                                }
                            }
                            o.complete(&b, *ok);
                        }
                    }
                    Op::Vanish(j) => {
                        if !sends.is_empty() {
                            sends.remove(j % sends.len());
                        }
                    }
                    Op::Tick(ms) => now += ms,
                }
            }
            // Drain: finish every send (landing), poll every waiter, let time pass.
            for _ in 0..10_000 {
                if waiters.iter().all(|w| w.2.is_some()) {
                    break;
                }
                for b in std::mem::take(&mut sends) {
                    for e in &b.events {
                        *landed.entry(e.id.clone()).or_default() += 1;
                    }
                    if let Some(l) = last.get_mut(&b.tenant) {
                        if l.0 == b.id {
                            l.2 = true;
                        }
                    }
                    o.complete(&b, true);
                }
                now += STALE_MS;
                for w in waiters.iter_mut() {
                    step(&mut o, w, now, &mut sends, &mut last)?;
                }
            }
            for w in &waiters {
                prop_assert!(w.2.is_some(), "waiter {} never finished", w.0);
                if w.2 == Some(true) {
                    prop_assert!(landed.contains_key(&w.0), "{} reported delivered but never landed", w.0);
                }
            }
            prop_assert_eq!(o.pending(), 0);
            prop_assert!(o.tenants.values().all(|b| b.queue.is_empty()));
        }
    }
}
