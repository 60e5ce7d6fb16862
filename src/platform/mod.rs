//! The platform API under `/__platform`: one route table, with the access each route needs.
//!
//! Every platform route is a row of [`ROUTES`]: method, path pattern, access, and the
//! [`Route`] it becomes. The glue (`edge`) finds the row ([`route`]), checks the bearer token
//! the row's [`Access`] names (one check, [`auth::bearer_matches`], constant time), and only
//! then looks at the path's parameters ([`Route::validate`]) and hands the route to the room
//! that serves it (`registry::api`, `ledger::api`, `usage::api`). So a request without the
//! right token learns only whether the route exists: never whether a tenant does, nor what
//! is wrong with its parameters.
//!
//! | access | token (Worker secret) | closed when unset |
//! |---|---|---|
//! | [`Access::Public`] | none | |
//! | [`Access::Admin`] | `PLATFORM_ADMIN_TOKEN` | yes |
//! | [`Access::Payout`] | `PLATFORM_PAYOUT_TOKEN` | yes |
//! | [`Access::Operator`] | `PLATFORM_OPERATOR_TOKEN` | yes |
//! | [`Access::Analytics`] | `PLATFORM_ANALYTICS_TOKEN` | yes |
//! | [`Access::EventsFeed`] | the analytics token, none if `PLATFORM_EVENTS_PUBLIC=true` | yes |

use claw_durable::problem::{Code, Problem};
use claw_durable::tenant::validate_slug;

pub mod auth;
#[cfg(target_arch = "wasm32")]
pub mod edge;

/// Secret: the admin API's token (tenants, settings). Unset: those routes are closed.
pub const PLATFORM_ADMIN_TOKEN: &str = "PLATFORM_ADMIN_TOKEN";
/// Secret: the payout job's token (journal, payouts, one tenant's earnings).
pub const PLATFORM_PAYOUT_TOKEN: &str = "PLATFORM_PAYOUT_TOKEN";
/// Secret: the operators' token (earnings of one or all tenants).
pub const PLATFORM_OPERATOR_TOKEN: &str = "PLATFORM_OPERATOR_TOKEN";
/// Secret: the analytics token (usage events feed, usage series, rollups).
pub const PLATFORM_ANALYTICS_TOKEN: &str = "PLATFORM_ANALYTICS_TOKEN";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Admin,
    Payout,
    Operator,
    Analytics,
    /// The usage events feed: analytics, unless the operator opened it.
    EventsFeed,
}

impl Access {
    /// The Worker secret holding this access's bearer token; `None` for public routes.
    /// The feed's token is the analytics token (the glue opens it with
    /// `PLATFORM_EVENTS_PUBLIC`).
    pub fn token_name(self) -> Option<&'static str> {
        match self {
            Access::Public => None,
            Access::Admin => Some(PLATFORM_ADMIN_TOKEN),
            Access::Payout => Some(PLATFORM_PAYOUT_TOKEN),
            Access::Operator => Some(PLATFORM_OPERATOR_TOKEN),
            Access::Analytics | Access::EventsFeed => Some(PLATFORM_ANALYTICS_TOKEN),
        }
    }
}

/// Tenant management (the registry room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantRoute {
    List,
    Get(String),
    Put(String),
    Delete(String),
    Suspend(String),
    Resume(String),
    /// The tenant's public offer (the marketplace).
    Offer(String),
}

/// The ledger room: the payout job's journal and payouts, the operators' earnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerRoute {
    Entries {
        slug: String,
    },
    Earnings {
        slug: String,
    },
    CreatePayout {
        slug: String,
    },
    Payout {
        slug: String,
        id: String,
    },
    PostPayout {
        slug: String,
        id: String,
    },
    VoidPayout {
        slug: String,
        id: String,
    },
    /// Ask the chain about the tenant's open payments now.
    Reconcile {
        slug: String,
    },
    AllEarnings,
}

/// The usage room: the events feed, the ranking, the per-tenant series and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageRoute {
    Events,
    Trending,
    Series {
        slug: String,
    },
    /// Calls per day by stage, payers, latency, top routes (the dashboard).
    Stats {
        slug: String,
    },
    Rollup {
        slug: String,
    },
    GetRetention {
        slug: String,
    },
    PutRetention {
        slug: String,
    },
}

/// A platform route, by the room that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Tenants(TenantRoute),
    Ledger(LedgerRoute),
    Usage(UsageRoute),
}

/// One segment of a route pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg {
    Lit(&'static str),
    /// A tenant slug (validated after the token check).
    Slug,
    /// A payout id (validated after the token check).
    PayoutId,
}

use Seg::{Lit, PayoutId, Slug};

/// Builds a [`Route`] from the path's parameters, in pattern order.
type Make = fn(&mut Params) -> Route;

/// A ledger route about one payout: the slug, then the payout id.
fn payout(p: &mut Params, make: fn(String, String) -> LedgerRoute) -> Route {
    let slug = p.next();
    Route::Ledger(make(slug, p.next()))
}

/// The parameters a pattern captured.
pub struct Params(std::vec::IntoIter<String>);

impl Params {
    fn next(&mut self) -> String {
        // The table's constructors take exactly the parameters their pattern captures
        // (checked by `every_row_builds_its_route`): never empty here.
        self.0.next().unwrap_or_default()
    }
}

/// A row of the route table.
pub struct Row {
    pub method: &'static str,
    pattern: &'static [Seg],
    pub access: Access,
    make: Make,
}

macro_rules! row {
    ($method:literal, [$($seg:expr),*], $access:ident, $make:expr) => {
        Row { method: $method, pattern: &[$($seg),*], access: Access::$access, make: $make }
    };
}

/// The platform API. Paths are under `/__platform`; the README lists the same table.
pub const ROUTES: &[Row] = &[
    // Tenants (registry).
    row!("GET", [Lit("tenants")], Admin, |_| Route::Tenants(
        TenantRoute::List
    )),
    row!("GET", [Lit("tenants"), Slug], Admin, |p| Route::Tenants(
        TenantRoute::Get(p.next())
    )),
    row!("PUT", [Lit("tenants"), Slug], Admin, |p| Route::Tenants(
        TenantRoute::Put(p.next())
    )),
    row!("DELETE", [Lit("tenants"), Slug], Admin, |p| {
        Route::Tenants(TenantRoute::Delete(p.next()))
    }),
    row!("POST", [Lit("tenants"), Slug, Lit("suspend")], Admin, |p| {
        Route::Tenants(TenantRoute::Suspend(p.next()))
    }),
    row!("POST", [Lit("tenants"), Slug, Lit("resume")], Admin, |p| {
        Route::Tenants(TenantRoute::Resume(p.next()))
    }),
    // The marketplace: a tenant's public offer.
    row!("GET", [Lit("market"), Slug], Public, |p| Route::Tenants(
        TenantRoute::Offer(p.next())
    )),
    // Ledger: the payout job.
    row!("GET", [Lit("ledger"), Slug, Lit("entries")], Payout, |p| {
        Route::Ledger(LedgerRoute::Entries { slug: p.next() })
    }),
    row!("GET", [Lit("ledger"), Slug, Lit("earnings")], Payout, |p| {
        Route::Ledger(LedgerRoute::Earnings { slug: p.next() })
    }),
    row!("POST", [Lit("ledger"), Slug, Lit("payouts")], Payout, |p| {
        Route::Ledger(LedgerRoute::CreatePayout { slug: p.next() })
    }),
    row!(
        "GET",
        [Lit("ledger"), Slug, Lit("payouts"), PayoutId],
        Payout,
        |p| payout(p, |slug, id| LedgerRoute::Payout { slug, id })
    ),
    row!(
        "POST",
        [Lit("ledger"), Slug, Lit("payouts"), PayoutId, Lit("post")],
        Payout,
        |p| payout(p, |slug, id| LedgerRoute::PostPayout { slug, id })
    ),
    row!(
        "POST",
        [Lit("ledger"), Slug, Lit("payouts"), PayoutId, Lit("void")],
        Payout,
        |p| payout(p, |slug, id| LedgerRoute::VoidPayout { slug, id })
    ),
    row!(
        "POST",
        [Lit("ledger"), Slug, Lit("reconcile")],
        Payout,
        |p| { Route::Ledger(LedgerRoute::Reconcile { slug: p.next() }) }
    ),
    // Ledger: operators.
    row!("GET", [Lit("earnings")], Operator, |_| Route::Ledger(
        LedgerRoute::AllEarnings
    )),
    row!("GET", [Lit("earnings"), Slug], Operator, |p| {
        Route::Ledger(LedgerRoute::Earnings { slug: p.next() })
    }),
    // Usage.
    row!("GET", [Lit("events")], EventsFeed, |_| Route::Usage(
        UsageRoute::Events
    )),
    row!("GET", [Lit("trending")], Public, |_| Route::Usage(
        UsageRoute::Trending
    )),
    row!("GET", [Lit("usage"), Slug], Analytics, |p| {
        Route::Usage(UsageRoute::Series { slug: p.next() })
    }),
    row!("GET", [Lit("usage"), Slug, Lit("stats")], Analytics, |p| {
        Route::Usage(UsageRoute::Stats { slug: p.next() })
    }),
    row!(
        "POST",
        [Lit("usage"), Slug, Lit("rollup")],
        Analytics,
        |p| { Route::Usage(UsageRoute::Rollup { slug: p.next() }) }
    ),
    row!(
        "GET",
        [Lit("usage"), Slug, Lit("retention")],
        Analytics,
        |p| { Route::Usage(UsageRoute::GetRetention { slug: p.next() }) }
    ),
    row!("PUT", [Lit("usage"), Slug, Lit("retention")], Admin, |p| {
        Route::Usage(UsageRoute::PutRetention { slug: p.next() })
    }),
];

/// What the table says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A row matched path and method.
    Found { route: Route, access: Access },
    /// The path exists with other methods (`allow`, comma-separated): 405 once `access`
    /// (the first such row's) is satisfied.
    MethodNotAllowed { allow: String, access: Access },
}

fn captures(pattern: &[Seg], segments: &[&str]) -> Option<Vec<String>> {
    if pattern.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (seg, s) in pattern.iter().zip(segments) {
        match seg {
            Lit(l) if l == s => {}
            Lit(_) => return None,
            Slug | PayoutId if !s.is_empty() => params.push((*s).to_owned()),
            Slug | PayoutId => return None,
        }
    }
    Some(params)
}

/// Finds `rest` (the path after `/__platform`) and `method` in [`ROUTES`]. No row for the
/// path: 404 `route_not_found`.
pub fn route(method: &str, rest: &str) -> Result<Lookup, Problem> {
    let segments: Vec<&str> = rest.strip_prefix('/').unwrap_or(rest).split('/').collect();
    let mut allow: Vec<&str> = Vec::new();
    let mut first_access = None;
    for row in ROUTES {
        let Some(params) = captures(row.pattern, &segments) else {
            continue;
        };
        if row.method == method {
            let route = (row.make)(&mut Params(params.into_iter()));
            return Ok(Lookup::Found {
                route,
                access: row.access,
            });
        }
        first_access.get_or_insert(row.access);
        allow.push(row.method);
    }
    match first_access {
        Some(access) => Ok(Lookup::MethodNotAllowed {
            allow: allow.join(", "),
            access,
        }),
        None => Err(not_found()),
    }
}

pub fn not_found() -> Problem {
    Problem::new(Code::RouteNotFound)
}

pub fn method_not_allowed(method: &str, rest: &str) -> Problem {
    Problem::new(Code::MethodNotAllowed).detail(format!("{method} is not allowed on {rest}"))
}

pub fn invalid_slug(reason: impl Into<String>) -> Problem {
    Problem::new(Code::InvalidSlug).detail(reason)
}

fn check_slug(s: &str) -> Result<(), Problem> {
    validate_slug(s).map_err(|e| invalid_slug(format!("the slug {e}")))
}

/// Payout ids are the ledger's `po_<seq>`; anything else cannot name a payout.
fn check_payout_id(s: &str) -> Result<(), Problem> {
    let ok = s.len() <= 32
        && s.strip_prefix("po_")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(Problem::new(Code::PayoutNotFound).detail("payout ids look like po_<number>"))
    }
}

impl TenantRoute {
    pub fn slug(&self) -> Option<&str> {
        match self {
            TenantRoute::List => None,
            TenantRoute::Get(s)
            | TenantRoute::Put(s)
            | TenantRoute::Delete(s)
            | TenantRoute::Suspend(s)
            | TenantRoute::Resume(s)
            | TenantRoute::Offer(s) => Some(s),
        }
    }
}

impl LedgerRoute {
    pub fn slug(&self) -> Option<&str> {
        match self {
            LedgerRoute::AllEarnings => None,
            LedgerRoute::Entries { slug }
            | LedgerRoute::Earnings { slug }
            | LedgerRoute::CreatePayout { slug }
            | LedgerRoute::Payout { slug, .. }
            | LedgerRoute::PostPayout { slug, .. }
            | LedgerRoute::VoidPayout { slug, .. }
            | LedgerRoute::Reconcile { slug } => Some(slug),
        }
    }
}

impl UsageRoute {
    pub fn slug(&self) -> Option<&str> {
        match self {
            UsageRoute::Events | UsageRoute::Trending => None,
            UsageRoute::Series { slug }
            | UsageRoute::Stats { slug }
            | UsageRoute::Rollup { slug }
            | UsageRoute::GetRetention { slug }
            | UsageRoute::PutRetention { slug } => Some(slug),
        }
    }
}

impl Route {
    /// The tenant the route is about, if any.
    pub fn slug(&self) -> Option<&str> {
        match self {
            Route::Tenants(r) => r.slug(),
            Route::Ledger(r) => r.slug(),
            Route::Usage(r) => r.slug(),
        }
    }

    fn payout_id(&self) -> Option<&str> {
        match self {
            Route::Ledger(
                LedgerRoute::Payout { id, .. }
                | LedgerRoute::PostPayout { id, .. }
                | LedgerRoute::VoidPayout { id, .. },
            ) => Some(id),
            _ => None,
        }
    }

    /// The path's parameters, checked once the caller's token is: 400 `invalid_slug`, 404
    /// `payout_not_found`.
    pub fn validate(&self) -> Result<(), Problem> {
        if let Some(slug) = self.slug() {
            check_slug(slug)?;
        }
        if let Some(id) = self.payout_id() {
            check_payout_id(id)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
