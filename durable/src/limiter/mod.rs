//! The exact rate limiter: GCRA over [`SqlStore`], one Durable Object per key.
//!
//! A tenant's [`RateLimitPolicy`] has up to three parts, each enforced by GCRA
//! ([`gcra`] has the rule, the units and the proofs):
//!
//! - **per caller** (`perCaller` + `burst`): one object per (tenant, caller), named by
//!   [`identity::caller_object_name`]. An object is single-threaded and the check is one
//!   synchronous read and at most one write, so the decision is exact: in every half-open
//!   interval of `window_s` seconds a caller is admitted at most `limit + burst` units.
//! - **global** (`global`): sharded over [`shard::global_shard_count`] objects so that no
//!   single object carries the tenant's whole rate; see [`shard`] for the split and the
//!   exact accuracy bound.
//! - **burst**: extra units a caller may use at once above the steady rate (an idle caller
//!   is admitted `burst + 1` at the same instant, then one per `window_s / limit`).
//!
//! State is one TAT (theoretical arrival time) per key in the object's SQL storage, written
//! only when a request is admitted: eviction or restart loses nothing, and refused retries
//! never push the limit further out.

use serde::{Deserialize, Serialize};

use crate::problem::{Code, Problem};
use crate::store::{checked_int, SqlStore, SqlValue, StoreError};
use crate::tenant::RateLimitPolicy;

pub mod gcra;
pub mod headers;
pub mod identity;
pub mod shard;

#[cfg(target_arch = "wasm32")]
pub mod object;

#[cfg(test)]
mod tests;

pub use gcra::{decide, Decision, GcraPolicy, Outcome, Tat, MAX_NOW_MS};

/// One row per key: its TAT as `tat_ms + tat_frac / tat_den` ms since the epoch.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS gcra (
    key TEXT PRIMARY KEY,
    tat_ms INTEGER NOT NULL,
    tat_frac INTEGER NOT NULL,
    tat_den INTEGER NOT NULL,
    CHECK (tat_den >= 1 AND tat_frac >= 0 AND tat_frac < tat_den)
)";

/// Longest key accepted, in bytes (object names are well under this).
pub const MAX_KEY_BYTES: usize = 256;

/// How far behind the newest reading a clock may be and still never over-admit after a
/// prune. A row is pruned only when its TAT is older than `now - PRUNE_GRACE_MS`; for any
/// later reading within the grace such a row is equivalent to no row.
pub const PRUNE_GRACE_MS: i64 = 60_000;

/// When an object whose latest TAT is `latest_tat_ms` may next prune: just after the TAT
/// has fallen `PRUNE_GRACE_MS` behind.
pub fn cleanup_alarm_ms(latest_tat_ms: i64) -> i64 {
    latest_tat_ms.saturating_add(PRUNE_GRACE_MS + 1)
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum LimiterError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("{field}: {reason}")]
    InvalidPolicy { field: &'static str, reason: String },
    #[error("cost {cost} is outside 1 to {capacity} (burst + 1)")]
    InvalidCost { cost: u32, capacity: u32 },
    #[error("key must be 1 to {MAX_KEY_BYTES} bytes without control characters")]
    InvalidKey,
    #[error("clock reading {0} ms is outside 0 to {MAX_NOW_MS}")]
    ClockOutOfRange(i64),
    #[error("arithmetic out of range")]
    Overflow,
    #[error("stored state for key {key:?} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("request body is larger than {MAX_CHECK_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error("invalid request body: {reason}")]
    InvalidBody {
        field: Option<String>,
        reason: String,
    },
}

impl From<LimiterError> for Problem {
    fn from(e: LimiterError) -> Problem {
        match e {
            LimiterError::InvalidPolicy { field, reason } => Problem::invalid_field(field, reason),
            LimiterError::InvalidCost { .. } => Problem::new(Code::CostExceedsCapacity)
                .field("cost")
                .detail(e.to_string()),
            LimiterError::InvalidKey => Problem::invalid_field("key", e.to_string()),
            LimiterError::BodyTooLarge => Problem::new(Code::BodyTooLarge).detail(e.to_string()),
            LimiterError::InvalidBody { field, reason } => {
                let p = Problem::new(Code::InvalidBody).detail(reason);
                match field {
                    Some(f) => p.field(f),
                    None => p,
                }
            }
            LimiterError::Store(_)
            | LimiterError::ClockOutOfRange(_)
            | LimiterError::Overflow
            | LimiterError::Corrupt { .. } => Problem::internal(e.to_string()),
        }
    }
}

fn validate_key(key: &str) -> Result<(), LimiterError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(char::is_control) {
        return Err(LimiterError::InvalidKey);
    }
    Ok(())
}

/// The per-caller policy of a tenant, if it has one: `perCaller` with `burst` (default 0).
pub fn caller_policy(policy: &RateLimitPolicy) -> Result<Option<GcraPolicy>, LimiterError> {
    policy
        .per_caller
        .as_ref()
        .map(|rate| GcraPolicy::from_rate(rate, policy.burst.unwrap_or(0)))
        .transpose()
}

/// The limiter over one object's storage.
pub struct Limiter<'s, S: SqlStore> {
    store: &'s mut S,
}

impl<'s, S: SqlStore> Limiter<'s, S> {
    /// Opens the limiter, creating its table on first use.
    pub fn open(store: &'s mut S) -> Result<Self, LimiterError> {
        if !store.schema_known(SCHEMA) {
            store.exec(SCHEMA, &[])?;
            store.note_schema(SCHEMA);
        }
        Ok(Limiter { store })
    }

    /// The stored TAT of `key` (`None`: never admitted, or pruned).
    pub fn tat(&mut self, key: &str) -> Result<Option<Tat>, LimiterError> {
        let Some(row) = self.store.query_opt(
            "SELECT tat_ms, tat_frac, tat_den FROM gcra WHERE key = ?",
            &[key.into()],
        )?
        else {
            return Ok(None);
        };
        let corrupt = |reason: &str| LimiterError::Corrupt {
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        let frac = u32::try_from(row.int(1)?).map_err(|_| corrupt("tat_frac out of range"))?;
        let den = u32::try_from(row.int(2)?).map_err(|_| corrupt("tat_den out of range"))?;
        Tat::new(row.int(0)?, frac, den)
            .map(Some)
            .ok_or_else(|| corrupt("tat_frac must be below tat_den"))
    }

    /// Decides one request of `cost` units for `key` at `now_ms`, and persists the new TAT
    /// if (and only if) it is admitted.
    pub fn check(
        &mut self,
        key: &str,
        policy: &GcraPolicy,
        now_ms: i64,
        cost: u32,
    ) -> Result<Decision, LimiterError> {
        validate_key(key)?;
        let stored = self.tat(key)?;
        let outcome = decide(policy, stored, now_ms, cost)?;
        if let Some(tat) = outcome.new_tat {
            self.store.exec(
                "INSERT INTO gcra (key, tat_ms, tat_frac, tat_den) VALUES (?, ?, ?, ?)
                 ON CONFLICT (key) DO UPDATE SET
                   tat_ms = excluded.tat_ms,
                   tat_frac = excluded.tat_frac,
                   tat_den = excluded.tat_den",
                &[
                    key.into(),
                    checked_int(tat.ms())?,
                    SqlValue::from(tat.frac()),
                    SqlValue::from(tat.den()),
                ],
            )?;
        }
        Ok(outcome.decision)
    }

    /// Deletes every key whose TAT is before `before_ms` (such a key behaves exactly like
    /// an unused one at any reading `>= before_ms`; pass `now - PRUNE_GRACE_MS`). Returns
    /// the latest TAT (whole ms) still stored, `None` when the table is now empty.
    pub fn prune(&mut self, before_ms: i64) -> Result<Option<i64>, LimiterError> {
        // tat_ms < before  <=>  tat_ms + frac/den < before, since frac/den < 1.
        self.store.exec(
            "DELETE FROM gcra WHERE tat_ms < ?",
            &[checked_int(before_ms)?],
        )?;
        let row = self.store.query_one("SELECT max(tat_ms) FROM gcra", &[])?;
        Ok(row.opt_int(0)?)
    }
}

/// Largest `POST /check` body accepted, in bytes.
pub const MAX_CHECK_BODY_BYTES: usize = 1_024;

fn default_cost() -> u32 {
    1
}

/// The body of the limiter object's `POST /check`:
/// `{"key": "...", "limit": 100, "windowS": 60, "burst": 0, "cost": 1}` (`burst` defaults
/// to 0, `cost` to 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckRequest {
    pub key: String,
    pub limit: u32,
    pub window_s: u32,
    #[serde(default)]
    pub burst: u32,
    #[serde(default = "default_cost")]
    pub cost: u32,
}

impl CheckRequest {
    pub fn new(key: impl Into<String>, policy: &GcraPolicy, cost: u32) -> Self {
        CheckRequest {
            key: key.into(),
            limit: policy.limit(),
            window_s: policy.window_s(),
            burst: policy.burst(),
            cost,
        }
    }

    /// Parses and validates a body ([`LimiterError::BodyTooLarge`],
    /// [`LimiterError::InvalidBody`] naming the field, or a policy / key / cost error).
    pub fn parse(body: &[u8]) -> Result<(CheckRequest, GcraPolicy), LimiterError> {
        if body.len() > MAX_CHECK_BODY_BYTES {
            return Err(LimiterError::BodyTooLarge);
        }
        let de = &mut serde_json::Deserializer::from_slice(body);
        let req: CheckRequest = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            LimiterError::InvalidBody {
                field: (field != ".").then_some(field),
                reason: e.into_inner().to_string(),
            }
        })?;
        validate_key(&req.key)?;
        let policy = GcraPolicy::new(req.limit, req.window_s, req.burst)?;
        Ok((req, policy))
    }
}

/// The whole `POST /check`: parse, decide, persist. The object glue only adds the clock.
/// Every error maps to a problem+json with `Problem::from`.
pub fn handle_check<S: SqlStore>(
    store: &mut S,
    body: &[u8],
    now_ms: i64,
) -> Result<Decision, LimiterError> {
    let (req, policy) = CheckRequest::parse(body)?;
    Limiter::open(store)?.check(&req.key, &policy, now_ms, req.cost)
}
