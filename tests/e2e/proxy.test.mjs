// End to end: proxy tenants (served by the dispatcher) and the egress of function tenants
// (the namespace's outbound Worker), on a real local workerd, against a scriptable upstream
// on loopback (tests/fakes/upstream.mjs). Loopback upstreams are allowed only because these
// platforms are started with ALLOW_LOOPBACK_UPSTREAMS=true; one test checks the default.

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { startPlatform, admin, assertProblem, getJson, rawRequest, tempStateDir } from "./harness.mjs";
import { startUpstream } from "../fakes/upstream.mjs";
import { EGRESS_PROBE_PARAMS, EGRESS_PROBE_WORKER } from "../../scripts/local/runtime.mjs";

const SECRET = "sk-live-upstream-5b1f0e7c";
const OTHER_SECRET = "second-secret-value-91";

let up;
let p;
let api;

before(async () => {
  up = await startUpstream();
  p = await startPlatform({
    vars: {
      ALLOW_LOOPBACK_UPSTREAMS: "true",
      PX_SECRET__UPSTREAM_KEY: SECRET,
      PX_SECRET__UPSTREAM_TOKEN: OTHER_SECRET,
      PLATFORM_HOSTS: "claw.example.net",
    },
    egressProbe: true,
  });
  api = admin(p.url);
});
after(async () => {
  await p?.dispose();
  await up?.close();
});

function proxyConfig(proxy, extra = {}) {
  return { resourceType: "proxy", plan: "free", ...extra, proxy: { upstreamUrl: `${up.url}/v1`, ...proxy } };
}

async function putProxy(slug, proxy, extra) {
  const r = await api.put(slug, proxyConfig(proxy, extra));
  assert.ok(r.status === 201 || r.status === 200, r.text);
  return r;
}

/// A query value no other test uses, so cache entries and upstream records are this test's.
let seq = 0;
const unique = () => `u=${Date.now()}-${++seq}`;
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/// Asks for `url` until the proxy's answer is a miss: the cached copy has expired. Every
/// answer before that must be a hit that did not reach the upstream (`calls()` unchanged).
/// Returns the missing answer; fails if the copy outlives `deadlineMs` (which only bounds
/// the wait: the tests pick TTLs far below it and, where it matters, below what a wrong
/// TTL would give).
async function untilExpired(url, calls, deadlineMs) {
  const upstreamCalls = calls();
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const r = await fetch(url);
    await r.arrayBuffer();
    const status = r.headers.get("x-claw-cache");
    if (status === "miss") return r;
    assert.equal(status, "hit", url);
    assert.equal(calls(), upstreamCalls, "a hit does not reach the upstream");
    assert.ok(Date.now() < deadline, `${url}: still cached after ${deadlineMs} ms`);
    await pause(100);
  }
}

describe("proxy: URL joining and methods", () => {
  test("the path remainder and query are appended to the base URL exactly", async () => {
    await putProxy("px-join", { allowedMethods: ["GET"] });
    const cases = [
      ["/t/px-join/echo?x=1&y=%20z", "/v1/echo", "?x=1&y=%20z"],
      ["/t/px-join/a%2Fb/echo?", "/v1/a%2Fb/echo", ""],
      ["/t/px-join//a//echo", "/v1/a/echo", ""],
      ["/t/px-join/items/echo/", "/v1/items/echo/", ""],
    ];
    for (const [path, upstreamPath, query] of cases) {
      const r = await getJson(`${p.url}${path}`);
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      assert.equal(r.json.path, upstreamPath, path);
      assert.equal(r.json.query, query, path);
    }
    const root = await getJson(`${p.url}/t/px-join`);
    assert.equal(root.status, 404, "the upstream answered for /v1/");
    assert.equal(root.json.path, "/v1/");
    const before = up.calls.length;
    // Sent as raw bytes (fetch() would resolve dot segments itself). workerd's URL parser
    // resolves plain and singly encoded dot segments before the Worker runs (here leaving
    // the tenant, /t/admin); what survives it is refused by the joining rules.
    assertProblem(assert, await rawRequest(p.url, { path: "/t/px-join/%2e%2e/admin" }), 400, "invalid_slug");
    for (const path of ["/t/px-join/a/%252e%252e/b", "/t/px-join/..%2fx", "/t/px-join/a/..;x/b", "/t/px-join/%c0%ae%c0%ae/x", "/t/px-join/a/%2e%2e%5cb"]) {
      assertProblem(assert, await rawRequest(p.url, { path }), 400, "path_traversal");
    }
    assert.equal(up.calls.length, before, "a refused path never reaches the upstream");
  });

  test("a method outside the allowlist is 405 with Allow; listed ones are forwarded with their body", async () => {
    await putProxy("px-methods", { allowedMethods: ["GET", "POST"] });
    const before = up.calls.length;
    for (const method of ["DELETE", "PUT", "PATCH"]) {
      const r = await getJson(`${p.url}/t/px-methods/echo`, { method });
      assertProblem(assert, r, 405, "method_not_allowed");
      assert.equal(r.headers.get("allow"), "GET, POST");
    }
    assert.equal(up.calls.length, before, "refused methods never reach the upstream");
    const post = await getJson(`${p.url}/t/px-methods/echo`, { method: "POST", body: "x".repeat(5000), headers: { "content-type": "text/plain" } });
    assert.equal(post.status, 200);
    assert.equal(post.json.method, "POST");
    assert.equal(post.json.bodyLength, 5000);
    assert.equal(post.headers.get("x-claw-cache"), "bypass");
  });
});

describe("proxy: injected headers", () => {
  test("the upstream sees the secret; the caller never does, nor the admin API", async () => {
    const put = await putProxy("px-secret", {
      injectHeaders: [
        { name: "X-Api-Key", secret: "PX_SECRET__UPSTREAM_KEY" },
        { name: "Authorization", secret: "PX_SECRET__UPSTREAM_TOKEN" },
      ],
    });
    assert.ok(!put.text.includes(SECRET) && !put.text.includes(OTHER_SECRET));
    const q = unique();
    const res = await fetch(`${p.url}/t/px-secret/json?${q}&echo-header=x-api-key&echo-header=authorization`, {
      headers: {
        "x-api-key": "caller-tries-to-override",
        authorization: "Bearer caller-token",
        cookie: "session=platform-cookie",
        "x-forwarded-for": "203.0.113.9",
        "accept-encoding": "zstd",
        "x-custom": "kept",
      },
    });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    const [seen] = up.hits("/v1/json", q);
    assert.equal(seen.headers["x-api-key"], SECRET, "the upstream got the secret");
    assert.equal(seen.headers.authorization, OTHER_SECRET);
    assert.equal(seen.headers["x-custom"], "kept");
    assert.equal(seen.headers.cookie, undefined, "platform-origin cookies stay home");
    assert.equal(seen.headers["x-forwarded-for"], undefined);
    assert.notEqual(seen.headers["accept-encoding"], "zstd", "the runtime negotiates encodings it decodes");
    // The upstream echoed the credential headers back: they are dropped.
    assert.equal(res.headers.get("x-api-key"), null);
    assert.equal(res.headers.get("authorization"), null);
    for (const [, v] of res.headers) assert.ok(!v.includes(SECRET) && !v.includes(OTHER_SECRET));
    assert.ok(!text.includes(SECRET));
    const stored = await api.get("px-secret");
    assert.deepEqual(stored.json.config.proxy.injectHeaders, [
      { name: "X-Api-Key", secret: "PX_SECRET__UPSTREAM_KEY" },
      { name: "Authorization", secret: "PX_SECRET__UPSTREAM_TOKEN" },
    ]);
    assert.ok(!stored.text.includes(SECRET) && !stored.text.includes(OTHER_SECRET));
  });

  test("a tenant may only name its own secrets: not the platform's, not another tenant's", async () => {
    for (const secret of ["PLATFORM_ADMIN_TOKEN", "PX_SECRET__UPSTREAM_KEY", "UPSTREAM_KEY", "PX_THIEF_UPSTREAM_KEY"]) {
      const r = await api.put("px-thief", proxyConfig({ injectHeaders: [{ name: "x-api-key", secret }] }));
      assertProblem(assert, r, 400, "invalid_field");
      assert.equal(r.json.field, "proxy.injectHeaders.secret", secret);
      assert.ok(r.json.detail.includes("PX_THIEF__"));
    }
    assertProblem(assert, await api.get("px-thief"), 404, "tenant_not_found");
  });

  test("a secret that is not bound is 502 upstream_credentials_invalid, and nothing is sent", async () => {
    await putProxy("px-nosecret", { injectHeaders: [{ name: "x-api-key", secret: "PX_NOSECRET__NOT_BOUND_ANYWHERE" }] });
    const before = up.calls.length;
    const r = await getJson(`${p.url}/t/px-nosecret/json`);
    assertProblem(assert, r, 502, "upstream_credentials_invalid");
    assert.ok(!r.text.includes("NOT_BOUND_ANYWHERE"), "the secret's name stays in the logs");
    assert.equal(r.headers.get("x-claw-cache"), null);
    assert.equal(up.calls.length, before);
  });
});

describe("proxy: cache", () => {
  test("a GET is answered from the cache until the TTL ends, then fetched again", async () => {
    await putProxy("px-cache", { cacheTtlS: 3 });
    const q = unique();
    const first = await fetch(`${p.url}/t/px-cache/json?${q}`);
    assert.equal(first.headers.get("x-claw-cache"), "miss");
    const firstBody = await first.text();
    const second = await fetch(`${p.url}/t/px-cache/json?${q}`);
    assert.equal(second.status, 200);
    assert.equal(second.headers.get("x-claw-cache"), "hit");
    assert.equal(await second.text(), firstBody);
    assert.equal(second.headers.get("content-type"), "application/json");
    assert.equal(up.hits("/v1/json", q).length, 1, "the hit did not reach the upstream");
    // Another query is another URL, so another entry.
    const other = await fetch(`${p.url}/t/px-cache/json?${q}&page=2`);
    assert.equal(other.headers.get("x-claw-cache"), "miss");
    assert.equal(up.hits("/v1/json", q).length, 2);
    const expired = await untilExpired(`${p.url}/t/px-cache/json?${q}`, () => up.hits("/v1/json", q).length, 60_000);
    assert.equal(expired.status, 200);
    assert.equal(up.hits("/v1/json", q).length, 3, "the expired entry was fetched again");
    // ... and stored again.
    assert.equal((await fetch(`${p.url}/t/px-cache/json?${q}`)).headers.get("x-claw-cache"), "hit");
    assert.equal(up.hits("/v1/json", q).length, 3);
  });

  test("the upstream's no-store and private are honoured; a hit gives the upstream's own Cache-Control", async () => {
    await putProxy("px-cache-cc", { cacheTtlS: 60 });
    for (const cc of ["no-store", "private", "no-cache", "max-age=0"]) {
      const q = `${unique()}&cc=${encodeURIComponent(cc)}`;
      for (let i = 0; i < 2; i++) {
        const r = await fetch(`${p.url}/t/px-cache-cc/json?${q}`);
        assert.equal(r.headers.get("x-claw-cache"), "miss", cc);
        assert.equal(r.headers.get("cache-control"), cc, "the upstream's Cache-Control goes back as it was");
      }
      assert.equal(up.hits("/v1/json", q).length, 2, cc);
    }
    const q = `${unique()}&cc=${encodeURIComponent("public, max-age=300")}`;
    await fetch(`${p.url}/t/px-cache-cc/json?${q}`);
    const hit = await fetch(`${p.url}/t/px-cache-cc/json?${q}`);
    assert.equal(hit.headers.get("x-claw-cache"), "hit");
    assert.equal(hit.headers.get("cache-control"), "public, max-age=300", "a hit gives the upstream's own Cache-Control");
    const vary = `${unique()}&vary=accept-language`;
    await fetch(`${p.url}/t/px-cache-cc/json?${vary}`);
    assert.equal((await fetch(`${p.url}/t/px-cache-cc/json?${vary}`)).headers.get("x-claw-cache"), "miss");
    assert.equal(up.hits("/v1/json", vary).length, 2);
  });

  test("the upstream's max-age shortens the TTL; an Age of max-age or more is not stored", async () => {
    // cacheTtlS 60, the upstream allows 3 s: a copy that expires well before 60 s
    // (untilExpired gives up after 45 s) was given the upstream's shorter lifetime.
    await putProxy("px-cache-age", { cacheTtlS: 60 });
    const stale = `${unique()}&cc=${encodeURIComponent("max-age=60")}&age=60`;
    for (let i = 0; i < 2; i++) {
      assert.equal((await fetch(`${p.url}/t/px-cache-age/json?${stale}`)).headers.get("x-claw-cache"), "miss", "Age = max-age: not stored");
    }
    assert.equal(up.hits("/v1/json", stale).length, 2);
    const q = `${unique()}&cc=${encodeURIComponent("max-age=3")}`;
    assert.equal((await fetch(`${p.url}/t/px-cache-age/json?${q}`)).headers.get("x-claw-cache"), "miss");
    assert.equal((await fetch(`${p.url}/t/px-cache-age/json?${q}`)).headers.get("x-claw-cache"), "hit");
    assert.equal(up.hits("/v1/json", q).length, 1);
    await untilExpired(`${p.url}/t/px-cache-age/json?${q}`, () => up.hits("/v1/json", q).length, 45_000);
    assert.equal(up.hits("/v1/json", q).length, 2);
  });

  // The stored copy's s-maxage is already max-age minus Age; it does not keep the Age
  // header, or the runtime's cache would subtract it a second time.
  test("the upstream's Age is subtracted once: max-age=605 with Age 600 is cached for 5 s", async () => {
    await putProxy("px-cache-age2", { cacheTtlS: 60 });
    const q = `${unique()}&cc=${encodeURIComponent("max-age=605")}&age=600`;
    assert.equal((await fetch(`${p.url}/t/px-cache-age2/json?${q}`)).headers.get("x-claw-cache"), "miss");
    assert.equal((await fetch(`${p.url}/t/px-cache-age2/json?${q}`)).headers.get("x-claw-cache"), "hit");
    await untilExpired(`${p.url}/t/px-cache-age2/json?${q}`, () => up.hits("/v1/json", q).length, 45_000);
    assert.equal(up.hits("/v1/json", q).length, 2);
  });

  test("the cache is per tenant, GET only, and off without a TTL", async () => {
    await putProxy("px-cache-a", { cacheTtlS: 60, allowedMethods: ["GET", "POST"] });
    await putProxy("px-cache-b", { cacheTtlS: 60 });
    await putProxy("px-cache-off", { cacheTtlS: 0 });
    const q = unique();
    assert.equal((await fetch(`${p.url}/t/px-cache-a/json?${q}`)).headers.get("x-claw-cache"), "miss");
    assert.equal((await fetch(`${p.url}/t/px-cache-b/json?${q}`)).headers.get("x-claw-cache"), "miss", "same upstream URL, other tenant");
    assert.equal((await fetch(`${p.url}/t/px-cache-a/json?${q}`, { method: "POST", body: "{}" })).headers.get("x-claw-cache"), "bypass");
    for (let i = 0; i < 2; i++) {
      assert.equal((await fetch(`${p.url}/t/px-cache-off/json?${q}`)).headers.get("x-claw-cache"), "bypass");
    }
    assert.equal(up.hits("/v1/json", q).length, 5);
  });

  test("errors are not cached", async () => {
    await putProxy("px-cache-err", { cacheTtlS: 60 });
    const q = `${unique()}&code=503`;
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`${p.url}/t/px-cache-err/status?${q}`);
      assert.equal(r.status, 503, "an upstream failure passes through: the paywall will not settle it");
      assert.equal(r.headers.get("x-claw-cache"), "miss");
    }
    assert.equal(up.hits("/v1/status", q).length, 2);
  });
});

describe("proxy: transform, limits, failures", () => {
  test("the JSON transform reshapes objects and arrays, also on cache hits", async () => {
    await putProxy("px-transform", {
      cacheTtlS: 60,
      transform: { select: ["id", "name", "n"], rename: { name: "title" }, drop: ["n"] },
    });
    const q = unique();
    for (const expected of ["miss", "hit"]) {
      const r = await fetch(`${p.url}/t/px-transform/json?${q}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("x-claw-cache"), expected);
      assert.equal(await r.text(), '{"id":7,"title":"widget"}');
    }
    const arr = await getJson(`${p.url}/t/px-transform/array`);
    assert.deepEqual(arr.json, [{ id: 1, title: "a" }, { id: 2, title: "b" }, 3]);
    // A transform config change applies at once, cached copies included.
    await putProxy("px-transform", { cacheTtlS: 60, transform: { select: ["id"] } });
    assert.equal(await (await fetch(`${p.url}/t/px-transform/json?${q}`)).text(), '{"id":7}');
    assert.equal(up.hits("/v1/json", q).length, 1);
  });

  test("gzip and brotli upstream bodies are read decoded: passed on, cached and transformed", async () => {
    await putProxy("px-gzip", { cacheTtlS: 60 });
    await putProxy("px-gzip-t", { cacheTtlS: 60, transform: { drop: ["secret"] } });
    for (const encoding of ["gzip", "br"]) {
      const q = unique();
      for (const expected of ["miss", "hit"]) {
        const r = await getJson(`${p.url}/t/px-gzip/${encoding}?${q}`);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers.get("x-claw-cache"), expected);
        assert.deepEqual(r.json, { id: 7, name: "widget", secret: "internal-only" }, `${encoding} ${expected}`);
        const t = await getJson(`${p.url}/t/px-gzip-t/${encoding}?${q}`);
        assert.equal(t.headers.get("x-claw-cache"), expected);
        assert.deepEqual(t.json, { id: 7, name: "widget" }, `${encoding} ${expected}`);
      }
    }
  });

  test("a body that is not JSON where a transform is configured is 502; errors pass untransformed", async () => {
    await putProxy("px-transform-bad", { transform: { drop: ["secret"] } });
    assertProblem(assert, await getJson(`${p.url}/t/px-transform-bad/text`), 502, "upstream_not_json");
    const missing = await getJson(`${p.url}/t/px-transform-bad/status?code=404`);
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.json, { status: 404 });
  });

  test("an upstream that does not finish within timeoutMs is 504 upstream_timeout (head or body)", async () => {
    // The upstream never finishes /hang (no head) and /hang-body (head, part of the body):
    // only the platform's own timeout can end these calls. It received each request, so
    // the 504 is the timeout, not an unreachable upstream.
    await putProxy("px-timeout", { timeoutMs: 1500 });
    for (const route of ["hang", "hang-body"]) {
      const q = unique();
      const r = await getJson(`${p.url}/t/px-timeout/${route}?${q}`);
      assertProblem(assert, r, 504, "upstream_timeout");
      assert.equal(up.hits(`/v1/${route}`, q).length, 1, `${route}: the upstream got the request`);
    }
    // An upstream that answers is served under the same timeout.
    assert.equal((await getJson(`${p.url}/t/px-timeout/json`)).status, 200);
  });

  test("a body above maxResponseBytes is 502 upstream_too_large, with or without a length", async () => {
    await putProxy("px-size", { maxResponseBytes: 100000 });
    assert.equal((await fetch(`${p.url}/t/px-size/big?bytes=100000`)).status, 200);
    const ok = await fetch(`${p.url}/t/px-size/big?bytes=99999&chunked=1`);
    assert.equal((await ok.arrayBuffer()).byteLength, 99999);
    assertProblem(assert, await getJson(`${p.url}/t/px-size/big?bytes=100001`), 502, "upstream_too_large");
    assertProblem(assert, await getJson(`${p.url}/t/px-size/big?bytes=300000&chunked=1`), 502, "upstream_too_large");
  });

  test("redirects are not followed nor passed on: 502 upstream_redirect", async () => {
    await putProxy("px-redirect", {});
    const r = await getJson(`${p.url}/t/px-redirect/redirect`, { redirect: "manual" });
    assertProblem(assert, r, 502, "upstream_redirect");
    assert.equal(r.headers.get("location"), null);
  });

  test("an upstream that is down is 502 upstream_unreachable", async () => {
    const gone = await startUpstream();
    await gone.close();
    const r = await api.put("px-down", { resourceType: "proxy", plan: "free", proxy: { upstreamUrl: gone.url } });
    assert.equal(r.status, 201, r.text);
    assertProblem(assert, await getJson(`${p.url}/t/px-down/json`), 502, "upstream_unreachable");
  });
});

describe("proxy: SSRF", () => {
  test("the admin API refuses upstreams that are not public https, or are the platform", async () => {
    const refused = [
      "http://api.example.com/v1",
      "https://10.0.0.1/",
      "https://192.168.1.1/",
      "https://169.254.169.254/latest/meta-data",
      "https://[fd00:ec2::254]/",
      "https://[::ffff:10.0.0.1]/",
      "https://metadata.google.internal/",
      "https://db.internal/",
      "https://100.64.0.1/",
      "https://localhost/",
      "https://demo-fn.localhost/",
      "https://claw.example.net/",
      "https://x.claw.example.net/",
      "ftp://files.example.com/",
      "https://user:pw@api.example.com/",
    ];
    for (const upstreamUrl of refused) {
      const r = await api.put("px-ssrf", { resourceType: "proxy", plan: "free", proxy: { upstreamUrl } });
      assertProblem(assert, r, 400, "invalid_field");
      assert.equal(r.json.field, "proxy.upstreamUrl", upstreamUrl);
    }
    assertProblem(assert, await api.get("px-ssrf"), 404, "tenant_not_found");
    assert.equal((await api.put("px-ssrf", { resourceType: "proxy", plan: "free", proxy: { upstreamUrl: "https://api.example.com/v1" } })).status, 201);
  });

  test("loopback is refused unless the platform is started with the explicit setting", async () => {
    const dir = tempStateDir();
    const loose = await startPlatform({ persistDir: dir, vars: { ALLOW_LOOPBACK_UPSTREAMS: "true" } });
    try {
      const a = admin(loose.url);
      assert.equal((await a.put("px-local", proxyConfig({}))).status, 201);
      assert.equal((await a.put("fn-local", { resourceType: "function", workerName: "demo-fn", plan: "free", allowedHosts: ["localhost"] })).status, 201);
    } finally {
      await loose.dispose();
    }
    const strict = await startPlatform({ persistDir: dir, seed: false });
    try {
      const a = admin(strict.url);
      const r = await a.put("px-local-2", proxyConfig({}));
      assertProblem(assert, r, 400, "invalid_field");
      assert.equal(r.json.field, "proxy.upstreamUrl");
      // A config stored while loopback was allowed is refused at dispatch too.
      const before = up.calls.length;
      const d = await getJson(`${strict.url}/t/px-local/json`);
      assertProblem(assert, d, 502, "upstream_host_refused");
      assert.ok(!d.text.includes("127.0.0.1"), "the upstream address is not revealed");
      // And the outbound Worker refuses loopback for function tenants.
      const e = await getJson(`${strict.url}/t/fn-local/fetch?url=${encodeURIComponent(`${up.url}/egress/echo`)}`);
      assert.equal(e.json.results[0].code, "egress_host_refused");
      assert.equal(up.calls.length, before);
    } finally {
      await strict.dispose();
    }
  });
});

describe("egress of function tenants", () => {
  const fetchVia = (slug, ...urls) => getJson(`${p.url}/t/${slug}/fetch?${urls.map((u) => `url=${encodeURIComponent(u)}`).join("&")}`);

  test("allowedHosts lets a tenant's fetch through; the outbound parameters do not leak", async () => {
    await api.put("fn-egress", { resourceType: "function", workerName: "demo-fn", plan: "free", allowedHosts: ["localhost", "api.example.com"] });
    const q = unique();
    const r = await fetchVia("fn-egress", `${up.url}/egress/echo?${q}`);
    assert.equal(r.status, 200, r.text);
    const [result] = r.json.results;
    assert.equal(result.status, 200, JSON.stringify(result));
    assert.equal(result.egress, "allowed");
    const [seen] = up.hits("/egress/echo", q);
    assert.ok(seen, "the upstream got the tenant's request");
    assert.equal(seen.headers["x-wfp-emulator-outbound"], undefined);
    assert.deepEqual(JSON.parse(r.headers.get("x-wfp-emulator-subrequests")), { total: 1, denied: 0 });
  });

  test("deny by default, and never back into the platform or to private addresses", async () => {
    await api.put("fn-egress", { resourceType: "function", workerName: "demo-fn", plan: "free", allowedHosts: ["localhost", "api.example.com"] });
    const port = new URL(p.url).port;
    const q = unique();
    const cases = [
      ["demo-fn", `${up.url}/egress/echo?${q}`, "egress_host_refused"],
      ["demo-fn", "https://api.example.com/", "egress_host_not_allowed"],
      ["fn-egress", "https://evil.example.org/", "egress_host_not_allowed"],
      ["fn-egress", `http://localhost:${port}/t/demo-fn/hello`, "egress_platform_refused"],
      ["fn-egress", `http://demo-fn.localhost:${port}/hello`, "egress_platform_refused"],
      ["fn-egress", "http://10.0.0.1/", "egress_host_refused"],
      ["fn-egress", "http://169.254.169.254/latest/meta-data/", "egress_host_refused"],
      ["fn-egress", "http://8.8.8.8/", "egress_ip_literal_refused"],
    ];
    for (const [slug, url, code] of cases) {
      const r = await fetchVia(slug, url);
      assert.equal(r.status, 200, r.text);
      const [result] = r.json.results;
      assert.equal(result.status, 403, `${slug} ${url}: ${JSON.stringify(result)}`);
      assert.equal(result.egress, "denied");
      assert.equal(result.code, code, `${slug} ${url}`);
    }
    assert.equal(up.hits("/egress/echo", q).length, 0, "no denied request reached the upstream");
  });

  test("each call's subrequests are counted (local emulator report)", async () => {
    await api.put("fn-egress-count", { resourceType: "function", workerName: "demo-fn", plan: "free", allowedHosts: ["localhost"] });
    const q = unique();
    const r = await fetchVia("fn-egress-count", `${up.url}/egress/echo?${q}`, "https://api.example.com/", `${up.url}/egress/echo?${q}&again`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.results.map((x) => x.egress), ["allowed", "denied", "allowed"]);
    assert.deepEqual(JSON.parse(r.headers.get("x-wfp-emulator-subrequests")), { total: 3, denied: 1 });
    assert.equal(up.hits("/egress/echo", q).length, 2);
    const quiet = await fetch(`${p.url}/t/fn-egress-count/hello`);
    assert.equal(quiet.status, 200);
    assert.deepEqual(JSON.parse(quiet.headers.get("x-wfp-emulator-subrequests")), { total: 0, denied: 0 });
  });
});

describe("the outbound Worker's production path: parameters from env only", () => {
  // The outbound Worker as deployed reads tenant, allowedHosts and callId from env (Workers
  // for Platforms' outbound parameters) and must ignore the emulator's header, which any
  // tenant's code can set. "claw-egress-env" is that mode (scripts/local/runtime.mjs,
  // egressProbe: allowedHosts ["localhost"] in env), reached by the fetches of
  // tests/fakes/egress_probe.js, a tenant's code that forges the header.
  const forged = JSON.stringify({ tenant: "forge-test", allowedHosts: ["localhost", "evil.example.org", "*.example.com"], callId: "forged" });
  const probe = (target, { forge, via } = {}) =>
    getJson(`${p.directUrls[EGRESS_PROBE_WORKER]}/?url=${encodeURIComponent(target)}${via ? `&via=${via}` : ""}`, {
      headers: forge ? { "x-wfp-emulator-outbound": forge } : {},
    });

  test("a forged parameter header cannot widen allowedHosts", async () => {
    assert.deepEqual(EGRESS_PROBE_PARAMS.allowedHosts, ["localhost"]);
    for (const target of ["https://evil.example.org/", "https://api.example.com/v1"]) {
      for (const forge of [undefined, forged]) {
        const r = await probe(target, { forge });
        assert.equal(r.status, 200, r.text);
        assert.deepEqual([r.json.status, r.json.egress, r.json.code], [403, "denied", "egress_host_not_allowed"], `${target} forged=${!!forge}`);
      }
    }
  });

  test("control: the same forged header does widen the emulator-mode instance, which reads it", async () => {
    // Proves the forgery above is well formed: where the header is read (local emulator mode
    // only), it lets evil.example.org past the allowlist (the fetch then fails: no network).
    const r = await probe("https://evil.example.org/", { forge: forged, via: "emulator" });
    assert.equal(r.status, 200, r.text);
    assert.notEqual(r.json.status, 403, JSON.stringify(r.json));
    const plain = await probe("https://evil.example.org/", { via: "emulator" });
    assert.deepEqual([plain.json.status, plain.json.code], [403, "egress_host_not_allowed"], "no header: deny by default");
  });

  test("a host in env's allowedHosts passes, without the emulator's header", async () => {
    const q = unique();
    const r = await probe(`${up.url}/egress/echo?${q}`, { forge: forged });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual([r.json.status, r.json.egress], [200, "allowed"], JSON.stringify(r.json));
    const [seen] = up.hits("/egress/echo", q);
    assert.ok(seen, "the upstream got the request");
    assert.equal(seen.headers["x-wfp-emulator-outbound"], undefined, "the header is removed before the request goes on");
  });
});
