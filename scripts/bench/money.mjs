// Money figures on a real local chain, the built Worker on workerd (Miniflare's API, direct
// sockets, inspector off), loopback only. Indicative on a shared 2-core machine.
//
// 1. Paid calls through the dispatcher on the chain: calls/s and the latency of a paid call
//    (p50/p99), and the facilitator's settle latency as the facilitator measures it.
// 2. Reconciliation time per 1,000 unknown payments (the ledger object asks the chain about
//    each: one eth_call; here all unused and valid, so each waits).
// 3. What keeping a paid answer adds to a paid call (one ledger round trip).
// 4. The crash table (last: it moves the chain's clock): BENCH_CALLS paid calls by
//    BENCH_PAYERS official v2 clients in parallel; workerd is killed with SIGKILL after
//    BENCH_KILL_AFTER answers; restarted on the same state; every caller without an answer
//    retries with the same payment; reconciled on demand (and once more after the chain's
//    clock passes every validBefore). Printed: transfers on chain, ledger settled / reserved
//    / unknown before and after, lost answers and their retries.

import { performance } from "node:perf_hooks";
import { startLocal, seedDemoTenants, DEV_ADMIN_TOKEN } from "../local/runtime.mjs";
import { startChainAndFacilitator, paidFetch } from "../local/payments.mjs";
import { tempStateDir, childPids } from "../../tests/e2e/harness.mjs";
import { randomNonce } from "../../tests/e2e/x402_client.mjs";

const CALLS = Number(process.env.BENCH_CALLS ?? 200);
const KILL_AFTER = Number(process.env.BENCH_KILL_AFTER ?? 80);
const UNKNOWN = Number(process.env.BENCH_UNKNOWN ?? 1000);
const PAYERS = Number(process.env.BENCH_PAYERS ?? 3);
const TOKEN = "bench-payout-token";
const PRICE = "1000";
const auth = { authorization: `Bearer ${TOKEN}` };
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

const payingFetch = (pay, account) => paidFetch(pay, account, { maxAmountAtomic: PRICE });

async function earnings(base, slug) {
  return (await fetch(`${base}/__platform/ledger/${slug}/earnings`, { headers: auth })).json();
}

async function reconcile(base, slug) {
  return (await fetch(`${base}/__platform/ledger/${slug}/reconcile`, { method: "POST", headers: auth })).json();
}

const workerdPids = () => childPids("workerd");

const pay = await startChainAndFacilitator();
const settleMs = [];
const payTo = pay.accounts.creator.address;
const vars = {
  FACILITATOR_URL: pay.facilitatorUrl,
  CHAIN_RPC_URLS: JSON.stringify({ [pay.network]: pay.chain.rpcUrl }),
  PLATFORM_PAYOUT_TOKEN: TOKEN,
};
const tenant = (slug) => ({ [slug]: { resourceType: "function", workerName: "demo-fn", plan: "pro", price: pay.tenantPrice({ amountAtomic: PRICE, payTo }) } });
try {
  // 1. Paid calls on the chain, a fresh platform.
  let p = await startLocal({ persistDir: tempStateDir(), vars, directSockets: true });
  await seedDemoTenants(p.url, DEV_ADMIN_TOKEN, tenant("paid"));
  const lat = [];
  const n = Math.max(30, Math.floor(CALLS / 4));
  const t0 = performance.now();
  await Promise.all(
    pay.accounts.payers.slice(0, PAYERS).map(async (account, i) => {
      const f = payingFetch(pay, account);
      for (let k = i; k < n; k += PAYERS) {
        const s = performance.now();
        const r = await f(`${p.url}/t/paid/hello?n=${k}`);
        await r.arrayBuffer();
        if (r.status !== 200) throw new Error(`paid call answered ${r.status}`);
        lat.push(performance.now() - s);
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  console.log(`\n1. Paid calls on the local chain (${n} calls, ${PAYERS} payers in parallel, official v2 client incl. its 402 round trip and signing)`);
  console.log(`   ${(n / secs).toFixed(1)} paid calls/s; latency p50 ${pct(lat, 50).toFixed(0)} ms, p99 ${pct(lat, 99).toFixed(0)} ms`);
  const st = pay.facilitator.stats ?? {};
  if (st.settleMs?.length) console.log(`   facilitator settle: p50 ${pct(st.settleMs, 50).toFixed(0)} ms, p99 ${pct(st.settleMs, 99).toFixed(0)} ms`);

  // 2. Reconciliation of UNKNOWN unknown payments, made straight in the ledger object.
  await seedDemoTenants(p.url, DEV_ADMIN_TOKEN, tenant("recon"));
  const ns = await p.mf.getDurableObjectNamespace("LEDGER", "claw-dispatcher");
  const stub = ns.get(ns.idFromName("recon"));
  const post = async (path, body) => {
    const res = await stub.fetch(`https://ledger.internal${path}`, { method: "POST", body: JSON.stringify(body) });
    await res.text();
    if (res.status >= 300) throw new Error(`${path}: ${res.status}`);
  };
  const validBeforeS = Number((await pay.chain.publicClient.getBlock()).timestamp) + 3600;
  for (let i = 0; i < UNKNOWN; i++) {
    const key = `recon:${randomNonce()}`;
    await post("/payments/reserve", {
      key, fingerprint: randomNonce().slice(2), gross: PRICE, network: pay.network, asset: pay.token,
      payer: pay.accounts.payers[0].address, nonce: randomNonce(), validBeforeS, feeBps: 500,
    });
    await post("/payments/unknown", { key, reason: "bench" });
  }
  let checked = 0;
  const rs = performance.now();
  while (checked < UNKNOWN) {
    const r = await reconcile(p.url, "recon");
    if (!r.checked) break;
    checked += r.checked;
  }
  const perK = ((performance.now() - rs) / checked) * 1000;
  console.log(`\n2. Reconciliation: ${checked} unknown payments asked about (pages of 100, one run): ${(perK / 1000).toFixed(2)} s per 1,000 (one eth_call each, all still valid: waiting)`);

  // 3. What keeping the answer adds to a paid call: one more ledger round trip, measured
  //    on its own (reserve, then keep a 1 KiB answer), sequentially.
  const ANSWERS = Number(process.env.BENCH_ANSWERS ?? 300);
  const body = "x".repeat(1024);
  const keepMs = [];
  const reserveMs = [];
  for (let i = 0; i < ANSWERS; i++) {
    const key = `keep:${randomNonce()}`;
    const fingerprint = randomNonce().slice(2);
    let t = performance.now();
    await post("/payments/reserve", {
      key, fingerprint, gross: PRICE, network: pay.network, asset: pay.token,
      payer: pay.accounts.payers[0].address, nonce: randomNonce(), validBeforeS, feeBps: 500,
    });
    reserveMs.push(performance.now() - t);
    t = performance.now();
    const meta = JSON.stringify({ key, fingerprint, status: 200, headers: [["content-type", "application/json"]], bodyBytes: body.length, bodyStored: true });
    const res = await stub.fetch("https://ledger.internal/payments/answer", { method: "POST", headers: { "x-claw-answer": meta }, body });
    await res.text();
    if (res.status !== 200) throw new Error(`keep answer: ${res.status}`);
    keepMs.push(performance.now() - t);
  }
  console.log(`\n3. Keeping a paid answer (1 KiB) in the ledger: p50 ${pct(keepMs, 50).toFixed(2)} ms, p99 ${pct(keepMs, 99).toFixed(2)} ms per call (a reserve, for scale: p50 ${pct(reserveMs, 50).toFixed(2)} ms); ${ANSWERS} sequential, through Miniflare's stub from node`);
  await p.dispose();
  // 1. The crash table (last: it moves the chain's clock forward).
  const persistDir = tempStateDir();
  p = await startLocal({ persistDir, vars, directSockets: true });
  await seedDemoTenants(p.url, DEV_ADMIN_TOKEN, tenant("crash"));
  const fromBlock = (await pay.chain.publicClient.getBlockNumber()) + 1n;
  let answered = 0;
  let killed = false;
  let paidNoAnswer = 0;
  const unanswered = [];
  let served = 0;
  await Promise.all(
    pay.accounts.payers.slice(0, PAYERS).map(async (account, i) => {
      for (let k = i; k < CALLS; k += PAYERS) {
        const seen = [];
        const f = paidFetch(pay, account, { maxAmountAtomic: PRICE, seen });
        try {
          const r = await f(`${p.url}/t/crash/hello?n=${k}`);
          await r.arrayBuffer();
          if (r.status === 200) served++;
          else if (seen.length) unanswered.push(seen.at(-1));
        } catch {
          paidNoAnswer++;
          if (seen.length) unanswered.push(seen.at(-1));
        }
        answered++;
        if (answered >= KILL_AFTER && !killed) {
          killed = true;
          for (const pid of workerdPids()) process.kill(pid, "SIGKILL");
        }
      }
    }),
  );
  await Promise.race([p.dispose().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  const transfers = await pay.chain.transfersTo(payTo, { fromBlock });
  p = await startLocal({ persistDir, vars, directSockets: true });
  const before = await earnings(p.url, "crash");
  // Callers without an answer retry with the same payment (before reconciliation: the
  // retry itself asks the chain).
  let recovered = 0;
  for (const header of unanswered) {
    const r = await fetch(`${p.url}/t/crash/hello`, { headers: { "payment-signature": header } });
    await r.arrayBuffer();
    if (r.status === 200 && r.headers.get("x-claw-replay") === "true") recovered++;
  }
  const r1 = await reconcile(p.url, "crash");
  await pay.chain.publicClient.request({ method: "evm_increaseTime", params: [3600] });
  await pay.chain.publicClient.request({ method: "evm_mine", params: [] });
  const r2 = await reconcile(p.url, "crash");
  const afterE = await earnings(p.url, "crash");
  const chainSum = transfers.reduce((a, t) => a + t.value, 0n);
  console.log("\n4. Crash table: workerd SIGKILLed under paid load, restarted, retried, reconciled");
  console.log(`| | count |\n|---|---|`);
  console.log(`| paid calls attempted | ${CALLS} (${PAYERS} payers in parallel) |`);
  console.log(`| killed at | ${KILL_AFTER} answers |`);
  console.log(`| transfers on the chain | ${transfers.length} (sum ${chainSum}) |`);
  console.log(`| served 200 before the kill | ${served} |`);
  console.log(`| ledger settled before reconciliation | ${before.settledCount} |`);
  console.log(`| ledger reserved / unknown before | ${before.pendingCount} / ${before.unknownCount} |`);
  console.log(`| booked settled by the reconciler (after the retries, which book the payments they recover) | ${r1.settled + r2.settled} |`);
  console.log(`| voided by reconciliation (never on chain) | ${r1.voided + r2.voided} |`);
  console.log(`| ledger settled after reconciliation | ${afterE.settledCount} (gross ${afterE.gross}) |`);
  console.log(`| unknown / reserved left | ${afterE.unknownCount} / ${afterE.pendingCount} |`);
  console.log(`| ledger == chain | ${afterE.settledCount === transfers.length && BigInt(afterE.gross) === chainSum} |`);
  console.log(`| callers who paid and got no answer | ${transfers.length - served} |`);
  console.log(`| ... their retries with the same payment answered (kept answer) | ${recovered} of ${unanswered.length} retried (the others never paid: voided or never sent) |`);
  console.log(`| ledger settled after retries and reconciliation == chain | ${afterE.settledCount} == ${transfers.length} |`);
  await p.dispose();

} finally {
  await pay.stop();
}
