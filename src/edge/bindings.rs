//! The Worker's bindings, named once (see wrangler.toml).

use worker::Env;

/// Durable Object namespace of the tenant registry (class `TenantRegistry`).
pub const REGISTRY: &str = "REGISTRY";
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

/// Durable Object namespace of the per-tenant settlement ledgers (class `TenantLedger`).
pub const LEDGER: &str = "LEDGER";
/// Base URL of the x402 facilitator (`{url}/verify`, `{url}/settle`). Unset: paid calls
/// are refused (503) unless the development override below is on.
pub const FACILITATOR_URL: &str = "FACILITATOR_URL";
/// Per-call facilitator timeout in ms (default 5000).
pub const FACILITATOR_TIMEOUT_MS: &str = "FACILITATOR_TIMEOUT_MS";
/// Development only: `true` verifies payments in the Worker and records local settlements
/// (no funds move) when no facilitator is configured.
pub const ALLOW_LOCAL_X402_VERIFICATION: &str = "ALLOW_LOCAL_X402_VERIFICATION";
/// Secret: bearer token of the payout job's ledger API. Unset: closed.
pub const PLATFORM_PAYOUT_TOKEN: &str = "PLATFORM_PAYOUT_TOKEN";
/// Secret: bearer token of the operators' earnings API. Unset: closed.
pub const PLATFORM_OPERATOR_TOKEN: &str = "PLATFORM_OPERATOR_TOKEN";
