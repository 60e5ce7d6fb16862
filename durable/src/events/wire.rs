//! Wire types of the events object: what an append reports, what the feed returns, the
//! object's configuration.

use serde::{Deserialize, Serialize};

use super::{Stage, UsageEvent};

/// An event with its ingest cursor, as the feed returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub seq: i64,
    #[serde(flatten)]
    pub event: UsageEvent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Inserted,
    /// Same id, same content: already stored (seq is the original's).
    Duplicate,
    /// Same id, different content: the first write stands (seq is the original's).
    Conflict,
    /// Older than retention: not stored.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendResult {
    pub id: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendReport {
    pub inserted: u32,
    pub duplicates: u32,
    pub conflicts: u32,
    pub expired: u32,
    /// One per submitted event, in order.
    pub results: Vec<AppendResult>,
    /// Whether a trending count changed (the object then schedules a rollup).
    #[serde(skip)]
    pub trending_changed: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub stage: Option<Stage>,
    /// Return events with a seq strictly greater than this.
    pub since: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// Pass as `since` to continue: the last seq returned, else the `since` given, else "0".
    /// Present on the last page too, so a reader can poll for new events.
    pub next_cursor: String,
    /// Whether more events matched than the page held.
    pub has_more: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub deleted: u32,
    pub more: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsConfig {
    pub retention_ms: i64,
}
