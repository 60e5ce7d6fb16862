// End to end: the payout job pays tenants on a real local chain (anvil + ClawUSD,
// scripts/local/chain.mjs) from the platform treasury, with EIP-3009 transfers whose nonce is
// derived from the payout's idempotency key. Tenants earn through real paid calls settled
// by the official facilitator logic. The chain is the truth: balances and Transfer logs to
// the destination must match the ledger's posted payouts, once each, whatever kills the job.

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { parseAbi, parseSignature } from "viem";
import { privateKeyToAccount, generatePrivateKey } from "viem/accounts";
import { startPlatform, admin, getJson, tempStateDir } from "./harness.mjs";
import { startChainAndFacilitator } from "../../scripts/local/payments.mjs";
import { ROOT } from "../../scripts/local/runtime.mjs";
import { payoutNonce } from "../../scripts/payout-job.mjs";

const PAYOUT_TOKEN = "payout-chain-token";
const PRICE = 4000n; // atomic ClawUSD per call
const JOB = path.join(ROOT, "scripts/payout-job.mjs");
const KILL_STEPS = ["intent", "create", "sign", "broadcast", "send", "post"];
/// After a kill at these steps the transfer is already on chain (anvil mines each
/// transaction as it arrives); before them nothing has moved.
const MOVED_AFTER = new Set(["broadcast", "send", "post"]);

const freshAddress = () => privateKeyToAccount(generatePrivateKey()).address;

describe("the payout job pays on a real local chain, once", () => {
  let pay;
  let p;
  const dirs = [];
  const children = new Set();

  before(async () => {
    pay = await startChainAndFacilitator();
    p = await startPlatform({ vars: { FACILITATOR_URL: pay.facilitatorUrl, PLATFORM_PAYOUT_TOKEN: PAYOUT_TOKEN } });
    dirs.push(p.persistDir);
    for (const slug of ["po-once", "po-kill", "po-broke", "po-cancel"]) {
      const put = await admin(p.url).put(slug, {
        resourceType: "function",
        workerName: "demo-fn",
        plan: "pro",
        price: pay.tenantPrice({ amountAtomic: PRICE.toString(), description: "payout test" }),
      });
      assert.equal(put.status, 201, put.text);
    }
  });
  after(async () => {
    for (const c of children) c.kill("SIGKILL");
    await p?.dispose();
    await pay?.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  const chain = () => pay.chain;
  const treasury = () => pay.accounts.treasury;
  const stateFile = () => {
    const d = tempStateDir();
    dirs.push(d);
    return path.join(d, "job.json");
  };

  /// `n` calls paid on chain by payer 0 with the official v2 client.
  async function paidCalls(slug, n) {
    const client = new x402Client();
    registerExactEvmScheme(client, { signer: pay.accounts.payers[0].account });
    client.setSpendControls({ allowedAssets: [{ network: pay.network, asset: pay.token, maxAmountPerPayment: PRICE.toString() }] });
    const paidFetch = wrapFetchWithPayment(fetch, client);
    for (let i = 0; i < n; i++) {
      const res = await paidFetch(`${p.url}/t/${slug}/hello?name=c${i}`);
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(res.headers.get("x-claw-charged"), "true");
    }
  }

  const ledgerGet = async (p_) => {
    const r = await getJson(`${p.url}/__platform/ledger${p_}`, { headers: { authorization: `Bearer ${PAYOUT_TOKEN}` } });
    assert.equal(r.status, 200, r.text);
    return r.json;
  };
  const journal = async (slug) => (await ledgerGet(`/${slug}/entries?after=0&limit=500`)).entries;
  const available = async (slug) => BigInt((await ledgerGet(`/${slug}/earnings`)).available);

  const jobEnv = (extra = {}) => ({
    ...process.env,
    PLATFORM_PAYOUT_TOKEN: PAYOUT_TOKEN,
    PAYOUT_TREASURY_KEY: treasury().privateKey,
    PAYOUT_RPC_URL: chain().rpcUrl,
    PAYOUT_TOKEN_ADDRESS: chain().token,
    ...extra,
  });

  /// Runs the job to its end; with `hangAfter`, waits until it says it hangs after that
  /// step and SIGKILLs it. Resolves {code, signal, stdout, stderr}.
  function runJob(state, slug, dest, { env = {}, hangAfter = null } = {}) {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [JOB, "--base", p.url, "--state", state, "--tenant", `${slug}=${dest}`], {
        env: jobEnv(hangAfter ? { ...env, PAYOUT_JOB_HANG_AFTER: hangAfter } : env),
        stdio: ["ignore", "pipe", "pipe"],
      });
      children.add(child);
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => {
        stderr += d;
        if (hangAfter && stderr.includes(`hanging after ${hangAfter}`)) child.kill("SIGKILL");
      });
      child.once("error", reject);
      child.once("exit", (code, signal) => {
        children.delete(child);
        resolve({ code, signal, stdout, stderr });
      });
    });
  }
  const outOf = (run) => {
    assert.equal(run.code, 0, run.stderr);
    return JSON.parse(run.stdout.trim());
  };

  const txHash = /^0x[0-9a-f]{64}$/;

  test("pays the available balance from the treasury, posts the chain's hash; a rerun moves nothing", async (t) => {
    const slug = "po-once";
    const dest = freshAddress();
    await paidCalls(slug, 3);
    const due = await available(slug);
    assert.ok(due > 0n && due <= 3n * PRICE, `available ${due}`);
    const before = { treasury: await chain().balanceOf(treasury().address), dest: await chain().balanceOf(dest) };
    assert.equal(before.dest, 0n);

    const state = stateFile();
    const out = outOf(await runJob(state, slug, dest));
    assert.equal(out.action, "paid");
    assert.equal(out.state, "posted");
    assert.equal(out.amount, due.toString());
    assert.match(out.txRef, txHash);
    assert.equal(out.transfer.outcome, "sent");
    t.diagnostic(`payout send-to-receipt ${out.transfer.sendToReceiptMs.toFixed(1)} ms`);

    // The chain: exactly the payout moved, treasury -> destination, in the posted transaction.
    assert.equal((await chain().balanceOf(dest)) - before.dest, due);
    assert.equal(before.treasury - (await chain().balanceOf(treasury().address)), due);
    const logs = await chain().transfersTo(dest);
    assert.equal(logs.length, 1);
    assert.deepEqual([logs[0].from, logs[0].value, logs[0].txHash], [treasury().address, due, out.txRef]);
    const receipt = await chain().publicClient.getTransactionReceipt({ hash: out.txRef });
    assert.equal(receipt.status, "success");
    assert.equal(await chain().authorizationState(treasury().address, out.transfer.nonce), true);

    // The ledger: the payout is posted with that hash; nothing is left to pay.
    const payout = await ledgerGet(`/${slug}/payouts/${out.payoutId}`);
    assert.deepEqual([payout.state, payout.txRef, payout.amount], ["posted", out.txRef, due.toString()]);
    const postedEntries = (await journal(slug)).filter((e) => e.kind === "payout_posted");
    assert.deepEqual(postedEntries.map((e) => e.txRef), [out.txRef]);
    assert.equal(await available(slug), 0n);

    // Rerun, and rerun with the state file lost: nothing moves.
    for (const s of [state, stateFile()]) {
      assert.equal(outOf(await runJob(s, slug, dest)).action, "nothing_available");
    }
    assert.equal(await chain().balanceOf(dest), due);
    assert.equal(before.treasury - (await chain().balanceOf(treasury().address)), due);
    assert.equal((await chain().transfersTo(dest)).length, 1);
    assert.equal((await journal(slug)).filter((e) => e.kind === "payout_created").length, 1);
  });

  test("SIGKILLed after each step in turn and rerun: paid exactly once per payout, on chain and in the ledger", async () => {
    const slug = "po-kill";
    const dest = freshAddress();
    const state = stateFile();
    let total = 0n;
    for (const [i, step] of KILL_STEPS.entries()) {
      await paidCalls(slug, 1);
      const due = await available(slug);
      assert.ok(due > 0n);
      const treasuryBefore = await chain().balanceOf(treasury().address);

      const killed = await runJob(state, slug, dest, { hangAfter: step });
      assert.equal(killed.signal, "SIGKILL", `${step}: ${killed.stderr}`);
      const movedNow = (await chain().balanceOf(dest)) - total;
      assert.equal(movedNow, MOVED_AFTER.has(step) ? due : 0n, `on chain after a kill at ${step}`);

      const out = outOf(await runJob(state, slug, dest));
      assert.equal(out.state, "posted", step);
      assert.equal(out.amount, due.toString(), step);
      assert.match(out.txRef, txHash, step);
      // After a kill at broadcast or send the rerun finds the transfer on chain instead of
      // sending one; after post there is nothing left to send.
      const found = { broadcast: "already_sent", send: "already_sent", post: undefined };
      const expected = step in found ? found[step] : "sent";
      assert.equal(out.transfer?.outcome, expected, step);
      total += due;

      // Once more: nothing moves.
      assert.equal(outOf(await runJob(state, slug, dest)).action, "nothing_available", step);

      // Checked against the chain: one Transfer per payout, the sum paid, the treasury down by it.
      assert.equal(await chain().balanceOf(dest), total, `balance after ${step}`);
      assert.equal(treasuryBefore - (await chain().balanceOf(treasury().address)), due, step);
      const logs = await chain().transfersTo(dest);
      assert.equal(logs.length, i + 1, `Transfer logs after ${step}`);
      assert.ok(logs.every((l) => l.from === treasury().address));
      // The ledger: one payout per round, each posted once with its transfer's hash.
      const entries = await journal(slug);
      assert.equal(entries.filter((e) => e.kind === "payout_created").length, i + 1, step);
      const posted = entries.filter((e) => e.kind === "payout_posted");
      assert.equal(posted.length, i + 1, step);
      assert.deepEqual(posted.map((e) => e.txRef), logs.map((l) => l.txHash), step);
      assert.deepEqual(posted.map((e) => BigInt(e.amount)), logs.map((l) => l.value), step);
      assert.equal(await available(slug), 0n);
    }
  });

  test("a treasury that cannot pay: the job fails, nothing is posted; funded again, it pays once", async () => {
    const slug = "po-broke";
    const dest = freshAddress();
    const state = stateFile();
    await paidCalls(slug, 2);
    const due = await available(slug);
    // Move the treasury's funds aside (a plain ERC-20 transfer by the treasury).
    const held = await chain().balanceOf(treasury().address);
    const aside = freshAddress();
    const wallet = chain().walletClient(treasury().privateKey);
    const erc20 = parseAbi(["function transfer(address to, uint256 value) returns (bool)"]);
    const h = await wallet.writeContract({ address: chain().token, abi: erc20, functionName: "transfer", args: [aside, held] });
    assert.equal((await chain().publicClient.waitForTransactionReceipt({ hash: h })).status, "success");

    const failed = await runJob(state, slug, dest);
    assert.equal(failed.code, 1, failed.stdout);
    assert.match(failed.stderr, /treasury .* holds 0, the payout needs \d+: not sent/);
    assert.equal(await chain().balanceOf(dest), 0n);
    const entries = await journal(slug);
    assert.equal(entries.filter((e) => e.kind === "payout_created").length, 1, "the payout exists");
    assert.equal(entries.filter((e) => e.kind === "payout_posted").length, 0, "and is not posted");

    await chain().mint(treasury().address, held);
    const out = outOf(await runJob(state, slug, dest));
    assert.deepEqual([out.action, out.state, out.amount, out.transfer.outcome], ["resumed", "posted", due.toString(), "sent"]);
    assert.equal(await chain().balanceOf(dest), due);
    const logs = await chain().transfersTo(dest);
    assert.deepEqual(logs.map((l) => l.txHash), [out.txRef]);
  });

  test("a payout nonce used by something else (a canceled authorization) is never posted", async () => {
    const slug = "po-cancel";
    const dest = freshAddress();
    const state = stateFile();
    await paidCalls(slug, 1);
    const created = await runJob(state, slug, dest, { env: { PAYOUT_JOB_EXIT_AFTER: "create" } });
    assert.equal(created.code, 86, created.stderr);
    const { key } = JSON.parse(fs.readFileSync(state, "utf8")).tenants[slug].intent;
    const nonce = payoutNonce(slug, key);
    // The treasury cancels that nonce: it is used on chain, but no transfer ever happened.
    const sig = parseSignature(
      await treasury().account.signTypedData({
        domain: { name: "USDC", version: "2", chainId: chain().chainId, verifyingContract: chain().token },
        types: { CancelAuthorization: [{ name: "authorizer", type: "address" }, { name: "nonce", type: "bytes32" }] },
        primaryType: "CancelAuthorization",
        message: { authorizer: treasury().address, nonce },
      }),
    );
    const h = await chain()
      .walletClient(pay.accounts.deployer.privateKey)
      .writeContract({ address: chain().token, abi: chain().tokenAbi, functionName: "cancelAuthorization", args: [treasury().address, nonce, Number(sig.v), sig.r, sig.s] });
    assert.equal((await chain().publicClient.waitForTransactionReceipt({ hash: h })).status, "success");

    const run = await runJob(state, slug, dest);
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stderr, /is used but 0 AuthorizationUsed logs name it/);
    assert.equal(await chain().balanceOf(dest), 0n);
    const entries = await journal(slug);
    assert.equal(entries.filter((e) => e.kind === "payout_posted").length, 0);
    assert.equal((await ledgerGet(`/${slug}/payouts/${entries.find((e) => e.kind === "payout_created").payoutId}`)).state, "pending");
  });
});
