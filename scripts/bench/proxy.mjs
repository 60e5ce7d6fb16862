// Proxy tenants under load, in the same local workerd (bare sockets, no wrangler dev proxy,
// no inspector), against the loopback upstream of the tests (tests/fakes/upstream.mjs):
// 1. overhead: a GET through the dispatcher to a proxy tenant without cache vs the same GET
//    straight to the upstream, at 1 connection (latency per call, no queueing) and under
//    load (BENCH_CONNECTIONS);
// 2. cache-hit latency: the same GET to a tenant whose cache holds the answer;
// 3. upstream calls saved under a repeated-GET load with a short TTL (entries expire and
//    are refetched during the run), counted at the upstream.
// Prints a table. The machine may be shared: the figures are indicative.
import { spawn } from "node:child_process";
import http from "node:http";
import path from "node:path";
import { startLocal, seedDemoTenants, DEV_ADMIN_TOKEN, ROOT } from "../local/runtime.mjs";
import { load, row, HEADER } from "./load.mjs";

/// The upstream runs in a process of its own: hey runs synchronously here.
async function startUpstreamProcess() {
  const child = spawn(process.execPath, [path.join(ROOT, "tests/fakes/upstream.mjs"), "0"], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/upstream on (\S+)/);
      if (m) resolve(m[1]);
    });
    child.on("exit", (code) => reject(new Error(`upstream exited with ${code}`)));
  });
  return {
    url,
    // A fresh connection each time: a pooled one may have idled out during a load run.
    total: () =>
      new Promise((resolve, reject) => {
        http
          .get(`${url}/__stats`, { agent: false }, (res) => {
            let body = "";
            res.on("data", (d) => (body += d));
            res.on("end", () => resolve(JSON.parse(body).total));
          })
          .on("error", reject);
      }),
    close: () => child.kill("SIGTERM"),
  };
}

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);
const loadTtlS = Number(process.env.BENCH_CACHE_TTL_S ?? 2);

const up = await startUpstreamProcess();
const p = await startLocal({ persistDir: null, directSockets: true, allowLoopbackUpstreams: true });
try {
  await seedDemoTenants(p.url, DEV_ADMIN_TOKEN, {
    "bench-px": { resourceType: "proxy", plan: "free", proxy: { upstreamUrl: `${up.url}/v1`, cacheTtlS: 0 } },
    "bench-px-cached": { resourceType: "proxy", plan: "free", proxy: { upstreamUrl: `${up.url}/v1`, cacheTtlS: 3600 } },
    "bench-px-ttl": { resourceType: "proxy", plan: "free", proxy: { upstreamUrl: `${up.url}/v1`, cacheTtlS: loadTtlS } },
  });
  const dispatcher = p.directUrls["claw-dispatcher"];
  const direct = `${up.url}/v1/json`;
  const uncached = `${dispatcher}/t/bench-px/json`;
  const cached = `${dispatcher}/t/bench-px-cached/json`;
  const repeated = `${dispatcher}/t/bench-px-ttl/json?load=1`;
  for (const u of [direct, uncached, cached, repeated]) {
    const r = await fetch(u);
    if (r.status !== 200) throw new Error(`${u}: ${r.status} ${await r.text()}`);
  }
  const status = (await fetch(cached)).headers.get("x-claw-cache");
  if (status !== "hit") throw new Error(`expected a cache hit, got ${status}`);
  for (const u of [direct, uncached, cached]) load(u, { seconds: 2, connections }); // warm-up

  const signed = (x) => `${x >= 0 ? "+" : ""}${x.toFixed(2)}`;
  const table = (title, n) => {
    const a = load(direct, { seconds, connections: n });
    const b = load(uncached, { seconds, connections: n });
    const c = load(cached, { seconds, connections: n });
    console.log(`\n${title}: GET /json, ${n} connection(s), ${seconds}s each, hey on loopback, workerd via Miniflare direct sockets\n`);
    console.log(HEADER);
    console.log(row("direct to the loopback upstream", a));
    console.log(row("through dispatcher, proxy without cache", b));
    console.log(row("through dispatcher, proxy cache hit", c));
    console.log(`\nproxy overhead (no cache vs direct): p50 ${signed(b.p50Ms - a.p50Ms)} ms, p99 ${signed(b.p99Ms - a.p99Ms)} ms`);
    console.log(`cache hit vs direct upstream: p50 ${signed(c.p50Ms - a.p50Ms)} ms, p99 ${signed(c.p99Ms - a.p99Ms)} ms`);
  };
  table("latency per call", 1);
  table("under load", connections);

  const before = await up.total();
  const d = load(repeated, { seconds, connections });
  const upstreamCalls = (await up.total()) - before;
  console.log(`\nrepeated GET of one URL, ${connections} connections, ${seconds}s\n`);
  console.log(HEADER);
  console.log(row(`through dispatcher, cacheTtlS ${loadTtlS}`, d));
  const saved = d.requests - upstreamCalls;
  console.log(
    `repeated GET with cacheTtlS ${loadTtlS}: ${d.requests} calls served, ${upstreamCalls} reached the upstream, ` +
      `${saved} saved (${((100 * saved) / Math.max(1, d.requests)).toFixed(2)}%)`,
  );
} finally {
  await p.dispose();
  up.close();
}
