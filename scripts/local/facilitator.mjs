// The official x402 facilitator logic on loopback: a thin node:http server around
// `x402Facilitator` (@x402/core) with the exact EVM scheme (@x402/evm) over a viem wallet
// client on a local chain (scripts/local/chain.mjs). The packages ship no server; this is it.
//
//   GET  /supported  -> {kinds: [{x402Version, scheme, network}], extensions, signers}
//   POST /verify     {x402Version, paymentPayload, paymentRequirements} -> {isValid, invalidReason?, payer}
//   POST /settle     same body -> {success, transaction, network, payer, errorReason?}
//   GET  /health     -> {ok, chainId, signer, verifies, settles}
// (bodies as @x402/core's HTTPFacilitatorClient sends them). Protocol v2 on
// `eip155:<chainId>`, v1 on the named networks of that chain id (`base-sepolia` on 84532);
// other networks are refused with `invalid_network`. A body that is not JSON or lacks the
// payload or the requirements is a 400 JSON error; an unexpected failure (the chain down) a
// 500 JSON error: never a crash.
//
// Nonce discipline of the gas account: transactions are signed and broadcast one at a time
// (a promise-chain mutex with a locally tracked nonce, refetched after any failure), while
// receipts are awaited concurrently. With a plain viem account, concurrent settles race
// for the same nonce and most of them fail ("nonce too low").
//
// Standalone: node scripts/local/facilitator.mjs [--rpc URL] [--key 0x..] [--port 4021]
//   (defaults: $RPC_URL or http://127.0.0.1:8545, $FACILITATOR_KEY or the local chain's
//   facilitator account, port 4021)

import http from "node:http";
import { x402Facilitator } from "@x402/core/facilitator";
import { registerExactEvmScheme } from "@x402/evm/exact/facilitator";
import { toFacilitatorEvmSigner } from "@x402/evm";
import { EVM_NETWORK_CHAIN_ID_MAP } from "@x402/evm/v1";
import { createWalletClient, defineChain, http as httpTransport, publicActions } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const MAX_BODY_BYTES = 1 << 20;
/// Bounds a settle's wait for its receipt (the dispatcher's own timeout is shorter).
const CONFIRMATION_TIMEOUT_MS = 60_000;

/// Runs `fn`s one at a time, in call order.
function serializer() {
  let tail = Promise.resolve();
  return (fn) => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => {});
    return run;
  };
}

async function chainIdOf(rpcUrl) {
  const res = await fetch(rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
  });
  return Number((await res.json()).result);
}

/// A facilitator signer whose transactions leave one at a time (see the header).
export function serialFacilitatorSigner({ rpcUrl, privateKey, chainId, pollingIntervalMs = 50 }) {
  const account = privateKeyToAccount(privateKey);
  const chain = defineChain({
    id: chainId,
    name: `claw-local-${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  const client = createWalletClient({ account, chain, transport: httpTransport(rpcUrl), pollingInterval: pollingIntervalMs }).extend(publicActions);
  const serial = serializer();
  let nextNonce = null;
  const send = (fn) =>
    serial(async () => {
      if (nextNonce === null) nextNonce = await client.getTransactionCount({ address: account.address, blockTag: "pending" });
      try {
        const hash = await fn(nextNonce);
        nextNonce += 1;
        return hash;
      } catch (e) {
        // A refused send (e.g. a reverting estimate) used no nonce, a lost answer may have:
        // ask the chain again next time.
        nextNonce = null;
        throw e;
      }
    });
  // toFacilitatorEvmSigner takes the signing address from `address` (its /supported signers).
  const signer = toFacilitatorEvmSigner({ ...client, address: account.address }, { confirmationTimeoutMs: CONFIRMATION_TIMEOUT_MS });
  return {
    ...signer,
    writeContract: (args) => send((nonce) => client.writeContract({ ...args, nonce })),
    sendTransaction: (args) => send((nonce) => client.sendTransaction({ ...args, nonce })),
    address: account.address,
  };
}

/**
 * Starts the facilitator. Returns { url, chainId, network, v1Networks, signer, stats, close() }.
 * - rpcUrl: the chain's JSON-RPC URL; privateKey: the gas account's key (it needs ETH).
 * - port: 0 picks a free one. chainId: asked from the chain unless given.
 * - log: a function called with one line per verify/settle (e.g. console.log), or null.
 */
export async function startFacilitator({ rpcUrl, privateKey, port = 0, host = "127.0.0.1", chainId, log = null } = {}) {
  if (!rpcUrl || !privateKey) throw new Error("startFacilitator needs rpcUrl and privateKey");
  chainId ??= await chainIdOf(rpcUrl);
  const network = `eip155:${chainId}`;
  const v1Networks = Object.entries(EVM_NETWORK_CHAIN_ID_MAP).filter(([, id]) => id === chainId).map(([n]) => n);
  const signer = serialFacilitatorSigner({ rpcUrl, privateKey, chainId });
  const facilitator = new x402Facilitator();
  registerExactEvmScheme(facilitator, { signer, networks: network });
  const stats = { verifies: 0, settles: 0, settled: 0, settleMs: [] };

  const supported = () => {
    const all = facilitator.getSupported();
    return { ...all, kinds: all.kinds.filter((k) => (k.x402Version === 1 ? v1Networks.includes(k.network) : k.network === network)) };
  };

  const send = (res, status, value) => {
    const text = JSON.stringify(value);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  };

  async function readJson(req) {
    const chunks = [];
    let size = 0;
    for await (const c of req) {
      size += c.length;
      if (size > MAX_BODY_BYTES) return { error: [413, "body_too_large"] };
      chunks.push(c);
    }
    try {
      return { body: JSON.parse(Buffer.concat(chunks).toString("utf8")) };
    } catch {
      return { error: [400, "invalid_json"] };
    }
  }

  async function paymentCall(kind, req, res) {
    const { body, error } = await readJson(req);
    if (error) return send(res, error[0], { error: error[1] });
    const payload = body?.paymentPayload;
    const requirements = body?.paymentRequirements;
    if (typeof payload !== "object" || payload === null || typeof requirements !== "object" || requirements === null) {
      return send(res, 400, { error: "invalid_request", detail: "paymentPayload and paymentRequirements objects are required" });
    }
    const version = payload.x402Version;
    const payer = payload.payload?.authorization?.from;
    const reqNetwork = requirements.network;
    const ours = version === 1 ? v1Networks.includes(reqNetwork) : version === 2 && reqNetwork === network;
    if (!ours || (body.x402Version !== undefined && body.x402Version !== version)) {
      const reason = version === 1 || version === 2 ? "invalid_network" : "invalid_x402_version";
      return kind === "verify"
        ? send(res, 200, { isValid: false, invalidReason: reason, payer })
        : send(res, 200, { success: false, errorReason: reason, transaction: "", network: reqNetwork ?? "", payer });
    }
    const t0 = performance.now();
    try {
      if (kind === "verify") {
        stats.verifies += 1;
        const r = await facilitator.verify(payload, requirements);
        log?.(`verify v${version} ${r.isValid ? "valid" : r.invalidReason} payer=${r.payer ?? payer} ${(performance.now() - t0).toFixed(1)} ms`);
        return send(res, 200, r);
      }
      stats.settles += 1;
      const r = await facilitator.settle(payload, requirements);
      const ms = performance.now() - t0;
      if (r.success) {
        stats.settled += 1;
        stats.settleMs.push(ms);
      }
      log?.(`settle v${version} ${r.success ? r.transaction : r.errorReason} payer=${r.payer ?? payer} ${ms.toFixed(1)} ms`);
      return send(res, 200, r);
    } catch (e) {
      log?.(`${kind} v${version} error: ${e?.message ?? e}`);
      return send(res, 500, { error: "facilitator_error", detail: String(e?.message ?? e).slice(0, 500) });
    }
  }

  const server = http.createServer(async (req, res) => {
    try {
      const path = new URL(req.url, "http://x").pathname;
      if (req.method === "GET" && path === "/supported") return send(res, 200, supported());
      if (req.method === "GET" && path === "/health") {
        return send(res, 200, { ok: true, chainId, network, v1Networks, signer: signer.address, verifies: stats.verifies, settles: stats.settles });
      }
      if (req.method === "POST" && (path === "/verify" || path === "/settle")) return await paymentCall(path.slice(1), req, res);
      return send(res, 404, { error: "not_found" });
    } catch (e) {
      if (!res.headersSent) send(res, 500, { error: "facilitator_error", detail: String(e?.message ?? e).slice(0, 500) });
      else res.destroy();
    }
  });
  server.on("clientError", (_e, socket) => socket.destroy());
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const url = `http://${host}:${server.address().port}`;
  return {
    url,
    chainId,
    network,
    v1Networks,
    signer: signer.address,
    stats,
    close() {
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const { ACCOUNTS } = await import("./chain.mjs");
  const f = await startFacilitator({
    rpcUrl: arg("--rpc") ?? process.env.RPC_URL ?? "http://127.0.0.1:8545",
    privateKey: arg("--key") ?? process.env.FACILITATOR_KEY ?? ACCOUNTS.facilitator.privateKey,
    port: Number(arg("--port") ?? 4021),
    log: (line) => console.log(line),
  });
  console.log(`x402 facilitator on ${f.url}: chain ${f.chainId} (${[f.network, ...f.v1Networks].join(", ")}), gas account ${f.signer}`);
  const stop = () => f.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
