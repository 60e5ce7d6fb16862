// Figures for usage events and trending (issue 5), all in one local workerd (Miniflare API,
// direct sockets, inspector off; indicative only: a shared 2-core machine, loopback):
// 1. events ingested per second without loss:
//    a. through the dispatcher: a fixed number of free calls from a closed-loop client,
//       then the tenant's feed read back: stored events must equal calls made, ids unique;
//    b. straight into one tenant's UsageEvents object (fixture Worker bound to the class),
//       one event per request (what the dispatcher sends per call) and batches of 100,
//       then the stored count checked against the acknowledged inserts;
// 2. added latency of recording on the hot path: the same free call with
//    USAGE_EVENTS_ENABLED=false, =build-only (the event is made on the call's path, then
//    dropped: the call's own cost) and on (the default: also the delivery, which runs in
//    waitUntil after the answer but, locally, in the same process as the events object's
//    writes), at 1 connection and under load (hey);
// 3. rank error of the trending windows vs an exact count over the same event stream: a
//    random stream (popular and quiet tenants, whales past the per-payer cap, self-dealing,
//    challenges/429s/errors, times spread past the windows' edges) goes into the tenants'
//    objects, each tenant is rolled up, and GET /__platform/trending is compared with an
//    exact sliding-window computation in this script.
import http from "node:http";
import crypto from "node:crypto";
import { startLocal, seedDemoTenants, DEV_ANALYTICS_TOKEN, USAGE_EVENTS_PROBE as probeWorker } from "../local/runtime.mjs";
import { rawRequest } from "../../tests/e2e/harness.mjs";
import { load, row, HEADER, requireHey } from "./load.mjs";

const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 16);
const calls = Number(process.env.BENCH_CALLS ?? 3000);
const rankTenants = Number(process.env.BENCH_RANK_TENANTS ?? 30);
const seed = Number(process.env.BENCH_SEED ?? 42);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

requireHey();

const auth = { authorization: `Bearer ${DEV_ANALYTICS_TOKEN}` };
const free = { resourceType: "function", workerName: "demo-fn", plan: "free" };
const paid = {
  ...free,
  price: {
    amountAtomic: "1000",
    network: "base-sepolia",
    asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    payTo: "0x1111111111111111111111111111111111111111",
  },
};

// A deterministic PRNG (mulberry32), so runs are comparable.
function rng(s) {
  return () => {
    s |= 0;
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const hex64 = (s) => crypto.createHash("sha256").update(s).digest("hex");
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function request(url, options = {}) {
  const u = new URL(url);
  return rawRequest(u.origin, { ...options, path: u.pathname + u.search, agent });
}

/// Runs `n` tasks with `concurrency` in flight; returns elapsed seconds.
async function closedLoop(n, concurrency, task) {
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await task(next++);
    }),
  );
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/// Every stored event of a tenant, through the feed.
async function feed(base, tenant) {
  const out = [];
  let since = 0;
  for (;;) {
    const r = await request(`${base}/__platform/events?tenant=${tenant}&since=${since}&limit=500`, { headers: auth });
    if (r.status !== 200) throw new Error(`feed ${tenant}: ${r.status} ${r.text}`);
    out.push(...r.json.events);
    since = r.json.nextCursor;
    if (!r.json.hasMore) return out;
  }
}

/// Waits until the feed holds `want` events (waitUntil delivery lags the responses).
async function settledCount(base, tenant, want, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let events = [];
  while (Date.now() < deadline) {
    events = await feed(base, tenant);
    if (events.length >= want) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  await new Promise((r) => setTimeout(r, 1000));
  return feed(base, tenant);
}

function makeEvent(tenant, i, { timeMs, stage = "served", paid: isPaid = false, caller = "c", payer = null, selfDealing = false, amount = "1000" }) {
  const e = {
    id: `${tenant}-${i}`,
    timeMs,
    tenant,
    workerName: "demo-fn",
    route: "/v1/search",
    callerHash: hex64(`caller:${caller}`),
    stage,
    paymentRequired: isPaid,
    paymentSuccess: stage === "settled",
    statusCode: { challenged: 402, rate_limited: 429, error: 502, served: 200, settled: 200 }[stage],
    latencyMs: 5,
    countable: (stage === "settled" && isPaid) || (stage === "served" && !isPaid),
    billable: stage === "settled" && isPaid,
  };
  if (isPaid) e.amountAtomic = amount;
  if (stage === "error") e.errorCode = "tenant_worker_failed";
  if (payer) e.payerHash = hex64(`payer:${payer}`);
  if (stage === "settled") e.settlementResult = `0x${hex64(e.id)}`;
  if (selfDealing) e.selfDealing = true;
  return e;
}

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

function ranks(values) {
  // Average ranks, descending (1 = highest).
  const idx = values.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]);
  const r = new Array(values.length);
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && idx[j + 1][0] === idx[i][0]) j++;
    for (let k = i; k <= j; k++) r[idx[k][1]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}

function spearman(a, b) {
  const ra = ranks(a);
  const rb = ranks(b);
  const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const ma = mean(ra);
  const mb = mean(rb);
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < ra.length; i++) {
    num += (ra[i] - ma) * (rb[i] - mb);
    da += (ra[i] - ma) ** 2;
    db += (rb[i] - mb) ** 2;
  }
  return da === 0 || db === 0 ? 1 : num / Math.sqrt(da * db);
}

// ---------------------------------------------------------------------------------------
// 1 and 3 on one platform (recording on), 2 on two platforms (off, then on).
// ---------------------------------------------------------------------------------------

const p = await startLocal({ persistDir: null, directSockets: true, extraWorkers: [probeWorker] });
try {
  const base = p.directUrls["claw-dispatcher"];
  const probe = p.directUrls["usage-events-probe"];

  // 1a. Through the dispatcher.
  await seedDemoTenants(p.url, undefined, { "bench-ingest": free });
  const statuses = new Map();
  const ingestSeconds = await closedLoop(calls, connections, async (i) => {
    const r = await request(`${base}/t/bench-ingest/hello?n=${i}`, { headers: { "cf-connecting-ip": `198.51.100.${i % 250}` } });
    statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
  });
  const t0 = Date.now();
  const stored = await settledCount(base, "bench-ingest", calls);
  const drainMs = Date.now() - t0;
  const ids = new Set(stored.map((e) => e.id));
  console.log(`\n1a. ${calls} free calls through the dispatcher, ${connections} in flight (closed loop), then the feed read back\n`);
  console.log("| calls answered | statuses | calls/s | events stored | lost | duplicate ids | feed complete after |\n|---|---|---|---|---|---|---|");
  console.log(
    `| ${calls} | ${JSON.stringify(Object.fromEntries(statuses))} | ${(calls / ingestSeconds).toFixed(0)} | ${stored.length} | ${calls - ids.size} | ${stored.length - ids.size} | ${drainMs} ms after the last answer |`,
  );

  // 1b. Straight into one object.
  const now = Date.now();
  const direct = async (label, batch, concurrency) => {
    const tenant = `bench-direct-${batch}`;
    let sent = 0;
    let inserted = 0;
    let failures = 0;
    const posts = Math.max(1, Math.floor((batch === 1 ? 4000 : 40000) / batch));
    const secs = await closedLoop(posts, concurrency, async (k) => {
      const events = Array.from({ length: batch }, (_, j) => makeEvent(tenant, k * batch + j, { timeMs: now, caller: `c${j % 50}` }));
      sent += batch;
      const r = await request(`${probe}/events?tenant=${tenant}`, { method: "POST", body: JSON.stringify(events) });
      if (r.status !== 200) failures++;
      else inserted += r.json.inserted;
    });
    await seedDemoTenants(p.url, undefined, { [tenant]: free });
    const back = await feed(base, tenant);
    return { label, batch, concurrency, sent, inserted, failures, stored: back.length, rate: inserted / secs };
  };
  const rows = [await direct("one event per request", 1, 32), await direct("batches of 100", 100, 8)];
  console.log(`\n1b. straight into one tenant's UsageEvents object (fixture Worker -> object)\n`);
  console.log("| case | in flight | events sent | acknowledged inserts | failed requests | stored (feed) | events/s |\n|---|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(`| ${r.label} | ${r.concurrency} | ${r.sent} | ${r.inserted} | ${r.failures} | ${r.stored} | ${r.rate.toFixed(0)} |`);
  }

  // 3. Rank error.
  const rand = rng(seed);
  const H = 3_600_000;
  const tenants = Array.from({ length: rankTenants }, (_, i) => `rank-${String(i).padStart(2, "0")}`);
  await seedDemoTenants(p.url, undefined, Object.fromEntries(tenants.map((t) => [t, paid])));
  const streams = new Map();
  let total = 0;
  tenants.forEach((tenant, i) => {
    const popularity = Math.round(1600 / (i + 1) ** 0.8); // Zipf-like
    const payers = 5 + Math.floor(rand() * 120);
    const events = [];
    let n = 0;
    const push = (opts) => events.push(makeEvent(tenant, n++, { paid: true, ...opts }));
    for (let k = 0; k < popularity; k++) {
      // Times over the last 26 h: both windows have edges inside the stream.
      const timeMs = now - Math.floor(rand() * 26 * H);
      const r = rand();
      const payer = `${tenant}-p${Math.floor(rand() ** 2 * payers)}`;
      if (r < 0.55) push({ timeMs, stage: "settled", payer, caller: payer });
      else if (r < 0.62) push({ timeMs, stage: "settled", payer: `${tenant}-self`, caller: "self", selfDealing: true });
      else if (r < 0.8) push({ timeMs, stage: "challenged", caller: payer });
      else if (r < 0.92) push({ timeMs, stage: "rate_limited", caller: payer });
      else push({ timeMs, stage: "error", caller: payer });
    }
    // A whale on every third tenant: far past the per-payer caps in both windows.
    if (i % 3 === 0) {
      for (let k = 0; k < 900; k++) push({ timeMs: now - Math.floor(rand() * 50 * 60_000), stage: "settled", payer: `${tenant}-whale`, caller: "whale" });
    }
    streams.set(tenant, events);
    total += events.length;
  });
  for (const [tenant, events] of streams) {
    for (let k = 0; k < events.length; k += 500) {
      const r = await request(`${probe}/events?tenant=${tenant}`, { method: "POST", body: JSON.stringify(events.slice(k, k + 500)) });
      if (r.status !== 200) throw new Error(`ingest ${tenant}: ${r.status} ${r.text}`);
    }
  }
  for (const tenant of tenants) {
    const r = await request(`${base}/__platform/usage/${tenant}/rollup`, { method: "POST", headers: auth });
    if (r.status !== 200 || !r.json.sent) throw new Error(`rollup ${tenant}: ${r.status} ${r.text}`);
  }
  const asOf = Date.now();
  const caps = { "1h": [H, 60], "24h": [24 * H, 600] };
  console.log(`\n3. rank error: ${rankTenants} tenants, ${total} events (settled, self-dealing, challenges, 429s, errors; whales on every third tenant), times over the last 26 h, seed ${seed}\n`);
  console.log("| window | payer cap | tenants ranked (platform / exact) | max abs error (calls) | mean abs error | max relative error | Spearman rank correlation | top-10 overlap |\n|---|---|---|---|---|---|---|---|");
  for (const [window, [len, cap]] of Object.entries(caps)) {
    const exact = new Map();
    for (const [tenant, events] of streams) {
      const per = new Map();
      for (const e of events) {
        if (!e.countable || e.selfDealing || e.timeMs <= asOf - len) continue;
        const who = e.payerHash ?? e.callerHash;
        per.set(who, (per.get(who) ?? 0) + 1);
      }
      let score = 0;
      for (const c of per.values()) score += Math.min(c, cap);
      exact.set(tenant, score);
    }
    const r = await request(`${base}/__platform/trending?window=${window}&limit=100`);
    if (r.status !== 200) throw new Error(`trending: ${r.status} ${r.text}`);
    const got = new Map(r.json.entries.map((e) => [e.tenant, e.score]));
    const errs = tenants.map((t) => Math.abs((got.get(t) ?? 0) - exact.get(t)));
    const rel = tenants.map((t) => (exact.get(t) ? Math.abs((got.get(t) ?? 0) - exact.get(t)) / exact.get(t) : 0));
    const rho = spearman(tenants.map((t) => got.get(t) ?? 0), tenants.map((t) => exact.get(t)));
    const top = (m) => new Set([...tenants].sort((a, b) => m(b) - m(a) || a.localeCompare(b)).slice(0, 10));
    const topGot = top((t) => got.get(t) ?? 0);
    const topExact = top((t) => exact.get(t));
    const overlap = [...topGot].filter((t) => topExact.has(t)).length;
    const nonzero = [...exact.values()].filter((v) => v > 0).length;
    console.log(
      `| ${window} | ${cap} | ${got.size} / ${nonzero} | ${Math.max(...errs)} | ${(errs.reduce((a, b) => a + b, 0) / errs.length).toFixed(1)} | ${(100 * Math.max(...rel)).toFixed(1)}% | ${rho.toFixed(4)} | ${overlap}/10 |`,
    );
  }
  console.log("\n(the platform's windows move in bucket steps, 5 min for 1h and 1 h for 24h: a window covers between its length minus one bucket and its full length, so it misses the oldest part of the exact sliding window; that is the error measured)");
} finally {
  await p.dispose();
}

// 2. Added latency, recording off vs on: two platforms side by side (same build, same
// tenant), measured in alternation, several rounds, medians reported (the machine is shared).
const platforms = [];
try {
  for (const [name, vars] of [
    ["recording off (USAGE_EVENTS_ENABLED=false)", { USAGE_EVENTS_ENABLED: "false" }],
    ["event built, not sent (build-only)", { USAGE_EVENTS_ENABLED: "build-only" }],
    ["recording on (default)", {}],
  ]) {
    const q = await startLocal({ persistDir: null, directSockets: true, vars });
    platforms.push({ name, q });
    await seedDemoTenants(q.url, undefined, { "bench-free": free });
  }
  const headers = { "cf-connecting-ip": "203.0.113.7" };
  const cases = [];
  for (const { name, q } of platforms) {
    const u = `${q.directUrls["claw-dispatcher"]}/t/bench-free/hello`;
    const first = await fetch(u, { headers });
    if (first.status !== 200) throw new Error(`${u}: ${first.status}`);
    load(u, { seconds: 2, connections, headers }); // warm-up
    cases.push({ name: `${name}, 1 connection`, u, c: 1, runs: [] });
    cases.push({ name: `${name}, ${connections} connections`, u, c: connections, runs: [] });
  }
  const order = [cases[0], cases[2], cases[4], cases[1], cases[3], cases[5]]; // alternate
  for (let r = 0; r < rounds; r++) for (const c of order) c.runs.push(load(c.u, { seconds, connections: c.c, headers }));
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const med = (c) => ({
    rps: median(c.runs.map((x) => x.rps)),
    p50Ms: median(c.runs.map((x) => x.p50Ms)),
    p99Ms: median(c.runs.map((x) => x.p99Ms)),
    requests: c.runs.reduce((a, x) => a + x.requests, 0),
    errors: c.runs.reduce((a, x) => a + x.errors, 0),
  });
  console.log(`\n2. free call through the dispatcher, recording off vs event built only vs on: ${rounds} alternating rounds of ${seconds}s each, medians (hey reports latency to 0.1 ms)\n`);
  console.log(HEADER);
  for (const c of cases) console.log(row(c.name, med(c)));
  const [off1, offN, built1, builtN, on1, onN] = cases.map(med);
  const diff = (a, b, label) =>
    console.log(
      `${label}: p50 +${(b.p50Ms - a.p50Ms).toFixed(3)} ms, p99 +${(b.p99Ms - a.p99Ms).toFixed(3)} ms, throughput ${(((b.rps - a.rps) / a.rps) * 100).toFixed(1)}%`,
    );
  console.log("");
  diff(off1, built1, "on the call's path (event built, not sent), 1 connection");
  diff(offN, builtN, `on the call's path (event built, not sent), ${connections} connections`);
  diff(off1, on1, "recording on, all included, 1 connection");
  diff(offN, onN, `recording on, all included, ${connections} connections`);
  console.log("(locally the events objects run in the same workerd process as the dispatcher, so their writes take CPU from the calls measured; on Cloudflare they run elsewhere and the call only pays for building the event and handing it to waitUntil)");
} finally {
  for (const { q } of platforms) await q.dispose();
}
