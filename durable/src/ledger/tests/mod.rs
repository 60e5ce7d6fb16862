//! Native tests of the ledger core and its protocol, on in-memory SQLite.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::wire::handle;
use super::*;
use crate::memsql::MemSql;
use crate::store::{Row, SqlStore, SqlValue, StoreError};

const T0: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z
const PAYER_A: &str = "0x1111111111111111111111111111111111111111";
const PAYER_B: &str = "0x2222222222222222222222222222222222222222";
const DEST_A: &str = "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const DEST_B: &str = "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn settlement(tx: &str, fee_bps: u32) -> Settlement<'_> {
    Settlement {
        tx_ref: tx,
        network: Network::BaseSepolia,
        payer: PAYER_A,
        local_settlement: false,
        fee_bps,
        reason: None,
    }
}

fn code<T>(r: Result<T, LedgerError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code().as_str(),
    }
}

/// Asserts that an operation was refused with the problem code `want`.
#[track_caller]
fn refused<T>(r: Result<T, LedgerError>, want: &str) {
    assert_eq!(code(r), want);
}

/// The state of a payment that exists.
fn state_of<S: SqlStore>(l: &mut Ledger<'_, S>, key: &str) -> PaymentState {
    l.payment(key).unwrap().unwrap().state
}

mod answers;
mod chain;
mod events;
mod invariants;
mod model;
mod payments;
mod payouts;
mod protocol;
mod reads;
mod sweep;

fn funded(db: &mut MemSql, net_wanted: u128) {
    let mut l = Ledger::open(db).unwrap();
    l.reserve("fund", "fp", net_wanted, T0).unwrap();
    l.settle("fund", &settlement("0xfund", 0), T0).unwrap();
}

// ---------------------------------------------------------------------------------------
// Crashes: a store that fails its n-th statement, to cut operations midway

#[derive(Default)]
struct Fault {
    /// Statements left before the injected failure.
    countdown: Cell<Option<u32>>,
    tripped: Cell<bool>,
}

struct Faulty {
    inner: MemSql,
    fault: Rc<Fault>,
    depth: u32,
}

impl Faulty {
    fn new() -> (Self, Rc<Fault>) {
        let fault = Rc::new(Fault::default());
        let mut db = Faulty {
            inner: MemSql::new(),
            fault: Rc::clone(&fault),
            depth: 0,
        };
        Ledger::open(&mut db).unwrap();
        (db, fault)
    }
}

impl SqlStore for Faulty {
    fn exec(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<Row>, StoreError> {
        match self.fault.countdown.get() {
            Some(0) => {
                self.fault.countdown.set(None);
                self.fault.tripped.set(true);
                return Err(StoreError::Sql("injected crash".into()));
            }
            Some(n) => self.fault.countdown.set(Some(n - 1)),
            None => {}
        }
        self.inner.exec(sql, params)
    }

    fn atomically<T, E>(&mut self, op: &mut dyn FnMut(&mut Self) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.depth += 1;
        let name = format!("fsp{}", self.depth);
        self.inner.exec(&format!("SAVEPOINT {name}"), &[])?;
        let result = op(self);
        if result.is_err() {
            self.inner.exec(&format!("ROLLBACK TO {name}"), &[])?;
        }
        self.inner.exec(&format!("RELEASE {name}"), &[])?;
        self.depth -= 1;
        result
    }
}

/// Every ledger table, in a fixed order.
fn snapshot<S: SqlStore>(s: &mut S) -> Vec<Vec<Row>> {
    [
        "SELECT * FROM ledger_entries ORDER BY seq",
        "SELECT * FROM ledger_payments ORDER BY payment_key",
        "SELECT * FROM ledger_payouts ORDER BY payout_id",
        "SELECT * FROM ledger_balances",
        "SELECT * FROM ledger_days ORDER BY day",
    ]
    .iter()
    .map(|q| s.exec(q, &[]).unwrap())
    .collect()
}
