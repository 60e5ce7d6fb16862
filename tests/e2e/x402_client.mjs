// A small x402 client for the tests: reads a 402's requirements (v1 body, v2 header) and
// signs real EIP-3009 TransferWithAuthorization messages with a test key (viem), building
// the X-PAYMENT (v1) or PAYMENT-SIGNATURE (v2) header as the client libraries do. Every
// field can be overridden, so tests can sign wrong things on purpose.

import crypto from "node:crypto";
import { privateKeyToAccount } from "viem/accounts";
import { getAddress } from "viem";

/// Test keys (never hold funds): the payer, and another key for "signed by the wrong key".
export const PAYER_KEY = "0x" + "11".repeat(32);
export const OTHER_KEY = "0x" + "66".repeat(32);
export const payer = privateKeyToAccount(PAYER_KEY);
export const other = privateKeyToAccount(OTHER_KEY);

export const USDC_BASE_SEPOLIA = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
export const PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
const CHAIN_IDS = { "base-sepolia": 84532, "eip155:84532": 84532, base: 8453, "eip155:8453": 8453 };

const b64 = (v) => Buffer.from(JSON.stringify(v), "utf8").toString("base64");
export { TRANSFER_WITH_AUTHORIZATION } from "../../scripts/eip3009.mjs";
import { TRANSFER_WITH_AUTHORIZATION } from "../../scripts/eip3009.mjs";

export const unb64 = (s) => JSON.parse(Buffer.from(s, "base64").toString("utf8"));

/// A priced tenant config on base-sepolia USDC, served by the demo-fn Worker.
export function pricedTenant({ amountAtomic = "1000", plan = "pro", payTo = PAY_TO, workerName = "demo-fn" } = {}) {
  return {
    resourceType: "function",
    workerName,
    plan,
    price: { amountAtomic, network: "base-sepolia", asset: USDC_BASE_SEPOLIA, payTo, description: "paid demo" },
  };
}

/// The requirements of a 402 response: {v1, v2} (v1 = body, v2 = decoded PAYMENT-REQUIRED).
export async function readChallenge(res) {
  const header = res.headers.get("payment-required");
  const text = await res.text();
  return { status: res.status, v1: JSON.parse(text), v2: header ? unb64(header) : null, header };
}

export function randomNonce() {
  return "0x" + crypto.randomBytes(32).toString("hex");
}

/// Signs an authorization for `requirements` (one entry of v1 `accepts` or v2 `accepts`).
/// Overrides: account (signer), from, to, value, validAfter, validBefore, nonce, nowS.
export async function signAuthorization(requirements, o = {}) {
  const account = o.account ?? payer;
  const nowS = o.nowS ?? Math.floor(Date.now() / 1000);
  const authorization = {
    from: getAddress(o.from ?? account.address),
    to: getAddress(o.to ?? requirements.payTo),
    value: String(o.value ?? requirements.amount ?? requirements.maxAmountRequired),
    validAfter: String(o.validAfter ?? nowS - 600),
    validBefore: String(o.validBefore ?? nowS + requirements.maxTimeoutSeconds),
    nonce: o.nonce ?? randomNonce(),
  };
  const signature = await account.signTypedData({
    domain: {
      name: requirements.extra.name,
      version: requirements.extra.version,
      chainId: CHAIN_IDS[requirements.network],
      verifyingContract: getAddress(requirements.asset),
    },
    types: TRANSFER_WITH_AUTHORIZATION,
    primaryType: "TransferWithAuthorization",
    message: {
      ...authorization,
      value: BigInt(authorization.value),
      validAfter: BigInt(authorization.validAfter),
      validBefore: BigInt(authorization.validBefore),
    },
  });
  return { signature, authorization };
}

/// The payment headers for `challenge` ({v1, v2} from readChallenge), version 1 or 2.
/// `tamper(payloadJson)` may change the decoded JSON after signing.
export async function payHeaders(challenge, version, o = {}) {
  if (version === 1) {
    const req = challenge.v1.accepts[0];
    const payload = await signAuthorization(req, o);
    let json = { x402Version: 1, scheme: "exact", network: req.network, payload };
    if (o.tamper) json = o.tamper(json) ?? json;
    return { "X-PAYMENT": b64(json) };
  }
  const req = challenge.v2.accepts[0];
  const payload = await signAuthorization(req, o);
  let json = { x402Version: 2, resource: challenge.v2.resource, accepted: req, payload, extensions: {} };
  if (o.tamper) json = o.tamper(json) ?? json;
  return { "PAYMENT-SIGNATURE": b64(json) };
}

/// Decodes the payment-response header of either version, or null.
export function receipt(res) {
  const v = res.headers.get("payment-response") ?? res.headers.get("x-payment-response");
  return v ? unb64(v) : null;
}
