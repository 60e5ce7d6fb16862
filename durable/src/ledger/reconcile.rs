//! Reconciliation: the chain decides every payment whose settlement outcome the ledger does
//! not know.
//!
//! For each open payment (`unknown`; on demand also `reserved`) the reconciler asks the
//! payment's token over JSON-RPC, through [`ChainRpc`]:
//! 1. once per network and run: `eth_chainId`, which must be the network's chain id (an
//!    RPC that answers for another chain decides nothing), and the latest block's
//!    timestamp (the chain's clock, which is what `validBefore` is checked against);
//! 2. `authorizationState(payer, nonce)` (an `eth_call`): used means the transfer happened:
//!    the transaction is found in the token's `AuthorizationUsed(payer, nonce)` logs and the
//!    payment is booked settled with it, split at the fee recorded when it was reserved;
//! 3. unused, and the chain's clock past `validBefore`: no block can ever include it, so the
//!    payment is voided ([`UNSETTLED_REASON`]);
//! 4. unused and still valid: wait (it may yet settle, or expire).
//!
//! Anything the chain cannot answer (no RPC for the network, an error, a garbage answer, a
//! wrong chain id, a used authorization whose transaction is not in the logs) leaves the
//! payment as it is and is reported: nothing is booked on a guess. Every booking goes
//! through [`Ledger::settle`] or the ledger's own close (`Close::VoidUnsettled`), so it is a
//! journal entry checked by the same invariants as any other, and a payment decided
//! meanwhile by its own call is not booked twice.
//!
//! The JSON-RPC requests and the parsing of answers are pure ([`authorization_state_params`],
//! [`parse_bool_word`], ...); the transport is the caller's ([`ChainRpc`]: `fetch` in the
//! object, a scripted chain in tests, anvil in the end-to-end tests).

use std::collections::BTreeMap;
use std::future::Future;

use serde::Serialize;
use serde_json::{json, Value};

use super::payments::Close;
use super::{check_now, Ledger, LedgerError, PaymentState, Settlement};
use crate::store::SqlStore;
use crate::tenant::Network;

/// `authorizationState(address,bytes32)`'s selector (keccak-256, first 4 bytes).
pub const AUTHORIZATION_STATE_SELECTOR: &str = "e94a0102";
/// `AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)`'s topic.
pub const AUTHORIZATION_USED_TOPIC: &str =
    "0x98de503528ee59b575ef0c0a2576a82497bfc029a5685b209e9ec333479b10a5";
/// The void reason of a payment the chain says can never settle.
pub const UNSETTLED_REASON: &str = "unsettled_expired";
/// The settle reason of a payment booked from the chain.
pub const RECONCILED_REASON: &str = "reconciled_from_chain";
/// Payments asked about per run at most (the alarm runs again when more are open), read a
/// page of [`RECONCILE_PAGE`] at a time.
pub const RECONCILE_BATCH: u32 = 1_000;
pub const RECONCILE_PAGE: u32 = 100;
/// Longest error text kept per payment in a report.
const MAX_ERROR_CHARS: usize = 200;

/// One open payment and what the ledger recorded for the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub key: String,
    pub state: PaymentState,
    pub gross: u128,
    pub network: Option<Network>,
    pub asset: Option<String>,
    pub payer: Option<String>,
    pub nonce: Option<String>,
    pub valid_before_s: Option<i64>,
    pub fee_bps: Option<u32>,
    pub reserved_at_ms: i64,
}

/// What the chain says about one authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainAnswer {
    /// Used: the transfer happened, in `tx` when the logs name it.
    Used { tx: Option<String> },
    /// Not used, as of a block with timestamp `chain_time_s`.
    Unused { chain_time_s: i64 },
}

/// What reconciling one payment did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Outcome {
    Settled { tx: String },
    Voided,
    Waiting { why: String },
}

impl<S: SqlStore> Ledger<'_, S> {
    /// Open payments, oldest first, at most `max`: the `unknown` ones, and with
    /// `include_reserved` the `reserved` ones too (an on-demand run: a payment still in
    /// flight is only booked if the chain already decided it).
    pub fn pending_payments(
        &mut self,
        include_reserved: bool,
        max: u32,
    ) -> Result<Vec<Pending>, LedgerError> {
        self.pending_after(include_reserved, None, max)
    }

    /// The payment `key` if it is open (reserved or unknown).
    pub fn pending_payment(&mut self, key: &str) -> Result<Option<Pending>, LedgerError> {
        let Some(p) = self.payment(key)? else {
            return Ok(None);
        };
        if !matches!(p.state, PaymentState::Reserved | PaymentState::Unknown) {
            return Ok(None);
        }
        Ok(Some(Pending {
            key: p.key,
            state: p.state,
            gross: p.gross,
            network: p.network,
            asset: p.asset,
            payer: p.payer,
            nonce: p.nonce,
            valid_before_s: p.valid_before_s,
            fee_bps: p.fee_bps,
            reserved_at_ms: p.reserved_at_ms,
        }))
    }

    /// [`Ledger::pending_payments`] after `cursor` (a payment's `(reserved_at_ms, key)`).
    pub fn pending_after(
        &mut self,
        include_reserved: bool,
        cursor: Option<(i64, &str)>,
        max: u32,
    ) -> Result<Vec<Pending>, LedgerError> {
        let states = if include_reserved {
            "('unknown', 'reserved')"
        } else {
            "('unknown')"
        };
        let (at, key) = cursor.unwrap_or((-1, ""));
        let rows = self.store.exec(
            &format!(
                "SELECT payment_key, state, gross, network, asset, payer, nonce, valid_before_s,
                    fee_bps, reserved_at_ms
                 FROM ledger_payments WHERE state IN {states}
                    AND (reserved_at_ms > ? OR (reserved_at_ms = ? AND payment_key > ?))
                 ORDER BY reserved_at_ms, payment_key LIMIT ?"
            ),
            &[at.into(), at.into(), key.into(), max.into()],
        )?;
        rows.iter()
            .map(|r| {
                Ok(Pending {
                    key: r.text(0)?.to_owned(),
                    state: PaymentState::parse(r.text(1)?)?,
                    gross: super::amount_at(r, 2)?,
                    network: super::opt_network_at(r, 3)?,
                    asset: super::opt_string_at(r, 4)?,
                    payer: super::opt_string_at(r, 5)?,
                    nonce: super::opt_string_at(r, 6)?,
                    valid_before_s: r.opt_int(7)?,
                    fee_bps: super::opt_bps_at(r, 8)?,
                    reserved_at_ms: r.int(9)?,
                })
            })
            .collect()
    }

    /// Books what the chain said about `p`: settled with the transaction, voided when it can
    /// never settle, or nothing (waiting). A payment already decided (by its own call,
    /// meanwhile) is not booked again: its state is reported.
    pub fn apply_chain_answer(
        &mut self,
        p: &Pending,
        answer: &ChainAnswer,
        now_ms: i64,
    ) -> Result<Outcome, LedgerError> {
        check_now(now_ms)?;
        match answer {
            ChainAnswer::Used { tx: None } => Ok(waiting(
                "the authorization is used on chain but its transaction is not in the logs",
            )),
            ChainAnswer::Used { tx: Some(tx) } => {
                let (Some(network), Some(payer), Some(fee_bps)) =
                    (p.network, p.payer.as_deref(), p.fee_bps)
                else {
                    return Ok(waiting("no chain facts were recorded for this payment"));
                };
                let settlement = Settlement {
                    tx_ref: tx,
                    network,
                    payer,
                    local_settlement: false,
                    fee_bps,
                    reason: Some(RECONCILED_REASON),
                };
                let applied = self.settle(&p.key, &settlement, now_ms)?;
                debug_assert_eq!(applied.record.state, PaymentState::Settled);
                Ok(Outcome::Settled { tx: tx.clone() })
            }
            ChainAnswer::Unused { chain_time_s } => match p.valid_before_s {
                Some(before) if *chain_time_s > before => {
                    self.close_payment(&p.key, UNSETTLED_REASON, now_ms, Close::VoidUnsettled)?;
                    Ok(Outcome::Voided)
                }
                Some(before) => Ok(waiting(&format!(
                    "unused on chain and still valid until {before} (chain time {chain_time_s})"
                ))),
                None => Ok(waiting("no validBefore was recorded for this payment")),
            },
        }
    }
}

fn waiting(why: &str) -> Outcome {
    Outcome::Waiting {
        why: why.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// JSON-RPC: requests and answers, pure

/// A JSON-RPC 2.0 request body.
pub fn rpc_request(id: u64, method: &str, params: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// A 32-byte word holding an address, for call data and topics.
fn address_word(address: &str) -> Option<String> {
    let hex = address.strip_prefix("0x")?;
    (hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("{:0>64}", hex.to_ascii_lowercase()))
}

fn word(bytes32: &str) -> Option<String> {
    let hex = bytes32.strip_prefix("0x")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// `eth_call` params of `authorizationState(payer, nonce)` on `asset`, at the latest block.
pub fn authorization_state_params(asset: &str, payer: &str, nonce: &str) -> Option<Value> {
    let data = format!(
        "0x{AUTHORIZATION_STATE_SELECTOR}{}{}",
        address_word(payer)?,
        word(nonce)?
    );
    Some(json!([{"to": asset, "data": data}, "latest"]))
}

/// `eth_getLogs` params for `AuthorizationUsed(payer, nonce)` on `asset`, whole chain.
pub fn authorization_logs_params(asset: &str, payer: &str, nonce: &str) -> Option<Value> {
    Some(json!([{
        "address": asset,
        "fromBlock": "0x0",
        "toBlock": "latest",
        "topics": [
            AUTHORIZATION_USED_TOPIC,
            format!("0x{}", address_word(payer)?),
            format!("0x{}", word(nonce)?),
        ],
    }]))
}

/// The `result` of a JSON-RPC answer, or why there is none.
pub fn parse_result(body: &[u8]) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON-RPC: {e}"))?;
    if let Some(err) = v.get("error") {
        let msg = err.get("message").and_then(Value::as_str).unwrap_or("?");
        return Err(format!("RPC error: {}", clip(msg)));
    }
    v.get("result")
        .cloned()
        .ok_or_else(|| "JSON-RPC answer without result".to_owned())
}

/// A hex quantity (`0x14a34`).
pub fn parse_quantity(v: &Value) -> Result<u64, String> {
    let s = v.as_str().ok_or("quantity is not a string")?;
    let hex = s.strip_prefix("0x").ok_or("quantity without 0x")?;
    if hex.is_empty() || hex.len() > 16 {
        return Err(format!("quantity {} out of range", clip(s)));
    }
    u64::from_str_radix(hex, 16).map_err(|_| format!("bad quantity {}", clip(s)))
}

/// An ABI-encoded `bool` (one 32-byte word, 0 or 1).
pub fn parse_bool_word(v: &Value) -> Result<bool, String> {
    let s = v.as_str().ok_or("call result is not a string")?;
    let w = word(s).ok_or_else(|| format!("call result {} is not one word", clip(s)))?;
    match w.trim_start_matches('0') {
        "" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("call result {} is not a bool", clip(s))),
    }
}

/// The transaction of the first matching log, if any.
pub fn parse_log_tx(v: &Value) -> Result<Option<String>, String> {
    let logs = v.as_array().ok_or("logs are not an array")?;
    let Some(first) = logs.first() else {
        return Ok(None);
    };
    let tx = first
        .get("transactionHash")
        .and_then(Value::as_str)
        .ok_or("log without transactionHash")?;
    word(tx)
        .map(|w| Some(format!("0x{w}")))
        .ok_or_else(|| format!("bad transaction hash {}", clip(tx)))
}

/// The timestamp of a block object.
pub fn parse_block_time(v: &Value) -> Result<i64, String> {
    let t = parse_quantity(v.get("timestamp").ok_or("block without timestamp")?)?;
    i64::try_from(t).map_err(|_| "block timestamp out of range".to_owned())
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_ERROR_CHARS).collect()
}

// ---------------------------------------------------------------------------------------
// The run

/// The chain, as the reconciler reaches it: one JSON-RPC call on `network`'s endpoint,
/// answering the call's `result` (see [`parse_result`]) or why there is none.
pub trait ChainRpc {
    fn call(
        &mut self,
        network: Network,
        method: &str,
        params: Value,
    ) -> impl Future<Output = Result<Value, String>>;
}

/// One payment's line in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decided {
    pub key: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What a run did, and what is left open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    pub checked: u64,
    pub settled: u64,
    pub voided: u64,
    pub waiting: u64,
    pub payments: Vec<Decided>,
    /// Open payments after the run.
    pub unknown_left: u64,
    pub reserved_left: u64,
}

/// Per network and run: the chain checked once, and its clock.
async fn chain_time<R: ChainRpc>(rpc: &mut R, network: Network) -> Result<i64, String> {
    let id = parse_quantity(&rpc.call(network, "eth_chainId", json!([])).await?)?;
    if id != network.chain_id() {
        return Err(format!(
            "the RPC for {} answers for chain {id}, not {}",
            network.caip2(),
            network.chain_id()
        ));
    }
    let block = rpc
        .call(network, "eth_getBlockByNumber", json!(["latest", false]))
        .await?;
    parse_block_time(&block)
}

async fn ask<R: ChainRpc>(
    rpc: &mut R,
    p: &Pending,
    network: Network,
    chain_time_s: i64,
) -> Result<ChainAnswer, String> {
    let (Some(asset), Some(payer), Some(nonce)) =
        (p.asset.as_deref(), p.payer.as_deref(), p.nonce.as_deref())
    else {
        return Err("no chain facts were recorded for this payment".into());
    };
    let params = authorization_state_params(asset, payer, nonce).ok_or("bad chain facts")?;
    let used = parse_bool_word(&rpc.call(network, "eth_call", params).await?)?;
    if !used {
        return Ok(ChainAnswer::Unused { chain_time_s });
    }
    let params = authorization_logs_params(asset, payer, nonce).ok_or("bad chain facts")?;
    let tx = parse_log_tx(&rpc.call(network, "eth_getLogs", params).await?)?;
    Ok(ChainAnswer::Used { tx })
}

/// Asks the chain about up to `max` open payments and books what it says. `now_ms` stamps
/// the entries. Errors of the chain are per payment (in the report); an error of the
/// ledger ends the run (what was booked stays booked: each booking is atomic).
pub async fn reconcile<S: SqlStore, R: ChainRpc>(
    store: &mut S,
    rpc: &mut R,
    include_reserved: bool,
    max: u32,
    now_ms: i64,
) -> Result<ReconcileReport, LedgerError> {
    let mut clocks: BTreeMap<&'static str, Result<i64, String>> = BTreeMap::new();
    let mut report = ReconcileReport::default();
    let mut cursor: Option<(i64, String)> = None;
    loop {
        let room = max.saturating_sub(u32::try_from(report.checked).unwrap_or(u32::MAX));
        if room == 0 {
            break;
        }
        let page = Ledger::open(&mut *store)?.pending_after(
            include_reserved,
            cursor.as_ref().map(|(at, k)| (*at, k.as_str())),
            room.min(RECONCILE_PAGE),
        )?;
        let Some(last) = page.last() else {
            break;
        };
        cursor = Some((last.reserved_at_ms, last.key.clone()));
        let full = page.len() == usize::try_from(room.min(RECONCILE_PAGE)).unwrap_or(0);
        decide_page(store, rpc, &page, &mut clocks, &mut report, now_ms).await?;
        if !full {
            break;
        }
    }
    let open = store.query_one(
        "SELECT SUM(state = 'unknown'), SUM(state = 'reserved') FROM ledger_payments
         WHERE state IN ('unknown', 'reserved')",
        &[],
    )?;
    report.unknown_left = open.opt_int(0)?.unwrap_or(0).try_into().unwrap_or(0);
    report.reserved_left = open.opt_int(1)?.unwrap_or(0).try_into().unwrap_or(0);
    Ok(report)
}

/// Asks the chain about the one open payment `key` (a retry of it came in); `None` when it
/// is not open. Books what the chain says, as a run would.
pub async fn reconcile_one<S: SqlStore, R: ChainRpc>(
    store: &mut S,
    rpc: &mut R,
    key: &str,
    now_ms: i64,
) -> Result<Option<Outcome>, LedgerError> {
    let open = Ledger::open(&mut *store)?.pending_payment(key)?;
    let Some(p) = open else {
        return Ok(None);
    };
    let mut clocks = BTreeMap::new();
    let mut report = ReconcileReport::default();
    decide_page(
        store,
        rpc,
        std::slice::from_ref(&p),
        &mut clocks,
        &mut report,
        now_ms,
    )
    .await?;
    Ok(report.payments.pop().map(|d| d.outcome))
}

async fn decide_page<S: SqlStore, R: ChainRpc>(
    store: &mut S,
    rpc: &mut R,
    pending: &[Pending],
    clocks: &mut BTreeMap<&'static str, Result<i64, String>>,
    report: &mut ReconcileReport,
    now_ms: i64,
) -> Result<(), LedgerError> {
    for p in pending {
        report.checked += 1;
        let answer = match p.network {
            None => Err("no chain facts were recorded for this payment".to_owned()),
            Some(network) => {
                if !clocks.contains_key(network.caip2()) {
                    let t = chain_time(rpc, network).await;
                    clocks.insert(network.caip2(), t);
                }
                match clocks.get(network.caip2()) {
                    Some(Ok(t)) => ask(rpc, p, network, *t).await,
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("unreachable".to_owned()),
                }
            }
        };
        let outcome = match answer {
            Err(e) => waiting(&clip(&e)),
            Ok(a) => match Ledger::open(&mut *store)?.apply_chain_answer(p, &a, now_ms) {
                Ok(o) => o,
                // Decided meanwhile by its own call, or refused by the ledger's rules (a
                // transaction already recorded for another payment): reported, not booked.
                Err(e @ (LedgerError::Invalid { .. } | LedgerError::Store(_))) => return Err(e),
                Err(LedgerError::Corrupt(c)) => return Err(LedgerError::Corrupt(c)),
                Err(e) => waiting(&e.to_string()),
            },
        };
        match &outcome {
            Outcome::Settled { .. } => report.settled += 1,
            Outcome::Voided => report.voided += 1,
            Outcome::Waiting { .. } => report.waiting += 1,
        }
        report.payments.push(Decided {
            key: p.key.clone(),
            outcome,
        });
    }
    Ok(())
}
