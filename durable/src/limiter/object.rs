//! The rate limiter Durable Object: one instance per (tenant, caller) and per global shard,
//! named by [`super::identity::caller_object_name`] / [`super::identity::global_object_name`].
//!
//! Internal route (the dispatcher calls it; nothing public reaches it):
//! `POST /check` with `{"key", "limit", "windowS", "burst"?, "cost"?}` ->
//! 200 [`super::Decision`] as JSON (camelCase), or a problem+json: 400 `invalid_body` /
//! `invalid_field` / `cost_exceeds_capacity`, 413 `body_too_large`, 404 `route_not_found`,
//! 405 `method_not_allowed`, 500 `internal_error`.
//!
//! Cleanup: after an admission the object makes sure an alarm is set for when its latest
//! TAT has fallen [`super::PRUNE_GRACE_MS`] behind; the alarm prunes stale keys and, once
//! none is left, deletes the object's storage so idle callers cost nothing.

use std::cell::Cell;

use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

use super::{cleanup_alarm_ms, handle_check, Limiter, PRUNE_GRACE_MS};
use crate::http::{at_ms, ensure_alarm, json, now_ms, problem};
use crate::problem::{Code, Problem};
use crate::sql_do::{DoSql, Schemas};

#[durable_object]
pub struct RateLimiter {
    state: State,
    /// This instance already knows a cleanup alarm is pending (re-learned after eviction).
    alarm_known: Cell<bool>,
    /// The limiter's table is known to be in place (forgotten when the storage is deleted).
    schemas: Schemas,
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        RateLimiter {
            state,
            alarm_known: Cell::new(false),
            schemas: Schemas::default(),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if req.path() != "/check" {
            return problem(&Problem::new(Code::RouteNotFound));
        }
        if req.method() != Method::Post {
            return problem(&Problem::new(Code::MethodNotAllowed).detail("use POST /check"));
        }
        let body = req.bytes().await?;
        let now = now_ms();
        let outcome = {
            let mut sql = DoSql::remembering(&self.state, &self.schemas);
            handle_check(&mut sql, &body, now)
        };
        match outcome {
            Ok(decision) => {
                if decision.allowed {
                    // `reset_after_ms` is rounded up, so this is at or after the stored TAT.
                    let latest = i64::try_from(decision.reset_after_ms)
                        .map_or(i64::MAX, |reset| now.saturating_add(reset));
                    ensure_alarm(
                        &self.state,
                        &self.alarm_known,
                        cleanup_alarm_ms(latest),
                        "limiter cleanup",
                    )
                    .await;
                }
                json(200, &decision)
            }
            Err(e) => problem(&Problem::from(e)),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let now = now_ms();
        let latest = {
            let mut sql = DoSql::remembering(&self.state, &self.schemas);
            Limiter::open(&mut sql).and_then(|mut l| l.prune(now.saturating_sub(PRUNE_GRACE_MS)))
        };
        match latest {
            Ok(Some(tat_ms)) => {
                self.state
                    .storage()
                    .set_alarm(at_ms(cleanup_alarm_ms(tat_ms)))
                    .await?;
                self.alarm_known.set(true);
            }
            Ok(None) => {
                // Nothing left to remember: drop the object's storage entirely.
                self.alarm_known.set(false);
                // Forgotten on both sides of the delete: no check may find the table
                // remembered but gone.
                self.schemas.forget();
                self.state.storage().delete_all().await?;
                self.schemas.forget();
            }
            // An error makes the runtime retry the alarm.
            Err(e) => return Err(worker::Error::RustError(e.to_string())),
        }
        Response::ok("")
    }
}
