// Where long free-call stalls come from: free calls through the dispatcher at C concurrent
// keep-alive workers, and beside them three probes that each send one request every 50 ms
// on their own connection: the tenant Worker directly (no dispatcher code), the dispatcher's
// index route (no Durable Object, no tenant) and the registry through the platform API (one
// Durable Object). A stall that every probe sees at the same second is the whole runtime
// process (one workerd thread runs every isolate here), not the dispatcher's path. The node
// process's own event-loop lag is watched too, so a stall of this client cannot pass for one
// of the server.
//
//   node scripts/bench/stalls.mjs            (BENCH_CALLS=30000, BENCH_CONCURRENCY=32,
//                                             BENCH_VARS='{"USAGE_EVENTS_ENABLED":"false"}',
//                                             BENCH_TARGET=direct: the load goes straight to
//                                             the tenant Worker instead)
//
// Prints, per second of the run, the slowest answer of each probe and of the load when it
// took over STALL_MS (default 900 ms).
//
// What it found: workerd's event loop reads sockets only when it has no ready event left,
// and a saturated dispatcher (in-process object calls, keep-alive requests already
// buffered) never ran out, so every probe waited 1.4-4.6 s at once while the load went on.
// The dispatcher now yields to I/O once per request (`yield_to_io` in src/entry.rs); to see
// the stalls again, comment that call out, rebuild and rerun this script.

import http from "node:http";
import { startLocal, seedDemoTenants, DEV_ADMIN_TOKEN } from "../local/runtime.mjs";

const calls = Number(process.env.BENCH_CALLS ?? 30_000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const stallMs = Number(process.env.STALL_MS ?? 900);
const vars = JSON.parse(process.env.BENCH_VARS ?? "{}");
const direct = process.env.BENCH_TARGET === "direct";

const p = await startLocal({ persistDir: null, directSockets: true, vars });
try {
  await seedDemoTenants(p.url);
  const base = p.directUrls["claw-dispatcher"];
  const get = (agent, url, headers = {}) =>
    new Promise((resolve) => {
      const u = new URL(url);
      const r = http.request({ host: u.hostname, port: u.port, path: u.pathname, agent, headers, timeout: 60_000 }, (res) => {
        res.on("data", () => {});
        res.on("end", () => resolve(res.statusCode));
      });
      r.on("timeout", () => r.destroy(Object.assign(new Error("timeout"), { code: "timeout" })));
      r.on("error", (e) => resolve(e.code ?? "error"));
      r.end();
    });
  const t0 = Date.now();
  const slow = new Map();
  const note = (what, startedAt, ms) => {
    if (ms <= stallMs) return;
    const key = `${Math.floor((startedAt - t0) / 1000)}s ${what}`;
    slow.set(key, Math.max(slow.get(key) ?? 0, ms));
  };
  let stop = false;
  let lastTick = Date.now();
  const lag = setInterval(() => {
    const now = Date.now();
    note("client event loop", lastTick, now - lastTick - 100);
    lastTick = now;
  }, 100);
  const probe = async (what, url, headers) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    while (!stop) {
      const s = Date.now();
      await get(agent, url, headers);
      note(what, s, Date.now() - s);
      await new Promise((r) => setTimeout(r, 50));
    }
    agent.destroy();
  };
  const probes = [
    probe("probe: tenant Worker directly", `${p.directUrls["demo-fn"]}/hello`),
    probe("probe: dispatcher index", `${base}/`),
    probe("probe: registry object", `${base}/__platform/tenants/demo-fn`, { authorization: `Bearer ${DEV_ADMIN_TOKEN}` }),
  ];
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let sent = 0;
  const failed = {};
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < calls) {
        sent++;
        const s = Date.now();
        const status = await get(agent, direct ? `${p.directUrls["demo-fn"]}/hello` : `${base}/t/demo-fn/hello`);
        if (status !== 200) failed[status] = (failed[status] ?? 0) + 1;
        note(direct ? "load: free call straight to the tenant Worker" : "load: free call through the dispatcher", s, Date.now() - s);
      }
    }),
  );
  stop = true;
  clearInterval(lag);
  await Promise.all(probes);
  agent.destroy();
  const secs = (Date.now() - t0) / 1000;
  console.log(`${calls} free calls ${direct ? "straight to the tenant Worker" : "through the dispatcher"} at C=${concurrency} in ${secs.toFixed(1)} s (${(calls / secs).toFixed(0)}/s), not 200: ${JSON.stringify(failed)}, vars ${JSON.stringify(vars)}`);
  console.log(`answers over ${stallMs} ms, slowest per second and source:`);
  const rows = [...slow.entries()].sort((a, b) => parseInt(a[0]) - parseInt(b[0]) || a[0].localeCompare(b[0]));
  for (const [k, ms] of rows) console.log(`  ${k}: ${ms} ms`);
  if (!rows.length) console.log("  none");
} finally {
  await p.dispose();
}
