//! The trending Durable Object: one instance, named [`TRENDING_OBJECT`] (binding
//! [`TRENDING_BINDING`]), fed by the tenants' `UsageEvents` alarms.
//!
//! Internal routes:
//! - `POST /rollup`: a [`super::Rollup`] -> 200 [`super::Applied`] `{applied, needFull}`.
//! - `GET /top?window=1h|24h|7d&limit=1..100` -> 200 `{window, nowMs, entries: [TopEntry]}`.
//! - `GET /series?tenant=&window=` -> 200 [`super::Series`].
//!
//! The alarm sweeps expired rows, hourly while any tenant row is left.

use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

use super::{Rollup, Window, DEFAULT_TOP, MAX_TOP};
use crate::http::{at_ms, invalid_query, now_ms, problem, reply, to_value, Call};
use crate::problem::{Code, Problem};
use crate::sql_do::DoSql;
use crate::tenant::validate_slug;

pub const TRENDING_BINDING: &str = "TRENDING";
pub const TRENDING_OBJECT: &str = "global";

/// A rollup is at most 200 buckets of about 120 bytes.
const MAX_ROLLUP_BYTES: usize = 64 * 1024;
const SWEEP_BATCH: u32 = 5_000;
const SWEEP_INTERVAL_MS: i64 = 60 * 60_000;

#[durable_object]
pub struct Trending {
    state: State,
}

impl DurableObject for Trending {
    fn new(state: State, _env: Env) -> Self {
        Trending { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let call = match Call::read(&mut req, &[Method::Post], MAX_ROLLUP_BYTES).await? {
            Ok(call) => call,
            Err(p) => return problem(&p),
        };
        let now = now_ms();
        let outcome = handle(&mut DoSql::new(&self.state), &call, now);
        if matches!(outcome, Ok((_, _, true))) {
            let storage = self.state.storage();
            if storage.get_alarm().await?.is_none() {
                storage.set_alarm(at_ms(now + SWEEP_INTERVAL_MS)).await?;
            }
        }
        reply(outcome.map(|(status, value, _)| (status, value)))
    }

    async fn alarm(&self) -> Result<Response> {
        let now = now_ms();
        let next = {
            let mut sql = DoSql::new(&self.state);
            let mut core = super::Trending::open(&mut sql).map_err(to_worker)?;
            let report = core.sweep(now, SWEEP_BATCH).map_err(to_worker)?;
            if report.more {
                Some(now + 1_000)
            } else if core.is_empty().map_err(to_worker)? {
                None
            } else {
                Some(now + SWEEP_INTERVAL_MS)
            }
        };
        if let Some(at) = next {
            self.state.storage().set_alarm(at_ms(at)).await?;
        }
        Response::empty()
    }
}

fn to_worker(e: super::TrendError) -> worker::Error {
    worker::Error::RustError(e.to_string())
}

/// The status, the answer, and whether it wrote (so a sweep alarm is needed).
type Handled = (u16, serde_json::Value, bool);

fn handle(sql: &mut DoSql, call: &Call, now: i64) -> std::result::Result<Handled, Problem> {
    let mut window = Window::H24;
    let mut limit = DEFAULT_TOP;
    let mut tenant = None;
    for (k, v) in call.url.query_pairs() {
        match k.as_ref() {
            "window" => {
                window = Window::parse(&v)
                    .ok_or_else(|| invalid_query("window", "must be 1h, 24h or 7d"))?
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_TOP).contains(l))
                    .ok_or_else(|| invalid_query("limit", format!("must be 1 to {MAX_TOP}")))?
            }
            "tenant" => tenant = Some(v.into_owned()),
            _ => {}
        }
    }
    let mut core = super::Trending::open(sql)?;
    match (&call.method, call.url.path()) {
        (Method::Post, "/rollup") => {
            let mut de = serde_json::Deserializer::from_slice(&call.body);
            let rollup: Rollup = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let field = e.path().to_string();
                Problem::new(Code::InvalidRollup)
                    .field(field)
                    .detail(e.into_inner().to_string())
            })?;
            let applied = core.apply(&rollup, now)?;
            Ok((200, to_value(&applied), true))
        }
        (Method::Get, "/top") => {
            let entries = core.top(window, limit, now)?;
            let value = serde_json::json!({
                "window": window,
                "nowMs": now,
                "entries": entries,
            });
            Ok((200, value, false))
        }
        (Method::Get, "/signals") => {
            let value = serde_json::json!({ "nowMs": now, "tenants": core.signals(now)? });
            Ok((200, value, false))
        }
        (Method::Get, "/series") => {
            let tenant = tenant.ok_or_else(|| invalid_query("tenant", "required"))?;
            validate_slug(&tenant).map_err(|e| invalid_query("tenant", e))?;
            Ok((200, to_value(&core.series(&tenant, window, now)?), false))
        }
        _ => Err(Problem::new(Code::RouteNotFound)),
    }
}
