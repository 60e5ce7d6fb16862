use super::*;

fn found(method: &str, rest: &str) -> (Route, Access) {
    match route(method, rest) {
        Ok(Lookup::Found { route, access }) => (route, access),
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
            access: Access::Admin
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
        ("GET", "/ledger/acme/payouts", 405, "method_not_allowed"),
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
        assert_eq!(open, row.access.token_name().is_none());
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
