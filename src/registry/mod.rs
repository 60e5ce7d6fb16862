//! The tenant registry, the dispatcher's side: configs cached in the isolate ([`cache`]),
//! the registry object's client (`edge`), and the tenant admin routes (`api`). The registry
//! object itself, and the config grammar, are `claw_durable::registry` and
//! `claw_durable::tenant`.

pub mod cache;
pub mod offer;

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod edge;
