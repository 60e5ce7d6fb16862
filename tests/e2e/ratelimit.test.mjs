// End to end: the rate limiter (issue 3) on a real local workerd, over real HTTP.
// Exactness under hundreds of concurrent requests, the IETF RateLimit fields, caller
// identity (IP, API key, payer), the sharded global limit, persistence across a workerd
// restart, and the per-tenant failure modes.
//
// GCRA admits `burst + 1` requests at the same instant, then one per `window / limit`. The
// windows here are an hour long, so nothing refills while a test runs: a concurrent storm
// must be admitted exactly `burst + 1` times, whatever the interleaving.

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import http from "node:http";
import { privateKeyToAccount, generatePrivateKey } from "viem/accounts";
import { startPlatform, admin, assertProblem, tempStateDir } from "./harness.mjs";
import { TRANSFER_WITH_AUTHORIZATION } from "../../scripts/eip3009.mjs";
import { startLocal, seedDemoTenants } from "../../scripts/local/runtime.mjs";

const PRICE = {
  amountAtomic: "1000",
  network: "base-sepolia",
  asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
  payTo: "0x1111111111111111111111111111111111111111",
};

const fn = (extra) => ({ resourceType: "function", workerName: "demo-fn", plan: "free", ...extra });

let p;

before(async () => {
  p = await startPlatform();
});
after(async () => {
  await p?.dispose();
});

async function put(slug, config, platformUrl = p.url) {
  const r = await admin(platformUrl).put(slug, config);
  assert.ok(r.status === 200 || r.status === 201, `${slug}: ${r.status} ${r.text}`);
}

// A connection per request, closed after it: a storm of hundreds really is hundreds of
// requests in flight, and no request can hit a kept-alive connection the server is closing.
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

/// One GET; returns status, headers (a `Headers`), text, json.
function call(url, headers = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, headers, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const h = new Headers();
        for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
        let json = null;
        try {
          json = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode, headers: h, text, json });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/// `n` requests all in flight at once.
function storm(n, url, headers = {}) {
  return Promise.all(Array.from({ length: n }, () => call(url, headers)));
}

const count = (rs, status) => rs.filter((r) => r.status === status).length;

/// Parses an sf-list of items whose value is a string with integer parameters, as the
/// RateLimit fields are: `"caller";q=10;w=60, "global";r=0;t=1` -> {caller: {q:10, w:60}, ...}.
function parseFields(value) {
  assert.equal(typeof value, "string", "field present");
  const out = {};
  for (const item of value.split(",")) {
    const [name, ...params] = item.trim().split(";");
    const m = name.match(/^"([a-z]+)"$/);
    assert.ok(m, `item name ${name} in ${value}`);
    out[m[1]] = Object.fromEntries(
      params.map((kv) => {
        const [k, v] = kv.split("=");
        assert.match(v, /^\d+$/, `${kv} in ${value}`);
        return [k, Number(v)];
      }),
    );
  }
  return out;
}

function randomAddress() {
  return "0x" + crypto.randomBytes(20).toString("hex");
}

const randomPayer = () => privateKeyToAccount(generatePrivateKey());

/// A v1 `X-PAYMENT` for PRICE signed by `payer` (a viem account), as a client signs it;
/// `claimed` puts another `from` in it than the one who signed (a made-up payer).
async function paymentHeader(payer, claimed) {
  const authorization = {
    from: payer.address,
    to: PRICE.payTo,
    value: PRICE.amountAtomic,
    validAfter: "0",
    validBefore: String(Math.floor(Date.now() / 1000) + 3600),
    nonce: "0x" + crypto.randomBytes(32).toString("hex"),
  };
  const signature = await payer.signTypedData({
    domain: { name: "USDC", version: "2", chainId: 84532, verifyingContract: PRICE.asset },
    types: TRANSFER_WITH_AUTHORIZATION,
    primaryType: "TransferWithAuthorization",
    message: { ...authorization, value: BigInt(authorization.value), validAfter: 0n, validBefore: BigInt(authorization.validBefore) },
  });
  const json = {
    x402Version: 1,
    scheme: "exact",
    network: "base-sepolia",
    payload: { signature, authorization: { ...authorization, from: claimed ?? payer.address } },
  };
  return Buffer.from(JSON.stringify(json)).toString("base64");
}

describe("exactness", () => {
  test("400 concurrent requests from one caller admit exactly burst + 1 (20)", async () => {
    await put("rl-storm", fn({ rateLimit: { perCaller: "20/1h", burst: 19 } }));
    const rs = await storm(400, `${p.url}/t/rl-storm/hello`, { "cf-connecting-ip": "203.0.113.10" });
    assert.equal(count(rs, 200), 20);
    assert.equal(count(rs, 429), 380);
    // The object decides one request at a time: each admission leaves a distinct remainder.
    const remaining = rs
      .filter((r) => r.status === 200)
      .map((r) => {
        assert.deepEqual(parseFields(r.headers.get("ratelimit-policy")), { caller: { q: 20, w: 3600 } });
        assert.equal(r.headers.get("retry-after"), null);
        return parseFields(r.headers.get("ratelimit")).caller.r;
      })
      .sort((a, b) => a - b);
    assert.deepEqual(remaining, Array.from({ length: 20 }, (_, i) => i));
    for (const r of rs.filter((r) => r.status === 429)) {
      assertProblem(assert, r, 429, "rate_limited");
      assert.deepEqual(parseFields(r.headers.get("ratelimit-policy")), { caller: { q: 20, w: 3600 } });
      const now = parseFields(r.headers.get("ratelimit")).caller;
      assert.equal(now.r, 0);
      assert.ok(now.t >= 1 && now.t <= 180, `t=${now.t}`);
      const retry = r.headers.get("retry-after");
      assert.match(retry, /^\d+$/);
      // One unit refills every 3600 / 20 = 180 s.
      assert.ok(Number(retry) >= 1 && Number(retry) <= 180, `Retry-After ${retry}`);
    }
  });

  test("burst 0 is a strict pacer: 100 at once admit exactly one", async () => {
    await put("rl-pacer", fn({ rateLimit: { perCaller: "10/1h" } }));
    const rs = await storm(100, `${p.url}/t/rl-pacer/hello`, { "cf-connecting-ip": "203.0.113.11" });
    assert.equal(count(rs, 200), 1);
    assert.equal(count(rs, 429), 99);
  });

  test("the global limit is exact across callers: 10 callers x 10 at once admit 30 of 30/1h", async () => {
    // 30/1h is one shard (sharding starts at 500/s); burst 29 lets 30 through at once, and
    // each caller's own limit (1000/1h, same burst) never refuses 10.
    await put("rl-global", fn({ rateLimit: { perCaller: "1000/1h", global: "30/1h", burst: 29 } }));
    const rs = (
      await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          storm(10, `${p.url}/t/rl-global/hello`, { "cf-connecting-ip": `198.51.100.${i + 1}` }),
        ),
      )
    ).flat();
    assert.equal(count(rs, 200), 30);
    assert.equal(count(rs, 429), 70);
    for (const r of rs) {
      const policy = parseFields(r.headers.get("ratelimit-policy"));
      assert.deepEqual(policy, { caller: { q: 1000, w: 3600 }, global: { q: 30, w: 3600 } }, r.status);
      const now = parseFields(r.headers.get("ratelimit"));
      if (r.status === 429) {
        assertProblem(assert, r, 429, "rate_limited");
        assert.equal(now.global.r, 0);
        assert.match(r.json.detail, /global/);
        assert.ok(Number(r.headers.get("retry-after")) >= 1);
      }
    }
  });
});

describe("caller identity", () => {
  test("two callers do not affect each other: API keys, then IPs", async () => {
    await put("rl-keys", fn({ apiKeyHeader: "x-api-key", rateLimit: { perCaller: "5/1h", burst: 4 } }));
    const url = `${p.url}/t/rl-keys/hello`;
    const ip = { "cf-connecting-ip": "192.0.2.50" };
    const [a, b] = await Promise.all([
      storm(50, url, { ...ip, "x-api-key": "key-a" }),
      storm(50, url, { ...ip, "x-api-key": "key-b" }),
    ]);
    assert.equal(count(a, 200), 5);
    assert.equal(count(b, 200), 5);
    // Without a key the caller is its IP, a third caller.
    assert.equal(count(await storm(20, url, ip), 200), 5);
    assert.equal(count(await storm(20, url, { "cf-connecting-ip": "192.0.2.51" }), 200), 5);
    // Exhausted callers stay refused; the key is the tenant's to check, the header value
    // alone decides who the caller is.
    assert.equal((await call(url, { ...ip, "x-api-key": "key-a" })).status, 429);
    assert.equal((await call(url, { ...ip, "x-api-key": "key-c" })).status, 200);
  });

  test("paid calls are keyed by the payer whose signature recovers from the payment header", async () => {
    await put("rl-paid", fn({ price: PRICE, rateLimit: { perCaller: "3/1h", burst: 2 } }));
    const url = `${p.url}/t/rl-paid/hello`;
    const alice = randomPayer();
    const bob = randomPayer();
    const at = async (ip, payer) => ({ "cf-connecting-ip": ip, ...(payer ? { "x-payment": await paymentHeader(payer) } : {}) });
    const limited = (r) => r.status === 429;
    // Whatever the paywall answers (no facilitator here), the call was admitted by the
    // limiter (not 429) and carries the RateLimit fields.
    const headers = await Promise.all(Array.from({ length: 10 }, () => at("192.0.2.60", alice)));
    const first = await Promise.all(headers.map((h) => call(url, h)));
    assert.equal(first.filter((r) => !limited(r)).length, 3);
    for (const r of first) assert.equal(parseFields(r.headers.get("ratelimit-policy")).caller.q, 3);
    // The same payer from another address is the same caller; another payer is not.
    assert.ok(limited(await call(url, await at("192.0.2.61", alice))));
    assert.ok(!limited(await call(url, await at("192.0.2.60", bob))));
    // No payment header: the IP is the caller, untouched by alice's calls.
    assert.ok(!limited(await call(url, await at("192.0.2.60"))));
    // A payment header that does not decode counts as absent: the IP's limit applies.
    const junk = { "cf-connecting-ip": "192.0.2.62", "x-payment": "bm90IGEgcGF5bWVudA==" };
    const junkRs = await Promise.all(Array.from({ length: 6 }, () => call(url, junk)));
    assert.equal(junkRs.filter((r) => !limited(r)).length, 3);
    assert.ok(limited(await call(url, { "cf-connecting-ip": "192.0.2.62" })));
    // Inventing a payer per request (a `from` the signature does not recover to) mints no
    // fresh limits: the IP's limit applies to all of them.
    const forger = randomPayer();
    const invented = await Promise.all(
      Array.from({ length: 6 }, async () => ({ "cf-connecting-ip": "192.0.2.63", "x-payment": await paymentHeader(forger, randomAddress()) })),
    );
    const inventedRs = await Promise.all(invented.map((h) => call(url, h)));
    assert.equal(inventedRs.filter((r) => !limited(r)).length, 3);
  });

  test("a free tenant ignores payment headers: made-up payers cannot mint fresh limits", async () => {
    await put("rl-free", fn({ rateLimit: { perCaller: "2/1h", burst: 1 } }));
    const url = `${p.url}/t/rl-free/hello`;
    // Properly signed, each by a fresh payer: a free tenant still does not read them.
    const payments = await Promise.all(Array.from({ length: 8 }, () => paymentHeader(randomPayer())));
    const rs = await Promise.all(payments.map((h) => call(url, { "cf-connecting-ip": "192.0.2.70", "x-payment": h })));
    assert.equal(count(rs, 200), 2);
  });
});

describe("responses", () => {
  test("every response of an admitted call carries the fields: tenant answers and platform problems", async () => {
    await put("rl-answers", fn({ rateLimit: { perCaller: "100/1h", burst: 9 } }));
    const ip = { "cf-connecting-ip": "192.0.2.80" };
    const teapot = await call(`${p.url}/t/rl-answers/status?code=418`, ip);
    assert.equal(teapot.status, 418);
    assert.equal(teapot.headers.get("x-demo"), "status");
    assert.equal(parseFields(teapot.headers.get("ratelimit")).caller.r, 9);
    await put("rl-missing", { resourceType: "function", workerName: "not-deployed", plan: "free", rateLimit: { perCaller: "100/1h" } });
    const missing = await call(`${p.url}/t/rl-missing/x`, ip);
    assertProblem(assert, missing, 502, "tenant_worker_missing");
    assert.deepEqual(parseFields(missing.headers.get("ratelimit-policy")), { caller: { q: 100, w: 3600 } });
  });

  test("a tenant without a rate limit gets no fields", async () => {
    const r = await call(`${p.url}/t/demo-fn/hello`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("ratelimit"), null);
    assert.equal(r.headers.get("ratelimit-policy"), null);
  });
});

describe("durability and failure", () => {
  test("limiter state survives a workerd restart", async () => {
    const dir = tempStateDir();
    const first = await startPlatform({ persistDir: dir });
    const ip = { "cf-connecting-ip": "192.0.2.90" };
    try {
      await put("rl-persist", fn({ rateLimit: { perCaller: "3/1h", burst: 2 } }), first.url);
      const rs = await storm(30, `${first.url}/t/rl-persist/hello`, ip);
      assert.equal(count(rs, 200), 3);
    } finally {
      await first.dispose();
    }
    const second = await startPlatform({ persistDir: dir, seed: false });
    try {
      const again = await call(`${second.url}/t/rl-persist/hello`, ip);
      assertProblem(assert, again, 429, "rate_limited");
      // Nothing was forgotten: the next unit is still most of 20 minutes away.
      assert.ok(Number(again.headers.get("retry-after")) > 600, again.headers.get("retry-after"));
      assert.equal((await call(`${second.url}/t/rl-persist/hello`, { "cf-connecting-ip": "192.0.2.91" })).status, 200);
    } finally {
      await second.dispose();
    }
  });

  test("an unreachable limiter: paid tenants fail closed, free ones open, as configured", async () => {
    // The dispatcher runs without its RATE_LIMITER binding, so every limiter call fails.
    // Local x402 verification on, so a paid tenant that gets past the limiter answers 402, not
    // the paywall's fail-closed 503.
    const broken = await startLocal({ persistDir: null, omitBindings: ["RATE_LIMITER"], allowLocalX402: true });
    try {
      await seedDemoTenants(broken.url);
      const limit = { perCaller: "10/1h", burst: 5 };
      await put("paid-default", fn({ price: PRICE, rateLimit: limit }), broken.url);
      await put("free-default", fn({ rateLimit: limit }), broken.url);
      await put("paid-open", fn({ price: PRICE, rateLimit: { ...limit, onLimiterFailure: "open" } }), broken.url);
      await put("free-closed", fn({ rateLimit: { ...limit, onLimiterFailure: "closed" } }), broken.url);
      for (const slug of ["paid-default", "free-closed"]) {
        const r = await call(`${broken.url}/t/${slug}/hello`);
        assertProblem(assert, r, 503, "rate_limiter_unavailable");
        assert.equal(r.headers.get("ratelimit"), null);
      }
      for (const slug of ["free-default", "paid-open"]) {
        const r = await call(`${broken.url}/t/${slug}/hello`);
        assert.notEqual(r.status, 503, `${slug}: ${r.text}`);
        assert.notEqual(r.status, 429);
        assert.equal(r.headers.get("ratelimit"), null, "served without fields");
        assert.equal(r.headers.get("ratelimit-policy"), null);
      }
      assert.equal((await call(`${broken.url}/t/free-default/hello`)).json?.hello, "world");
      assert.equal((await call(`${broken.url}/t/paid-open/hello`)).status, 402, "on to the paywall");
      // A tenant without limits never asks the limiter, so it is not affected at all.
      assert.equal((await call(`${broken.url}/t/demo-fn/hello`)).status, 200);
    } finally {
      await broken.dispose();
    }
  });
});
