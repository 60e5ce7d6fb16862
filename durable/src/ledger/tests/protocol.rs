//! The internal protocol (`api::handle`): statuses, problem codes and fields.

use super::*;

// ---------------------------------------------------------------------------------------
// The internal protocol

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
    json!({"key": key, "fingerprint": fp, "gross": gross})
}

fn settle_body(key: &str, tx: &str) -> Value {
    json!({"key": key, "txRef": tx, "network": "base-sepolia", "payer": PAYER_B,
           "localSettlement": false, "feeBps": 1000})
}

#[test]
fn protocol_payments() {
    let mut db = MemSql::new();
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/reserve",
        reserve_body("k", "fp", "1000"),
    );
    assert_eq!(
        (s, v["state"].as_str(), v["gross"].as_str()),
        (201, Some("reserved"), Some("1000"))
    );
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/reserve",
        reserve_body("k", "fp", "1000"),
    );
    assert_eq!((s, v["code"].as_str()), (409, Some("payment_in_flight")));
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/reserve",
        reserve_body("k", "other", "1000"),
    );
    assert_eq!((s, v["code"].as_str()), (422, Some("payment_key_reused")));
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/reserve",
        reserve_body("k2", "fp", "01"),
    );
    assert_eq!(
        (s, v["code"].as_str(), v["field"].as_str()),
        (400, Some("invalid_field"), Some("gross"))
    );
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/reserve",
        reserve_body("k2", "fp", "0"),
    );
    assert_eq!((s, v["field"].as_str()), (400, Some("gross")));
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/reserve",
        json!({"key": "k3", "fingerprint": "f", "gross": 5}),
    );
    assert_eq!(
        (s, v["code"].as_str(), v["field"].as_str()),
        (400, Some("invalid_body"), Some("gross"))
    );
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/reserve",
        json!({"key": "k3", "fingerprint": "f", "gross": "5", "x": 1}),
    );
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_body")));
    let big = json!({"key": "k".repeat(5_000), "fingerprint": "f", "gross": "5"});
    let (s, v) = call(&mut db, "POST", "/payments/reserve", big);
    assert_eq!((s, v["code"].as_str()), (413, Some("body_too_large")));

    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/settle",
        settle_body("k", "0xabc"),
    );
    assert_eq!(
        (s, v["state"].as_str(), v["fee"].as_str(), v["net"].as_str()),
        (200, Some("settled"), Some("100"), Some("900"))
    );
    assert_eq!(
        (v["replayed"].as_bool(), v["network"].as_str()),
        (Some(false), Some("eip155:84532"))
    );
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/settle",
        settle_body("k", "0xabc"),
    );
    assert_eq!((s, v["replayed"].as_bool()), (200, Some(true)));
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/settle",
        settle_body("k", "0xdef"),
    );
    assert_eq!((s, v["code"].as_str()), (409, Some("settlement_conflict")));
    let mut bad_net = settle_body("k", "0xabc");
    bad_net["network"] = json!("solana");
    let (s, v) = call(&mut db, "POST", "/payments/settle", bad_net);
    assert_eq!(
        (s, v["code"].as_str(), v["field"].as_str()),
        (400, Some("invalid_body"), Some("network"))
    );
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/void",
        json!({"key": "k", "reason": "r"}),
    );
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("payment_already_settled"))
    );
    let (s, v) = call(
        &mut db,
        "POST",
        "/payments/void",
        json!({"key": "zz", "reason": "r"}),
    );
    assert_eq!((s, v["code"].as_str()), (404, Some("payment_not_found")));

    let (s, v) = call(&mut db, "GET", "/payments?key=k", Value::Null);
    assert_eq!((s, v["txRef"].as_str()), (200, Some("0xabc")));
    let (s, v) = call(&mut db, "GET", "/payments?key=zz", Value::Null);
    assert_eq!((s, v["code"].as_str()), (404, Some("payment_not_found")));
    let (s, _) = call(&mut db, "GET", "/payments", Value::Null);
    assert_eq!(s, 400);
}

#[test]
fn protocol_payouts_entries_earnings() {
    let mut db = MemSql::new();
    call(
        &mut db,
        "POST",
        "/payments/reserve",
        reserve_body("k", "fp", "1000"),
    );
    call(
        &mut db,
        "POST",
        "/payments/settle",
        settle_body("k", "0xabc"),
    );
    let payout = |amount: &str, fp: &str| json!({"idempotencyKey": "job-1", "fingerprint": fp, "amount": amount, "destination": DEST_A});
    let (s, v) = call(&mut db, "POST", "/payouts", payout("901", "h"));
    assert_eq!((s, v["code"].as_str()), (409, Some("insufficient_funds")));
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
    let (s, v) = call(&mut db, "POST", "/payouts", payout("900", "h2"));
    assert_eq!(
        (s, v["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    let (s, v) = call(&mut db, "GET", "/payouts/po_3", Value::Null);
    assert_eq!((s, v["amount"].as_str()), (200, Some("900")));
    let (s, v) = call(
        &mut db,
        "POST",
        "/payouts/po_3/post",
        json!({"txRef": "0xpaid"}),
    );
    assert_eq!((s, v["state"].as_str()), (200, Some("posted")));
    let (s, v) = call(
        &mut db,
        "POST",
        "/payouts/po_3/void",
        json!({"reason": "r"}),
    );
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("payout_already_posted"))
    );
    let (s, v) = call(
        &mut db,
        "POST",
        "/payouts/po_77/void",
        json!({"reason": "r"}),
    );
    assert_eq!((s, v["code"].as_str()), (404, Some("payout_not_found")));
    let (s, v) = call(&mut db, "GET", "/payouts/nope", Value::Null);
    assert_eq!((s, v["code"].as_str()), (404, Some("payout_not_found")));

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
    for bad in [
        "/entries?limit=0",
        "/entries?limit=501",
        "/entries?after=-1",
        "/entries?after=x",
        "/earnings?days=367",
    ] {
        let (s, v) = call(&mut db, "GET", bad, Value::Null);
        assert_eq!(
            (s, v["code"].as_str()),
            (400, Some("invalid_query")),
            "{bad}"
        );
    }
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

    let (s, v) = call(&mut db, "DELETE", "/entries", Value::Null);
    assert_eq!((s, v["code"].as_str()), (404, Some("route_not_found")));
}
