// Deployment figures on the built Worker in a local workerd (Miniflare's API, direct
// sockets, inspector off; the script API stand-in and the Worker Loader namespace of
// scripts/local/runtime.mjs):
// - time from the upload's start to the first successful call of the new version, for a
//   small function (redeployed ROUNDS times) and for a ~10 MB CSV dataset of 100k rows;
// - dataset query latency on those 100k rows (filter + sort + page), sequential, p50/p99.
import { startLocal, DEV_ADMIN_TOKEN } from "../local/runtime.mjs";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 300);
const ROWS = 100_000;
const auth = { authorization: `Bearer ${DEV_ADMIN_TOKEN}` };

function form(main, parts, date = "2026-04-20") {
  const f = new FormData();
  f.set("metadata", new Blob([JSON.stringify({ main_module: main, compatibility_date: date })], { type: "application/json" }));
  for (const [name, type, body] of parts) f.set(name, new File([body], name, { type }));
  return f;
}

async function put(base, slug, config) {
  const r = await fetch(`${base}/__platform/tenants/${slug}`, {
    method: "PUT",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify(config),
  });
  if (r.status !== 201 && r.status !== 200) throw new Error(`tenant ${slug}: ${r.status} ${await r.text()}`);
}

/// ms from the upload's start to its answer, and to the first call answering `ok(res, text)`.
async function deployAndCall(base, slug, body, url, ok) {
  const t0 = performance.now();
  const r = await fetch(`${base}/__platform/tenants/${slug}/deployment`, { method: "PUT", headers: auth, body });
  const text = await r.text();
  if (r.status !== 201) throw new Error(`deploy ${slug}: ${r.status} ${text}`);
  const uploaded = performance.now() - t0;
  for (let i = 0; i < 2000; i++) {
    const c = await fetch(url);
    const t = await c.text();
    if (c.status === 200 && ok(t)) return { uploaded, firstCall: performance.now() - t0, version: JSON.parse(text).version };
  }
  throw new Error(`${slug}: the new version never answered`);
}

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const f1 = (x) => x.toFixed(1).padStart(8);

function datasetCsv() {
  const countries = ["FR", "DE", "ES", "IT", "PT", "NL", "BE", "PL", "SE", "AT"];
  const lines = ["id,name,country,city,population,score,active,note"];
  for (let i = 1; i <= ROWS; i++) {
    const c = countries[i % countries.length];
    lines.push(`${i},name-${i.toString(36)},${c},city-${(i * 7919) % 5000},${(i * 104729) % 9000000 + 0.25},${(i * 31) % 1000},${i % 3 === 0},"note ${i}: some descriptive text, quoted"`);
  }
  return lines.join("\n") + "\n";
}

const p = await startLocal({ persistDir: null, directSockets: true });
try {
  const base = p.directUrls["claw-dispatcher"];
  console.log(`\ndeployments on workerd (Miniflare API, direct sockets, inspector off); the script API stand-in + Worker Loader namespace\n`);

  // A small function, redeployed.
  await put(base, "bench-fn", { resourceType: "function", plan: "pro" });
  const fn = [];
  for (let i = 0; i < ROUNDS; i++) {
    const tag = `v${i}-${Date.now()}`;
    const src = `export default { fetch() { return new Response(${JSON.stringify(tag)}) } }`;
    fn.push(await deployAndCall(base, "bench-fn", form("index.js", [["index.js", "application/javascript+module", src]]), `${base}/t/bench-fn/`, (t) => t === tag));
  }
  console.log(`small function (${ROUNDS} deployments), ms:       upload answered   first call of the new version`);
  for (const r of fn) console.log(`  version ${String(r.version).padEnd(3)}                              ${f1(r.uploaded)}   ${f1(r.firstCall)}`);
  console.log(`  median                                   ${f1(pct(fn.map((r) => r.uploaded), 50))}   ${f1(pct(fn.map((r) => r.firstCall), 50))}`);

  // A ~10 MB CSV of 100k rows.
  const csv = datasetCsv();
  await put(base, "bench-data", { resourceType: "dataset", plan: "business" });
  const ds = [];
  for (let i = 0; i < 2; i++) {
    ds.push(await deployAndCall(base, "bench-data", form("data.csv", [["data.csv", "text/csv", csv]]), `${base}/t/bench-data/rows?limit=1`, (t) => t.includes('"total":100000')));
  }
  console.log(`\nCSV dataset, ${(Buffer.byteLength(csv) / 1e6).toFixed(1)} MB, ${ROWS} rows, 8 columns, ms: upload answered   first query answered`);
  for (const r of ds) console.log(`  version ${String(r.version).padEnd(3)}                              ${f1(r.uploaded)}   ${f1(r.firstCall)}`);

  // Queries: filter + sort + page on 100k rows.
  const countries = ["FR", "DE", "ES", "IT", "PT"];
  const shapes = [
    (i) => `country=${countries[i % 5]}&score.gte=${(i * 37) % 900}&sort=-population&limit=50&fields=id,name,population,score`,
    (i) => `population.gte=${(i * 12345) % 8000000}&population.lt=${(i * 12345) % 8000000 + 500000}&sort=score,-id&limit=100`,
    (i) => `country.in=FR,DE,IT&active=true&sort=name&limit=25&fields=id,name`,
  ];
  for (const [k, shape] of shapes.entries()) {
    const first = performance.now();
    const r0 = await fetch(`${base}/t/bench-data/rows?${shape(0)}`);
    if (r0.status !== 200) throw new Error(`query: ${r0.status} ${await r0.text()}`);
    await r0.arrayBuffer();
    const cold = performance.now() - first;
    const times = [];
    for (let i = 1; i <= QUERIES; i++) {
      const t0 = performance.now();
      const r = await fetch(`${base}/t/bench-data/rows?${shape(i)}`);
      await r.arrayBuffer();
      if (r.status !== 200) throw new Error(`query ${i}: ${r.status}`);
      times.push(performance.now() - t0);
    }
    console.log(`\nquery ${k + 1}: ${shape(1)}`);
    console.log(`  first (sort order built) ${cold.toFixed(1)} ms; then ${QUERIES} sequential: p50 ${pct(times, 50).toFixed(2)} ms, p99 ${pct(times, 99).toFixed(2)} ms, max ${Math.max(...times).toFixed(2)} ms`);
  }
  console.log(`\nbounds: function modules <= 10 MiB together, <= 5 MiB each, <= 32 modules; dataset file <= 16 MiB, <= 200000 rows, <= 64 columns; page <= 1000 rows`);
} finally {
  await p.dispose();
}
