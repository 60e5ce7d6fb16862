// End to end with money that moves: a real local chain (anvil with the ClawUSD EIP-3009
// token, scripts/local/chain.mjs), the official x402 facilitator logic on loopback
// (scripts/local/facilitator.mjs), the dispatcher on workerd with FACILITATOR_URL, and the
// official clients paying: @x402/fetch + @x402/evm (v2) and x402-fetch (v1).
// The chain is the truth: balances and Transfer logs must match the tenant's ledger.

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { decodePaymentResponseHeader } from "@x402/fetch";
import { wrapFetchWithPayment as wrapV1, decodeXPaymentResponse } from "x402-fetch";
import { createWalletClient, http, parseSignature, hexToBigInt, toHex, hashDomain, getTypesForEIP712Domain } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { startPlatform, admin, getJson } from "./harness.mjs";
import { startChainAndFacilitator, paidFetch } from "../../scripts/local/payments.mjs";
import { startChain, localChain } from "../../scripts/local/chain.mjs";
import { randomNonce, TRANSFER_WITH_AUTHORIZATION } from "./x402_client.mjs";

const PAYOUT_TOKEN = "chain-payout-token";
const PRICE = 2500n; // atomic units (0.0025 ClawUSD)
const CALLS = 10;
const SLUG = "chain-paid";

/// An official v2 client paying as `account`; `seen` collects its payment headers.
const v2Fetch = (pay, account, seen = []) => paidFetch(pay, account, { maxAmountAtomic: PRICE, seen });

/// Every entry of the tenant's ledger journal, all pages.
async function journal(base, slug) {
  const entries = [];
  let after = 0;
  for (;;) {
    const page = await getJson(`${base}/__platform/ledger/${slug}/entries?after=${after}&limit=500`, {
      headers: { authorization: `Bearer ${PAYOUT_TOKEN}` },
    });
    assert.equal(page.status, 200, page.text);
    entries.push(...page.json.entries);
    if (!page.json.hasMore) return entries;
    after = page.json.nextCursor;
  }
}

const settledOf = async (base) => (await journal(base, SLUG)).filter((e) => e.kind === "payment_settled");
const sum = (xs) => xs.reduce((a, b) => a + b, 0n);

describe("paid calls settle on a real local chain", () => {
  let pay;
  let p;
  let payTo;
  before(async () => {
    pay = await startChainAndFacilitator();
    p = await startPlatform({ vars: { FACILITATOR_URL: pay.facilitatorUrl, PLATFORM_PAYOUT_TOKEN: PAYOUT_TOKEN } });
    payTo = pay.accounts.creator.address;
    const put = await admin(p.url).put(SLUG, {
      resourceType: "function",
      workerName: "demo-fn",
      plan: "pro",
      price: pay.tenantPrice({ amountAtomic: PRICE.toString(), payTo, description: "paid on the local chain" }),
    });
    assert.equal(put.status, 201, put.text);
  });
  after(async () => {
    await p?.dispose();
    await pay?.stop();
  });

  test(`${CALLS} calls paid with @x402/fetch (v2): balances, Transfer logs and the ledger agree`, async (t) => {
    const payer = pay.accounts.payers[0];
    const fromBlock = (await pay.chain.publicClient.getBlockNumber()) + 1n;
    const before = { payer: await pay.chain.balanceOf(payer.address), payTo: await pay.chain.balanceOf(payTo) };
    const paidFetch = v2Fetch(pay, payer.account);
    const receipts = [];
    const t0 = performance.now();
    for (let i = 0; i < CALLS; i++) {
      const res = await paidFetch(`${p.url}/t/${SLUG}/hello?name=call${i}`);
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual(await res.json(), { hello: `call${i}` });
      assert.equal(res.headers.get("x-claw-charged"), "true");
      const rc = decodePaymentResponseHeader(res.headers.get("PAYMENT-RESPONSE"));
      assert.equal(rc.success, true);
      assert.equal(rc.network, pay.network);
      assert.equal(rc.payer, payer.address);
      assert.match(rc.transaction, /^0x[0-9a-f]{64}$/);
      receipts.push(rc);
    }
    const elapsedMs = performance.now() - t0;
    const settleMs = [...pay.facilitator.stats.settleMs].sort((a, b) => a - b);
    t.diagnostic(
      `${CALLS} sequential paid calls: ${((CALLS * 1000) / elapsedMs).toFixed(1)} calls/s; facilitator settle median ${settleMs[settleMs.length >> 1].toFixed(1)} ms`,
    );

    // The chain: exactly N * price moved from the payer to payTo.
    const afterBalances = { payer: await pay.chain.balanceOf(payer.address), payTo: await pay.chain.balanceOf(payTo) };
    assert.equal(before.payer - afterBalances.payer, BigInt(CALLS) * PRICE);
    assert.equal(afterBalances.payTo - before.payTo, BigInt(CALLS) * PRICE);
    const logs = await pay.chain.transfersTo(payTo, { fromBlock });
    assert.equal(logs.length, CALLS);
    assert.ok(logs.every((l) => l.from === payer.address && l.value === PRICE));
    const chainTxs = new Set(logs.map((l) => l.txHash));
    assert.deepEqual(new Set(receipts.map((r) => r.transaction)), chainTxs, "each receipt is a transaction on chain");

    // The ledger: the same count, sum and transactions as the chain's Transfer logs.
    const settled = await settledOf(p.url);
    assert.equal(settled.length, CALLS);
    assert.equal(sum(settled.map((e) => BigInt(e.amount))), sum(logs.map((l) => l.value)));
    assert.deepEqual(new Set(settled.map((e) => e.txRef)), chainTxs);
    assert.ok(settled.every((e) => e.localSettlement === false));
    // Each settled entry's EIP-3009 nonce is used on chain.
    for (const e of settled) {
      const nonce = e.paymentKey.split(":").pop();
      assert.equal(await pay.chain.authorizationState(payer.address, nonce), true, e.paymentKey);
    }
  });

  test("a replayed payment is refused with the chain's reason and moves nothing", async () => {
    const payer = pay.accounts.payers[0];
    const seen = [];
    const first = await v2Fetch(pay, payer.account, seen)(`${p.url}/t/${SLUG}/hello?name=once`);
    assert.equal(first.status, 200, await first.clone().text());
    assert.equal(seen.length, 1);
    const balances = async () => [await pay.chain.balanceOf(payer.address), await pay.chain.balanceOf(payTo)];
    const before = await balances();
    const logsBefore = (await pay.chain.transfersTo(payTo)).length;
    const settledBefore = (await settledOf(p.url)).length;

    const replay = await getJson(`${p.url}/t/${SLUG}/hello?name=twice`, { headers: { "PAYMENT-SIGNATURE": seen[0] } });
    // Verify asks the chain: the authorization's nonce is used, so the facilitator refuses
    // it; the payment is this ledger's own settled one, so the caller gets the answer it
    // paid for the first time (kept), not the tenant's answer to this new query.
    assert.equal(replay.status, 200, replay.text);
    assert.equal(replay.headers.get("x-claw-replay"), "true");
    assert.notEqual(replay.json?.hello, "twice", "the tenant is not called again");
    assert.deepEqual(await balances(), before, "no funds moved");
    assert.equal((await pay.chain.transfersTo(payTo)).length, logsBefore);
    assert.equal((await settledOf(p.url)).length, settledBefore);
  });

  test("a payer without funds is refused at verify with the precise reason, nothing reserved", async () => {
    const broke = privateKeyToAccount("0x" + "5a".repeat(32));
    assert.equal(await pay.chain.balanceOf(broke.address), 0n);
    const entriesBefore = (await journal(p.url, SLUG)).length;
    const res = await v2Fetch(pay, broke)(`${p.url}/t/${SLUG}/hello?name=broke`);
    const text = await res.text();
    assert.equal(res.status, 402, text);
    // Read through Multicall3 (tryAggregate) by the facilitator's diagnostics.
    assert.match(text, /invalid_exact_evm_insufficient_balance/);
    assert.equal((await journal(p.url, SLUG)).length, entriesBefore, "nothing reserved");
  });

  test("x402-fetch (v1, base-sepolia = chain 84532) pays on the chain too", async () => {
    const payer = pay.accounts.payers[1];
    const before = await pay.chain.balanceOf(payer.address);
    const wallet = createWalletClient({ account: payer.account, chain: localChain(pay.chain.chainId, pay.chain.rpcUrl), transport: http(pay.chain.rpcUrl) });
    const res = await wrapV1(fetch, wallet, PRICE)(`${p.url}/t/${SLUG}/hello?name=v1`);
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { hello: "v1" });
    const rc = decodeXPaymentResponse(res.headers.get("X-PAYMENT-RESPONSE"));
    assert.equal(rc.success, true);
    assert.equal(rc.network, "base-sepolia");
    assert.equal(rc.payer, payer.address);
    assert.equal(before - (await pay.chain.balanceOf(payer.address)), PRICE);
    const log = (await pay.chain.transfersTo(payTo)).find((l) => l.txHash === rc.transaction);
    assert.ok(log, "the v1 receipt's transaction is on chain");
    assert.deepEqual([log.from, log.value], [payer.address, PRICE]);
    const entry = (await settledOf(p.url)).find((e) => e.txRef === rc.transaction);
    assert.ok(entry, "and in the ledger");
    assert.equal(entry.amount, PRICE.toString());
  });
});

describe("ClawUSD, the local EIP-3009 token", () => {
  let chain;
  before(async () => {
    chain = await startChain();
  });
  after(async () => {
    await chain?.stop();
  });

  const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  const domain = () => ({ name: "USDC", version: "2", chainId: chain.chainId, verifyingContract: chain.token });
  const authTypes = (primaryType) => ({
    [primaryType]: TRANSFER_WITH_AUTHORIZATION.TransferWithAuthorization,
  });
  async function signed(primaryType = "TransferWithAuthorization", o = {}) {
    const payer = o.payer ?? chain.accounts.payers[2];
    const nowS = BigInt(Math.floor(Date.now() / 1000));
    const message = {
      from: payer.address,
      to: o.to ?? chain.accounts.creator.address,
      value: 7n,
      validAfter: nowS - 60n,
      validBefore: nowS + 600n,
      nonce: randomNonce(),
    };
    const signature = await payer.account.signTypedData({ domain: domain(), types: authTypes(primaryType), primaryType, message });
    return { message, signature, ...parseSignature(signature) };
  }
  const args = (m) => [m.from, m.to, m.value, m.validAfter, m.validBefore, m.nonce];
  /// Sends a transaction and waits for its receipt: reads that follow see its effect.
  const write = async (key, functionName, a) => {
    const hash = await chain.walletClient(key).writeContract({ address: chain.token, abi: chain.tokenAbi, functionName, args: a });
    const receipt = await chain.publicClient.waitForTransactionReceipt({ hash });
    assert.equal(receipt.status, "success", `${functionName} ${hash}`);
    return hash;
  };
  const simulate = (account, functionName, a) =>
    chain.publicClient.simulateContract({ account, address: chain.token, abi: chain.tokenAbi, functionName, args: a });

  test("domain, metadata and Multicall3 as the facilitator expects them", async () => {
    const read = (functionName) => chain.publicClient.readContract({ address: chain.token, abi: chain.tokenAbi, functionName });
    assert.deepEqual([await read("name"), await read("version"), await read("decimals")], ["USDC", "2", 6]);
    assert.equal(await read("DOMAIN_SEPARATOR"), hashDomain({ domain: domain(), types: { EIP712Domain: getTypesForEIP712Domain({ domain: domain() }) } }));
    const code = await chain.publicClient.getCode({ address: chain.multicall });
    assert.ok(code && code.length > 2, "Multicall3 code is in place");
  });

  test("a high-s twin of a valid signature is refused; the valid one and the bytes form work once", async () => {
    const facilitator = chain.accounts.facilitator;
    const a = await signed();
    const highS = toHex(SECP256K1_N - hexToBigInt(a.s), { size: 32 });
    const flippedV = a.v === 27n ? 28 : 27;
    await assert.rejects(simulate(facilitator.account, "transferWithAuthorization", [...args(a.message), flippedV, a.r, highS]), /invalid signature 's' value/);
    const before = await chain.balanceOf(a.message.to);
    await write(facilitator.privateKey, "transferWithAuthorization", [...args(a.message), Number(a.v), a.r, a.s]);
    assert.equal((await chain.balanceOf(a.message.to)) - before, 7n);
    assert.equal(await chain.authorizationState(a.message.from, a.message.nonce), true);
    await assert.rejects(simulate(facilitator.account, "transferWithAuthorization", [...args(a.message), Number(a.v), a.r, a.s]), /authorization is used/);
    // The 65-byte signature overload.
    const b = await signed();
    await write(facilitator.privateKey, "transferWithAuthorization", [...args(b.message), b.signature]);
    assert.equal(await chain.authorizationState(b.message.from, b.message.nonce), true);
    // Signed by someone else than `from`.
    const c = await signed("TransferWithAuthorization", { payer: chain.accounts.payers[1] });
    await assert.rejects(
      simulate(facilitator.account, "transferWithAuthorization", [chain.accounts.payers[2].address, ...args(c.message).slice(1), Number(c.v), c.r, c.s]),
      /invalid signature/,
    );
  });

  test("cancelAuthorization spends a nonce; receiveWithAuthorization is for the payee only", async () => {
    const payer = chain.accounts.payers[2];
    const a = await signed();
    const cancel = await payer.account.signTypedData({
      domain: domain(),
      types: { CancelAuthorization: [{ name: "authorizer", type: "address" }, { name: "nonce", type: "bytes32" }] },
      primaryType: "CancelAuthorization",
      message: { authorizer: payer.address, nonce: a.message.nonce },
    });
    const cs = parseSignature(cancel);
    await write(chain.accounts.facilitator.privateKey, "cancelAuthorization", [payer.address, a.message.nonce, Number(cs.v), cs.r, cs.s]);
    assert.equal(await chain.authorizationState(payer.address, a.message.nonce), true);
    await assert.rejects(simulate(chain.accounts.facilitator.account, "transferWithAuthorization", [...args(a.message), Number(a.v), a.r, a.s]), /authorization is used/);

    const r = await signed("ReceiveWithAuthorization");
    const rArgs = [...args(r.message), Number(r.v), r.r, r.s];
    await assert.rejects(simulate(chain.accounts.facilitator.account, "receiveWithAuthorization", rArgs), /caller must be the payee/);
    const before = await chain.balanceOf(r.message.to);
    await write(chain.accounts.creator.privateKey, "receiveWithAuthorization", rArgs);
    assert.equal((await chain.balanceOf(r.message.to)) - before, 7n);
  });
});
