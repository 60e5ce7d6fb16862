// x402 discovery (Bazaar): a tenant's 402 carries the bazaar extension built from its config,
// and GET /discovery/resources and /discovery/search list every active paid tenant in the
// facilitator discovery format. Checked with @x402/extensions' own client (withBazaar over
// @x402/core's HTTPFacilitatorClient) and validators; paid with the official v2 client.

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { HTTPFacilitatorClient } from "@x402/core/http";
import {
  withBazaar,
  validateDiscoveryExtension,
  validateDiscoveryExtensionSpec,
  isValidRouteTemplate,
  isValidServiceName,
  isValidIconUrl,
  sanitizeTags,
} from "@x402/extensions/bazaar";
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { startPlatform, admin, getJson, assertProblem } from "./harness.mjs";
import { pricedTenant, payer, unb64, PAY_TO } from "./x402_client.mjs";
import { DEV_ANALYTICS_TOKEN } from "../../scripts/local/runtime.mjs";

const OTHER_PAY_TO = "0x3333333333333333333333333333333333333333";

/// A paid tenant described for agents: two routes and one MCP tool.
export function describedTenant(overrides = {}) {
  return {
    ...pricedTenant(),
    discovery: {
      serviceName: "Greeter",
      description: "Greets whoever asks",
      tags: ["greeting", "demo"],
      iconUrl: "https://icons.example.com/greeter.png",
      routes: [
        {
          route: "/hello",
          method: "GET",
          description: "A greeting by name",
          query: { type: "object", properties: { name: { type: "string" } }, required: ["name"] },
          example: { name: "agent" },
          outputExample: { hello: "agent" },
        },
        {
          route: "/echo/:word",
          method: "POST",
          body: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
          example: { text: "hi" },
        },
      ],
    },
    mcpTools: [
      {
        name: "hello",
        description: "Say hello",
        inputSchema: { type: "object", properties: { name: { type: "string" } }, required: ["name"] },
        route: "/hello",
        method: "GET",
      },
    ],
    ...overrides,
  };
}

function bazaarClient(base) {
  return withBazaar(new HTTPFacilitatorClient({ url: base })).extensions.bazaar;
}

/// Polls `check` (the isolate caches the catalog for 10 s) until it holds.
async function eventually(check, timeoutMs = 15_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const last = await check();
    if (last === true || Date.now() > end) return last;
    await new Promise((r) => setTimeout(r, 500));
  }
}

function assertItemShape(item) {
  assert.equal(typeof item.resource, "string");
  assert.ok(["http", "mcp"].includes(item.type));
  assert.equal(item.x402Version, 2);
  assert.ok(Array.isArray(item.accepts) && item.accepts.length === 1);
  const a = item.accepts[0];
  for (const k of ["scheme", "network", "amount", "asset", "payTo", "maxTimeoutSeconds", "extra"]) assert.ok(k in a, k);
  assert.ok(!Number.isNaN(Date.parse(item.lastUpdated)), item.lastUpdated);
  if (item.serviceName !== undefined) assert.ok(isValidServiceName(item.serviceName));
  if (item.iconUrl !== undefined) assert.ok(isValidIconUrl(item.iconUrl));
  if (item.tags !== undefined) assert.deepEqual(sanitizeTags(item.tags), item.tags);
  const bazaar = item.extensions?.bazaar;
  if (bazaar) {
    assert.deepEqual(validateDiscoveryExtensionSpec(bazaar), { valid: true }, item.resource);
    assert.deepEqual(validateDiscoveryExtension(bazaar), { valid: true }, item.resource);
    if (bazaar.routeTemplate !== undefined) assert.ok(isValidRouteTemplate(bazaar.routeTemplate));
  }
  assert.equal(typeof item.quality.l7DaysTotalCalls, "number");
  assert.equal(typeof item.quality.l7DaysUniquePayers, "number");
}

describe("x402 discovery", () => {
  let p;
  let a;
  before(async () => {
    p = await startPlatform({ vars: { ALLOW_LOCAL_X402_VERIFICATION: "true" } });
    a = admin(p.url);
    assert.equal((await a.put("greeter", describedTenant())).status, 201);
    assert.equal((await a.put("plain-paid", pricedTenant({ payTo: OTHER_PAY_TO }))).status, 201);
  });
  after(async () => {
    await p?.dispose();
  });

  test("a described route's 402 carries a bazaar extension @x402/extensions validates", async () => {
    const res = await fetch(`${p.url}/t/greeter/echo/howdy`, { method: "POST", body: "{}" });
    assert.equal(res.status, 402);
    const required = unb64(res.headers.get("payment-required"));
    assert.equal(required.resource.serviceName, "Greeter");
    assert.deepEqual(required.resource.tags, ["greeting", "demo"]);
    assert.equal(required.resource.iconUrl, "https://icons.example.com/greeter.png");
    const bazaar = required.extensions.bazaar;
    assert.deepEqual(validateDiscoveryExtension(bazaar), { valid: true });
    assert.equal(bazaar.routeTemplate, "/echo/:word");
    assert.deepEqual(bazaar.info.input, {
      type: "http",
      method: "POST",
      bodyType: "json",
      body: { text: "hi" },
      pathParams: { word: "howdy" },
    });
    assert.ok(required.extensions["payment-identifier"], "the other extension stays");
    // An undescribed route of the same tenant: no bazaar, still payable.
    const other = await fetch(`${p.url}/t/greeter/status`);
    assert.equal(other.status, 402);
    assert.equal(unb64(other.headers.get("payment-required")).extensions.bazaar, undefined);
  });

  test("the official client pays a described route (it echoes the bazaar extension)", async () => {
    const client = new x402Client();
    registerExactEvmScheme(client, { signer: payer });
    const res = await wrapFetchWithPayment(fetch, client)(`${p.url}/t/greeter/hello?name=bazaar`);
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { hello: "bazaar" });
  });

  test("GET /discovery/resources lists every active paid tenant, validated by @x402/extensions", async () => {
    const list = await bazaarClient(p.url).listResources({ limit: 100 });
    assert.equal(list.x402Version, 2);
    const resources = list.items.map((i) => `${i.type} ${i.resource}`).sort();
    assert.deepEqual(resources, [
      `http ${p.url}/t/greeter/echo/:word`,
      `http ${p.url}/t/greeter/hello`,
      `http ${p.url}/t/plain-paid/`,
      `mcp ${p.url}/mcp`,
    ]);
    assert.deepEqual(list.pagination, { limit: 100, offset: 0, total: 4 });
    for (const item of list.items) assertItemShape(item);
    const hello = list.items.find((i) => i.resource.endsWith("/greeter/hello"));
    assert.equal(hello.description, "A greeting by name");
    assert.equal(hello.accepts[0].amount, "1000");
    assert.equal(hello.accepts[0].payTo.toLowerCase(), PAY_TO.toLowerCase());
    const tool = list.items.find((i) => i.type === "mcp");
    assert.equal(tool.extensions.bazaar.info.input.toolName, "greeter__hello");
    // Free tenants are not listed.
    assert.ok(!list.items.some((i) => i.resource.includes("/t/demo-fn/")));
    const res = await fetch(`${p.url}/discovery/resources`);
    assert.match(res.headers.get("cache-control"), /^public, max-age=\d+$/);
  });

  test("filters and pages", async () => {
    const b = bazaarClient(p.url);
    const total = async (params) => (await b.listResources(params)).pagination.total;
    assert.equal(await total({ type: "mcp" }), 1);
    assert.equal(await total({ payTo: OTHER_PAY_TO }), 1);
    assert.equal(await total({ network: "eip155:84532" }), 4);
    assert.equal(await total({ network: "eip155:8453" }), 0);
    assert.equal(await total({ scheme: "exact", extensions: "bazaar" }), 3);
    const page = await b.listResources({ limit: 2, offset: 3 });
    assert.equal(page.items.length, 1);
    assert.deepEqual(page.pagination, { limit: 2, offset: 3, total: 4 });
    for (const q of ["limit=0", "limit=1000", "offset=-2", "payTo=0xnope", "type=grpc", "network=mars"]) {
      assertProblem(assert, await getJson(`${p.url}/discovery/resources?${q}`), 400, "invalid_query");
    }
    assertProblem(assert, await getJson(`${p.url}/discovery/resources`, { method: "POST" }), 405, "method_not_allowed");
  });

  test("GET /discovery/search finds tenants by their words", async () => {
    const b = bazaarClient(p.url);
    const found = await b.search({ query: "greeting name", limit: 10 });
    assert.equal(found.x402Version, 2);
    assert.equal(found.partialResults, false);
    assert.deepEqual(found.resources.map((r) => r.resource), [`${p.url}/t/greeter/hello`]);
    for (const r of found.resources) assertItemShape(r);
    const all = await b.search({ query: "greeter", limit: 2 });
    assert.equal(all.resources.length, 2);
    assert.equal(typeof all.pagination.cursor, "string");
    const rest = await b.search({ query: "greeter", limit: 2, cursor: all.pagination.cursor });
    assert.equal(rest.resources.length, 1);
    assert.equal(rest.pagination.cursor, null);
    assert.equal((await b.search({ query: "no-such-thing" })).resources.length, 0);
    assertProblem(assert, await getJson(`${p.url}/discovery/search`), 400, "invalid_query");
  });

  test("quality signals come from the trending windows", async () => {
    const client = new x402Client();
    registerExactEvmScheme(client, { signer: payer });
    const res = await wrapFetchWithPayment(fetch, client)(`${p.url}/t/plain-paid/hello?name=q`);
    assert.equal(res.status, 200);
    const analytics = { authorization: `Bearer ${DEV_ANALYTICS_TOKEN}` };
    const ok = await eventually(async () => {
      await fetch(`${p.url}/__platform/usage/plain-paid/rollup`, { method: "POST", headers: analytics });
      const list = await bazaarClient(p.url).listResources({ payTo: OTHER_PAY_TO });
      const q = list.items[0]?.quality;
      return (q?.l7DaysTotalCalls === 1 && q.l7DaysUniquePayers === 1 && !Number.isNaN(Date.parse(q.lastCalledAt))) || q;
    }, 25_000);
    assert.equal(ok, true);
  });

  test("a suspended tenant disappears from discovery, and comes back when resumed", async () => {
    const listed = async () => (await bazaarClient(p.url).listResources({ limit: 100 })).items.some((i) => i.resource.includes("/t/greeter/"));
    assert.equal(await listed(), true);
    assert.equal((await a.suspend("greeter")).status, 200);
    assert.equal(await eventually(async () => !(await listed())), true);
    const search = await bazaarClient(p.url).search({ query: "greeter" });
    assert.equal(search.resources.length, 0);
    assert.equal((await a.resume("greeter")).status, 200);
    assert.equal(await eventually(listed), true);
  });

  test("discovery descriptions are validated when saved", async () => {
    const bad = async (patch, field) => {
      const res = await a.put("bad-desc", describedTenant(patch));
      assertProblem(assert, res, 400, "invalid_field");
      assert.equal(res.json.field, field, res.text);
    };
    const d = describedTenant().discovery;
    await bad({ discovery: { ...d, routes: [{ route: "/a/../b", method: "GET" }] } }, "discovery.routes.route");
    await bad({ discovery: { ...d, routes: [{ route: "/a/%2e%2e/b", method: "GET" }] } }, "discovery.routes.route");
    await bad({ discovery: { ...d, routes: [{ route: "/http://x", method: "GET" }] } }, "discovery.routes.route");
    await bad({ discovery: { ...d, iconUrl: "https://169.254.169.254/icon.png" } }, "discovery.iconUrl");
    await bad({ discovery: { ...d, iconUrl: "https://127.1/icon.png" } }, "discovery.iconUrl");
    await bad({ discovery: { ...d, serviceName: "x".repeat(33) } }, "discovery.serviceName");
    await bad({ discovery: { ...d, routes: [{ route: "/q", method: "GET", query: { $ref: "https://evil.example.com/s.json" } }] } }, "discovery.routes.query");
    await bad({ discovery: { ...d, routes: [{ route: "/q", method: "GET", query: { description: "x".repeat(5000) } }] } }, "discovery.routes.query");
    const tool = describedTenant().mcpTools[0];
    await bad({ mcpTools: [tool, tool] }, "mcpTools.name");
    await bad({ mcpTools: [{ ...tool, name: "has space" }] }, "mcpTools.name");
    await bad({ mcpTools: [{ ...tool, inputSchema: { type: "string" } }] }, "mcpTools.inputSchema");
    assert.equal((await a.get("bad-desc")).status, 404, "nothing was stored");
  });
});
