//! The Worker's bindings, named once (see wrangler.toml).

use worker::Env;

/// Durable Object namespace of the tenant registry (class `TenantRegistry`).
pub const REGISTRY: &str = "REGISTRY";
/// Durable Object namespace of the rate limiters (class `RateLimiter`).
pub const RATE_LIMITER: &str = "RATE_LIMITER";
/// The Workers for Platforms dispatch namespace holding tenants' Workers.
pub const DISPATCHER: &str = "DISPATCHER";
/// Tenants are also reached at `{slug}.{PLATFORM_DOMAIN}`.
pub const PLATFORM_DOMAIN: &str = "PLATFORM_DOMAIN";
/// Secret: bearer token of the admin API. Unset: the admin API is closed.
pub const PLATFORM_ADMIN_TOKEN: &str = "PLATFORM_ADMIN_TOKEN";

/// A plain variable or secret, if set and non-empty.
pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|s| s.to_string()))
        .ok()
        .filter(|v| !v.is_empty())
}
