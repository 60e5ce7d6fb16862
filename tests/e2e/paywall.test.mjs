// End to end: the x402 paywall and the tenant ledger on a real local workerd, paid with
// real EIP-3009 signatures (viem, test keys), verified either locally (dev override) or by
// the facilitator stand-in on loopback (tests/fakes/x402_facilitator.mjs).

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { startPlatform, admin, assertProblem, getJson, tempStateDir } from "./harness.mjs";
import { ROOT } from "../../scripts/local/runtime.mjs";
import { startFacilitator } from "../fakes/x402_facilitator.mjs";
import {
  appendPaymentIdentifierToExtensions,
  validatePaymentIdentifierRequirement,
  paymentIdentifierSchema,
} from "@x402/extensions/payment-identifier";
import {
  pricedTenant,
  readChallenge,
  payHeaders,
  receipt,
  unb64,
  randomNonce,
  other,
  payer,
  PAY_TO,
  USDC_BASE_SEPOLIA,
} from "./x402_client.mjs";

const PAYOUT_TOKEN = "test-payout-token";
const OPERATOR_TOKEN = "test-operator-token";
const TOKENS = { PLATFORM_PAYOUT_TOKEN: PAYOUT_TOKEN, PLATFORM_OPERATOR_TOKEN: OPERATOR_TOKEN };
const DEST = "0x3333333333333333333333333333333333333333";

const ledger = (base, token = PAYOUT_TOKEN) => ({
  entries: (slug, after = 0, limit = 500) =>
    getJson(`${base}/__platform/ledger/${slug}/entries?after=${after}&limit=${limit}`, { headers: { authorization: `Bearer ${token}` } }),
  earnings: (slug) => getJson(`${base}/__platform/ledger/${slug}/earnings`, { headers: { authorization: `Bearer ${token}` } }),
  createPayout: (slug, key, body) =>
    getJson(`${base}/__platform/ledger/${slug}/payouts`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
      body,
    }),
  post: (slug, id, action, body) =>
    getJson(`${base}/__platform/ledger/${slug}/payouts/${id}/${action}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
  payout: (slug, id) => getJson(`${base}/__platform/ledger/${slug}/payouts/${id}`, { headers: { authorization: `Bearer ${token}` } }),
});

/// The ledger entries of the payment with this nonce.
async function entriesOf(base, slug, nonce) {
  const page = await ledger(base).entries(slug);
  assert.equal(page.status, 200, page.text);
  return page.json.entries.filter((e) => e.paymentKey?.endsWith(nonce.toLowerCase()));
}

async function challengeFor(url) {
  const c = await readChallenge(await fetch(url));
  assert.equal(c.status, 402);
  return c;
}

async function pay(url, version, o = {}) {
  const c = await challengeFor(url);
  const nonce = o.nonce ?? randomNonce();
  const headers = await payHeaders(c, version, { ...o, nonce });
  const res = await getJson(url, { headers });
  return { ...res, nonce, payment: headers };
}

describe("local verification (ALLOW_LOCAL_X402_VERIFICATION=true)", () => {
  let p;
  before(async () => {
    p = await startPlatform({ vars: { ALLOW_LOCAL_X402_VERIFICATION: "true", ...TOKENS } });
    const api = admin(p.url);
    for (const slug of ["paid", "paid-b", "paid-race", "paid-job", "paid-kill", "paid-payouts"]) {
      assert.equal((await api.put(slug, pricedTenant())).status, 201);
    }
    assert.equal((await api.put("paid-free-plan", pricedTenant({ plan: "free", amountAtomic: "999" }))).status, 201);
  });
  after(async () => {
    await p?.dispose();
  });

  test("no payment: 402 with the v1 body and the v2 PAYMENT-REQUIRED header at once", async () => {
    const res = await fetch(`${p.url}/t/paid/hello?name=q`);
    assert.equal(res.status, 402);
    assert.equal(res.headers.get("content-type"), "application/json");
    const c = await readChallenge(res);
    assert.equal(c.v1.x402Version, 1);
    assert.equal(c.v1.error, "X-PAYMENT header is required");
    assert.deepEqual(c.v1.accepts, [
      {
        scheme: "exact",
        network: "base-sepolia",
        maxAmountRequired: "1000",
        resource: `${p.url}/t/paid/hello`,
        description: "paid demo",
        mimeType: "",
        payTo: PAY_TO,
        maxTimeoutSeconds: 60,
        asset: USDC_BASE_SEPOLIA,
        extra: { name: "USDC", version: "2" },
      },
    ]);
    assert.equal(c.v2.x402Version, 2);
    assert.deepEqual(c.v2.resource, { url: `${p.url}/t/paid/hello`, description: "paid demo", mimeType: "" });
    assert.deepEqual(c.v2.accepts, [
      {
        scheme: "exact",
        network: "eip155:84532",
        amount: "1000",
        asset: USDC_BASE_SEPOLIA,
        payTo: PAY_TO,
        maxTimeoutSeconds: 60,
        extra: { name: "USDC", version: "2" },
      },
    ]);
    // A free tenant is not touched by the paywall.
    const free = await fetch(`${p.url}/t/demo-fn/hello`);
    assert.equal(free.status, 200);
    assert.equal(free.headers.get("x-claw-charged"), null);
  });

  for (const version of [1, 2]) {
    test(`v${version}: a signed payment is served once, answered with the receipt, and booked`, async () => {
      const url = `${p.url}/t/paid/echo`;
      const r = await pay(url, version);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.path, "/echo");
      assert.equal(r.json.headers["x-payment"], undefined, "the tenant never sees the payment");
      assert.equal(r.json.headers["payment-signature"], undefined);
      assert.equal(r.headers.get("x-claw-charged"), "true");
      const name = version === 1 ? "x-payment-response" : "payment-response";
      const otherName = version === 1 ? "payment-response" : "x-payment-response";
      assert.equal(r.headers.get(otherName), null);
      const rc = unb64(r.headers.get(name));
      assert.equal(rc.success, true);
      assert.equal(rc.network, version === 1 ? "base-sepolia" : "eip155:84532");
      assert.equal(rc.payer, payer.address);
      assert.equal(rc.localSettlement, true, "a local settlement says it is not on chain");
      assert.match(rc.transaction, /^local:[0-9a-f]{64}$/);

      const entries = await entriesOf(p.url, "paid", r.nonce);
      assert.deepEqual(entries.map((e) => e.kind), ["payment_reserved", "payment_settled"]);
      const settled = entries[1];
      assert.equal(settled.paymentKey, `eip155:84532:${USDC_BASE_SEPOLIA}:${payer.address}:${r.nonce}`.toLowerCase());
      assert.deepEqual([settled.amount, settled.fee, settled.net, settled.feeBps], ["1000", "50", "950", 500]);
      assert.equal(settled.localSettlement, true);
      assert.equal(settled.txRef, rc.transaction);
      assert.ok(settled.seq > entries[0].seq);

      // The same payment again (a retry whose answer was lost): the kept answer and its
      // receipt, whatever the version; the tenant is not called again, nothing is charged.
      const again = await getJson(url, { headers: r.payment });
      assert.equal(again.status, 200, again.text);
      assert.equal(again.headers.get("x-claw-replay"), "true");
      assert.equal(again.text, r.text, "the same answer");
      assert.equal(receipt(again).transaction, rc.transaction);
      assert.equal((await entriesOf(p.url, "paid", r.nonce)).length, 2);
    });
  }

  test("an authorization valid far past 2^53 seconds is served and booked (the ledger records the latest time it keeps)", async () => {
    const r = await pay(`${p.url}/t/paid/hello`, 2, { validBefore: "18446744073709551615" });
    assert.equal(r.status, 200, r.text);
    const entries = await entriesOf(p.url, "paid", r.nonce);
    assert.deepEqual(entries.map((e) => e.kind), ["payment_reserved", "payment_settled"]);
  });

  test("local verification rejects the wrong key, a tampered amount, an expired or early authorization", async () => {
    const url = `${p.url}/t/paid-b/hello`;
    const cases = [
      // Signed by another key while claiming the payer's address.
      [{ account: other, from: payer.address }, "signer_mismatch"],
      // Signed for 1 unit, then the value edited up to the price.
      [
        {
          value: "1",
          tamper: (j) => {
            j.payload.authorization.value = "1000";
          },
        },
        "signer_mismatch",
      ],
      // Signed for 1 unit and sent as is.
      [{ value: "1" }, "amount_mismatch"],
      // Another recipient.
      [{ to: "0x4444444444444444444444444444444444444444" }, "recipient_mismatch"],
      // Expired, and not valid yet.
      [{ validBefore: Math.floor(Date.now() / 1000) - 10 }, "authorization_expired"],
      [{ validAfter: Math.floor(Date.now() / 1000) + 3600 }, "authorization_not_yet_valid"],
      // A signature edited after signing.
      [
        {
          tamper: (j) => {
            const s = j.payload.signature;
            j.payload.signature = s.slice(0, 10) + (s[10] === "a" ? "b" : "a") + s.slice(11);
          },
        },
        null,
      ],
    ];
    for (const version of [1, 2]) {
      for (const [o, code] of cases) {
        const r = await pay(url, version, o);
        assert.equal(r.status, 402, `${code}: ${r.text}`);
        assert.ok(r.headers.get("payment-required"), "fresh requirements come with the refusal");
        if (code) assert.equal(r.json.error, code, r.text);
        else assert.ok(["signer_mismatch", "invalid_signature", "malleable_signature"].includes(r.json.error), r.text);
        assert.equal((await entriesOf(p.url, "paid-b", r.nonce)).length, 0, "refused before the ledger");
      }
    }
  });

  test("unreadable payment headers: 400 problem+json, still with the requirements", async () => {
    const url = `${p.url}/t/paid-b/hello`;
    const bad = await getJson(url, { headers: { "X-PAYMENT": "not base64 !!" } });
    assertProblem(assert, bad, 400, "invalid_payment_header");
    assert.ok(bad.headers.get("payment-required"));
    const c = await challengeFor(url);
    const both = { ...(await payHeaders(c, 1)), ...(await payHeaders(c, 2)) };
    assertProblem(assert, await getJson(url, { headers: both }), 400, "ambiguous_payment_headers");
    const v2InV1 = await payHeaders(c, 2);
    assertProblem(assert, await getJson(url, { headers: { "X-PAYMENT": v2InV1["PAYMENT-SIGNATURE"] } }), 400, "x402_version_header_mismatch");
  });

  test("a tenant answering 400 or more is passed through, not settled, and the payment voided", async () => {
    const r = await pay(`${p.url}/t/paid-b/status?code=503`, 2);
    assert.equal(r.status, 503);
    assert.equal(r.text, "status 503", "the tenant's own answer, as the reference servers do");
    assert.equal(r.headers.get("x-demo"), "status");
    assert.equal(receipt(r), null);
    assert.equal(r.headers.get("x-claw-charged"), null);
    const entries = await entriesOf(p.url, "paid-b", r.nonce);
    assert.deepEqual(entries.map((e) => e.kind), ["payment_reserved", "payment_voided"]);
    assert.equal(entries[1].reason, "tenant_status: 503");

    const thrown = await pay(`${p.url}/t/paid-b/throw`, 1);
    assertProblem(assert, thrown, 502, "tenant_worker_failed");
    const e2 = await entriesOf(p.url, "paid-b", thrown.nonce);
    assert.deepEqual(e2.map((e) => e.kind), ["payment_reserved", "payment_voided"]);
    // A voided payment cannot be used again.
    assertProblem(assert, await getJson(`${p.url}/t/paid-b/hello`, { headers: thrown.payment }), 409, "payment_already_voided");
  });

  test("payment-identifier: declared in the 402; the same id and payment get the kept answer, another payment under it a 409", async () => {
    assert.equal((await admin(p.url).put("paid-id", pricedTenant())).status, 201);
    const url = `${p.url}/t/paid-id/hello`;
    const c = await challengeFor(url);
    // The declaration, as the official extension package reads it.
    const declared = c.v2.extensions["payment-identifier"];
    assert.deepEqual(declared.info, { required: false });
    assert.deepEqual(declared.schema.required, paymentIdentifierSchema.required);
    assert.equal(validatePaymentIdentifierRequirement(undefined, declared.info.required).valid, true);
    // The client adds its id with the official helper.
    const id = `pay_${randomNonce().slice(2, 34)}`;
    const withId = (extensions) => (json) => ({ ...json, extensions });
    const extensions = appendPaymentIdentifierToExtensions(structuredClone(c.v2.extensions), id);
    const nonce = randomNonce();
    const headers = await payHeaders(c, 2, { nonce, tamper: withId(extensions) });
    const first = await getJson(url, { headers });
    assert.equal(first.status, 200, first.text);
    // Same id, same payment: the kept answer, charged once.
    const again = await getJson(url, { headers });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.headers.get("x-claw-replay"), "true");
    assert.equal(again.text, first.text);
    // Same id, another payment: 409, nothing reserved for it.
    const other = randomNonce();
    const reused = await getJson(url, { headers: await payHeaders(c, 2, { nonce: other, tamper: withId(extensions) }) });
    assertProblem(assert, reused, 409, "payment_identifier_reused");
    assert.deepEqual((await entriesOf(p.url, "paid-id", other)).length, 0);
    assert.deepEqual((await entriesOf(p.url, "paid-id", nonce)).map((e) => e.kind), ["payment_reserved", "payment_settled"]);
    // A malformed id is refused before anything else.
    const bad = appendPaymentIdentifierToExtensions(structuredClone(c.v2.extensions), "pay_0123456789abcdef");
    bad["payment-identifier"].info.id = "no spaces allowed here";
    const refused = await getJson(url, { headers: await payHeaders(c, 2, { tamper: withId(bad) }) });
    assert.equal(refused.status, 400, refused.text);
    assert.equal(refused.json.code, "invalid_payment_payload");
  });

  test("50 concurrent requests carrying one payment: served exactly once, recorded once", async () => {
    const url = `${p.url}/t/paid-race/echo`;
    const c = await challengeFor(url);
    const nonce = randomNonce();
    const headers = await payHeaders(c, 2, { nonce });
    const results = await Promise.all(Array.from({ length: 50 }, () => getJson(url, { headers })));
    // One call is served and charged; copies that arrive while it runs are refused (409
    // payment_in_flight), copies after it get its kept answer (marked as a replay).
    const served = results.filter((r) => r.status === 200 && r.headers.get("x-claw-replay") !== "true");
    assert.equal(served.length, 1, results.map((r) => r.status).join(","));
    for (const r of results.filter((x) => x !== served[0])) {
      if (r.status === 200) {
        assert.equal(r.headers.get("x-claw-replay"), "true");
        assert.equal(r.text, served[0].text, "a replay is the served answer");
      } else {
        assertProblem(assert, r, 409, "payment_in_flight");
      }
    }
    const entries = await entriesOf(p.url, "paid-race", nonce);
    assert.deepEqual(entries.map((e) => e.kind), ["payment_reserved", "payment_settled"]);
    const earnings = await ledger(p.url).earnings("paid-race");
    assert.equal(earnings.json.settledCount, 1);
    assert.equal(earnings.json.gross, "1000");
  });

  test("earnings per tenant (fee by plan) and across tenants", async () => {
    for (let i = 0; i < 3; i++) assert.equal((await pay(`${p.url}/t/paid-free-plan/hello`, 1)).status, 200);
    const viaJob = await ledger(p.url).earnings("paid-free-plan");
    assert.equal(viaJob.status, 200);
    // Free plan: 10 % fee, floored per payment: 999 -> 99 fee, 900 net.
    assert.deepEqual(
      [viaJob.json.gross, viaJob.json.fees, viaJob.json.net, viaJob.json.available, viaJob.json.paidOut, viaJob.json.pending],
      ["2997", "297", "2700", "2700", "0", "0"],
    );
    assert.equal(viaJob.json.settledCount, 3);
    assert.equal(viaJob.json.localNet, "2700");
    assert.equal(viaJob.json.days.length, 1);
    assert.equal(viaJob.json.days[0].count, 3);
    const op = { authorization: `Bearer ${OPERATOR_TOKEN}` };
    const viaOp = await getJson(`${p.url}/__platform/earnings/paid-free-plan?days=7`, { headers: op });
    assert.equal(viaOp.status, 200);
    assert.equal(viaOp.json.net, "2700");

    // Across tenants, a page at a time, with totals that add up.
    const seen = new Map();
    let after = "";
    let sumNet = 0n;
    for (let i = 0; i < 20; i++) {
      const page = await getJson(`${p.url}/__platform/earnings?limit=3${after ? `&after=${after}` : ""}`, { headers: op });
      assert.equal(page.status, 200, page.text);
      assert.ok(page.json.tenants.length <= 3);
      let pageNet = 0n;
      for (const t of page.json.tenants) {
        seen.set(t.slug, t.earnings);
        pageNet += BigInt(t.earnings.net);
      }
      assert.equal(page.json.totals.net, pageNet.toString());
      assert.equal(page.json.totalsCover, page.json.tenants.length);
      sumNet += pageNet;
      if (!page.json.nextCursor) break;
      after = page.json.nextCursor;
    }
    assert.ok(seen.has("demo-fn") && seen.has("paid-free-plan") && seen.has("paid"));
    assert.equal(seen.get("demo-fn").net, "0");
    assert.equal(seen.get("paid-free-plan").net, "2700");
    let direct = 0n;
    for (const slug of seen.keys()) direct += BigInt((await ledger(p.url).earnings(slug)).json.net);
    assert.equal(sumNet, direct);
    assertProblem(assert, await getJson(`${p.url}/__platform/earnings?limit=26`, { headers: op }), 400, "invalid_query");
  });

  test("payout API: Idempotency-Key required, same key + body = original, other body = 422, never above available", async () => {
    const slug = "paid-payouts";
    for (let i = 0; i < 2; i++) assert.equal((await pay(`${p.url}/t/${slug}/hello`, 2)).status, 200);
    const l = ledger(p.url);
    assert.equal((await l.earnings(slug)).json.available, "1900");
    const body = JSON.stringify({ amount: "1500", destination: DEST });
    assertProblem(assert, await l.createPayout(slug, null, body), 400, "idempotency_key_required");
    const first = await l.createPayout(slug, "k-1", body);
    assert.equal(first.status, 201, first.text);
    assert.equal(first.json.state, "pending");
    assert.equal(first.json.replayed, false);
    const again = await l.createPayout(slug, "k-1", body);
    assert.equal(again.status, 200);
    assert.equal(again.json.id, first.json.id);
    assert.equal(again.json.replayed, true);
    const different = await l.createPayout(slug, "k-1", JSON.stringify({ amount: "1400", destination: DEST }));
    assertProblem(assert, different, 422, "idempotency_key_reused");
    // Pending payouts hold their amount: 400 is left.
    assertProblem(assert, await l.createPayout(slug, "k-2", JSON.stringify({ amount: "401", destination: DEST })), 409, "insufficient_funds");
    const e = (await l.earnings(slug)).json;
    assert.deepEqual([e.available, e.payoutsPending, e.paidOut], ["400", "1500", "0"]);

    const posted = await l.post(slug, first.json.id, "post", { txRef: "0xfeed" });
    assert.equal(posted.status, 200);
    assert.equal(posted.json.state, "posted");
    assertProblem(assert, await l.post(slug, first.json.id, "void", { reason: "late" }), 409, "payout_already_posted");
    const second = await l.createPayout(slug, "k-3", JSON.stringify({ amount: "400", destination: DEST }));
    assert.equal(second.status, 201);
    const voided = await l.post(slug, second.json.id, "void", { reason: "bank refused" });
    assert.equal(voided.json.state, "voided");
    const fin = (await l.earnings(slug)).json;
    assert.deepEqual([fin.available, fin.payoutsPending, fin.paidOut], ["400", "0", "1500"]);
    assert.equal((await l.payout(slug, first.json.id)).json.txRef, "0xfeed");
    assertProblem(assert, await l.payout(slug, "po_999999"), 404, "payout_not_found");
    assertProblem(assert, await l.entries("nobody-here"), 404, "tenant_not_found");
  });

  test("tokens: each API needs its own token", async () => {
    const wrong = ledger(p.url, "nope");
    assertProblem(assert, await wrong.entries("paid"), 401, "unauthorized");
    const opAsPayout = ledger(p.url, OPERATOR_TOKEN);
    assertProblem(assert, await opAsPayout.entries("paid"), 401, "unauthorized");
    const payoutAsOp = await getJson(`${p.url}/__platform/earnings`, { headers: { authorization: `Bearer ${PAYOUT_TOKEN}` } });
    assertProblem(assert, payoutAsOp, 401, "unauthorized");
    const adminAsPayout = ledger(p.url, "local-dev-admin-token");
    assertProblem(assert, await adminAsPayout.entries("paid"), 401, "unauthorized");
  });

  const runJob = (state, slug, env = {}) =>
    spawnSync(process.execPath, [path.join(ROOT, "scripts/payout-job.mjs"), "--base", p.url, "--state", state, "--tenant", `${slug}=${DEST}`], {
      env: { ...process.env, PLATFORM_PAYOUT_TOKEN: PAYOUT_TOKEN, ...env },
      encoding: "utf8",
    });
  const payoutCount = async (slug) => (await ledger(p.url).entries(slug)).json.entries.filter((e) => e.kind === "payout_created").length;

  test("the payout job run twice over the same ledger pays once", async () => {
    const slug = "paid-job";
    for (let i = 0; i < 3; i++) assert.equal((await pay(`${p.url}/t/${slug}/hello`, 1)).status, 200);
    const state = path.join(tempStateDir(), "job.json");
    const one = runJob(state, slug);
    assert.equal(one.status, 0, one.stderr);
    const out = JSON.parse(one.stdout.trim());
    assert.equal(out.action, "paid");
    assert.equal(out.amount, "2850");
    assert.equal(out.state, "posted");
    assert.match(out.txRef, /^simulated:[0-9a-f]{64}$/);
    const two = runJob(state, slug);
    assert.equal(two.status, 0, two.stderr);
    // The payout's own entries are new; nothing is available to pay.
    assert.equal(JSON.parse(two.stdout.trim()).action, "nothing_available");
    assert.equal(await payoutCount(slug), 1);
    // Even with its state lost, a rerun finds nothing available to pay.
    const lost = runJob(path.join(tempStateDir(), "fresh.json"), slug);
    assert.equal(lost.status, 0, lost.stderr);
    assert.equal(JSON.parse(lost.stdout.trim()).action, "nothing_available");
    assert.equal(await payoutCount(slug), 1);
    const e = (await ledger(p.url).earnings(slug)).json;
    assert.deepEqual([e.paidOut, e.available, e.payoutsPending], ["2850", "0", "0"]);
  });

  test("the payout job killed after any step and rerun pays exactly once", async () => {
    const slug = "paid-kill";
    const state = path.join(tempStateDir(), "job.json");
    let paid = 0n;
    for (const [i, step] of ["intent", "create", "send", "post"].entries()) {
      assert.equal((await pay(`${p.url}/t/${slug}/hello`, 2)).status, 200);
      paid += 950n;
      const killed = runJob(state, slug, { PAYOUT_JOB_EXIT_AFTER: step });
      assert.equal(killed.status, 86, `${step}: ${killed.stderr}`);
      const rerun = runJob(state, slug);
      assert.equal(rerun.status, 0, rerun.stderr);
      const out = JSON.parse(rerun.stdout.trim());
      assert.equal(out.amount, "950", step);
      assert.equal(out.state, "posted");
      assert.equal(await payoutCount(slug), i + 1, `after a kill at ${step}`);
      const again = runJob(state, slug);
      assert.equal(JSON.parse(again.stdout.trim()).action, "nothing_available");
      assert.equal(await payoutCount(slug), i + 1);
    }
    const e = (await ledger(p.url).earnings(slug)).json;
    assert.deepEqual([e.paidOut, e.available], [paid.toString(), "0"]);
  });
});

describe("facilitator (stand-in on loopback)", () => {
  let p;
  let f;
  before(async () => {
    // "timeout" modes never answer: only the platform's FACILITATOR_TIMEOUT_MS ends them.
    f = await startFacilitator();
    p = await startPlatform({ vars: { FACILITATOR_URL: f.url, FACILITATOR_TIMEOUT_MS: "1500", ...TOKENS } });
    assert.equal((await admin(p.url).put("paid", pricedTenant())).status, 201);
  });
  after(async () => {
    await p?.dispose();
    await f?.close();
  });
  const url = () => `${p.url}/t/paid/echo`;
  const paths = () => f.calls.map((c) => c.path);

  for (const version of [1, 2]) {
    test(`v${version}: verify, serve, settle; the receipt carries the transaction`, async () => {
      f.reset();
      const r = await pay(url(), version);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(paths(), ["/verify", "/settle"]);
      const [verify, settle] = f.calls;
      assert.equal(verify.body.x402Version, version);
      assert.deepEqual(verify.body, settle.body);
      if (version === 1) assert.equal(verify.body.paymentRequirements.maxAmountRequired, "1000");
      else assert.equal(verify.body.paymentRequirements.amount, "1000");
      assert.equal(verify.body.paymentPayload.payload.authorization.nonce, r.nonce);
      const rc = receipt(r);
      assert.equal(rc.success, true);
      assert.match(rc.transaction, /^0x[0-9a-f]{64}$/);
      assert.equal(rc.localSettlement, undefined);
      const entries = await entriesOf(p.url, "paid", r.nonce);
      assert.deepEqual(entries.map((e) => e.kind), ["payment_reserved", "payment_settled"]);
      assert.equal(entries[1].txRef, rc.transaction);
      assert.equal(entries[1].localSettlement, false);
    });
  }

  test("the facilitator's own checks refuse a bad signature: 402, nothing reserved, no settle", async () => {
    f.reset();
    const r = await pay(url(), 2, { account: other, from: payer.address });
    assert.equal(r.status, 402, r.text);
    assert.equal(r.json.error, "payment_verification_failed");
    assert.match(r.json.detail, /invalid_exact_evm_signature/);
    assert.deepEqual(paths(), ["/verify"]);
    assert.equal((await entriesOf(p.url, "paid", r.nonce)).length, 0);
  });

  test("verify: invalid -> 402; 500, timeout, garbage -> not served, nothing reserved", async () => {
    const cases = [
      ["invalid", 402, null],
      ["500", 502, "facilitator_unavailable"],
      ["timeout", 504, "facilitator_timeout"],
      ["garbage", 502, "facilitator_bad_response"],
    ];
    for (const [mode, status, code] of cases) {
      f.reset();
      f.setMode({ verify: mode });
      const r = await pay(url(), 1);
      if (code) assertProblem(assert, r, status, code);
      else assert.equal(r.status, 402);
      assert.equal(r.json.method, undefined, "the tenant's body is never returned");
      assert.deepEqual(paths(), ["/verify"], mode);
      assert.equal((await entriesOf(p.url, "paid", r.nonce)).length, 0, mode);
    }
  });

  test("settle success:false -> 402 with the failed settlement response, no tenant body, voided", async () => {
    f.reset();
    f.setMode({ settle: "fail" });
    const r = await pay(url(), 2);
    assert.equal(r.status, 402, r.text);
    assert.equal(r.json.method, undefined, "the tenant's body is not returned");
    assert.equal(r.json.error, "settlement_failed");
    assert.ok(r.headers.get("payment-required"));
    const rc = receipt(r);
    assert.deepEqual([rc.success, rc.errorReason, rc.transaction], [false, "invalid_exact_evm_insufficient_balance", ""]);
    assert.equal(r.headers.get("x-claw-charged"), null);
    const entries = await entriesOf(p.url, "paid", r.nonce);
    assert.deepEqual(entries.map((e) => e.kind), ["payment_reserved", "payment_voided"]);
    assert.equal(entries[1].reason, "settle: settlement_failed");
  });

  test("settle 500, timeout, garbage -> not served, the payment's outcome unknown (the chain decides)", async () => {
    const cases = [
      ["500", 502, "facilitator_unavailable"],
      ["timeout", 504, "facilitator_timeout"],
      ["garbage", 502, "facilitator_bad_response"],
    ];
    for (const [mode, status, code] of cases) {
      f.reset();
      f.setMode({ settle: mode });
      const r = await pay(url(), 1);
      assertProblem(assert, r, status, code);
      assert.equal(r.json.method, undefined);
      const rc = receipt(r);
      assert.deepEqual([rc.success, rc.errorReason], [false, code], mode);
      assert.deepEqual(paths(), ["/verify", "/settle"]);
      assert.match(r.json.detail, /reconciled against the chain/);
      // The settlement was sent: it may have happened. Never voided by the call itself.
      const entries = await entriesOf(p.url, "paid", r.nonce);
      assert.deepEqual(entries.map((e) => e.kind), ["payment_reserved", "payment_unknown"], mode);
      assert.equal(entries[1].reason, `settle: ${code}`);
    }
  });

  test("a transaction hash claimed for a second payment is refused and the payment voided", async () => {
    f.reset();
    f.setMode({ settle: "same-tx" });
    const first = await pay(url(), 2);
    assert.equal(first.status, 200, first.text);
    const second = await pay(url(), 2);
    assertProblem(assert, second, 502, "settlement_not_recorded");
    assert.match(second.json.detail, /transaction_already_recorded/);
    assert.equal(receipt(second).errorReason, "transaction_already_recorded");
    assert.equal(second.json.method, undefined);
    assert.equal(receipt(second).success, false);
    const entries = await entriesOf(p.url, "paid", second.nonce);
    assert.deepEqual(entries.map((e) => e.kind), ["payment_reserved", "payment_voided"]);
  });

  test("a tenant answering 400 or more is never settled", async () => {
    f.reset();
    const r = await pay(`${p.url}/t/paid/status?code=404`, 2);
    assert.equal(r.status, 404);
    assert.deepEqual(paths(), ["/verify"]);
    const entries = await entriesOf(p.url, "paid", r.nonce);
    assert.deepEqual(entries.map((e) => e.kind), ["payment_reserved", "payment_voided"]);
  });
});

describe("fail closed and restarts", () => {
  test("no facilitator and no override: paid calls get 503 and are never served; token APIs closed", async () => {
    const p = await startPlatform();
    try {
      const api = admin(p.url);
      assert.equal((await api.put("paid", pricedTenant())).status, 201);
      const bare = await getJson(`${p.url}/t/paid/echo`);
      assertProblem(assert, bare, 503, "payments_unavailable");
      // Even a well-formed payment (signed for the offer the tenant would make).
      const req = pricedTenant().price;
      const c = {
        v1: { accepts: [{ scheme: "exact", network: "base-sepolia", maxAmountRequired: "1000", payTo: req.payTo, asset: req.asset, maxTimeoutSeconds: 60, extra: { name: "USDC", version: "2" } }] },
      };
      const paid = await getJson(`${p.url}/t/paid/echo`, { headers: await payHeaders(c, 1) });
      assertProblem(assert, paid, 503, "payments_unavailable");
      assert.equal(paid.json.method, undefined);
      assert.equal((await getJson(`${p.url}/t/demo-fn/hello`)).status, 200, "free tenants are served");
      for (const token of ["", "anything"]) {
        const h = { authorization: `Bearer ${token}` };
        assertProblem(assert, await getJson(`${p.url}/__platform/ledger/paid/entries`, { headers: h }), 401, "unauthorized");
        assertProblem(assert, await getJson(`${p.url}/__platform/earnings`, { headers: h }), 401, "unauthorized");
        assertProblem(assert, await getJson(`${p.url}/__platform/earnings/paid`, { headers: h }), 401, "unauthorized");
      }
    } finally {
      await p.dispose();
    }
  });

  test("an unreachable facilitator: 502, not served, nothing reserved", async () => {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    const p = await startPlatform({ vars: { FACILITATOR_URL: "http://127.0.0.1:9", ...TOKENS } });
    try {
      assert.equal((await admin(p.url).put("paid", pricedTenant())).status, 201);
      const r = await pay(`${p.url}/t/paid/echo`, 2);
      assertProblem(assert, r, 502, "facilitator_unavailable");
      assert.equal(r.json.method, undefined);
      assert.equal((await entriesOf(p.url, "paid", r.nonce)).length, 0);
    } finally {
      await p.dispose();
    }
  });

  test("a killed and restarted workerd loses no settled entry", async () => {
    const persistDir = tempStateDir();
    const vars = { ALLOW_LOCAL_X402_VERIFICATION: "true", ...TOKENS };
    let p = await startPlatform({ persistDir, vars });
    const paid = [];
    let before;
    try {
      assert.equal((await admin(p.url).put("paid", pricedTenant())).status, 201);
      for (let i = 0; i < 5; i++) {
        const r = await pay(`${p.url}/t/paid/hello`, (i % 2) + 1);
        assert.equal(r.status, 200);
        paid.push(r);
      }
      before = (await ledger(p.url).entries("paid")).json;
    } finally {
      await p.dispose();
    }
    assert.ok(fs.existsSync(path.join(persistDir, "do")));
    p = await startPlatform({ persistDir, vars, seed: false });
    try {
      const after = (await ledger(p.url).entries("paid")).json;
      assert.deepEqual(after.entries, before.entries);
      assert.equal(after.entries.filter((e) => e.kind === "payment_settled").length, 5);
      const e = (await ledger(p.url).earnings("paid")).json;
      assert.deepEqual([e.settledCount, e.net], [5, "4750"]);
      // Spent payments stay spent across the restart: the same payment gets its kept answer
      // (not charged again), a new signature over a spent nonce is a reuse.
      const replay = await getJson(`${p.url}/t/paid/hello`, { headers: paid[1].payment });
      assert.equal(replay.status, 200, replay.text);
      assert.equal(replay.headers.get("x-claw-replay"), "true");
      assert.equal((await ledger(p.url).earnings("paid")).json.settledCount, 5);
      const c = await challengeFor(`${p.url}/t/paid/hello`);
      const reuse = await getJson(`${p.url}/t/paid/hello`, { headers: await payHeaders(c, 2, { nonce: paid[1].nonce, validBefore: Math.floor(Date.now() / 1000) + 45 }) });
      assertProblem(assert, reuse, 422, "payment_key_reused");
    } finally {
      await p.dispose();
    }
  });
});
