//! The registry Durable Object: one instance (named "global") behind the admin API.
//!
//! Internal routes (the dispatcher forwards admin calls here after checking the token):
//! `GET /tenants?after=&limit=`, `GET|PUT|DELETE /tenants/{slug}`,
//! `POST /tenants/{slug}/suspend`, `POST /tenants/{slug}/resume`, and the creator keys'
//! routes under `/keys` ([`super::keys::handle`]).

use wasm_bindgen::prelude::wasm_bindgen;
use worker::{durable_object, DurableObject, Env, Method, Request, Response, Result, State};

use super::{keys, Registry, TenantStatus, DEFAULT_PAGE};
use crate::http::{now_ms, reply, to_value, Answer, Call};
use crate::problem::{Code, Problem};
use crate::sql_do::DoSql;
use crate::tenant::{validate_slug, TenantConfig};

#[wasm_bindgen]
extern "C" {
    /// Web Crypto's CSPRNG (`crypto.getRandomValues`): a creator key's bytes.
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &mut [u8]);
}

fn random_key_bytes() -> [u8; keys::RANDOM_BYTES] {
    let mut bytes = [0u8; keys::RANDOM_BYTES];
    get_random_values(&mut bytes);
    bytes
}

#[durable_object]
pub struct TenantRegistry {
    state: State,
}

impl DurableObject for TenantRegistry {
    fn new(state: State, _env: Env) -> Self {
        TenantRegistry { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // A config's size is the parser's to judge (`TenantConfig::parse`, 413).
        let call = Call::read(&mut req, &[Method::Put, Method::Post], usize::MAX).await?;
        reply(call.and_then(|call| handle(&mut DoSql::new(&self.state), &call)))
    }
}

fn not_found(slug: &str) -> Problem {
    Problem::new(Code::TenantNotFound).detail(format!("no tenant {slug:?}"))
}

fn handle(sql: &mut DoSql, call: &Call) -> Answer {
    let segments = call.segments();
    if segments.first() == Some(&"keys") {
        let query: Vec<(String, String)> = call.url.query_pairs().into_owned().collect();
        let now_s = now_ms().div_euclid(1000);
        return keys::handle(
            sql,
            call.method.as_ref(),
            &segments,
            &query,
            &call.body,
            now_s,
            &mut random_key_bytes,
        );
    }
    let mut reg = Registry::open(sql)?;
    match (&call.method, segments.as_slice()) {
        (Method::Get, ["tenants"]) => {
            let mut after = None;
            let mut limit = DEFAULT_PAGE;
            for (k, v) in call.url.query_pairs() {
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
            let config = TenantConfig::parse(&call.body, slug)?;
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
