//! The platform API under `/__platform`: one route table, with the access each route needs.
//!
//! Every platform route is a row of [`ROUTES`]: method, path pattern, access, and the
//! [`Route`] it becomes. The glue (`edge`) finds the row ([`route`]), checks the bearer token
//! the row's [`Access`] names (one check, [`auth::bearer_matches`], constant time), and only
//! then looks at the path's parameters ([`Route::validate`]) and hands the route to the room
//! that serves it (`registry::api`, `ledger::api`, `usage::api`, `deploy::api`). So a request without the
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
//! | [`Access::AnyToken`] | any of the tokens above | yes |
//!
//! Creator keys (`claw_ck_...`, issued by an operator, scoped to tenant slugs: see
//! `claw_durable::registry::keys`) are accepted on the rows marked `+ Creator`, for slugs in
//! the key's scope only ([`creator_may`]): a valid key elsewhere is 403 `forbidden`, an
//! unknown, revoked or expired one 401 `unauthorized`. Operator tokens keep their access.

use claw_durable::problem::{Code, Problem};
use claw_durable::registry::keys::{is_key_id, key_not_found, Grant};
use claw_durable::tenant::validate_slug;

use crate::http::query::Query;

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
    /// Any operator token (`whoami`).
    AnyToken,
}

impl Access {
    /// The Worker secrets holding the bearer tokens this access takes (any one of them);
    /// none for public routes. The feed's token is the analytics token (the glue opens it
    /// with `PLATFORM_EVENTS_PUBLIC`).
    pub fn token_names(self) -> &'static [&'static str] {
        match self {
            Access::Public => &[],
            Access::Admin => &[PLATFORM_ADMIN_TOKEN],
            Access::Payout => &[PLATFORM_PAYOUT_TOKEN],
            Access::Operator => &[PLATFORM_OPERATOR_TOKEN],
            Access::Analytics | Access::EventsFeed => &[PLATFORM_ANALYTICS_TOKEN],
            Access::AnyToken => &[
                PLATFORM_ADMIN_TOKEN,
                PLATFORM_PAYOUT_TOKEN,
                PLATFORM_OPERATOR_TOKEN,
                PLATFORM_ANALYTICS_TOKEN,
            ],
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
    Payouts {
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

/// Creator keys (the registry room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRoute {
    Create,
    List,
    Revoke(String),
}

/// The deploy room: a tenant's script, its versions and its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployRoute {
    Put { slug: String },
    Get { slug: String },
    Rollback { slug: String },
    ListSecrets { slug: String },
    PutSecret { slug: String, name: String },
    DeleteSecret { slug: String, name: String },
}

/// A platform route, by the room that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Tenants(TenantRoute),
    Ledger(LedgerRoute),
    Usage(UsageRoute),
    Keys(KeyRoute),
    /// Who the bearer is (answered by the platform glue itself).
    Whoami,
    Deploy(DeployRoute),
}

/// One segment of a route pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg {
    Lit(&'static str),
    /// A tenant slug (validated after the token check).
    Slug,
    /// A payout id (validated after the token check).
    PayoutId,
    /// A creator key's id (validated after the token check).
    KeyId,
    /// A secret's name (validated after the token check).
    SecretName,
}

use Seg::{KeyId, Lit, PayoutId, SecretName, Slug};

/// Builds a [`Route`] from the path's parameters, in pattern order.
type Make = fn(&mut Params) -> Route;

/// A ledger route about one payout: the slug, then the payout id.
fn payout(p: &mut Params, make: fn(String, String) -> LedgerRoute) -> Route {
    let slug = p.next();
    Route::Ledger(make(slug, p.next()))
}

/// A deploy route about one secret: the slug, then the name.
fn secret(p: &mut Params, make: fn(String, String) -> DeployRoute) -> Route {
    let slug = p.next();
    Route::Deploy(make(slug, p.next()))
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
    /// Whether a creator key may use the row, for the row's slug if it is in the key's scope.
    pub creator: bool,
    make: Make,
}

macro_rules! row {
    ($method:literal, [$($seg:expr),*], $access:ident + Creator, $make:expr) => {
        Row {
            method: $method,
            pattern: &[$($seg),*],
            access: Access::$access,
            creator: true,
            make: $make,
        }
    };
    ($method:literal, [$($seg:expr),*], $access:ident, $make:expr) => {
        Row {
            method: $method,
            pattern: &[$($seg),*],
            access: Access::$access,
            creator: false,
            make: $make,
        }
    };
}

/// The platform API. Paths are under `/__platform`; the README lists the same table.
pub const ROUTES: &[Row] = &[
    // Tenants (registry).
    row!(
        "GET",
        [Lit("tenants")],
        Admin + Creator,
        |_| Route::Tenants(TenantRoute::List)
    ),
    row!("GET", [Lit("tenants"), Slug], Admin + Creator, |p| {
        Route::Tenants(TenantRoute::Get(p.next()))
    }),
    row!("PUT", [Lit("tenants"), Slug], Admin + Creator, |p| {
        Route::Tenants(TenantRoute::Put(p.next()))
    }),
    row!("DELETE", [Lit("tenants"), Slug], Admin + Creator, |p| {
        Route::Tenants(TenantRoute::Delete(p.next()))
    }),
    row!("POST", [Lit("tenants"), Slug, Lit("suspend")], Admin, |p| {
        Route::Tenants(TenantRoute::Suspend(p.next()))
    }),
    row!("POST", [Lit("tenants"), Slug, Lit("resume")], Admin, |p| {
        Route::Tenants(TenantRoute::Resume(p.next()))
    }),
    // Deployments and secrets (the deploy room), per tenant.
    row!(
        "PUT",
        [Lit("tenants"), Slug, Lit("deployment")],
        Admin + Creator,
        |p| Route::Deploy(DeployRoute::Put { slug: p.next() })
    ),
    row!(
        "GET",
        [Lit("tenants"), Slug, Lit("deployment")],
        Admin + Creator,
        |p| Route::Deploy(DeployRoute::Get { slug: p.next() })
    ),
    row!(
        "POST",
        [Lit("tenants"), Slug, Lit("deployment"), Lit("rollback")],
        Admin + Creator,
        |p| Route::Deploy(DeployRoute::Rollback { slug: p.next() })
    ),
    row!(
        "GET",
        [Lit("tenants"), Slug, Lit("secrets")],
        Admin + Creator,
        |p| { Route::Deploy(DeployRoute::ListSecrets { slug: p.next() }) }
    ),
    row!(
        "PUT",
        [Lit("tenants"), Slug, Lit("secrets"), SecretName],
        Admin + Creator,
        |p| secret(p, |slug, name| DeployRoute::PutSecret { slug, name })
    ),
    row!(
        "DELETE",
        [Lit("tenants"), Slug, Lit("secrets"), SecretName],
        Admin + Creator,
        |p| secret(p, |slug, name| DeployRoute::DeleteSecret { slug, name })
    ),
    // The marketplace: a tenant's public offer.
    row!("GET", [Lit("market"), Slug], Public, |p| Route::Tenants(
        TenantRoute::Offer(p.next())
    )),
    // Ledger: the payout job.
    row!(
        "GET",
        [Lit("ledger"), Slug, Lit("entries")],
        Payout + Creator,
        |p| { Route::Ledger(LedgerRoute::Entries { slug: p.next() }) }
    ),
    row!(
        "GET",
        [Lit("ledger"), Slug, Lit("earnings")],
        Payout + Creator,
        |p| { Route::Ledger(LedgerRoute::Earnings { slug: p.next() }) }
    ),
    row!(
        "GET",
        [Lit("ledger"), Slug, Lit("payouts")],
        Payout + Creator,
        |p| { Route::Ledger(LedgerRoute::Payouts { slug: p.next() }) }
    ),
    row!("POST", [Lit("ledger"), Slug, Lit("payouts")], Payout, |p| {
        Route::Ledger(LedgerRoute::CreatePayout { slug: p.next() })
    }),
    row!(
        "GET",
        [Lit("ledger"), Slug, Lit("payouts"), PayoutId],
        Payout + Creator,
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
    row!("GET", [Lit("earnings"), Slug], Operator + Creator, |p| {
        Route::Ledger(LedgerRoute::Earnings { slug: p.next() })
    }),
    // Usage.
    row!("GET", [Lit("events")], EventsFeed + Creator, |_| {
        Route::Usage(UsageRoute::Events)
    }),
    row!("GET", [Lit("trending")], Public, |_| Route::Usage(
        UsageRoute::Trending
    )),
    row!("GET", [Lit("usage"), Slug], Analytics + Creator, |p| {
        Route::Usage(UsageRoute::Series { slug: p.next() })
    }),
    row!(
        "GET",
        [Lit("usage"), Slug, Lit("stats")],
        Analytics + Creator,
        |p| { Route::Usage(UsageRoute::Stats { slug: p.next() }) }
    ),
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
    // Creator keys (registry), and who the bearer is.
    row!("POST", [Lit("keys")], Admin, |_| Route::Keys(
        KeyRoute::Create
    )),
    row!("GET", [Lit("keys")], Admin, |_| Route::Keys(KeyRoute::List)),
    row!("DELETE", [Lit("keys"), KeyId], Admin, |p| Route::Keys(
        KeyRoute::Revoke(p.next())
    )),
    row!("GET", [Lit("whoami")], AnyToken + Creator, |_| {
        Route::Whoami
    }),
];

/// What the table says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A row matched path and method.
    Found {
        route: Route,
        access: Access,
        creator: bool,
    },
    /// The path exists with other methods (`allow`, comma-separated): 405 once `access`
    /// (the first such row's) is satisfied; a creator key learns it where some such row
    /// takes creator keys (`creator`).
    MethodNotAllowed {
        allow: String,
        access: Access,
        creator: bool,
    },
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
            Slug | PayoutId | KeyId | SecretName if !s.is_empty() => params.push((*s).to_owned()),
            Slug | PayoutId | KeyId | SecretName => return None,
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
    let mut creator = false;
    for row in ROUTES {
        let Some(params) = captures(row.pattern, &segments) else {
            continue;
        };
        if row.method == method {
            let route = (row.make)(&mut Params(params.into_iter()));
            return Ok(Lookup::Found {
                route,
                access: row.access,
                creator: row.creator,
            });
        }
        first_access.get_or_insert(row.access);
        creator |= row.creator;
        allow.push(row.method);
    }
    match first_access {
        Some(access) => Ok(Lookup::MethodNotAllowed {
            allow: allow.join(", "),
            access,
            creator,
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
            | LedgerRoute::Payouts { slug }
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

impl DeployRoute {
    pub fn slug(&self) -> &str {
        match self {
            DeployRoute::Put { slug }
            | DeployRoute::Get { slug }
            | DeployRoute::Rollback { slug }
            | DeployRoute::ListSecrets { slug }
            | DeployRoute::PutSecret { slug, .. }
            | DeployRoute::DeleteSecret { slug, .. } => slug,
        }
    }

    fn secret_name(&self) -> Option<&str> {
        match self {
            DeployRoute::PutSecret { name, .. } | DeployRoute::DeleteSecret { name, .. } => {
                Some(name)
            }
            _ => None,
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
            Route::Keys(_) | Route::Whoami => None,
            Route::Deploy(r) => Some(r.slug()),
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
        if let Route::Keys(KeyRoute::Revoke(id)) = self {
            if !is_key_id(id) {
                return Err(key_not_found(id));
            }
        }
        if let Route::Deploy(r) = self {
            if let Some(name) = r.secret_name() {
                claw_durable::tenant::validate_env_name(name)
                    .map_err(|e| Problem::invalid_field("name", format!("a secret name {e}")))?;
            }
        }
        Ok(())
    }
}

/// Who called a platform route, once its bearer was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A public route: no bearer was asked for.
    Open,
    /// An operator token (full access, as the row's [`Access`] says).
    Operator,
    /// A valid creator key, with its scope.
    Creator(Grant),
}

fn forbidden(detail: impl Into<String>) -> Problem {
    Problem::new(Code::Forbidden).detail(detail)
}

/// Whether a valid creator key may make this call: the row takes creator keys
/// (`creator_row`), and the tenant the route (or, for the events feed, its `tenant`
/// parameter, then required) is about is in the key's scope. Else 403 `forbidden`. The
/// tenant list is filtered to the scope by its room; `whoami` answers anyone.
pub fn creator_may(
    grant: &Grant,
    creator_row: bool,
    route: &Route,
    query: Option<&str>,
) -> Result<(), Problem> {
    if !creator_row {
        return Err(forbidden("this route is for operators only"));
    }
    let in_scope = |slug: &str| {
        if grant.covers(slug) {
            Ok(())
        } else {
            Err(forbidden(format!("this key is not for tenant {slug:?}")))
        }
    };
    if let Some(slug) = route.slug() {
        return in_scope(slug);
    }
    match route {
        Route::Tenants(TenantRoute::List) | Route::Whoami => Ok(()),
        // The feed reads the last `tenant` given (`usage::query::FeedQuery`): so does this.
        Route::Usage(UsageRoute::Events) => match Query::parse(query).last("tenant") {
            Some(slug) => in_scope(slug),
            None => Err(forbidden(
                "a creator key must name one of its tenants: ?tenant=",
            )),
        },
        _ => Err(forbidden("this route is for operators only")),
    }
}

#[cfg(test)]
mod tests;
