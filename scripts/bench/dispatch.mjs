// Free call through the dispatcher to the sample function tenant vs a direct call to the
// same tenant Worker, in the same local workerd (bare sockets, no wrangler dev proxy, no
// inspector). Prints a table and the ratio.
import { startLocal, seedDemoTenants } from "../local/runtime.mjs";
import { load, row, HEADER } from "./load.mjs";

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 8);
const p = await startLocal({ persistDir: null, directSockets: true });
try {
  await seedDemoTenants(p.url);
  const via = `${p.directUrls["claw-dispatcher"]}/t/demo-fn/hello`;
  const direct = `${p.directUrls["demo-fn"]}/hello`;
  for (const u of [via, direct]) {
    const r = await fetch(u);
    if (r.status !== 200) throw new Error(`${u}: ${r.status} ${await r.text()}`);
  }
  load(via, { seconds: 2, connections }); // warm-up: JIT, isolate, config cache
  load(direct, { seconds: 2, connections });
  const a = load(via, { seconds, connections });
  const b = load(direct, { seconds, connections });
  console.log(`\nfree call, ${connections} connections, ${seconds}s each, hey on loopback, workerd via Miniflare direct sockets\n`);
  console.log(HEADER);
  console.log(row("through dispatcher /t/demo-fn/hello", a));
  console.log(row("direct to demo-fn /hello", b));
  console.log(`\nthroughput ratio dispatcher/direct: ${(a.rps / b.rps).toFixed(2)}`);
  console.log(`added latency: p50 +${(a.p50Ms - b.p50Ms).toFixed(2)} ms, p99 +${(a.p99Ms - b.p99Ms).toFixed(2)} ms`);
} finally {
  await p.dispose();
}
