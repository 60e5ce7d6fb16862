//! Trending: rankings of tenants over rolling windows (1h, 24h, 7d), from countable usage
//! only, without one hot object.
//!
//! # Shape
//! - Each tenant's `UsageEvents` object counts its own countable calls into fixed buckets
//!   ([`TenantTrend`]): same SQLite as its events, same atomic write as the event row, so a
//!   re-delivered event is never counted twice.
//! - An alarm in that object rolls the tenant up ([`TenantTrend::build_rollup`]): exact window
//!   totals as of `now`, plus the bucket summaries that changed since the last acknowledged
//!   rollup, posted to the one global `Trending` object ([`Trending::apply`]).
//! - The global object holds compact per-tenant rows only: 3 window totals and at most
//!   12 + 168 bucket summaries per tenant, nothing per payer. `top` is one indexed query.
//!   Rollup traffic is one small request per active tenant per [`ROLLUP_DELAY_MS`], plus one
//!   per bucket boundary while a tenant still has data in a window.
//!
//! # Windows and buckets
//! Fine buckets are 5 minutes (the 1h window is 12 of them), coarse buckets 1 hour (24h = 24,
//! 7d = 168). A window at `now` covers the bucket holding `now` and the ones before it
//! ([`window_range`]), so it spans between (length - one bucket) and its full length: it
//! moves in bucket steps. A bucket no window covers any more is expired ([`bucket_expired`])
//! and deleted.
//!
//! # Defences
//! - Only events the events core marks countable (settled paid calls; served calls of free
//!   tenants) and not self-dealing (payer = the tenant's own payTo) reach this module.
//! - One identity (payer hash; the caller hash for free calls) adds at most
//!   [`TrendPolicy::payer_cap`] calls to a window's ranked `calls`.
//! - Per-identity state is bounded: at most `max_payers_per_bucket` identities are tracked per
//!   bucket. Calls of identities past that bound still count in the bucket's usage (series
//!   `calls`, `revenueAtomic`) but never in ranked calls or distinct payers: past the bound a
//!   tenant's score stops growing. It under-counts, never over-counts, so flooding with new
//!   identities buys nothing the cap does not already allow.
//!
//! # Score
//! `score` = ranked calls = the sum over identities of min(cap, that identity's countable calls
//! in the window). Order: score descending, then distinct payers descending, then slug.
//! `revenueAtomic` is informative (every countable, non-self-dealing call, uncapped).

use serde::{Deserialize, Serialize};

use crate::problem::Problem;
use crate::store::{checked_int, Row, SqlStore, SqlValue, StoreError, MAX_SAFE_INTEGER};
use crate::tenant::{parse_atomic_amount, validate_slug};

#[cfg(target_arch = "wasm32")]
pub mod object;

// ---------------------------------------------------------------------------------------
// Window arithmetic (pure)
// ---------------------------------------------------------------------------------------

pub const FINE_MS: i64 = 5 * 60_000;
pub const COARSE_MS: i64 = 60 * 60_000;

/// How long a tenant object waits after a counted call before rolling up, so that one rollup
/// carries a burst of calls. Rankings lag behind calls by about this much.
pub const ROLLUP_DELAY_MS: i64 = 30_000;

/// How far a timestamp from another machine may run ahead of this one's clock.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60_000;

/// At most 12 + 1 fine and 168 + 1 coarse live buckets exist (one future bucket each, from
/// clock skew); a rollup carrying more is malformed.
pub const MAX_ROLLUP_BUCKETS: usize = 200;

pub const MAX_TOP: u32 = 100;
pub const DEFAULT_TOP: u32 = 10;

/// A bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grain {
    /// 5 minutes.
    Fine,
    /// 1 hour.
    Coarse,
}

impl Grain {
    pub const ALL: [Grain; 2] = [Grain::Fine, Grain::Coarse];

    pub const fn ms(self) -> i64 {
        match self {
            Grain::Fine => FINE_MS,
            Grain::Coarse => COARSE_MS,
        }
    }

    pub fn from_ms(ms: i64) -> Option<Grain> {
        Grain::ALL.into_iter().find(|g| g.ms() == ms)
    }

    /// The longest window counted in buckets of this grain: it decides when a bucket expires.
    pub const fn longest_window(self) -> Window {
        match self {
            Grain::Fine => Window::H1,
            Grain::Coarse => Window::D7,
        }
    }

    const fn index(self) -> usize {
        match self {
            Grain::Fine => 0,
            Grain::Coarse => 1,
        }
    }
}

/// A ranking window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Window {
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "24h")]
    H24,
    #[serde(rename = "7d")]
    D7,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::H1, Window::H24, Window::D7];

    pub const fn grain(self) -> Grain {
        match self {
            Window::H1 => Grain::Fine,
            Window::H24 | Window::D7 => Grain::Coarse,
        }
    }

    /// How many buckets of [`Window::grain`] the window covers.
    pub const fn buckets(self) -> i64 {
        match self {
            Window::H1 => 12,
            Window::H24 => 24,
            Window::D7 => 168,
        }
    }

    pub const fn len_ms(self) -> i64 {
        self.buckets() * self.grain().ms()
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Window::H1 => "1h",
            Window::H24 => "24h",
            Window::D7 => "7d",
        }
    }

    pub fn parse(s: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.as_str() == s)
    }
}

/// Start of the bucket of `grain` that holds `t_ms`. Buckets are aligned to the epoch, so
/// every object agrees on them.
pub fn bucket_start(t_ms: i64, grain: Grain) -> i64 {
    t_ms.saturating_sub(t_ms.rem_euclid(grain.ms()))
}

/// The first instant of the bucket after the one holding `t_ms`.
pub fn next_boundary(t_ms: i64, grain: Grain) -> i64 {
    bucket_start(t_ms, grain).saturating_add(grain.ms())
}

/// The bucket starts `window` covers at `now_ms`, both inclusive: the bucket holding `now_ms`
/// and the `buckets() - 1` before it.
pub fn window_range(window: Window, now_ms: i64) -> (i64, i64) {
    let g = window.grain();
    let last = bucket_start(now_ms, g);
    let first = last.saturating_sub((window.buckets() - 1).saturating_mul(g.ms()));
    (first, last)
}

/// Whether the bucket starting at `start_ms` counts in `window` at `now_ms`.
pub fn covers(window: Window, start_ms: i64, now_ms: i64) -> bool {
    let (first, last) = window_range(window, now_ms);
    (first..=last).contains(&start_ms)
}

/// The first bucket start of `grain` still kept at `now_ms`; older ones are expired.
pub fn expiry_cutoff(grain: Grain, now_ms: i64) -> i64 {
    window_range(grain.longest_window(), now_ms).0
}

/// A bucket is expired when no window counted in its grain covers it any more. Buckets ahead
/// of `now_ms` (clock skew) are not expired: they are counted once `now` reaches them.
pub fn bucket_expired(grain: Grain, start_ms: i64, now_ms: i64) -> bool {
    start_ms < expiry_cutoff(grain, now_ms)
}

/// A window total computed at `as_of_ms` has nothing left in the window at `now_ms`: every
/// bucket it covered, up to the one holding `as_of_ms`, has left the window.
pub fn snapshot_expired(window: Window, as_of_ms: i64, now_ms: i64) -> bool {
    bucket_start(as_of_ms, window.grain()) < window_range(window, now_ms).0
}

/// One identity's contribution to ranked calls.
pub fn capped(calls: u64, cap: u64) -> u64 {
    calls.min(cap)
}

// ---------------------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------------------

/// The anti-manipulation bounds. Code, not config: every object must agree on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendPolicy {
    /// Most calls one identity adds to a tenant's ranked calls in the 1h window.
    pub payer_cap_1h: u64,
    pub payer_cap_24h: u64,
    pub payer_cap_7d: u64,
    /// Identities tracked per tenant per bucket (per grain). Bounds the tenant object's
    /// per-payer rows to (12 + 1 + 168 + 1) x this.
    pub max_payers_per_bucket: u32,
}

impl Default for TrendPolicy {
    fn default() -> Self {
        TrendPolicy {
            payer_cap_1h: 60,
            payer_cap_24h: 600,
            payer_cap_7d: 2_000,
            max_payers_per_bucket: 1_000,
        }
    }
}

impl TrendPolicy {
    /// The cap in force for `window`; at least 1, so every tracked identity counts.
    pub fn payer_cap(&self, window: Window) -> u64 {
        let cap = match window {
            Window::H1 => self.payer_cap_1h,
            Window::H24 => self.payer_cap_24h,
            Window::D7 => self.payer_cap_7d,
        };
        cap.max(1)
    }
}

// ---------------------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------------------

/// One tenant's totals for one window, as of a rollup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowTotals {
    pub window: Window,
    /// Ranked calls (after per-identity caps).
    pub calls: u64,
    /// Distinct tracked identities.
    pub payers: u64,
    pub revenue_atomic: String,
}

/// One tenant's usage in one bucket (uncapped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSummary {
    pub grain_ms: i64,
    pub start_ms: i64,
    /// Countable, non-self-dealing calls, tracked identities or not.
    pub calls: u64,
    /// Distinct tracked identities in this bucket.
    pub payers: u64,
    pub revenue_atomic: String,
}

/// What a tenant object posts to the global object (`POST /rollup`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollup {
    pub tenant: String,
    /// The tenant object's clock when it computed `windows`.
    pub as_of_ms: i64,
    /// The ingest seq of the newest call counted; with `asOfMs` it orders rollups.
    pub seq: i64,
    /// Whether `buckets` is every live bucket (replace) or only the changed ones (merge).
    pub full: bool,
    /// Exactly one entry per window.
    pub windows: Vec<WindowTotals>,
    pub buckets: Vec<BucketSummary>,
}

/// The global object's answer to a rollup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// False when a newer rollup of this tenant was already applied (this one is ignored).
    pub applied: bool,
    /// The global object has no buckets of this tenant: send every bucket next time.
    pub need_full: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopEntry {
    pub tenant: String,
    pub calls: u64,
    pub payers: u64,
    pub revenue_atomic: String,
    pub score: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesPoint {
    pub start_ms: i64,
    pub calls: u64,
    pub payers: u64,
    pub revenue_atomic: String,
}

/// A tenant's usage over a window, one point per bucket (zeros included), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    pub tenant: String,
    pub window: Window,
    pub grain_ms: i64,
    /// When the tenant last rolled up; None if it never did (or its data all expired).
    pub as_of_ms: Option<i64>,
    /// The window's ranked totals from that rollup, if still live.
    pub totals: Option<WindowTotals>,
    pub buckets: Vec<SeriesPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub deleted: u32,
    /// The per-call bound was reached: call again.
    pub more: bool,
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrendError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0} overflowed")]
    Overflow(&'static str),
    #[error("stored trending state is unreadable: {0}")]
    Corrupt(String),
}

impl From<TrendError> for Problem {
    fn from(e: TrendError) -> Problem {
        match e {
            TrendError::Invalid { field, reason } => {
                Problem::new(400, "invalid_rollup", "A rollup is invalid")
                    .field(field)
                    .detail(reason)
            }
            TrendError::Overflow(what) => Problem::new(500, "counter_overflow", "Counter overflow")
                .detail(format!("{what} would overflow")),
            other => Problem::internal(other.to_string()),
        }
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> TrendError {
    TrendError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn sql_u64(v: u64) -> Result<SqlValue, StoreError> {
    let v = i64::try_from(v).map_err(|_| StoreError::IntegerOutOfRange(i64::MAX))?;
    checked_int(v)
}

fn row_u64(row: &Row, i: usize) -> Result<u64, TrendError> {
    let v = row.int(i)?;
    u64::try_from(v).map_err(|_| TrendError::Corrupt(format!("negative count {v}")))
}

fn stored_amount(s: &str) -> Result<u128, TrendError> {
    parse_atomic_amount(s).map_err(|e| TrendError::Corrupt(format!("revenue {s:?} {e}")))
}

fn add_amount(a: u128, b: u128) -> Result<u128, TrendError> {
    a.checked_add(b).ok_or(TrendError::Overflow("revenue"))
}

// ---------------------------------------------------------------------------------------
// Tenant side: buckets in the tenant's events object
// ---------------------------------------------------------------------------------------

/// The tenant object's trending tables. `trend_payers` holds at most `max_payers_per_bucket`
/// rows per bucket, and `trend_buckets.payers` always equals that bucket's row count.
pub const TENANT_SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS trend_buckets (
        grain_ms INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        calls INTEGER NOT NULL,
        payers INTEGER NOT NULL,
        revenue TEXT NOT NULL,
        updated_seq INTEGER NOT NULL,
        PRIMARY KEY (grain_ms, start_ms)
    )",
    "CREATE TABLE IF NOT EXISTS trend_payers (
        grain_ms INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        payer TEXT NOT NULL,
        calls INTEGER NOT NULL,
        PRIMARY KEY (grain_ms, start_ms, payer)
    )",
    "CREATE TABLE IF NOT EXISTS trend_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_seq INTEGER NOT NULL,
        acked_seq INTEGER NOT NULL,
        full_pending INTEGER NOT NULL,
        last_rollup_ms INTEGER,
        live_fine INTEGER NOT NULL,
        live_coarse INTEGER NOT NULL
    )",
    "INSERT OR IGNORE INTO trend_meta
        (id, last_seq, acked_seq, full_pending, last_rollup_ms, live_fine, live_coarse)
     VALUES (1, 0, 0, 1, NULL, 0, 0)",
];

/// One countable, non-self-dealing call, as trending sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountedCall<'a> {
    pub time_ms: i64,
    /// The payer hash, or the caller hash when there is no payer (free tenants).
    pub identity: &'a str,
    pub amount_atomic: u128,
}

/// A rollup built but not yet acknowledged by the global object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRollup {
    pub rollup: Rollup,
    /// Per grain: whether a live bucket existed, i.e. whether the next boundary can change a
    /// window total without any new call.
    live: [bool; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TrendMeta {
    last_seq: i64,
    acked_seq: i64,
    full_pending: bool,
    last_rollup_ms: Option<i64>,
    live: [bool; 2],
}

impl TrendMeta {
    fn dirty(&self) -> bool {
        self.last_seq > self.acked_seq || (self.full_pending && self.last_seq > 0)
    }
}

pub struct TenantTrend<'s, S: SqlStore> {
    store: &'s mut S,
}

impl<'s, S: SqlStore> TenantTrend<'s, S> {
    /// Opens the tenant's trending tables, creating them on first use.
    pub fn open(store: &'s mut S) -> Result<Self, TrendError> {
        for stmt in TENANT_SCHEMA {
            store.exec(stmt, &[])?;
        }
        Ok(TenantTrend { store })
    }

    /// Wraps a store whose tables [`TenantTrend::open`] already created.
    pub(crate) fn attach(store: &'s mut S) -> Self {
        TenantTrend { store }
    }

    fn meta(&mut self) -> Result<TrendMeta, TrendError> {
        let row = self.store.query_one(
            "SELECT last_seq, acked_seq, full_pending, last_rollup_ms, live_fine, live_coarse
             FROM trend_meta WHERE id = 1",
            &[],
        )?;
        Ok(TrendMeta {
            last_seq: row.int(0)?,
            acked_seq: row.int(1)?,
            full_pending: row.int(2)? != 0,
            last_rollup_ms: row.opt_int(3)?,
            live: [row.int(4)? != 0, row.int(5)? != 0],
        })
    }

    /// Counts one call, whose event got ingest seq `seq`. Run it in the same
    /// [`SqlStore::atomically`] as the event's insert: then a call counts exactly once.
    pub fn record(
        &mut self,
        call: &CountedCall<'_>,
        seq: i64,
        now_ms: i64,
        policy: &TrendPolicy,
    ) -> Result<(), TrendError> {
        for grain in Grain::ALL {
            let start = bucket_start(call.time_ms, grain);
            if bucket_expired(grain, start, now_ms) {
                continue;
            }
            let key = [SqlValue::from(grain.ms()), checked_int(start)?];
            let bucket = self.store.query_opt(
                "SELECT calls, payers, revenue FROM trend_buckets
                 WHERE grain_ms = ? AND start_ms = ?",
                &key,
            )?;
            let (calls, payers, revenue) = match &bucket {
                Some(r) => (row_u64(r, 0)?, row_u64(r, 1)?, stored_amount(r.text(2)?)?),
                None => (0, 0, 0),
            };
            let mut payer_key = key.to_vec();
            payer_key.push(call.identity.into());
            let known = self.store.query_opt(
                "SELECT calls FROM trend_payers WHERE grain_ms = ? AND start_ms = ? AND payer = ?",
                &payer_key,
            )?;
            let mut new_payers = payers;
            if known.is_some() {
                self.store.exec(
                    "UPDATE trend_payers SET calls = calls + 1
                     WHERE grain_ms = ? AND start_ms = ? AND payer = ?",
                    &payer_key,
                )?;
            } else if payers < u64::from(policy.max_payers_per_bucket) {
                self.store.exec(
                    "INSERT INTO trend_payers (grain_ms, start_ms, payer, calls)
                     VALUES (?, ?, ?, 1)",
                    &payer_key,
                )?;
                new_payers = payers + 1;
            }
            // Past the bound the identity is untracked: usage only, no ranked calls.
            let new_calls = calls
                .checked_add(1)
                .filter(|c| *c <= MAX_SAFE_INTEGER as u64)
                .ok_or(TrendError::Overflow("bucket calls"))?;
            let new_revenue = add_amount(revenue, call.amount_atomic)?;
            self.store.exec(
                "INSERT INTO trend_buckets (grain_ms, start_ms, calls, payers, revenue, updated_seq)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (grain_ms, start_ms) DO UPDATE SET
                   calls = excluded.calls, payers = excluded.payers,
                   revenue = excluded.revenue, updated_seq = excluded.updated_seq",
                &[
                    key[0].clone(),
                    key[1].clone(),
                    sql_u64(new_calls)?,
                    sql_u64(new_payers)?,
                    new_revenue.to_string().into(),
                    checked_int(seq)?,
                ],
            )?;
        }
        self.store.exec(
            "UPDATE trend_meta SET last_seq = max(last_seq, ?) WHERE id = 1",
            &[checked_int(seq)?],
        )?;
        Ok(())
    }

    /// Ranked calls and distinct identities of `window` at `now_ms`.
    fn window_counts(
        &mut self,
        window: Window,
        now_ms: i64,
        cap: u64,
    ) -> Result<(u64, u64), TrendError> {
        let (first, last) = window_range(window, now_ms);
        let row = self.store.query_one(
            "SELECT count(*), coalesce(sum(min(c, ?)), 0) FROM (
                SELECT sum(calls) AS c FROM trend_payers
                WHERE grain_ms = ? AND start_ms >= ? AND start_ms <= ?
                GROUP BY payer)",
            &[
                sql_u64(cap)?,
                window.grain().ms().into(),
                checked_int(first)?,
                checked_int(last)?,
            ],
        )?;
        Ok((row_u64(&row, 1)?, row_u64(&row, 0)?))
    }

    fn window_revenue(&mut self, window: Window, now_ms: i64) -> Result<u128, TrendError> {
        let (first, last) = window_range(window, now_ms);
        let rows = self.store.exec(
            "SELECT revenue FROM trend_buckets
             WHERE grain_ms = ? AND start_ms >= ? AND start_ms <= ?",
            &[
                window.grain().ms().into(),
                checked_int(first)?,
                checked_int(last)?,
            ],
        )?;
        rows.iter()
            .try_fold(0u128, |acc, r| add_amount(acc, stored_amount(r.text(0)?)?))
    }

    /// Builds the rollup for `tenant` at `now_ms`, without changing anything: exact window
    /// totals, plus every live bucket (when a full rollup is pending) or the ones changed
    /// since the last acknowledged rollup.
    pub fn build_rollup(
        &mut self,
        tenant: &str,
        now_ms: i64,
        policy: &TrendPolicy,
    ) -> Result<PendingRollup, TrendError> {
        let meta = self.meta()?;
        let mut windows = Vec::with_capacity(Window::ALL.len());
        for window in Window::ALL {
            let (calls, payers) = self.window_counts(window, now_ms, policy.payer_cap(window))?;
            let revenue = self.window_revenue(window, now_ms)?;
            debug_assert!(
                payers <= calls,
                "every tracked identity adds at least one call"
            );
            windows.push(WindowTotals {
                window,
                calls,
                payers,
                revenue_atomic: revenue.to_string(),
            });
        }
        let mut buckets = Vec::new();
        let mut live = [false; 2];
        for grain in Grain::ALL {
            let cutoff = expiry_cutoff(grain, now_ms);
            let rows = self.store.exec(
                "SELECT start_ms, calls, payers, revenue, updated_seq FROM trend_buckets
                 WHERE grain_ms = ? AND start_ms >= ? ORDER BY start_ms",
                &[grain.ms().into(), checked_int(cutoff)?],
            )?;
            live[grain.index()] = !rows.is_empty();
            for r in &rows {
                if meta.full_pending || r.int(4)? > meta.acked_seq {
                    buckets.push(BucketSummary {
                        grain_ms: grain.ms(),
                        start_ms: r.int(0)?,
                        calls: row_u64(r, 1)?,
                        payers: row_u64(r, 2)?,
                        revenue_atomic: r.text(3)?.to_owned(),
                    });
                }
            }
        }
        if buckets.len() > MAX_ROLLUP_BUCKETS {
            // Impossible while expired buckets are skipped above; refuse rather than send
            // something the global object would reject forever.
            return Err(TrendError::Corrupt(format!(
                "{} live buckets exceed the bound {MAX_ROLLUP_BUCKETS}",
                buckets.len()
            )));
        }
        Ok(PendingRollup {
            rollup: Rollup {
                tenant: tenant.to_owned(),
                as_of_ms: now_ms,
                seq: meta.last_seq,
                full: meta.full_pending,
                windows,
                buckets,
            },
            live,
        })
    }

    /// Records that the global object accepted `pending` (whether or not it applied it: an
    /// ignored rollup was superseded by a newer one). `need_full` asks for every bucket next
    /// time.
    pub fn ack(&mut self, pending: &PendingRollup, need_full: bool) -> Result<(), TrendError> {
        let r = &pending.rollup;
        let full_pending = need_full || (!r.full && self.meta()?.full_pending);
        self.store.exec(
            "UPDATE trend_meta SET acked_seq = max(acked_seq, ?), full_pending = ?,
               last_rollup_ms = ?, live_fine = ?, live_coarse = ?
             WHERE id = 1",
            &[
                checked_int(r.seq)?,
                full_pending.into(),
                checked_int(r.as_of_ms)?,
                pending.live[0].into(),
                pending.live[1].into(),
            ],
        )?;
        Ok(())
    }

    /// Whether a rollup should be sent at `now_ms`: counted calls not yet acknowledged, a full
    /// rollup requested, or a bucket boundary passed since the last rollup while that grain
    /// had live buckets (a window total may have changed without any new call).
    pub fn rollup_due(&mut self, now_ms: i64) -> Result<bool, TrendError> {
        let meta = self.meta()?;
        if meta.dirty() {
            return Ok(true);
        }
        let Some(last) = meta.last_rollup_ms else {
            return Ok(false);
        };
        Ok(Grain::ALL
            .into_iter()
            .any(|g| meta.live[g.index()] && bucket_start(now_ms, g) > bucket_start(last, g)))
    }

    /// When the object should next wake up to roll up; None when nothing can change.
    pub fn next_wake(&mut self, now_ms: i64) -> Result<Option<i64>, TrendError> {
        let meta = self.meta()?;
        if meta.dirty() {
            return Ok(Some(now_ms.saturating_add(ROLLUP_DELAY_MS)));
        }
        let Some(last) = meta.last_rollup_ms else {
            return Ok(None);
        };
        Ok(Grain::ALL
            .into_iter()
            .filter(|g| meta.live[g.index()])
            .map(|g| next_boundary(last, g).max(now_ms))
            .min())
    }

    /// Deletes up to `max_buckets` expired buckets with their identity rows.
    pub fn expire(&mut self, now_ms: i64, max_buckets: u32) -> Result<SweepReport, TrendError> {
        let fine = expiry_cutoff(Grain::Fine, now_ms);
        let coarse = expiry_cutoff(Grain::Coarse, now_ms);
        self.store.atomically(&mut |s| {
            let rows = s.exec(
                "SELECT grain_ms, start_ms FROM trend_buckets
                 WHERE (grain_ms = ? AND start_ms < ?) OR (grain_ms = ? AND start_ms < ?)
                 LIMIT ?",
                &[
                    FINE_MS.into(),
                    checked_int(fine)?,
                    COARSE_MS.into(),
                    checked_int(coarse)?,
                    max_buckets.into(),
                ],
            )?;
            for r in &rows {
                let key = [SqlValue::Integer(r.int(0)?), SqlValue::Integer(r.int(1)?)];
                s.exec(
                    "DELETE FROM trend_payers WHERE grain_ms = ? AND start_ms = ?",
                    &key,
                )?;
                s.exec(
                    "DELETE FROM trend_buckets WHERE grain_ms = ? AND start_ms = ?",
                    &key,
                )?;
            }
            let deleted = u32::try_from(rows.len()).unwrap_or(u32::MAX);
            Ok::<_, TrendError>(SweepReport {
                deleted,
                more: deleted >= max_buckets,
            })
        })
    }
}

// ---------------------------------------------------------------------------------------
// Global side: the `Trending` object
// ---------------------------------------------------------------------------------------

pub const GLOBAL_SCHEMA: [&str; 6] = [
    "CREATE TABLE IF NOT EXISTS rollup_tenants (
        tenant TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        as_of_ms INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS rollup_windows (
        tenant TEXT NOT NULL,
        win TEXT NOT NULL,
        calls INTEGER NOT NULL,
        payers INTEGER NOT NULL,
        revenue TEXT NOT NULL,
        as_of_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant, win)
    )",
    "CREATE INDEX IF NOT EXISTS rollup_windows_rank
        ON rollup_windows (win, calls DESC, payers DESC, tenant)",
    "CREATE TABLE IF NOT EXISTS rollup_buckets (
        tenant TEXT NOT NULL,
        grain_ms INTEGER NOT NULL,
        start_ms INTEGER NOT NULL,
        calls INTEGER NOT NULL,
        payers INTEGER NOT NULL,
        revenue TEXT NOT NULL,
        PRIMARY KEY (tenant, grain_ms, start_ms)
    )",
    "CREATE INDEX IF NOT EXISTS rollup_buckets_age ON rollup_buckets (grain_ms, start_ms)",
    "CREATE INDEX IF NOT EXISTS rollup_tenants_age ON rollup_tenants (as_of_ms)",
];

/// Checks a rollup before anything is written.
pub fn validate_rollup(r: &Rollup, now_ms: i64) -> Result<(), TrendError> {
    validate_slug(&r.tenant).map_err(|e| invalid("tenant", e))?;
    if !(0..=MAX_SAFE_INTEGER).contains(&r.as_of_ms) {
        return Err(invalid("asOfMs", "out of range"));
    }
    if r.as_of_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(invalid("asOfMs", "is in the future"));
    }
    if !(0..=MAX_SAFE_INTEGER).contains(&r.seq) {
        return Err(invalid("seq", "out of range"));
    }
    let count_ok = |v: u64| v <= MAX_SAFE_INTEGER as u64;
    let mut seen = Vec::with_capacity(Window::ALL.len());
    for (i, w) in r.windows.iter().enumerate() {
        let field = |f: &str| format!("windows[{i}].{f}");
        if seen.contains(&w.window) {
            return Err(invalid(field("window"), "appears twice"));
        }
        seen.push(w.window);
        if !count_ok(w.calls) || !count_ok(w.payers) {
            return Err(invalid(field("calls"), "out of range"));
        }
        if w.payers > w.calls {
            return Err(invalid(field("payers"), "exceeds calls"));
        }
        parse_atomic_amount(&w.revenue_atomic).map_err(|e| invalid(field("revenueAtomic"), e))?;
    }
    if seen.len() != Window::ALL.len() {
        return Err(invalid("windows", "must hold each of 1h, 24h and 7d once"));
    }
    if r.buckets.len() > MAX_ROLLUP_BUCKETS {
        return Err(invalid(
            "buckets",
            format!("at most {MAX_ROLLUP_BUCKETS} buckets"),
        ));
    }
    let mut keys = std::collections::BTreeSet::new();
    for (i, b) in r.buckets.iter().enumerate() {
        let field = |f: &str| format!("buckets[{i}].{f}");
        let grain = Grain::from_ms(b.grain_ms)
            .ok_or_else(|| invalid(field("grainMs"), "must be 300000 or 3600000"))?;
        if !(0..=MAX_SAFE_INTEGER).contains(&b.start_ms)
            || bucket_start(b.start_ms, grain) != b.start_ms
        {
            return Err(invalid(field("startMs"), "must be a bucket start"));
        }
        if b.start_ms > r.as_of_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(invalid(field("startMs"), "is in the future"));
        }
        if !keys.insert((b.grain_ms, b.start_ms)) {
            return Err(invalid(field("startMs"), "appears twice"));
        }
        if !count_ok(b.calls) || !count_ok(b.payers) {
            return Err(invalid(field("calls"), "out of range"));
        }
        if b.payers > b.calls {
            return Err(invalid(field("payers"), "exceeds calls"));
        }
        parse_atomic_amount(&b.revenue_atomic).map_err(|e| invalid(field("revenueAtomic"), e))?;
    }
    Ok(())
}

pub struct Trending<'s, S: SqlStore> {
    store: &'s mut S,
}

impl<'s, S: SqlStore> Trending<'s, S> {
    pub fn open(store: &'s mut S) -> Result<Self, TrendError> {
        for stmt in GLOBAL_SCHEMA {
            store.exec(stmt, &[])?;
        }
        Ok(Trending { store })
    }

    /// Applies a tenant's rollup. Idempotent, and insensitive to order: a rollup older than
    /// the one applied (by `(seq, asOfMs)`) is ignored.
    pub fn apply(&mut self, r: &Rollup, now_ms: i64) -> Result<Applied, TrendError> {
        validate_rollup(r, now_ms)?;
        let tenant = SqlValue::from(r.tenant.as_str());
        self.store.atomically(&mut |s| {
            let stored = s.query_opt(
                "SELECT seq, as_of_ms FROM rollup_tenants WHERE tenant = ?",
                std::slice::from_ref(&tenant),
            )?;
            let stored = match stored {
                Some(row) => Some((row.int(0)?, row.int(1)?)),
                None => None,
            };
            let stale = stored.is_some_and(|prev| (r.seq, r.as_of_ms) < prev)
                || snapshot_expired(Window::D7, r.as_of_ms, now_ms);
            if stale {
                return Ok(Applied {
                    applied: false,
                    need_full: false,
                });
            }
            s.exec(
                "INSERT INTO rollup_tenants (tenant, seq, as_of_ms) VALUES (?, ?, ?)
                 ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq, as_of_ms = excluded.as_of_ms",
                &[tenant.clone(), checked_int(r.seq)?, checked_int(r.as_of_ms)?],
            )?;
            for w in &r.windows {
                s.exec(
                    "INSERT INTO rollup_windows (tenant, win, calls, payers, revenue, as_of_ms)
                     VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT (tenant, win) DO UPDATE SET calls = excluded.calls,
                       payers = excluded.payers, revenue = excluded.revenue,
                       as_of_ms = excluded.as_of_ms",
                    &[
                        tenant.clone(),
                        w.window.as_str().into(),
                        sql_u64(w.calls)?,
                        sql_u64(w.payers)?,
                        w.revenue_atomic.as_str().into(),
                        checked_int(r.as_of_ms)?,
                    ],
                )?;
            }
            if r.full {
                s.exec(
                    "DELETE FROM rollup_buckets WHERE tenant = ?",
                    std::slice::from_ref(&tenant),
                )?;
            }
            for b in &r.buckets {
                let Some(grain) = Grain::from_ms(b.grain_ms) else {
                    continue; // validated above
                };
                if bucket_expired(grain, b.start_ms, now_ms) {
                    continue;
                }
                s.exec(
                    "INSERT INTO rollup_buckets (tenant, grain_ms, start_ms, calls, payers, revenue)
                     VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT (tenant, grain_ms, start_ms) DO UPDATE SET
                       calls = excluded.calls, payers = excluded.payers, revenue = excluded.revenue",
                    &[
                        tenant.clone(),
                        b.grain_ms.into(),
                        checked_int(b.start_ms)?,
                        sql_u64(b.calls)?,
                        sql_u64(b.payers)?,
                        b.revenue_atomic.as_str().into(),
                    ],
                )?;
            }
            for grain in Grain::ALL {
                s.exec(
                    "DELETE FROM rollup_buckets WHERE tenant = ? AND grain_ms = ? AND start_ms < ?",
                    &[
                        tenant.clone(),
                        grain.ms().into(),
                        checked_int(expiry_cutoff(grain, now_ms))?,
                    ],
                )?;
            }
            Ok::<_, TrendError>(Applied {
                applied: true,
                need_full: stored.is_none() && !r.full,
            })
        })
    }

    /// The top `limit` (clamped to 1..=100) tenants of `window` at `now_ms`, by score, then
    /// distinct payers, then slug. Tenants whose last rollup has nothing left in the window
    /// are left out.
    pub fn top(
        &mut self,
        window: Window,
        limit: u32,
        now_ms: i64,
    ) -> Result<Vec<TopEntry>, TrendError> {
        let limit = limit.clamp(1, MAX_TOP);
        let (first, _) = window_range(window, now_ms);
        // as_of_ms >= first <=> the bucket holding as_of_ms is still in the window.
        let rows = self.store.exec(
            "SELECT tenant, calls, payers, revenue FROM rollup_windows
             WHERE win = ? AND calls > 0 AND as_of_ms >= ?
             ORDER BY calls DESC, payers DESC, tenant ASC LIMIT ?",
            &[window.as_str().into(), checked_int(first)?, limit.into()],
        )?;
        rows.iter()
            .map(|r| {
                let calls = row_u64(r, 1)?;
                Ok(TopEntry {
                    tenant: r.text(0)?.to_owned(),
                    calls,
                    payers: row_u64(r, 2)?,
                    revenue_atomic: r.text(3)?.to_owned(),
                    score: calls,
                })
            })
            .collect()
    }

    /// A tenant's usage over `window` at `now_ms`: one point per covered bucket, oldest first.
    pub fn series(
        &mut self,
        tenant: &str,
        window: Window,
        now_ms: i64,
    ) -> Result<Series, TrendError> {
        let grain = window.grain();
        let (first, last) = window_range(window, now_ms);
        let as_of_ms = self
            .store
            .query_opt(
                "SELECT as_of_ms FROM rollup_tenants WHERE tenant = ?",
                &[tenant.into()],
            )?
            .map(|r| r.int(0))
            .transpose()?;
        let totals = self
            .store
            .query_opt(
                "SELECT calls, payers, revenue, as_of_ms FROM rollup_windows
                 WHERE tenant = ? AND win = ?",
                &[tenant.into(), window.as_str().into()],
            )?
            .map(|r| -> Result<Option<WindowTotals>, TrendError> {
                if snapshot_expired(window, r.int(3)?, now_ms) {
                    return Ok(None);
                }
                Ok(Some(WindowTotals {
                    window,
                    calls: row_u64(&r, 0)?,
                    payers: row_u64(&r, 1)?,
                    revenue_atomic: r.text(2)?.to_owned(),
                }))
            })
            .transpose()?
            .flatten();
        let rows = self.store.exec(
            "SELECT start_ms, calls, payers, revenue FROM rollup_buckets
             WHERE tenant = ? AND grain_ms = ? AND start_ms >= ? AND start_ms <= ?
             ORDER BY start_ms",
            &[
                tenant.into(),
                grain.ms().into(),
                checked_int(first)?,
                checked_int(last)?,
            ],
        )?;
        let mut stored = rows.iter().peekable();
        let mut buckets = Vec::with_capacity(usize::try_from(window.buckets()).unwrap_or(0));
        let mut start = first;
        while start <= last {
            let point = match stored.peek() {
                Some(r) if r.int(0)? == start => {
                    let p = SeriesPoint {
                        start_ms: start,
                        calls: row_u64(r, 1)?,
                        payers: row_u64(r, 2)?,
                        revenue_atomic: r.text(3)?.to_owned(),
                    };
                    stored.next();
                    p
                }
                _ => SeriesPoint {
                    start_ms: start,
                    calls: 0,
                    payers: 0,
                    revenue_atomic: "0".into(),
                },
            };
            buckets.push(point);
            start = start.saturating_add(grain.ms());
        }
        if stored.next().is_some() {
            return Err(TrendError::Corrupt("a stored bucket is not aligned".into()));
        }
        Ok(Series {
            tenant: tenant.to_owned(),
            window,
            grain_ms: grain.ms(),
            as_of_ms,
            totals,
            buckets,
        })
    }

    /// Deletes up to `max_rows` expired rows: buckets no window covers, window totals with
    /// nothing left, tenants whose every window has expired.
    pub fn sweep(&mut self, now_ms: i64, max_rows: u32) -> Result<SweepReport, TrendError> {
        let mut budget = max_rows;
        let mut deleted = 0u32;
        let mut steps: Vec<(&str, Vec<SqlValue>)> = Vec::new();
        for grain in Grain::ALL {
            steps.push((
                "DELETE FROM rollup_buckets WHERE rowid IN (SELECT rowid FROM rollup_buckets
                   WHERE grain_ms = ? AND start_ms < ? LIMIT ?) RETURNING 1",
                vec![
                    grain.ms().into(),
                    checked_int(expiry_cutoff(grain, now_ms))?,
                ],
            ));
        }
        for window in Window::ALL {
            steps.push((
                "DELETE FROM rollup_windows WHERE rowid IN (SELECT rowid FROM rollup_windows
                   WHERE win = ? AND as_of_ms < ? LIMIT ?) RETURNING 1",
                vec![
                    window.as_str().into(),
                    checked_int(window_range(window, now_ms).0)?,
                ],
            ));
        }
        steps.push((
            "DELETE FROM rollup_tenants WHERE rowid IN (SELECT rowid FROM rollup_tenants
               WHERE as_of_ms < ? LIMIT ?) RETURNING 1",
            vec![checked_int(window_range(Window::D7, now_ms).0)?],
        ));
        for (sql, mut params) in steps {
            if budget == 0 {
                return Ok(SweepReport {
                    deleted,
                    more: true,
                });
            }
            params.push(budget.into());
            let n = u32::try_from(self.store.exec(sql, &params)?.len()).unwrap_or(u32::MAX);
            deleted = deleted.saturating_add(n);
            budget = budget.saturating_sub(n);
        }
        Ok(SweepReport {
            deleted,
            more: budget == 0,
        })
    }

    /// Whether any tenant row is left (the object keeps a sweep alarm while there is).
    pub fn is_empty(&mut self) -> Result<bool, TrendError> {
        Ok(self
            .store
            .query_opt("SELECT 1 FROM rollup_tenants LIMIT 1", &[])?
            .is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::fixtures::{event, settled};
    use crate::events::{EventStore, Stage, UsageEvent};
    use crate::memsql::MemSql;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// A multiple of an hour, so fine and coarse buckets both start here.
    const T0: i64 = 1_700_002_800_000;
    const HOUR: i64 = COARSE_MS;
    const DAY: i64 = 24 * HOUR;

    #[test]
    fn t0_is_aligned() {
        assert_eq!(T0 % COARSE_MS, 0);
    }

    #[test]
    fn bucket_edges() {
        for g in Grain::ALL {
            let ms = g.ms();
            assert_eq!(bucket_start(T0, g), T0);
            assert_eq!(bucket_start(T0 + ms - 1, g), T0);
            assert_eq!(bucket_start(T0 + ms, g), T0 + ms);
            assert_eq!(bucket_start(T0 - 1, g), T0 - ms);
            assert_eq!(next_boundary(T0, g), T0 + ms);
            assert_eq!(next_boundary(T0 + ms - 1, g), T0 + ms);
            assert_eq!(bucket_start(0, g), 0);
            assert_eq!(bucket_start(-1, g), -ms);
            assert_eq!(Grain::from_ms(ms), Some(g));
            // Extreme inputs saturate instead of overflowing.
            let _ = bucket_start(i64::MIN, g);
            let _ = next_boundary(i64::MAX, g);
            let _ = window_range(Window::D7, i64::MIN);
        }
        assert_eq!(Grain::from_ms(60_000), None);
    }

    #[test]
    fn windows_cover_exactly_their_buckets() {
        let lens = [HOUR, DAY, 7 * DAY];
        for (w, len) in Window::ALL.into_iter().zip(lens) {
            assert_eq!(w.len_ms(), len);
            assert_eq!(Window::parse(w.as_str()), Some(w));
            assert_eq!(
                serde_json::to_string(&w).unwrap(),
                format!("\"{}\"", w.as_str())
            );
            let g = w.grain().ms();
            for now in [T0, T0 + 1, T0 + g - 1] {
                let (first, last) = window_range(w, now);
                assert_eq!(last, T0);
                assert_eq!((last - first) / g + 1, w.buckets());
                assert!(covers(w, first, now) && covers(w, last, now));
                assert!(!covers(w, first - g, now), "the bucket before the window");
                assert!(!covers(w, last + g, now), "the future bucket");
            }
            // A call at T0 stays in the window until the window has moved a full length.
            assert!(covers(w, T0, T0 + len - 1));
            assert!(!covers(w, T0, T0 + len));
        }
        assert_eq!(Window::parse("2h"), None);
    }

    #[test]
    fn expiry_follows_the_longest_window_of_the_grain() {
        for g in Grain::ALL {
            let len = g.longest_window().len_ms();
            assert!(!bucket_expired(g, T0, T0 + len - 1));
            assert!(bucket_expired(g, T0, T0 + len));
            assert_eq!(expiry_cutoff(g, T0 + len), T0 + g.ms());
            assert!(
                !bucket_expired(g, T0 + 3 * g.ms(), T0),
                "future buckets are kept"
            );
        }
        // A snapshot lives while the bucket holding its as_of is in the window.
        assert!(!snapshot_expired(Window::H1, T0 + 5, T0 + HOUR - 1));
        assert!(snapshot_expired(Window::H1, T0 + 5, T0 + HOUR));
        assert!(!snapshot_expired(Window::H1, T0 + FINE_MS, T0 + HOUR));
        assert!(!snapshot_expired(Window::D7, T0, T0 + 7 * DAY - 1));
        assert!(snapshot_expired(Window::D7, T0, T0 + 7 * DAY));
    }

    #[test]
    fn caps_bound_one_identity() {
        assert_eq!(capped(5, 3), 3);
        assert_eq!(capped(2, 3), 2);
        assert_eq!(capped(0, 3), 0);
        let p = TrendPolicy {
            payer_cap_1h: 0,
            ..TrendPolicy::default()
        };
        assert_eq!(
            p.payer_cap(Window::H1),
            1,
            "a zero cap still counts each identity"
        );
        assert_eq!(p.payer_cap(Window::D7), TrendPolicy::default().payer_cap_7d);
    }

    fn small_caps() -> TrendPolicy {
        TrendPolicy {
            payer_cap_1h: 2,
            payer_cap_24h: 3,
            payer_cap_7d: 5,
            max_payers_per_bucket: 1_000,
        }
    }

    fn ingest(db: &mut MemSql, events: &[UsageEvent], now: i64, policy: &TrendPolicy) {
        EventStore::open(db)
            .unwrap()
            .append(events, now, policy)
            .unwrap();
    }

    fn totals(r: &Rollup, w: Window) -> (u64, u64, String) {
        let t = r.windows.iter().find(|t| t.window == w).unwrap();
        (t.calls, t.payers, t.revenue_atomic.clone())
    }

    fn count(db: &mut MemSql, sql: &str) -> i64 {
        db.query_one(sql, &[]).unwrap().int(0).unwrap()
    }

    #[test]
    fn rollup_caps_calls_and_counts_distinct_payers() {
        let policy = small_caps();
        let mut db = MemSql::new();
        let mut evs: Vec<_> = (0..4)
            .map(|i| settled(&format!("p1-{i}"), "demo", T0 + i, 1, 10))
            .collect();
        evs.push(settled("p2", "demo", T0 + 9, 2, 7));
        // Never counted: self-dealing, a challenge, a rate limit, a failed settlement.
        evs.push(event(
            "self",
            "demo",
            T0,
            Stage::Settled,
            false,
            3,
            Some(3),
            1_000,
            true,
        ));
        evs.push(event(
            "c",
            "demo",
            T0,
            Stage::Challenged,
            false,
            4,
            None,
            10,
            false,
        ));
        evs.push(event(
            "r",
            "demo",
            T0,
            Stage::RateLimited,
            false,
            4,
            None,
            10,
            false,
        ));
        evs.push(event(
            "f",
            "demo",
            T0,
            Stage::SettlementFailed,
            false,
            4,
            Some(4),
            10,
            false,
        ));
        ingest(&mut db, &evs, T0 + 10, &policy);
        let r = TenantTrend::open(&mut db)
            .unwrap()
            .build_rollup("demo", T0 + 10, &policy)
            .unwrap()
            .rollup;
        assert_eq!(totals(&r, Window::H1), (2 + 1, 2, "47".into()));
        assert_eq!(totals(&r, Window::H24), (3 + 1, 2, "47".into()));
        assert_eq!(totals(&r, Window::D7), (4 + 1, 2, "47".into()));
        assert!(r.full, "the first rollup carries every bucket");
        assert_eq!(r.seq, 5);
        let fine = BucketSummary {
            grain_ms: FINE_MS,
            start_ms: T0,
            calls: 5,
            payers: 2,
            revenue_atomic: "47".into(),
        };
        let coarse = BucketSummary {
            grain_ms: COARSE_MS,
            ..fine.clone()
        };
        assert_eq!(r.buckets, vec![fine, coarse]);
        validate_rollup(&r, T0 + 10).unwrap();
    }

    #[test]
    fn identities_past_the_bound_count_as_usage_only() {
        let policy = TrendPolicy {
            max_payers_per_bucket: 2,
            ..TrendPolicy::default()
        };
        let mut db = MemSql::new();
        let evs = [
            settled("a", "demo", T0, 1, 1),
            settled("b", "demo", T0, 2, 1),
            settled("c", "demo", T0, 3, 1),
            settled("c2", "demo", T0 + 1, 3, 1),
            settled("a2", "demo", T0 + 2, 1, 1),
            // Payer 3 is tracked in the next fine bucket (but not in the same coarse one).
            settled("c3", "demo", T0 + FINE_MS, 3, 1),
        ];
        ingest(&mut db, &evs, T0 + FINE_MS, &policy);
        let r = TenantTrend::open(&mut db)
            .unwrap()
            .build_rollup("demo", T0 + FINE_MS, &policy)
            .unwrap()
            .rollup;
        assert_eq!(totals(&r, Window::H1), (4, 3, "6".into()));
        assert_eq!(totals(&r, Window::H24), (3, 2, "6".into()));
        let first_fine = r
            .buckets
            .iter()
            .find(|b| b.grain_ms == FINE_MS && b.start_ms == T0);
        assert_eq!(first_fine.map(|b| (b.calls, b.payers)), Some((5, 2)));
        // The invariant: a bucket's payers equals its identity rows, never above the bound.
        let mismatched = count(
            &mut db,
            "SELECT count(*) FROM trend_buckets b WHERE payers <>
               (SELECT count(*) FROM trend_payers p
                WHERE p.grain_ms = b.grain_ms AND p.start_ms = b.start_ms)",
        );
        assert_eq!(mismatched, 0);
        assert!(
            count(&mut db, "SELECT max(payers) FROM trend_buckets") <= 2,
            "bounded per bucket"
        );
    }

    /// Runs the tenant object's alarm until it has nothing left to do, delivering every
    /// rollup; returns how many rollups it sent.
    fn run_alarms_until_idle(
        db: &mut MemSql,
        global: &mut MemSql,
        mut now: i64,
        policy: &TrendPolicy,
    ) -> (usize, i64) {
        let mut sent = 0;
        for _ in 0..1_000 {
            let mut trend = TenantTrend::open(db).unwrap();
            while trend.expire(now, 8).unwrap().more {}
            if trend.rollup_due(now).unwrap() {
                let p = trend.build_rollup("demo", now, policy).unwrap();
                let applied = Trending::open(global)
                    .unwrap()
                    .apply(&p.rollup, now)
                    .unwrap();
                TenantTrend::open(db)
                    .unwrap()
                    .ack(&p, applied.need_full)
                    .unwrap();
                sent += 1;
            }
            match TenantTrend::open(db).unwrap().next_wake(now).unwrap() {
                Some(t) => {
                    assert!(t >= now, "wakes never go back in time");
                    now = t;
                }
                None => return (sent, now),
            }
        }
        panic!("the schedule did not terminate");
    }

    #[test]
    fn a_tenant_rolls_up_until_its_windows_are_empty_then_sleeps() {
        let policy = TrendPolicy::default();
        let mut db = MemSql::new();
        let mut global = MemSql::new();
        let now = T0 + 1_000;
        ingest(&mut db, &[settled("a", "demo", now, 1, 5)], now, &policy);
        let mut trend = TenantTrend::open(&mut db).unwrap();
        assert!(trend.rollup_due(now).unwrap());
        assert_eq!(trend.next_wake(now).unwrap(), Some(now + ROLLUP_DELAY_MS));
        let (sent, end) =
            run_alarms_until_idle(&mut db, &mut global, now + ROLLUP_DELAY_MS, &policy);
        // One for the call, one per fine boundary while the 1h window holds it, one per
        // coarse boundary while the 7d window does (the ones that coincide merge).
        assert!(sent <= 1 + 12 + 168, "sent {sent}");
        assert!(sent > 168, "sent {sent}");
        assert_eq!(
            end,
            T0 + 7 * DAY,
            "the last rollup is when the call leaves 7d"
        );
        let mut g = Trending::open(&mut global).unwrap();
        for w in Window::ALL {
            assert!(g.top(w, 10, end).unwrap().is_empty(), "{w:?}");
        }
        assert_eq!(count(&mut db, "SELECT count(*) FROM trend_buckets"), 0);
        assert_eq!(count(&mut db, "SELECT count(*) FROM trend_payers"), 0);
        // Over that week the call was ranked in each window exactly while the window held it.
    }

    #[test]
    fn the_1h_ranking_drops_a_call_at_the_boundary() {
        let policy = TrendPolicy::default();
        let mut db = MemSql::new();
        let mut global = MemSql::new();
        ingest(
            &mut db,
            &[settled("a", "demo", T0 + 10, 1, 5)],
            T0 + 10,
            &policy,
        );
        run_alarms_until_idle_before(&mut db, &mut global, T0 + 10, T0 + HOUR - 1, &policy);
        let top = Trending::open(&mut global)
            .unwrap()
            .top(Window::H1, 10, T0 + HOUR - 1)
            .unwrap();
        assert_eq!(top.len(), 1);
        run_alarms_until_idle_before(&mut db, &mut global, T0 + HOUR - 1, T0 + HOUR, &policy);
        let mut g = Trending::open(&mut global).unwrap();
        assert!(g.top(Window::H1, 10, T0 + HOUR).unwrap().is_empty());
        assert_eq!(g.top(Window::H24, 10, T0 + HOUR).unwrap().len(), 1);
    }

    /// Runs due alarms from `from` up to and including `until`.
    fn run_alarms_until_idle_before(
        db: &mut MemSql,
        global: &mut MemSql,
        from: i64,
        until: i64,
        policy: &TrendPolicy,
    ) {
        let mut now = from;
        for _ in 0..1_000 {
            let mut trend = TenantTrend::open(db).unwrap();
            trend.expire(now, 1_000).unwrap();
            if trend.rollup_due(now).unwrap() {
                let p = trend.build_rollup("demo", now, policy).unwrap();
                let applied = Trending::open(global)
                    .unwrap()
                    .apply(&p.rollup, now)
                    .unwrap();
                TenantTrend::open(db)
                    .unwrap()
                    .ack(&p, applied.need_full)
                    .unwrap();
            }
            match TenantTrend::open(db).unwrap().next_wake(now).unwrap() {
                Some(t) if t <= until && t > now => now = t,
                Some(t) if t <= until => now += 1,
                _ => return,
            }
        }
        panic!("the schedule did not settle");
    }

    #[test]
    fn a_global_object_that_lost_a_tenant_gets_every_bucket_back() {
        let policy = TrendPolicy::default();
        let mut db = MemSql::new();
        let mut global = MemSql::new();
        let evs: Vec<_> = (0..5)
            .map(|h| settled(&format!("e{h}"), "demo", T0 + h * HOUR, 1, 3))
            .collect();
        for e in &evs {
            ingest(&mut db, std::slice::from_ref(e), e.time_ms, &policy);
        }
        let now = T0 + 4 * HOUR + 10;
        run_alarms_until_idle_before(&mut db, &mut global, now, now, &policy);
        let before = Trending::open(&mut global)
            .unwrap()
            .series("demo", Window::H24, now)
            .unwrap();
        assert_eq!(before.buckets.iter().map(|p| p.calls).sum::<u64>(), 5);
        // The global object starts over (rebuilt, or a new instance): the tenant's next
        // rollup is partial, the answer asks for a full one, which restores every bucket.
        let mut fresh = MemSql::new();
        let later = T0 + 5 * HOUR;
        let mut trend = TenantTrend::open(&mut db).unwrap();
        assert!(
            trend.rollup_due(later).unwrap(),
            "a boundary passed with live buckets"
        );
        let p = trend.build_rollup("demo", later, &policy).unwrap();
        assert!(!p.rollup.full && p.rollup.buckets.is_empty());
        let a = Trending::open(&mut fresh)
            .unwrap()
            .apply(&p.rollup, later)
            .unwrap();
        assert!(a.need_full);
        TenantTrend::open(&mut db)
            .unwrap()
            .ack(&p, a.need_full)
            .unwrap();
        let mut trend = TenantTrend::open(&mut db).unwrap();
        assert!(trend.rollup_due(later).unwrap());
        let p = trend.build_rollup("demo", later, &policy).unwrap();
        assert!(p.rollup.full);
        let a = Trending::open(&mut fresh)
            .unwrap()
            .apply(&p.rollup, later)
            .unwrap();
        assert_eq!(
            a,
            Applied {
                applied: true,
                need_full: false
            }
        );
        TenantTrend::open(&mut db)
            .unwrap()
            .ack(&p, a.need_full)
            .unwrap();
        assert!(!TenantTrend::open(&mut db)
            .unwrap()
            .rollup_due(later)
            .unwrap());
        let after = Trending::open(&mut fresh)
            .unwrap()
            .series("demo", Window::H24, later)
            .unwrap();
        let before_at_later = Trending::open(&mut global)
            .unwrap()
            .series("demo", Window::H24, later)
            .unwrap();
        assert_eq!(after.buckets, before_at_later.buckets);
    }

    #[test]
    fn calls_older_than_every_window_leave_no_trace() {
        let policy = TrendPolicy::default();
        let mut db = MemSql::new();
        let late = T0 + 7 * DAY;
        ingest(&mut db, &[settled("old", "demo", T0, 1, 3)], late, &policy);
        assert_eq!(count(&mut db, "SELECT count(*) FROM trend_buckets"), 0);
        assert_eq!(count(&mut db, "SELECT count(*) FROM trend_payers"), 0);
        // Within 7d but past 1h: only the coarse bucket is kept.
        ingest(
            &mut db,
            &[settled("mid", "demo", T0 + 6 * DAY, 1, 3)],
            late,
            &policy,
        );
        assert_eq!(
            count(
                &mut db,
                "SELECT count(*) FROM trend_buckets WHERE grain_ms = 3600000"
            ),
            1
        );
        assert_eq!(
            count(
                &mut db,
                "SELECT count(*) FROM trend_buckets WHERE grain_ms = 300000"
            ),
            0
        );
    }

    fn rollup(tenant: &str, seq: i64, as_of: i64, calls: [u64; 3]) -> Rollup {
        Rollup {
            tenant: tenant.into(),
            as_of_ms: as_of,
            seq,
            full: true,
            windows: Window::ALL
                .into_iter()
                .zip(calls)
                .map(|(window, calls)| WindowTotals {
                    window,
                    calls,
                    payers: calls.min(1),
                    revenue_atomic: (calls * 10).to_string(),
                })
                .collect(),
            buckets: vec![BucketSummary {
                grain_ms: FINE_MS,
                start_ms: bucket_start(as_of, Grain::Fine),
                calls: calls[0],
                payers: calls[0].min(1),
                revenue_atomic: (calls[0] * 10).to_string(),
            }],
        }
    }

    #[test]
    fn apply_is_idempotent_and_ignores_older_rollups() {
        let mut db = MemSql::new();
        let mut g = Trending::open(&mut db).unwrap();
        let r1 = rollup("alpha", 1, T0, [1, 1, 1]);
        let r2 = rollup("alpha", 2, T0 + 10, [2, 2, 2]);
        let yes = Applied {
            applied: true,
            need_full: false,
        };
        let no = Applied {
            applied: false,
            need_full: false,
        };
        assert_eq!(g.apply(&r1, T0).unwrap(), yes);
        assert_eq!(g.apply(&r2, T0 + 10).unwrap(), yes);
        assert_eq!(g.apply(&r1, T0 + 20).unwrap(), no, "older seq");
        let mut same_seq_older = r2.clone();
        same_seq_older.as_of_ms = T0 + 5;
        assert_eq!(
            g.apply(&same_seq_older, T0 + 20).unwrap(),
            no,
            "older as_of"
        );
        assert_eq!(
            g.apply(&r2, T0 + 20).unwrap(),
            yes,
            "a re-delivery changes nothing"
        );
        let top = g.top(Window::H1, 10, T0 + 20).unwrap();
        assert_eq!(top.iter().map(|e| e.calls).collect::<Vec<_>>(), vec![2]);
        // A rollup with nothing live is stale whatever its order.
        let ancient = rollup("bravo", 9, T0 - 8 * DAY, [0, 0, 1]);
        assert_eq!(g.apply(&ancient, T0).unwrap(), no);
    }

    #[test]
    fn a_partial_rollup_for_an_unknown_tenant_asks_for_a_full_one() {
        let mut db = MemSql::new();
        let mut g = Trending::open(&mut db).unwrap();
        let mut partial = rollup("alpha", 3, T0, [1, 1, 1]);
        partial.full = false;
        let a = g.apply(&partial, T0).unwrap();
        assert_eq!(
            a,
            Applied {
                applied: true,
                need_full: true
            }
        );
        let a = g.apply(&partial, T0).unwrap();
        assert_eq!(
            a,
            Applied {
                applied: true,
                need_full: false
            },
            "known now"
        );
        // A full rollup replaces buckets; a partial one merges.
        let mut full = rollup("alpha", 4, T0 + FINE_MS, [3, 3, 3]);
        full.buckets[0].start_ms = T0 + FINE_MS;
        g.apply(&full, T0 + FINE_MS).unwrap();
        let s = g.series("alpha", Window::H1, T0 + FINE_MS).unwrap();
        let nonzero: Vec<_> = s
            .buckets
            .iter()
            .filter(|p| p.calls > 0)
            .map(|p| p.start_ms)
            .collect();
        assert_eq!(nonzero, vec![T0 + FINE_MS]);
        let mut merge = rollup("alpha", 5, T0 + FINE_MS, [3, 3, 3]);
        merge.full = false;
        merge.buckets[0].start_ms = T0;
        g.apply(&merge, T0 + FINE_MS).unwrap();
        let s = g.series("alpha", Window::H1, T0 + FINE_MS).unwrap();
        let nonzero: Vec<_> = s
            .buckets
            .iter()
            .filter(|p| p.calls > 0)
            .map(|p| p.start_ms)
            .collect();
        assert_eq!(nonzero, vec![T0, T0 + FINE_MS]);
    }

    #[test]
    fn invalid_rollups_are_refused_with_the_field() {
        type Mutation = fn(&mut Rollup);
        let cases: Vec<(&str, Mutation)> = vec![
            ("tenant", |r| r.tenant = "No".into()),
            ("asOfMs", |r| r.as_of_ms = T0 + MAX_CLOCK_SKEW_MS + 1),
            ("asOfMs", |r| r.as_of_ms = -1),
            ("seq", |r| r.seq = -1),
            ("windows", |r| {
                r.windows.pop();
            }),
            ("windows[1].window", |r| r.windows[1].window = Window::H1),
            ("windows[0].payers", |r| {
                r.windows[0].payers = r.windows[0].calls + 1
            }),
            ("windows[0].calls", |r| r.windows[0].calls = u64::MAX),
            ("windows[2].revenueAtomic", |r| {
                r.windows[2].revenue_atomic = "-1".into()
            }),
            ("buckets[0].grainMs", |r| r.buckets[0].grain_ms = 1),
            ("buckets[0].startMs", |r| r.buckets[0].start_ms += 1),
            ("buckets[0].startMs", |r| {
                r.buckets[0].start_ms = T0 + 2 * HOUR
            }),
            ("buckets[1].startMs", |r| {
                let b = r.buckets[0].clone();
                r.buckets.push(b)
            }),
            ("buckets[0].payers", |r| {
                r.buckets[0].payers = r.buckets[0].calls + 1
            }),
            ("buckets[0].revenueAtomic", |r| {
                r.buckets[0].revenue_atomic = "0x1".into()
            }),
            ("buckets", |r| {
                let b = r.buckets[0].clone();
                r.buckets = (0..=MAX_ROLLUP_BUCKETS as i64)
                    .map(|i| BucketSummary {
                        start_ms: T0 - i * FINE_MS,
                        ..b.clone()
                    })
                    .collect();
            }),
        ];
        let mut db = MemSql::new();
        let mut g = Trending::open(&mut db).unwrap();
        for (field, mutate) in cases {
            let mut r = rollup("alpha", 1, T0, [2, 2, 2]);
            mutate(&mut r);
            let err = g.apply(&r, T0).unwrap_err();
            let p = Problem::from(err);
            assert_eq!((p.status, &*p.code), (400, "invalid_rollup"));
            assert_eq!(p.field.as_deref(), Some(field));
        }
        assert!(g.is_empty().unwrap(), "nothing was written");
    }

    #[test]
    fn top_orders_by_score_then_payers_then_slug() {
        let mut db = MemSql::new();
        let mut g = Trending::open(&mut db).unwrap();
        let mut with = |tenant: &str, calls: u64, payers: u64| {
            let mut r = rollup(tenant, 1, T0, [calls, calls, calls]);
            for w in &mut r.windows {
                w.payers = payers;
            }
            r.buckets.clear();
            g.apply(&r, T0).unwrap();
        };
        with("delta", 5, 1);
        with("alpha", 5, 2);
        with("charlie", 5, 2);
        with("bravo", 9, 1);
        with("echo", 0, 0);
        let top = g.top(Window::H24, 10, T0).unwrap();
        let order: Vec<_> = top.iter().map(|e| (e.tenant.as_str(), e.score)).collect();
        assert_eq!(
            order,
            vec![("bravo", 9), ("alpha", 5), ("charlie", 5), ("delta", 5)],
            "zero-call tenants are not ranked"
        );
        assert!(top.iter().all(|e| e.score == e.calls));
        assert_eq!(g.top(Window::H24, 2, T0).unwrap().len(), 2);
        assert_eq!(
            g.top(Window::H24, 0, T0).unwrap().len(),
            1,
            "limit clamps to 1"
        );
        // Without new rollups, snapshots leave each window once their bucket does.
        assert_eq!(g.top(Window::H1, 10, T0 + HOUR - 1).unwrap().len(), 4);
        assert!(g.top(Window::H1, 10, T0 + HOUR).unwrap().is_empty());
        assert_eq!(g.top(Window::D7, 10, T0 + HOUR).unwrap().len(), 4);
    }

    #[test]
    fn series_has_one_point_per_bucket() {
        let mut db = MemSql::new();
        let mut g = Trending::open(&mut db).unwrap();
        let now = T0 + 3 * FINE_MS + 7;
        let r = rollup("alpha", 1, now, [4, 4, 4]);
        g.apply(&r, now).unwrap();
        for w in Window::ALL {
            let s = g.series("alpha", w, now).unwrap();
            assert_eq!(s.buckets.len() as i64, w.buckets());
            assert_eq!(s.grain_ms, w.grain().ms());
            assert_eq!(s.as_of_ms, Some(now));
            assert_eq!(s.totals.as_ref().map(|t| t.calls), Some(4));
            let starts: Vec<_> = s.buckets.iter().map(|p| p.start_ms).collect();
            assert!(starts.windows(2).all(|p| p[1] - p[0] == w.grain().ms()));
            assert_eq!(starts.last().copied(), Some(bucket_start(now, w.grain())));
        }
        let s = g.series("alpha", Window::H1, now).unwrap();
        assert_eq!(s.buckets.last().map(|p| p.calls), Some(4));
        assert_eq!(s.buckets.iter().map(|p| p.calls).sum::<u64>(), 4);
        let later = now + HOUR;
        let s = g.series("alpha", Window::H1, later).unwrap();
        assert!(s.totals.is_none() && s.buckets.iter().all(|p| p.calls == 0));
        let none = g.series("nobody", Window::H24, now).unwrap();
        assert_eq!((none.as_of_ms, none.totals), (None, None));
    }

    #[test]
    fn sweep_deletes_expired_rows_in_bounded_steps() {
        let mut db = MemSql::new();
        let mut g = Trending::open(&mut db).unwrap();
        for (i, t) in ["alpha", "bravo", "charlie"].into_iter().enumerate() {
            g.apply(&rollup(t, 1, T0 + i as i64, [1, 1, 1]), T0 + 10)
                .unwrap();
        }
        assert_eq!(
            g.sweep(T0 + 10, 100).unwrap(),
            SweepReport {
                deleted: 0,
                more: false
            }
        );
        // After an hour the fine buckets and 1h totals are gone; the rest stays.
        let r = g.sweep(T0 + HOUR, 100).unwrap();
        assert_eq!(
            r,
            SweepReport {
                deleted: 6,
                more: false
            }
        );
        assert_eq!(g.top(Window::D7, 10, T0 + HOUR).unwrap().len(), 3);
        let end = T0 + 7 * DAY;
        let mut total = 0;
        loop {
            let r = g.sweep(end, 4).unwrap();
            assert!(r.deleted <= 4);
            total += r.deleted;
            if !r.more {
                break;
            }
        }
        assert_eq!(total, 3 * 2 + 3, "24h and 7d totals, then the tenants");
        assert!(g.is_empty().unwrap());
        assert_eq!(count(&mut db, "SELECT count(*) FROM rollup_windows"), 0);
        assert_eq!(count(&mut db, "SELECT count(*) FROM rollup_buckets"), 0);
    }

    // --- Simulation: tenant objects + global object vs an exact count ---------------------

    const TENANTS: [(&str, bool); 4] = [
        ("alpha", false),
        ("bravo", false),
        ("charlie", false),
        ("delta", true),
    ];

    /// What happens to one rollup on its way to the global object.
    #[derive(Debug, Clone, Copy)]
    enum Fate {
        Delivered,
        AckLost,
        Lost,
        Delayed,
    }

    fn fate() -> impl Strategy<Value = Fate> {
        prop_oneof![
            4 => Just(Fate::Delivered),
            1 => Just(Fate::AckLost),
            1 => Just(Fate::Lost),
            1 => Just(Fate::Delayed),
        ]
    }

    struct Sim {
        tenants: Vec<MemSql>,
        global: MemSql,
        policy: TrendPolicy,
        delayed: Vec<Rollup>,
    }

    impl Sim {
        fn new(policy: TrendPolicy) -> Self {
            Sim {
                tenants: TENANTS.iter().map(|_| MemSql::new()).collect(),
                global: MemSql::new(),
                policy,
                delayed: Vec::new(),
            }
        }

        fn ingest(&mut self, batch: &[UsageEvent], now: i64) {
            for (i, (slug, _)) in TENANTS.iter().enumerate() {
                let mine: Vec<_> = batch
                    .iter()
                    .filter(|e| e.tenant == *slug)
                    .cloned()
                    .collect();
                if !mine.is_empty() {
                    let db = &mut self.tenants[i];
                    let r = EventStore::open(db)
                        .unwrap()
                        .append(&mine, now, &self.policy)
                        .unwrap();
                    assert_eq!(r.conflicts, 0);
                }
            }
        }

        /// One alarm of tenant `i`; returns whether a rollup was built.
        fn alarm(&mut self, i: usize, now: i64, fate: Fate) -> bool {
            let slug = TENANTS[i].0;
            let db = &mut self.tenants[i];
            let mut trend = TenantTrend::open(db).unwrap();
            trend.expire(now, 1_000).unwrap();
            if !trend.rollup_due(now).unwrap() {
                return false;
            }
            let p = trend.build_rollup(slug, now, &self.policy).unwrap();
            let mut g = Trending::open(&mut self.global).unwrap();
            match fate {
                Fate::Delivered => {
                    let a = g.apply(&p.rollup, now).unwrap();
                    TenantTrend::open(db).unwrap().ack(&p, a.need_full).unwrap();
                }
                Fate::AckLost => {
                    g.apply(&p.rollup, now).unwrap();
                }
                Fate::Lost => {}
                Fate::Delayed => self.delayed.push(p.rollup),
            }
            true
        }

        /// Every tenant rolls up reliably until nothing is due; then the delayed rollups
        /// finally arrive (and must change nothing).
        fn settle(&mut self, now: i64) {
            for i in 0..TENANTS.len() {
                let mut n = 0;
                while self.alarm(i, now, Fate::Delivered) {
                    n += 1;
                    assert!(n < 3, "one reliable rollup brings a tenant up to date");
                }
            }
            let mut g = Trending::open(&mut self.global).unwrap();
            for r in self.delayed.drain(..) {
                let a = g.apply(&r, now).unwrap();
                assert!(
                    !a.applied || a.need_full || r.as_of_ms == now,
                    "a delayed rollup was applied"
                );
            }
        }

        fn top(&mut self, w: Window, now: i64) -> Vec<TopEntry> {
            Trending::open(&mut self.global)
                .unwrap()
                .top(w, MAX_TOP, now)
                .unwrap()
        }

        fn series(&mut self, tenant: &str, w: Window, now: i64) -> Vec<SeriesPoint> {
            Trending::open(&mut self.global)
                .unwrap()
                .series(tenant, w, now)
                .unwrap()
                .buckets
        }
    }

    /// The definition of a counted call, written out independently of the code under test.
    fn model_counts(e: &UsageEvent) -> bool {
        let countable = match e.stage {
            Stage::Settled => e.payment_required,
            Stage::Served => !e.payment_required,
            _ => false,
        };
        countable && !e.self_dealing
    }

    fn amount(e: &UsageEvent) -> u128 {
        e.amount_atomic.as_deref().map_or(0, |a| a.parse().unwrap())
    }

    /// The ranking, counted directly from the events.
    fn exact_top(
        events: &[UsageEvent],
        w: Window,
        now: i64,
        policy: &TrendPolicy,
    ) -> Vec<TopEntry> {
        let mut per: BTreeMap<&str, (BTreeMap<&str, u64>, u128)> = BTreeMap::new();
        for e in events {
            if model_counts(e) && covers(w, bucket_start(e.time_ms, w.grain()), now) {
                let t = per.entry(e.tenant.as_str()).or_default();
                *t.0.entry(e.trend_identity()).or_default() += 1;
                t.1 += amount(e);
            }
        }
        let cap = policy.payer_cap(w);
        let mut out: Vec<TopEntry> = per
            .into_iter()
            .map(|(tenant, (ids, revenue))| {
                let calls = ids.values().map(|n| capped(*n, cap)).sum();
                TopEntry {
                    tenant: tenant.into(),
                    calls,
                    payers: ids.len() as u64,
                    revenue_atomic: revenue.to_string(),
                    score: calls,
                }
            })
            .filter(|e| e.calls > 0)
            .collect();
        out.sort_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then(b.payers.cmp(&a.payers))
                .then(a.tenant.cmp(&b.tenant))
        });
        out
    }

    fn exact_series(events: &[UsageEvent], tenant: &str, w: Window, now: i64) -> Vec<SeriesPoint> {
        let g = w.grain();
        let (first, last) = window_range(w, now);
        let mut points = Vec::new();
        let mut start = first;
        while start <= last {
            let inb: Vec<_> = events
                .iter()
                .filter(|e| e.tenant == tenant && model_counts(e))
                .filter(|e| bucket_start(e.time_ms, g) == start)
                .collect();
            points.push(SeriesPoint {
                start_ms: start,
                calls: inb.len() as u64,
                payers: inb
                    .iter()
                    .map(|e| e.trend_identity())
                    .collect::<BTreeSet<_>>()
                    .len() as u64,
                revenue_atomic: inb.iter().map(|e| amount(e)).sum::<u128>().to_string(),
            });
            start += g.ms();
        }
        points
    }

    /// (tenant, time offset, arrival delay, payer, kind, amount, self-dealing)
    type Spec = (usize, i64, i64, u32, u8, u128, bool);

    fn spec() -> impl Strategy<Value = Spec> {
        (
            0..TENANTS.len(),
            0..9 * DAY,
            prop_oneof![3 => Just(0i64), 1 => 0..2 * HOUR],
            0u32..6,
            0u8..10,
            1u128..1_000,
            proptest::bool::weighted(0.1),
        )
    }

    /// Builds the event of a spec. `countable_only` turns every spec into a countable,
    /// non-self-dealing call; otherwise kinds 0..=5 are countable calls and the rest are
    /// challenges, rate limits and failures.
    fn build(i: usize, s: &Spec, base: i64, countable_only: bool) -> (i64, UsageEvent) {
        let (t, off, delay, payer, kind, amt, selfish) = *s;
        let (slug, free) = TENANTS[t];
        let time = base + off;
        let kind = if countable_only { kind % 6 } else { kind };
        let id = format!("e{i}");
        let e = if free {
            let stage = match kind {
                0..=5 => Stage::Served,
                6 | 7 => Stage::RateLimited,
                _ => Stage::Error,
            };
            event(&id, slug, time, stage, true, payer, None, 0, false)
        } else {
            let stage = match kind {
                0..=5 => Stage::Settled,
                6 => Stage::Challenged,
                7 => Stage::RateLimited,
                8 => Stage::VerifyFailed,
                _ => Stage::SettlementFailed,
            };
            let payer_id =
                matches!(stage, Stage::Settled | Stage::SettlementFailed).then_some(payer);
            event(
                &id,
                slug,
                time,
                stage,
                false,
                payer + 100,
                payer_id,
                amt,
                selfish && !countable_only,
            )
        };
        (time + delay, e)
    }

    /// Delivers events in arrival order, in chunks, running alarms with the given fates in
    /// between (with duplicate deliveries), then settles at `end`.
    fn run(
        sim: &mut Sim,
        mut arrivals: Vec<(i64, UsageEvent)>,
        plan: &[(usize, Fate, bool)],
        end_extra: i64,
    ) -> i64 {
        arrivals.sort_by_key(|(at, e)| (*at, e.id.clone()));
        let mut now = T0;
        let mut rest = arrivals.as_slice();
        let mut step = 0;
        while !rest.is_empty() {
            let (size, fate, dup) =
                plan.get(step % plan.len().max(1))
                    .copied()
                    .unwrap_or((5, Fate::Delivered, false));
            step += 1;
            let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
            rest = tail;
            now = now.max(chunk.iter().map(|(at, _)| *at).max().unwrap_or(now));
            let batch: Vec<_> = chunk.iter().map(|(_, e)| e.clone()).collect();
            sim.ingest(&batch, now);
            if dup {
                sim.ingest(&batch, now);
            }
            for i in 0..TENANTS.len() {
                sim.alarm(i, now, fate);
            }
        }
        let end = now + end_extra;
        sim.settle(end);
        end
    }

    fn check_exact(sim: &mut Sim, events: &[UsageEvent], end: i64) -> Result<(), TestCaseError> {
        let policy = sim.policy;
        for w in Window::ALL {
            prop_assert_eq!(
                sim.top(w, end),
                exact_top(events, w, end, &policy),
                "{:?}",
                w
            );
            for (slug, _) in TENANTS {
                prop_assert_eq!(sim.series(slug, w, end), exact_series(events, slug, w, end));
            }
        }
        Ok(())
    }

    fn big_caps() -> TrendPolicy {
        TrendPolicy {
            payer_cap_1h: 1_000_000,
            payer_cap_24h: 1_000_000,
            payer_cap_7d: 1_000_000,
            max_payers_per_bucket: 1_000,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Under the caps, rolled-up rankings and series equal a plain count of the countable
        /// calls, whatever the arrival order, duplicates and lost, repeated or late rollups.
        #[test]
        fn rollups_equal_an_exact_count_under_caps(
            specs in proptest::collection::vec(spec(), 0..80),
            plan in proptest::collection::vec((1usize..12, fate(), proptest::bool::weighted(0.2)), 1..8),
            end_extra in prop_oneof![Just(0i64), 0..3 * HOUR, 0..8 * DAY],
        ) {
            let arrivals: Vec<_> = specs.iter().enumerate().map(|(i, s)| build(i, s, T0, false)).collect();
            let events: Vec<_> = arrivals.iter().map(|(_, e)| e.clone()).collect();
            let mut sim = Sim::new(big_caps());
            let end = run(&mut sim, arrivals, &plan, end_extra);
            // Under the caps, ranked calls are simply the countable calls in the window.
            for w in Window::ALL {
                let top = sim.top(w, end);
                for entry in &top {
                    let plain = events.iter()
                        .filter(|e| e.tenant == entry.tenant && model_counts(e))
                        .filter(|e| covers(w, bucket_start(e.time_ms, w.grain()), end))
                        .count() as u64;
                    prop_assert_eq!(entry.calls, plain);
                }
            }
            check_exact(&mut sim, &events, end)?;
        }

        /// With small caps, rankings equal the exact capped count.
        #[test]
        fn rollups_equal_the_exact_capped_count(
            specs in proptest::collection::vec(spec(), 0..80),
            plan in proptest::collection::vec((1usize..12, fate(), proptest::bool::weighted(0.2)), 1..8),
            end_extra in prop_oneof![Just(0i64), 0..3 * HOUR],
        ) {
            let arrivals: Vec<_> = specs.iter().enumerate().map(|(i, s)| build(i, s, T0 + 2 * DAY, true)).collect();
            let events: Vec<_> = arrivals.iter().map(|(_, e)| e.clone()).collect();
            let mut sim = Sim::new(small_caps());
            let end = run(&mut sim, arrivals, &plan, end_extra);
            check_exact(&mut sim, &events, end)?;
        }

        /// Challenges, rate limits, failed verifications and settlements, errors and
        /// self-dealing calls never move a ranking or a series.
        #[test]
        fn non_countable_events_never_move_a_ranking(
            base in proptest::collection::vec(spec(), 0..50),
            noise in proptest::collection::vec(spec(), 1..50),
            plan in proptest::collection::vec((1usize..12, fate(), proptest::bool::weighted(0.2)), 1..8),
        ) {
            let clean: Vec<_> = base.iter().enumerate().map(|(i, s)| build(i, s, T0, true)).collect();
            let mut noisy = clean.clone();
            for (j, s) in noise.iter().enumerate() {
                let (at, e) = build(10_000 + j, s, T0, false);
                // Keep only the noise: the kinds and self-dealing calls never counted.
                if !model_counts(&e) {
                    noisy.push((at, e));
                }
            }
            let last = noisy.iter().chain(&clean).map(|(at, _)| *at).max().unwrap_or(T0);
            let mut a = Sim::new(small_caps());
            let mut b = Sim::new(small_caps());
            run(&mut a, clean, &[(7, Fate::Delivered, false)], 0);
            let end_b = run(&mut b, noisy, &plan, 0);
            let end = end_b.max(last);
            a.settle(end);
            b.settle(end);
            for w in Window::ALL {
                prop_assert_eq!(a.top(w, end), b.top(w, end));
                for (slug, _) in TENANTS {
                    prop_assert_eq!(a.series(slug, w, end), b.series(slug, w, end));
                }
            }
        }
    }
}
