//! The tenant ledger Durable Object: one instance per tenant (named by the tenant slug).
//!
//! Internal routes are answered by [`super::wire::handle`] (see there for shapes and codes);
//! this glue reads the request, the clock and the body, and writes the response. The core
//! call is synchronous, so operations on one ledger never interleave.
//!
//! Reservation sweep: after a reservation the object makes sure an alarm is pending for when
//! it would expire ([`super::RESERVATION_TTL_MS`]); the alarm voids every reservation that
//! old ([`super::Ledger::sweep_expired`]) and re-arms for the oldest one still open.

use std::cell::Cell;

use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

use super::wire::{handle, MAX_BODY_BYTES};
use super::{Ledger, RESERVATION_TTL_MS, SWEEP_BATCH};
use crate::http::{at_ms, ensure_alarm, now_ms, problem, reply, Call};
use crate::sql_do::DoSql;

#[durable_object]
pub struct TenantLedger {
    state: State,
    /// This instance already knows a sweep alarm is pending (re-learned after eviction).
    alarm_known: Cell<bool>,
}

impl DurableObject for TenantLedger {
    fn new(state: State, _env: Env) -> Self {
        TenantLedger {
            state,
            alarm_known: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let call = match Call::read(&mut req, &[Method::Post], MAX_BODY_BYTES).await? {
            Ok(call) => call,
            Err(p) => return problem(&p),
        };
        let segs: Vec<&str> = call
            .segments()
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        let query: Vec<(String, String)> = call
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let now = now_ms();
        let answer = handle(
            &mut DoSql::new(&self.state),
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
        reply(answer)
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
