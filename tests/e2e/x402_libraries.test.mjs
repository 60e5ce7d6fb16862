// The published x402 client libraries pay this server unchanged: `@x402/fetch` +
// `@x402/evm` (v2, PAYMENT-SIGNATURE) and `x402-fetch` (v1, X-PAYMENT), with a local viem
// account, against the dev override (local verification) and the facilitator stand-in.
// Nothing leaves loopback: the libraries only sign (EIP-712, locally) and fetch our URL;
// the viem transport points at a closed loopback port so any RPC attempt would fail.

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { wrapFetchWithPayment as wrapV2, x402Client, decodePaymentResponseHeader } from "@x402/fetch";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { wrapFetchWithPayment as wrapV1, decodeXPaymentResponse } from "x402-fetch";
import { createWalletClient, http } from "viem";
import { baseSepolia } from "viem/chains";
import { startPlatform, admin } from "./harness.mjs";
import { startFacilitator } from "../fakes/x402_facilitator.mjs";
import { pricedTenant, payer } from "./x402_client.mjs";

const TOKENS = { PLATFORM_PAYOUT_TOKEN: "lib-payout-token" };

function v2Fetch() {
  const client = new x402Client();
  registerExactEvmScheme(client, { signer: payer });
  return wrapV2(fetch, client);
}

function v1Fetch() {
  const wallet = createWalletClient({ account: payer, chain: baseSepolia, transport: http("http://127.0.0.1:9") });
  return wrapV1(fetch, wallet);
}

async function settledCount(base, slug) {
  const res = await fetch(`${base}/__platform/ledger/${slug}/earnings`, {
    headers: { authorization: `Bearer ${TOKENS.PLATFORM_PAYOUT_TOKEN}` },
  });
  assert.equal(res.status, 200);
  const { settledCount } = await res.json();
  assert.equal(typeof settledCount, "number");
  return settledCount;
}

for (const mode of ["local verification", "facilitator stand-in"]) {
  describe(`published client libraries, ${mode}`, () => {
    let p;
    let f;
    before(async () => {
      let vars = { ...TOKENS, ALLOW_LOCAL_X402_VERIFICATION: "true" };
      if (mode === "facilitator stand-in") {
        f = await startFacilitator();
        vars = { ...TOKENS, FACILITATOR_URL: f.url };
      }
      p = await startPlatform({ vars });
      assert.equal((await admin(p.url).put("paid-lib", pricedTenant())).status, 201);
    });
    after(async () => {
      await p?.dispose();
      await f?.close();
    });

    test("@x402/fetch + @x402/evm (v2) pays and gets the tenant's answer and a receipt", async () => {
      f?.reset();
      const settledBefore = await settledCount(p.url, "paid-lib");
      const res = await v2Fetch()(`${p.url}/t/paid-lib/hello?name=v2lib`);
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual(await res.json(), { hello: "v2lib" });
      const receipt = decodePaymentResponseHeader(res.headers.get("PAYMENT-RESPONSE"));
      assert.equal(receipt.success, true);
      assert.equal(receipt.network, "eip155:84532");
      assert.equal(receipt.payer, payer.address);
      assert.equal(res.headers.get("X-PAYMENT-RESPONSE"), null);
      if (f) {
        assert.deepEqual(f.calls.map((c) => [c.path, c.body.x402Version]), [["/verify", 2], ["/settle", 2]]);
        assert.match(receipt.transaction, /^0x[0-9a-f]{64}$/);
      } else {
        assert.match(receipt.transaction, /^local:/);
      }
      assert.equal(await settledCount(p.url, "paid-lib"), settledBefore + 1, "this payment, settled once");
    });

    test("x402-fetch (v1) pays and gets the tenant's answer and a receipt", async () => {
      f?.reset();
      const settledBefore = await settledCount(p.url, "paid-lib");
      const res = await v1Fetch()(`${p.url}/t/paid-lib/hello?name=v1lib`);
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual(await res.json(), { hello: "v1lib" });
      const receipt = decodeXPaymentResponse(res.headers.get("X-PAYMENT-RESPONSE"));
      assert.equal(receipt.success, true);
      assert.equal(receipt.network, "base-sepolia");
      assert.equal(receipt.payer, payer.address);
      if (f) assert.deepEqual(f.calls.map((c) => [c.path, c.body.x402Version]), [["/verify", 1], ["/settle", 1]]);
      assert.equal(await settledCount(p.url, "paid-lib"), settledBefore + 1, "this payment, settled once");
    });
  });
}
