// End to end: usage events and trending (issue 5) on a real local workerd, over real HTTP.
// One event per call with the right stage and flags, salted caller hashes (no raw IP, key or
// query in any event), the operator feed (token, filters, cursor pagination), idempotent
// event ids, and the ranking: a flood of refused and failed calls does not move a tenant
// while fewer countable calls of another do.
//
// Rollups are triggered with POST /__platform/usage/{slug}/rollup (the alarm would send
// them about 30 s after the last counted call).

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { privateKeyToAccount } from "viem/accounts";
import { admin, assertProblem, getJson, tempStateDir } from "./harness.mjs";
import { startFacilitator } from "../fakes/x402_facilitator.mjs";
import { pricedTenant, readChallenge, payHeaders, receipt, payer, other } from "./x402_client.mjs";
import {
  startLocal,
  seedDemoTenants,
  USAGE_EVENTS_PROBE,
  DEV_ADMIN_TOKEN,
  DEV_ANALYTICS_TOKEN,
  DEV_USAGE_SALT,
} from "../../scripts/local/runtime.mjs";

const fn = (extra) => ({ resourceType: "function", workerName: "demo-fn", plan: "free", ...extra });
const analytics = { authorization: `Bearer ${DEV_ANALYTICS_TOKEN}` };

// The fixture that reaches UsageEvents objects directly: the platform has no ingest route.
const probeWorker = USAGE_EVENTS_PROBE;

let p;
let f;
const persistDir = tempStateDir();
const platform = () => startLocal({ persistDir, extraWorkers: [probeWorker], directSockets: true, vars: { FACILITATOR_URL: f.url } });

before(async () => {
  // Paid calls are verified and settled by the facilitator stand-in on loopback.
  f = await startFacilitator();
  p = await platform();
  await seedDemoTenants(p.url);
});
after(async () => {
  await p?.dispose();
  await f?.close();
});

async function put(slug, config) {
  const r = await admin(p.url).put(slug, config);
  assert.ok(r.status === 200 || r.status === 201, `${slug}: ${r.status} ${r.text}`);
}

const callAs = (ip, url, headers = {}) => getJson(url, { headers: { "cf-connecting-ip": ip, ...headers } });

/// One page of the feed.
const page = (query, headers = analytics) => getJson(`${p.url}/__platform/events?${query}`, { headers });

/// Every event of a tenant, walking the cursor.
async function allEvents(tenant, extra = "") {
  const out = [];
  let since = 0;
  for (;;) {
    const r = await page(`tenant=${tenant}&since=${since}&limit=500${extra}`);
    assert.equal(r.status, 200, r.text);
    out.push(...r.json.events);
    since = r.json.nextCursor;
    if (!r.json.hasMore) return out;
  }
}

/// Waits until the tenant's feed holds `n` events (delivery runs after the responses), and
/// returns them in the order the calls were made. The feed is in ingest order, which the
/// usage queue does not promise to be call order (a settled call's event comes through its
/// ledger), so the calls' start times order them; sequential calls start in distinct ms.
async function eventsOf(tenant, n) {
  const deadline = Date.now() + 20_000;
  let events = [];
  while (Date.now() < deadline) {
    events = await allEvents(tenant);
    if (events.length >= n) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // Nothing more may arrive: one event per call, not more.
  await new Promise((r) => setTimeout(r, 300));
  events = await allEvents(tenant);
  assert.equal(events.length, n, `${tenant}: ${events.length} events for ${n} calls`);
  return events.sort((a, b) => a.timeMs - b.timeMs || a.seq - b.seq);
}

const callerHash = (rawKey) =>
  crypto.createHash("sha256").update(Buffer.concat([Buffer.from(DEV_USAGE_SALT), Buffer.from([0]), Buffer.from(rawKey)])).digest("hex");
const payerHash = (address) => callerHash(`payer:${address.toLowerCase()}`);

/// The 402 challenge of a priced tenant's URL (itself a recorded call).
async function challengeOf(url, ip = "203.0.113.90") {
  const c = await readChallenge(await fetch(url, { headers: { "cf-connecting-ip": ip } }));
  assert.equal(c.status, 402);
  return c;
}

/// A paid call with a payment signed for challenge `c` (by `account`, default the test payer).
async function paidCall(url, c, { version = 2, ip = "203.0.113.90", ...o } = {}) {
  const headers = await payHeaders(c, version, o);
  const res = await fetch(url, { headers: { "cf-connecting-ip": ip, ...headers } });
  const text = await res.text();
  return { status: res.status, res, text, headers };
}

const wallet = (i) => privateKeyToAccount(`0x${crypto.createHash("sha256").update(`usage-test-wallet-${i}`).digest("hex")}`);

const rollup = (slug, headers = analytics) => getJson(`${p.url}/__platform/usage/${slug}/rollup`, { method: "POST", headers });

async function top(window = "1h") {
  const r = await getJson(`${p.url}/__platform/trending?window=${window}&limit=100`);
  assert.equal(r.status, 200, r.text);
  return r.json.entries;
}

/// The ranking entry of `tenant` and its place; fails if the tenant is not ranked.
function ranked(entries, tenant) {
  const at = entries.findIndex((e) => e.tenant === tenant);
  assert.ok(at >= 0, `${tenant} is ranked: ${JSON.stringify(entries.map((e) => e.tenant))}`);
  return { at, ...entries[at] };
}

/// A free tenant with `calls` served calls (one caller each), rolled up into the ranking.
async function rankedTenant(slug, calls, ipPrefix) {
  await put(slug, fn());
  for (let i = 1; i <= calls; i++) assert.equal((await callAs(`${ipPrefix}.${i}`, `${p.url}/t/${slug}/hello`)).status, 200);
  await eventsOf(slug, calls);
  const r = await rollup(slug);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.sent, true);
}

describe("one event per call", () => {
  test("served, tenant errors, platform errors: stage, flags, status, route, latency", async () => {
    await put("ev-free", fn());
    const ip = "203.0.113.50";
    assert.equal((await callAs(ip, `${p.url}/t/ev-free/hello?token=SECRETQUERY`)).status, 200);
    assert.equal((await callAs(ip, `${p.url}/t/ev-free/status?code=503`)).status, 503);
    assert.equal((await callAs(ip, `${p.url}/t/ev-free/status?code=404`)).status, 404);
    assert.equal((await callAs(ip, `${p.url}/t/ev-free/throw`)).status, 502);
    const events = await eventsOf("ev-free", 4);
    const [served, e503, e404, thrown] = events;

    assert.equal(served.stage, "served");
    assert.equal(served.statusCode, 200);
    assert.equal(served.route, "/hello", "the route never carries the query");
    assert.equal(served.tenant, "ev-free");
    assert.equal(served.workerName, "demo-fn");
    assert.deepEqual([served.countable, served.billable, served.paymentRequired, served.paymentSuccess], [true, false, false, false]);
    assert.equal(served.subrequests, 0);
    assert.equal(typeof served.latencyMs, "number");
    assert.ok(Math.abs(served.timeMs - Date.now()) < 60_000);
    assert.equal(served.errorCode, undefined);
    assert.match(served.id, /^[0-9a-f-]{36}$/, "a random UUID per call");

    for (const [e, status] of [[e503, 503], [e404, 404]]) {
      assert.equal(e.stage, "error", "a tenant's own answer of 400 or more is not served");
      assert.equal(e.statusCode, status);
      assert.equal(e.errorCode, "tenant_status");
      assert.equal(e.countable, false);
    }
    assert.equal(thrown.stage, "error");
    assert.equal(thrown.statusCode, 502);
    assert.equal(thrown.errorCode, "tenant_worker_failed");
    assert.equal(new Set(events.map((e) => e.id)).size, 4, "ids are unique");
    assert.deepEqual(events.map((e) => e.seq), [1, 2, 3, 4]);
  });

  test("rate limited: a 429 is recorded, never countable", async () => {
    await put("ev-limited", fn({ rateLimit: { perCaller: "1/1h" } }));
    const ip = "203.0.113.51";
    assert.equal((await callAs(ip, `${p.url}/t/ev-limited/hello`)).status, 200);
    assert.equal((await callAs(ip, `${p.url}/t/ev-limited/hello`)).status, 429);
    assert.equal((await callAs(ip, `${p.url}/t/ev-limited/hello`)).status, 429);
    const [ok, r1, r2] = await eventsOf("ev-limited", 3);
    assert.equal(ok.stage, "served");
    for (const e of [r1, r2]) {
      assert.equal(e.stage, "rate_limited");
      assert.equal(e.statusCode, 429);
      assert.equal(e.errorCode, "rate_limited");
      assert.equal(e.countable, false);
      assert.equal(e.billable, false);
      assert.equal(e.callerHash, ok.callerHash, "the limiter's caller, hashed the same way");
    }
  });

  test("a suspended tenant's refusals are recorded too", async () => {
    await put("ev-susp", fn());
    await admin(p.url).suspend("ev-susp");
    assertProblem(assert, await callAs("203.0.113.52", `${p.url}/t/ev-susp/hello`), 403, "tenant_suspended");
    const [e] = await eventsOf("ev-susp", 1);
    assert.deepEqual([e.stage, e.statusCode, e.errorCode, e.countable], ["error", 403, "tenant_suspended", false]);
  });

  test("paid calls: challenged, settled, verify failed, replayed (kept answer), settlement failed, tenant error, voided replayed", async () => {
    await put("ev-paid", pricedTenant());
    const url = `${p.url}/t/ev-paid/hello`;
    const c = await challengeOf(url); // 1: challenged
    const ok = await paidCall(url, c); // 2: settled
    assert.equal(ok.status, 200, ok.text);
    const tx = receipt(ok.res).transaction;
    const forged = await paidCall(url, c, { account: other, from: payer.address }); // 3: verify failed
    assert.equal(forged.status, 402, forged.text);
    // 4: the same payment again: its nonce is spent, so the facilitator refuses it at verify
    // (as the real one does, from the chain's authorizationState); it is this tenant's
    // settled payment, so the caller gets its kept answer: served, never counted or billed.
    const replay = await fetch(url, { headers: ok.headers });
    assert.equal(replay.status, 200);
    assert.equal(replay.headers.get("x-claw-replay"), "true");
    f.setMode({ settle: "fail" });
    const unsettled = await paidCall(url, c); // 5: settlement failed
    f.setMode({ settle: "success" });
    assert.equal(unsettled.status, 402, unsettled.text);
    const notFound = await paidCall(`${p.url}/t/ev-paid/status?code=404`, c, { version: 1 }); // 6: tenant error
    assert.equal(notFound.status, 404);
    // 7: the voided payment again: it passes verify (never settled), the ledger refuses it.
    const voidedReplay = await fetch(`${p.url}/t/ev-paid/status?code=404`, { headers: notFound.headers });
    assert.equal(voidedReplay.status, 409);

    const [challenged, settled, failed, replayed, settleFailed, tenantError, voidedAgain] = await eventsOf("ev-paid", 7);
    assert.deepEqual(
      [challenged.stage, challenged.statusCode, challenged.paymentRequired, challenged.amountAtomic, challenged.countable, challenged.payerHash],
      ["challenged", 402, true, "1000", false, undefined],
    );
    assert.deepEqual(
      [settled.stage, settled.statusCode, settled.paymentSuccess, settled.countable, settled.billable, settled.selfDealing],
      ["settled", 200, true, true, true, false],
    );
    assert.equal(settled.settlementResult, tx);
    assert.equal(settled.amountAtomic, "1000");
    assert.equal(settled.payerHash, payerHash(payer.address), "SHA-256(salt || 0 || payer:<address>)");
    assert.equal(settled.callerHash, payerHash(payer.address), "a paid caller is its payer");
    assert.deepEqual([failed.stage, failed.countable, failed.payerHash], ["verify_failed", false, payerHash(payer.address)]);
    assert.deepEqual(
      [replayed.stage, replayed.statusCode, replayed.countable, replayed.billable],
      ["served", 200, false, false],
    );
    assert.deepEqual([voidedAgain.stage, voidedAgain.statusCode, voidedAgain.errorCode], ["verify_failed", 409, "payment_already_voided"]);
    assert.deepEqual(
      [settleFailed.stage, settleFailed.settlementResult, settleFailed.paymentSuccess, settleFailed.countable, settleFailed.billable],
      ["settlement_failed", "invalid_exact_evm_insufficient_balance", false, false, false],
    );
    assert.deepEqual([tenantError.stage, tenantError.statusCode, tenantError.errorCode, tenantError.countable], ["error", 404, "tenant_status", false]);
    const json = JSON.stringify(await allEvents("ev-paid"));
    assert.ok(!json.toLowerCase().includes(payer.address.slice(2).toLowerCase()), "no payer address in events");
  });

  test("callers are salted SHA-256 hashes: no raw IP, API key or query anywhere", async () => {
    await put("ev-private", fn({ apiKeyHeader: "x-api-key", rateLimit: { perCaller: "100/1m" } }));
    const ip = "198.51.100.201";
    const key = "sk_live_RAWKEYVALUE";
    assert.equal((await callAs(ip, `${p.url}/t/ev-private/hello?api_key=QUERYSECRET`)).status, 200);
    assert.equal((await callAs(ip, `${p.url}/t/ev-private/hello`, { "x-api-key": key })).status, 200);
    assert.equal((await callAs("198.51.100.202", `${p.url}/t/ev-private/hello`)).status, 200);
    const events = await eventsOf("ev-private", 3);
    const json = JSON.stringify(events);
    for (const raw of [ip, "198.51.100.202", key, "QUERYSECRET", "api_key", DEV_USAGE_SALT]) {
      assert.ok(!json.includes(raw), `${raw} must not appear in events`);
    }
    const keyDigest = crypto.createHash("sha256").update(key).digest("hex");
    assert.equal(events[0].callerHash, callerHash(`ip:${ip}`), "SHA-256(salt || 0 || ip:<address>)");
    assert.equal(events[1].callerHash, callerHash(`key:${keyDigest}`), "an API key is hashed, then salted");
    assert.notEqual(events[2].callerHash, events[0].callerHash);
    assert.ok(!json.includes(keyDigest), "not even the unsalted key digest");
  });
});

describe("the events feed", () => {
  test("pagination by cursor, stage filter, parameters", async () => {
    await put("ev-feed", fn());
    const ip = "203.0.113.60";
    for (let i = 0; i < 5; i++) assert.equal((await callAs(ip, `${p.url}/t/ev-feed/hello`)).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await callAs(ip, `${p.url}/t/ev-feed/status?code=500`)).status, 500);
    const all = await eventsOf("ev-feed", 7);

    const seen = [];
    let since = 0;
    let pages = 0;
    for (;;) {
      const r = await page(`tenant=ev-feed&limit=3&since=${since}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("cache-control"), "no-store");
      assert.ok(r.json.events.length <= 3);
      seen.push(...r.json.events);
      pages++;
      if (!r.json.hasMore) {
        assert.equal(r.json.nextCursor, String(all.at(-1).seq), "the last page still gives a cursor to poll from");
        break;
      }
      since = r.json.nextCursor;
    }
    assert.equal(pages, 3);
    assert.deepEqual(seen, all);
    const polled = await page(`tenant=ev-feed&since=${all.at(-1).seq}`);
    assert.deepEqual([polled.json.events.length, polled.json.hasMore], [0, false]);

    const errors = await page("tenant=ev-feed&stage=error");
    assert.deepEqual(errors.json.events.map((e) => e.stage), ["error", "error"]);
    const afterFirst = await page(`tenant=ev-feed&stage=served&since=${all[0].seq}&limit=2`);
    assert.deepEqual(afterFirst.json.events.map((e) => e.seq), [all[1].seq, all[2].seq]);
    assert.equal(afterFirst.json.hasMore, true);

    assertProblem(assert, await page("stage=served"), 400, "invalid_query");
    assertProblem(assert, await page("tenant=ev-feed&stage=paid"), 400, "invalid_query");
    assertProblem(assert, await page("tenant=ev-feed&limit=501"), 400, "invalid_query");
    assertProblem(assert, await page("tenant=ev-feed&since=-1"), 400, "invalid_query");
    assertProblem(assert, await page("tenant=no-such-tenant"), 404, "tenant_not_found");
    assertProblem(assert, await getJson(`${p.url}/__platform/events?tenant=ev-feed`, { method: "POST", headers: analytics }), 405, "method_not_allowed");
  });

  test("the analytics token is required, and a 401 reveals nothing", async () => {
    await put("ev-tokens", fn());
    for (const headers of [{}, { authorization: "Bearer wrong" }, { authorization: `Bearer ${DEV_ADMIN_TOKEN}` }, { authorization: DEV_ANALYTICS_TOKEN }]) {
      for (const q of ["tenant=ev-tokens", "tenant=no-such-tenant", "stage=bogus", ""]) {
        const r = await page(q, headers);
        assertProblem(assert, r, 401, "unauthorized");
        assert.equal(r.headers.get("www-authenticate"), "Bearer");
        assert.ok(!r.text.includes("ev-tokens") && !r.text.includes("event"), r.text);
      }
    }
    for (const [method, route] of [
      ["GET", "/usage/ev-tokens?window=1h"],
      ["POST", "/usage/ev-tokens/rollup"],
      ["GET", "/usage/ev-tokens/retention"],
      ["PUT", "/usage/ev-tokens/retention"],
    ]) {
      assertProblem(assert, await getJson(`${p.url}/__platform${route}`, { method }), 401, "unauthorized");
    }
    // The retention is the admin's to change, not the analytics token's.
    const putRetention = (headers) =>
      getJson(`${p.url}/__platform/usage/ev-tokens/retention`, {
        method: "PUT",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify({ retentionMs: 10 * 86_400_000 }),
      });
    assertProblem(assert, await putRetention(analytics), 401, "unauthorized");
    const changed = await putRetention({ authorization: `Bearer ${DEV_ADMIN_TOKEN}` });
    assert.equal(changed.status, 200, changed.text);
    assert.equal(changed.json.retentionMs, 10 * 86_400_000);
    const read = await getJson(`${p.url}/__platform/usage/ev-tokens/retention`, { headers: analytics });
    assert.equal(read.json.retentionMs, 10 * 86_400_000);
    const tooShort = await getJson(`${p.url}/__platform/usage/ev-tokens/retention`, {
      method: "PUT",
      headers: { authorization: `Bearer ${DEV_ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ retentionMs: 1000 }),
    });
    assertProblem(assert, tooShort, 400, "invalid_field");
  });

  test("PLATFORM_EVENTS_PUBLIC=true opens the feed (and only the feed)", async () => {
    const open = await startLocal({ persistDir: null, vars: { PLATFORM_EVENTS_PUBLIC: "true" } });
    try {
      await seedDemoTenants(open.url);
      assert.equal((await getJson(`${open.url}/t/demo-fn/hello`)).status, 200);
      let r;
      for (let i = 0; i < 100; i++) {
        r = await getJson(`${open.url}/__platform/events?tenant=demo-fn`);
        if (r.json?.events?.length) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.events.length, 1);
      assertProblem(assert, await getJson(`${open.url}/__platform/usage/demo-fn?window=1h`), 401, "unauthorized");
    } finally {
      await open.dispose();
    }
  });

  test("event ids are idempotent: a redelivered event is stored once", async () => {
    const probe = p.directUrls["usage-events-probe"];
    await put("ev-dup", fn());
    assert.equal((await callAs("203.0.113.53", `${p.url}/t/ev-dup/hello`)).status, 200);
    const [stored] = await eventsOf("ev-dup", 1);
    const { seq, ...event } = stored;
    const post = (events) =>
      getJson(`${probe}/events?tenant=ev-dup`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(events) });
    const again = await post([event, event]);
    assert.equal(again.status, 200, again.text);
    assert.deepEqual([again.json.inserted, again.json.duplicates], [0, 2]);
    assert.deepEqual(again.json.results.map((x) => [x.outcome, x.seq]), [["duplicate", seq], ["duplicate", seq]]);
    // The same id with other content: the first write stands.
    const forged = await post([{ ...event, latencyMs: event.latencyMs + 1 }]);
    assert.deepEqual(forged.json.results.map((x) => x.outcome), ["conflict"]);
    const events = await allEvents("ev-dup");
    assert.deepEqual(events, [stored]);
  });
});

describe("trending", () => {
  test("free: a flood of refused and failed calls does not move a tenant; fewer served calls of another do", async () => {
    // A: free, one call per caller per hour. B: free, no limit.
    await put("rank-a", fn({ rateLimit: { perCaller: "1/1h" } }));
    await put("rank-b", fn());
    for (let i = 1; i <= 3; i++) assert.equal((await callAs(`10.1.0.${i}`, `${p.url}/t/rank-a/hello`)).status, 200);
    await eventsOf("rank-a", 3);
    const first = await rollup("rank-a");
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.sent, true);
    const before = ranked(await top(), "rank-a");
    assert.deepEqual([before.calls, before.payers], [3, 3]);

    // The flood: 40 new callers whose one admitted call fails (tenant 500), then 258 calls
    // refused with 429 (the same callers, and the first three).
    const flood = [];
    for (let i = 10; i < 50; i++) flood.push(callAs(`10.1.0.${i}`, `${p.url}/t/rank-a/status?code=500`));
    const failed = await Promise.all(flood);
    assert.ok(failed.every((r) => r.status === 500));
    const used = [1, 2, 3, ...Array.from({ length: 40 }, (_, i) => i + 10)];
    const refused = [];
    for (let k = 0; k < 6; k++) for (const i of used) refused.push(callAs(`10.1.0.${i}`, `${p.url}/t/rank-a/hello`));
    const statuses = (await Promise.all(refused)).map((r) => r.status);
    assert.ok(statuses.every((s) => s === 429), `all refused: ${[...new Set(statuses)]}`);
    const floodSize = 3 + failed.length + refused.length;
    const aEvents = await eventsOf("rank-a", floodSize);
    assert.equal(aEvents.filter((e) => e.stage === "rate_limited").length, refused.length);
    assert.equal(aEvents.filter((e) => e.countable).length, 3);

    // B: 10 served calls from 10 callers, far fewer than A's flood.
    for (let i = 1; i <= 10; i++) assert.equal((await callAs(`10.2.0.${i}`, `${p.url}/t/rank-b/hello`)).status, 200);
    await eventsOf("rank-b", 10);

    for (const slug of ["rank-a", "rank-b"]) assert.equal((await rollup(slug)).status, 200);
    const ranking = await top();
    const a = ranked(ranking, "rank-a");
    const b = ranked(ranking, "rank-b");
    assert.deepEqual([a.calls, a.payers], [3, 3], "A did not move");
    assert.deepEqual([b.calls, b.payers, b.score], [10, 10, 10]);
    assert.ok(b.at < a.at, "B ranks above A");
    for (const w of ["24h", "7d"]) {
      const r = await top(w);
      assert.ok(ranked(r, "rank-b").at < ranked(r, "rank-a").at, w);
    }

    // The operators' series: usage per bucket.
    const series = await getJson(`${p.url}/__platform/usage/rank-b?window=1h`, { headers: analytics });
    assert.equal(series.status, 200, series.text);
    assert.equal(series.json.buckets.length, 12);
    assert.equal(series.json.grainMs, 300_000);
    assert.equal(series.json.buckets.reduce((s, x) => s + x.calls, 0), 10);
    assert.deepEqual([series.json.totals.calls, series.json.totals.payers], [10, 10]);
  });

  test("paid: a flood of 402 challenges and 429s does not move a tenant; fewer settled calls of another do", async () => {
    // A: priced, 50 calls at once per caller (burst 49), then one per 72 s. B: priced.
    await put("rank-pa", { ...pricedTenant(), rateLimit: { perCaller: "50/1h", burst: 49 } });
    await put("rank-pb", pricedTenant());
    const aUrl = `${p.url}/t/rank-pa/hello`;
    const bUrl = `${p.url}/t/rank-pb/hello`;
    const ca = await challengeOf(aUrl, "10.4.0.1");
    for (let i = 0; i < 2; i++) assert.equal((await paidCall(aUrl, ca, { ip: "10.4.0.1" })).status, 200);
    await eventsOf("rank-pa", 3);
    assert.equal((await rollup("rank-pa")).status, 200);
    const before = ranked(await top(), "rank-pa");
    assert.deepEqual([before.calls, before.payers, before.revenueAtomic], [2, 1, "2000"]);

    // The flood: 120 unpaid calls from one client: 49 more challenges, then 429s.
    const flood = await Promise.all(Array.from({ length: 120 }, () => fetch(aUrl, { headers: { "cf-connecting-ip": "10.4.0.1" } })));
    const statuses = flood.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 402).length, 49);
    assert.equal(statuses.filter((s) => s === 429).length, 71);
    const aEvents = await eventsOf("rank-pa", 3 + 120);
    assert.equal(aEvents.filter((e) => e.stage === "challenged").length, 50);
    assert.equal(aEvents.filter((e) => e.stage === "rate_limited").length, 71);
    assert.equal(aEvents.filter((e) => e.countable).length, 2);

    // B: 4 settled calls by 4 payers.
    const cb = await challengeOf(bUrl, "10.5.0.1");
    for (let i = 0; i < 4; i++) assert.equal((await paidCall(bUrl, cb, { account: wallet(i), ip: "10.5.0.1" })).status, 200);
    await eventsOf("rank-pb", 5);

    for (const slug of ["rank-pa", "rank-pb"]) assert.equal((await rollup(slug)).status, 200);
    const ranking = await top();
    const a = ranked(ranking, "rank-pa");
    const b = ranked(ranking, "rank-pb");
    assert.deepEqual([a.calls, a.payers, a.revenueAtomic], [2, 1, "2000"], "A did not move");
    assert.deepEqual([b.calls, b.payers, b.revenueAtomic], [4, 4, "4000"]);
    assert.ok(b.at < a.at, "B ranks above A");
  });

  test("paying oneself (payer = the tenant's payTo) is billable but never counted", async () => {
    await put("rank-self", pricedTenant({ payTo: payer.address }));
    const url = `${p.url}/t/rank-self/hello`;
    const c = await challengeOf(url);
    for (let i = 0; i < 3; i++) assert.equal((await paidCall(url, c)).status, 200);
    const settled = (await eventsOf("rank-self", 4)).filter((e) => e.stage === "settled");
    assert.equal(settled.length, 3);
    assert.ok(settled.every((e) => e.selfDealing && e.billable && e.countable));
    assert.equal((await rollup("rank-self")).status, 200);
    assert.equal((await top()).find((e) => e.tenant === "rank-self"), undefined);
    const series = await getJson(`${p.url}/__platform/usage/rank-self?window=1h`, { headers: analytics });
    assert.equal(series.status, 200, series.text);
    assert.equal(series.json.buckets.reduce((s, x) => s + x.calls, 0), 0);
    // The control: one call paid by someone else is counted, so the absence above is the
    // self-dealing rule, not a rollup that counts nothing.
    assert.equal((await paidCall(url, c, { account: wallet(100) })).status, 200);
    await eventsOf("rank-self", 5);
    assert.equal((await rollup("rank-self")).status, 200);
    const entry = ranked(await top(), "rank-self");
    assert.deepEqual([entry.calls, entry.payers, entry.revenueAtomic], [1, 1, "1000"]);
    const after = await getJson(`${p.url}/__platform/usage/rank-self?window=1h`, { headers: analytics });
    assert.equal(after.json.buckets.reduce((s, x) => s + x.calls, 0), 1);
  });

  test("one caller's contribution is capped per window", async () => {
    await put("rank-c", fn());
    const calls = 70; // the 1h cap is 60 per identity; 24h allows 600
    for (let i = 0; i < calls; i++) assert.equal((await callAs("10.3.0.1", `${p.url}/t/rank-c/hello`)).status, 200);
    await eventsOf("rank-c", calls);
    assert.equal((await rollup("rank-c")).status, 200);
    const h1 = ranked(await top("1h"), "rank-c");
    const h24 = ranked(await top("24h"), "rank-c");
    assert.deepEqual([h1.calls, h1.payers], [60, 1]);
    assert.deepEqual([h24.calls, h24.payers], [70, 1]);
    const series = await getJson(`${p.url}/__platform/usage/rank-c?window=1h`, { headers: analytics });
    assert.equal(series.json.buckets.reduce((s, x) => s + x.calls, 0), calls, "usage is uncapped");
  });

  test("the ranking is public; parameters are checked; rollup of an unknown tenant is 404", async () => {
    await rankedTenant("rank-pub-a", 2, "10.6.0");
    await rankedTenant("rank-pub-b", 1, "10.6.1");
    const full = await getJson(`${p.url}/__platform/trending?window=24h&limit=100`);
    assert.equal(full.status, 200, full.text);
    assert.ok(full.json.entries.length >= 2);
    ranked(full.json.entries, "rank-pub-a");
    ranked(full.json.entries, "rank-pub-b");
    const r = await getJson(`${p.url}/__platform/trending?window=24h&limit=1`);
    assert.equal(r.status, 200);
    assert.equal(r.json.window, "24h");
    assert.deepEqual(r.json.entries, full.json.entries.slice(0, 1), "limit=1: the first entry only");
    assertProblem(assert, await getJson(`${p.url}/__platform/trending?window=2h`), 400, "invalid_query");
    assertProblem(assert, await getJson(`${p.url}/__platform/trending?limit=0`), 400, "invalid_query");
    assertProblem(assert, await getJson(`${p.url}/__platform/trending`, { method: "POST" }), 405, "method_not_allowed");
    assertProblem(assert, await rollup("no-such-tenant"), 404, "tenant_not_found");
    assertProblem(assert, await getJson(`${p.url}/__platform/usage/Bad_Slug`, { headers: analytics }), 400, "invalid_slug");
    assertProblem(assert, await getJson(`${p.url}/__platform/usage/rank-pub-a/nope`, { headers: analytics }), 404, "route_not_found");
    const empty = await getJson(`${p.url}/__platform/usage/never-called?window=7d`, { headers: analytics });
    assert.equal(empty.status, 200);
    assert.equal(empty.json.buckets.length, 168);
    assert.equal(empty.json.totals, null);
  });
});

describe("durability", () => {
  test("events and rankings survive a restart of workerd", async () => {
    await rankedTenant("ev-durable", 2, "10.7.0");
    assert.equal((await callAs("10.7.0.9", `${p.url}/t/ev-durable/status?code=500`)).status, 500);
    const before = await eventsOf("ev-durable", 3);
    const ranking = await top();
    assert.deepEqual([ranked(ranking, "ev-durable").calls, ranked(ranking, "ev-durable").payers], [2, 2]);
    await p.dispose();
    p = await platform();
    assert.deepEqual(await allEvents("ev-durable"), before);
    // The ranking kept every count it had. Other tenants' counts may only have grown: earlier
    // tests' settled events reach their events objects through the ledger's alarm, which may
    // run (and roll up) after the restart.
    const after = await top();
    assert.deepEqual([ranked(after, "ev-durable").calls, ranked(after, "ev-durable").payers], [2, 2]);
    for (const e of ranking) assert.ok(ranked(after, e.tenant).calls >= e.calls, `${e.tenant}: ${e.calls} calls before the restart`);
  });
});
