// The `claw` CLI end to end: the release binary (built here by cargo, a no-op when fresh)
// against a local platform on workerd, with money moving on the local chain (anvil + the
// official facilitator logic) and the official x402 client paying.
// - deploy a TypeScript function with an import (bundled by esbuild, found in the
//   project's node_modules), call it paid, redeploy, read versions, roll back;
// - wrap a loopback upstream (injected secret, cache, transform);
// - read earnings and the ledger with --json and compare with the API;
// - bad flags, a wrong token, an unknown tenant and an unreachable platform: a clear
//   message, the documented exit code, and nothing changed.

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startPlatform, getJson, DEV_ADMIN_TOKEN } from "./harness.mjs";
import { startChainAndFacilitator, paidFetch } from "../../scripts/local/payments.mjs";
import { startUpstream } from "../fakes/upstream.mjs";
import { ROOT } from "../../scripts/local/runtime.mjs";

const TARGET_DIR = process.env.CARGO_TARGET_DIR ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR) : path.join(ROOT, "target");
const CLAW = path.join(TARGET_DIR, "release", "claw");
const UPSTREAM_SECRET = "sk-upstream-cli-3f9a1c";
const TENANT_SECRET = "tenant-secret-value-77d2";
const PRICE_ATOMIC = 2500n; // --price 0.0025 with 6 decimals
const EXIT = { usage: 1, auth: 2, notFound: 3, api: 4, network: 5 };

/// Builds the release binary (cargo does nothing when it is fresh). Never skipped.
function buildClaw() {
  const r = spawnSync("cargo", ["build", "-p", "claw-cli", "--release", "--locked"], { cwd: ROOT, stdio: "inherit" });
  assert.equal(r.status, 0, "cargo build -p claw-cli --release failed");
  assert.ok(fs.existsSync(CLAW), `${CLAW} is missing after the build`);
}

let p;
let pay;
let up;
let project;
let configHome;

/// Runs claw with the platform's URL and the admin token in the environment (unless `env`
/// says otherwise); returns { code, stdout, stderr }.
function claw(args, { env = {}, input, cwd = project } = {}) {
  const r = spawnSync(CLAW, args, {
    cwd,
    input: input ?? "",
    encoding: "utf8",
    env: {
      PATH: process.env.PATH,
      HOME: configHome,
      XDG_CONFIG_HOME: configHome,
      CLAW_URL: p.url,
      CLAW_TOKEN: DEV_ADMIN_TOKEN,
      ...env,
    },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(r) {
  assert.equal(r.code, 0, `claw failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

const api = (pathAndQuery) =>
  getJson(`${p.url}/__platform${pathAndQuery}`, { headers: { authorization: `Bearer ${DEV_ADMIN_TOKEN}` } });

function writeProject(dir, message) {
  fs.writeFileSync(
    path.join(dir, "greet.ts"),
    `export function greet(name: string): string {\n  return \`${message}, \${name}\`;\n}\n`,
  );
  fs.writeFileSync(
    path.join(dir, "worker.ts"),
    [
      `import { greet } from "./greet";`,
      `interface Reply { greeting: string }`,
      `export default {`,
      `  async fetch(request: Request): Promise<Response> {`,
      `    const name: string = new URL(request.url).searchParams.get("name") ?? "world";`,
      `    const reply: Reply = { greeting: greet(name) };`,
      `    return Response.json(reply);`,
      `  },`,
      `};`,
    ].join("\n"),
  );
}

/// `claw deploy worker.ts` with the test's price on the local chain; `flags` replace or add.
function deployArgs(slug, flags = {}) {
  const all = {
    "--slug": slug,
    "--price": "0.0025",
    "--network": pay.network,
    "--asset": pay.token,
    "--asset-name": "USDC",
    "--asset-version": "2",
    "--pay-to": pay.accounts.creator.address,
    "--plan": "pro",
    "--rate-limit-caller": "100/60s",
    "--rate-limit-burst": "10",
    ...flags,
  };
  return ["deploy", "worker.ts", ...Object.entries(all).flat()];
}

describe("claw CLI against a local platform", () => {
  before(async () => {
    buildClaw();
    pay = await startChainAndFacilitator();
    up = await startUpstream();
    p = await startPlatform({
      vars: {
        FACILITATOR_URL: pay.facilitatorUrl,
        ALLOW_LOOPBACK_UPSTREAMS: "true",
        // One operator token for every route the CLI reads (earnings, ledger, events).
        PLATFORM_OPERATOR_TOKEN: DEV_ADMIN_TOKEN,
        PLATFORM_PAYOUT_TOKEN: DEV_ADMIN_TOKEN,
        PLATFORM_ANALYTICS_TOKEN: DEV_ADMIN_TOKEN,
        CLI_WRAP__API_KEY: UPSTREAM_SECRET,
      },
    });
    project = fs.mkdtempSync(path.join(os.tmpdir(), "claw-cli-project-"));
    configHome = fs.mkdtempSync(path.join(os.tmpdir(), "claw-cli-home-"));
    // A creator's project with esbuild installed: claw finds it walking up from the cwd.
    fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(project, "node_modules"));
    writeProject(project, "hello");
  });
  after(async () => {
    await p?.dispose();
    await pay?.stop();
    await up?.close();
    for (const d of [project, configHome]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  test("--help of every command shows an example; a bad flag is a usage error (exit 1)", () => {
    for (const cmd of [["deploy"], ["wrap"], ["tenants", "ls"], ["secrets", "put"], ["keys", "create"], ["earnings"], ["ledger"], ["events"], ["trending"]]) {
      const r = ok(claw([...cmd, "--help"]));
      assert.match(r.stdout, /Example/, cmd.join(" "));
      assert.match(r.stdout, /claw /, cmd.join(" "));
    }
    const r = claw(["deploy", "worker.ts", "--slug", "cli-x", "--bogus"]);
    assert.equal(r.code, EXIT.usage);
    assert.match(r.stderr, /--bogus/);
  });

  test("deploy a TypeScript function with an import, call it paid with the official x402 client", async () => {
    const r = ok(claw(deployArgs("cli-paid")));
    assert.match(r.stderr, /tenant cli-paid: created/);
    assert.match(r.stderr, /bundled worker\.ts with esbuild into worker\.js/);
    assert.match(r.stderr, /uploading .* \/ .* \(100%\)/, "a progress line for the upload");
    assert.match(r.stdout, /deployed cli-paid version 1 /);
    assert.ok(r.stdout.includes(`${p.url}/t/cli-paid/`), r.stdout);
    assert.match(r.stdout, /0\.0025 \(2500\)/);
    assert.match(r.stdout, /wrapFetchWithPayment/, "a paid-call example");

    // The config the platform stored is what the flags said.
    const t = await api("/tenants/cli-paid");
    assert.equal(t.status, 200, t.text);
    assert.equal(t.json.config.resourceType, "function");
    assert.equal(t.json.config.price.amountAtomic, "2500");
    assert.equal(t.json.config.plan, "pro");
    assert.equal(t.json.config.workerName, undefined, "served by the deployment API's script");

    // Unpaid: 402. Paid with @x402/fetch + @x402/evm: the bundled code answers.
    const unpaid = await fetch(`${p.url}/t/cli-paid/?name=cli`);
    assert.equal(unpaid.status, 402);
    const payer = pay.accounts.payers[0];
    const before = await pay.chain.balanceOf(pay.accounts.creator.address);
    const res = await paidFetch(pay, payer.account, { maxAmountAtomic: PRICE_ATOMIC })(`${p.url}/t/cli-paid/?name=cli`);
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { greeting: "hello, cli" });
    assert.equal((await pay.chain.balanceOf(pay.accounts.creator.address)) - before, PRICE_ATOMIC);
  });

  test("earnings and ledger with --json are the API's JSON; tables show whole units and atomic", async () => {
    const e = ok(claw(["earnings", "cli-paid", "--json"]));
    const fromApi = await api("/earnings/cli-paid");
    assert.equal(fromApi.status, 200, fromApi.text);
    assert.deepEqual(JSON.parse(e.stdout), fromApi.json);
    assert.equal(fromApi.json.gross, "2500");
    assert.equal(fromApi.json.settledCount, 1);

    const l = ok(claw(["ledger", "cli-paid", "--json"]));
    const ledgerApi = await api("/ledger/cli-paid/entries");
    assert.deepEqual(JSON.parse(l.stdout), ledgerApi.json);
    const settled = ledgerApi.json.entries.filter((x) => x.kind === "payment_settled");
    assert.equal(settled.length, 1);
    assert.equal(settled[0].amount, "2500");

    const table = ok(claw(["earnings", "cli-paid"]));
    assert.match(table.stdout, /gross\s+0\.0025 \(2500\)\s+\[1\]/);
    const ledgerTable = ok(claw(["ledger", "cli-paid"]));
    assert.match(ledgerTable.stdout, /payment_settled\s+0\.0025\s+2500/);
    // Paging flags reach the API.
    const after = ok(claw(["ledger", "cli-paid", "--after", String(settled[0].seq), "--json"]));
    assert.ok(JSON.parse(after.stdout).entries.every((x) => x.seq > settled[0].seq));
  });

  test("redeploy, versions, rollback", async () => {
    writeProject(project, "bonjour");
    const r = ok(claw(deployArgs("cli-paid")));
    assert.match(r.stderr, /tenant cli-paid: unchanged/, "same flags: the config is not rewritten");
    assert.match(r.stdout, /version 2 /);
    const v = ok(claw(["versions", "cli-paid", "--json"]));
    const fromApi = await api("/tenants/cli-paid/deployment");
    assert.deepEqual(JSON.parse(v.stdout), fromApi.json);
    assert.equal(fromApi.json.live.version, 2);
    assert.deepEqual(fromApi.json.history.map((h) => h.version), [2, 1]);
    const table = ok(claw(["versions", "cli-paid"]));
    assert.match(table.stdout, /^2\s+live\s+worker\.js/m);

    ok(claw(["rollback", "cli-paid"]));
    const after = await api("/tenants/cli-paid/deployment");
    assert.equal(after.json.live.version, 1);
    writeProject(project, "hello");
  });

  test("wrap a loopback upstream: method, injected secret, cache, transform", async () => {
    const r = ok(
      claw([
        "wrap", `${up.url}/v1`, "--slug", "cli-wrap", "--method", "GET",
        "--inject-header-secret", "x-api-key=API_KEY", "--cache-ttl", "60", "--transform-select", "id,name",
      ]),
    );
    assert.match(r.stdout, /proxy tenant cli-wrap: created/);
    const t = await api("/tenants/cli-wrap");
    assert.deepEqual(t.json.config.proxy.injectHeaders, [{ name: "x-api-key", secret: "CLI_WRAP__API_KEY" }]);

    const calls = up.calls.length;
    const first = await fetch(`${p.url}/t/cli-wrap/json`);
    assert.equal(first.status, 200, await first.clone().text());
    assert.deepEqual(Object.keys(await first.json()).sort(), ["id", "name"]);
    assert.equal(first.headers.get("x-claw-cache"), "miss");
    assert.equal(up.calls.length, calls + 1);
    assert.equal(up.calls.at(-1).headers["x-api-key"], UPSTREAM_SECRET);
    const second = await fetch(`${p.url}/t/cli-wrap/json`);
    assert.equal(second.headers.get("x-claw-cache"), "hit");
    assert.equal(up.calls.length, calls + 1, "served from the cache");
    const post = await fetch(`${p.url}/t/cli-wrap/json`, { method: "POST", body: "{}" });
    assert.equal(post.status, 405);
  });

  test("bad flags change nothing: local validation (exit 1) names the field", async () => {
    const tenantBefore = await api("/tenants/cli-paid");
    const deployBefore = await api("/tenants/cli-paid/deployment");

    const badPayTo = claw(deployArgs("cli-paid", { "--pay-to": "0x123" }));
    assert.equal(badPayTo.code, EXIT.usage);
    assert.match(badPayTo.stderr, /price\.payTo/);
    const badPrice = claw(deployArgs("cli-paid", { "--price": "0.0000001" }));
    assert.equal(badPrice.code, EXIT.usage);
    assert.match(badPrice.stderr, /6 decimal places/);
    const badRate = claw(deployArgs("cli-paid", { "--rate-limit-global": "10/1y" }));
    assert.equal(badRate.code, EXIT.usage);
    assert.match(badRate.stderr, /rateLimit\.global/);
    const badSlug = claw(deployArgs("Not_A_Slug"));
    assert.equal(badSlug.code, EXIT.usage);
    const badType = claw(["deploy", "worker.py", "--slug", "cli-paid"]);
    assert.equal(badType.code, EXIT.usage);
    assert.match(badType.stderr, /\.js, \.mjs, \.ts, \.csv or \.json/);
    const newBad = claw(deployArgs("cli-never", { "--pay-to": "0x0" }));
    assert.equal(newBad.code, EXIT.usage);

    assert.deepEqual((await api("/tenants/cli-paid")).json, tenantBefore.json);
    assert.deepEqual((await api("/tenants/cli-paid/deployment")).json, deployBefore.json);
    assert.equal((await api("/tenants/cli-never")).status, 404);
  });

  test("a wrong token is refused (exit 2) and changes nothing; unknown tenant exit 3; no platform exit 5", async () => {
    const tenantBefore = await api("/tenants/cli-paid");
    const deployBefore = await api("/tenants/cli-paid/deployment");
    const wrong = claw(deployArgs("cli-paid", { "--price": "1" }), { env: { CLAW_TOKEN: "wrong-token" } });
    assert.equal(wrong.code, EXIT.auth, wrong.stderr);
    assert.match(wrong.stderr, /unauthorized \(401\)/);
    const wrongFlag = claw(["tenants", "suspend", "cli-paid", "--token", "also-wrong"]);
    assert.equal(wrongFlag.code, EXIT.auth);
    assert.deepEqual((await api("/tenants/cli-paid")).json, tenantBefore.json);
    assert.deepEqual((await api("/tenants/cli-paid/deployment")).json, deployBefore.json);

    const missing = claw(["tenants", "show", "cli-nobody"]);
    assert.equal(missing.code, EXIT.notFound);
    assert.match(missing.stderr, /tenant_not_found \(404\)/);

    const down = claw(["tenants", "ls"], { env: { CLAW_URL: "http://127.0.0.1:9" } });
    assert.equal(down.code, EXIT.network);
    assert.match(down.stderr, /cannot reach the platform/);
    const noUrl = claw(["tenants", "ls"], { env: { CLAW_URL: "" } });
    assert.equal(noUrl.code, EXIT.usage);
    assert.match(noUrl.stderr, /CLAW_URL/);
  });

  test("secrets: the value comes from stdin and is never printed", async () => {
    const put = ok(claw(["secrets", "put", "cli-paid", "GREETING_KEY"], { input: `${TENANT_SECRET}\n` }));
    assert.match(put.stdout, /GREETING_KEY/);
    const ls = ok(claw(["secrets", "ls", "cli-paid"]));
    assert.match(ls.stdout, /GREETING_KEY/);
    const lsJson = ok(claw(["secrets", "ls", "cli-paid", "--json"]));
    assert.deepEqual(JSON.parse(lsJson.stdout), (await api("/tenants/cli-paid/secrets")).json);
    for (const out of [put, ls, lsJson]) {
      assert.ok(!out.stdout.includes(TENANT_SECRET) && !out.stderr.includes(TENANT_SECRET));
    }
    const empty = claw(["secrets", "put", "cli-paid", "EMPTY"], { input: "" });
    assert.equal(empty.code, EXIT.usage);
    ok(claw(["secrets", "rm", "cli-paid", "GREETING_KEY"]));
    assert.doesNotMatch(ok(claw(["secrets", "ls", "cli-paid"])).stdout, /GREETING_KEY/);
  });

  test("login writes a 0600 config file that later commands use; a wrong token is not saved", async () => {
    const env = { CLAW_URL: "", CLAW_TOKEN: "" };
    const bad = claw(["login", "--url", p.url], { env, input: "wrong-token\n" });
    assert.equal(bad.code, EXIT.auth);
    const file = path.join(configHome, "claw", "config.json");
    assert.equal(fs.existsSync(file), false);

    const r = ok(claw(["login", "--url", p.url], { env, input: `${DEV_ADMIN_TOKEN}\n` }));
    assert.ok(!r.stdout.includes(DEV_ADMIN_TOKEN) && !r.stderr.includes(DEV_ADMIN_TOKEN));
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    const ls = ok(claw(["tenants", "ls", "--json"], { env }));
    assert.deepEqual(JSON.parse(ls.stdout), (await api("/tenants")).json);
    // The environment overrides the file.
    const over = claw(["tenants", "ls"], { env: { CLAW_URL: "", CLAW_TOKEN: "env-wrong" } });
    assert.equal(over.code, EXIT.auth);
    fs.rmSync(file);
  });

  test("tenants ls/suspend/resume/rm, events and trending", { timeout: 60_000 }, async () => {
    const ls = ok(claw(["tenants", "ls"]));
    assert.match(ls.stdout, /^cli-paid\s+function\s+pro\s+0\.0025 \(2500\)\s+active/m);
    ok(claw(["tenants", "suspend", "cli-wrap"]));
    assert.equal((await fetch(`${p.url}/t/cli-wrap/json`)).status, 403);
    ok(claw(["tenants", "resume", "cli-wrap"]));
    assert.equal((await fetch(`${p.url}/t/cli-wrap/json`)).status, 200);

    // Events are delivered off the response path: wait for the paid call's.
    let evApi;
    for (let i = 0; i < 100; i++) {
      evApi = await api("/events?tenant=cli-paid");
      if (evApi.json?.events?.some((e) => e.stage === "settled")) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const ev = ok(claw(["events", "cli-paid", "--json"]));
    assert.deepEqual(JSON.parse(ev.stdout).events.map((e) => e.id), evApi.json.events.map((e) => e.id));
    assert.ok(evApi.json.events.some((e) => e.stage === "settled"));
    assert.match(ok(claw(["events", "cli-paid", "--stage", "settled"])).stdout, /settled\s+200/);
    const tr = ok(claw(["trending", "--window", "1h", "--json"]));
    assert.equal(JSON.parse(tr.stdout).window, "1h");

    // events --follow prints what arrives, until stopped.
    const follow = spawn(CLAW, ["events", "cli-wrap", "--follow", "--stage", "served"], {
      env: { PATH: process.env.PATH, HOME: configHome, CLAW_URL: p.url, CLAW_TOKEN: DEV_ADMIN_TOKEN },
    });
    let out = "";
    follow.stdout.on("data", (d) => (out += d));
    const seen = new Promise((resolve) => follow.stdout.on("data", () => out.includes("/json") && resolve()));
    await fetch(`${p.url}/t/cli-wrap/json?follow=1`);
    await seen;
    follow.kill("SIGKILL");
    assert.match(out, /served\s+200\s+\/json/);

    const noYes = claw(["tenants", "rm", "cli-wrap"]);
    assert.equal(noYes.code, EXIT.usage, "no --yes and no terminal: nothing deleted");
    assert.equal((await api("/tenants/cli-wrap")).status, 200);
    ok(claw(["tenants", "rm", "cli-wrap", "--yes"]));
    assert.equal((await api("/tenants/cli-wrap")).status, 404);
  });
});
