//! The usage-event step of a tenant call (the glue of [`crate::usage`], which has the
//! rules): a [`Usage`] starts with the call, the limiter and the paywall report to its
//! [`CallRecord`], and [`Usage::finish`] turns it into one event, posted to the tenant's
//! `UsageEvents` object with `ctx.waitUntil`, after the response is on its way.
//!
//! Delivery, inside each call's `waitUntil`: the event goes into the isolate's outbox
//! (`crate::usage::outbox`), which sends at most one `POST /events` per tenant at a time and
//! puts everything that arrived meanwhile in the next one (one event alone when idle, up to
//! 200 per request under load). A batch is retried once when the object cannot be reached or
//! answers 5xx (event ids are idempotent: a retry of a write that did land is reported as
//! a duplicate, never stored twice). A refusal (4xx) is a bug and is logged, not retried.
//! The event id is also the `callId` the outbound Worker logs each of the call's
//! subrequests under, so egress logs join to events.
//!
//! Not recorded: requests that never reach a tenant (unknown slug, registry unavailable,
//! malformed URL): there is no tenant object to hold them, and creating one per made-up
//! slug would let anyone create storage at will.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use claw_durable::events::UsageEvent;
use claw_durable::problem::Problem;
use claw_durable::tenant::TenantConfig;
use worker::wasm_bindgen::prelude::*;
use worker::{Context, Env, Method, Request, Response};

use crate::bindings::{
    self, PLATFORM_ADMIN_TOKEN, SUBREQUESTS_FROM_EMULATOR, USAGE_EVENTS, USAGE_EVENTS_ENABLED,
    USAGE_SALT,
};
use crate::http::{objects, respond};
use crate::limiter::edge as limit;
use crate::limiter::{applies, Admission, Refusal, RefusalReason};
use crate::usage::outbox::{Outbox, Step};
use crate::usage::{emulator_subrequests, recording, salt, CallRecord, Recording, Salt};

/// The events object's internal route (the host is never resolved).
const EVENTS_URL: &str = "https://events.internal/events";
const EMULATOR_SUBREQUESTS_HEADER: &str = "x-wfp-emulator-subrequests";
/// Delivery attempts per batch (the first and one retry).
const ATTEMPTS: u32 = 2;
/// A call waiting for another call's batch looks again after this, then twice as long
/// each time, up to [`MAX_PAUSE_MS`].
const FIRST_PAUSE_MS: u64 = 2;
const MAX_PAUSE_MS: u64 = 32;
/// Longest piece of a failed answer that goes to the log.
const MAX_LOGGED_BYTES: usize = 200;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = randomUUID)]
    fn random_uuid() -> String;
}

thread_local! {
    /// The salt warning is logged once per isolate.
    static SALT_WARNED: Cell<bool> = const { Cell::new(false) };
    /// Events on their way to their tenants' objects, batched per tenant.
    static OUTBOX: RefCell<Outbox> = RefCell::new(Outbox::default());
}

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
}

impl Usage {
    /// Starts the record of a call to `config`'s tenant; `rest` is the path it sees.
    pub fn start(req: &Request, env: &Env, config: &TenantConfig, rest: &str) -> Usage {
        let mode = recording(bindings::var(env, USAGE_EVENTS_ENABLED).as_deref());
        let mut record = CallRecord::new(config, rest, respond::now_ms());
        // The limiter reports the caller when it runs; otherwise identify it the same way.
        if !applies(config) {
            record.caller(&limit::caller_key(req, config));
        }
        Usage {
            id: random_uuid(),
            record,
            salt: salt_for(env, mode),
            build_only: mode == Recording::BuildOnly,
            subrequests_from_emulator: bindings::var(env, SUBREQUESTS_FROM_EMULATOR).as_deref()
                == Some("true"),
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
            Ok(resp) if self.subrequests_from_emulator => {
                let header = resp
                    .headers()
                    .get(EMULATOR_SUBREQUESTS_HEADER)
                    .ok()
                    .flatten();
                if let Some(n) = header.as_deref().and_then(emulator_subrequests) {
                    self.record.subrequests(n);
                }
            }
            Ok(_) => {}
        }
    }

    /// Makes the call's event from the response it ends with, hands its delivery to
    /// `ctx.waitUntil`, and returns the response untouched.
    pub fn finish(self, env: &Env, ctx: &Context, response: Response) -> Response {
        let Some(salt) = &self.salt else {
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
        ctx.wait_until(deliver(env.clone(), event));
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

enum Failure {
    /// Worth one more try: unreachable, or the object answered 5xx.
    Transient(String),
    /// The object refused the batch: a retry cannot help.
    Refused(String),
}

/// Delivers one call's event through the isolate's outbox (`crate::usage::outbox`): this
/// call either sends the tenant's queued batch itself or waits, on its own timer, for the
/// call that is sending it. Logs (without any caller data) an event that could not be
/// stored.
async fn deliver(env: Env, event: UsageEvent) {
    let (id, tenant, stage) = (event.id.clone(), event.tenant.clone(), event.stage);
    if let Some(event) = OUTBOX.with(|o| o.borrow_mut().push(event)) {
        // An event of this id is still pending (ids are random: never expected): alone.
        if !send(&env, &event.tenant, std::slice::from_ref(&event)).await {
            worker::console_error!("usage_event_lost: tenant={tenant} id={id}");
        }
        return;
    }
    let mut pause_ms = FIRST_PAUSE_MS;
    loop {
        let step = OUTBOX.with(|o| o.borrow_mut().poll(&id, &tenant, respond::now_ms()));
        match step {
            Step::Done { delivered: true } => return,
            Step::Done { delivered: false } => {
                worker::console_error!(
                    "usage_event_lost: tenant={tenant} id={id} stage={}",
                    stage.as_str()
                );
                return;
            }
            Step::Send(batch) => {
                let delivered = send(&env, &batch.tenant, &batch.events).await;
                OUTBOX.with(|o| o.borrow_mut().complete(&batch, delivered));
            }
            Step::Wait => {
                worker::Delay::from(Duration::from_millis(pause_ms)).await;
                pause_ms = (pause_ms * 2).min(MAX_PAUSE_MS);
            }
        }
    }
}

/// Posts a batch, retrying once when that can help; whether it landed.
async fn send(env: &Env, tenant: &str, events: &[UsageEvent]) -> bool {
    let body = match serde_json::to_string(events) {
        Ok(b) => b,
        Err(e) => {
            worker::console_error!("usage_events_unserializable: tenant={tenant}: {e}");
            return false;
        }
    };
    for attempt in 1..=ATTEMPTS {
        match post(env, tenant, &body).await {
            Ok(()) => return true,
            Err(Failure::Refused(why)) => {
                worker::console_error!(
                    "usage_events_refused: tenant={tenant} events={}: {why}",
                    events.len()
                );
                return false;
            }
            Err(Failure::Transient(why)) => worker::console_error!(
                "usage_events_delivery_failed (attempt {attempt}/{ATTEMPTS}): tenant={tenant} events={}: {why}",
                events.len()
            ),
        }
    }
    false
}

async fn post(env: &Env, tenant: &str, body: &str) -> Result<(), Failure> {
    let stub = env
        .durable_object(USAGE_EVENTS)
        .and_then(|ns| ns.get_by_name(tenant))
        .map_err(|e| Failure::Transient(format!("binding {USAGE_EVENTS}: {e}")))?;
    let req = objects::request(EVENTS_URL, Method::Post, Some(JsValue::from_str(body)))
        .map_err(|e| Failure::Refused(format!("request: {e}")))?;
    let mut resp = stub
        .fetch_with_request(req)
        .await
        .map_err(|e| Failure::Transient(format!("fetch: {e}")))?;
    let status = resp.status_code();
    if status == 200 {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let end = (0..=MAX_LOGGED_BYTES.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let why = format!("answered {status}: {}", &text[..end]);
    if status >= 500 {
        Err(Failure::Transient(why))
    } else {
        Err(Failure::Refused(why))
    }
}
