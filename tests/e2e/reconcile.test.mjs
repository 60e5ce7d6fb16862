// Books that match the chain when answers are lost: a real local chain, the official
// facilitator logic, the dispatcher on workerd. Faults are injected between the platform
// and those real parts by tests/fakes/fault_proxy.mjs (a facilitator that settles and then
// drops the connection; an RPC provider that is down, lies about its chain or answers
// garbage), and workerd itself is killed with SIGKILL under load.
//
// After reconciliation the tenant's settled entries must equal the chain's transfers to its
// payTo, in count, sum and transaction hashes, and nothing may stay open where the chain
// can answer.

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { startPlatform, admin, getJson, tempStateDir, childPids } from "./harness.mjs";
import { startChainAndFacilitator, paidFetch } from "../../scripts/local/payments.mjs";
import { startFaultProxy } from "../fakes/fault_proxy.mjs";

const PAYOUT_TOKEN = "reconcile-payout-token";
const PRICE = 1500n;
const auth = { authorization: `Bearer ${PAYOUT_TOKEN}` };

/// An official v2 client paying as `account`; `seen` collects its payment headers.
const payingFetch = (pay, account, seen = []) => paidFetch(pay, account, { maxAmountAtomic: PRICE, seen });

const receiptOf = (r) => {
  const h = r.headers.get("payment-response");
  return h ? JSON.parse(Buffer.from(h, "base64").toString("utf8")) : null;
};

async function journal(base, slug) {
  const entries = [];
  let after = 0;
  for (;;) {
    const page = await getJson(`${base}/__platform/ledger/${slug}/entries?after=${after}&limit=500`, { headers: auth });
    assert.equal(page.status, 200, page.text);
    entries.push(...page.json.entries);
    if (!page.json.hasMore) return entries;
    after = page.json.nextCursor;
  }
}

async function earnings(base, slug) {
  const r = await getJson(`${base}/__platform/ledger/${slug}/earnings`, { headers: auth });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

async function reconcileNow(base, slug) {
  const r = await fetch(`${base}/__platform/ledger/${slug}/reconcile`, { method: "POST", headers: auth });
  const json = await r.json();
  assert.equal(r.status, 200, JSON.stringify(json));
  return json;
}

/// The tenant's settled entries against the chain's transfers to payTo since `fromBlock`.
async function assertBooksMatchChain(pay, base, slug, payTo, fromBlock) {
  const settled = (await journal(base, slug)).filter((e) => e.kind === "payment_settled");
  const transfers = await pay.chain.transfersTo(payTo, { fromBlock });
  assert.equal(settled.length, transfers.length, "one settled entry per transfer");
  assert.equal(
    settled.reduce((a, e) => a + BigInt(e.amount), 0n),
    transfers.reduce((a, t) => a + t.value, 0n),
    "settled gross equals the chain's sum",
  );
  assert.deepEqual(
    settled.map((e) => e.txRef.toLowerCase()).sort(),
    transfers.map((t) => t.txHash.toLowerCase()).sort(),
    "the same transactions",
  );
  return settled.length;
}

async function putTenant(base, pay, slug) {
  const put = await admin(base).put(slug, {
    resourceType: "function",
    workerName: "demo-fn",
    plan: "pro",
    price: pay.tenantPrice({ amountAtomic: PRICE.toString(), payTo: pay.accounts.creator.address }),
  });
  assert.equal(put.status, 201, put.text);
}

describe("reconciliation against a real chain", () => {
  let pay;
  let facilitator;
  let rpc;
  let p;
  before(async () => {
    pay = await startChainAndFacilitator();
    facilitator = await startFaultProxy(pay.facilitatorUrl);
    rpc = await startFaultProxy(pay.chain.rpcUrl);
    p = await startPlatform({
      vars: {
        FACILITATOR_URL: facilitator.url,
        CHAIN_RPC_URLS: JSON.stringify({ [pay.network]: rpc.url }),
        PLATFORM_PAYOUT_TOKEN: PAYOUT_TOKEN,
        // A settle that lands and then hangs is cut by the platform's own timeout.
        FACILITATOR_TIMEOUT_MS: "3000",
      },
    });
  });
  after(async () => {
    await p?.dispose();
    await facilitator?.close();
    await rpc?.close();
    await pay?.stop();
  });

  /// A new tenant and one paid call to it whose settlement goes through the fault proxy in
  /// `mode`: the call's answer, its payment header, and where the chain stood before.
  async function faultedCall(slug, payer, mode, status = 502) {
    await putTenant(p.url, pay, slug);
    const fromBlock = (await pay.chain.publicClient.getBlockNumber()) + 1n;
    facilitator.setMode(mode, { path: "/settle" });
    const sent = [];
    const r = await payingFetch(pay, pay.accounts.payers[payer], sent)(`${p.url}/t/${slug}/hello`);
    facilitator.setMode("pass");
    assert.equal(r.status, status, "the caller is told settlement failed");
    return { r, sent, fromBlock, payTo: pay.accounts.creator.address };
  }

  test("a settlement whose answer is lost is unknown, then booked from the chain once the RPC answers honestly", async () => {
    const slug = "rc-lost-answer";
    const { r, sent, fromBlock, payTo } = await faultedCall(slug, 0, "answer-then-drop");
    assert.equal(sent.length, 1);
    const problem = await r.json();
    assert.equal(problem.code, "facilitator_unavailable");
    assert.match(problem.detail, /reconciled against the chain/);
    // The chain moved the money; the ledger does not pretend to know.
    assert.equal((await pay.chain.transfersTo(payTo, { fromBlock })).length, 1);
    let e = await earnings(p.url, slug);
    assert.deepEqual([e.unknown, e.unknownCount, e.gross, e.pending], [PRICE.toString(), 1, "0", "0"]);
    assert.deepEqual((await journal(p.url, slug)).map((x) => x.kind), ["payment_reserved", "payment_unknown"]);

    // An RPC that is down, lies about its chain, or answers garbage decides nothing.
    for (const mode of ["down", "lie-chain-id", "garbage"]) {
      rpc.setMode(mode);
      const report = await reconcileNow(p.url, slug);
      assert.deepEqual([report.settled, report.voided, report.waiting, report.unknownLeft], [0, 0, 1, 1], mode);
      assert.equal((await journal(p.url, slug)).length, 2, `${mode}: nothing booked`);
    }
    rpc.setMode("pass");
    const report = await reconcileNow(p.url, slug);
    assert.deepEqual([report.settled, report.unknownLeft, report.reservedLeft], [1, 0, 0]);
    e = await earnings(p.url, slug);
    assert.deepEqual([e.gross, e.unknown, e.unknownCount], [PRICE.toString(), "0", 0]);
    assert.equal(await assertBooksMatchChain(pay, p.url, slug, payTo, fromBlock), 1);
    const settled = (await journal(p.url, slug)).find((x) => x.kind === "payment_settled");
    assert.equal(settled.reason, "reconciled_from_chain");
    // A second run books nothing twice.
    assert.deepEqual([(await reconcileNow(p.url, slug)).checked, (await journal(p.url, slug)).length], [0, 3]);
    // The caller retries with the same payment: the answer it paid for, with the chain's
    // transaction as its receipt, and nothing moves again.
    const retry = await fetch(`${p.url}/t/${slug}/hello`, { headers: { "payment-signature": sent[0] } });
    assert.equal(retry.status, 200, await retry.clone().text());
    assert.equal(retry.headers.get("x-claw-replay"), "true");
    assert.equal(receiptOf(retry).transaction.toLowerCase(), settled.txRef.toLowerCase());
    assert.match(await retry.text(), /hello/);
    assert.equal((await pay.chain.transfersTo(payTo, { fromBlock })).length, 1);
    assert.equal((await journal(p.url, slug)).length, 3);
  });

  test("a settlement that lands and then times out is recovered by a retry even before any reconciliation ran", async () => {
    const slug = "rc-retry-first";
    const { r, sent, fromBlock, payTo } = await faultedCall(slug, 2, "answer-then-hang", 504);
    assert.equal((await r.json()).code, "facilitator_timeout");
    // The retry itself asks the chain (the payment is unknown): settled, so the answer.
    const retry = await fetch(`${p.url}/t/${slug}/hello`, { headers: { "payment-signature": sent[0] } });
    assert.equal(retry.status, 200, await retry.clone().text());
    assert.equal(retry.headers.get("x-claw-replay"), "true");
    const e = await earnings(p.url, slug);
    assert.deepEqual([e.settledCount, e.unknownCount], [1, 0]);
    assert.equal(await assertBooksMatchChain(pay, p.url, slug, payTo, fromBlock), 1);
  });

  test("reconcile needs the payout token and an existing tenant", async () => {
    const r = await fetch(`${p.url}/__platform/ledger/rc-lost-answer/reconcile`, { method: "POST" });
    assert.equal(r.status, 401);
    const missing = await fetch(`${p.url}/__platform/ledger/rc-nobody/reconcile`, { method: "POST", headers: auth });
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).code, "tenant_not_found");
    const get = await fetch(`${p.url}/__platform/ledger/rc-lost-answer/reconcile`, { headers: auth });
    assert.equal(get.status, 405);
  });

  // Last in this chain's life: it moves the chain's clock forward.
  test("a settlement that never reached the chain waits while valid, and is voided once the chain's clock passes validBefore", async () => {
    const slug = "rc-never-sent";
    const { fromBlock, payTo } = await faultedCall(slug, 1, "drop");
    let report = await reconcileNow(p.url, slug);
    assert.deepEqual([report.settled, report.voided, report.waiting], [0, 0, 1], "still valid: it may yet settle");
    // The chain's clock moves past validBefore: no block can include it any more.
    await pay.chain.publicClient.request({ method: "evm_increaseTime", params: [3600] });
    await pay.chain.publicClient.request({ method: "evm_mine", params: [] });
    report = await reconcileNow(p.url, slug);
    assert.deepEqual([report.voided, report.unknownLeft], [1, 0]);
    const kinds = (await journal(p.url, slug)).map((x) => x.kind);
    assert.deepEqual(kinds, ["payment_reserved", "payment_unknown", "payment_voided"]);
    assert.equal(await assertBooksMatchChain(pay, p.url, slug, payTo, fromBlock), 0);
  });
});

/// The pids of this process's workerd children (Miniflare runs one).
const workerdPids = () => childPids("workerd");

describe("workerd killed (SIGKILL) under paid load", () => {
  let pay;
  before(async () => {
    pay = await startChainAndFacilitator();
  });
  after(async () => {
    await pay?.stop();
  });

  test("after a restart and reconciliation the ledger equals the chain's transfers", async () => {
    const N = 24;
    const KILL_AT_SETTLE = 6;
    const slug = "rc-crash";
    const persistDir = tempStateDir();
    // The facilitator is reached through the fault proxy only to know the moment the
    // KILL_AT_SETTLE-th settlement is on chain: workerd is killed right then, before the
    // dispatcher hears of it (the worst moment: funds moved, nothing posted).
    const gate = await startFaultProxy(pay.facilitatorUrl);
    const vars = {
      FACILITATOR_URL: gate.url,
      CHAIN_RPC_URLS: JSON.stringify({ [pay.network]: pay.chain.rpcUrl }),
      PLATFORM_PAYOUT_TOKEN: PAYOUT_TOKEN,
    };
    let p = await startPlatform({ persistDir, vars });
    await putTenant(p.url, pay, slug);
    const payTo = pay.accounts.creator.address;
    const fromBlock = (await pay.chain.publicClient.getBlockNumber()) + 1n;
    assert.ok(workerdPids().length >= 1, "workerd runs as a child of this process");
    let settles = 0;
    let killed = false;
    gate.setMode("pass", {
      path: "/settle",
      onAnswer: async () => {
        settles += 1;
        if (settles === KILL_AT_SETTLE && !killed) {
          killed = true;
          for (const pid of workerdPids()) process.kill(pid, "SIGKILL");
        }
      },
    });

    const outcomes = [];
    const calls = [];
    const payers = pay.accounts.payers.slice(0, 3);
    await Promise.all(
      payers.map(async (account, i) => {
        for (let k = i; k < N; k += payers.length) {
          const sent = [];
          const f = payingFetch(pay, account, sent);
          let status = "lost";
          try {
            const r = await f(`${p.url}/t/${slug}/hello?n=${k}`);
            status = r.status;
            await r.arrayBuffer();
          } catch {}
          outcomes.push(status);
          calls.push({ k, status, payment: sent.at(-1) });
        }
      }),
    );
    await gate.close();
    assert.ok(killed, "workerd was killed mid-load");
    // Miniflare's own shutdown of a dead workerd: bounded, it has nothing left to stop.
    await Promise.race([p.dispose().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
    const transfersAtKill = (await pay.chain.transfersTo(payTo, { fromBlock })).length;
    assert.ok(transfersAtKill >= 1, "some payments settled on chain before the kill");

    // Restart on the same state; reconcile. Reservations still valid on chain wait; once the
    // chain's clock passes their validBefore a second run decides them.
    // Restarted with the facilitator reached directly (the gate that watched it is gone).
    p = await startPlatform({ persistDir, vars: { ...vars, FACILITATOR_URL: pay.facilitatorUrl }, seed: false });
    try {
      const first = await reconcileNow(p.url, slug);
      await pay.chain.publicClient.request({ method: "evm_increaseTime", params: [3600] });
      await pay.chain.publicClient.request({ method: "evm_mine", params: [] });
      const second = await reconcileNow(p.url, slug);
      assert.deepEqual([second.unknownLeft, second.reservedLeft], [0, 0], "nothing left open");
      assert.ok(first.settled + second.settled >= 1, "the settlement cut off by the kill was booked from the chain");
      const settled = await assertBooksMatchChain(pay, p.url, slug, payTo, fromBlock);
      const e = await earnings(p.url, slug);
      assert.equal(BigInt(e.gross), BigInt(settled) * PRICE);
      // Every caller who paid and got no answer retries with the same payment and gets it.
      let lost = 0;
      let recovered = 0;
      for (const c of calls.filter((x) => x.status !== 200 && x.payment)) {
        const retry = await fetch(`${p.url}/t/${slug}/hello?n=${c.k}`, { headers: { "payment-signature": c.payment } });
        const text = await retry.text();
        if (retry.headers.get("x-claw-replay") === "true") {
          lost += 1;
          assert.equal(retry.status, 200, text);
          assert.match(text, new RegExp(`n=${c.k}|hello`));
          recovered += 1;
        }
      }
      assert.ok(recovered >= 1, "the answer cut off by the kill came back");
      assert.equal(settled, calls.filter((c) => c.status === 200).length + recovered, "every settled payment answered once");
      assert.equal((await earnings(p.url, slug)).settledCount, settled, "retries charged nothing");
      // The figures of the crash table.
      console.log(
        JSON.stringify({
          crash: {
            calls: N,
            killedAtSettle: KILL_AT_SETTLE,
            chainTransfers: (await pay.chain.transfersTo(payTo, { fromBlock })).length,
            lostAnswersRetried: lost,
            settledAfterReconciliation: settled,
            bookedByReconciliation: first.settled + second.settled,
            voidedByReconciliation: first.voided + second.voided,
            unknownLeft: second.unknownLeft,
            answers: outcomes.filter((o) => o === 200).length,
            lostAnswersRecovered: recovered,
          },
        }),
      );
    } finally {
      await p.dispose();
    }
  });
});
