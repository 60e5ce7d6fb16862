// A stand-in for an x402 facilitator, on loopback, speaking the real wire format:
//   POST /verify  {x402Version, paymentPayload, paymentRequirements} -> {isValid, invalidReason?, payer}
//   POST /settle  same body -> {success, transaction, network, payer, errorReason?}
//   GET  /supported -> {kinds: [{x402Version, scheme, network}]}
// The real facilitator (the official logic on a local chain) is scripts/local/facilitator.mjs;
// this one stays for the fault modes a real one cannot be made to produce on demand.
// It checks payments for real (EIP-712 signature recovered with viem's verifyTypedData,
// recipient, exact amount, network, validity window), in the order of @x402/evm's exact
// EVM facilitator and with its v2 reason strings (invalid_exact_evm_signature, ...), and
// remembers the nonces it settled, as the chain does: verify and settle both refuse a
// settled nonce (invalid_exact_evm_nonce_already_used), whichever protocol version carries
// it. Scriptable, so tests can make it fail in every way a real one can:
//   verify: "valid" (real checks) | "invalid" | "500" | "timeout" | "garbage"
//           ("timeout" never answers, until close(), or answers 504 after `hangMs` if given)
//   settle: "success" (real checks, fresh tx hash) | "fail" (success:false, insufficient
//           balance) | "500" | "timeout" | "garbage" | "same-tx" (always the same tx hash, a
//           lying facilitator)
// Modes are set in-process (setMode) or over HTTP (POST /__control {verify, settle});
// every call is recorded (calls, or GET /__calls).
//
// Standalone: node tests/fakes/x402_facilitator.mjs [port]

import http from "node:http";
import crypto from "node:crypto";
import { verifyTypedData, getAddress } from "viem";
import { TRANSFER_WITH_AUTHORIZATION as TYPES } from "../e2e/x402_client.mjs";

const CHAIN_IDS = { "base-sepolia": 84532, "eip155:84532": 84532, base: 8453, "eip155:8453": 8453 };
const VALID_BEFORE_MARGIN_S = 6;

const same = (a, b) => typeof a === "string" && typeof b === "string" && a.toLowerCase() === b.toLowerCase();

/// @x402/evm's exact EVM facilitator reason strings (v2; its v1 scheme uses the same ones).
export const REASONS = Object.freeze({
  invalidPayload: "invalid_payload",
  invalidVersion: "invalid_x402_version",
  invalidNetwork: "invalid_network",
  scheme: "invalid_exact_evm_scheme",
  missingDomain: "invalid_exact_evm_missing_eip712_domain",
  networkMismatch: "invalid_exact_evm_network_mismatch",
  signature: "invalid_exact_evm_signature",
  recipient: "invalid_exact_evm_recipient_mismatch",
  validBefore: "invalid_exact_evm_payload_authorization_valid_before",
  validAfter: "invalid_exact_evm_payload_authorization_valid_after",
  value: "invalid_exact_evm_payload_authorization_value_mismatch",
  nonceUsed: "invalid_exact_evm_nonce_already_used",
  insufficientBalance: "invalid_exact_evm_insufficient_balance",
});

/// The chain's view of a nonce: one key per (chain, token, payer, nonce), so a nonce
/// settled through v1 (`base-sepolia`) is spent for v2 (`eip155:84532`) too.
export function nonceKey(network, asset, from, nonce) {
  return `${CHAIN_IDS[network]}:${asset}:${from}:${nonce}`.toLowerCase();
}

/// The exact-EVM checks of @x402/evm's facilitator, in its order, for real. `isSettled(key)`
/// says whether a nonce was already used on "chain". Returns {isValid, invalidReason, payer}.
export async function checkPayment(body, nowS = Math.floor(Date.now() / 1000), isSettled = () => false) {
  const { x402Version, paymentPayload: p, paymentRequirements: r } = body ?? {};
  const a = p?.payload?.authorization;
  const payer = a?.from;
  const no = (invalidReason) => ({ isValid: false, invalidReason, payer });
  if (!p || !r || !a || typeof p.payload.signature !== "string") return no(REASONS.invalidPayload);
  if (x402Version !== p.x402Version) return no(REASONS.invalidVersion);
  const scheme = x402Version === 2 ? p.accepted?.scheme : p.scheme;
  const network = x402Version === 2 ? p.accepted?.network : p.network;
  if (!(r.network in CHAIN_IDS)) return no(REASONS.invalidNetwork);
  if (scheme !== "exact" || r.scheme !== "exact") return no(REASONS.scheme);
  if (!r.extra?.name || !r.extra?.version) return no(REASONS.missingDomain);
  if (network !== r.network) return no(REASONS.networkMismatch);
  const amount = x402Version === 2 ? r.amount : r.maxAmountRequired;
  let ok = false;
  try {
    ok = await verifyTypedData({
      address: getAddress(a.from),
      domain: {
        name: r.extra.name,
        version: r.extra.version,
        chainId: CHAIN_IDS[network],
        verifyingContract: getAddress(r.asset),
      },
      types: TYPES,
      primaryType: "TransferWithAuthorization",
      message: {
        from: getAddress(a.from),
        to: getAddress(a.to),
        value: BigInt(a.value),
        validAfter: BigInt(a.validAfter),
        validBefore: BigInt(a.validBefore),
        nonce: a.nonce,
      },
      signature: p.payload.signature,
    });
  } catch {
    ok = false;
  }
  if (!ok) return no(REASONS.signature);
  if (!same(a.to, r.payTo)) return no(REASONS.recipient);
  if (Number(a.validBefore) < nowS + VALID_BEFORE_MARGIN_S) return no(REASONS.validBefore);
  if (Number(a.validAfter) > nowS) return no(REASONS.validAfter);
  if (String(a.value) !== String(amount)) return no(REASONS.value);
  // The real one learns this by simulating the transfer on chain (authorizationState).
  if (isSettled(nonceKey(network, r.asset, a.from, a.nonce))) return no(REASONS.nonceUsed);
  return { isValid: true, payer: getAddress(a.from) };
}

export async function startFacilitator({ host = "127.0.0.1", port = 0, hangMs = null } = {}) {
  const state = { verify: "valid", settle: "success" };
  const calls = [];
  const usedNonces = new Set();
  const isSettled = (key) => usedNonces.has(key);
  const hanging = new Set();
  const sameTx = "0x" + "ab".repeat(32);

  const send = (res, status, value, raw = false) => {
    const text = raw ? value : JSON.stringify(value);
    res.writeHead(status, { "content-type": raw ? "text/html" : "application/json" });
    res.end(text);
  };
  const hang = (res) => {
    if (hangMs === null) return;
    const t = setTimeout(() => send(res, 504, { error: "too late" }), hangMs);
    hanging.add(t);
    res.on("close", () => {
      clearTimeout(t);
      hanging.delete(t);
    });
  };

  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const text = Buffer.concat(chunks).toString("utf8");
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {}
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/__control" && req.method === "POST") {
      Object.assign(state, body ?? {});
      return send(res, 200, state);
    }
    if (path === "/__calls") return send(res, 200, calls);
    if (path === "/supported" && req.method === "GET") {
      const kinds = [];
      for (const network of ["base-sepolia", "base"]) kinds.push({ x402Version: 1, scheme: "exact", network });
      for (const network of ["eip155:84532", "eip155:8453"]) kinds.push({ x402Version: 2, scheme: "exact", network });
      return send(res, 200, { kinds });
    }
    if (req.method !== "POST" || (path !== "/verify" && path !== "/settle")) {
      return send(res, 404, { error: "not found" });
    }
    calls.push({ path, body, mode: path === "/verify" ? state.verify : state.settle, at: Date.now() });
    const version = body?.x402Version;
    const network = body?.paymentRequirements?.network;
    if (path === "/verify") {
      switch (state.verify) {
        case "invalid":
          return send(res, 200, { isValid: false, invalidReason: "scripted_invalid", payer: body?.paymentPayload?.payload?.authorization?.from });
        case "500":
          return send(res, 500, { error: "internal" });
        case "timeout":
          return hang(res);
        case "garbage":
          return send(res, 200, "<html>502 Bad Gateway</html>", true);
        default:
          return send(res, 200, await checkPayment(body, undefined, isSettled));
      }
    }
    switch (state.settle) {
      case "fail":
        return send(res, 200, { success: false, errorReason: REASONS.insufficientBalance, transaction: "", network, payer: body?.paymentPayload?.payload?.authorization?.from });
      case "500":
        return send(res, 500, { error: "internal" });
      case "timeout":
        return hang(res);
      case "garbage":
        return send(res, 200, "{\"success\": tru", true);
      default: {
        const v = await checkPayment(body, undefined, isSettled);
        if (!v.isValid) return send(res, 200, { success: false, errorReason: v.invalidReason, transaction: "", network, payer: v.payer });
        const a = body.paymentPayload.payload.authorization;
        const key = nonceKey(network, body.paymentRequirements.asset, a.from, a.nonce);
        usedNonces.add(key);
        const transaction = state.settle === "same-tx" ? sameTx : "0x" + crypto.randomBytes(32).toString("hex");
        return send(res, 200, { success: true, transaction, network, payer: v.payer, x402Version: version });
      }
    }
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  const addr = server.address();
  return {
    url: `http://${host}:${addr.port}`,
    calls,
    setMode(m) {
      Object.assign(state, m);
    },
    reset() {
      state.verify = "valid";
      state.settle = "success";
      calls.length = 0;
    },
    close() {
      for (const t of hanging) clearTimeout(t);
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const f = await startFacilitator({ port: Number(process.argv[2] ?? 4020) });
  console.log(`x402 facilitator stand-in on ${f.url} (POST /__control {"verify","settle"} to script it)`);
}
