// Agents figures, on workerd through Miniflare's direct sockets (no wrangler dev proxy, no
// inspector), loopback only, local verification (EIP-712 recovery in the Worker; no chain):
// 1. a paid MCP tools/call (POST /mcp, payment in _meta["x402/payment"]) vs the same paid
//    call over HTTP (GET /t/{slug}/hello with PAYMENT-SIGNATURE): p50/p99 and throughput
//    from a keep-alive node load loop; payments are single use, so they are pre-signed
//    (viem). The MCP requests are raw JSON-RPC (what the SDK sends, without its client cost).
// 2. discovery with 1,000 active paid tenants (each describing 2 routes and 1 MCP tool):
//    a cold page (the catalog rebuilt: registry listing + trending signals), then warm pages
//    of GET /discovery/resources?limit=100 and GET /discovery/search from the isolate cache.
// Env: BENCH_SECONDS (default 8), BENCH_CONCURRENCY (8), BENCH_PAID_PAYMENTS (3000),
// BENCH_TENANTS (1000). Numbers are indicative: 2 shared cores, client and server on one machine.

import http from "node:http";
import { performance } from "node:perf_hooks";
import { startLocal, DEV_ADMIN_TOKEN } from "../local/runtime.mjs";
import { pricedTenant, payHeaders, readChallenge, unb64 } from "../../tests/e2e/x402_client.mjs";

const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 8);
const paidPayments = Number(process.env.BENCH_PAID_PAYMENTS ?? 3000);
const tenants = Number(process.env.BENCH_TENANTS ?? 1000);

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });

function request(url, { method = "GET", headers = {}, body } = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/// `concurrency` workers send `next()` requests until `seconds` pass or it returns null;
/// `ok(response)` says whether an answer counts as served.
async function load(next, ok, s = seconds) {
  const latencies = [];
  let errors = 0;
  const end = performance.now() + s * 1000;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        if (performance.now() >= end) return;
        const r = next();
        if (r === null) return;
        const t0 = performance.now();
        let good = false;
        try {
          good = ok(await request(r.url, r));
        } catch {}
        latencies.push(performance.now() - t0);
        if (!good) errors++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / elapsed, p50: pct(latencies, 50), p99: pct(latencies, 99), n: latencies.length, errors };
}

const row = (name, r) => `| ${name} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.n} | ${r.errors} |`;
const HEAD = "| case | req/s | p50 ms | p99 ms | requests | not served |\n|---|---|---|---|---|---|";

const schema = { type: "object", properties: { name: { type: "string" } }, required: ["name"] };
function described(i) {
  return {
    ...pricedTenant(),
    discovery: {
      serviceName: `Bench ${i}`,
      tags: ["bench", `t${i % 50}`],
      description: `Benchmark tenant number ${i}`,
      routes: [
        { route: "/hello", method: "GET", query: schema, example: { name: "agent" }, outputExample: { hello: "agent" } },
        { route: "/echo/:word", method: "POST", body: { type: "object" } },
      ],
    },
    mcpTools: [{ name: "hello", description: "Say hello", inputSchema: schema, route: "/hello", method: "GET" }],
  };
}

async function put(base, slug, config) {
  const r = await request(`${base}/__platform/tenants/${slug}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${DEV_ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(config),
  });
  if (r.status !== 200 && r.status !== 201) throw new Error(`PUT ${slug}: ${r.status} ${r.text}`);
}

const p = await startLocal({ persistDir: null, directSockets: true, allowLocalX402: true });
try {
  const base = p.directUrls["claw-dispatcher"];
  await put(base, "bench-mcp", described(0));
  const httpUrl = `${base}/t/bench-mcp/hello`;
  const challenge = await readChallenge(await fetch(httpUrl));
  if (challenge.status !== 402) throw new Error(`expected a 402, got ${challenge.status}`);
  const t0 = performance.now();
  const signed = [];
  for (let i = 0; i < paidPayments; i++) signed.push((await payHeaders(challenge, 2))["PAYMENT-SIGNATURE"]);
  const signMs = performance.now() - t0;

  let id = 0;
  const mcpCall = (header) => ({
    url: `${base}/mcp`,
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: ++id,
      method: "tools/call",
      params: { name: "bench-mcp__hello", arguments: { name: "agent" }, _meta: { "x402/payment": unb64(header) } },
    }),
  });
  const httpCall = (header) => ({ url: `${httpUrl}?name=agent`, headers: { "PAYMENT-SIGNATURE": header } });
  const mcpServed = (r) => r.status === 200 && r.text.includes('"x402/payment-response"') && r.text.includes('"isError":false');
  const httpServed = (r) => r.status === 200;

  // Warm-up both paths, then alternate rounds (half the payments each way).
  await load(() => (signed.length > paidPayments - 50 ? httpCall(signed.pop()) : null), httpServed, 2);
  await load(() => (signed.length > paidPayments - 100 ? mcpCall(signed.pop()) : null), mcpServed, 2);
  const half = Math.floor(signed.length / 2);
  const httpPayments = signed.splice(0, half);
  const mcpPayments = signed;
  const overHttp = await load(() => (httpPayments.length ? httpCall(httpPayments.pop()) : null), httpServed);
  const overMcp = await load(() => (mcpPayments.length ? mcpCall(mcpPayments.pop()) : null), mcpServed);

  // Discovery with `tenants` described paid tenants.
  const s0 = performance.now();
  for (let i = 1; i < tenants; i++) await put(base, `bench-t${String(i).padStart(4, "0")}`, described(i));
  const seedS = (performance.now() - s0) / 1000;
  const page = (q) => ({ url: `${base}/discovery/resources?${q}` });
  const listed = (r) => r.status === 200 && JSON.parse(r.text).pagination.total === tenants * 3;
  const cold = [];
  for (let i = 0; i < 5; i++) {
    await put(base, "bench-mcp", described(0)); // a change in this isolate drops the cached catalog
    const c0 = performance.now();
    const r = await request(page("limit=100").url);
    cold.push(performance.now() - c0);
    if (!listed(r)) throw new Error(`cold page: ${r.status} ${r.text.slice(0, 200)}`);
  }
  cold.sort((a, b) => a - b);
  let offset = 0;
  const warm = await load(() => page(`limit=100&offset=${(offset = (offset + 100) % (tenants * 3))}`), listed);
  const search = await load(
    () => ({ url: `${base}/discovery/search?query=benchmark+${Math.floor(Math.random() * tenants)}&limit=10` }),
    (r) => r.status === 200,
  );

  console.log(`\nagents, ${concurrency} concurrent keep-alive workers, ${seconds}s per case, node load loop on loopback, workerd via Miniflare direct sockets (inspector off), local x402 verification`);
  console.log(`pre-signed ${paidPayments} EIP-3009 payments (viem) in ${(signMs / 1000).toFixed(1)} s\n`);
  console.log(HEAD);
  console.log(row("paid call over HTTP: GET /t/bench-mcp/hello + PAYMENT-SIGNATURE", overHttp));
  console.log(row("paid call over MCP: POST /mcp tools/call + _meta x402/payment", overMcp));
  if (overHttp.n >= half || overMcp.n >= half) console.log(`(a run used all its ${half} pre-signed payments: raise BENCH_PAID_PAYMENTS for a full ${seconds}s run)`);
  console.log(`\nMCP/HTTP: throughput ${(overMcp.rps / overHttp.rps).toFixed(2)}; latency p50 +${(overMcp.p50 - overHttp.p50).toFixed(2)} ms, p99 +${(overMcp.p99 - overHttp.p99).toFixed(2)} ms`);
  console.log(`\ndiscovery, ${tenants} active paid tenants (${tenants * 3} items: 2 routes + 1 MCP tool each), seeded in ${seedS.toFixed(1)} s`);
  console.log(`cold page (catalog rebuilt: registry listing + trending signals + build), limit=100: median ${pct(cold, 50).toFixed(1)} ms, max ${cold[cold.length - 1].toFixed(1)} ms (5 rebuilds)`);
  console.log(HEAD);
  console.log(row("warm GET /discovery/resources?limit=100&offset=k", warm));
  console.log(row("warm GET /discovery/search?query=benchmark+N&limit=10", search));
} finally {
  agent.destroy();
  await p.dispose();
}
