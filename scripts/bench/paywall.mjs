// Paywall figures, on workerd through Miniflare's direct sockets (no wrangler dev proxy, no
// inspector), loopback only:
// 1. paid call (local verification: EIP-712 recovery in the Worker, ledger reserve + settle)
//    vs a free call to the same tenant Worker (demo-fn) through the dispatcher, side by side:
//    p50/p99 and throughput from a keep-alive node load loop with N concurrent workers.
//    Each payment is single use, so a load tool cannot replay one: payments are pre-signed (viem).
// 2. settled entries per second one tenant ledger sustains (reserve + settle pairs sent
//    straight to the ledger object through Miniflare's Durable Object stub);
// 3. ledger pages per second read by the payout job's reader (GET .../entries, sequential).
// Env: BENCH_SECONDS (default 8), BENCH_CONCURRENCY (16), BENCH_PAID_PAYMENTS (5000).
// Numbers are indicative: 2 shared cores, client and server on the same machine.

import http from "node:http";
import { performance } from "node:perf_hooks";
import { startLocal, seedDemoTenants, DEV_ADMIN_TOKEN } from "../local/runtime.mjs";
import { pricedTenant, payHeaders, readChallenge, randomNonce } from "../../tests/e2e/x402_client.mjs";
import { client, readToEnd } from "../payout-job.mjs";

const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 16);
const paidPayments = Number(process.env.BENCH_PAID_PAYMENTS ?? 5000);
const TOKEN = "bench-payout-token";

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });

function request(url, headers = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, headers, agent }, (res) => {
      res.on("data", () => {});
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", reject);
    req.end();
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/// N workers send requests until `seconds` pass or `next()` returns null.
async function load(url, next, { seconds: s = seconds, want = 200 } = {}) {
  const latencies = [];
  let errors = 0;
  const end = performance.now() + s * 1000;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        if (performance.now() >= end) return;
        const headers = next();
        if (headers === null) return;
        const t0 = performance.now();
        let status = 0;
        try {
          status = await request(url, headers);
        } catch {}
        latencies.push(performance.now() - t0);
        if (status !== want) errors++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / elapsed, p50: pct(latencies, 50), p99: pct(latencies, 99), n: latencies.length, errors };
}

const row = (name, r) => `| ${name} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.n} | ${r.errors} |`;

const p = await startLocal({ persistDir: null, directSockets: true, allowLocalX402: true, vars: { PLATFORM_PAYOUT_TOKEN: TOKEN } });
try {
  await seedDemoTenants(p.url);
  await seedDemoTenants(p.url, DEV_ADMIN_TOKEN, { "bench-paid": pricedTenant(), "bench-ledger": pricedTenant() });
  const base = p.directUrls["claw-dispatcher"];
  const paidUrl = `${base}/t/bench-paid/hello`;
  const freeUrl = `${base}/t/demo-fn/hello`;

  // Pre-sign single-use payments (alternating v1 and v2).
  const challenge = await readChallenge(await fetch(paidUrl));
  if (challenge.status !== 402) throw new Error(`expected a 402, got ${challenge.status}`);
  const t0 = performance.now();
  const payments = [];
  for (let i = 0; i < paidPayments; i++) payments.push(await payHeaders(challenge, (i % 2) + 1));
  const signMs = performance.now() - t0;

  // Warm-up (isolate, JIT, config cache, ledger object).
  await load(freeUrl, () => ({}), { seconds: 1 });
  const warm = payments.splice(0, Math.min(100, payments.length >> 4));
  await load(paidUrl, () => warm.pop() ?? null, { seconds: 2 });

  const free = await load(freeUrl, () => ({}));
  let i = 0;
  const paid = await load(paidUrl, () => (i < payments.length ? payments[i++] : null));

  // The ledger alone: reserve + settle pairs on one tenant's object.
  const ns = await p.mf.getDurableObjectNamespace("LEDGER", "claw-dispatcher");
  const stub = ns.get(ns.idFromName("bench-ledger"));
  const post = async (path, body) => {
    const res = await stub.fetch(`https://ledger.internal${path}`, { method: "POST", body: JSON.stringify(body) });
    await res.text();
    return res.status;
  };
  let settled = 0;
  let ledgerErrors = 0;
  const lStart = performance.now();
  const lEnd = lStart + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < lEnd) {
        const key = `bench:${randomNonce()}`;
        const fp = randomNonce().slice(2);
        const r = await post("/payments/reserve", {
          key,
          fingerprint: fp,
          gross: "1000",
          network: "eip155:84532",
          asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
          payer: "0x1111111111111111111111111111111111111111",
          nonce: randomNonce(),
          validBeforeS: Math.floor(Date.now() / 1000) + 300,
          feeBps: 500,
        });
        const s = await post("/payments/settle", {
          key,
          txRef: randomNonce(),
          network: "eip155:84532",
          payer: "0x1111111111111111111111111111111111111111",
          localSettlement: false,
          feeBps: 500,
        });
        if (r === 201 && s === 200) settled++;
        else ledgerErrors++;
      }
    }),
  );
  const ledgerRate = settled / ((performance.now() - lStart) / 1000);

  // The payout job's reader, paging the journal from the start, again and again.
  const api = client(base, TOKEN);
  const pageRates = [];
  for (const limit of [100, 500]) {
    let pages = 0;
    let entries = 0;
    const rStart = performance.now();
    while (performance.now() - rStart < (seconds * 1000) / 2) {
      const r = await readToEnd(api, "bench-ledger", 0, limit);
      pages += r.pages;
      entries += r.entries;
    }
    const s = (performance.now() - rStart) / 1000;
    pageRates.push({ limit, pages: pages / s, entries: entries / s });
  }
  const journal = (await api.entries("bench-ledger", 0, 1)).json;
  const totalEntries = (await api.earnings("bench-ledger")).json.lastSeq;

  console.log(`\npaywall, ${concurrency} concurrent keep-alive workers, ${seconds}s per case, node load loop on loopback, workerd via Miniflare direct sockets`);
  console.log(`pre-signed ${paidPayments} EIP-3009 payments (viem) in ${(signMs / 1000).toFixed(1)} s\n`);
  console.log("| case | req/s | p50 ms | p99 ms | requests | non-200 |\n|---|---|---|---|---|---|");
  console.log(row("free call /t/demo-fn/hello (through dispatcher)", free));
  console.log(row("paid call /t/bench-paid/hello (same Worker, local verification)", paid));
  if (paid.n >= payments.length) console.log(`(the paid run used all ${payments.length} pre-signed payments: raise BENCH_PAID_PAYMENTS for a full ${seconds}s run)`);
  console.log(`\npaid/free throughput: ${(paid.rps / free.rps).toFixed(2)}; added latency p50 +${(paid.p50 - free.p50).toFixed(2)} ms, p99 +${(paid.p99 - free.p99).toFixed(2)} ms`);
  console.log(`\none tenant ledger: ${ledgerRate.toFixed(0)} settled entries/s (reserve + settle pairs, ${concurrency} concurrent, via Miniflare's Durable Object stub from node; ${ledgerErrors} errors)`);
  for (const r of pageRates) {
    console.log(`payout job reader: ${r.pages.toFixed(0)} ledger pages/s at limit=${r.limit} (${r.entries.toFixed(0)} entries/s; journal of ${totalEntries} entries, sequential, through the dispatcher)`);
  }
  if (!journal.entries.length) throw new Error("the bench ledger is empty");
} finally {
  agent.destroy();
  await p.dispose();
}
