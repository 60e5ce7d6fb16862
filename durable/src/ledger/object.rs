//! The tenant ledger Durable Object: one instance per tenant (named by the tenant slug).
//!
//! Internal routes are answered by [`super::api::handle`] (see there for shapes and codes);
//! this glue reads the request, the clock and the body, and writes the response. The core
//! call is synchronous, so operations on one ledger never interleave.
//!
//! Reservation sweep: after a reservation the object makes sure an alarm is pending for when
//! it would expire ([`super::RESERVATION_TTL_MS`]); the alarm voids every reservation that
//! old ([`super::Ledger::sweep_expired`]) and re-arms for the oldest one still open.

use std::cell::Cell;

use worker::js_sys;
use worker::wasm_bindgen::JsValue;
use worker::{
    durable_object, DurableObject, Env, Method, Request, Response, Result, ScheduledTime, State,
};

use super::api::{body_too_large, handle, MAX_BODY_BYTES};
use super::{Ledger, RESERVATION_TTL_MS, SWEEP_BATCH};
use crate::http::{json, now_ms, problem};
use crate::sql_do::DoSql;

#[durable_object]
pub struct TenantLedger {
    state: State,
    /// This instance already knows a sweep alarm is pending (re-learned after eviction).
    alarm_known: Cell<bool>,
}

fn at_ms(ms: i64) -> ScheduledTime {
    // Below 2^53: an f64 carries it exactly.
    ScheduledTime::new(js_sys::Date::new(&JsValue::from_f64(ms as f64)))
}

impl TenantLedger {
    /// Makes sure a sweep alarm is pending, due when a reservation made now expires (an
    /// earlier pending alarm re-arms itself for later reservations). Failing here must not
    /// fail the reservation: the next one tries again.
    async fn ensure_sweep(&self, now: i64) {
        if self.alarm_known.get() {
            return;
        }
        let storage = self.state.storage();
        let armed = match storage.get_alarm().await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                storage
                    .set_alarm(at_ms(now.saturating_add(RESERVATION_TTL_MS)))
                    .await
            }
            Err(e) => Err(e),
        };
        match armed {
            Ok(()) => self.alarm_known.set(true),
            Err(e) => worker::console_error!("ledger: sweep alarm not set: {e}"),
        }
    }
}

impl DurableObject for TenantLedger {
    fn new(state: State, _env: Env) -> Self {
        TenantLedger {
            state,
            alarm_known: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        let segments: Vec<String> = url
            .path_segments()
            .map(|s| s.map(str::to_owned).collect())
            .unwrap_or_default();
        let segs: Vec<&str> = segments
            .iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        let query: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let method = req.method();
        let body = if method == Method::Post {
            // Refuse an announced oversized body without reading it.
            let announced = req
                .headers()
                .get("content-length")?
                .and_then(|v| v.parse::<usize>().ok());
            if announced.is_some_and(|n| n > MAX_BODY_BYTES) {
                return problem(&body_too_large());
            }
            req.bytes().await?
        } else {
            Vec::new()
        };
        let now = now_ms();
        let outcome = {
            let mut sql = DoSql::new(&self.state);
            handle(&mut sql, method.as_ref(), &segs, &query, &body, now)
        };
        match outcome {
            Ok((status, value)) => {
                if status == 201 && segs.as_slice() == ["payments", "reserve"] {
                    self.ensure_sweep(now).await;
                }
                json(status, &value)
            }
            Err(p) => problem(&p),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let now = now_ms();
        let report = {
            let mut sql = DoSql::new(&self.state);
            Ledger::open(&mut sql)
                .and_then(|mut l| l.sweep_expired(now, RESERVATION_TTL_MS, SWEEP_BATCH))
        };
        match report {
            Ok(r) => {
                if r.voided > 0 {
                    worker::console_log!("ledger: swept {} expired reservations", r.voided);
                }
                match r.next_due_ms {
                    Some(due) => {
                        // At least a second ahead, so a backlog is worked through in steps.
                        let when = due.max(now.saturating_add(1_000));
                        self.state.storage().set_alarm(at_ms(when)).await?;
                        self.alarm_known.set(true);
                    }
                    None => self.alarm_known.set(false),
                }
            }
            // An error makes the runtime retry the alarm.
            Err(e) => return Err(worker::Error::RustError(e.to_string())),
        }
        Response::ok("")
    }
}
