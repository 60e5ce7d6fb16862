//! The tenant ledger Durable Object: one instance per tenant (named by the tenant slug).
//!
//! Internal routes are answered by [`super::wire::handle`] (see there for shapes and codes);
//! this glue reads the request, the clock and the body, and writes the response. The core
//! call is synchronous, so operations on one ledger never interleave.
//!
//! Reservation sweep and reconciliation: after a reservation the object makes sure an alarm
//! is pending for when it would be overdue ([`super::RESERVATION_TTL_MS`]); a payment marked
//! `unknown` asks for one within [`RECONCILE_DELAY_MS`]. The alarm marks every overdue
//! reservation `unknown` ([`super::Ledger::sweep_expired`]), asks the chain about the
//! unknown ones ([`super::reconcile`], endpoints from `CHAIN_RPC_URLS`), and re-arms: for the
//! oldest reservation still open, and within [`RECONCILE_DELAY_MS`] while the chain left
//! payments undecided ([`NO_RPC_RETRY_MS`] when no endpoint is configured: those stay
//! unknown, visible in the earnings, until one is).
//!
//! `POST /reconcile` runs the same on demand (the unknown payments and the reserved ones)
//! and answers the report.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::Duration;

use futures::future::{select, Either};
use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::{
    durable_object, Delay, DurableObject, Env, Fetch, Headers, Method, Request, RequestInit,
    Response, Result, State,
};

use super::reconcile::{
    parse_result, reconcile, reconcile_one, rpc_request, ChainRpc, RECONCILE_BATCH,
};
use super::wire::{
    handle, RecoverRequest, Recovery, StoreAnswerMeta, ANSWER_META_HEADER, MAX_BODY_BYTES,
};
use super::{
    Ledger, LedgerError, StoredAnswer, ANSWER_TTL_MS, EVENTS_BATCH, MAX_STORED_ANSWER_BYTES,
    RESERVATION_TTL_MS, SWEEP_BATCH,
};
use crate::events::object::USAGE_EVENTS_BINDING;
use crate::http::{at_ms, ensure_alarm, json, now_ms, problem, reply, Call};
use crate::problem::{Code, Problem};
use crate::sql_do::{DoSql, Schemas};
use crate::tenant::Network;

/// Env: JSON object from network (CAIP-2 or the x402 v1 name) to a JSON-RPC URL.
pub const CHAIN_RPC_URLS: &str = "CHAIN_RPC_URLS";
/// An unknown payment is asked about within this long.
pub const RECONCILE_DELAY_MS: i64 = 60_000;
/// With no endpoint for a payment's network, look again this often.
pub const NO_RPC_RETRY_MS: i64 = 60 * 60_000;
/// A usage event kept with a settlement is written to the events object within about this
/// long.
const EVENTS_DELAY_MS: i64 = 1_000;
/// Batches written per alarm at most (the alarm comes back for the rest).
const EVENTS_BATCHES_PER_ALARM: usize = 20;
/// The events object's internal route (the host is never resolved).
const EVENTS_URL: &str = "https://events.internal/events";
/// One JSON-RPC call's deadline.
const RPC_TIMEOUT_MS: u64 = 5_000;
/// The largest JSON-RPC answer read.
const MAX_RPC_ANSWER_BYTES: usize = 1 << 20;

#[durable_object]
pub struct TenantLedger {
    state: State,
    env: Env,
    /// This instance already knows a sweep alarm is pending (re-learned after eviction).
    alarm_known: Cell<bool>,
    /// The ledger schema is known to be in place after the first request.
    schemas: Schemas,
    /// An alarm is armed to send the usage events kept with settlements (`super::events`).
    events_alarm: Cell<bool>,
}

/// The chain over `fetch`: one endpoint per network, from `CHAIN_RPC_URLS`. Errors name the
/// network, never the URL (it may carry a provider's key).
struct FetchRpc {
    urls: HashMap<&'static str, String>,
    next_id: u64,
}

impl FetchRpc {
    fn from_env(env: &Env) -> FetchRpc {
        let raw = env
            .var(CHAIN_RPC_URLS)
            .map(|v| v.to_string())
            .or_else(|_| env.secret(CHAIN_RPC_URLS).map(|s| s.to_string()))
            .unwrap_or_default();
        let mut urls = HashMap::new();
        if !raw.is_empty() {
            match serde_json::from_str::<HashMap<String, String>>(&raw) {
                Ok(map) => {
                    for (name, url) in map {
                        match Network::parse(&name) {
                            Some(n) => {
                                urls.insert(n.caip2(), url);
                            }
                            None => worker::console_error!(
                                "{CHAIN_RPC_URLS}: unknown network {name:?}, ignored"
                            ),
                        }
                    }
                }
                Err(_) => worker::console_error!(
                    "{CHAIN_RPC_URLS} is not a JSON object of network to URL: ignored"
                ),
            }
        }
        FetchRpc { urls, next_id: 0 }
    }

    async fn post(&self, url: &str, body: String) -> std::result::Result<Vec<u8>, String> {
        let headers = Headers::new();
        let _ = headers.set("content-type", "application/json");
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let req = Request::new_with_init(url, &init).map_err(|_| "bad RPC URL".to_owned())?;
        let mut resp = Fetch::Request(req)
            .send()
            .await
            .map_err(|_| "the RPC endpoint could not be reached".to_owned())?;
        if resp.status_code() != 200 {
            return Err(format!(
                "the RPC endpoint answered HTTP {}",
                resp.status_code()
            ));
        }
        let bytes = resp.bytes().await.map_err(|_| "the RPC answer broke off")?;
        if bytes.len() > MAX_RPC_ANSWER_BYTES {
            return Err("the RPC answer is too large".into());
        }
        Ok(bytes)
    }
}

impl ChainRpc for FetchRpc {
    async fn call(
        &mut self,
        network: Network,
        method: &str,
        params: Value,
    ) -> std::result::Result<Value, String> {
        let url = self
            .urls
            .get(network.caip2())
            .ok_or_else(|| format!("no RPC endpoint for {} ({CHAIN_RPC_URLS})", network.caip2()))?
            .clone();
        self.next_id += 1;
        let body = rpc_request(self.next_id, method, &params);
        let deadline = Delay::from(Duration::from_millis(RPC_TIMEOUT_MS));
        let bytes = match select(Box::pin(self.post(&url, body)), deadline).await {
            Either::Left((answer, _)) => answer?,
            Either::Right(_) => return Err(format!("no RPC answer within {RPC_TIMEOUT_MS} ms")),
        };
        parse_result(&bytes)
    }
}

/// The payment a retry names: by key, or by the client's payment id (bound to one payment
/// and its fingerprint); checked against the retry's fingerprint.
fn recovery_key(
    l: &mut Ledger<'_, DoSql>,
    r: &RecoverRequest,
) -> std::result::Result<String, LedgerError> {
    let key = match (&r.key, &r.payment_id) {
        (Some(key), None) => key.clone(),
        (None, Some(id)) => {
            let (key, fingerprint) = l
                .payment_by_id(id)?
                .ok_or_else(|| LedgerError::PaymentNotFound(id.clone()))?;
            if fingerprint != r.fingerprint {
                return Err(LedgerError::PaymentIdentifierReused);
            }
            key
        }
        _ => {
            return Err(LedgerError::Invalid {
                field: "key",
                reason: "name the payment by key or by paymentId".into(),
            })
        }
    };
    l.recovery(&key, &r.fingerprint)?;
    Ok(key)
}

/// `POST /payments/answer`: the metadata header and the raw body.
fn store_answer(
    sql: &mut DoSql,
    meta: Option<&str>,
    body: Vec<u8>,
) -> std::result::Result<bool, Problem> {
    let meta: StoreAnswerMeta =
        meta.and_then(|m| serde_json::from_str(m).ok())
            .ok_or_else(|| {
                Problem::new(Code::InvalidBody)
                    .detail(format!("{ANSWER_META_HEADER} is missing or invalid"))
            })?;
    let answer = StoredAnswer {
        status: meta.status,
        headers: meta.headers,
        body_bytes: meta.body_bytes,
        body_stored: meta.body_stored,
        body,
    };
    let now = now_ms();
    Ok(Ledger::open(sql)?.store_answer(&meta.key, &meta.fingerprint, &answer, now)?)
}

impl TenantLedger {
    fn sql(&self) -> DoSql {
        DoSql::remembering(&self.state, &self.schemas)
    }

    /// `POST /payments/recover`: a retry of a payment. An open one is first decided by the
    /// chain if it can be (a retry after a crash or a lost answer); then the payment's
    /// state and its kept answer (metadata in [`ANSWER_META_HEADER`], the body as the body).
    async fn recover(&self, body: &[u8]) -> Result<Response> {
        let Ok(r) = serde_json::from_slice::<RecoverRequest>(body) else {
            return problem(&Problem::new(Code::InvalidBody).detail("expected {key, fingerprint}"));
        };
        let now = now_ms();
        let key = match Ledger::open(&mut self.sql()).and_then(|mut l| recovery_key(&mut l, &r)) {
            Ok(key) => key,
            Err(e) => return problem(&e.into()),
        };
        let mut rpc = FetchRpc::from_env(&self.env);
        if let Err(e) = reconcile_one(&mut self.sql(), &mut rpc, &key, now).await {
            worker::console_error!("ledger: recovery of a payment could not ask the chain: {e}");
        }
        let recovered =
            Ledger::open(&mut self.sql()).and_then(|mut l| l.recovery(&key, &r.fingerprint));
        match recovered {
            Ok((p, answer)) => {
                let body = answer.as_ref().map(|a| a.body.clone()).unwrap_or_default();
                let meta = serde_json::to_string(&Recovery::of(&p, answer))
                    .map_err(|e| worker::Error::RustError(e.to_string()))?;
                let headers = Headers::new();
                headers.set(ANSWER_META_HEADER, &meta)?;
                Ok(Response::from_bytes(body)?.with_headers(headers))
            }
            Err(e) => problem(&e.into()),
        }
    }

    /// Sweeps, then asks the chain about up to a batch of open payments (`include_reserved`
    /// on demand); answers the report and when to run again.
    async fn reconcile_now(
        &self,
        include_reserved: bool,
        now: i64,
    ) -> std::result::Result<(super::reconcile::ReconcileReport, Option<i64>), super::LedgerError>
    {
        let sweep = {
            let mut sql = self.sql();
            let mut l = Ledger::open(&mut sql)?;
            l.sweep_answers(now, ANSWER_TTL_MS, SWEEP_BATCH)?;
            l.sweep_expired(now, RESERVATION_TTL_MS, SWEEP_BATCH)?
        };
        if sweep.marked_unknown > 0 {
            worker::console_log!(
                "ledger: {} overdue reservations marked unknown",
                sweep.marked_unknown
            );
        }
        let mut rpc = FetchRpc::from_env(&self.env);
        let report = {
            let mut sql = self.sql();
            reconcile(&mut sql, &mut rpc, include_reserved, RECONCILE_BATCH, now).await?
        };
        let retry = if report.unknown_left == 0 {
            None
        } else if rpc.urls.is_empty() {
            Some(now.saturating_add(NO_RPC_RETRY_MS))
        } else {
            Some(now.saturating_add(RECONCILE_DELAY_MS))
        };
        let next = match (sweep.next_due_ms, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok((report, next))
    }

    /// Writes the usage events kept with settlements into the tenant's `UsageEvents` object
    /// (named by the same slug as this ledger), a batch at a time, and forgets each batch
    /// once that object answered that it holds it: acknowledged end to end, so nothing here
    /// depends on a queue's durability (a crash in between writes a batch twice: stored
    /// once, by id). Whether events are left for the next alarm.
    async fn send_events(&self) -> std::result::Result<bool, String> {
        for _ in 0..EVENTS_BATCHES_PER_ALARM {
            let mut pending = Ledger::open(&mut self.sql())
                .and_then(|mut l| l.pending_events(EVENTS_BATCH))
                .map_err(|e| e.to_string())?;
            let Some(tenant) = pending.first().map(|p| p.tenant.clone()) else {
                return Ok(false);
            };
            // A ledger is one tenant's: its events are all that tenant's.
            pending.retain(|p| p.tenant == tenant);
            let mut body = String::from("[");
            for (i, p) in pending.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(&p.json);
            }
            body.push(']');
            let headers = Headers::new();
            headers
                .set("content-type", "application/json")
                .map_err(|e| e.to_string())?;
            let mut init = RequestInit::new();
            init.with_method(Method::Post)
                .with_headers(headers)
                .with_body(Some(JsValue::from_str(&body)));
            let req = Request::new_with_init(EVENTS_URL, &init).map_err(|e| e.to_string())?;
            let stub = self
                .env
                .durable_object(USAGE_EVENTS_BINDING)
                .and_then(|ns| ns.get_by_name(&tenant))
                .map_err(|e| format!("events object: {e}"))?;
            let resp = stub
                .fetch_with_request(req)
                .await
                .map_err(|e| format!("events object: {e}"))?;
            if resp.status_code() != 200 {
                return Err(format!(
                    "events object answered {}: {}",
                    resp.status_code(),
                    crate::http::answer_excerpt(&resp).await
                ));
            }
            let ids: Vec<String> = pending.into_iter().map(|p| p.id).collect();
            Ledger::open(&mut self.sql())
                .and_then(|mut l| l.events_sent(&ids))
                .map_err(|e| e.to_string())?;
        }
        Ok(true)
    }

    async fn arm(&self, next: Option<i64>, now: i64) -> Result<()> {
        match next {
            Some(due) => {
                // At least a second ahead, so a backlog is worked through in steps.
                let when = due.max(now.saturating_add(1_000));
                self.state.storage().set_alarm(at_ms(when)).await?;
                self.alarm_known.set(true);
            }
            None => self.alarm_known.set(false),
        }
        Ok(())
    }

    /// An alarm no later than `due_ms` (a payment just became unknown).
    async fn alarm_by(&self, due_ms: i64) {
        let storage = self.state.storage();
        let pending = storage.get_alarm().await.ok().flatten();
        let later = pending.is_none_or(|at| at > due_ms);
        if later {
            match storage.set_alarm(at_ms(due_ms)).await {
                Ok(()) => self.alarm_known.set(true),
                Err(e) => worker::console_error!("ledger: reconcile alarm not set: {e}"),
            }
        }
    }
}

impl DurableObject for TenantLedger {
    fn new(state: State, env: Env) -> Self {
        TenantLedger {
            state,
            env,
            alarm_known: Cell::new(false),
            schemas: Schemas::default(),
            events_alarm: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // A kept answer's body is larger than any other request's.
        let limit = if req.path() == "/payments/answer" {
            MAX_STORED_ANSWER_BYTES
        } else {
            MAX_BODY_BYTES
        };
        let meta = req.headers().get(ANSWER_META_HEADER)?;
        let call = match Call::read(&mut req, &[Method::Post], limit).await? {
            Ok(call) => call,
            Err(p) => return problem(&p),
        };
        let segs: Vec<&str> = call
            .segments()
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if call.method == Method::Post && segs.as_slice() == ["payments", "answer"] {
            let answer = store_answer(&mut self.sql(), meta.as_deref(), call.body);
            return match answer {
                Ok(stored) => json(200, &serde_json::json!({ "stored": stored })),
                Err(p) => problem(&p),
            };
        }
        if call.method == Method::Post && segs.as_slice() == ["payments", "recover"] {
            return self.recover(&call.body).await;
        }
        if segs.as_slice() == ["reconcile"] && call.method == Method::Post {
            let now = now_ms();
            return match self.reconcile_now(true, now).await {
                Ok((report, next)) => {
                    self.arm(next, now).await?;
                    json(200, &report)
                }
                Err(e) => problem(&e.into()),
            };
        }
        let query: Vec<(String, String)> = call
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let now = now_ms();
        let answer = handle(
            &mut self.sql(),
            call.method.as_ref(),
            &segs,
            &query,
            &call.body,
            now,
        );
        if matches!(answer, Ok((201, _))) && segs.as_slice() == ["payments", "reserve"] {
            // Due when a reservation made now expires; a pending earlier alarm re-arms
            // itself for later reservations.
            ensure_alarm(
                &self.state,
                &self.alarm_known,
                now.saturating_add(RESERVATION_TTL_MS),
                "ledger sweep",
            )
            .await;
        }
        if matches!(answer, Ok((200, _)))
            && segs.as_slice() == ["payments", "settle"]
            && !self.events_alarm.get()
        {
            // A usage event may have been kept with the settlement: sent on soon.
            self.alarm_by(now.saturating_add(EVENTS_DELAY_MS)).await;
            self.events_alarm.set(true);
        }
        if matches!(answer, Ok((200, _))) && segs.as_slice() == ["payments", "unknown"] {
            self.alarm_by(now.saturating_add(RECONCILE_DELAY_MS)).await;
        }
        reply(answer)
    }

    async fn alarm(&self) -> Result<Response> {
        let now = now_ms();
        self.events_alarm.set(false);
        let events_left = match self.send_events().await {
            Ok(left) => left,
            Err(e) => {
                worker::console_error!("ledger: usage events not sent yet: {e}");
                true
            }
        };
        match self.reconcile_now(false, now).await {
            Ok((report, next)) => {
                let next = if events_left {
                    self.events_alarm.set(true);
                    let soon = now.saturating_add(EVENTS_DELAY_MS);
                    Some(next.map_or(soon, |n| n.min(soon)))
                } else {
                    next
                };
                if report.settled + report.voided > 0 {
                    worker::console_log!(
                        "ledger: reconciled {} settled, {} voided, {} unknown left",
                        report.settled,
                        report.voided,
                        report.unknown_left
                    );
                }
                self.arm(next, now).await?;
            }
            // An error makes the runtime retry the alarm.
            Err(e) => return Err(worker::Error::RustError(e.to_string())),
        }
        Response::ok("")
    }
}
