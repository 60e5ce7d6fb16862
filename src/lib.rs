//! The 402claw dispatcher Worker.
//!
//! One room per concern, named with the same noun as its Durable Object in `claw_durable`
//! where one exists. Each room holds its pure rules (`mod.rs` and siblings, built and tested
//! natively) beside its thin Worker glue (`edge.rs`; `api.rs` for its platform API routes),
//! which is built only for wasm32.
//!
//! A tenant call flows one way (`call`): [`route`] -> registry (config) -> [`limiter`] ->
//! [`paywall`] ([`x402`], [`facilitator`], [`ledger`]) -> [`dispatch`] (or [`proxy`]) ->
//! [`usage`]. The platform API under `/__platform` has one route table ([`platform`]).
//! Agents find paid tenants through [`discovery`] (x402 Bazaar) and call them as MCP tools
//! through [`mcp`], which hands each tool call to the same tenant call.
//! [`egress`] is the same build deployed as the namespace's outbound Worker.

pub mod dashboard;
pub mod deploy;
pub mod discovery;
pub mod dispatch;
pub mod egress;
pub mod facilitator;
pub mod http;
pub mod ledger;
pub mod limiter;
pub mod mcp;
pub mod paywall;
pub mod platform;
pub mod proxy;
pub mod registry;
pub mod route;
pub mod usage;
pub mod x402;

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(target_arch = "wasm32")]
mod call;
#[cfg(target_arch = "wasm32")]
mod entry;

/// The Durable Object classes this Worker exports (wrangler.toml names them).
#[cfg(target_arch = "wasm32")]
pub use claw_durable::ledger::object::TenantLedger;
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
