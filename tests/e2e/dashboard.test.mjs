// The web dashboard in a real headless Chromium (the system's, driven by playwright-core)
// against a local platform: paid calls settled on the local chain by the official
// facilitator, creator keys, the operator's token. What a person sees is compared with
// what the API answers; console errors fail the test; screenshots of each view go to
// tests/e2e/screenshots/ (git-ignored). Also prints the page weight of a first load.

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { startPlatform } from "./harness.mjs";
import { startChainAndFacilitator, paidFetch } from "../../scripts/local/payments.mjs";
import { ROOT } from "../../scripts/local/runtime.mjs";
import { formatAtomic, sumAtomic } from "../../src/dashboard/web/src/money.js";

const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const SHOTS = path.join(ROOT, "tests/e2e/screenshots");
// One operator token for every route family (admin, payout, operator, analytics).
const OPERATOR = "dash-operator-token";
const TOKENS = Object.fromEntries(
  ["PLATFORM_ADMIN_TOKEN", "PLATFORM_PAYOUT_TOKEN", "PLATFORM_OPERATOR_TOKEN", "PLATFORM_ANALYTICS_TOKEN"].map((n) => [n, OPERATOR]),
);
const PRICE_A = "2500";
const PRICE_B = "7000";

test("amounts are formatted exactly from atomic strings", () => {
  assert.equal(formatAtomic("0"), "0");
  assert.equal(formatAtomic("1000"), "0.001");
  assert.equal(formatAtomic("2500"), "0.0025");
  assert.equal(formatAtomic("1000000"), "1");
  assert.equal(formatAtomic("1234567890123456789012345678"), "1,234,567,890,123,456,789,012.345678");
  assert.equal(formatAtomic("9007199254740993"), "9,007,199,254.740993", "beyond 2^53: exact");
  assert.equal(formatAtomic("-1"), "?");
  assert.equal(formatAtomic("1e6"), "?");
  assert.equal(sumAtomic(["9007199254740993", "1"]), "9007199254740994");
});

describe("the dashboard in Chromium", () => {
  let p, pay, browser;
  const keys = {};
  const consoleErrors = [];

  const api = async (pathAndQuery, { token = OPERATOR, method = "GET", body } = {}) => {
    const res = await fetch(`${p.url}/__platform${pathAndQuery}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null, text };
  };

  /** A page that records console errors and failed requests; `expect401` tolerates those. */
  async function newPage({ width = 1200, height = 900, token } = {}) {
    const context = await browser.newContext({ viewport: { width, height } });
    const page = await context.newPage();
    page.on("console", (m) => m.type() === "error" && consoleErrors.push(`${page.url()}: ${m.text()} ${m.location()?.url ?? ""}`));
    page.on("pageerror", (e) => consoleErrors.push(`${page.url()}: ${e.message}`));
    if (token) {
      await page.goto(`${p.url}/__platform/dashboard/#/signin`);
      await signIn(page, token);
    }
    return page;
  }

  async function signIn(page, token) {
    await page.fill("#token", token);
    await page.click("form.signin button[type=submit]");
    await page.waitForSelector("#tenants");
  }

  const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  before(async () => {
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(`Chromium is missing at ${CHROMIUM}: run scripts/setup (it installs Debian's chromium), or set CHROMIUM_BIN`);
    }
    fs.mkdirSync(SHOTS, { recursive: true });
    pay = await startChainAndFacilitator();
    p = await startPlatform({ seed: false, vars: { ...TOKENS, FACILITATOR_URL: pay.facilitatorUrl } });
    const creatorA = pay.accounts.creator.address;
    const creatorB = pay.accounts.treasury.address;
    const tenants = {
      "alpha-api": { resourceType: "function", workerName: "demo-fn", plan: "pro", price: pay.tenantPrice({ amountAtomic: PRICE_A, payTo: creatorA, description: "alpha's search" }), rateLimit: { perCaller: "100/60s", burst: 50 } },
      "alpha-two": { resourceType: "function", workerName: "demo-fn", plan: "free" },
      "beta-api": { resourceType: "function", workerName: "demo-fn", plan: "business", price: pay.tenantPrice({ amountAtomic: PRICE_B, payTo: creatorB, description: "beta's data" }) },
      "gamma-free": { resourceType: "function", workerName: "demo-fn", plan: "free" },
    };
    for (const [slug, config] of Object.entries(tenants)) {
      const r = await api(`/tenants/${slug}`, { method: "PUT", body: config });
      assert.equal(r.status, 201, r.text);
    }
    // Paid calls with the official client, from two payers; one unpaid call (a 402).
    const [p0, p1] = pay.accounts.payers;
    for (const [payer, slug, n, price] of [[p0, "alpha-api", 2, PRICE_A], [p1, "alpha-api", 1, PRICE_A], [p1, "beta-api", 2, PRICE_B]]) {
      const f = paidFetch(pay, payer.account, { maxAmountAtomic: price });
      for (let i = 0; i < n; i++) {
        const res = await f(`${p.url}/t/${slug}/hello?name=${slug}${i}`);
        assert.equal(res.status, 200, await res.clone().text());
      }
    }
    assert.equal((await fetch(`${p.url}/t/alpha-api/hello`)).status, 402);
    for (let i = 0; i < 4; i++) assert.equal((await fetch(`${p.url}/t/gamma-free/hello?i=${i}`)).status, 200);
    // Usage events arrive after the answers (a queue for served calls, the ledger's alarm
    // for settled ones): wait until every call above has its event, then roll up.
    // (A paid call made by the official client is a 402 first, then a settled call.)
    const expected = [["alpha-api", "&stage=settled", 3], ["beta-api", "&stage=settled", 2], ["gamma-free", "", 4]];
    const deadline = Date.now() + 30_000;
    for (const [slug, stage, n] of expected) {
      let seen = 0;
      while (Date.now() < deadline) {
        const r = await api(`/events?tenant=${slug}${stage}&limit=500`);
        seen = r.json?.events?.length ?? 0;
        if (seen >= n) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.ok(seen >= n, `${slug}: ${seen} usage events for ${n} calls`);
    }
    // Rankings roll up about 30 s after calls; now, for the test.
    for (const slug of Object.keys(tenants)) {
      const r = await api(`/usage/${slug}/rollup`, { method: "POST" });
      assert.equal(r.status, 200, r.text);
    }
    for (const [name, scope] of [["a", ["alpha-api", "alpha-two"]], ["b", ["beta-api"]]]) {
      const r = await api("/keys", { method: "POST", body: { tenants: scope, label: `creator ${name}`, expiresAt: null } });
      assert.equal(r.status, 201, r.text);
      keys[name] = r.json;
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  });

  after(async () => {
    await browser?.close();
    await p?.dispose();
    await pay?.stop();
  });

  test("the page is served with a strict CSP, from the platform itself", async () => {
    const res = await fetch(`${p.url}/__platform/dashboard/`);
    assert.equal(res.status, 200);
    const csp = res.headers.get("content-security-policy");
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self';/);
    assert.doesNotMatch(csp, /unsafe/);
    assert.equal(res.headers.get("set-cookie"), null);
    const html = await res.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)/, "no inline script");
    assert.doesNotMatch(html, /style=|<style/, "no inline style");
    assert.doesNotMatch(html, /https?:\/\//, "nothing from another origin");
    // A tenant's host or path never reaches the dashboard's files, and odd paths are refused.
    assert.equal((await fetch(`${p.url}/__platform/dashboard/..%2f..%2fwrangler.toml`)).status, 404);
    assert.equal((await fetch(`${p.url}/app.js`)).status, 404);
    const redirect = await fetch(`${p.url}/__platform/dashboard`, { redirect: "manual" });
    assert.equal(redirect.status, 308);
  });

  test("the marketplace shows the trending APIs with price, calls and payers, and its example pays", async () => {
    const page = await newPage();
    // Page weight: every byte transferred on a first load (cold cache), HTML, JS, CSS, API.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Network.enable");
    let transferred = 0;
    const byUrl = [];
    const urls = new Map();
    cdp.on("Network.requestWillBeSent", (e) => urls.set(e.requestId, e.request.url));
    cdp.on("Network.loadingFinished", (e) => {
      transferred += e.encodedDataLength;
      byUrl.push([urls.get(e.requestId), e.encodedDataLength]);
    });
    await page.goto(`${p.url}/__platform/dashboard/`);
    await page.waitForSelector("li.market-entry[data-tenant=gamma-free]");
    const top = (await api("/trending?window=24h&limit=20")).json.entries;
    const shown = await page.$$eval("li.market-entry", (els) =>
      els.map((el) => ({
        tenant: el.dataset.tenant,
        calls: el.querySelector("[data-field=calls]").textContent,
        payers: el.querySelector("[data-field=payers]").textContent,
        revenue: el.querySelector("[data-field=revenue]").title,
        price: el.querySelector(".price").title || el.querySelector(".price").textContent,
      })),
    );
    assert.deepEqual(shown.map((s) => s.tenant), top.map((e) => e.tenant));
    assert.deepEqual(new Set(top.map((e) => e.tenant)), new Set(["alpha-api", "beta-api", "gamma-free"]));
    for (const e of top) {
      const s = shown.find((x) => x.tenant === e.tenant);
      assert.equal(s.calls, String(e.calls));
      assert.equal(s.payers, String(e.payers));
      assert.equal(s.revenue, `${e.revenueAtomic} atomic units`);
    }
    assert.equal(shown.find((s) => s.tenant === "alpha-api").calls, "3");
    assert.equal(shown.find((s) => s.tenant === "alpha-api").payers, "2");
    assert.match(shown.find((s) => s.tenant === "alpha-api").price, new RegExp(`^${PRICE_A} atomic units`));
    assert.equal(shown.find((s) => s.tenant === "gamma-free").price, "free");
    const kb = (transferred / 1024).toFixed(1);
    console.log(`# page weight, first load of the marketplace: ${transferred} bytes (${kb} KiB) transferred`);
    for (const [u, n] of byUrl) console.log(`#   ${n} ${u.replace(p.url, "")}`);
    await shot(page, "marketplace");

    // The copy-paste example, as shown, pays one call with the official client.
    await page.click("li.market-entry[data-tenant=alpha-api] summary");
    const example = await page.textContent("li.market-entry[data-tenant=alpha-api] pre.example");
    assert.match(example, /@x402\/fetch/);
    const file = path.join(ROOT, ".state", `dashboard-example-${process.pid}.mjs`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, example);
    try {
      const payer = pay.accounts.payers[2];
      const { stdout } = await promisify(execFile)(process.execPath, [file], { env: { ...process.env, PRIVATE_KEY: payer.privateKey } });
      assert.match(stdout, /^200 \{"api":"demo-fn"/, stdout);
    } finally {
      fs.rmSync(file, { force: true });
    }
    for (const w of ["1h", "7d"]) {
      await page.click(`.tabs a[href="#/market/${w}"]`);
      await page.waitForSelector(`.tabs a[aria-selected=true][href="#/market/${w}"]`);
      await page.waitForSelector("li.market-entry, p.state.empty");
    }
    await page.context().close();
  });

  test("a creator signs in and sees exactly their own tenants, with the API's numbers", async () => {
    const page = await newPage();
    await page.goto(`${p.url}/__platform/dashboard/#/signin`);
    await shot(page, "signin");
    await signIn(page, keys.a.key);
    const listed = await page.$$eval("#tenants a[data-tenant]", (els) => els.map((e) => e.dataset.tenant));
    assert.deepEqual(listed, ["alpha-api", "alpha-two"]);
    assert.doesNotMatch(await page.textContent("main"), /beta-api|gamma-free/);
    assert.equal(await page.evaluate(() => document.cookie), "");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("claw.token")), keys.a.key);
    await shot(page, "creator-tenants");

    await page.click("#tenants a[data-tenant=alpha-api]");
    await page.waitForSelector("#earnings");
    await page.waitForSelector("#calls");
    await page.waitForSelector("#ledger");
    await page.waitForSelector("#tail");
    await page.waitForSelector("#settings");
    const earnings = (await api("/ledger/alpha-api/earnings?days=30", { token: keys.a.key })).json;
    for (const f of ["gross", "fees", "net", "available"]) {
      const title = await page.getAttribute(`#earnings [data-field=${f}] .amount`, "title");
      assert.equal(title, `${earnings[f]} atomic units`, f);
      assert.equal(await page.textContent(`#earnings [data-field=${f}] .amount`), formatAtomic(earnings[f]), f);
    }
    // Three paid calls here, and the marketplace example's.
    assert.ok(earnings.settledCount >= 3);
    assert.equal(earnings.gross, String(BigInt(earnings.settledCount) * BigInt(PRICE_A)));
    assert.equal(await page.textContent("#earnings [data-field=settledCount]"), String(earnings.settledCount));
    const stats = (await api("/usage/alpha-api/stats?days=14", { token: keys.a.key })).json;
    assert.equal(stats.totals.settled, earnings.settledCount);
    assert.ok(stats.totals.challenged >= 4, "each paid call's first 402, and the unpaid one");
    assert.equal(await page.textContent("#calls [data-field=settled]"), String(stats.totals.settled));
    assert.equal(await page.textContent("#calls [data-field=challenged]"), String(stats.totals.challenged));
    assert.equal(stats.payers, 3, "payers 0 and 1 here, payer 2 ran the example");
    assert.equal(await page.textContent("#calls [data-field=payers]"), String(stats.payers));
    assert.match(await page.textContent("#calls [data-field=latency]"), /^\d+ \/ \d+ ms$/);
    assert.equal(await page.textContent("#top-routes tbody tr td code"), "/hello");
    // The ledger: every entry of the page, amounts as the journal has them.
    const entries = (await api("/ledger/alpha-api/entries?after=0&limit=20", { token: keys.a.key })).json.entries;
    const rows = await page.$$eval("#ledger tbody tr", (trs) => trs.map((tr) => [tr.cells[0].textContent, tr.cells[3].querySelector(".amount")?.title]));
    assert.deepEqual(rows, entries.map((e) => [String(e.seq), `${e.amount} atomic units`]));
    // The live tail shows the settled calls, and picks up a new one.
    await page.waitForSelector("#tail .stage.settled");
    const f = paidFetch(pay, pay.accounts.payers[0].account, { maxAmountAtomic: PRICE_A });
    assert.equal((await f(`${p.url}/t/alpha-api/hello?name=live`)).status, 200);
    const settledShown = stats.totals.settled + 1;
    await page.waitForFunction((n) => [...document.querySelectorAll("#tail tbody tr")].filter((tr) => tr.textContent.includes("settled")).length >= n, settledShown, { timeout: 20000 });
    assert.equal(await page.getAttribute("#settings [data-field=priceCell] .amount", "title"), `${PRICE_A} atomic units`);
    await page.waitForSelector("#settings ~ div, #settings");
    await shot(page, "creator-tenant");

    // Another creator's tenant: refused, and nothing of it shows.
    assert.equal((await api("/ledger/beta-api/earnings", { token: keys.a.key })).status, 403);
    assert.equal((await api("/events?tenant=beta-api", { token: keys.a.key })).status, 403);
    await page.goto(`${p.url}/__platform/dashboard/#/t/beta-api`);
    await page.waitForSelector("main .state.error");
    const text = await page.textContent("main");
    assert.match(text, /does not give access/);
    assert.doesNotMatch(text, new RegExp(formatAtomic(String(2n * BigInt(PRICE_B))).replace(".", "\\.")));
    assert.equal(await page.$("#earnings"), null);
    await page.context().close();
  });

  test("at phone width the pages stay readable (no sideways scrolling of the page)", async () => {
    const page = await newPage({ width: 375, height: 740 });
    await page.goto(`${p.url}/__platform/dashboard/`);
    await page.waitForSelector("li.market-entry");
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 375), "marketplace fits 375 px");
    await shot(page, "phone-marketplace");
    await page.goto(`${p.url}/__platform/dashboard/#/signin`);
    await signIn(page, keys.b.key);
    await page.click("#tenants a[data-tenant=beta-api]");
    await page.waitForSelector("#earnings");
    await page.waitForSelector("#calls-days");
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 375), "tenant view fits 375 px");
    await shot(page, "phone-tenant");
    await page.context().close();
  });

  test("an operator sees every tenant with earnings and suspends one from the page", async () => {
    const page = await newPage();
    await page.goto(`${p.url}/__platform/dashboard/#/signin`);
    await signIn(page, OPERATOR);
    const listed = await page.$$eval("#tenants a[data-tenant]", (els) => els.map((e) => e.dataset.tenant));
    assert.deepEqual(listed, ["alpha-api", "alpha-two", "beta-api", "gamma-free"]);
    const all = (await api("/earnings?limit=25&days=1")).json;
    assert.equal(await page.getAttribute("#totals [data-field=gross] .amount", "title"), `${all.totals.gross} atomic units`);
    const each = await Promise.all(listed.map(async (slug) => (await api(`/ledger/${slug}/earnings`)).json.gross));
    assert.equal(all.totals.gross, sumAtomic(each));
    assert.ok(BigInt(all.totals.gross) >= 4n * BigInt(PRICE_A) + 2n * BigInt(PRICE_B));
    await shot(page, "operator-tenants");

    const row = page.locator("#tenants tr", { has: page.locator("a[data-tenant=gamma-free]") });
    await row.locator("button[data-action=suspend]").click();
    await page.locator("#tenants tr", { has: page.locator("a[data-tenant=gamma-free]") }).locator("[data-field=status]", { hasText: "suspended" }).waitFor();
    assert.equal((await api("/tenants/gamma-free")).json.status, "suspended");
    const call = await fetch(`${p.url}/t/gamma-free/hello`);
    assert.equal(call.status, 403);
    assert.equal((await call.json()).code, "tenant_suspended");
    await shot(page, "operator-suspended");
    await page.locator("#tenants tr", { has: page.locator("a[data-tenant=gamma-free]") }).locator("button[data-action=resume]").click();
    await page.locator("#tenants tr", { has: page.locator("a[data-tenant=gamma-free]") }).locator("[data-field=status]", { hasText: "active" }).waitFor();
    assert.equal((await api("/tenants/gamma-free")).json.status, "active");
    await page.context().close();
  });

  test("no console errors in any of the views above", async () => {
    assert.deepEqual(consoleErrors, []);
  });

  test("a revoked key is told so, and asked to sign in again", async () => {
    const page = await newPage({ token: keys.b.key });
    const r = await api(`/keys/${keys.b.id}`, { method: "DELETE" });
    assert.equal(r.status, 200, r.text);
    const before = consoleErrors.length;
    await page.click("#tenants a[data-tenant=beta-api]");
    await page.waitForSelector("form.signin .state.error");
    assert.match(await page.textContent("form.signin .state.error"), /not accepted: it may have expired, been revoked/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("claw.token")), null);
    await shot(page, "revoked-key");
    // The refused requests are the only console errors here (Chromium logs every 401).
    assert.ok(consoleErrors.slice(before).every((e) => /status of 401/.test(e)), consoleErrors.slice(before).join("\n"));
    await page.context().close();
  });
});
