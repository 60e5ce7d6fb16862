//! The ledger routes' glue (tokens checked by `crate::platform::edge`): the payout job's
//! journal, payouts (and their list) and earnings under `/__platform/ledger/{slug}/...`, and the operators'
//! earnings under `/__platform/earnings...`. Each becomes one request to the tenant's ledger
//! object in its wire type (`claw_durable::ledger::wire`).

use claw_durable::ledger::wire::{PostPayoutRequest, VoidPayoutRequest};
use claw_durable::problem::{Code, Problem};
use claw_durable::registry::TenantPage;
use futures::future::join_all;
use serde_json::{json, Value};
use worker::{Env, Method, Response};

use super::edge::{self as ledger, to_response, wire_json};
use super::{
    earnings_page_query, idempotency_key, payout_request, sum_earnings, MAX_PAYOUT_BODY_BYTES,
};
use crate::http::body::read_bounded;
use crate::http::query::Query;
use crate::http::respond;
use crate::platform::edge::PlatformCall;
use crate::platform::LedgerRoute;
use crate::registry::edge as registry;

pub async fn handle(call: PlatformCall<'_>, route: LedgerRoute) -> Result<Response, Problem> {
    let (mut req, env, query) = call.into_parts();
    if let Some(slug) = route.slug() {
        // Ledgers exist for registered tenants only (no object is made for a typo).
        registry::existing(env, slug).await?;
    }
    match route {
        LedgerRoute::Entries { slug } => {
            let q = Query::parse(query).forward(&["after", "limit"]);
            ask(env, &slug, Method::Get, format!("/entries{q}"), None).await
        }
        LedgerRoute::Earnings { slug } => {
            let q = Query::parse(query).forward(&["days"]);
            ask(env, &slug, Method::Get, format!("/earnings{q}"), None).await
        }
        LedgerRoute::CreatePayout { slug } => {
            let key = idempotency_key(
                req.headers()
                    .get("idempotency-key")
                    .ok()
                    .flatten()
                    .as_deref(),
            )?;
            let body = read_bounded(&mut req, MAX_PAYOUT_BODY_BYTES, "a payout request").await?;
            let forwarded = wire_json(&payout_request(&body, &key)?);
            ask(env, &slug, Method::Post, "/payouts".into(), Some(forwarded)).await
        }
        LedgerRoute::Payouts { slug } => {
            let q = Query::parse(query).forward(&["after", "limit"]);
            ask(env, &slug, Method::Get, format!("/payouts{q}"), None).await
        }
        LedgerRoute::Payout { slug, id } => {
            ask(env, &slug, Method::Get, format!("/payouts/{id}"), None).await
        }
        LedgerRoute::PostPayout { slug, id } => {
            let body = read_bounded(&mut req, MAX_PAYOUT_BODY_BYTES, "a payout request").await?;
            let post: PostPayoutRequest = parse_body(&body)?;
            let path = format!("/payouts/{id}/post");
            ask(env, &slug, Method::Post, path, Some(wire_json(&post))).await
        }
        LedgerRoute::VoidPayout { slug, id } => {
            let body = read_bounded(&mut req, MAX_PAYOUT_BODY_BYTES, "a payout request").await?;
            let void: VoidPayoutRequest = parse_body(&body)?;
            let path = format!("/payouts/{id}/void");
            ask(env, &slug, Method::Post, path, Some(wire_json(&void))).await
        }
        LedgerRoute::Reconcile { slug } => {
            ask(env, &slug, Method::Post, "/reconcile".into(), None).await
        }
        LedgerRoute::AllEarnings => all_earnings(env, query).await,
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| Problem::new(Code::InvalidBody).detail(e.to_string()))
}

/// One request to `slug`'s ledger, its answer passed on as it is.
async fn ask(
    env: &Env,
    slug: &str,
    method: Method,
    path: String,
    body: Option<String>,
) -> Result<Response, Problem> {
    let answer = ledger::call(env, slug, method, &path, body)
        .await
        .map_err(|e| ledger::unavailable(&e))?;
    to_response(&answer)
}

/// One page of tenants (registry order) with each one's earnings, fetched in parallel, and
/// the page's totals. A tenant whose ledger cannot be read is listed with an `error` and
/// left out of the totals (which say how many they cover).
async fn all_earnings(env: &Env, query: Option<&str>) -> Result<Response, Problem> {
    let q = earnings_page_query(query)?;
    let mut path = format!("/tenants?limit={}", q.limit);
    if let Some(after) = &q.after {
        path.push_str(&format!("&after={after}"));
    }
    let page: TenantPage = registry::page(env, &path).await?;
    let days = q.days;
    let answers = join_all(page.tenants.iter().map(|t| {
        let slug = t.config.slug.clone();
        async move {
            let path = format!("/earnings?days={days}");
            let answer = ledger::call(env, &slug, Method::Get, &path, None).await;
            (slug, answer)
        }
    }))
    .await;
    let mut rows = Vec::with_capacity(answers.len());
    let mut readable = Vec::with_capacity(answers.len());
    for (slug, answer) in answers {
        match answer {
            Ok(a) if a.status == 200 => {
                readable.push(a.body.clone());
                rows.push(json!({"slug": slug, "earnings": a.body}));
            }
            Ok(a) => {
                rows.push(json!({"slug": slug, "error": a.problem().map(|p| p.code.as_str())}))
            }
            Err(e) => {
                worker::console_error!("earnings of {slug}: {}", e.0);
                rows.push(json!({"slug": slug, "error": "ledger_unavailable"}));
            }
        }
    }
    let totals = sum_earnings(&readable).map_err(Problem::internal)?;
    let mut out = json!({
        "tenants": rows,
        "totals": totals,
        "totalsCover": readable.len(),
    });
    if let Some(next) = page.next_cursor {
        out["nextCursor"] = Value::String(next);
    }
    respond::json(200, &out)
}
