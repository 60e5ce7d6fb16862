//! The registry Durable Object: one instance (named "global") behind the admin API.
//!
//! Internal routes (the dispatcher forwards admin calls here after checking the token):
//! `GET /tenants?after=&limit=`, `GET|PUT|DELETE /tenants/{slug}`,
//! `POST /tenants/{slug}/suspend`, `POST /tenants/{slug}/resume`.

use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

use super::{Registry, TenantStatus, DEFAULT_PAGE};
use crate::http::{json, now_ms, problem};
use crate::problem::{Code, Problem};
use crate::sql_do::DoSql;
use crate::tenant::{validate_slug, TenantConfig};

#[durable_object]
pub struct TenantRegistry {
    state: State,
}

impl DurableObject for TenantRegistry {
    fn new(state: State, _env: Env) -> Self {
        TenantRegistry { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        let segments: Vec<String> = url
            .path_segments()
            .map(|s| s.map(str::to_owned).collect())
            .unwrap_or_default();
        let method = req.method();
        let body = if matches!(method, Method::Put) {
            req.bytes().await?
        } else {
            Vec::new()
        };
        let mut sql = DoSql::new(&self.state);
        let outcome = handle(&mut sql, &method, &segments, url.query_pairs(), &body);
        match outcome {
            Ok((status, value)) => json(status, &value),
            Err(p) => problem(&p),
        }
    }
}

fn not_found(slug: &str) -> Problem {
    Problem::new(Code::TenantNotFound).detail(format!("no tenant {slug:?}"))
}

fn handle<'q>(
    sql: &mut DoSql,
    method: &Method,
    segments: &[String],
    query: impl Iterator<Item = (std::borrow::Cow<'q, str>, std::borrow::Cow<'q, str>)>,
    body: &[u8],
) -> std::result::Result<(u16, serde_json::Value), Problem> {
    let mut reg = Registry::open(sql)?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, segs.as_slice()) {
        (Method::Get, ["tenants"]) => {
            let mut after = None;
            let mut limit = DEFAULT_PAGE;
            for (k, v) in query {
                match k.as_ref() {
                    "after" => after = Some(v.into_owned()),
                    "limit" => {
                        limit = v
                            .parse()
                            .ok()
                            .filter(|l| (1..=super::MAX_PAGE).contains(l))
                            .ok_or_else(|| {
                                Problem::new(Code::InvalidQuery)
                                    .field("limit")
                                    .detail("limit must be 1 to 100")
                            })?
                    }
                    _ => {}
                }
            }
            Ok((200, to_value(&reg.list(after.as_deref(), limit)?)))
        }
        (_, ["tenants", slug, ..]) if validate_slug(slug).is_err() => Err(not_found(slug)),
        (Method::Get, ["tenants", slug]) => reg
            .get(slug)?
            .map(|r| (200, to_value(&r)))
            .ok_or_else(|| not_found(slug)),
        (Method::Put, ["tenants", slug]) => {
            let config = TenantConfig::parse(body, slug)?;
            let (rec, created) = reg.put(&config, now_ms())?;
            Ok((if created { 201 } else { 200 }, to_value(&rec)))
        }
        (Method::Delete, ["tenants", slug]) => {
            if reg.delete(slug)? {
                Ok((200, serde_json::json!({ "deleted": slug })))
            } else {
                Err(not_found(slug))
            }
        }
        (Method::Post, ["tenants", slug, action @ ("suspend" | "resume")]) => {
            let status = if *action == "suspend" {
                TenantStatus::Suspended
            } else {
                TenantStatus::Active
            };
            reg.set_status(slug, status, now_ms())?
                .map(|r| (200, to_value(&r)))
                .ok_or_else(|| not_found(slug))
        }
        _ => Err(Problem::new(Code::RouteNotFound)),
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
