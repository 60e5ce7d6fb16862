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
