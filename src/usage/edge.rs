//! The usage-event step of a tenant call (the glue of [`crate::usage`], which has the
//! rules): a [`Usage`] starts with the call, the limiter and the paywall report to its
//! [`CallRecord`], and [`Usage::finish`] turns it into one event, sent to the usage queue
//! (Cloudflare Queues, binding [`USAGE_QUEUE`]) with `ctx.waitUntil`, after the response is
//! on its way, in batches per isolate ([`enqueue`]). A settled paid call's event goes with its settlement instead
//! ([`Usage::event_for_ledger`]): the tenant's ledger keeps it in the same atomic step and
//! sends it to the queue itself, so it is lost neither with the isolate nor with the process.
//!
//! The queue's consumer ([`consume`], this Worker's `queue` handler) writes each batch into
//! the tenants' `UsageEvents` objects, one `POST /events` per tenant, and acknowledges the
//! messages that landed; the others are retried by the queue (`max_retries` in
//! wrangler.toml), then go to its dead-letter queue. Event ids make every write idempotent:
//! a message delivered twice is stored once. The event id is also the `callId` the
//! outbound Worker logs each of the call's subrequests under, so egress logs join to events.
//!
//! Not recorded: requests that never reach a tenant (unknown slug, registry unavailable,
//! malformed URL): there is no tenant object to hold them, and creating one per made-up
//! slug would let anyone create storage at will.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use claw_durable::events::UsageEvent;
use claw_durable::problem::Problem;
use claw_durable::tenant::TenantConfig;
use worker::wasm_bindgen::prelude::*;
use worker::{
    Context, Env, MessageBatch, MessageExt, Method, QueueContentType, RawMessage,
    RawMessageBuilder, Request, Response,
};

use crate::bindings::{
    self, PLATFORM_ADMIN_TOKEN, SUBREQUESTS_FROM_EMULATOR, USAGE_EVENTS, USAGE_EVENTS_ENABLED,
    USAGE_QUEUE, USAGE_SALT,
};
use crate::http::{objects, respond};
use crate::limiter::edge as limit;
use crate::limiter::{applies, Admission, Refusal, RefusalReason};
use crate::usage::{
    emulator_subrequests, pack_events, recording, salt, send_batches, unpack_events, CallRecord,
    Recording, Salt, BATCH,
};

/// The events object's internal route (the host is never resolved).
const EVENTS_URL: &str = "https://events.internal/events";
const EMULATOR_SUBREQUESTS_HEADER: &str = "x-wfp-emulator-subrequests";
/// Attempts at handing one event to the queue.
const SEND_ATTEMPTS: u32 = 2;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = randomUUID)]
    fn random_uuid() -> String;
}

thread_local! {
    /// The salt warning is logged once per isolate.
    static SALT_WARNED: Cell<bool> = const { Cell::new(false) };
    /// Event JSONs waiting for the queue, from every call of this isolate ([`enqueue`]).
    static PENDING: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Events a sender takes per round, packed into messages of many events each
/// (`crate::usage::pack_events`) and sent in as few `sendBatch` calls as Queues' limits allow.
const EVENTS_PER_ROUND: usize = 1_000;
/// A call's pause before it sends what is pending, so that concurrent calls' events join.
const SEND_PAUSE_MS: u64 = 50;
/// Events pending in one isolate at most (the queue is not keeping up beyond that).
const MAX_PENDING: usize = 10_000;

/// One call's usage event in the making.
pub struct Usage {
    /// The event id, unique per call (a random UUID), also the dispatch `callId`.
    id: String,
    record: CallRecord,
    /// None: events are off (`USAGE_EVENTS_ENABLED=false`) or no salt can be had.
    salt: Option<Salt>,
    /// `USAGE_EVENTS_ENABLED=build-only` (benchmarks): make the event, do not send it.
    build_only: bool,
    subrequests_from_emulator: bool,
    /// The ledger kept this call's event with its settlement: nothing left to send.
    kept_by_ledger: bool,
}

impl Usage {
    /// Starts the record of a call to `config`'s tenant; `rest` is the path it sees.
    pub fn start(req: &Request, env: &Env, config: &TenantConfig, rest: &str) -> Usage {
        let mode = recording(bindings::var(env, USAGE_EVENTS_ENABLED).as_deref());
        let mut record = CallRecord::new(config, rest, respond::now_ms());
        // The limiter reports the caller when it runs; otherwise identify it the same way,
        // except that a payer becomes the caller only once the paywall verified its
        // payment (no signature recovered here for it).
        if !applies(config) {
            record.caller(&limit::caller_key_unpaid(req, config));
        }
        Usage {
            id: random_uuid(),
            record,
            salt: salt_for(env, mode),
            build_only: mode == Recording::BuildOnly,
            subrequests_from_emulator: bindings::var(env, SUBREQUESTS_FROM_EMULATOR).as_deref()
                == Some("true"),
            kept_by_ledger: false,
        }
    }

    /// The call id: the event id, passed to dispatch as the outbound `callId`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// For the paywall's steps (`challenged`, `payment`, `verify_failed`, `settled`,
    /// `settlement_failed`), e.g. `usage.record().settled(&settlement.transaction)`.
    pub fn record(&mut self) -> &mut CallRecord {
        &mut self.record
    }

    /// The limiter admitted the call.
    pub fn admitted(&mut self, admission: &Admission) {
        if let Some(key) = &admission.caller_key {
            self.record.caller(key);
        }
    }

    /// The limiter refused the call (429, or 503 when it could not be asked).
    pub fn refused(&mut self, refusal: &Refusal) {
        self.record.caller(&refusal.caller_key);
        if matches!(refusal.reason, RefusalReason::RateLimited(_)) {
            self.record.rate_limited();
        }
        self.record.problem(&refusal.problem.code);
    }

    /// What dispatch (or the paywall around it) produced, before it becomes the response:
    /// a problem's code, or the subrequest count the local emulator reports.
    pub fn observe(&mut self, answer: &Result<Response, Problem>) {
        match answer {
            Err(p) => self.record.problem(&p.code),
            Ok(resp) if self.subrequests_from_emulator && !self.kept_by_ledger => {
                let header = resp
                    .headers()
                    .get(EMULATOR_SUBREQUESTS_HEADER)
                    .ok()
                    .flatten();
                self.subrequests(header.as_deref());
            }
            Ok(_) => {}
        }
    }

    /// The subrequest count the local emulator reported in the tenant's answer header.
    fn subrequests(&mut self, header: Option<&str>) {
        if let Some(n) = header.and_then(emulator_subrequests) {
            self.record.subrequests(n);
        }
    }

    /// The event of a paid call the paywall is about to record as settled, answered with
    /// the tenant's `status` and `headers`: the ledger keeps it with the settlement
    /// ([`Usage::kept_by_ledger`] once it did). None when events are off.
    pub fn event_for_ledger(
        &mut self,
        transaction: &str,
        status: u16,
        headers: &[(String, String)],
    ) -> Option<UsageEvent> {
        self.record.settled(transaction);
        if self.subrequests_from_emulator {
            let header = headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(EMULATOR_SUBREQUESTS_HEADER));
            self.subrequests(header.map(|(_, v)| v.as_str()));
        }
        let salt = self.salt.as_ref().filter(|_| !self.build_only)?;
        Some(
            self.record
                .finish(&self.id, status, respond::now_ms(), salt.bytes()),
        )
    }

    /// The ledger kept the call's event with its settlement: [`Usage::finish`] sends none.
    pub fn kept_by_ledger(&mut self) {
        self.kept_by_ledger = true;
    }

    /// Makes the call's event from the response it ends with, hands its delivery to
    /// `ctx.waitUntil`, and returns the response untouched.
    pub fn finish(self, env: &Env, ctx: &Context, response: Response) -> Response {
        let Some(salt) = self.salt.as_ref().filter(|_| !self.kept_by_ledger) else {
            return response;
        };
        let event = self.record.finish(
            &self.id,
            response.status_code(),
            respond::now_ms(),
            salt.bytes(),
        );
        if self.build_only {
            drop(std::hint::black_box(event));
            return response;
        }
        ctx.wait_until(enqueue(env.clone(), event));
        response
    }
}

/// Records the problem a call to an existing tenant ended with before its pipeline ran
/// (e.g. `tenant_suspended`) and returns it as the response.
pub fn refuse(
    req: &Request,
    env: &Env,
    ctx: &Context,
    config: &TenantConfig,
    rest: &str,
    problem: &Problem,
) -> Response {
    let mut usage = Usage::start(req, env, config, rest);
    if !usage.record.has_caller() {
        usage.record.caller(&limit::caller_key(req, config));
    }
    usage.record.problem(&problem.code);
    usage.finish(env, ctx, respond::problem(problem))
}

/// The caller salt, if events are on and one can be had; logs (once per isolate) when the
/// fallback is in use or events are lost for want of any secret.
fn salt_for(env: &Env, mode: Recording) -> Option<Salt> {
    if mode == Recording::Off {
        return None;
    }
    let s = salt(
        bindings::var(env, USAGE_SALT).as_deref(),
        bindings::var(env, PLATFORM_ADMIN_TOKEN).as_deref(),
    );
    if !matches!(s, Some(Salt::Configured(_))) && !SALT_WARNED.with(|w| w.replace(true)) {
        match s {
            Some(_) => worker::console_error!(
                "usage_salt_missing: USAGE_SALT is unset or shorter than 16 bytes; caller hashes use a salt derived from PLATFORM_ADMIN_TOKEN (set USAGE_SALT)"
            ),
            None => worker::console_error!(
                "usage_salt_missing: neither USAGE_SALT nor PLATFORM_ADMIN_TOKEN is set; usage events are NOT recorded"
            ),
        }
    }
    s
}

/// Hands one event to the usage queue, batched per isolate: the event joins the isolate's
/// pending list, and after [`SEND_PAUSE_MS`] (time for concurrent calls' events to join)
/// this call's waitUntil sends whatever is pending then, [`EVENTS_PER_ROUND`] at a time,
/// many events per message (`crate::usage::pack_events`), each `sendBatch` tried twice.
/// Every call drains for itself: calls that find the list empty (another took their event
/// along) are done at once, and no call depends on another call's waitUntil staying alive
/// (a single sender role could stall every event of the isolate behind one slow send).
/// Logs (without any caller data) events that could not be handed over.
async fn enqueue(env: Env, event: UsageEvent) {
    let json = match serde_json::to_string(&event) {
        Ok(j) => j,
        Err(e) => {
            worker::console_error!(
                "usage_event_lost: tenant={} id={}: {e}",
                event.tenant,
                event.id
            );
            return;
        }
    };
    let dropped = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() >= MAX_PENDING {
            return true;
        }
        p.push(json);
        false
    });
    if dropped {
        worker::console_error!(
            "usage_event_lost: tenant={} id={}: {MAX_PENDING} events already pending",
            event.tenant,
            event.id
        );
        return;
    }
    worker::Delay::from(std::time::Duration::from_millis(SEND_PAUSE_MS)).await;
    loop {
        let batch: Vec<String> = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            let n = p.len().min(EVENTS_PER_ROUND);
            p.drain(..n).collect()
        });
        if batch.is_empty() {
            return;
        }
        let messages = pack_events(&batch);
        for group in send_batches(&messages) {
            send_batch(&env, group).await;
        }
    }
}

/// Sends one `sendBatch` of messages (each a JSON array of events) to the queue, tried
/// twice; logs what was lost.
async fn send_batch(env: &Env, messages: &[String]) {
    let mut why = String::new();
    for _ in 0..SEND_ATTEMPTS {
        let raw: Vec<_> = messages
            .iter()
            .map(|json| {
                RawMessageBuilder::new(JsValue::from_str(json))
                    .build_with_content_type(QueueContentType::Text)
            })
            .collect();
        match env.queue(USAGE_QUEUE) {
            Ok(queue) => match queue.send_raw_batch(raw).await {
                Ok(()) => return,
                Err(e) => why = e.to_string(),
            },
            Err(e) => why = format!("binding {USAGE_QUEUE}: {e}"),
        }
    }
    let events: usize = messages
        .iter()
        .map(|m| unpack_events(m).map_or(0, |e| e.len()))
        .sum();
    worker::console_error!("usage_events_lost: {events} events: {why}");
}

/// The usage queue's consumer: writes a batch of events into their tenants' objects, at
/// most [`BATCH`] per request; acknowledges what landed and leaves the rest to the queue's
/// retries (and, after `max_retries`, its dead-letter queue). A message that is not an
/// event is retried too, so it ends in the dead-letter queue where it can be looked at.
pub async fn consume(batch: &MessageBatch<String>, env: &Env) {
    // Each message carries events (`pack_events`), possibly of several tenants; it is
    // acknowledged once every one of its events landed, else retried whole (the objects
    // store each event once, by id, so a retried message's landed events are not doubled).
    let mut messages: Vec<(RawMessage, bool)> = Vec::new();
    let mut by_tenant: HashMap<String, Vec<(usize, UsageEvent)>> = HashMap::new();
    for message in batch.raw_iter() {
        let events = message.body().as_string().and_then(|s| unpack_events(&s));
        let index = messages.len();
        match events {
            Some(events) => {
                for e in events {
                    by_tenant
                        .entry(e.tenant.clone())
                        .or_default()
                        .push((index, e));
                }
                messages.push((message, true));
            }
            None => {
                worker::console_error!("usage_event_unreadable: message {}", message.id());
                messages.push((message, false));
            }
        }
    }
    for (tenant, items) in by_tenant {
        for chunk in items.chunks(BATCH) {
            let events: Vec<&UsageEvent> = chunk.iter().map(|(_, e)| e).collect();
            if let Err(why) = post(env, &tenant, &events).await {
                worker::console_error!(
                    "usage_events_delivery_failed: tenant={tenant} events={} (the queue retries them): {why}",
                    chunk.len()
                );
                for (index, _) in chunk {
                    messages[*index].1 = false;
                }
            }
        }
    }
    for (message, landed) in messages {
        if landed {
            message.ack();
        } else {
            message.retry();
        }
    }
}

async fn post(env: &Env, tenant: &str, events: &[&UsageEvent]) -> Result<(), String> {
    let body = serde_json::to_string(events).map_err(|e| e.to_string())?;
    let stub = env
        .durable_object(USAGE_EVENTS)
        .and_then(|ns| ns.get_by_name(tenant))
        .map_err(|e| format!("binding {USAGE_EVENTS}: {e}"))?;
    let req = objects::request(EVENTS_URL, Method::Post, Some(JsValue::from_str(&body)))
        .map_err(|e| format!("request: {e}"))?;
    let resp = stub
        .fetch_with_request(req)
        .await
        .map_err(|e| format!("fetch: {e}"))?;
    let status = resp.status_code();
    if status == 200 {
        return Ok(());
    }
    let text = claw_durable::http::answer_excerpt(&resp).await;
    Err(format!("answered {status}: {text}"))
}
