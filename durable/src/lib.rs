//! 402claw's Durable Objects.
//!
//! Each object is a pure core over [`store::SqlStore`] (tested natively on in-memory SQLite
//! with the same SQL) plus a thin `object` module that exists only in the Worker build.

pub mod deploy;
pub mod events;
pub mod ledger;
pub mod limiter;
pub mod problem;
pub mod registry;
pub mod store;
pub mod tenant;
pub mod trending;

#[cfg(test)]
pub(crate) mod memsql;

#[cfg(target_arch = "wasm32")]
pub mod http;
#[cfg(target_arch = "wasm32")]
pub mod sql_do;
