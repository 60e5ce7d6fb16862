//! Randomized interleavings of every operation against a reference model.

use super::*;

// ---------------------------------------------------------------------------------------
// Randomized interleavings against a reference model

#[derive(Debug, Clone)]
enum Op {
    Reserve {
        key: u8,
        tamper: bool,
        gross: u128,
    },
    Settle {
        key: u8,
        tx: u8,
        payer: u8,
        local: bool,
        bps: u32,
    },
    Void {
        key: u8,
        reason: u8,
    },
    CreatePayout {
        key: u8,
        tamper: bool,
        amount: u128,
        dest: u8,
    },
    PostPayout {
        which: u8,
        tx: u8,
    },
    VoidPayout {
        which: u8,
        reason: u8,
    },
    /// The dispatcher sent a settlement and got no usable answer.
    MarkUnknown {
        key: u8,
    },
    /// The alarm's sweep: reservations at least `ttl_ms` old become unknown.
    Sweep {
        ttl_ms: i64,
    },
    /// The reconciler books what the chain says about one payment.
    Chain {
        key: u8,
        used: bool,
        tx: u8,
        expired: bool,
    },
}

#[derive(Debug, Clone)]
struct Step {
    op: Op,
    deliveries: u8,
    crash_at: Option<u32>,
    advance_ms: i64,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let gross = prop_oneof![30 => 1u128..5_000, 1 => (u128::MAX / 4)..=u128::MAX];
    let bps = prop_oneof![Just(250u32), Just(500), Just(1_000), 0u32..=10_000];
    prop_oneof![
        3 => (0u8..6, prop::bool::weighted(0.15), gross)
            .prop_map(|(key, tamper, gross)| Op::Reserve { key, tamper, gross }),
        3 => (0u8..6, 0u8..2, 0u8..2, prop::bool::weighted(0.2), bps)
            .prop_map(|(key, tx, payer, local, bps)| Op::Settle { key, tx, payer, local, bps }),
        1 => (0u8..6, 0u8..2).prop_map(|(key, reason)| Op::Void { key, reason }),
        2 => (0u8..4, prop::bool::weighted(0.15), 1u128..3_000, 0u8..2)
            .prop_map(|(key, tamper, amount, dest)| Op::CreatePayout { key, tamper, amount, dest }),
        2 => (0u8..8, 0u8..2).prop_map(|(which, tx)| Op::PostPayout { which, tx }),
        1 => (0u8..8, 0u8..2).prop_map(|(which, reason)| Op::VoidPayout { which, reason }),
        1 => (0u8..6).prop_map(|key| Op::MarkUnknown { key }),
        1 => prop_oneof![Just(0), Just(DAY_MS), Just(3 * DAY_MS)]
            .prop_map(|ttl_ms| Op::Sweep { ttl_ms }),
        2 => (0u8..6, any::<bool>(), 0u8..2, any::<bool>())
            .prop_map(|(key, used, tx, expired)| Op::Chain { key, used, tx, expired }),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    (
        op_strategy(),
        1u8..=3,
        prop::option::weighted(0.25, 0u32..9),
        0i64..(2 * DAY_MS),
    )
        .prop_map(|(op, deliveries, crash_at, advance_ms)| Step {
            op,
            deliveries,
            crash_at,
            advance_ms,
        })
}

/// What a call returned, reduced to what the model predicts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Payment {
        state: PaymentState,
        gross: u128,
        fee: Option<u128>,
        net: Option<u128>,
        replayed: bool,
    },
    Payout {
        id: String,
        state: PayoutState,
        amount: u128,
        replayed: bool,
    },
    Swept(u64),
    /// The chain could not decide it yet.
    Waiting,
    /// Not open (settled, voided or unknown to the ledger): nothing to reconcile.
    NotOpen,
    Failed(&'static str),
}

fn of_payment(p: &Payment, replayed: bool) -> Outcome {
    Outcome::Payment {
        state: p.state,
        gross: p.gross,
        fee: p.fee,
        net: p.net,
        replayed,
    }
}

fn of_payout(p: &Payout, replayed: bool) -> Outcome {
    Outcome::Payout {
        id: p.id.clone(),
        state: p.state,
        amount: p.amount,
        replayed,
    }
}

fn of_payment_model(p: &MPayment, replayed: bool) -> Outcome {
    Outcome::Payment {
        state: p.state,
        gross: p.gross,
        fee: p.fee,
        net: p.net,
        replayed,
    }
}

#[derive(Debug, Clone)]
struct MPayment {
    fingerprint: String,
    gross: u128,
    state: PaymentState,
    /// (tx, payer, local, bps) once settled.
    settled: Option<(String, String, bool, u32)>,
    fee: Option<u128>,
    net: Option<u128>,
    reserved_at: i64,
}

/// What reconciliation books a payment with: the facts [`run`] reserves with.
const CHAIN_FEE_BPS: u32 = 500;

#[derive(Debug, Clone)]
struct MPayout {
    id: String,
    key: String,
    fingerprint: String,
    amount: u128,
    dest: String,
    state: PayoutState,
    tx: Option<String>,
}

/// The ledger's rules, restated as plain maps and counters.
#[derive(Debug, Default)]
struct Model {
    seq: i64,
    payments: BTreeMap<String, MPayment>,
    payouts: Vec<MPayout>,
    reserved: u128,
    reserved_count: u64,
    unknown: u128,
    unknown_count: u64,
    gross: u128,
    fee: u128,
    net: u128,
    settled_count: u64,
    local_net: u128,
    local_count: u64,
    voided_count: u64,
    pending: u128,
    pending_count: u64,
    posted: u128,
    posted_count: u64,
    payouts_voided: u64,
    days: BTreeMap<i64, (u128, u128, u128, u64)>,
}

fn payer(i: u8) -> &'static str {
    if i == 0 {
        PAYER_A
    } else {
        PAYER_B
    }
}

fn dest(i: u8) -> &'static str {
    if i == 0 {
        DEST_A
    } else {
        DEST_B
    }
}

fn model_fee(gross: u128, bps: u32) -> u128 {
    match gross.checked_mul(u128::from(bps)) {
        Some(p) => p / 10_000,
        // Beyond the plain product: the unit-tested closed form.
        None => split_fee(gross, bps).unwrap().0,
    }
}

impl Model {
    fn available(&self) -> u128 {
        self.net - self.pending - self.posted
    }

    /// A settlement's reference: on chain `0xtx<n>` (shared between payments on purpose,
    /// to exercise the one-payment-per-transaction rule); local `local:<fingerprint>`.
    fn tx_ref(&self, key: &str, tx: u8, local: bool) -> String {
        if local {
            let fp = self
                .payments
                .get(key)
                .map_or("none", |p| p.fingerprint.as_str());
            format!("local:{fp}")
        } else {
            format!("0xtx{tx}")
        }
    }

    fn payout_id(&self, which: u8) -> String {
        let i = usize::from(which) % (self.payouts.len() + 1);
        match self.payouts.get(i) {
            Some(p) => p.id.clone(),
            None => "po_999999".into(),
        }
    }

    /// Takes an open payment's gross out of its bucket.
    fn release(&mut self, state: PaymentState, gross: u128) {
        if state == PaymentState::Unknown {
            self.unknown -= gross;
            self.unknown_count -= 1;
        } else {
            self.reserved -= gross;
            self.reserved_count -= 1;
        }
    }

    /// A settlement of `key` with (tx, payer, local, bps), from its own call or the chain.
    fn settle(&mut self, key: &str, wanted: (String, String, bool, u32), now: i64) -> Outcome {
        use Outcome::Failed;
        let tx_ref = wanted.0.clone();
        let local = wanted.2;
        let reused = !local
            && self
                .payments
                .iter()
                .any(|(k, p)| k != key && p.settled.as_ref().is_some_and(|s| s.0 == tx_ref));
        let Some(p) = self.payments.get_mut(key) else {
            return Failed("payment_not_found");
        };
        match p.state {
            PaymentState::Voided => return Failed("payment_already_voided"),
            PaymentState::Settled if p.settled.as_ref() == Some(&wanted) => {
                return of_payment_model(p, true)
            }
            PaymentState::Settled => return Failed("settlement_conflict"),
            PaymentState::Reserved | PaymentState::Unknown => {}
        }
        if reused {
            return Failed("transaction_already_recorded");
        }
        let fee = model_fee(p.gross, wanted.3);
        let net = p.gross - fee;
        let (state, gross) = (p.state, p.gross);
        p.state = PaymentState::Settled;
        p.settled = Some(wanted);
        p.fee = Some(fee);
        p.net = Some(net);
        self.release(state, gross);
        self.seq += 1;
        self.gross += gross;
        self.fee += fee;
        self.net += net;
        self.settled_count += 1;
        if local {
            self.local_net += net;
            self.local_count += 1;
        }
        let d = self.days.entry(now / DAY_MS).or_default();
        *d = (d.0 + gross, d.1 + fee, d.2 + net, d.3 + 1);
        of_payment_model(&self.payments[key], false)
    }

    fn apply(&mut self, op: &Op, now: i64) -> Outcome {
        use Outcome::Failed;
        match op {
            Op::Reserve { key, tamper, gross } => {
                let key = format!("pay-{key}");
                let fp = format!("{}{gross}", if *tamper { "t" } else { "f" });
                if let Some(p) = self.payments.get(&key) {
                    if p.fingerprint != fp || p.gross != *gross {
                        return Failed("payment_key_reused");
                    }
                    return Failed(match p.state {
                        PaymentState::Reserved => "payment_in_flight",
                        PaymentState::Settled => "payment_already_settled",
                        PaymentState::Voided => "payment_already_voided",
                        PaymentState::Unknown => "payment_outcome_unknown",
                    });
                }
                let fits = self
                    .reserved
                    .checked_add(*gross)
                    .and_then(|r| r.checked_add(self.gross))
                    .and_then(|r| r.checked_add(self.unknown));
                if fits.is_none() {
                    return Failed("amount_overflow");
                }
                self.seq += 1;
                self.reserved += gross;
                self.reserved_count += 1;
                let p = MPayment {
                    fingerprint: fp,
                    gross: *gross,
                    state: PaymentState::Reserved,
                    settled: None,
                    fee: None,
                    net: None,
                    reserved_at: now,
                };
                self.payments.insert(key, p);
                Outcome::Payment {
                    state: PaymentState::Reserved,
                    gross: *gross,
                    fee: None,
                    net: None,
                    replayed: false,
                }
            }
            Op::Settle {
                key,
                tx,
                payer: who,
                local,
                bps,
            } => {
                let key = format!("pay-{key}");
                let tx_ref = self.tx_ref(&key, *tx, *local);
                let wanted = (tx_ref, payer(*who).to_owned(), *local, *bps);
                self.settle(&key, wanted, now)
            }
            Op::Void { key, .. } => {
                let key = format!("pay-{key}");
                let Some(p) = self.payments.get_mut(&key) else {
                    return Failed("payment_not_found");
                };
                let replayed = match p.state {
                    PaymentState::Settled => return Failed("payment_already_settled"),
                    PaymentState::Unknown => return Failed("payment_outcome_unknown"),
                    PaymentState::Voided => true,
                    PaymentState::Reserved => false,
                };
                let (state, gross) = (p.state, p.gross);
                if !replayed {
                    p.state = PaymentState::Voided;
                    self.release(state, gross);
                    self.seq += 1;
                    self.voided_count += 1;
                }
                Outcome::Payment {
                    state: PaymentState::Voided,
                    gross,
                    fee: None,
                    net: None,
                    replayed,
                }
            }
            Op::CreatePayout {
                key,
                tamper,
                amount,
                dest: d,
            } => {
                let key = format!("job-{key}");
                let fp = format!("{}:{amount}:{d}", if *tamper { "x" } else { "h" });
                if let Some(p) = self.payouts.iter().find(|p| p.key == key) {
                    return if p.fingerprint == fp && p.amount == *amount && p.dest == dest(*d) {
                        Outcome::Payout {
                            id: p.id.clone(),
                            state: p.state,
                            amount: p.amount,
                            replayed: true,
                        }
                    } else {
                        Failed("idempotency_key_reused")
                    };
                }
                if *amount > self.available() {
                    return Failed("insufficient_funds");
                }
                self.seq += 1;
                let id = format!("po_{}", self.seq);
                self.pending += amount;
                self.pending_count += 1;
                self.payouts.push(MPayout {
                    id: id.clone(),
                    key,
                    fingerprint: fp,
                    amount: *amount,
                    dest: dest(*d).to_owned(),
                    state: PayoutState::Pending,
                    tx: None,
                });
                Outcome::Payout {
                    id,
                    state: PayoutState::Pending,
                    amount: *amount,
                    replayed: false,
                }
            }
            Op::PostPayout { which, tx } => {
                let id = self.payout_id(*which);
                let tx = format!("0xpo{tx}");
                let Some(p) = self.payouts.iter_mut().find(|p| p.id == id) else {
                    return Failed("payout_not_found");
                };
                let replayed = match p.state {
                    PayoutState::Posted if p.tx.as_deref() == Some(tx.as_str()) => true,
                    PayoutState::Posted => return Failed("payout_already_posted"),
                    PayoutState::Voided => return Failed("payout_already_voided"),
                    PayoutState::Pending => false,
                };
                if !replayed {
                    p.state = PayoutState::Posted;
                    p.tx = Some(tx);
                    self.seq += 1;
                    self.pending -= p.amount;
                    self.pending_count -= 1;
                    self.posted += p.amount;
                    self.posted_count += 1;
                }
                Outcome::Payout {
                    id,
                    state: PayoutState::Posted,
                    amount: p.amount,
                    replayed,
                }
            }
            Op::MarkUnknown { key } => {
                let key = format!("pay-{key}");
                let Some(p) = self.payments.get_mut(&key) else {
                    return Failed("payment_not_found");
                };
                let replayed = match p.state {
                    PaymentState::Settled => return Failed("payment_already_settled"),
                    PaymentState::Voided => return Failed("payment_already_voided"),
                    PaymentState::Unknown => true,
                    PaymentState::Reserved => false,
                };
                if !replayed {
                    p.state = PaymentState::Unknown;
                    let gross = p.gross;
                    self.seq += 1;
                    self.release(PaymentState::Reserved, gross);
                    self.unknown += gross;
                    self.unknown_count += 1;
                }
                let p = &self.payments[&key];
                of_payment_model(p, replayed)
            }
            Op::Sweep { ttl_ms } => {
                let due: Vec<String> = self
                    .payments
                    .iter()
                    .filter(|(_, p)| {
                        p.state == PaymentState::Reserved && p.reserved_at <= now - ttl_ms
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in &due {
                    let gross = self.payments[key].gross;
                    if let Some(p) = self.payments.get_mut(key) {
                        p.state = PaymentState::Unknown;
                    }
                    self.seq += 1;
                    self.release(PaymentState::Reserved, gross);
                    self.unknown += gross;
                    self.unknown_count += 1;
                }
                Outcome::Swept(due.len() as u64)
            }
            Op::Chain {
                key,
                used,
                tx,
                expired,
            } => {
                let key = format!("pay-{key}");
                let open = self.payments.get(&key).is_some_and(|p| {
                    matches!(p.state, PaymentState::Reserved | PaymentState::Unknown)
                });
                if !open {
                    return Outcome::NotOpen;
                }
                if *used {
                    let wanted = (
                        format!("0xtx{tx}"),
                        PAYER_A.to_owned(),
                        false,
                        CHAIN_FEE_BPS,
                    );
                    self.settle(&key, wanted, now)
                } else if *expired {
                    let p = self.payments.get_mut(&key).expect("open");
                    let (state, gross) = (p.state, p.gross);
                    p.state = PaymentState::Voided;
                    self.release(state, gross);
                    self.seq += 1;
                    self.voided_count += 1;
                    of_payment_model(&self.payments[&key], false)
                } else {
                    Outcome::Waiting
                }
            }
            Op::VoidPayout { which, .. } => {
                let id = self.payout_id(*which);
                let Some(p) = self.payouts.iter_mut().find(|p| p.id == id) else {
                    return Failed("payout_not_found");
                };
                let replayed = match p.state {
                    PayoutState::Posted => return Failed("payout_already_posted"),
                    PayoutState::Voided => true,
                    PayoutState::Pending => false,
                };
                if !replayed {
                    p.state = PayoutState::Voided;
                    self.seq += 1;
                    self.pending -= p.amount;
                    self.pending_count -= 1;
                    self.payouts_voided += 1;
                }
                Outcome::Payout {
                    id,
                    state: PayoutState::Voided,
                    amount: p.amount,
                    replayed,
                }
            }
        }
    }
}

/// Runs `op` on the real ledger, with the same inputs the model derives.
fn run<S: SqlStore>(l: &mut Ledger<'_, S>, m: &Model, op: &Op, now: i64) -> Outcome {
    let r = match op {
        Op::Reserve { key, tamper, gross } => {
            let fp = format!("{}{gross}", if *tamper { "t" } else { "f" });
            let nonce = format!("0x{:064x}", key);
            let facts = ChainFacts {
                network: Network::BaseSepolia,
                asset: USDC,
                payer: PAYER_A,
                nonce: &nonce,
                valid_before_s: now / 1_000 + 300,
                fee_bps: CHAIN_FEE_BPS,
            };
            l.reserve_with(&format!("pay-{key}"), &fp, *gross, Some(&facts), now)
                .map(|p| of_payment(&p, false))
        }
        Op::MarkUnknown { key } => l
            .mark_unknown(&format!("pay-{key}"), "settle timed out", now)
            .map(|a| of_payment(&a.record, a.replayed)),
        Op::Sweep { ttl_ms } => l
            .sweep_expired(now, *ttl_ms, SWEEP_BATCH)
            .map(|r| Outcome::Swept(r.marked_unknown)),
        Op::Chain {
            key,
            used,
            tx,
            expired,
        } => chain(l, *key, *used, *tx, *expired, now),
        Op::Settle {
            key,
            tx,
            payer: who,
            local,
            bps,
        } => {
            let tx = m.tx_ref(&format!("pay-{key}"), *tx, *local);
            let s = Settlement {
                tx_ref: &tx,
                network: Network::BaseSepolia,
                payer: payer(*who),
                local_settlement: *local,
                fee_bps: *bps,
                reason: None,
            };
            l.settle(&format!("pay-{key}"), &s, now)
                .map(|a| of_payment(&a.record, a.replayed))
        }
        Op::Void { key, reason } => l
            .void(&format!("pay-{key}"), &format!("reason {reason}"), now)
            .map(|a| of_payment(&a.record, a.replayed)),
        Op::CreatePayout {
            key,
            tamper,
            amount,
            dest: d,
        } => {
            let fp = format!("{}:{amount}:{d}", if *tamper { "x" } else { "h" });
            l.create_payout(&format!("job-{key}"), &fp, *amount, dest(*d), now)
                .map(|a| of_payout(&a.record, a.replayed))
        }
        Op::PostPayout { which, tx } => l
            .post_payout(&m.payout_id(*which), &format!("0xpo{tx}"), now)
            .map(|a| of_payout(&a.record, a.replayed)),
        Op::VoidPayout { which, reason } => l
            .void_payout(&m.payout_id(*which), &format!("reason {reason}"), now)
            .map(|a| of_payout(&a.record, a.replayed)),
    };
    match r {
        Ok(o) => o,
        Err(e) => Outcome::Failed(e.code().as_str()),
    }
}

const USDC: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";

/// The reconciler's step for one payment, with the chain's answer made up by the op.
fn chain<S: SqlStore>(
    l: &mut Ledger<'_, S>,
    key: u8,
    used: bool,
    tx: u8,
    expired: bool,
    now: i64,
) -> Result<Outcome, LedgerError> {
    let key = format!("pay-{key}");
    let pending = l.pending_payments(true, 1_000)?;
    let Some(p) = pending.iter().find(|p| p.key == key) else {
        return Ok(Outcome::NotOpen);
    };
    let answer = if used {
        reconcile::ChainAnswer::Used {
            tx: Some(format!("0xtx{tx}")),
        }
    } else {
        let before = p.valid_before_s.expect("reserved with facts");
        reconcile::ChainAnswer::Unused {
            chain_time_s: if expired { before + 1 } else { before },
        }
    };
    // Derived from the answer alone: a read after the write would be one more statement
    // for the crash injection to land on.
    let (state, fee, net) = match l.apply_chain_answer(p, &answer, now)? {
        reconcile::Outcome::Waiting { .. } => return Ok(Outcome::Waiting),
        reconcile::Outcome::Voided => (PaymentState::Voided, None, None),
        reconcile::Outcome::Settled { .. } => {
            let (fee, net) = split_fee(p.gross, CHAIN_FEE_BPS)?;
            (PaymentState::Settled, Some(fee), Some(net))
        }
    };
    Ok(Outcome::Payment {
        state,
        gross: p.gross,
        fee,
        net,
        replayed: false,
    })
}

/// Every invariant, checked on the real ledger and against the model.
fn check_all(db: &mut Faulty, m: &Model, page: u32) -> Result<(), TestCaseError> {
    let mut l = Ledger::open(db).unwrap();
    let report = l
        .audit()
        .map_err(|e| TestCaseError::fail(format!("audit: {e}")))?;
    prop_assert_eq!(report.entries, u64::try_from(m.seq).unwrap());

    let e = l.earnings(MAX_DAYS).unwrap();
    prop_assert_eq!(e.gross, e.fees + e.net, "gross = fee + net");
    prop_assert_eq!(
        e.net,
        e.available + e.payouts_pending + e.paid_out,
        "money conserved"
    );
    prop_assert_eq!(
        (e.gross, e.fees, e.net, e.settled_count),
        (m.gross, m.fee, m.net, m.settled_count)
    );
    prop_assert_eq!((e.local_net, e.local_count), (m.local_net, m.local_count));
    prop_assert_eq!(
        (e.pending, e.pending_count, e.voided_count),
        (m.reserved, m.reserved_count, m.voided_count)
    );
    prop_assert_eq!((e.unknown, e.unknown_count), (m.unknown, m.unknown_count));
    prop_assert_eq!(
        (e.payouts_pending, e.payouts_pending_count),
        (m.pending, m.pending_count)
    );
    prop_assert_eq!(
        (e.paid_out, e.paid_out_count, e.payouts_voided_count),
        (m.posted, m.posted_count, m.payouts_voided)
    );
    prop_assert_eq!(e.available, m.available());
    prop_assert_eq!(e.last_seq, m.seq);
    let days: Vec<_> = e
        .days
        .iter()
        .map(|d| (d.gross, d.fee, d.net, d.count))
        .collect();
    let want: Vec<_> = m.days.values().copied().collect();
    prop_assert_eq!(days, want);

    // Seq: 1..=n, strictly increasing, no gaps, for any page size.
    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let p = l.entries(after, page).unwrap();
        prop_assert!(p.entries.len() <= page as usize);
        seqs.extend(p.entries.iter().map(|e| e.seq));
        after = p.next_cursor;
        if !p.has_more {
            break;
        }
    }
    prop_assert_eq!(seqs, (1..=m.seq).collect::<Vec<_>>());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// Random interleavings of every operation, each delivered 1-3 times, some cut short by
    /// a crash at a random statement: after every step the ledger matches the model and
    /// every invariant holds.
    #[test]
    fn ledger_matches_model_under_duplicates_and_crashes(
        steps in proptest::collection::vec(step_strategy(), 1..60),
        page in 1u32..9,
    ) {
        let (mut db, fault) = Faulty::new();
        let mut m = Model::default();
        let mut now = T0;
        for step in &steps {
            now += step.advance_ms;
            let mut deliveries = u32::from(step.deliveries);
            if let Some(n) = step.crash_at {
                let before = snapshot(&mut db);
                let mut l = Ledger::open(&mut db).unwrap();
                fault.tripped.set(false);
                fault.countdown.set(Some(n));
                let got = run(&mut l, &m, &step.op, now);
                fault.countdown.set(None);
                if fault.tripped.get() {
                    prop_assert_eq!(got, Outcome::Failed("internal_error"));
                    prop_assert_eq!(snapshot(&mut db), before, "crash left partial writes");
                } else {
                    // The operation finished before the crash point: a normal delivery.
                    let want = m.apply(&step.op, now);
                    prop_assert_eq!(got, want, "{:?}", step.op);
                    deliveries -= 1;
                }
            }
            for _ in 0..deliveries {
                let want = m.apply(&step.op, now);
                let mut l = Ledger::open(&mut db).unwrap();
                let got = run(&mut l, &m, &step.op, now);
                prop_assert_eq!(got, want, "{:?}", step.op);
            }
            check_all(&mut db, &m, page)?;
        }
    }
}
