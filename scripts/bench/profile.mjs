// A CPU profile of the dispatcher's isolate (the dispatcher and its Durable Objects run in
// it) under load, from workerd's inspector: where the server CPU of a call goes.
//
//   node scripts/bench/profile.mjs [paid|free|ledger] [seconds]
//
// `ledger` profiles one tenant ledger object driven directly by reserve + settle pairs
// (scripts/bench/fixtures/ledger-probe.mjs, as in scripts/bench-peer): seconds is then the
// number of thousands of pairs.
// Prints workerd CPU per call and the functions with the most self time (wasm functions by
// index unless the build kept its name section), and writes the .cpuprofile (Chrome
// DevTools can open it) to $PROFILE_OUT (default /tmp/claw-<mode>.cpuprofile).
// Paid calls are x402 v2, pre-signed, verified and settled by the facilitator stand-in in a
// child process (as in scripts/bench-peer).

import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import { startLocal, seedDemoTenants, ROOT } from "../local/runtime.mjs";
import { ledgerProbeWorker, probePairs, startFacilitatorProcess } from "./common.mjs";
import { pricedTenant, payHeaders, unb64 } from "../../tests/e2e/x402_client.mjs";

const mode = process.argv[2] ?? "paid";
const seconds = Number(process.argv[3] ?? 6);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const out = process.env.PROFILE_OUT ?? `/tmp/claw-${mode}.cpuprofile`;
const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim() || 100);

function workerdCpuMs() {
  let ticks = 0;
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const close = s.lastIndexOf(")");
      if (!s.slice(s.indexOf("(") + 1, close).startsWith("workerd")) continue;
      const f = s.slice(close + 2).split(" ");
      let ppid = Number(f[1]);
      // Only workerd processes below this node process.
      let mine = false;
      for (let hop = 0; hop < 4 && ppid > 1; hop++) {
        if (ppid === process.pid) mine = true;
        const ps = fs.readFileSync(`/proc/${ppid}/stat`, "utf8");
        ppid = Number(ps.slice(ps.lastIndexOf(")") + 2).split(" ")[1]);
      }
      if (mine) ticks += Number(f[11]) + Number(f[12]);
    } catch {}
  }
  return ticks * (1000 / CLK_TCK);
}


function request(agent, url, headers) {
  const u = new URL(url);
  return new Promise((resolve) => {
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, headers, agent }, (res) => {
      res.on("data", () => {});
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", (e) => resolve(e.code ?? "error"));
    req.end();
  });
}

async function load(url, next, s) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let ok = 0;
  const other = {};
  const end = performance.now() + s * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const h = next();
        if (h === null) return;
        const st = await request(agent, url, h);
        if (st === 200) ok++;
        else other[st] = (other[st] ?? 0) + 1;
      }
    }),
  );
  agent.destroy();
  return { ok, other };
}

function cdp(wsUrl) {
  const ws = new WebSocket(wsUrl);
  let id = 0;
  const pending = new Map();
  ws.on("message", (m) => {
    const msg = JSON.parse(m);
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  });
  const ready = new Promise((r) => ws.on("open", r));
  return {
    ready,
    send: (method, params = {}) =>
      new Promise((resolve) => {
        const i = ++id;
        pending.set(i, resolve);
        ws.send(JSON.stringify({ id: i, method, params }));
      }),
    close: () => ws.close(),
  };
}

const inspectorPort = 9300 + Math.floor(Math.random() * 500);
const fac = await startFacilitatorProcess();
const p = await startLocal({
  persistDir: null,
  directSockets: true,
  // PROFILE_VARS: JSON of extra dispatcher vars (e.g. {"USAGE_EVENTS_ENABLED":"false"}).
  vars: { FACILITATOR_URL: fac.url, ...JSON.parse(process.env.PROFILE_VARS ?? "{}") },
  inspectorPort,
  extraWorkers: [ledgerProbeWorker()],
});
const probe = (n) => probePairs(p, n, 16);
try {
  await seedDemoTenants(p.url);
  await seedDemoTenants(p.url, undefined, { "bench-paid": pricedTenant() });
  const base = p.directUrls["claw-dispatcher"];
  const url = mode === "paid" ? `${base}/t/bench-paid/hello` : `${base}/t/demo-fn/hello`;
  let next = () => ({});
  const sign = async (n) => {
    const res = await fetch(url);
    const challenge = { status: 402, v2: unb64(res.headers.get("payment-required")) };
    await res.text();
    const pool = [];
    for (let i = 0; i < n; i++) pool.push(await payHeaders(challenge, 2));
    return pool;
  };
  if (mode === "paid") {
    const warm = await sign(300);
    await load(url, () => warm.pop() ?? null, 2);
    const pool = await sign(Number(process.env.PROFILE_PAYMENTS ?? 3000));
    next = () => pool.pop() ?? null;
  } else if (mode === "ledger") {
    await probe(300);
  } else {
    await load(url, next, 1);
  }
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json();
  // PROFILE_TARGET: a regex of the isolate to profile (default the dispatcher's).
  const want = new RegExp(process.env.PROFILE_TARGET ?? "claw-dispatcher");
  if (process.env.PROFILE_TARGET) console.log(`inspector targets: ${targets.map((t) => t.title).join(", ")}`);
  const target = targets.find((t) => want.test(t.title ?? "") || want.test(t.url ?? ""));
  if (!target) throw new Error(`no dispatcher inspector target: ${JSON.stringify(targets.map((t) => t.title))}`);
  const c = cdp(target.webSocketDebuggerUrl);
  await c.ready;
  await c.send("Profiler.enable");
  await c.send("Profiler.setSamplingInterval", { interval: 200 });
  await c.send("Profiler.start");
  const cpu0 = workerdCpuMs();
  const t0 = performance.now();
  const r =
    mode === "ledger"
      ? await probe(seconds * 1000).then((x) => ({ ok: x.pairs - x.failed, other: { failed: x.failed } }))
      : await load(url, next, seconds);
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = workerdCpuMs() - cpu0;
  const { result } = await c.send("Profiler.stop");
  c.close();
  fs.writeFileSync(out, JSON.stringify(result.profile));
  const prof = result.profile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = prof.timeDeltas;
  for (let i = 0; i < prof.samples.length; i++) {
    const n = byId.get(prof.samples[i]);
    const f = n.callFrame;
    const key = `${f.functionName || "(anon)"} ${path.basename(f.url || "")}:${f.lineNumber}`;
    self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0) / 1000);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  console.log(`${mode}: ${r.ok} calls ok (${JSON.stringify(r.other)}) in ${elapsed.toFixed(1)} s = ${(r.ok / elapsed).toFixed(0)}/s (ledger: pairs); workerd CPU ${(cpu / Math.max(1, r.ok)).toFixed(2)} ms per call`);
  console.log(`dispatcher isolate profile: ${(total / Math.max(1, r.ok)).toFixed(3)} ms sampled per call (incl. idle/program); top self time:`);
  for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.PROFILE_TOP ?? 40))) {
    console.log(`${(v / Math.max(1, r.ok)).toFixed(4).padStart(9)} ms/call ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`);
  }
  console.log(`profile written to ${out}`);
} finally {
  await p.dispose();
  fac.close();
}
