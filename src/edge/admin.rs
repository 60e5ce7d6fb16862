//! The operator API under `/__platform`: tenant management, behind the admin bearer token.

use claw_durable::problem::Problem;
use claw_durable::tenant::{TenantConfig, MAX_CONFIG_BYTES};
use worker::{Env, Method, Request, Response};

use super::bindings::{self, PLATFORM_ADMIN_TOKEN};
use super::body::read_bounded;
use super::registry_client;
use crate::auth::bearer_matches;
use crate::proxy::{validate_secret_scope, validate_upstream};

fn unauthorized() -> Problem {
    Problem::new(401, "unauthorized", "Missing or wrong bearer token")
}

/// `rest` is the path after `/__platform`.
pub async fn handle(
    mut req: Request,
    env: &Env,
    rest: &str,
    query: Option<&str>,
) -> Result<Response, Problem> {
    if super::usage_api::owns(rest) {
        return super::usage_api::handle(req, env, rest, query).await;
    }
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    if matches!(segments.first(), Some(&("ledger" | "earnings"))) {
        return super::ledger_api::handle(req, env, &segments, query).await;
    }
    if segments.first() != Some(&"tenants") {
        return Err(Problem::new(
            404,
            "route_not_found",
            "No such platform route",
        ));
    }
    let authorization = req.headers().get("authorization").ok().flatten();
    let token = bindings::var(env, PLATFORM_ADMIN_TOKEN);
    if !bearer_matches(authorization.as_deref(), token.as_deref()) {
        return Err(unauthorized());
    }
    let method = req.method();
    let allowed = match segments.as_slice() {
        ["tenants"] => matches!(method, Method::Get),
        ["tenants", _] => matches!(method, Method::Get | Method::Put | Method::Delete),
        ["tenants", _, "suspend" | "resume"] => matches!(method, Method::Post),
        _ => {
            return Err(Problem::new(
                404,
                "route_not_found",
                "No such platform route",
            ))
        }
    };
    if !allowed {
        return Err(
            Problem::new(405, "method_not_allowed", "Method not allowed")
                .detail(format!("{} is not allowed on {rest}", method.as_ref())),
        );
    }
    let body = if matches!(method, Method::Put) {
        let body = read_bounded(&mut req, MAX_CONFIG_BYTES, "a tenant config").await?;
        check_proxy_upstream(&req, env, &body, segments.get(1).copied().unwrap_or(""))?;
        Some(body)
    } else {
        None
    };
    let path_and_query = match query {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let resp = registry_client::call(env, method.clone(), &path_and_query, body).await?;
    if !matches!(method, Method::Get) {
        if let Some(slug) = segments.get(1) {
            registry_client::invalidate(slug);
        }
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
    validate_upstream(proxy, &super::proxy::ssrf_policy(env, host.as_deref()))?;
    validate_secret_scope(&config.slug, proxy)
}
