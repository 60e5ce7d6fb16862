//! Reconciliation against a scripted chain (the real one runs in the end-to-end tests),
//! the JSON-RPC wire, and the migration of a first-schema ledger.

use std::collections::HashMap;

use futures::executor::block_on;
use sha3::{Digest, Keccak256};

use super::*;
use crate::ledger::reconcile::*;

const USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
const TX: &str = "0x00000000000000000000000000000000000000000000000000000000000000aa";

fn nonce(i: u8) -> String {
    format!("0x{:064x}", i)
}

fn facts(nonce: &str, valid_before_s: i64) -> ChainFacts<'_> {
    ChainFacts {
        network: Network::BaseSepolia,
        asset: USDC,
        payer: PAYER_A,
        nonce,
        valid_before_s,
        fee_bps: 1_000,
    }
}

/// A chain that answers from a script: its id, its clock, which nonces are used and in
/// which transaction; `garbage` answers nonsense to `eth_call`.
struct Scripted {
    chain_id: u64,
    time_s: i64,
    used: HashMap<String, Option<String>>,
    garbage: bool,
    down: bool,
    calls: Vec<String>,
}

impl Scripted {
    fn new() -> Self {
        Scripted {
            chain_id: 84532,
            time_s: 1_000,
            used: HashMap::new(),
            garbage: false,
            down: false,
            calls: Vec::new(),
        }
    }
}

impl ChainRpc for Scripted {
    async fn call(&mut self, _n: Network, method: &str, params: Value) -> Result<Value, String> {
        self.calls.push(method.to_owned());
        if self.down {
            return Err("connection refused".into());
        }
        match method {
            "eth_chainId" => Ok(json!(format!("0x{:x}", self.chain_id))),
            "eth_getBlockByNumber" => Ok(json!({"timestamp": format!("0x{:x}", self.time_s)})),
            "eth_call" => {
                if self.garbage {
                    return Ok(json!("0xdeadbeef"));
                }
                let data = params[0]["data"].as_str().unwrap();
                assert!(data.starts_with(&format!("0x{AUTHORIZATION_STATE_SELECTOR}")));
                let n = format!("0x{}", &data[data.len() - 64..]);
                let used = self.used.contains_key(&n);
                Ok(json!(format!("0x{:064x}", u8::from(used))))
            }
            "eth_getLogs" => {
                let topics = params[0]["topics"].as_array().unwrap();
                assert_eq!(topics[0], AUTHORIZATION_USED_TOPIC);
                let n = topics[2].as_str().unwrap().to_owned();
                Ok(match self.used.get(&n) {
                    Some(Some(tx)) => json!([{"transactionHash": tx}]),
                    _ => json!([]),
                })
            }
            other => Err(format!("unexpected {other}")),
        }
    }
}

fn outcome_of(r: &ReconcileReport, key: &str) -> Outcome {
    r.payments
        .iter()
        .find(|d| d.key == key)
        .map(|d| d.outcome.clone())
        .unwrap()
}

#[test]
fn the_chain_decides_every_open_payment() {
    let mut db = MemSql::new();
    let (n1, n2, n3, n4) = (nonce(1), nonce(2), nonce(3), nonce(4));
    {
        let mut l = Ledger::open(&mut db).unwrap();
        l.reserve_with("used", "fp", 1_000, Some(&facts(&n1, 2_000)), T0)
            .unwrap();
        l.reserve_with("expired", "fp", 500, Some(&facts(&n2, 900)), T0)
            .unwrap();
        l.reserve_with("valid", "fp", 700, Some(&facts(&n3, 2_000)), T0)
            .unwrap();
        l.reserve_with("unlogged", "fp", 300, Some(&facts(&n4, 2_000)), T0)
            .unwrap();
        l.reserve("no-facts", "fp", 100, T0).unwrap();
        for k in ["used", "expired", "unlogged", "no-facts"] {
            l.mark_unknown(k, "settle timed out", T0).unwrap();
        }
    }
    let mut chain = Scripted::new();
    chain.used.insert(n1.clone(), Some(TX.to_owned()));
    chain.used.insert(n4.clone(), None);

    // The alarm's run: unknown payments only ("valid" is reserved, a call in flight).
    let r = block_on(reconcile(
        &mut db,
        &mut chain,
        false,
        RECONCILE_BATCH,
        T0 + 1,
    ))
    .unwrap();
    assert_eq!((r.checked, r.settled, r.voided, r.waiting), (4, 1, 1, 2));
    assert_eq!(
        outcome_of(&r, "used"),
        Outcome::Settled { tx: TX.to_owned() }
    );
    assert_eq!(outcome_of(&r, "expired"), Outcome::Voided);
    assert!(matches!(
        outcome_of(&r, "unlogged"),
        Outcome::Waiting { .. }
    ));
    assert!(matches!(
        outcome_of(&r, "no-facts"),
        Outcome::Waiting { .. }
    ));
    assert_eq!((r.unknown_left, r.reserved_left), (2, 1));
    // The chain's id and clock are asked once per run and network.
    assert_eq!(
        chain.calls.iter().filter(|c| *c == "eth_chainId").count(),
        1
    );

    let mut l = Ledger::open(&mut db).unwrap();
    let used = l.payment("used").unwrap().unwrap();
    assert_eq!(
        (used.state, used.tx_ref.as_deref(), used.fee, used.net),
        (PaymentState::Settled, Some(TX), Some(100), Some(900))
    );
    let expired = l.payment("expired").unwrap().unwrap();
    assert_eq!(
        (expired.state, expired.void_reason.as_deref()),
        (PaymentState::Voided, Some(UNSETTLED_REASON))
    );
    let e = l.earnings(1).unwrap();
    assert_eq!(
        (e.gross, e.unknown, e.unknown_count, e.pending),
        (1_000, 400, 2, 700)
    );
    // The settled entry says it came from the chain.
    let entries = l.entries(0, 100).unwrap().entries;
    let settled = entries
        .iter()
        .find(|e| e.kind == EntryKind::PaymentSettled)
        .unwrap();
    assert_eq!(settled.reason.as_deref(), Some(RECONCILED_REASON));
    l.audit().unwrap();

    // On demand, reserved payments are asked too: still valid, so they wait. A second run
    // books nothing twice.
    let r = block_on(reconcile(
        &mut db,
        &mut chain,
        true,
        RECONCILE_BATCH,
        T0 + 2,
    ))
    .unwrap();
    assert_eq!((r.checked, r.settled, r.voided, r.waiting), (3, 0, 0, 3));
    assert!(matches!(outcome_of(&r, "valid"), Outcome::Waiting { .. }));

    // Later the chain's clock passes validBefore: the valid one can no longer settle.
    chain.time_s = 2_001;
    let r = block_on(reconcile(
        &mut db,
        &mut chain,
        true,
        RECONCILE_BATCH,
        T0 + 3,
    ))
    .unwrap();
    assert_eq!(outcome_of(&r, "valid"), Outcome::Voided);
    Ledger::open(&mut db).unwrap().audit().unwrap();
}

#[test]
fn a_chain_that_cannot_answer_books_nothing() {
    let n1 = nonce(1);
    for fault in ["wrong chain", "garbage", "down"] {
        let mut db = MemSql::new();
        {
            let mut l = Ledger::open(&mut db).unwrap();
            l.reserve_with("k", "fp", 1_000, Some(&facts(&n1, 900)), T0)
                .unwrap();
            l.mark_unknown("k", "settle timed out", T0).unwrap();
        }
        let before = snapshot(&mut db);
        let mut chain = Scripted::new();
        match fault {
            "wrong chain" => chain.chain_id = 1,
            "garbage" => chain.garbage = true,
            _ => chain.down = true,
        }
        let r = block_on(reconcile(&mut db, &mut chain, true, 10, T0 + 1)).unwrap();
        assert_eq!(
            (r.settled, r.voided, r.waiting, r.unknown_left),
            (0, 0, 1, 1),
            "{fault}"
        );
        assert_eq!(snapshot(&mut db), before, "{fault}: nothing booked");
        // Back to an honest, reachable chain: decided.
        let mut honest = Scripted::new();
        let r = block_on(reconcile(&mut db, &mut honest, true, 10, T0 + 2)).unwrap();
        assert_eq!(r.voided, 1, "{fault}");
    }
}

#[test]
fn a_payment_settled_by_its_call_meanwhile_is_not_booked_twice() {
    let mut db = MemSql::new();
    let n1 = nonce(1);
    let mut l = Ledger::open(&mut db).unwrap();
    l.reserve_with("k", "fp", 1_000, Some(&facts(&n1, 2_000)), T0)
        .unwrap();
    let pending = l.pending_payments(true, 10).unwrap();
    // Its own call settles it after the reconciler read it, with the same transaction.
    l.settle("k", &settlement(TX, 1_000), T0).unwrap();
    let used = ChainAnswer::Used {
        tx: Some(TX.to_owned()),
    };
    let o = l.apply_chain_answer(&pending[0], &used, T0 + 1).unwrap();
    assert_eq!(o, Outcome::Settled { tx: TX.to_owned() });
    assert_eq!(l.earnings(1).unwrap().settled_count, 1);
    // Unused and expired, but already settled: refused, nothing written.
    let unused = ChainAnswer::Unused {
        chain_time_s: 9_999,
    };
    refused(
        l.apply_chain_answer(&pending[0], &unused, T0 + 2),
        "payment_already_settled",
    );
    l.audit().unwrap();
}

#[test]
fn json_rpc_wire() {
    let keccak = |s: &str| {
        Keccak256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(
        &keccak("authorizationState(address,bytes32)")[..8],
        AUTHORIZATION_STATE_SELECTOR
    );
    assert_eq!(
        format!("0x{}", keccak("AuthorizationUsed(address,bytes32)")),
        AUTHORIZATION_USED_TOPIC
    );
    let p = authorization_state_params(USDC, PAYER_A, &nonce(7)).unwrap();
    assert_eq!(
        p[0]["data"],
        format!(
            "0x{AUTHORIZATION_STATE_SELECTOR}{:0>64}{:064x}",
            &PAYER_A[2..],
            7
        )
    );
    assert!(authorization_state_params(USDC, "0x12", &nonce(1)).is_none());
    assert!(authorization_logs_params(USDC, PAYER_A, "0x1").is_none());

    assert_eq!(
        parse_result(br#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#),
        Ok(json!("0x1"))
    );
    assert!(
        parse_result(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"no"}}"#)
            .unwrap_err()
            .contains("no")
    );
    assert!(parse_result(b"<html>").is_err());
    assert!(parse_result(br#"{"jsonrpc":"2.0","id":1}"#).is_err());

    assert_eq!(parse_quantity(&json!("0x14a34")), Ok(84532));
    for bad in [
        json!("14a34"),
        json!("0x"),
        json!(5),
        json!("0x1ffffffffffffffff"),
    ] {
        assert!(parse_quantity(&bad).is_err(), "{bad}");
    }
    assert_eq!(parse_bool_word(&json!(format!("0x{:064x}", 1))), Ok(true));
    assert_eq!(parse_bool_word(&json!(format!("0x{:064x}", 0))), Ok(false));
    for bad in [json!(format!("0x{:064x}", 2)), json!("0x01"), json!(true)] {
        assert!(parse_bool_word(&bad).is_err(), "{bad}");
    }
    assert_eq!(parse_log_tx(&json!([])), Ok(None));
    assert_eq!(
        parse_log_tx(&json!([{"transactionHash": TX}, {"transactionHash": "0x1"}])),
        Ok(Some(TX.to_owned()))
    );
    assert!(parse_log_tx(&json!([{"transactionHash": "0x12"}])).is_err());
    assert!(parse_log_tx(&json!({})).is_err());
    assert_eq!(parse_block_time(&json!({"timestamp": "0x10"})), Ok(16));
    assert!(parse_block_time(&json!({})).is_err());
}

proptest! {
    /// Any bytes as an RPC answer: a value or an error, never a panic.
    #[test]
    fn rpc_answers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200), v in "\\PC{0,80}") {
        let _ = parse_result(&body);
        let value = Value::String(v);
        let _ = parse_quantity(&value);
        let _ = parse_bool_word(&value);
        let _ = parse_log_tx(&json!([{"transactionHash": value}]));
    }
}

#[test]
fn a_first_schema_ledger_is_migrated_with_its_books_intact() {
    let mut db = MemSql::new();
    let sql: String = include_str!("schema_v1.sql")
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for stmt in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        db.exec(stmt, &[]).unwrap();
    }
    // A v1 ledger with one settled and one reserved payment, written as v1 wrote them.
    for (sql, params) in [
        ("INSERT INTO ledger_entries (seq, at_ms, kind, payment_key, amount) VALUES (1, ?, 'payment_reserved', 'a', '1000')", vec![T0.into()]),
        ("INSERT INTO ledger_entries (seq, at_ms, kind, payment_key, amount, fee, net, fee_bps, tx_ref, network, payer, local_settlement) VALUES (2, ?, 'payment_settled', 'a', '1000', '100', '900', 1000, '0xa', 'eip155:84532', ?, 0)", vec![T0.into(), PAYER_A.into()]),
        ("INSERT INTO ledger_entries (seq, at_ms, kind, payment_key, amount) VALUES (3, ?, 'payment_reserved', 'b', '50')", vec![T0.into()]),
        ("INSERT INTO ledger_payments (payment_key, fingerprint, state, gross, fee, net, fee_bps, tx_ref, network, payer, local_settlement, reserved_at_ms, updated_at_ms, reserved_seq, last_seq) VALUES ('a', 'fp', 'settled', '1000', '100', '900', 1000, '0xa', 'eip155:84532', ?, 0, ?, ?, 1, 2)", vec![PAYER_A.into(), T0.into(), T0.into()]),
        ("INSERT INTO ledger_payments (payment_key, fingerprint, state, gross, reserved_at_ms, updated_at_ms, reserved_seq, last_seq) VALUES ('b', 'fp', 'reserved', '50', ?, ?, 3, 3)", vec![T0.into(), T0.into()]),
        ("UPDATE ledger_balances SET last_seq = 3, reserved_gross = '50', reserved_count = 1, settled_gross = '1000', settled_fee = '100', settled_net = '900', settled_count = 1", vec![]),
        ("INSERT INTO ledger_days VALUES (?, '1000', '100', '900', 1)", vec![(T0 / DAY_MS).into()]),
    ] {
        db.exec(sql, &params).unwrap();
    }
    let mut l = Ledger::open(&mut db).unwrap();
    assert_eq!(
        l.audit().unwrap().entries,
        3,
        "the journal came through whole"
    );
    let e = l.earnings(1).unwrap();
    assert_eq!((e.gross, e.net, e.pending, e.unknown), (1_000, 900, 50, 0));
    // The new states work on the migrated books: the old reservation becomes unknown.
    l.mark_unknown("b", "settle timed out", T0 + 1).unwrap();
    assert_eq!(state_of(&mut l, "b"), PaymentState::Unknown);
    l.audit().unwrap();
    // Opening again does not migrate twice.
    let mut l = Ledger::open(&mut db).unwrap();
    assert_eq!(l.earnings(1).unwrap().unknown, 50);
}

#[test]
fn a_run_pages_through_every_open_payment_once_up_to_its_bound() {
    let mut db = MemSql::new();
    let nonces: Vec<String> = (0..250u32).map(|i| format!("0x{i:064x}")).collect();
    {
        let mut l = Ledger::open(&mut db).unwrap();
        for (i, n) in nonces.iter().enumerate() {
            // Some share a reservation time, so the cursor's tie-break by key matters.
            let at = T0 + i64::try_from(i / 3).unwrap();
            let key = format!("k{i:03}");
            l.reserve_with(&key, "fp", 10, Some(&facts(n, 2_000)), at)
                .unwrap();
            l.mark_unknown(&key, "settle timed out", at).unwrap();
        }
    }
    let mut chain = Scripted::new();
    let r = block_on(reconcile(
        &mut db,
        &mut chain,
        false,
        RECONCILE_BATCH,
        T0 + 999,
    ))
    .unwrap();
    assert_eq!((r.checked, r.waiting, r.unknown_left), (250, 250, 250));
    let mut keys: Vec<&str> = r.payments.iter().map(|d| d.key.as_str()).collect();
    keys.dedup();
    assert_eq!(keys.len(), 250, "each payment once, in order");
    let r = block_on(reconcile(&mut db, &mut chain, false, 120, T0 + 999)).unwrap();
    assert_eq!(r.checked, 120);
}
