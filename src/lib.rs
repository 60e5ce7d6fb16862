//! The 402claw dispatcher Worker.
//!
//! A request flows one way: resolve the tenant ([`route`]), load its config (registry object,
//! cached by [`config_cache`]), then dispatch to the tenant's Worker in the namespace with
//! its plan's custom limits. Pure rules live in modules that build natively; the Worker glue
//! is in `edge`, built only for wasm32.

pub mod auth;
pub mod config_cache;
pub mod forward;
pub mod ledger_rules;
pub mod paywall_rules;
pub mod proxy;
pub mod ratelimit;
pub mod route;
pub mod usage;
pub mod x402;

#[cfg(target_arch = "wasm32")]
mod edge;

#[cfg(target_arch = "wasm32")]
pub use claw_durable::ledger::object::TenantLedger;
/// The Durable Object classes this Worker exports (wrangler.toml names them).
#[cfg(target_arch = "wasm32")]
pub use claw_durable::registry::object::TenantRegistry;

/// The rate limiter object (not `worker::RateLimiter`, the platform's own binding type).
#[cfg(target_arch = "wasm32")]
pub use claw_durable::limiter::object::RateLimiter;

/// The usage events object (one per tenant) and the trending object (one, `global`).
#[cfg(target_arch = "wasm32")]
pub use claw_durable::events::object::UsageEvents;
#[cfg(target_arch = "wasm32")]
pub use claw_durable::trending::object::Trending;
