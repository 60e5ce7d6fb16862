//! The platform's ledger API (`crate::ledger_rules` has the routes and rules): the payout
//! job's journal, payouts and earnings under `/__platform/ledger/{slug}/...` behind
//! `PLATFORM_PAYOUT_TOKEN`, and the operators' earnings under `/__platform/earnings...`
//! behind `PLATFORM_OPERATOR_TOKEN`. Each token closes its routes when unset.

use claw_durable::problem::Problem;
use claw_durable::registry::TenantPage;
use futures::future::join_all;
use serde_json::{json, Value};
use worker::{Env, Method, Request, Response};

use super::bindings::{self, PLATFORM_OPERATOR_TOKEN, PLATFORM_PAYOUT_TOKEN};
use super::body::read_bounded;
use super::ledger_client::{self, to_response};
use super::{registry_client, respond};
use crate::auth::bearer_matches;
use crate::ledger_rules::{
    earnings_page_query, forward_query, idempotency_key, payout_request, route, sum_earnings,
    LedgerRoute, Token, MAX_PAYOUT_BODY_BYTES,
};

/// `segments`: the path after `/__platform`, split on `/`.
pub async fn handle(
    mut req: Request,
    env: &Env,
    segments: &[&str],
    query: Option<&str>,
) -> Result<Response, Problem> {
    let method = req.method();
    let (route, token) = route(method.as_ref(), segments)?;
    let secret = match token {
        Token::Payout => bindings::var(env, PLATFORM_PAYOUT_TOKEN),
        Token::Operator => bindings::var(env, PLATFORM_OPERATOR_TOKEN),
    };
    let authorization = req.headers().get("authorization").ok().flatten();
    if !bearer_matches(authorization.as_deref(), secret.as_deref()) {
        return Err(Problem::new(
            401,
            "unauthorized",
            "Missing or wrong bearer token",
        ));
    }
    if let Some(slug) = route.slug() {
        // Ledgers exist for registered tenants only (no object is made for a typo).
        if registry_client::tenant(env, slug).await?.is_none() {
            return Err(Problem::new(404, "tenant_not_found", "Tenant not found")
                .detail(format!("no tenant {slug:?}")));
        }
    }
    match route {
        LedgerRoute::Entries { slug } => {
            let q = forward_query(query, &["after", "limit"]);
            ask(env, &slug, Method::Get, format!("/entries{q}"), None).await
        }
        LedgerRoute::Earnings { slug } => {
            let q = forward_query(query, &["days"]);
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
            let forwarded = payout_request(&body, &key)?;
            ask(env, &slug, Method::Post, "/payouts".into(), Some(forwarded)).await
        }
        LedgerRoute::Payout { slug, id } => {
            ask(env, &slug, Method::Get, format!("/payouts/{id}"), None).await
        }
        LedgerRoute::PostPayout { slug, id } | LedgerRoute::VoidPayout { slug, id } => {
            let action = if segments.last() == Some(&"post") {
                "post"
            } else {
                "void"
            };
            let body = read_bounded(&mut req, MAX_PAYOUT_BODY_BYTES, "a payout request").await?;
            let json: Value = serde_json::from_slice(&body).map_err(|e| {
                Problem::new(400, "invalid_body", "Invalid request body").detail(e.to_string())
            })?;
            ask(
                env,
                &slug,
                Method::Post,
                format!("/payouts/{id}/{action}"),
                Some(json),
            )
            .await
        }
        LedgerRoute::AllEarnings => all_earnings(env, query).await,
    }
}

/// One request to `slug`'s ledger, its answer passed on as it is.
async fn ask(
    env: &Env,
    slug: &str,
    method: Method,
    path: String,
    body: Option<Value>,
) -> Result<Response, Problem> {
    let answer = ledger_client::call(env, slug, method, &path, body.as_ref())
        .await
        .map_err(|e| ledger_client::unavailable(&e))?;
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
    let mut resp = registry_client::call(env, Method::Get, &path, None).await?;
    if resp.status_code() != 200 {
        return Err(Problem::new(
            503,
            "registry_unavailable",
            "Tenant registry unavailable",
        ));
    }
    let page: TenantPage = resp
        .json()
        .await
        .map_err(|_| Problem::new(503, "registry_unavailable", "Tenant registry unavailable"))?;
    let days = q.days;
    let answers = join_all(page.tenants.iter().map(|t| {
        let slug = t.config.slug.clone();
        async move {
            let answer = ledger_client::call(
                env,
                &slug,
                Method::Get,
                &format!("/earnings?days={days}"),
                None,
            )
            .await;
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
                rows.push(json!({"slug": slug, "error": a.problem().map(|p| p.code.into_owned())}))
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
