// End to end: creator keys on a real local workerd. An operator issues keys scoped to
// tenants; a creator reads, creates and configures its own tenants and reads their money and
// usage; another creator's key, operator-only routes, revoked and expired keys are refused.

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { startPlatform, admin, assertProblem, getJson, DEV_ADMIN_TOKEN } from "./harness.mjs";
import { DEV_ANALYTICS_TOKEN } from "../../scripts/local/runtime.mjs";
import { pricedTenant, readChallenge, payHeaders } from "./x402_client.mjs";

const PAYOUT_TOKEN = "keys-test-payout-token";
const OPERATOR_TOKEN = "keys-test-operator-token";
const DEST = "0x3333333333333333333333333333333333333333";

let p;
let op;
/// Every response body a list route gave in this file (keys must never appear in one).
const listBodies = [];

before(async () => {
  p = await startPlatform({
    vars: { ALLOW_LOCAL_X402_VERIFICATION: "true", PLATFORM_PAYOUT_TOKEN: PAYOUT_TOKEN, PLATFORM_OPERATOR_TOKEN: OPERATOR_TOKEN },
  });
  op = admin(p.url);
  // The operator registers one priced tenant for creator A (it runs the demo Worker).
  assert.equal((await op.put("alpha-paid", pricedTenant())).status, 201);
  assert.equal((await op.put("beta-own", { resourceType: "function", workerName: "demo-fn", plan: "free" })).status, 201);
});
after(async () => {
  await p?.dispose();
});

/// A platform call with `token` as the bearer.
function as(token) {
  return (method, path, body) =>
    getJson(`${p.url}/__platform${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
}

async function issue(body) {
  const r = await op.raw("POST", "/keys", body);
  assert.equal(r.status, 201, r.text);
  return r.json;
}

const creatorConfig = (slug, extra = {}) => ({ resourceType: "function", workerName: `tenant-${slug}`, plan: "free", ...extra });

describe("creator keys", () => {
  let a; // scoped to alpha-paid and alpha-new
  let b; // scoped to beta-own

  before(async () => {
    a = await issue({ tenants: ["alpha-paid", "alpha-new"], label: "alpha laptop", expiresAt: null });
    b = await issue({ tenants: ["beta-own"], label: "beta ci" });
  });

  test("the operator issues a key: shown once, listed by prefix and scope only", async () => {
    assert.match(a.id, /^ck_[0-9a-f]{16}$/);
    assert.match(a.key, /^claw_ck_[0-9a-f]{16}_[0-9a-f]{64}$/);
    assert.equal(a.key.slice(8, 24), a.id.slice(3), "the key carries its id");
    assert.equal(a.prefix, `claw_ck_${a.id.slice(3, 11)}`);
    assert.deepEqual(a.tenants, ["alpha-new", "alpha-paid"]);
    assert.equal(a.label, "alpha laptop");
    assert.equal(a.expiresAt, null);
    assert.ok(Math.abs(a.createdAt - Date.now() / 1000) < 600, "createdAt is unix seconds");

    const list = await op.raw("GET", "/keys");
    listBodies.push(list.text);
    assert.equal(list.status, 200);
    const row = list.json.keys.find((k) => k.id === a.id);
    assert.deepEqual(row, {
      id: a.id,
      prefix: a.prefix,
      tenants: ["alpha-new", "alpha-paid"],
      label: "alpha laptop",
      createdAt: a.createdAt,
      expiresAt: null,
      revokedAt: null,
    });
    for (const k of [a, b]) {
      assert.ok(!list.text.includes(k.key), "a list never shows a key");
      assert.ok(!list.text.includes(k.key.slice(25)), "nor its secret");
    }
    // A bad request names its field; only the admin token issues keys.
    assertProblem(assert, await op.raw("POST", "/keys", { tenants: [] }), 400, "invalid_field");
    assertProblem(assert, await op.raw("POST", "/keys", { tenants: ["Bad--Slug"] }), 400, "invalid_field");
    assertProblem(assert, await op.raw("POST", "/keys", { tenants: ["x-co"], expiresAt: 5 }), 400, "invalid_field");
    assertProblem(assert, await as(DEV_ANALYTICS_TOKEN)("POST", "/keys", { tenants: ["x-co"] }), 401, "unauthorized");
    assertProblem(assert, await as(null)("GET", "/keys"), 401, "unauthorized");
  });

  test("whoami answers for operator tokens and creator keys, 401 for anything else", async () => {
    for (const token of [DEV_ADMIN_TOKEN, DEV_ANALYTICS_TOKEN, PAYOUT_TOKEN, OPERATOR_TOKEN]) {
      const r = await as(token)("GET", "/whoami");
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { kind: "operator", tenants: null });
    }
    const me = await as(a.key)("GET", "/whoami");
    assert.equal(me.status, 200, me.text);
    assert.deepEqual(me.json, { kind: "creator", id: a.id, prefix: a.prefix, tenants: ["alpha-new", "alpha-paid"], expiresAt: null });
    assert.ok(!me.text.includes(a.key));
    const forged = a.key.slice(0, -1) + (a.key.endsWith("0") ? "1" : "0");
    for (const token of [null, "nope", forged, `claw_ck_${"0".repeat(16)}_${"0".repeat(64)}`]) {
      assertProblem(assert, await as(token)("GET", "/whoami"), 401, "unauthorized");
    }
  });

  test("a creator creates, reads, configures and deletes its own tenants", async () => {
    const call = as(a.key);
    // A slug in scope that does not exist yet: created.
    const created = await call("PUT", "/tenants/alpha-new", creatorConfig("alpha-new"));
    assert.equal(created.status, 201, created.text);
    assert.equal(created.json.config.slug, "alpha-new");
    const configured = await call("PUT", "/tenants/alpha-new", creatorConfig("alpha-new", {
      plan: "pro",
      rateLimit: { perCaller: "5/10s", burst: 2 },
      allowedHosts: ["api.example.com"],
    }));
    assert.equal(configured.status, 200, configured.text);
    assert.equal(configured.json.version, 2);
    const read = await call("GET", "/tenants/alpha-new");
    assert.equal(read.status, 200);
    assert.deepEqual(read.json.config.allowedHosts, ["api.example.com"]);
    assert.deepEqual(read.json.config.rateLimit.perCaller, { limit: 5, windowS: 10 });
    // Its config names only its own script, never another tenant's Worker.
    const hijack = await call("PUT", "/tenants/alpha-new", creatorConfig("alpha-new", { workerName: "demo-fn" }));
    assertProblem(assert, hijack, 403, "forbidden");
    assert.equal(hijack.json.field, "workerName");
    assert.equal((await call("GET", "/tenants/alpha-new")).json.version, 2, "the refused config changed nothing");

    // The list is the key's scope, nothing else.
    const list = await call("GET", "/tenants");
    listBodies.push(list.text);
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.tenants.map((t) => t.config.slug), ["alpha-new", "alpha-paid"]);
    const all = await op.list();
    assert.ok(all.json.tenants.some((t) => t.config.slug === "demo-fn"), "the operator sees every tenant");

    assert.equal((await call("DELETE", "/tenants/alpha-new")).status, 200);
    assertProblem(assert, await call("GET", "/tenants/alpha-new"), 404, "tenant_not_found");
    const after = await call("GET", "/tenants");
    assert.deepEqual(after.json.tenants.map((t) => t.config.slug), ["alpha-paid"]);
  });

  test("a creator reads its earnings, ledger entries, payouts, usage and events", async () => {
    // A paid call to alpha-paid (verified and settled locally), then a payout by the payout job.
    const url = `${p.url}/t/alpha-paid/echo`;
    const c = await readChallenge(await fetch(url));
    assert.equal(c.status, 402);
    const paid = await fetch(url, { headers: await payHeaders(c, 2) });
    assert.equal(paid.status, 200, await paid.text());
    const po = await getJson(`${p.url}/__platform/ledger/alpha-paid/payouts`, {
      method: "POST",
      headers: { authorization: `Bearer ${PAYOUT_TOKEN}`, "content-type": "application/json", "idempotency-key": "keys-test-1" },
      body: JSON.stringify({ amount: "100", destination: DEST }),
    });
    assert.equal(po.status, 201, po.text);

    const call = as(a.key);
    const entries = await call("GET", "/ledger/alpha-paid/entries?after=0");
    assert.equal(entries.status, 200, entries.text);
    const kinds = entries.json.entries.map((e) => e.kind);
    assert.ok(kinds.includes("payment_settled") && kinds.includes("payout_created"), kinds.join());

    const earnings = await call("GET", "/ledger/alpha-paid/earnings");
    assert.equal(earnings.status, 200, earnings.text);
    assert.equal(earnings.json.payoutsPending, "100");
    const same = await call("GET", "/earnings/alpha-paid");
    assert.equal(same.status, 200);
    assert.deepEqual(same.json, earnings.json);

    const payouts = await call("GET", "/ledger/alpha-paid/payouts?limit=10");
    listBodies.push(payouts.text);
    assert.equal(payouts.status, 200, payouts.text);
    assert.deepEqual(payouts.json.payouts.map((x) => x.id), [po.json.id]);
    assert.equal(payouts.json.hasMore, false);
    const one = await call("GET", `/ledger/alpha-paid/payouts/${po.json.id}`);
    assert.equal(one.status, 200);
    assert.equal(one.json.amount, "100");

    const usage = await call("GET", "/usage/alpha-paid?window=1h");
    assert.equal(usage.status, 200, usage.text);

    // Events arrive after the responses: wait for the paid call's.
    let events = [];
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
      const r = await call("GET", "/events?tenant=alpha-paid&limit=100");
      listBodies.push(r.text);
      assert.equal(r.status, 200, r.text);
      events = r.json.events;
      if (events.some((e) => e.stage === "settled")) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(events.some((e) => e.stage === "settled"), "the creator reads its tenant's events");
    assert.ok(events.every((e) => e.tenant === undefined || e.tenant === "alpha-paid"));
    // The feed's tenant filter is mandatory with a key.
    assertProblem(assert, await call("GET", "/events"), 403, "forbidden");
  });

  test("a second creator's key gets 403 on the first creator's tenant, on every route kind", async () => {
    const call = as(b.key);
    const routes = [
      ["GET", "/tenants/alpha-paid"],
      ["PUT", "/tenants/alpha-paid", creatorConfig("alpha-paid")],
      ["PUT", "/tenants/alpha-new", creatorConfig("alpha-new")],
      ["DELETE", "/tenants/alpha-paid"],
      ["GET", "/ledger/alpha-paid/entries"],
      ["GET", "/ledger/alpha-paid/earnings"],
      ["GET", "/ledger/alpha-paid/payouts"],
      ["GET", "/ledger/alpha-paid/payouts/po_1"],
      ["GET", "/earnings/alpha-paid"],
      ["GET", "/usage/alpha-paid"],
      ["GET", "/events?tenant=alpha-paid"],
      ["GET", "/events?tenant=beta-own&tenant=alpha-paid"],
    ];
    for (const [method, path, body] of routes) {
      assertProblem(assert, await call(method, path, body), 403, "forbidden");
    }
    // Nothing changed, and b still reaches its own tenant.
    const still = await op.get("alpha-paid");
    assert.equal(still.json.version, 1);
    assertProblem(assert, await op.get("alpha-new"), 404, "tenant_not_found");
    assert.equal((await call("GET", "/tenants/beta-own")).status, 200);
    const bList = await call("GET", "/tenants");
    listBodies.push(bList.text);
    assert.deepEqual(bList.json.tenants.map((t) => t.config.slug), ["beta-own"]);
  });

  test("operator-only routes give a creator 403, for its own tenant too", async () => {
    const call = as(a.key);
    const routes = [
      ["POST", "/tenants/alpha-paid/suspend"],
      ["POST", "/tenants/alpha-paid/resume"],
      ["POST", "/ledger/alpha-paid/payouts", { amount: "1", destination: DEST }],
      ["POST", "/ledger/alpha-paid/payouts/po_1/post", { txRef: "0x1" }],
      ["POST", "/ledger/alpha-paid/payouts/po_1/void", { reason: "x" }],
      ["POST", "/ledger/alpha-paid/reconcile"],
      ["GET", "/earnings"],
      ["POST", "/usage/alpha-paid/rollup"],
      ["GET", "/usage/alpha-paid/retention"],
      ["PUT", "/usage/alpha-paid/retention", { days: 30 }],
      ["POST", "/keys", { tenants: ["alpha-paid"] }],
      ["GET", "/keys"],
      ["DELETE", `/keys/${b.id}`],
    ];
    for (const [method, path, body] of routes) {
      assertProblem(assert, await call(method, path, body), 403, "forbidden");
    }
    assert.equal((await op.get("alpha-paid")).json.status, "active");
    // b's key was not revoked by a's attempt.
    assert.equal((await as(b.key)("GET", "/whoami")).status, 200);
  });

  test("a revoked key is refused at once", async () => {
    const k = await issue({ tenants: ["alpha-paid"], label: "short-lived" });
    const call = as(k.key);
    assert.equal((await call("GET", "/tenants/alpha-paid")).status, 200);
    const revoked = await op.raw("DELETE", `/keys/${k.id}`);
    assert.equal(revoked.status, 200, revoked.text);
    assert.equal(revoked.json.id, k.id);
    assert.equal(typeof revoked.json.revokedAt, "number");
    // The very next request, on every kind of route, is refused.
    assertProblem(assert, await call("GET", "/tenants/alpha-paid"), 401, "unauthorized");
    assertProblem(assert, await call("GET", "/whoami"), 401, "unauthorized");
    assertProblem(assert, await call("GET", "/ledger/alpha-paid/entries"), 401, "unauthorized");
    assertProblem(assert, await call("POST", "/tenants/alpha-paid/suspend"), 401, "unauthorized");
    const list = await op.raw("GET", "/keys");
    listBodies.push(list.text);
    assert.equal(list.json.keys.find((x) => x.id === k.id).revokedAt, revoked.json.revokedAt);
    // Revoking again keeps the first time; unknown ids are 404.
    assert.equal((await op.raw("DELETE", `/keys/${k.id}`)).json.revokedAt, revoked.json.revokedAt);
    assertProblem(assert, await op.raw("DELETE", "/keys/ck_0000000000000000"), 404, "key_not_found");
    assertProblem(assert, await op.raw("DELETE", "/keys/nope"), 404, "key_not_found");
  });

  test("an expired key is refused", async () => {
    const expiresAt = Math.floor(Date.now() / 1000) + 2;
    const k = await issue({ tenants: ["alpha-paid"], expiresAt });
    assert.equal(k.expiresAt, expiresAt);
    // Wait until the platform's clock is past the expiry.
    while (Date.now() / 1000 < expiresAt + 1) await new Promise((r) => setTimeout(r, 200));
    assertProblem(assert, await as(k.key)("GET", "/whoami"), 401, "unauthorized");
    assertProblem(assert, await as(k.key)("GET", "/tenants/alpha-paid"), 401, "unauthorized");
    // A key with a later expiry still works, and says when it expires.
    const later = Math.floor(Date.now() / 1000) + 3600;
    const live = await issue({ tenants: ["alpha-paid"], expiresAt: later });
    const me = await as(live.key)("GET", "/whoami");
    assert.equal(me.status, 200, me.text);
    assert.equal(me.json.expiresAt, later);
  });

  test("no list response ever showed a key", async () => {
    assert.ok(listBodies.length >= 6);
    for (const body of listBodies) {
      for (const k of [a, b]) assert.ok(!body.includes(k.key));
      assert.ok(!/claw_ck_[0-9a-f]{16}_/.test(body), "no full key in a list");
    }
  });
});
