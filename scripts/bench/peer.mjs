// A peer in the project's own benchmarks: the same paid resource served two ways, in ONE
// local workerd (Miniflare direct sockets, inspector off), paid by the same client:
// 1. the peer: the official x402 v2 Hono middleware (@x402/hono + @x402/core's HTTP
//    facilitator client + @x402/evm's exact server scheme) in a Worker
//    (scripts/bench/fixtures/peer-hono.mjs, bundled here with the project's esbuild);
// 2. the dispatcher: a paid tenant (pricedTenant, demo-fn's /hello) through the built
//    dispatcher, with FACILITATOR_URL set (not the local verifier).
// Both verify and settle through the same facilitator stand-in (tests/fakes/x402_facilitator.mjs:
// real EIP-712 recovery, remembered nonces), run as a child node process so its CPU is
// measured on its own and it does not compete with the load loop's event loop.
// Also a free call: through the dispatcher (demo-fn) vs direct to the tenant Worker, and
// through the forwarding floor (scripts/bench/fixtures/forward-floor.mjs: a JS Worker that only
// hands the call to the same dispatch namespace), the ceiling of the dispatcher's free ratio.
//
// Payments (v2, EIP-3009, single use) are pre-signed with viem right before each paid case,
// for that target's own 402 challenge; a keep-alive node loop with C workers sends them.
// Rounds alternate the order of the cases and repeat; the table shows medians over rounds.
// Server CPU per call: utime+stime of the workerd process(es) Miniflare spawned (children
// of this node process, /proc/<pid>/stat), before each case and once workerd is idle after
// it (the usage events a case queued are consumed on its account), over completed calls.
// Everything runs in that one workerd: the dispatcher's Durable Objects (ledger, limiter,
// usage) and the namespace emulator and outbound Worker included.
//
// Free cases run a fixed number of calls (BENCH_FREE_CALLS, 50,000 per case and round) and
// count drops: calls that got no answer at all (the server closed the keep-alive socket,
// ECONNRESET, or nothing within 30 s). Last, the events lost to a SIGKILL: a runtime on a
// state directory serves BENCH_KILL_CALLS paid and as many free calls at once, is killed
// (SIGKILL) the moment the last answer is read, restarts on the same state, and the events
// feed is compared with the calls that were answered.
//
// Env: BENCH_SECONDS (8), BENCH_CONCURRENCY (32), BENCH_ROUNDS (3), BENCH_PAID_PAYMENTS
// (payments signed for a target's first round, 4000; later rounds size the pool from the
// rate measured before), BENCH_FREE_CALLS (50000), BENCH_KILL_CALLS (200; 0 skips the
// kill phase). Numbers are indicative: 2 shared cores, everything on one machine.

import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { startLocal, seedDemoTenants, ROOT } from "../local/runtime.mjs";
import { ledgerProbeWorker, probePairs, startFacilitatorProcess } from "./common.mjs";
import { pricedTenant, payHeaders, unb64, PAY_TO, USDC_BASE_SEPOLIA } from "../../tests/e2e/x402_client.mjs";

const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const firstPool = Number(process.env.BENCH_PAID_PAYMENTS ?? 4000);
const freeCalls = Number(process.env.BENCH_FREE_CALLS ?? 50_000);
const killCalls = Number(process.env.BENCH_KILL_CALLS ?? 200);
// BENCH_ONLY=free: only the free cases (no paid cases, no ledger probe), for quick looks;
// BENCH_VARS: JSON of extra dispatcher vars (e.g. {"USAGE_EVENTS_ENABLED":"false"}).
const freeOnly = process.env.BENCH_ONLY === "free";
const extraVars = JSON.parse(process.env.BENCH_VARS ?? "{}");
const AMOUNT = pricedTenant().price.amountAtomic;
const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim() || 100);

// ---- CPU accounting from /proc -------------------------------------------------------------

function readStat(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const close = s.lastIndexOf(")");
    const comm = s.slice(s.indexOf("(") + 1, close);
    const f = s.slice(close + 2).split(" "); // f[0] = field 3 (state)
    return { comm, ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

/// The workerd processes below this node process (Miniflare spawns workerd as a child).
function workerdPids() {
  const all = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const st = readStat(d);
    if (st) all.push({ pid: Number(d), ...st });
  }
  const mine = new Set([process.pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of all) {
      if (!mine.has(p.pid) && mine.has(p.ppid)) {
        mine.add(p.pid);
        grew = true;
      }
    }
  }
  return all.filter((p) => mine.has(p.pid) && p.comm.startsWith("workerd")).map((p) => p.pid);
}

const cpuMs = (pids) => pids.reduce((sum, pid) => sum + (readStat(pid)?.ticks ?? 0), 0) * (1000 / CLK_TCK);

// ---- load loop --------------------------------------------------------------------------

function request(agent, url, headers) {
  const u = new URL(url);
  return new Promise((resolve) => {
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, headers, agent, timeout: 30_000 }, (res) => {
      res.on("data", () => {});
      res.on("end", () => resolve(res.statusCode));
      res.on("error", (e) => resolve(e.code ?? "error"));
    });
    req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "timeout" })));
    req.on("error", (e) => resolve(e.code ?? "error"));
    req.end();
  });
}

/// Waits until `cpuNow` (ms of CPU) grows by under 5% of a core in two 500 ms windows in a
/// row, for at most 60 s.
async function quiesce(cpuNow) {
  const deadline = performance.now() + 60_000;
  let quiet = 0;
  let last = cpuNow();
  while (quiet < 2 && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    const now = cpuNow();
    quiet = now - last < 25 ? quiet + 1 : 0;
    last = now;
  }
}

const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] : NaN);

/// C workers send requests until `s` seconds pass or `next()` returns null. Only 200s count
/// as completed calls (throughput, latency); anything else is counted apart, by status (or
/// by the error code when no answer came: ECONNRESET, timeout after 30 s, ...).
async function load(url, next, { s = seconds, cpu = null, calls = Infinity } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const ok = [];
  const failed = {};
  let exhausted = false;
  const cpu0 = cpu ? cpu.map(([, f]) => f()) : [];
  const start = performance.now();
  const end = start + s * 1000;
  let sent = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        if (performance.now() >= end || sent >= calls) return;
        sent += 1;
        const headers = next();
        if (headers === null) {
          exhausted = true;
          return;
        }
        const t0 = performance.now();
        const status = await request(agent, url, headers);
        if (status === 200) ok.push(performance.now() - t0);
        else failed[status] = (failed[status] ?? 0) + 1;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  // The work the calls left behind (usage events still queued, ledger alarms) is theirs:
  // wait until workerd is idle and charge it to this case, not to the next one.
  const server = cpu?.find(([k]) => k === "server");
  if (server) await quiesce(server[1]);
  const cpuUsed = cpu ? Object.fromEntries(cpu.map(([k, f], i) => [k, f() - cpu0[i]])) : {};
  agent.destroy();
  ok.sort((a, b) => a - b);
  const nFailed = Object.values(failed).reduce((a, b) => a + b, 0);
  // No HTTP answer at all (an error code instead of a status): the connection was dropped.
  const drops = Object.entries(failed)
    .filter(([k]) => !/^\d+$/.test(k))
    .reduce((a, [, c]) => a + c, 0);
  return {
    drops,
    rps: ok.length / elapsed,
    p50: pct(ok, 50),
    p99: pct(ok, 99),
    max: ok.length ? ok[ok.length - 1] : NaN,
    n: ok.length,
    nFailed,
    failed,
    exhausted,
    cpuPerCall: Object.fromEntries(Object.entries(cpuUsed).map(([k, v]) => [k, ok.length ? v / ok.length : NaN])),
  };
}

// ---- setup --------------------------------------------------------------------------------

function bundlePeer() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-peer-"));
  const out = path.join(dir, "peer-hono.js");
  // Platform neutral, ESM; @x402/extensions imports domainToASCII from node's "url", which
  // workerd provides as node:url under the nodejs_compat flag: left external, the rest inlined.
  const r = spawnSync(
    path.join(ROOT, "node_modules/.bin/esbuild"),
    [
      path.join(ROOT, "scripts/bench/fixtures/peer-hono.mjs"),
      "--bundle",
      "--format=esm",
      "--platform=neutral",
      "--main-fields=module,main",
      "--conditions=worker,browser,import",
      "--external:node:*",
      "--alias:url=node:url",
      "--log-level=warning",
      `--outfile=${out}`,
    ],
    { encoding: "utf8", stdio: ["ignore", "inherit", "inherit"] },
  );
  if (r.status !== 0) throw new Error("esbuild failed on the peer fixture");
  return { dir, out, bytes: fs.statSync(out).size };
}

/// A target's v2 challenge, read from its 402 (PAYMENT-REQUIRED header).
async function challengeOf(url) {
  const res = await fetch(url);
  const header = res.headers.get("payment-required");
  await res.text();
  if (res.status !== 402 || !header) throw new Error(`${url}: expected a v2 402, got ${res.status}`);
  return { status: 402, v2: unb64(header), header };
}

async function presign(challenge, n) {
  const t0 = performance.now();
  const pool = [];
  for (let i = 0; i < n; i++) pool.push(await payHeaders(challenge, 2));
  return { pool, ms: performance.now() - t0 };
}

const median = (xs) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// ---- run ------------------------------------------------------------------------------------

const fac = await startFacilitatorProcess();
const peer = bundlePeer();
const PEER = "peer-hono";
const FORWARD_FLOOR = "forward-floor";
/// The free cases, in the order of even rounds (odd rounds run them reversed).
const FREE_CASES = ["dispatcherFree", "direct", "forwardFloor"];
const p = await startLocal({
  persistDir: null,
  directSockets: true,
  vars: { FACILITATOR_URL: fac.url, ...extraVars },
  extraWorkers: [
    ledgerProbeWorker(),
    {
      name: PEER,
      compatibilityDate: "2026-04-20",
      compatibilityFlags: ["nodejs_compat"],
      modulesRoot: peer.dir,
      modules: [{ type: "ESModule", path: peer.out }],
      bindings: { FACILITATOR_URL: fac.url, PAY_TO, ASSET: USDC_BASE_SEPOLIA, AMOUNT },
    },
    {
      name: FORWARD_FLOOR,
      compatibilityDate: "2026-04-20",
      modulesRoot: ROOT,
      modules: [{ type: "ESModule", path: path.join(ROOT, "scripts/bench/fixtures/forward-floor.mjs") }],
      wrappedBindings: { DISPATCHER: { scriptName: "wfp-dispatch-namespace" } },
    },
  ],
});
try {
  await seedDemoTenants(p.url);
  await seedDemoTenants(p.url, undefined, { "bench-paid": pricedTenant() });
  const base = p.directUrls["claw-dispatcher"];
  const urls = {
    dispatcherPaid: `${base}/t/bench-paid/hello`,
    peerPaid: `${p.directUrls[PEER]}/hello`,
    dispatcherFree: `${base}/t/demo-fn/hello`,
    direct: `${p.directUrls["demo-fn"]}/hello`,
    forwardFloor: `${p.directUrls[FORWARD_FLOOR]}/t/demo-fn/hello`,
  };
  const pids = workerdPids();
  if (!pids.length) throw new Error("no workerd process found below this node process");
  const cpu = [
    ["server", () => cpuMs(pids)],
    ["facilitator", () => cpuMs([fac.pid])],
    ["client", () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    }],
  ];

  const challenges = { dispatcherPaid: await challengeOf(urls.dispatcherPaid), peerPaid: await challengeOf(urls.peerPaid) };
  // Same offer both ways (the resource URL aside).
  const offer = (c) => {
    const a = c.v2.accepts[0];
    return JSON.stringify({ scheme: a.scheme, network: a.network, amount: a.amount, asset: a.asset, payTo: a.payTo, extra: a.extra, maxTimeoutSeconds: a.maxTimeoutSeconds });
  };
  if (offer(challenges.dispatcherPaid) !== offer(challenges.peerPaid)) {
    throw new Error(`the two offers differ:\n dispatcher ${offer(challenges.dispatcherPaid)}\n peer       ${offer(challenges.peerPaid)}`);
  }

  // A paid call each, checked end to end (200 + payment-response), before any load.
  for (const k of ["dispatcherPaid", "peerPaid"]) {
    const h = await payHeaders(challenges[k], 2);
    const res = await fetch(urls[k], { headers: h });
    const body = await res.text();
    if (res.status !== 200 || !res.headers.get("payment-response")) throw new Error(`${k}: paid call answered ${res.status} ${body}`);
  }
  for (const k of FREE_CASES) {
    const res = await fetch(urls[k]);
    if (res.status !== 200) throw new Error(`${k}: ${res.status} ${await res.text()}`);
    await res.text();
  }

  // Warm-up: isolates, JIT, config cache, ledger object, facilitator connections.
  for (const k of FREE_CASES) await load(urls[k], () => ({}), { s: 1 });
  for (const k of ["dispatcherPaid", "peerPaid"]) {
    const { pool } = await presign(challenges[k], 300);
    await load(urls[k], () => pool.pop() ?? null, { s: 2 });
  }

  const results = { dispatcherPaid: [], peerPaid: [], dispatcherFree: [], direct: [], forwardFloor: [] };
  const signed = { dispatcherPaid: [], peerPaid: [] };
  const runPaid = async (k) => {
    // Twice the best rate seen so far: rounds differ by 2x on a shared machine.
    const best = Math.max(0, ...results[k].map((r) => r.rps));
    const n = results[k].length ? Math.max(1000, Math.ceil(best * seconds * 2)) : firstPool;
    const { pool, ms } = await presign(challenges[k], n);
    signed[k].push({ n, ms });
    let i = 0;
    const r = await load(urls[k], () => (i < pool.length ? pool[i++] : null), { cpu });
    results[k].push(r);
  };
  // A fixed number of calls (no time limit): max and drops are over all of them.
  const runFree = async (k) => results[k].push(await load(urls[k], () => ({}), { cpu, s: Infinity, calls: freeCalls }));
  for (let round = 0; round < rounds; round++) {
    const paidOrder = round % 2 ? ["peerPaid", "dispatcherPaid"] : ["dispatcherPaid", "peerPaid"];
    const freeOrder = round % 2 ? [...FREE_CASES].reverse() : FREE_CASES;
    if (!freeOnly) for (const k of paidOrder) await runPaid(k);
    for (const k of freeOrder) await runFree(k);
    process.stderr.write(`round ${round + 1}/${rounds}: ` + Object.entries(results).map(([k, v]) => `${k} ${v.length ? v.at(-1).rps.toFixed(0) : "-"}/s`).join(", ") + "\n");
  }

  const med = (k) => {
    const rs = results[k];
    const failed = {};
    for (const r of rs) for (const [s, c] of Object.entries(r.failed)) failed[s] = (failed[s] ?? 0) + c;
    return {
      rps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      max: median(rs.map((r) => r.max)),
      server: median(rs.map((r) => r.cpuPerCall.server)),
      facilitator: median(rs.map((r) => r.cpuPerCall.facilitator)),
      client: median(rs.map((r) => r.cpuPerCall.client)),
      n: rs.reduce((a, r) => a + r.n, 0),
      nFailed: rs.reduce((a, r) => a + r.nFailed, 0),
      drops: rs.reduce((a, r) => a + r.drops, 0),
      worst: Math.max(...rs.map((r) => r.max)),
      failed,
      exhausted: rs.some((r) => r.exhausted),
    };
  };
  const m = Object.fromEntries(Object.keys(results).map((k) => [k, med(k)]));
  const ms = (x) => (Number.isNaN(x) ? "-" : x.toFixed(2));
  const fails = (r) => (r.nFailed ? `${r.nFailed} (${Object.entries(r.failed).map(([s, c]) => `${s}: ${c}`).join(", ")})` : "0");
  const row = (name, r, paid) =>
    `| ${name} | ${r.rps.toFixed(0)} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.max)} | ${ms(r.worst)} | ${ms(r.server)} | ${paid ? ms(r.facilitator) : "-"} | ${ms(r.client)} | ${r.n} | ${fails(r)} | ${r.drops} |`;

  console.log(`\npeer benchmark: ${concurrency} concurrent keep-alive workers (node loop), ${seconds}s per case, ${rounds} rounds alternating, medians; loopback; one workerd via Miniflare direct sockets (inspector off)`);
  console.log(`peer: @x402/hono 2.27.0 + hono 4.13.19 (+ @x402/core, @x402/evm exact server scheme 2.27.0), bundle ${(peer.bytes / 1024).toFixed(0)} KiB, nodejs_compat`);
  console.log(`both paid calls: x402 v2, ${AMOUNT} atomic USDC on eip155:84532 to ${PAY_TO}, verify + settle at the facilitator stand-in (own node process, pid ${fac.pid})`);
  console.log(`server CPU = utime+stime of workerd (pid ${pids.join(", ")}: dispatcher, its Durable Objects, namespace emulator, outbound Worker, tenant and peer Workers) over completed calls; facilitator and client (this node loop) CPU apart`);
  const signMs = Object.values(signed).flat();
  console.log(`pre-signed ${signMs.reduce((a, s) => a + s.n, 0)} payments (viem) in ${(signMs.reduce((a, s) => a + s.ms, 0) / 1000).toFixed(1)} s, outside the measured windows\n`);
  console.log(`free cases: ${freeCalls} calls per case and round; paid cases: ${seconds} s per case and round`);
  console.log("| case | req/s | p50 ms | p99 ms | max ms (median) | max ms (worst round) | server CPU per call ms | facilitator CPU per call ms | client CPU per call ms | 200s | non-200 | dropped (no answer) |");
  console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
  console.log(row("paid: peer (@x402/hono in a Worker) /hello", m.peerPaid, true));
  console.log(row("paid: dispatcher /t/bench-paid/hello (facilitator)", m.dispatcherPaid, true));
  console.log(row("free: dispatcher /t/demo-fn/hello", m.dispatcherFree, false));
  console.log(row("free: direct to demo-fn /hello", m.direct, false));
  console.log(row("free: forwarding floor (JS, namespace only) /t/demo-fn/hello", m.forwardFloor, false));
  for (const k of ["peerPaid", "dispatcherPaid"]) {
    if (m[k].exhausted) console.log(`(${k}: a round used up its pre-signed payments before ${seconds}s: raise BENCH_PAID_PAYMENTS)`);
  }
  const ratio = (a, b) => (a / b).toFixed(2);
  console.log(`\npaid, dispatcher / peer: throughput ${ratio(m.dispatcherPaid.rps, m.peerPaid.rps)}, server CPU per call ${ratio(m.dispatcherPaid.server, m.peerPaid.server)}, p50 ${ratio(m.dispatcherPaid.p50, m.peerPaid.p50)}, p99 ${ratio(m.dispatcherPaid.p99, m.peerPaid.p99)}`);
  console.log(`free, dispatcher / direct: throughput ${ratio(m.dispatcherFree.rps, m.direct.rps)}, server CPU per call ${ratio(m.dispatcherFree.server, m.direct.server)}, p50 ${ratio(m.dispatcherFree.p50, m.direct.p50)}, p99 ${ratio(m.dispatcherFree.p99, m.direct.p99)}`);
  console.log(`free, forwarding floor / direct: throughput ${ratio(m.forwardFloor.rps, m.direct.rps)}, server CPU per call ${ratio(m.forwardFloor.server, m.direct.server)}, p99 ${ratio(m.forwardFloor.p99, m.direct.p99)} (the most any dispatcher gets through this namespace stand-in)`);
  const busy = (r) => ((r.facilitator * r.rps) / 10).toFixed(0);
  console.log(`facilitator stand-in busy (CPU per call x req/s): ${busy(m.peerPaid)}% of a core under the peer, ${busy(m.dispatcherPaid)}% under the dispatcher (it recovers the EIP-712 signer at /verify and again at /settle, in JS)`);
  // One ledger object, driven directly: reserve + settle pairs per second.
  const probe = (n, inflight, floor = false) => probePairs(p, n, inflight, floor);
  if (!freeOnly) {
  await probe(300, 16);
  const ledgerRuns = [];
  for (let i = 0; i < rounds; i++) {
    const c0 = cpuMs(pids);
    const r = await probe(3000, 16);
    ledgerRuns.push({ rate: (r.pairs * 1000) / r.ms, cpu: (cpuMs(pids) - c0) / r.pairs, failed: r.failed });
  }
  console.log(
    `one ledger object, driven directly (scripts/bench/fixtures/ledger-probe.mjs, 16 pairs in flight, 3000 pairs a run): ` +
      `${median(ledgerRuns.map((r) => r.rate)).toFixed(0)} reserve+settle pairs/s (runs: ${ledgerRuns.map((r) => r.rate.toFixed(0)).join("/")}), ` +
      `workerd CPU ${median(ledgerRuns.map((r) => r.cpu)).toFixed(3)} ms per pair, failed ${ledgerRuns.reduce((a, r) => a + r.failed, 0)}`,
  );
  // The ceilings: the same two calls per pair to JS objects that do no ledger work.
  const floors = [
    [true, "the same two requests per pair to a JS Durable Object that only answers them (FloorObject, no storage)", "the fetch round trips alone"],
    ["rpc", "the same two calls as JS RPC methods (RpcFloorObject, no Request/Response, no storage)", "what a ledger reached over RPC could not beat"],
    ["rpc-sql", "the same RPC calls, each writing one SQLite row (a durable commit per call, as every ledger write is)", "the ceiling of one commit per call on this disk"],
  ];
  for (const [floor, what, meaning] of floors) {
    await probe(300, 16, floor);
    const floorRuns = [];
    for (let i = 0; i < rounds; i++) {
      const c0 = cpuMs(pids);
      const r = await probe(3000, 16, floor);
      floorRuns.push({ rate: (r.pairs * 1000) / r.ms, cpu: (cpuMs(pids) - c0) / r.pairs });
    }
    console.log(
      `${what}: ${median(floorRuns.map((r) => r.rate)).toFixed(0)} pairs/s (runs: ${floorRuns.map((r) => r.rate.toFixed(0)).join("/")}), ` +
        `workerd CPU ${median(floorRuns.map((r) => r.cpu)).toFixed(3)} ms per pair: ${meaning}`,
    );
  }
  }
  console.log(`per round (req/s): ` + Object.entries(results).map(([k, v]) => `${k} ${v.map((r) => r.rps.toFixed(0)).join("/")}`).join("; "));
  const targetP99 = 2 * m.direct.p99 + 5;
  console.log(
    `free targets: throughput ratio ${ratio(m.dispatcherFree.rps, m.direct.rps)} (>= 0.5), p99 ${ms(m.dispatcherFree.p99)} ms (<= 2 x direct + 5 = ${ms(targetP99)}), ` +
      `worst call ${ms(m.dispatcherFree.worst)} ms (< 1000), dropped ${m.dispatcherFree.drops} of ${m.dispatcherFree.n + m.dispatcherFree.nFailed} (0)`,
  );
} finally {
  await p.dispose();
  fac.close();
  fs.rmSync(peer.dir, { recursive: true, force: true });
}

// ---- events lost to a SIGKILL right after answering -----------------------------------------

if (killCalls > 0) {
  const { childPids, tempStateDir } = await import("../../tests/e2e/harness.mjs");
  const { DEV_ANALYTICS_TOKEN } = await import("../local/runtime.mjs");
  const fac2 = await startFacilitatorProcess();
  const persistDir = tempStateDir();
  const vars = { FACILITATOR_URL: fac2.url };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const burstThenKill = async (url, headersList) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
    const statuses = await Promise.all(headersList.map((h) => request(agent, url, h)));
    for (const pid of childPids("workerd")) process.kill(pid, "SIGKILL");
    agent.destroy();
    return statuses.filter((s) => s === 200).length;
  };
  const countEvents = async (base, tenant, stage) => {
    let n = 0;
    let since = 0;
    for (;;) {
      const r = await fetch(`${base}/__platform/events?tenant=${tenant}&stage=${stage}&since=${since}&limit=500`, {
        headers: { authorization: `Bearer ${DEV_ANALYTICS_TOKEN}` },
      });
      const j = await r.json();
      n += j.events.length;
      since = j.nextCursor;
      if (!j.hasMore) return n;
    }
  };
  try {
    let k = await startLocal({ persistDir, vars });
    await seedDemoTenants(k.url);
    await seedDemoTenants(k.url, undefined, { "bench-paid": pricedTenant() });
    const paidUrl = `${k.url}/t/bench-paid/hello`;
    const { pool } = await presign(await challengeOf(paidUrl), killCalls);
    const settled = await burstThenKill(paidUrl, pool);
    await Promise.race([k.dispose().catch(() => {}), sleep(5000)]);
    k = await startLocal({ persistDir, vars });
    const served = await burstThenKill(`${k.url}/t/demo-fn/hello`, Array.from({ length: killCalls }, () => ({})));
    await Promise.race([k.dispose().catch(() => {}), sleep(5000)]);
    k = await startLocal({ persistDir, vars });
    // Whatever is still on its way (a ledger's alarm, the queue) gets 20 s.
    let paidEvents = 0;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && (paidEvents = await countEvents(k.url, "bench-paid", "settled")) < settled) await sleep(500);
    await sleep(2000);
    paidEvents = await countEvents(k.url, "bench-paid", "settled");
    const freeEvents = await countEvents(k.url, "demo-fn", "served");
    await k.dispose();
    console.log(`\nevents lost to a SIGKILL of workerd right after answering (${killCalls} calls at once, restart on the same state, 20 s to deliver):`);
    console.log(`| calls | answered 200 | events after restart | lost |`);
    console.log(`|---|---|---|---|`);
    console.log(`| paid, settled | ${settled} | ${paidEvents} | ${Math.max(0, settled - paidEvents)} |`);
    console.log(`| free, served | ${served} | ${freeEvents} | ${Math.max(0, served - freeEvents)} |`);
  } finally {
    fac2.close();
    fs.rmSync(persistDir, { recursive: true, force: true });
  }
}
