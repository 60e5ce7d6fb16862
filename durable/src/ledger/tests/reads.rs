//! Reading: the entry journal, earnings by day, record serialization.

use super::*;

// ---------------------------------------------------------------------------------------
// Reading

#[test]
fn entries_page_in_order_with_a_cursor() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    for i in 0..7 {
        l.reserve(&format!("k{i}"), "fp", 10, T0).unwrap();
    }
    let p = l.entries(0, 3).unwrap();
    assert_eq!(
        p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!((p.next_cursor, p.has_more), (3, true));
    let p = l.entries(6, 3).unwrap();
    assert_eq!((p.entries.len(), p.next_cursor, p.has_more), (1, 7, false));
    let p = l.entries(7, 3).unwrap();
    assert_eq!((p.entries.len(), p.next_cursor, p.has_more), (0, 7, false));
    refused(l.entries(0, 0), "invalid_field");
    refused(l.entries(0, 501), "invalid_field");
    refused(l.entries(-1, 5), "invalid_field");
    assert_eq!(l.entries(0, 500).unwrap().entries.len(), 7);
}

#[test]
fn earnings_bucket_settlements_by_utc_day() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    let day = |ms: i64, key: &str, gross: u128, l: &mut Ledger<'_, MemSql>| {
        l.reserve(key, "fp", gross, ms).unwrap();
        l.settle(key, &settlement(key, 1_000), ms).unwrap();
    };
    day(T0, "a", 1_000, &mut l); // 2023-11-14T22:13:20Z
    let midnight = (T0 / DAY_MS + 1) * DAY_MS; // 2023-11-15T00:00:00Z
    day(midnight - 1, "b", 2_000, &mut l);
    day(midnight, "c", 3_000, &mut l);
    day(midnight + 5 * DAY_MS, "d", 4_001, &mut l);
    // Reserved on one day, settled on the next: counted on the settle day.
    l.reserve("e", "fp", 5, T0).unwrap();

    let e = l.earnings(MAX_DAYS).unwrap();
    let days: Vec<(&str, u128, u128, u128, u64)> = e
        .days
        .iter()
        .map(|d| (d.day.as_str(), d.gross, d.fee, d.net, d.count))
        .collect();
    assert_eq!(
        days,
        [
            ("2023-11-14", 3_000, 300, 2_700, 2),
            ("2023-11-15", 3_000, 300, 2_700, 1),
            ("2023-11-20", 4_001, 400, 3_601, 1),
        ]
    );
    assert_eq!(
        (e.gross, e.fees, e.net, e.pending),
        (10_001, 1_000, 9_001, 5)
    );
    let recent = l.earnings(2).unwrap();
    assert_eq!(
        recent
            .days
            .iter()
            .map(|d| d.day.as_str())
            .collect::<Vec<_>>(),
        ["2023-11-15", "2023-11-20"]
    );
    refused(l.earnings(0), "invalid_field");
}

#[test]
fn records_serialize_camel_case_with_string_amounts() {
    let mut db = MemSql::new();
    let mut l = Ledger::open(&mut db).unwrap();
    l.reserve("k", "fp", u128::MAX, T0).unwrap();
    let s = l.settle("k", &settlement("0xt", 1), T0).unwrap();
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["gross"], json!(u128::MAX.to_string()));
    assert_eq!(
        v["net"],
        json!((u128::MAX - split_fee(u128::MAX, 1).unwrap().0).to_string())
    );
    assert_eq!(v["feeBps"], json!(1));
    assert_eq!(v["state"], json!("settled"));
    assert_eq!(v["network"], json!("eip155:84532"));
    assert_eq!(v["replayed"], json!(false));
    let page = serde_json::to_value(l.entries(0, 5).unwrap()).unwrap();
    assert_eq!(page["nextCursor"], json!(2));
    assert_eq!(page["entries"][0]["kind"], json!("payment_reserved"));
    assert_eq!(page["entries"][0]["paymentKey"], json!("k"));
    assert!(page["entries"][0].get("fee").is_none());
    assert_eq!(page["entries"][1]["localSettlement"], json!(false));
}
