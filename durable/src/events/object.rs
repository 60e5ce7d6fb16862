//! The usage-events Durable Object: one per tenant, named by the tenant slug (binding
//! [`USAGE_EVENTS_BINDING`]). The dispatcher posts events here with `ctx.waitUntil`.
//!
//! Internal routes:
//! - `POST /events`: a JSON array of events (at most 500, 1 MiB) -> 200 [`super::AppendReport`].
//! - `GET /events?stage=&since=&limit=`: -> 200 [`super::EventPage`].
//! - `GET /stats?days=`: -> 200 [`super::UsageStats`] over the last `days` (1..=31) UTC days.
//! - `GET /config`, `PUT /config` `{retentionMs}`: the retention in force.
//! - `GET /rollup`: the trending rollup this object would send now (read-only, for operators).
//! - `POST /rollup`: build and send that rollup to the `Trending` object now, without
//!   waiting for the alarm's [`crate::trending::ROLLUP_DELAY_MS`] (operators, tests) ->
//!   200 `{sent: false}` before any event, else `{sent: true, applied, needFull, seq,
//!   asOfMs}`; 503 `trending_unavailable` when the trending object cannot be reached. Safe
//!   alongside the alarm: the trending object orders rollups by `(seq, asOfMs)` and ignores
//!   an older one, and acknowledgements only move forward.
//!
//! The alarm runs the retention sweep, expires trending buckets and rolls the tenant's
//! trending counts up to the global `Trending` object.

use worker::{
    console_error, durable_object, DurableObject, Env, Headers, Method, Request, RequestInit,
    Response, Result, State,
};

use super::{
    earliest, stats, EventQuery, EventStore, EventsConfig, UsageEvent, DEFAULT_PAGE, EXPIRE_BATCH,
    MAX_BATCH_BYTES, MAX_PAGE, MAX_STATS_DAYS, SWEEP_BATCH,
};
use crate::http::{at_ms, invalid_query, json, now_ms, problem, reply, to_value, Call};
use crate::problem::{Code, Problem};
use crate::sql_do::{DoSql, Schemas};
use crate::store::MAX_SAFE_INTEGER;
use crate::trending::object::{TRENDING_BINDING, TRENDING_OBJECT};
use crate::trending::{Applied, PendingRollup, TenantTrend, TrendPolicy};

pub const USAGE_EVENTS_BINDING: &str = "USAGE_EVENTS";

/// After a failed rollup, try again this much later.
const ROLLUP_RETRY_MS: i64 = 60_000;
/// Expired trending buckets left over: come back this soon.
const BACKLOG_RETRY_MS: i64 = 1_000;
const MAX_CONFIG_BYTES: usize = 1_024;

#[durable_object]
pub struct UsageEvents {
    state: State,
    env: Env,
    /// The events schema is known to be in place after the first request.
    schemas: Schemas,
}

impl UsageEvents {
    fn sql(&self) -> DoSql {
        DoSql::remembering(&self.state, &self.schemas)
    }
}

/// What a route produced: the answer, and whether the alarm may need to move earlier.
struct Handled {
    status: u16,
    value: serde_json::Value,
    reschedule: bool,
}

impl DurableObject for UsageEvents {
    fn new(state: State, env: Env) -> Self {
        UsageEvents {
            state,
            env,
            schemas: Schemas::default(),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if req.method() == Method::Post && req.path() == "/rollup" {
            return self.rollup_now().await;
        }
        let limit = if req.path() == "/config" {
            MAX_CONFIG_BYTES
        } else {
            MAX_BATCH_BYTES
        };
        let call = match Call::read(&mut req, &[Method::Post, Method::Put], limit).await? {
            Ok(call) => call,
            Err(p) => return problem(&p),
        };
        let now = now_ms();
        let outcome = handle(&mut self.sql(), &call, now);
        if matches!(
            outcome,
            Ok(Handled {
                reschedule: true,
                ..
            })
        ) {
            self.ensure_alarm(now).await?;
        }
        reply(outcome.map(|h| (h.status, h.value)))
    }

    async fn alarm(&self) -> Result<Response> {
        let now = now_ms();
        let policy = TrendPolicy::default();
        let (pending, backlog) = {
            let mut sql = self.sql();
            maintain(&mut sql, now, &policy).map_err(to_worker)?
        };
        let mut retry = backlog.then_some(now.saturating_add(BACKLOG_RETRY_MS));
        if let Some(pending) = pending {
            match self.send_rollup(&pending).await {
                Ok(applied) => {
                    let mut sql = self.sql();
                    TenantTrend::open(&mut sql)
                        .and_then(|mut t| t.ack(&pending, applied.need_full))
                        .map_err(|e| to_worker(e.into()))?;
                }
                Err(e) => {
                    console_error!("usage events: rollup failed: {e}");
                    retry = earliest(retry, Some(now.saturating_add(ROLLUP_RETRY_MS)));
                }
            }
        }
        let next = {
            let mut sql = self.sql();
            EventStore::open(&mut sql)
                .and_then(|mut s| s.next_wake(now))
                .map_err(|e| to_worker(e.into()))?
        };
        if let Some(at) = earliest(next, retry) {
            self.state.storage().set_alarm(at_ms(at)).await?;
        }
        Response::empty()
    }
}

impl UsageEvents {
    /// Moves the alarm earlier when the store wants to wake sooner than it is set.
    async fn ensure_alarm(&self, now: i64) -> Result<()> {
        let wanted = {
            let mut sql = self.sql();
            EventStore::open(&mut sql)
                .and_then(|mut s| s.next_wake(now))
                .map_err(|e| to_worker(e.into()))?
        };
        let Some(wanted) = wanted else {
            return Ok(());
        };
        let storage = self.state.storage();
        let current = storage.get_alarm().await?;
        if current.is_none_or(|c| c > wanted) {
            storage.set_alarm(at_ms(wanted)).await?;
        }
        Ok(())
    }

    /// `POST /rollup`: the rollup of this moment, sent and acknowledged now.
    async fn rollup_now(&self) -> Result<Response> {
        let now = now_ms();
        let built = {
            let mut sql = self.sql();
            build_now(&mut sql, now)
        };
        let pending = match built {
            Ok(Some(p)) => p,
            Ok(None) => return json(200, &serde_json::json!({ "sent": false })),
            Err(p) => return problem(&p),
        };
        let applied = match self.send_rollup(&pending).await {
            Ok(a) => a,
            Err(e) => {
                console_error!("usage events: rollup failed: {e}");
                return problem(&Problem::new(Code::TrendingUnavailable));
            }
        };
        let acked = {
            let mut sql = self.sql();
            TenantTrend::open(&mut sql).and_then(|mut t| t.ack(&pending, applied.need_full))
        };
        if let Err(e) = acked {
            return problem(&e.into());
        }
        self.ensure_alarm(now).await?;
        json(
            200,
            &serde_json::json!({
                "sent": true,
                "applied": applied.applied,
                "needFull": applied.need_full,
                "seq": pending.rollup.seq,
                "asOfMs": pending.rollup.as_of_ms,
            }),
        )
    }

    async fn send_rollup(&self, pending: &PendingRollup) -> Result<Applied> {
        let body = serde_json::to_string(&pending.rollup)
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(wasm_bindgen::JsValue::from_str(&body)));
        let req = Request::new_with_init("https://trending.internal/rollup", &init)?;
        let stub = self
            .env
            .durable_object(TRENDING_BINDING)?
            .get_by_name(TRENDING_OBJECT)?;
        let resp = stub.fetch_with_request(req).await?;
        if resp.status_code() != 200 {
            let text = crate::http::body_text(&resp).await.unwrap_or_default();
            return Err(worker::Error::RustError(format!(
                "trending answered {}: {text}",
                resp.status_code()
            )));
        }
        crate::http::body_json::<Applied>(&resp).await
    }
}

fn to_worker(p: Problem) -> worker::Error {
    worker::Error::RustError(p.to_json())
}

/// The sync part of the alarm: retention sweep, trending expiry, and the rollup to send.
/// Returns the rollup (if one is due) and whether expired buckets are left over.
fn maintain(
    sql: &mut DoSql,
    now: i64,
    policy: &TrendPolicy,
) -> std::result::Result<(Option<PendingRollup>, bool), Problem> {
    let mut store = EventStore::open(sql)?;
    if store.sweep_due(now)? {
        store.sweep(now, SWEEP_BATCH)?;
    }
    let tenant = store.tenant()?;
    let mut trend = TenantTrend::open(sql)?;
    let expired = trend.expire(now, EXPIRE_BATCH)?;
    let Some(tenant) = tenant else {
        return Ok((None, expired.more));
    };
    let pending = if trend.rollup_due(now)? {
        Some(trend.build_rollup(&tenant, now, policy)?)
    } else {
        None
    };
    Ok((pending, expired.more))
}

/// The rollup to send now; None before this object holds any event.
fn build_now(sql: &mut DoSql, now: i64) -> std::result::Result<Option<PendingRollup>, Problem> {
    let Some(tenant) = EventStore::open(sql)?.tenant()? else {
        return Ok(None);
    };
    let pending = TenantTrend::open(sql)?.build_rollup(&tenant, now, &TrendPolicy::default())?;
    Ok(Some(pending))
}

fn parse_query<'q>(
    query: impl Iterator<Item = (std::borrow::Cow<'q, str>, std::borrow::Cow<'q, str>)>,
) -> std::result::Result<EventQuery, Problem> {
    let mut q = EventQuery {
        stage: None,
        since: None,
        limit: DEFAULT_PAGE,
    };
    for (k, v) in query {
        match k.as_ref() {
            "stage" => {
                q.stage = Some(super::Stage::parse(&v).ok_or_else(|| {
                    invalid_query("stage", "must be one of challenged, rate_limited, verify_failed, served, settled, settlement_failed, error")
                })?)
            }
            "since" => {
                q.since = Some(
                    v.parse::<i64>()
                        .ok()
                        .filter(|s| (0..=MAX_SAFE_INTEGER).contains(s))
                        .ok_or_else(|| invalid_query("since", "must be a cursor from nextCursor"))?,
                )
            }
            "limit" => {
                q.limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_PAGE).contains(l))
                    .ok_or_else(|| invalid_query("limit", format!("must be 1 to {MAX_PAGE}")))?
            }
            _ => {}
        }
    }
    Ok(q)
}

fn parse_events(body: &[u8]) -> std::result::Result<Vec<UsageEvent>, Problem> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." {
            Problem::new(Code::InvalidJson).detail(inner.to_string())
        } else {
            Problem::new(Code::InvalidEvent)
                .field(path)
                .detail(inner.to_string())
        }
    })
}

fn handle(sql: &mut DoSql, call: &Call, now: i64) -> std::result::Result<Handled, Problem> {
    let body = call.body.as_slice();
    let done = |status: u16, value: serde_json::Value| Handled {
        status,
        value,
        reschedule: false,
    };
    match (&call.method, call.url.path()) {
        (Method::Post, "/events") => {
            let events = parse_events(body)?;
            let report = EventStore::open(sql)?.append(&events, now, &TrendPolicy::default())?;
            Ok(Handled {
                status: 200,
                value: to_value(&report),
                reschedule: report.inserted > 0,
            })
        }
        (Method::Get, "/events") => {
            let q = parse_query(call.url.query_pairs())?;
            Ok(done(200, to_value(&EventStore::open(sql)?.query(&q)?)))
        }
        (Method::Get, "/stats") => {
            let days = call
                .url
                .query_pairs()
                .find(|(k, _)| k == "days")
                .map(|(_, v)| {
                    v.parse::<u32>()
                        .ok()
                        .filter(|d| (1..=MAX_STATS_DAYS).contains(d))
                })
                .unwrap_or(Some(7))
                .ok_or_else(|| invalid_query("days", format!("must be 1 to {MAX_STATS_DAYS}")))?;
            EventStore::open(sql)?;
            Ok(done(200, to_value(&stats(sql, now, days)?)))
        }
        (Method::Get, "/config") => Ok(done(200, to_value(&EventStore::open(sql)?.config()?))),
        (Method::Put, "/config") => {
            let config: EventsConfig = serde_json::from_slice(body)
                .map_err(|e| Problem::new(Code::InvalidJson).detail(e.to_string()))?;
            Ok(done(
                200,
                to_value(&EventStore::open(sql)?.set_config(&config)?),
            ))
        }
        (Method::Get, "/rollup") => {
            let tenant = EventStore::open(sql)?
                .tenant()?
                .ok_or_else(|| Problem::new(Code::NoEvents))?;
            let pending =
                TenantTrend::open(sql)?.build_rollup(&tenant, now, &TrendPolicy::default())?;
            Ok(done(200, to_value(&pending.rollup)))
        }
        _ => Err(Problem::new(Code::RouteNotFound)),
    }
}
