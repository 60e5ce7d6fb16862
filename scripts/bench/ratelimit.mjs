// Figures for the rate limiter (issue 3), all in one local workerd (Miniflare API, direct
// sockets, inspector off; indicative only: a shared 2-core machine, hey on loopback):
// 1. over-admissions under one concurrent burst: the Durable Object limiter (through the
//    dispatcher) vs a KV read-then-write limiter like the prototype's (fixture Worker);
// 2. added p50/p99 latency of the limiter on a free call: limiting off vs per caller vs per
//    caller + sharded global, same tenant Worker otherwise;
// 3. admitted checks per second one limiter object sustains (fixture Worker calling one
//    object, every check admitted), and the same through the dispatcher.
import path from "node:path";
import http from "node:http";
import { startLocal, seedDemoTenants, ROOT } from "../local/runtime.mjs";
import { load, row, HEADER } from "./load.mjs";

const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 16);
const burst = Number(process.env.BENCH_BURST ?? 500);
const limit = Number(process.env.BENCH_LIMIT ?? 50);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

const fixture = (name, file, extra) => ({
  name,
  compatibilityDate: "2026-04-20",
  modulesRoot: ROOT,
  modules: [{ type: "ESModule", path: path.join(ROOT, "scripts/bench/fixtures", file) }],
  ...extra,
});

const fn = (extra) => ({ resourceType: "function", workerName: "demo-fn", plan: "free", ...extra });
// Limits far above anything the load reaches here: the limiter runs on every call, never refuses.
const huge = { perCaller: "1000000/1s", burst: 100000 };
const TENANTS = {
  "bench-off": fn({}),
  "bench-caller": fn({ rateLimit: huge }),
  "bench-global": fn({ rateLimit: { ...huge, global: "1000000/1s" } }),
  // `limit` at once (burst limit - 1), one more per 3600 / limit s: no refill during a burst.
  "bench-burst": fn({ rateLimit: { perCaller: `${limit}/1h`, burst: limit - 1 } }),
};

const p = await startLocal({
  persistDir: null,
  directSockets: true,
  extraWorkers: [
    fixture("kv-limiter", "kv-limiter.js", { kvNamespaces: ["RATE_KV"] }),
    fixture("limiter-probe", "limiter-probe.js", {
      durableObjects: { LIMITER: { className: "RateLimiter", scriptName: "claw-dispatcher" } },
    }),
  ],
});
try {
  await seedDemoTenants(p.url, undefined, TENANTS);
  const dispatcher = p.directUrls["claw-dispatcher"];
  const kv = p.directUrls["kv-limiter"];
  const probe = p.directUrls["limiter-probe"];

  // 1. The same burst at both limiters, a fresh caller each round. A connection per
  // request, so all of them are in flight at once and none meets a closing kept-alive one.
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const status = (url, headers) =>
    new Promise((resolve, reject) => {
      const u = new URL(url);
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, headers, agent }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end();
    });
  const fire = async (url, ip) => {
    const statuses = await Promise.all(Array.from({ length: burst }, () => status(url, { "cf-connecting-ip": ip })));
    const admitted = statuses.filter((s) => s === 200).length;
    const refused = statuses.filter((s) => s === 429).length;
    if (admitted + refused !== burst) throw new Error(`${url}: unexpected statuses ${[...new Set(statuses)]}`);
    return admitted;
  };
  const results = { do: [], kv: [] };
  for (let i = 0; i < rounds; i++) {
    const ip = `198.51.100.${i + 1}`;
    results.do.push(await fire(`${dispatcher}/t/bench-burst/hello`, ip));
    results.kv.push(await fire(`${kv}/?limit=${limit}&windowS=3600&run=${Date.now()}`, ip));
  }
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  console.log(`\n1. ${burst} concurrent requests from one caller, limit ${limit} (no refill during the burst), ${rounds} rounds\n`);
  console.log("| limiter | admitted per round | over-admitted total |\n|---|---|---|");
  console.log(`| Durable Object GCRA (through the dispatcher) | ${results.do.join(", ")} | ${sum(results.do) - limit * rounds} |`);
  console.log(`| KV read-then-write (prototype-style fixture) | ${results.kv.join(", ")} | ${sum(results.kv) - limit * rounds} |`);

  // 2. Added latency on a free call.
  const ip = { "cf-connecting-ip": "203.0.113.7" };
  const cases = [
    ["limiting off (bench-off)", `${dispatcher}/t/bench-off/hello`],
    ["per caller (bench-caller)", `${dispatcher}/t/bench-caller/hello`],
    ["per caller + global, 32 shards (bench-global)", `${dispatcher}/t/bench-global/hello`],
  ];
  for (const [, u] of cases) {
    const r = await fetch(u, { headers: ip });
    if (r.status !== 200) throw new Error(`${u}: ${r.status} ${await r.text()}`);
    load(u, { seconds: 2, connections, headers: ip }); // warm-up
  }
  const measured = cases.map(([name, u]) => [name, load(u, { seconds, connections, headers: ip })]);
  console.log(`\n2. free call through the dispatcher, ${connections} connections, ${seconds}s each, one caller\n`);
  console.log(HEADER);
  for (const [name, r] of measured) console.log(row(name, r));
  const off = measured[0][1];
  for (const [name, r] of measured.slice(1)) {
    console.log(`added by ${name}: p50 +${(r.p50Ms - off.p50Ms).toFixed(2)} ms, p99 +${(r.p99Ms - off.p99Ms).toFixed(2)} ms`);
  }

  // 3. One object's admitted checks per second.
  const one = `${probe}/?key=bench/one-object&limit=1000000&windowS=1&burst=100000`;
  const first = await fetch(one);
  if (first.status !== 200) throw new Error(`probe: ${first.status} ${await first.text()}`);
  load(one, { seconds: 2, connections: 32 });
  const o = load(one, { seconds, connections: 32 });
  console.log(`\n3. one limiter object, every check admitted, 32 connections, ${seconds}s\n`);
  console.log(HEADER);
  console.log(row("probe Worker -> one RateLimiter object", o));
  console.log(row("dispatcher, one caller (= one object), from 2.", measured[1][1]));
  console.log(`\none object sustained ~${o.rps.toFixed(0)} admitted checks/s here (errors or refusals: ${o.errors})`);
} finally {
  await p.dispose();
}
