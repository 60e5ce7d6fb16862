// End to end: creators' deployments on a real local workerd. The dispatcher uploads to the
// stand-in of Cloudflare's script API (tests/fakes/wfp_scripts_api.js) through the same
// client it uses against api.cloudflare.com, and the namespace emulator runs what was
// uploaded at once through workerd's Worker Loader, its fetches through the egress Worker.

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { wrapFetchWithPayment, x402Client, decodePaymentResponseHeader } from "@x402/fetch";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { startPlatform, admin, assertProblem, getJson, tempStateDir } from "./harness.mjs";
import { DEV_CF_API_TOKEN, DEV_CF_ACCOUNT_ID, DEV_CF_NAMESPACE } from "../../scripts/local/runtime.mjs";
import { pricedTenant, payer } from "./x402_client.mjs";

const DATE = "2026-04-20";
const JS = "application/javascript+module";

/// A Cloudflare-layout upload: metadata, then one part per module ([name, type, text]).
function upload(mainModule, modules, extra = {}) {
  const form = new FormData();
  const metadata = { main_module: mainModule, compatibility_date: DATE, ...extra };
  form.set("metadata", new Blob([JSON.stringify(metadata)], { type: "application/json" }));
  for (const [name, type, body] of modules) form.set(name, new File([body], name, { type }));
  return form;
}

const fnSource = (tag) =>
  `export default { async fetch(req, env) { const u = new URL(req.url);
     return Response.json({ tag: ${JSON.stringify(tag)}, path: u.pathname, env: Object.keys(env).sort(),
       values: Object.fromEntries(Object.entries(env)), limits: JSON.parse(req.headers.get("x-wfp-emulator-limits")) }); } }`;

const fnUpload = (tag) => upload("index.js", [["index.js", JS, fnSource(tag)]]);

function api(base, token = "local-dev-admin-token") {
  const a = admin(base, token);
  const call = async (method, p, body) => {
    const res = await fetch(`${base}/__platform${p}`, {
      method,
      headers: { authorization: `Bearer ${token}` },
      body,
    });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: res.status, headers: res.headers, text, json };
  };
  return {
    ...a,
    deploy: (slug, form) => call("PUT", `/tenants/${slug}/deployment`, form),
    deployment: (slug) => call("GET", `/tenants/${slug}/deployment`),
    rollback: (slug) => call("POST", `/tenants/${slug}/deployment/rollback`),
    setSecret: (slug, name, value) => a.raw("PUT", `/tenants/${slug}/secrets/${name}`, { value }),
    secrets: (slug) => a.raw("GET", `/tenants/${slug}/secrets`),
    delSecret: (slug, name) => a.raw("DELETE", `/tenants/${slug}/secrets/${name}`),
  };
}

/// The script as the script API holds it (the stand-in's GET, the real wire format).
async function cloudflareScript(p, script) {
  const url = `${p.cloudflareApiUrl}/accounts/${DEV_CF_ACCOUNT_ID}/workers/dispatch/namespaces/${DEV_CF_NAMESPACE}/scripts/${script}`;
  return getJson(url, { headers: { authorization: `Bearer ${DEV_CF_API_TOKEN}` } });
}

describe("deployments of function tenants", () => {
  let p;
  let a;
  before(async () => {
    p = await startPlatform();
    a = api(p.url);
  });
  after(() => p?.dispose());

  test("a deployed function answers at once, with the plan's limits; the script carries the slug's tag", async () => {
    assert.equal((await a.put("fn-one", { resourceType: "function", plan: "pro" })).status, 201);
    // Before any deployment the tenant has no script.
    assertProblem(assert, await getJson(`${p.url}/t/fn-one/x`), 502, "tenant_worker_missing");
    const d = await a.deploy("fn-one", fnUpload("v1"));
    assert.equal(d.status, 201, d.text);
    assert.equal(d.json.version, 1);
    assert.equal(d.json.live, true);
    assert.match(d.json.hash, /^[0-9a-f]{64}$/);
    assert.equal(d.json.mainModule, "index.js");
    assert.deepEqual(d.json.modules, [{ name: "index.js", type: JS, size: fnSource("v1").length }]);
    assert.equal(d.json.size, fnSource("v1").length);
    assert.ok(d.json.etag.length > 0);
    const r = await getJson(`${p.url}/t/fn-one/some/path`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.tag, "v1");
    assert.equal(r.json.path, "/some/path");
    assert.deepEqual(r.json.limits, { cpuMs: 200, subRequests: 50 });
    const s = await cloudflareScript(p, "tenant-fn-one");
    assert.equal(s.status, 200);
    assert.equal(s.json.success, true);
    assert.deepEqual(s.json.result.script.tags, ["402claw", "tenant-fn-one"]);
    assert.equal(s.json.result.script.etag, d.json.etag);
    const state = await a.deployment("fn-one");
    assert.equal(state.status, 200);
    assert.equal(state.json.live.version, 1);
    assert.deepEqual(state.json.history.map((v) => v.version), [1]);
  });

  test("redeploy changes the answer at once; rollback goes one version back; no earlier one is 409", async () => {
    assert.equal((await a.put("fn-roll", { resourceType: "function", plan: "free" })).status, 201);
    assert.equal((await a.deploy("fn-roll", fnUpload("one"))).status, 201);
    const two = await a.deploy("fn-roll", fnUpload("two"));
    assert.equal(two.status, 201, two.text);
    assert.equal(two.json.version, 2);
    assert.equal((await getJson(`${p.url}/t/fn-roll/`)).json.tag, "two");
    const back = await a.rollback("fn-roll");
    assert.equal(back.status, 200, back.text);
    assert.equal(back.json.live.version, 1);
    assert.equal((await getJson(`${p.url}/t/fn-roll/`)).json.tag, "one");
    const state = await a.deployment("fn-roll");
    assert.equal(state.json.live.version, 1);
    assert.deepEqual(state.json.history.map((v) => [v.version, v.live]), [[2, false], [1, true]]);
    assertProblem(assert, await a.rollback("fn-roll"), 409, "rollback_unavailable");
    // A new deployment after a rollback is the next version and live.
    const three = await a.deploy("fn-roll", fnUpload("three"));
    assert.equal(three.json.version, 3);
    assert.equal((await getJson(`${p.url}/t/fn-roll/`)).json.tag, "three");
  });

  test("broken uploads are refused, naming what is wrong, and the live version keeps serving", async () => {
    assert.equal((await a.put("fn-broken", { resourceType: "function", plan: "free" })).status, 201);
    const live = await a.deploy("fn-broken", fnUpload("good"));
    assert.equal(live.status, 201);
    const big = "x".repeat(4 * 1024 * 1024);
    const cases = [
      [
        "oversized",
        upload("index.js", [["index.js", JS, fnSource("big")], ["a.txt", "text/plain", big], ["b.txt", "text/plain", big], ["c.txt", "text/plain", big]]),
        413,
        "deployment_too_large",
        "modules",
      ],
      ["entry-less", upload("main.js", [["index.js", JS, fnSource("x")]]), 400, "deployment_invalid", "metadata.main_module"],
      ["no metadata", (() => { const f = new FormData(); f.set("index.js", new File([fnSource("x")], "index.js", { type: JS })); return f; })(), 400, "deployment_invalid", "metadata"],
      ["syntax error", upload("index.js", [["index.js", JS, "export default { fetch( {"]]), 422, "deployment_rejected", undefined],
      ["no fetch handler", upload("index.js", [["index.js", JS, "export default {}; export const x = 1;"]]), 422, "deployment_rejected", undefined],
      ["throws at startup", upload("index.js", [["index.js", JS, "throw new Error('boom at startup'); export default {}"]]), 422, "deployment_rejected", undefined],
      ["a bad import", upload("index.js", [["index.js", JS, "import x from './missing.js'; export default { fetch() { return new Response(x) } }"]]), 422, "deployment_rejected", undefined],
    ];
    for (const [what, form, status, code, field] of cases) {
      const r = await a.deploy("fn-broken", form);
      assertProblem(assert, r, status, code);
      if (field) assert.equal(r.json.field, field, what);
      const call = await getJson(`${p.url}/t/fn-broken/`);
      assert.equal(call.json?.tag, "good", `after ${what}: ${call.text}`);
    }
    const syntax = await a.deploy("fn-broken", upload("index.js", [["index.js", JS, "export default { fetch( {"]]));
    assert.match(syntax.json.detail, /SyntaxError/);
    const state = await a.deployment("fn-broken");
    assert.equal(state.json.live.version, 1);
    assert.equal(state.json.live.etag, live.json.etag);
    assert.deepEqual(state.json.history.map((v) => v.version), [1], "refused uploads leave no version");
    const s = await cloudflareScript(p, "tenant-fn-broken");
    assert.equal(s.json.result.script.etag, live.json.etag);
  });

  test("secrets: set, listed by name only, visible only where exposed, kept across a redeploy, deleted", async () => {
    assert.equal((await a.put("fn-secrets", { resourceType: "function", plan: "free", exposeEnv: ["API_KEY"] })).status, 201);
    assertProblem(assert, await a.setSecret("fn-secrets", "API_KEY", "before-deploy"), 404, "deployment_not_found");
    assert.equal((await a.deploy("fn-secrets", fnUpload("s"))).status, 201);
    const set = await a.setSecret("fn-secrets", "API_KEY", "value-one-123");
    assert.equal(set.status, 200, set.text);
    assert.deepEqual(set.json, { name: "API_KEY" });
    assert.equal((await a.setSecret("fn-secrets", "HIDDEN_TOKEN", "value-two-456")).status, 200);
    const list = await a.secrets("fn-secrets");
    assert.equal(list.status, 200);
    assert.deepEqual(list.json, { secrets: [{ name: "API_KEY" }, { name: "HIDDEN_TOKEN" }] });
    assert.ok(!list.text.includes("value-one-123") && !list.text.includes("value-two-456"));
    let r = await getJson(`${p.url}/t/fn-secrets/`);
    assert.deepEqual(r.json.env, ["API_KEY"], "only the exposed name");
    assert.deepEqual(r.json.values, { API_KEY: "value-one-123" });
    // A redeploy keeps the secrets (keep_bindings).
    assert.equal((await a.deploy("fn-secrets", fnUpload("s2"))).status, 201);
    r = await getJson(`${p.url}/t/fn-secrets/`);
    assert.equal(r.json.tag, "s2");
    assert.deepEqual(r.json.env, ["API_KEY"]);
    const del = await a.delSecret("fn-secrets", "API_KEY");
    assert.equal(del.status, 200, del.text);
    assertProblem(assert, await a.delSecret("fn-secrets", "API_KEY"), 404, "deployment_not_found");
    assert.deepEqual((await a.secrets("fn-secrets")).json, { secrets: [{ name: "HIDDEN_TOKEN" }] });
    r = await getJson(`${p.url}/t/fn-secrets/`);
    assert.deepEqual(r.json.env, []);
    assertProblem(assert, await a.setSecret("fn-secrets", "lower", "x"), 400, "invalid_field");
    assertProblem(assert, await a.raw("PUT", "/tenants/fn-secrets/secrets/OK_NAME", { text: "x" }), 400, "invalid_field");
  });

  test("the policy wrapper's time budget answers 504 tenant_timeout; outbound fetches go through the egress Worker", async () => {
    assert.equal((await a.put("fn-slow", { resourceType: "function", plan: "free", maxDurationMs: 300 })).status, 201);
    const slow = `export default { async fetch(req) {
      if (new URL(req.url).pathname === "/fetch") {
        const r = await fetch("https://example.com/");
        return Response.json({ status: r.status, egress: r.headers.get("x-claw-egress"), code: (await r.json()).code });
      }
      await new Promise((r) => setTimeout(r, 5000)); return new Response("late"); } }`;
    assert.equal((await a.deploy("fn-slow", upload("index.js", [["index.js", JS, slow]]))).status, 201);
    assertProblem(assert, await getJson(`${p.url}/t/fn-slow/`), 504, "tenant_timeout");
    const out = await getJson(`${p.url}/t/fn-slow/fetch`);
    assert.equal(out.status, 200, out.text);
    assert.deepEqual(out.json, { status: 403, egress: "denied", code: "egress_host_not_allowed" });
  });

  test("deployments are refused for proxy tenants and tenants running a named script; no token is 401", async () => {
    assertProblem(assert, await a.deploy("demo-fn", fnUpload("x")), 409, "deployment_not_supported");
    assertProblem(assert, await a.deploy("no-such-tenant", fnUpload("x")), 404, "tenant_not_found");
    // Refused before its route reads the body: the body is read and dropped first (up to
    // 1 MiB), so the caller gets the problem whether the upload has a content-length (as the
    // CLI and curl send it) or streams in chunks, which used to see the connection closed.
    const form = new Response(fnUpload("x"));
    const bytes = new Uint8Array(await form.arrayBuffer());
    const anon = await fetch(`${p.url}/__platform/tenants/fn-one/deployment`, {
      method: "PUT",
      headers: { "content-type": form.headers.get("content-type") },
      body: bytes,
    });
    assertProblem(assert, { status: anon.status, headers: anon.headers, json: await anon.json() }, 401, "unauthorized");
    const padding = new Uint8Array(64 * 1024);
    for (let round = 0; round < 5; round++) {
      let sent = 0;
      const chunked = new ReadableStream({
        pull(controller) {
          // About 512 KB in 64 KB chunks, then the form itself.
          if (sent < 8) controller.enqueue(padding);
          else if (sent === 8) controller.enqueue(bytes);
          else controller.close();
          sent++;
        },
      });
      const refused = await fetch(`${p.url}/__platform/tenants/fn-one/deployment`, {
        method: "PUT",
        headers: { "content-type": form.headers.get("content-type"), authorization: "Bearer wrong" },
        body: chunked,
        duplex: "half",
      });
      assertProblem(assert, { status: refused.status, headers: refused.headers, json: await refused.json() }, 401, "unauthorized");
    }
    // The demo tenants (sample Workers bound by name) still answer.
    const demo = await getJson(`${p.url}/t/demo-fn/hello?name=x`);
    assert.deepEqual(demo.json, { hello: "x" });
  });

  test("deleting the tenant deletes its script", async () => {
    assert.equal((await a.put("fn-gone", { resourceType: "function", plan: "free" })).status, 201);
    assert.equal((await a.deploy("fn-gone", fnUpload("g"))).status, 201);
    assert.equal((await cloudflareScript(p, "tenant-fn-gone")).status, 200);
    assert.equal((await a.del("fn-gone")).status, 200);
    const gone = await cloudflareScript(p, "tenant-fn-gone");
    assert.equal(gone.status, 404);
    assert.equal(gone.json.errors[0].code, 10007);
    assertProblem(assert, await getJson(`${p.url}/t/fn-gone/`), 404, "tenant_not_found");
    // A new tenant of the same slug starts without history.
    assert.equal((await a.put("fn-gone", { resourceType: "function", plan: "free" })).status, 201);
    assert.deepEqual((await a.deployment("fn-gone")).json, { live: null, history: [] });
  });
});

describe("deployed scripts survive a restart of the local platform", () => {
  test("the same state directory serves the deployed version after a restart", async () => {
    const persistDir = tempStateDir();
    let p = await startPlatform({ persistDir });
    try {
      const a = api(p.url);
      assert.equal((await a.put("fn-kept", { resourceType: "function", plan: "free" })).status, 201);
      assert.equal((await a.deploy("fn-kept", fnUpload("kept"))).status, 201);
      assert.equal((await a.setSecret("fn-kept", "K", "v")).status, 200);
    } finally {
      await p.dispose();
    }
    p = await startPlatform({ persistDir, seed: false });
    try {
      const r = await getJson(`${p.url}/t/fn-kept/`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.tag, "kept");
      assert.deepEqual((await api(p.url).secrets("fn-kept")).json, { secrets: [{ name: "K" }] });
      assert.equal((await api(p.url).deployment("fn-kept")).json.live.version, 1);
    } finally {
      await p.dispose();
    }
  });
});

describe("a deployed paid function", () => {
  let p;
  before(async () => {
    p = await startPlatform({ vars: { ALLOW_LOCAL_X402_VERIFICATION: "true", PLATFORM_PAYOUT_TOKEN: "deploy-payout" } });
  });
  after(() => p?.dispose());

  test("is paid with the official x402 client (@x402/fetch + @x402/evm) and answers", async () => {
    const a = api(p.url);
    const { workerName, ...config } = pricedTenant({ plan: "pro" });
    assert.equal(workerName, "demo-fn");
    assert.equal((await a.put("fn-paid", config)).status, 201);
    assert.equal((await a.deploy("fn-paid", fnUpload("paid"))).status, 201);
    const unpaid = await fetch(`${p.url}/t/fn-paid/q`);
    assert.equal(unpaid.status, 402);
    const client = new x402Client();
    registerExactEvmScheme(client, { signer: payer });
    const res = await wrapFetchWithPayment(fetch, client)(`${p.url}/t/fn-paid/q`);
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal((await res.json()).tag, "paid");
    assert.equal(res.headers.get("x-claw-charged"), "true");
    assert.equal(decodePaymentResponseHeader(res.headers.get("PAYMENT-RESPONSE")).success, true);
    const earnings = await getJson(`${p.url}/__platform/ledger/fn-paid/earnings`, { headers: { authorization: "Bearer deploy-payout" } });
    assert.equal(earnings.json.settledCount, 1);
  });
});

describe("a creator's key deploys its own paid function", () => {
  let p;
  before(async () => {
    p = await startPlatform({ vars: { ALLOW_LOCAL_X402_VERIFICATION: "true" } });
  });
  after(() => p?.dispose());

  test("it answers and is paid; another creator's key can neither read nor change it; revoked, refused at once", async () => {
    const op = api(p.url);
    const issue = async (tenants) => {
      const r = await op.raw("POST", "/keys", { tenants, label: "deploy e2e", expiresAt: null });
      assert.equal(r.status, 201, r.text);
      return r.json.key;
    };
    const a = api(p.url, await issue(["cr-a-fn"]));
    const b = api(p.url, await issue(["cr-b-fn"]));
    // The creator creates its tenant (a new tenant starts on the free plan) and deploys.
    const { workerName, ...config } = pricedTenant({ plan: "free" });
    assert.equal(workerName, "demo-fn");
    const created = await a.put("cr-a-fn", config);
    assert.equal(created.status, 201, created.text);
    const deployed = await a.deploy("cr-a-fn", fnUpload("creator-a"));
    assert.equal(deployed.status, 201, deployed.text);
    assert.equal(deployed.json.version, 1);

    // Another creator's key: 403 on every deployment and secrets route of it, nothing changed.
    for (const [what, res] of [
      ["read the deployment", await b.deployment("cr-a-fn")],
      ["deploy", await b.deploy("cr-a-fn", fnUpload("creator-b"))],
      ["roll back", await b.rollback("cr-a-fn")],
      ["list secrets", await b.secrets("cr-a-fn")],
      ["set a secret", await b.setSecret("cr-a-fn", "API_KEY", "stolen")],
      ["delete a secret", await b.delSecret("cr-a-fn", "API_KEY")],
      ["reconfigure", await b.put("cr-a-fn", config)],
    ]) {
      assertProblem(assert, res, 403, "forbidden");
      assert.ok(!res.text.includes("creator-a"), what);
    }
    const live = await a.deployment("cr-a-fn");
    assert.equal(live.status, 200, live.text);
    assert.equal(live.json.live.version, 1);
    assert.equal(live.json.history.length, 1);

    // Paid with the official client: the creator's code answers, the creator's ledger has it.
    assert.equal((await fetch(`${p.url}/t/cr-a-fn/q`)).status, 402);
    const client = new x402Client();
    registerExactEvmScheme(client, { signer: payer });
    const res = await wrapFetchWithPayment(fetch, client)(`${p.url}/t/cr-a-fn/q`);
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal((await res.json()).tag, "creator-a");
    const earnings = await a.raw("GET", "/ledger/cr-a-fn/earnings");
    assert.equal(earnings.status, 200, earnings.text);
    assert.equal(earnings.json.settledCount, 1);
    assertProblem(assert, await b.raw("GET", "/ledger/cr-a-fn/earnings"), 403, "forbidden");

    // Revoked: the very next request is refused, and the tenant keeps serving.
    const keys = await op.raw("GET", "/keys");
    const id = keys.json.keys.find((k) => k.tenants.includes("cr-a-fn")).id;
    assert.equal((await op.raw("DELETE", `/keys/${id}`)).status, 200);
    assertProblem(assert, await a.deployment("cr-a-fn"), 401, "unauthorized");
    assertProblem(assert, await a.deploy("cr-a-fn", fnUpload("after-revoke")), 401, "unauthorized");
    assert.equal((await op.deployment("cr-a-fn")).json.live.version, 1);
  });
});

describe("deployments without the Cloudflare API configured", () => {
  let p;
  before(async () => {
    p = await startPlatform({ vars: { CF_API_TOKEN: "" } });
  });
  after(() => p?.dispose());

  test("are closed: 503 deployment_unavailable, nothing stored", async () => {
    const a = api(p.url);
    assert.equal((await a.put("fn-closed", { resourceType: "function", plan: "free" })).status, 201);
    assertProblem(assert, await a.deploy("fn-closed", fnUpload("x")), 503, "deployment_unavailable");
    assert.deepEqual((await a.deployment("fn-closed")).json, { live: null, history: [] });
    // A tenant that never deployed can still be deleted.
    assert.equal((await a.del("fn-closed")).status, 200);
  });
});

describe("dataset tenants from a file", () => {
  let p;
  let a;
  const N = 250;
  const cities = ["Paris", "Lyon", "Nice", "Lille"];
  let csv = "id,city,pop,capital,note\n";
  for (let i = 1; i <= N; i++) {
    csv += `${i},${cities[i % 4]},${i * 1000 + 0.5},${i % 10 === 0},${i % 7 === 0 ? "" : `"n ${i}, ok"`}\n`;
  }
  before(async () => {
    p = await startPlatform();
    a = api(p.url);
    assert.equal((await a.put("ds-cities", { resourceType: "dataset", plan: "business" })).status, 201);
    const d = await a.deploy("ds-cities", upload("cities.csv", [["cities.csv", "text/csv", csv]]));
    assert.equal(d.status, 201, d.text);
    assert.deepEqual(d.json.modules, [{ name: "cities.csv", type: "text/csv", size: Buffer.byteLength(csv) }]);
  });
  after(() => p?.dispose());
  const q = (query) => getJson(`${p.url}/t/ds-cities/rows?${query}`);

  test("the schema names the inferred column types", async () => {
    const s = await getJson(`${p.url}/t/ds-cities/schema`);
    assert.equal(s.status, 200, s.text);
    assert.deepEqual(s.json, {
      columns: [
        { name: "id", type: "integer" },
        { name: "city", type: "string" },
        { name: "pop", type: "number" },
        { name: "capital", type: "boolean" },
        { name: "note", type: "string" },
      ],
      rowCount: N,
    });
  });

  test("filters (equality, ranges, in), field selection and sort", async () => {
    const eq = await q("city=Nice&fields=id,city&limit=3");
    assert.equal(eq.status, 200, eq.text);
    assert.deepEqual(eq.json.rows, [{ id: 2, city: "Nice" }, { id: 6, city: "Nice" }, { id: 10, city: "Nice" }]);
    assert.equal(eq.json.total, 63);
    assert.equal(eq.json.count, 3);
    const range = await q("id.gte=10&id.lt=13&fields=id");
    assert.deepEqual(range.json.rows, [{ id: 10 }, { id: 11 }, { id: 12 }]);
    const inn = await q("id.in=3,30,300&fields=id,capital");
    assert.deepEqual(inn.json.rows, [{ id: 3, capital: false }, { id: 30, capital: true }]);
    const sorted = await q("capital=true&sort=-pop&fields=id,pop&limit=2");
    assert.deepEqual(sorted.json.rows, [{ id: 250, pop: 250000.5 }, { id: 240, pop: 240000.5 }]);
    const nulls = await q("id.lte=7&sort=note&fields=id,note");
    assert.equal(nulls.json.rows.at(-1).note, null, "nulls sort last");
    assert.equal(nulls.json.rows[0].note, "n 1, ok");
  });

  test("cursor pagination walks every match once, in order, with a capped page size", async () => {
    const seen = [];
    let cursor = null;
    let pages = 0;
    do {
      const r = await q(`city=Paris&sort=-id&fields=id&limit=20${cursor ? `&cursor=${cursor}` : ""}`);
      assert.equal(r.status, 200, r.text);
      assert.ok(r.json.rows.length <= 20);
      seen.push(...r.json.rows.map((x) => x.id));
      cursor = r.json.nextCursor;
      pages++;
    } while (cursor && pages < 50);
    const want = [];
    for (let i = N; i >= 1; i--) if (i % 4 === 0) want.push(i);
    assert.deepEqual(seen, want);
    assertProblem(assert, await q("limit=1001"), 400, "invalid_query");
    const first = await q("city=Paris&limit=5");
    assertProblem(assert, await q(`city=Lyon&limit=5&cursor=${first.json.nextCursor}`), 400, "invalid_query");
  });

  test("CSV output", async () => {
    const res = await fetch(`${p.url}/t/ds-cities/rows?id.lte=2&fields=id,note&format=csv`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type"), /^text\/csv/);
    assert.equal(res.headers.get("x-total-count"), "2");
    assert.equal(await res.text(), 'id,note\r\n1,"n 1, ok"\r\n2,"n 2, ok"\r\n');
  });

  test("bad queries are 400 problems naming the parameter", async () => {
    for (const [query, field] of [
      ["nope=1", "nope"],
      ["id=abc", "id"],
      ["id.between=1", "id.between"],
      ["capital.gt=true", "capital.gt"],
      ["sort=nope", "sort"],
      ["fields=id,nope", "fields"],
      ["format=xml", "format"],
      ["limit=0", "limit"],
    ]) {
      const r = await q(query);
      assertProblem(assert, r, 400, "invalid_query");
      assert.equal(r.json.field, field, query);
    }
    const post = await getJson(`${p.url}/t/ds-cities/rows`, { method: "POST", body: "x" });
    assertProblem(assert, post, 405, "method_not_allowed");
  });

  test("a dataset goes through the same limiter as every tenant", async () => {
    assert.equal((await a.put("ds-limited", { resourceType: "dataset", plan: "free", rateLimit: { perCaller: "1/1h" } })).status, 201);
    assert.equal((await a.deploy("ds-limited", upload("d.csv", [["d.csv", "text/csv", "a\n1\n"]]))).status, 201);
    const first = await getJson(`${p.url}/t/ds-limited/rows`);
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.json.rows, [{ a: 1 }]);
    assertProblem(assert, await getJson(`${p.url}/t/ds-limited/rows`), 429, "rate_limited");
  });

  test("a JSON dataset, and bad data files refused with the live version kept", async () => {
    assert.equal((await a.put("ds-json", { resourceType: "dataset", plan: "pro" })).status, 201);
    const rows = JSON.stringify([{ sku: "a1", price: 3, stock: true }, { sku: "b2", price: 1.5 }]);
    assert.equal((await a.deploy("ds-json", upload("items.json", [["items.json", "application/json", rows]]))).status, 201);
    const r = await getJson(`${p.url}/t/ds-json/rows?sort=price`);
    assert.deepEqual(r.json.rows, [{ sku: "b2", price: 1.5, stock: null }, { sku: "a1", price: 3, stock: true }]);
    const badLine = await a.deploy("ds-json", upload("d.csv", [["d.csv", "text/csv", "a,b\n1,2\n3\n"]]));
    assertProblem(assert, badLine, 400, "deployment_invalid");
    assert.match(badLine.json.detail, /line 3/);
    assertProblem(assert, await a.deploy("ds-json", upload("d.csv", [["d.csv", JS, "x"]])), 400, "deployment_invalid");
    assertProblem(
      assert,
      await a.deploy("ds-json", upload("d.csv", [["d.csv", "text/csv", "a\n1\n"], ["e.csv", "text/csv", "a\n1\n"]])),
      400,
      "deployment_invalid",
    );
    assert.deepEqual((await getJson(`${p.url}/t/ds-json/rows?sort=price`)).json.rows, r.json.rows);
  });
});
