//! The tenant ledger Durable Object: one instance per tenant (named by the tenant slug).
//!
//! Internal routes are answered by [`super::api::handle`] (see there for shapes and codes);
//! this glue reads the request, the clock and the body, and writes the response. The core
//! call is synchronous, so operations on one ledger never interleave.

use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

use super::api::{body_too_large, handle, MAX_BODY_BYTES};
use crate::http::{json, now_ms, problem};
use crate::sql_do::DoSql;

#[durable_object]
pub struct TenantLedger {
    state: State,
}

impl DurableObject for TenantLedger {
    fn new(state: State, _env: Env) -> Self {
        TenantLedger { state }
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
        let mut sql = DoSql::new(&self.state);
        match handle(&mut sql, method.as_ref(), &segs, &query, &body, now_ms()) {
            Ok((status, value)) => json(status, &value),
            Err(p) => problem(&p),
        }
    }
}
