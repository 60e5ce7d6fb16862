//! The glue every room shares: reading a stream with a hard bound ([`capped`], pure), a
//! route's query string ([`query`], pure), how often a request yields to I/O ([`turns`],
//! pure), and,
//! in the Worker build, building responses that never fail (`respond`), reading a platform
//! route's body (`body`), a deadline over any future (`deadline`), and requests to the
//! platform's own Durable Objects (`objects`).

pub mod capped;
pub mod query;
pub mod turns;

#[cfg(target_arch = "wasm32")]
pub mod body;
#[cfg(target_arch = "wasm32")]
pub mod deadline;
#[cfg(target_arch = "wasm32")]
pub mod objects;
#[cfg(target_arch = "wasm32")]
pub mod respond;
