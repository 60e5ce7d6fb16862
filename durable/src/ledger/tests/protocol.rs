//! The internal protocol (`wire::handle`): statuses, problem codes and fields.

use super::*;

fn call(db: &mut MemSql, method: &str, path: &str, body: Value) -> (u16, Value) {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let query: Vec<(String, String)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    match handle(db, method, &segs, &query, &bytes, T0) {
        Ok(r) => r,
        Err(p) => {
            let v = serde_json::to_value(&p).unwrap();
            (p.status, v)
        }
    }
}

fn reserve_body(key: &str, fp: &str, gross: &str) -> Value {
    json!({"key": key, "fingerprint": fp, "gross": gross, "network": "eip155:84532",
           "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "payer": PAYER_B,
           "nonce": format!("0x{}", "ab".repeat(32)), "validBeforeS": 1_700_000_300,
           "feeBps": 1000})
}

fn settle_body(key: &str, tx: &str) -> Value {
    json!({"key": key, "txRef": tx, "network": "base-sepolia", "payer": PAYER_B,
           "localSettlement": false, "feeBps": 1000})
}

/// One request and what its answer must carry: method, path, body, then the status and the
/// problem's `code` and `field` ("" = not checked).
type Case<'a> = (&'a str, &'a str, Value, u16, &'a str, &'a str);

/// Sends the requests in order, checking each answer.
fn expect_all(db: &mut MemSql, cases: Vec<Case<'_>>) {
    for (method, path, body, status, code, field) in cases {
        let (s, v) = call(db, method, path, body);
        assert_eq!(s, status, "{method} {path}: {v}");
        if !code.is_empty() {
            assert_eq!(v["code"].as_str(), Some(code), "{method} {path}");
        }
        if !field.is_empty() {
            assert_eq!(v["field"].as_str(), Some(field), "{method} {path}");
        }
    }
}

const RESERVE: &str = "/payments/reserve";
const SETTLE: &str = "/payments/settle";
const VOID: &str = "/payments/void";

#[test]
fn protocol_payments() {
    let mut db = MemSql::new();
    let (s, v) = call(&mut db, "POST", RESERVE, reserve_body("k", "fp", "1000"));
    assert_eq!(
        (s, v["state"].as_str(), v["gross"].as_str()),
        (201, Some("reserved"), Some("1000"))
    );
    let numeric_gross = json!({"key": "k3", "fingerprint": "f", "gross": 5});
    let unknown_field = json!({"key": "k3", "fingerprint": "f", "gross": "5", "x": 1});
    let big = json!({"key": "k".repeat(5_000), "fingerprint": "f", "gross": "5"});
    expect_all(
        &mut db,
        vec![
            (
                "POST",
                RESERVE,
                reserve_body("k", "fp", "1000"),
                409,
                "payment_in_flight",
                "",
            ),
            (
                "POST",
                RESERVE,
                reserve_body("k", "other", "1000"),
                422,
                "payment_key_reused",
                "",
            ),
            (
                "POST",
                RESERVE,
                reserve_body("k2", "fp", "01"),
                400,
                "invalid_field",
                "gross",
            ),
            (
                "POST",
                RESERVE,
                reserve_body("k2", "fp", "0"),
                400,
                "",
                "gross",
            ),
            ("POST", RESERVE, numeric_gross, 400, "invalid_body", "gross"),
            ("POST", RESERVE, unknown_field, 400, "invalid_body", ""),
            ("POST", RESERVE, big, 413, "body_too_large", ""),
        ],
    );

    let (s, v) = call(&mut db, "POST", SETTLE, settle_body("k", "0xabc"));
    assert_eq!(
        (s, v["state"].as_str(), v["fee"].as_str(), v["net"].as_str()),
        (200, Some("settled"), Some("100"), Some("900"))
    );
    assert_eq!(
        (v["replayed"].as_bool(), v["network"].as_str()),
        (Some(false), Some("eip155:84532"))
    );
    let (s, v) = call(&mut db, "POST", SETTLE, settle_body("k", "0xabc"));
    assert_eq!((s, v["replayed"].as_bool()), (200, Some(true)));
    let mut bad_net = settle_body("k", "0xabc");
    bad_net["network"] = json!("solana");
    let void = |key: &str| json!({"key": key, "reason": "r"});
    expect_all(
        &mut db,
        vec![
            (
                "POST",
                SETTLE,
                settle_body("k", "0xdef"),
                409,
                "settlement_conflict",
                "",
            ),
            ("POST", SETTLE, bad_net, 400, "invalid_body", "network"),
            ("POST", VOID, void("k"), 409, "payment_already_settled", ""),
            ("POST", VOID, void("zz"), 404, "payment_not_found", ""),
        ],
    );

    // What reconciliation needs is recorded at reserve time, checked.
    let (s, v) = call(&mut db, "GET", "/payments?key=k", Value::Null);
    assert_eq!((s, v["txRef"].as_str()), (200, Some("0xabc")));
    assert_eq!(
        (
            v["asset"].as_str(),
            v["nonce"].as_str(),
            v["validBeforeS"].as_i64()
        ),
        (
            Some("0x036cbd53842c5426634e7929541ec2318f3dcf7e"),
            Some(format!("0x{}", "ab".repeat(32)).as_str()),
            Some(1_700_000_300)
        )
    );
    let with = |k: &str, field: &str, value: Value| {
        let mut b = reserve_body(k, "fp", "5");
        b[field] = value;
        b
    };
    let unknown = |key: &str| json!({"key": key, "reason": "settle timed out"});
    expect_all(
        &mut db,
        vec![
            (
                "POST",
                RESERVE,
                with("n1", "nonce", json!("0x12")),
                400,
                "invalid_field",
                "nonce",
            ),
            (
                "POST",
                RESERVE,
                with("n2", "asset", json!("usdc")),
                400,
                "invalid_field",
                "asset",
            ),
            (
                "POST",
                RESERVE,
                with("n3", "feeBps", json!(10_001)),
                400,
                "invalid_field",
                "feeBps",
            ),
            (
                "POST",
                RESERVE,
                with("n4", "validBeforeS", json!(-1)),
                400,
                "invalid_field",
                "validBeforeS",
            ),
            ("POST", RESERVE, with("u", "gross", json!("5")), 201, "", ""),
            // An unknown outcome: only the chain can decide it; its own call cannot void it.
            ("POST", "/payments/unknown", unknown("u"), 200, "", ""),
            ("POST", VOID, void("u"), 409, "payment_outcome_unknown", ""),
            (
                "POST",
                RESERVE,
                with("u", "gross", json!("5")),
                409,
                "payment_outcome_unknown",
                "",
            ),
            (
                "POST",
                "/payments/unknown",
                unknown("k"),
                409,
                "payment_already_settled",
                "",
            ),
        ],
    );
    let (s, v) = call(&mut db, "POST", "/payments/unknown", unknown("u"));
    assert_eq!(
        (s, v["state"].as_str(), v["replayed"].as_bool()),
        (200, Some("unknown"), Some(true))
    );
    expect_all(
        &mut db,
        vec![
            (
                "GET",
                "/payments?key=zz",
                Value::Null,
                404,
                "payment_not_found",
                "",
            ),
            ("GET", "/payments", Value::Null, 400, "", ""),
        ],
    );
}

#[test]
fn protocol_payouts_entries_earnings() {
    let mut db = MemSql::new();
    call(&mut db, "POST", RESERVE, reserve_body("k", "fp", "1000"));
    call(&mut db, "POST", SETTLE, settle_body("k", "0xabc"));
    let payout = |amount: &str, fp: &str| json!({"idempotencyKey": "job-1", "fingerprint": fp, "amount": amount, "destination": DEST_A});
    expect_all(
        &mut db,
        vec![(
            "POST",
            "/payouts",
            payout("901", "h"),
            409,
            "insufficient_funds",
            "",
        )],
    );
    let (s, v) = call(&mut db, "POST", "/payouts", payout("900", "h"));
    assert_eq!(
        (
            s,
            v["id"].as_str(),
            v["state"].as_str(),
            v["replayed"].as_bool()
        ),
        (201, Some("po_3"), Some("pending"), Some(false))
    );
    let (s, v) = call(&mut db, "POST", "/payouts", payout("900", "h"));
    assert_eq!(
        (s, v["id"].as_str(), v["replayed"].as_bool()),
        (200, Some("po_3"), Some(true))
    );
    expect_all(
        &mut db,
        vec![(
            "POST",
            "/payouts",
            payout("900", "h2"),
            422,
            "idempotency_key_reused",
            "",
        )],
    );
    let (s, v) = call(&mut db, "GET", "/payouts?limit=1", Value::Null);
    assert_eq!(s, 200);
    assert_eq!(v["payouts"][0]["id"], "po_3");
    assert_eq!(
        (v["nextCursor"].as_i64(), &v["hasMore"]),
        (Some(3), &json!(false))
    );
    let (s, v) = call(&mut db, "GET", "/payouts?after=3", Value::Null);
    assert_eq!((s, v["payouts"].as_array().map(Vec::len)), (200, Some(0)));
    let (s, v) = call(&mut db, "GET", "/payouts?limit=0", Value::Null);
    assert_eq!((s, &v["field"]), (400, &json!("limit")));
    let (s, v) = call(&mut db, "GET", "/payouts/po_3", Value::Null);
    assert_eq!((s, v["amount"].as_str()), (200, Some("900")));
    let (s, v) = call(
        &mut db,
        "POST",
        "/payouts/po_3/post",
        json!({"txRef": "0xpaid"}),
    );
    assert_eq!((s, v["state"].as_str()), (200, Some("posted")));
    let reason = || json!({"reason": "r"});
    expect_all(
        &mut db,
        vec![
            (
                "POST",
                "/payouts/po_3/void",
                reason(),
                409,
                "payout_already_posted",
                "",
            ),
            (
                "POST",
                "/payouts/po_77/void",
                reason(),
                404,
                "payout_not_found",
                "",
            ),
            (
                "GET",
                "/payouts/nope",
                Value::Null,
                404,
                "payout_not_found",
                "",
            ),
        ],
    );

    let (s, v) = call(&mut db, "GET", "/entries?after=1&limit=2", Value::Null);
    assert_eq!(
        (s, v["nextCursor"].as_i64(), v["hasMore"].as_bool()),
        (200, Some(3), Some(true))
    );
    let kinds: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["payment_settled", "payout_created"]);
    let bad_query = |path| ("GET", path, Value::Null, 400, "invalid_query", "");
    expect_all(
        &mut db,
        vec![
            bad_query("/entries?limit=0"),
            bad_query("/entries?limit=501"),
            bad_query("/entries?after=-1"),
            bad_query("/entries?after=x"),
            bad_query("/earnings?days=367"),
        ],
    );
    let (s, v) = call(&mut db, "GET", "/earnings", Value::Null);
    assert_eq!(s, 200);
    assert_eq!(
        (v["gross"].as_str(), v["fees"].as_str(), v["net"].as_str()),
        (Some("1000"), Some("100"), Some("900"))
    );
    assert_eq!(
        (
            v["paidOut"].as_str(),
            v["available"].as_str(),
            v["lastSeq"].as_i64()
        ),
        (Some("900"), Some("0"), Some(4))
    );
    assert_eq!(v["days"][0]["day"].as_str(), Some("2023-11-14"));

    expect_all(
        &mut db,
        vec![(
            "DELETE",
            "/entries",
            Value::Null,
            404,
            "route_not_found",
            "",
        )],
    );
}
