use super::*;

fn found(method: &str, rest: &str) -> (Route, Access) {
    match route(method, rest) {
        Ok(Lookup::Found { route, access, .. }) => (route, access),
        other => panic!("{method} {rest}: {other:?}"),
    }
}

fn code(method: &str, rest: &str) -> (u16, String) {
    let r = match route(method, rest) {
        Ok(Lookup::Found { route, .. }) => route.validate(),
        Ok(Lookup::MethodNotAllowed { .. }) => Err(method_not_allowed(method, rest)),
        Err(p) => Err(p),
    };
    let p = r.expect_err("a refusal");
    (p.status, p.code.as_str().to_owned())
}

#[test]
fn every_row_builds_its_route_and_no_two_rows_collide() {
    for (i, row) in ROUTES.iter().enumerate() {
        let n = row.pattern.iter().filter(|s| !matches!(s, Lit(_))).count();
        let params: Vec<String> = (0..n).map(|k| format!("p{k}")).collect();
        let route = (row.make)(&mut Params(params.clone().into_iter()));
        // Each parameter lands in the route (none is dropped, none defaulted).
        let dbg = format!("{route:?}");
        for p in &params {
            assert!(dbg.contains(p), "row {i}: {dbg} lacks {p}");
        }
        for other in &ROUTES[i + 1..] {
            assert!(
                !(row.method == other.method && row.pattern == other.pattern),
                "row {i} is listed twice"
            );
        }
    }
}

#[test]
fn tenant_routes_need_the_admin_token() {
    assert_eq!(
        found("GET", "/tenants"),
        (Route::Tenants(TenantRoute::List), Access::Admin)
    );
    assert_eq!(
        found("PUT", "/tenants/acme"),
        (
            Route::Tenants(TenantRoute::Put("acme".into())),
            Access::Admin
        )
    );
    assert_eq!(
        found("POST", "/tenants/acme/suspend").0,
        Route::Tenants(TenantRoute::Suspend("acme".into()))
    );
    assert_eq!(
        found("POST", "/tenants/acme/resume").0,
        Route::Tenants(TenantRoute::Resume("acme".into()))
    );
    assert_eq!(
        route("POST", "/tenants/acme"),
        Ok(Lookup::MethodNotAllowed {
            allow: "GET, PUT, DELETE".into(),
            access: Access::Admin,
            creator: true,
        })
    );
}

#[test]
fn ledger_routes_and_their_tokens() {
    assert_eq!(
        found("GET", "/ledger/acme/entries"),
        (
            Route::Ledger(LedgerRoute::Entries {
                slug: "acme".into()
            }),
            Access::Payout
        )
    );
    assert_eq!(
        found("POST", "/ledger/acme/reconcile"),
        (
            Route::Ledger(LedgerRoute::Reconcile {
                slug: "acme".into()
            }),
            Access::Payout
        )
    );
    assert_eq!(found("GET", "/earnings").1, Access::Operator);
    assert_eq!(found("GET", "/earnings/acme").1, Access::Operator);
    // One tenant's earnings: the payout job under /ledger, operators under /earnings.
    assert_eq!(
        found("GET", "/ledger/acme/earnings"),
        (
            Route::Ledger(LedgerRoute::Earnings {
                slug: "acme".into()
            }),
            Access::Payout
        )
    );
    assert_eq!(
        found("POST", "/ledger/acme/payouts/po_12/post").0,
        Route::Ledger(LedgerRoute::PostPayout {
            slug: "acme".into(),
            id: "po_12".into()
        })
    );
    assert_eq!(
        found("POST", "/ledger/acme/payouts/po_12/void").0,
        Route::Ledger(LedgerRoute::VoidPayout {
            slug: "acme".into(),
            id: "po_12".into()
        })
    );
}

#[test]
fn usage_routes_and_their_tokens() {
    assert_eq!(
        found("GET", "/events"),
        (Route::Usage(UsageRoute::Events), Access::EventsFeed)
    );
    assert_eq!(
        found("GET", "/trending"),
        (Route::Usage(UsageRoute::Trending), Access::Public)
    );
    assert_eq!(found("GET", "/usage/acme").1, Access::Analytics);
    assert_eq!(found("POST", "/usage/acme/rollup").1, Access::Analytics);
    assert_eq!(
        found("GET", "/usage/acme/stats"),
        (
            Route::Usage(UsageRoute::Stats {
                slug: "acme".into()
            }),
            Access::Analytics
        )
    );
    assert_eq!(found("GET", "/usage/acme/retention").1, Access::Analytics);
    // Changing a setting is an admin's act; reading it is analytics.
    assert_eq!(found("PUT", "/usage/acme/retention").1, Access::Admin);
}

/// Every refusal the table gives, once the token is right: 404 for a path it does not
/// have, 405 for a method the path does not take, then the parameters' own problems.
#[test]
fn refusals() {
    let long_id = format!("/ledger/acme/payouts/po_{}", "1".repeat(40));
    for (method, path, status, want) in [
        ("GET", "/tenants/acme/x", 404, "route_not_found"),
        ("GET", "/tenants/Bad--Slug", 400, "invalid_slug"),
        ("POST", "/ledger/acme/entries", 405, "method_not_allowed"),
        ("PUT", "/ledger/acme/payouts", 405, "method_not_allowed"),
        ("DELETE", "/keys/ck_12", 404, "key_not_found"),
        ("DELETE", "/keys/ck_0123456789ABCDEF", 404, "key_not_found"),
        ("PUT", "/keys", 405, "method_not_allowed"),
        ("POST", "/whoami", 405, "method_not_allowed"),
        ("GET", "/ledger/acme", 404, "route_not_found"),
        ("GET", "/ledger/acme/x/y/z/w", 404, "route_not_found"),
        ("GET", "/ledger/Bad--Slug/entries", 400, "invalid_slug"),
        ("GET", "/ledger/acme/payouts/..", 404, "payout_not_found"),
        ("GET", "/ledger/acme/payouts/po_", 404, "payout_not_found"),
        ("GET", long_id.as_str(), 404, "payout_not_found"),
        ("GET", "/ledger/acme/reconcile", 405, "method_not_allowed"),
        ("POST", "/ledger/Bad--Slug/reconcile", 400, "invalid_slug"),
        ("POST", "/trending", 405, "method_not_allowed"),
        ("GET", "/usage/acme/nope", 404, "route_not_found"),
        ("GET", "/usage/Bad--Slug", 400, "invalid_slug"),
    ] {
        assert_eq!(
            code(method, path),
            (status, want.to_owned()),
            "{method} {path}"
        );
    }
}

#[test]
fn unknown_and_odd_paths_are_404() {
    for rest in [
        "/",
        "",
        "/nope",
        "/tenants/",
        "//tenants",
        "/tenants//x",
        "/TENANTS",
    ] {
        assert_eq!(code("GET", rest).0, 404, "{rest:?}");
    }
}

#[test]
fn only_the_public_ranking_and_offers_are_open() {
    let market: &[Seg] = &[Lit("market"), Seg::Slug];
    for row in ROUTES {
        let open = row.access == Access::Public;
        assert_eq!(open, row.access.token_names().is_empty());
        if open {
            assert_eq!(row.method, "GET");
            assert!(
                row.pattern == [Lit("trending")] || row.pattern == market,
                "{:?}",
                row.pattern
            );
        }
    }
    assert_eq!(
        found("GET", "/market/acme"),
        (
            Route::Tenants(TenantRoute::Offer("acme".into())),
            Access::Public
        )
    );
}

proptest::proptest! {
    /// Any method and path: an answer, never a panic; a found route's parameters are the
    /// path's own segments.
    #[test]
    fn never_panics(
        method in "GET|PUT|POST|DELETE|PATCH",
        segs in proptest::collection::vec(
            "tenants|ledger|earnings|usage|events|trending|payouts|entries|po_[0-9]{1,3}|[a-z]{1,6}|\\PC{0,8}",
            0..6,
        ),
    ) {
        let rest = format!("/{}", segs.join("/"));
        if let Ok(Lookup::Found { route, .. }) = route(&method, &rest) {
            if let Some(slug) = route.slug() {
                proptest::prop_assert!(segs.iter().any(|s| s == slug));
            }
            let _ = route.validate();
        }
    }
}

/// Every bearer token is compared in one place, through the one constant-time helper: no
/// file of the dispatcher reads a token secret except the platform glue, and nothing
/// compares with `==` next to one.
#[test]
fn tokens_are_compared_only_by_the_constant_time_helper() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 20, "walked the source tree");
    let mut helper_calls = 0;
    for f in &files {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains("bearer_matches(") && !code.contains("fn bearer_matches") {
                helper_calls += 1;
                assert!(
                    rel == "platform/edge.rs" || rel == "platform/auth.rs",
                    "{rel}:{}: tokens are checked in platform/edge.rs only",
                    n + 1
                );
            }
            let names_token = code.contains("_TOKEN") || code.contains("secret");
            let compares = code.contains("==") || code.contains("!=") || code.contains(".eq(");
            assert!(
                !(names_token && compares && !rel.ends_with("tests.rs")),
                "{rel}:{}: a token next to a non-constant-time comparison: {line}",
                n + 1
            );
        }
    }
    assert!(helper_calls >= 1, "the platform glue uses the helper");
}

/// A row as the README writes it: `GET /ledger/{slug}/payouts/{id}`.
fn shape(row: &Row) -> String {
    let path: Vec<&str> = row
        .pattern
        .iter()
        .map(|s| match s {
            Lit(l) => l,
            Slug => "{slug}",
            PayoutId | KeyId => "{id}",
            SecretName => "{name}",
        })
        .collect();
    format!("{} /{}", row.method, path.join("/"))
}

/// The rows a creator key may use are exactly the contract's list (issue 11): its tenants'
/// config, journal, earnings, payouts (read), usage series and events feed, the tenant list
/// (filtered), `whoami`, and every deployment and secrets route of a tenant; and the
/// dashboard's call statistics of its tenants (`/usage/{slug}/stats`). Everything else
/// (suspend, resume, keys, payout writes, reconcile, rollups, retention, all-tenant
/// earnings) is for operators.
#[test]
fn the_creator_rows_are_the_contracts_list() {
    let mut creator: Vec<String> = ROUTES
        .iter()
        .filter(|r| r.creator)
        .filter(|r| {
            !matches!(
                r.pattern,
                [Lit("tenants"), Slug, Lit("deployment" | "secrets"), ..]
            )
        })
        .map(shape)
        .collect();
    creator.sort();
    let mut want = vec![
        "GET /tenants",
        "GET /tenants/{slug}",
        "PUT /tenants/{slug}",
        "DELETE /tenants/{slug}",
        "GET /ledger/{slug}/entries",
        "GET /ledger/{slug}/earnings",
        "GET /ledger/{slug}/payouts",
        "GET /ledger/{slug}/payouts/{id}",
        "GET /earnings/{slug}",
        "GET /usage/{slug}",
        "GET /usage/{slug}/stats",
        "GET /events",
        "GET /whoami",
    ];
    want.sort();
    assert_eq!(creator, want);
    for row in ROUTES {
        if matches!(
            row.pattern,
            [Lit("tenants"), Slug, Lit("deployment" | "secrets"), ..]
        ) {
            assert!(
                row.creator,
                "{}: a creator deploys its own tenants",
                shape(row)
            );
        }
        if matches!(row.pattern, [Lit("keys"), ..]) {
            assert_eq!(row.access, Access::Admin, "{}", shape(row));
        }
    }
}

fn grant(tenants: &[&str]) -> Grant {
    Grant {
        id: "ck_0123456789abcdef".into(),
        prefix: "claw_ck_01234567".into(),
        tenants: tenants.iter().map(|s| (*s).to_owned()).collect(),
        expires_at: None,
    }
}

/// What a creator key may do, row by row: every creator row about tenant `b` is 403 for a
/// key scoped to `a` and passes for `a`; every operator row is 403 whatever its tenant.
#[test]
fn a_creator_key_reaches_only_its_own_tenants() {
    let key = grant(&["a-co"]);
    for row in ROUTES {
        let n = row.pattern.iter().filter(|s| !matches!(s, Lit(_))).count();
        for slug in ["a-co", "b-co"] {
            let params: Vec<String> = std::iter::once(slug.to_owned())
                .chain((1..n).map(|_| "po_1".to_owned()))
                .collect();
            let route = (row.make)(&mut Params(params.into_iter()));
            let query = Some(format!("tenant={slug}"));
            let got = creator_may(&key, row.creator, &route, query.as_deref());
            let allowed = row.creator
                && (route.slug().is_none_or(|s| s == "a-co"))
                && (route != Route::Usage(UsageRoute::Events) || slug == "a-co");
            match got {
                Ok(()) => assert!(allowed, "{} for {slug}", shape(row)),
                Err(p) => {
                    assert!(!allowed, "{} for {slug}: {p:?}", shape(row));
                    assert_eq!((p.status, p.code), (403, Code::Forbidden));
                }
            }
        }
    }
}

#[test]
fn a_creator_reads_the_events_of_its_own_tenant_only() {
    let key = grant(&["a-co", "c-co"]);
    let events = Route::Usage(UsageRoute::Events);
    for (query, ok) in [
        (None, false),
        (Some("stage=paid"), false),
        (Some("tenant=a-co"), true),
        (Some("tenant=c-co&limit=3"), true),
        (Some("tenant=b-co"), false),
        // The feed reads the last `tenant`: so does the check.
        (Some("tenant=a-co&tenant=b-co"), false),
        (Some("tenant=b-co&tenant=a-co"), true),
        (Some("tenant=a%2Dco"), true),
    ] {
        assert_eq!(
            creator_may(&key, true, &events, query).is_ok(),
            ok,
            "{query:?}"
        );
    }
    // The list and whoami are for any key (the list is filtered by its room).
    assert!(creator_may(&key, true, &Route::Tenants(TenantRoute::List), None).is_ok());
    assert!(creator_may(&key, true, &Route::Whoami, None).is_ok());
    // A row that does not take keys refuses them whatever the route.
    assert_eq!(
        creator_may(
            &key,
            false,
            &Route::Tenants(TenantRoute::Get("a-co".into())),
            None
        )
        .unwrap_err()
        .code,
        Code::Forbidden
    );
}

#[test]
fn key_routes_and_whoami() {
    assert_eq!(
        found("POST", "/keys"),
        (Route::Keys(KeyRoute::Create), Access::Admin)
    );
    assert_eq!(
        found("GET", "/keys"),
        (Route::Keys(KeyRoute::List), Access::Admin)
    );
    assert_eq!(
        found("DELETE", "/keys/ck_0123456789abcdef"),
        (
            Route::Keys(KeyRoute::Revoke("ck_0123456789abcdef".into())),
            Access::Admin
        )
    );
    assert_eq!(found("GET", "/whoami"), (Route::Whoami, Access::AnyToken));
    assert_eq!(Access::AnyToken.token_names().len(), 4);
    assert_eq!(
        found("GET", "/ledger/acme/payouts"),
        (
            Route::Ledger(LedgerRoute::Payouts {
                slug: "acme".into()
            }),
            Access::Payout
        )
    );
}

#[test]
fn deploy_routes_are_per_tenant_admin_rows() {
    assert_eq!(
        found("PUT", "/tenants/acme/deployment"),
        (
            Route::Deploy(DeployRoute::Put {
                slug: "acme".into()
            }),
            Access::Admin
        )
    );
    assert_eq!(
        found("POST", "/tenants/acme/deployment/rollback").0,
        Route::Deploy(DeployRoute::Rollback {
            slug: "acme".into()
        })
    );
    assert_eq!(
        found("DELETE", "/tenants/acme/secrets/API_KEY").0,
        Route::Deploy(DeployRoute::DeleteSecret {
            slug: "acme".into(),
            name: "API_KEY".into()
        })
    );
    assert_eq!(
        route("DELETE", "/tenants/acme/deployment"),
        Ok(Lookup::MethodNotAllowed {
            allow: "PUT, GET".into(),
            access: Access::Admin,
            creator: true,
        })
    );
    // Every deploy route names its tenant (so tenant-scoped keys can be checked on it).
    assert_eq!(found("GET", "/tenants/acme/secrets").0.slug(), Some("acme"));
    assert_eq!(
        code("PUT", "/tenants/acme/secrets/lower-case"),
        (400, "invalid_field".into())
    );
    assert_eq!(
        code("PUT", "/tenants/Bad/deployment"),
        (400, "invalid_slug".into())
    );
}
