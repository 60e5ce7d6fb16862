//! The tenant admin routes (`/__platform/tenants...`, admin token or a creator key in scope,
//! checked by `crate::platform::edge`): relayed to the registry object, after the checks only
//! the dispatcher can make (a proxy upstream against the SSRF rules and the platform's hosts;
//! a creator's config names only its own script). A creator's tenant list is its scope's
//! tenants that exist.

use claw_durable::problem::Problem;
use claw_durable::registry::keys::Grant;
use claw_durable::tenant::{TenantConfig, MAX_CONFIG_BYTES};
use futures::future::join_all;
use worker::{Env, Method, Request, Response};

use super::edge as registry;
use crate::http::body::read_bounded;
use crate::http::respond;
use crate::platform::edge::PlatformCall;
use crate::platform::{Caller, TenantRoute};
use crate::proxy::{validate_secret_scope, validate_upstream};

pub async fn handle(call: PlatformCall<'_>, route: TenantRoute) -> Result<Response, Problem> {
    let creator = match &call.caller {
        Caller::Creator(grant) => Some(grant.clone()),
        Caller::Operator | Caller::Open => None,
    };
    let (mut req, env, query) = call.into_parts();
    if let TenantRoute::Offer(slug) = &route {
        let record = registry::existing(env, slug).await?;
        let mut resp = respond::json(200, &super::offer::offer(&record))?;
        let _ = resp.headers_mut().set("cache-control", "public, max-age=5");
        return Ok(resp);
    }
    if let (TenantRoute::List, Some(grant)) = (&route, &creator) {
        return scope_list(env, grant).await;
    }
    let (method, path, slug) = match &route {
        TenantRoute::List => (Method::Get, "/tenants".to_owned(), None),
        TenantRoute::Get(s) => (Method::Get, format!("/tenants/{s}"), Some(s)),
        TenantRoute::Put(s) => (Method::Put, format!("/tenants/{s}"), Some(s)),
        TenantRoute::Delete(s) => (Method::Delete, format!("/tenants/{s}"), Some(s)),
        TenantRoute::Suspend(s) => (Method::Post, format!("/tenants/{s}/suspend"), Some(s)),
        TenantRoute::Resume(s) => (Method::Post, format!("/tenants/{s}/resume"), Some(s)),
        TenantRoute::Offer(_) => return Err(Problem::internal("offers are answered above")),
    };
    let body = match &route {
        TenantRoute::Put(slug) => {
            let body = read_bounded(&mut req, MAX_CONFIG_BYTES, "a tenant config").await?;
            crate::discovery::edge::check_icon(&req, env, &body, slug)?;
            check_proxy_upstream(&req, env, &body, slug)?;
            if creator.is_some() {
                if let Ok(config) = TenantConfig::parse(&body, slug) {
                    let current = registry::tenant(env, slug).await?;
                    super::check_creator_config(&config, current.map(|r| r.config.plan))?;
                }
            }
            Some(body)
        }
        TenantRoute::Delete(slug) => {
            // Its deployed script goes first (`crate::deploy::api::forget_tenant`).
            crate::deploy::api::forget_tenant(env, slug).await?;
            None
        }
        _ => None,
    };
    let path_and_query = match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let changes = method != Method::Get;
    let resp = registry::call(env, method, &path_and_query, body).await?;
    if let (true, Some(slug)) = (changes, slug) {
        registry::invalidate(slug);
    }
    Ok(resp)
}

/// The registry validates configs but does not know the platform's hosts: a proxy tenant's
/// upstream is checked against the SSRF rules here, before the config is stored, and so is
/// the scope of the secrets it names (`crate::proxy::headers::secret_prefix`). A config
/// that does not parse is left to the registry, which answers with the precise problem.
fn check_proxy_upstream(req: &Request, env: &Env, body: &[u8], slug: &str) -> Result<(), Problem> {
    let Ok(config) = TenantConfig::parse(body, slug) else {
        return Ok(());
    };
    let Some(proxy) = &config.proxy else {
        return Ok(());
    };
    let host = req.headers().get("host").ok().flatten();
    validate_upstream(
        proxy,
        &crate::proxy::edge::ssrf_policy(env, host.as_deref()),
    )?;
    validate_secret_scope(&config.slug, proxy)
}

/// `GET /__platform/tenants` for a creator key: the tenants of its scope that exist, in
/// slug order, in one page (a key names at most
/// `claw_durable::registry::keys::MAX_KEY_TENANTS`).
async fn scope_list(env: &Env, grant: &Grant) -> Result<Response, Problem> {
    let answers = join_all(grant.tenants.iter().map(|slug| async move {
        let resp = registry::call(env, Method::Get, &format!("/tenants/{slug}"), None).await?;
        match resp.status_code() {
            200 => claw_durable::http::body_json::<serde_json::Value>(&resp)
                .await
                .map(Some)
                .map_err(|e| Problem::internal(e.to_string())),
            404 => Ok(None),
            s => Err(Problem::internal(format!("registry answered {s}"))),
        }
    }))
    .await;
    let mut tenants = Vec::with_capacity(answers.len());
    for answer in answers {
        if let Some(record) = answer? {
            tenants.push(record);
        }
    }
    respond::json(200, &serde_json::json!({ "tenants": tenants }))
}
