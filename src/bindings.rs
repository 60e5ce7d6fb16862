//! The Worker's bindings, named once (see wrangler.toml).

use std::cell::RefCell;
use std::collections::HashMap;

use worker::Env;

/// Durable Object namespace of the tenant registry (class `TenantRegistry`).
pub const REGISTRY: &str = "REGISTRY";
/// Durable Object namespace of the rate limiters (class `RateLimiter`).
pub const RATE_LIMITER: &str = "RATE_LIMITER";
/// The Workers for Platforms dispatch namespace holding tenants' Workers.
pub const DISPATCHER: &str = "DISPATCHER";
/// Tenants are also reached at `{slug}.{PLATFORM_DOMAIN}`.
pub const PLATFORM_DOMAIN: &str = "PLATFORM_DOMAIN";

/// Other hosts that reach the platform (comma-separated, e.g. its `workers.dev` name): proxy
/// upstreams and tenants' fetches may not point at them. `PLATFORM_DOMAIN`, its subdomains
/// and the host a request came in on are always refused.
pub const PLATFORM_HOSTS: &str = "PLATFORM_HOSTS";
/// Local development and tests only: `true` lets proxy upstreams be loopback hosts over
/// http, and lets the outbound Worker reach loopback for tenants listing `localhost`.
/// Unset (the default, and production): refused.
pub const ALLOW_LOOPBACK_UPSTREAMS: &str = "ALLOW_LOOPBACK_UPSTREAMS";
/// `outbound`: this deployment of the Worker is the dispatch namespace's outbound Worker
/// (see `wrangler.egress.toml`). Unset: the dispatcher.
pub const WORKER_ROLE: &str = "WORKER_ROLE";
pub const ROLE_OUTBOUND: &str = "outbound";
/// Local runtime only: `true` makes the outbound Worker read the call's outbound parameters
/// from the namespace emulator's request header instead of from its environment, where
/// Workers for Platforms puts them. Never set in production, where a tenant could forge it.
pub const OUTBOUND_PARAMS_FROM_EMULATOR: &str = "OUTBOUND_PARAMS_FROM_EMULATOR";

/// The platform API's bearer tokens are named with their access (`crate::platform`).
pub use crate::platform::PLATFORM_ADMIN_TOKEN;

/// A plain variable or secret, if set and non-empty: deployment configuration, the same for
/// every request an isolate serves (a new value means a new deployment, hence new isolates),
/// so each name is read from `env` once per isolate and then remembered. Reading one costs
/// Wasm<->JS crossings, and an unset name two failed lookups with their error messages
/// built: about a twentieth of a free call's CPU before it was remembered. Not for the
/// outbound Worker's per-call parameters, which are read from `env` every time
/// (`crate::egress::edge`).
pub fn var(env: &Env, name: &str) -> Option<String> {
    if let Some(known) = VARS.with(|v| v.borrow().get(name).cloned()) {
        return known;
    }
    let value = env
        .var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|s| s.to_string()))
        .ok()
        .filter(|v| !v.is_empty());
    VARS.with(|v| v.borrow_mut().insert(name.to_owned(), value.clone()));
    value
}

thread_local! {
    /// [`var`]'s answers in this isolate, by name.
    static VARS: RefCell<HashMap<String, Option<String>>> = RefCell::new(HashMap::new());
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

/// Durable Object namespace of the per-tenant usage events (class `UsageEvents`, one object
/// per tenant slug). The objects themselves find the trending object as `TRENDING`.
pub const USAGE_EVENTS: &str = "USAGE_EVENTS";
/// The usage queue (Cloudflare Queues): every call's event is sent here off the response
/// path, and this Worker consumes it into the `UsageEvents` objects. The queue's name is
/// in wrangler.toml.
pub const USAGE_QUEUE: &str = claw_durable::events::USAGE_QUEUE_BINDING;
/// Durable Object namespace of the trending rankings (class `Trending`, one object `global`).
pub const TRENDING: &str = "TRENDING";
/// `true`: `GET /__platform/events` needs no token. Anything else: the analytics token.
pub const PLATFORM_EVENTS_PUBLIC: &str = "PLATFORM_EVENTS_PUBLIC";
/// Secret (at least 16 bytes): the salt of the caller and payer hashes in usage events.
/// Unset: derived from `PLATFORM_ADMIN_TOKEN` (logged loudly); neither: no events.
pub const USAGE_SALT: &str = "USAGE_SALT";
/// `false` turns usage events off, `build-only` makes each event and drops it (both for
/// measuring what recording costs, never for production). Default: on.
pub const USAGE_EVENTS_ENABLED: &str = "USAGE_EVENTS_ENABLED";
/// Local runtime only: `true` takes a call's subrequest count from the namespace
/// emulator's `x-wfp-emulator-subrequests` answer header. Never in production, where a
/// tenant could set that header itself; there the egress log lines (by `callId` = the
/// event id) are the record.
pub const SUBREQUESTS_FROM_EMULATOR: &str = "SUBREQUESTS_FROM_EMULATOR";
