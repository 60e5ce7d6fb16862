// Paid MCP tools: the official MCP TypeScript SDK (@modelcontextprotocol/sdk, Streamable
// HTTP) lists the marketplace's tools and calls them; a paid tool answers with x402's MCP
// payment-required result; the official x402 client (@x402/core + @x402/evm) signs the
// payment, sent in _meta["x402/payment"], settled on the local chain by the official
// facilitator logic; the receipt comes back in _meta["x402/payment-response"]. The same
// payment replayed over HTTP or MCP is never charged twice (one ledger entry, one transfer).

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { x402Client } from "@x402/core/client";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { privateKeyToAccount } from "viem/accounts";
import { startPlatform, admin, getJson } from "./harness.mjs";
import { startChainAndFacilitator } from "../../scripts/local/payments.mjs";

const PAYOUT_TOKEN = "mcp-payout-token";
const SLUG = "mcp-paid";
const TOOL = `${SLUG}__hello`;

async function connect(base) {
  const client = new Client({ name: "claw-e2e", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`)));
  return client;
}

function payer(pay, account) {
  const c = new x402Client();
  registerExactEvmScheme(c, { signer: privateKeyToAccount(account.privateKey) });
  c.setSpendControls({ allowedAssets: [{ network: pay.network, asset: pay.token, maxAmountPerPayment: "1000" }] });
  return c;
}

async function journal(base, slug) {
  const page = await getJson(`${base}/__platform/ledger/${slug}/entries?limit=500`, {
    headers: { authorization: `Bearer ${PAYOUT_TOKEN}` },
  });
  assert.equal(page.status, 200, page.text);
  return page.json.entries;
}

const b64 = (v) => Buffer.from(JSON.stringify(v), "utf8").toString("base64");

/// One JSON-RPC message posted as it is (for what no SDK would send).
async function rpc(base, body, headers = {}) {
  const res = await fetch(`${base}/mcp`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json, text };
}

describe("paid MCP tools", () => {
  let pay;
  let p;
  let client;
  before(async () => {
    pay = await startChainAndFacilitator();
    p = await startPlatform({ vars: { FACILITATOR_URL: pay.facilitatorUrl, PLATFORM_PAYOUT_TOKEN: PAYOUT_TOKEN } });
    const schema = { type: "object", properties: { name: { type: "string" } }, required: ["name"] };
    const put = await admin(p.url).put(SLUG, {
      resourceType: "function",
      workerName: "demo-fn",
      plan: "pro",
      price: pay.tenantPrice({ amountAtomic: "1000", description: "paid greeting" }),
      discovery: { serviceName: "MCP greeter", routes: [{ route: "/hello", method: "GET", query: schema }] },
      mcpTools: [
        { name: "hello", description: "Say hello", inputSchema: schema, route: "/hello", method: "GET" },
        { name: "status", description: "Status", inputSchema: { type: "object" }, route: "/status", method: "GET" },
      ],
    });
    assert.equal(put.status, 201, put.text);
    client = await connect(p.url);
  });
  after(async () => {
    await client?.close();
    await p?.dispose();
    await pay?.stop();
  });

  test("initialize negotiates the protocol version; tools/list shows the free and the paid tools", async () => {
    assert.equal(client.getServerVersion().name, "402claw");
    assert.ok(client.getServerCapabilities().tools);
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    assert.deepEqual(names, ["search_marketplace", TOOL, `${SLUG}__status`]);
    const hello = tools.find((t) => t.name === TOOL);
    assert.deepEqual(hello.inputSchema.required, ["name"]);
    assert.match(hello.description, /paid per call with x402: 1000 atomic units/);
    // An older client gets its own version back; an unknown one gets ours.
    const old = await rpc(p.url, { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2024-11-05", capabilities: {}, clientInfo: { name: "x", version: "1" } } });
    assert.equal(old.json.result.protocolVersion, "2024-11-05");
    const odd = await rpc(p.url, { jsonrpc: "2.0", id: 2, method: "initialize", params: { protocolVersion: "1999-01-01", capabilities: {}, clientInfo: { name: "x", version: "1" } } });
    assert.equal(odd.json.result.protocolVersion, "2025-11-25");
  });

  test("the free search tool answers without payment", async () => {
    const r = await client.callTool({ name: "search_marketplace", arguments: { query: "greeter" } });
    assert.equal(r.isError, false);
    assert.equal(r.structuredContent.x402Version, 2);
    assert.ok(r.structuredContent.resources.some((i) => i.resource === `${p.url}/t/${SLUG}/hello`));
  });

  test("paid tool: payment required, then paid with the official x402 client, receipt returned; replays charge nothing", async () => {
    const entriesBefore = (await journal(p.url, SLUG)).length;
    const payTo = pay.accounts.creator.address;
    const transfersBefore = (await pay.chain.transfersTo(payTo)).length;

    const unpaid = await client.callTool({ name: TOOL, arguments: { name: "agent" } });
    assert.equal(unpaid.isError, true);
    const required = unpaid.structuredContent;
    assert.equal(required.x402Version, 2);
    assert.deepEqual(JSON.parse(unpaid.content[0].text), required);
    assert.equal(required.resource.url, `${p.url}/t/${SLUG}/hello`);
    assert.equal(required.accepts[0].amount, "1000");
    assert.ok(required.extensions.bazaar, "the tool's route is described");

    const account = pay.accounts.payers[0];
    const payment = await payer(pay, account).createPaymentPayload(required);
    const paid = await client.callTool({ name: TOOL, arguments: { name: "agent" }, _meta: { "x402/payment": payment } });
    assert.equal(paid.isError, false, JSON.stringify(paid));
    assert.deepEqual(JSON.parse(paid.content[0].text), { hello: "agent" });
    assert.deepEqual(paid.structuredContent, { hello: "agent" });
    const receipt = paid._meta["x402/payment-response"];
    assert.equal(receipt.success, true);
    assert.match(receipt.transaction, /^0x[0-9a-f]{64}$/);
    assert.equal(receipt.payer.toLowerCase(), account.address.toLowerCase());
    assert.equal(receipt.network, pay.network);

    const settled = (await journal(p.url, SLUG)).filter((e) => e.kind === "payment_settled");
    assert.equal(settled.length, 1);
    assert.equal(settled[0].txRef, receipt.transaction);

    // The same payment over HTTP: the kept answer, not a second execution or charge.
    const replay = await fetch(`${p.url}/t/${SLUG}/hello?name=agent`, { headers: { "PAYMENT-SIGNATURE": b64(payment) } });
    const replayText = await replay.text();
    assert.equal(replay.status, 200, replayText);
    assert.equal(replay.headers.get("x-claw-replay"), "true");
    assert.deepEqual(JSON.parse(replayText), { hello: "agent" });
    // And over MCP again: the kept answer with the same receipt.
    const again = await client.callTool({ name: TOOL, arguments: { name: "agent" }, _meta: { "x402/payment": payment } });
    assert.equal(again.isError, false, JSON.stringify(again));
    assert.equal(again._meta["x402/payment-response"].transaction, receipt.transaction);

    const after = await journal(p.url, SLUG);
    assert.equal(after.length, entriesBefore + 2, "one reserved + one settled entry, for one payment");
    assert.equal(after.filter((e) => e.kind === "payment_settled").length, 1);
    assert.equal((await pay.chain.transfersTo(payTo)).length, transfersBefore + 1, "one transfer on chain");
  });

  test("a payment made for another tool is refused before anything is charged", async () => {
    const entriesBefore = (await journal(p.url, SLUG)).length;
    const unpaid = await client.callTool({ name: TOOL, arguments: { name: "x" } });
    const payment = await payer(pay, pay.accounts.payers[1]).createPaymentPayload(unpaid.structuredContent);
    const r = await client.callTool({ name: `${SLUG}__status`, arguments: {}, _meta: { "x402/payment": payment } });
    assert.equal(r.isError, true);
    assert.match(r.content[0].text, /not for this tool call/);
    assert.equal((await journal(p.url, SLUG)).length, entriesBefore, "nothing reserved");
  });

  test("a tool answer of the tenant that fails is not charged", async () => {
    const entriesBefore = await journal(p.url, SLUG);
    const unpaid = await client.callTool({ name: `${SLUG}__status`, arguments: { code: 503 } });
    assert.equal(unpaid.isError, true);
    const payment = await payer(pay, pay.accounts.payers[2]).createPaymentPayload(unpaid.structuredContent);
    const r = await client.callTool({ name: `${SLUG}__status`, arguments: { code: 503 }, _meta: { "x402/payment": payment } });
    assert.equal(r.isError, true);
    assert.match(r.content[0].text, /status 503/);
    const after = await journal(p.url, SLUG);
    assert.equal(after.filter((e) => e.kind === "payment_settled").length, entriesBefore.filter((e) => e.kind === "payment_settled").length);
  });

  test("bad input: JSON-RPC errors with clear messages, never a crash", async () => {
    const parse = await rpc(p.url, "{nope");
    assert.equal(parse.status, 200);
    assert.equal(parse.json.error.code, -32700);
    assert.equal((await rpc(p.url, "[]")).json.error.code, -32600);
    assert.equal((await rpc(p.url, { jsonrpc: "1.0", id: 1, method: "ping" })).json.error.code, -32600);
    const unknown = await rpc(p.url, { jsonrpc: "2.0", id: 3, method: "resources/list" });
    assert.equal(unknown.json.error.code, -32601);
    assert.equal(unknown.json.id, 3);
    const call = (params) => rpc(p.url, { jsonrpc: "2.0", id: 4, method: "tools/call", params });
    assert.match((await call({ name: "nope__x", arguments: {} })).json.error.message, /unknown tool/);
    assert.match((await call({ name: `${SLUG}__nope`, arguments: {} })).json.error.message, /unknown tool/);
    assert.match((await call({ name: TOOL, arguments: {} })).json.error.message, /missing required argument "name"/);
    assert.match((await call({ name: TOOL, arguments: { name: 5 } })).json.error.message, /must be of type string/);
    assert.match((await call({ name: TOOL, arguments: { name: "x".repeat(20_000) } })).json.error.message, /at most 16384/);
    assert.equal((await call({ name: TOOL, arguments: [] })).json.error.code, -32602);
    const badPayment = await call({ name: TOOL, arguments: { name: "x" }, _meta: { "x402/payment": "not a payload" } });
    assert.equal(badPayment.json.result.isError, true);
    const huge = await rpc(p.url, JSON.stringify({ jsonrpc: "2.0", id: 5, method: "ping", params: { pad: "x".repeat(70_000) } }));
    assert.equal(huge.status, 413);
    assert.equal((await rpc(p.url, { jsonrpc: "2.0", method: "notifications/initialized" })).status, 202);
    assert.equal((await rpc(p.url, { jsonrpc: "2.0", id: 6, method: "ping" }, { "mcp-protocol-version": "1990-01-01" })).status, 400);
    assert.equal((await fetch(`${p.url}/mcp`)).status, 405);
    const page = await rpc(p.url, { jsonrpc: "2.0", id: 7, method: "tools/list", params: { cursor: "999" } });
    assert.equal(page.json.error.code, -32602);
  });
});
