// Reference payout job: pays each tenant's available balance out, exactly once, however
// often it is killed and rerun, with an EIP-3009 transfer from the platform treasury.
//
//   PLATFORM_PAYOUT_TOKEN=... PAYOUT_TREASURY_KEY=0x... PAYOUT_RPC_URL=http://127.0.0.1:8545 \
//   PAYOUT_TOKEN_ADDRESS=0xTOKEN node scripts/payout-job.mjs --base http://127.0.0.1:8787 \
//       --state .state/payout-job.json --tenant demo-paid=0xDESTINATION [--tenant ...]
//
// Per tenant, from the cursor saved in the state file:
// 1. page the ledger's entries after the cursor (GET /__platform/ledger/{slug}/entries)
//    up to the last seq now: the range (cursor, upTo] names this payout;
// 2. read the available balance (GET .../earnings); nothing available: save the cursor, done;
// 3. write the intent {key, amount, destination, upTo} to the state file BEFORE creating
//    anything (the key is `payout:{slug}:{cursor+1}-{upTo}`, so a rerun sends the very
//    same request);
// 4. create the payout (POST .../payouts with Idempotency-Key: key): a rerun gets the
//    original payout back (200), never a second one; a changed body would be a 422;
// 5. send it, if it is still pending (see "On chain" below): the transfer's EIP-3009 nonce
//    is a function of the slug and the key, so the chain itself refuses a second transfer
//    for the same payout;
// 6. post it with the transaction hash (a repeat is a replay), then save the cursor = upTo
//    and clear the intent.
// A kill between any two steps is safe: the rerun resumes the saved intent with the same
// key and body. Even with the state file lost, the ledger never pays more than what is
// available (pending and posted payouts are already taken out of it).
//
// On chain (the default when PAYOUT_TREASURY_KEY, PAYOUT_RPC_URL and PAYOUT_TOKEN_ADDRESS, or
// --rpc / --token, are set):
// - nonce = keccak256("402claw/payout/v1\n{slug}\n{key}"): one nonce per payout;
// - first the chain is asked: authorizationState(treasury, nonce) used means the payout was
//   already sent (by a run that died before posting): its transaction is found through the
//   token's AuthorizationUsed(treasury, nonce) log, checked (the same transaction holds the
//   Transfer(treasury, destination, amount)) and posted. A nonce used for anything else is
//   an error, nothing is posted;
// - unused: the treasury signs transferWithAuthorization(treasury -> destination, amount,
//   validAfter 0, validBefore now + --valid-for seconds (default 3600), nonce) (EIP-712
//   domain {name "USDC", version "2", chainId, token}, overridable with --token-name /
//   --token-version), the gas account (PAYOUT_GAS_KEY, default the treasury) submits it and
//   waits for the receipt. A reverted transaction is a failure: nothing is posted, the
//   payout stays pending and the rerun asks the chain again. However many times this runs,
//   the nonce lets the transfer execute once. The bound on validBefore means a signed but
//   lost authorization expires: once it has and the nonce is still unused, voiding the
//   payout cannot race a late transfer.
// - before the first send the intent records the rail (chain id, token, treasury: the nonce
//   is the treasury's) and the block to search logs from; an intent of another rail is
//   refused (another treasury could pay the same payout again).
//
// SIMULATED (only with --simulate, or when no chain setting at all is given; said loudly
// on stderr): no funds move; the transfer reference is `simulated:<sha256(key)>`.
//
// Test hooks: PAYOUT_JOB_EXIT_AFTER=step exits (code 86) right after that step;
// PAYOUT_JOB_HANG_AFTER=step prints "payout-job: hanging after {step}" on stderr and waits
// to be killed. Steps: intent, create, sign (chain: authorization signed, not submitted),
// broadcast (chain: submitted, receipt not awaited), send (transfer done, not posted), post.

import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import {
  createPublicClient,
  createWalletClient,
  defineChain,
  getAddress,
  http,
  isAddress,
  keccak256,
  parseAbi,
  parseEventLogs,
  parseSignature,
  stringToBytes,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { TRANSFER_WITH_AUTHORIZATION } from "./eip3009.mjs";

export const PAGE_LIMIT = 100;
export const KILL_EXIT_CODE = 86;
export const PAYOUT_NONCE_DOMAIN = "402claw/payout/v1";
/// Seconds a signed payout authorization stays valid (validBefore = now + this).
export const DEFAULT_VALID_FOR_S = 3600;

function loadState(file) {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    if (e.code === "ENOENT") return { tenants: {} };
    throw e;
  }
}

/// Writes the state atomically (temp file + rename), so a kill never leaves half a file.
function saveState(file, state) {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(state, null, 2));
  fs.renameSync(tmp, file);
}

async function killPoint(step) {
  if (process.env.PAYOUT_JOB_EXIT_AFTER === step) {
    console.error(`payout-job: exiting after ${step} (PAYOUT_JOB_EXIT_AFTER)`);
    process.exit(KILL_EXIT_CODE);
  }
  if (process.env.PAYOUT_JOB_HANG_AFTER === step) {
    console.error(`payout-job: hanging after ${step} (PAYOUT_JOB_HANG_AFTER)`);
    await new Promise(() => setInterval(() => {}, 1 << 30));
  }
}

export function client(base, token) {
  const call = async (method, p, { body, headers = {} } = {}) => {
    const res = await fetch(`${base}/__platform${p}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}), ...headers },
      body,
    });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {}
    if (res.status >= 400) {
      const err = new Error(`${method} ${p}: ${res.status} ${json?.code ?? text}`);
      err.status = res.status;
      err.problem = json;
      throw err;
    }
    return { status: res.status, json };
  };
  return {
    entries: (slug, after, limit = PAGE_LIMIT) => call("GET", `/ledger/${slug}/entries?after=${after}&limit=${limit}`),
    earnings: (slug) => call("GET", `/ledger/${slug}/earnings?days=1`),
    createPayout: (slug, key, body) => call("POST", `/ledger/${slug}/payouts`, { body, headers: { "idempotency-key": key } }),
    payout: (slug, id) => call("GET", `/ledger/${slug}/payouts/${id}`),
    postPayout: (slug, id, txRef) => call("POST", `/ledger/${slug}/payouts/${id}/post`, { body: JSON.stringify({ txRef }) }),
  };
}

/// Pages the journal from `after` to its end; returns {upTo, pages, entries}.
export async function readToEnd(api, slug, after, limit = PAGE_LIMIT) {
  let cursor = after;
  let pages = 0;
  let entries = 0;
  for (;;) {
    const { json } = await api.entries(slug, cursor, limit);
    pages += 1;
    entries += json.entries.length;
    cursor = json.nextCursor;
    if (!json.hasMore) return { upTo: cursor, pages, entries };
  }
}

/// The simulated transfer: no funds move. Its reference is a function of the key only.
export function simulatedTransfer(key) {
  return `simulated:${crypto.createHash("sha256").update(key).digest("hex")}`;
}

/// The SIMULATED rail: nothing moves, the reference names the key.
export const simulatedRail = Object.freeze({
  id: "simulated",
  async send({ key }) {
    return { txRef: simulatedTransfer(key) };
  },
});

/// The payout's EIP-3009 nonce: one per (tenant, idempotency key), domain-separated.
export function payoutNonce(slug, key) {
  return keccak256(stringToBytes(`${PAYOUT_NONCE_DOMAIN}\n${slug}\n${key}`));
}

export const EIP3009_ABI = parseAbi([
  "function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)",
  "function authorizationState(address authorizer, bytes32 nonce) view returns (bool)",
  "function balanceOf(address account) view returns (uint256)",
  "event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)",
  "event Transfer(address indexed from, address indexed to, uint256 value)",
]);


/**
 * The chain rail: EIP-3009 transfers signed by the treasury, submitted by the gas account.
 * { rpcUrl, token, treasuryKey, gasKey = treasuryKey, tokenName = "USDC", tokenVersion = "2",
 *   validForS = 3600, pollingIntervalMs = 100 }
 */
export async function chainRail({
  rpcUrl,
  token,
  treasuryKey,
  gasKey = treasuryKey,
  tokenName = "USDC",
  tokenVersion = "2",
  validForS = DEFAULT_VALID_FOR_S,
  pollingIntervalMs = 100,
}) {
  const treasury = privateKeyToAccount(treasuryKey);
  const gas = privateKeyToAccount(gasKey);
  token = getAddress(token);
  const probe = createPublicClient({ transport: http(rpcUrl) });
  const chainId = await probe.getChainId();
  const chain = defineChain({
    id: chainId,
    name: `payout-${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  const pub = createPublicClient({ chain, transport: http(rpcUrl), pollingInterval: pollingIntervalMs });
  const wallet = createWalletClient({ chain, transport: http(rpcUrl), account: gas, pollingInterval: pollingIntervalMs });
  const read = (functionName, args) => pub.readContract({ address: token, abi: EIP3009_ABI, functionName, args });

  /// The transaction that used `nonce`, checked to be this payout's transfer.
  async function findUsed(nonce, destination, amount, fromBlock) {
    const logs = await pub.getContractEvents({
      address: token,
      abi: EIP3009_ABI,
      eventName: "AuthorizationUsed",
      args: { authorizer: treasury.address, nonce },
      fromBlock,
      toBlock: "latest",
    });
    if (logs.length !== 1) {
      throw new Error(
        `nonce ${nonce} is used but ${logs.length} AuthorizationUsed logs name it (canceled, or searched from a later block than ${fromBlock}): not posting`,
      );
    }
    const txHash = logs[0].transactionHash;
    await checkTransfer(txHash, nonce, destination, amount);
    return txHash;
  }

  /// Throws unless the receipt of `txHash` succeeded and holds AuthorizationUsed(treasury,
  /// nonce) and Transfer(treasury, destination, amount) from the token.
  async function checkTransfer(txHash, nonce, destination, amount, receipt = null) {
    receipt ??= await pub.getTransactionReceipt({ hash: txHash });
    if (receipt.status !== "success") throw new Error(`transaction ${txHash} reverted: not posting`);
    const logs = parseEventLogs({ abi: EIP3009_ABI, logs: receipt.logs.filter((l) => getAddress(l.address) === token) });
    const used = logs.some((l) => l.eventName === "AuthorizationUsed" && l.args.authorizer === treasury.address && l.args.nonce === nonce);
    const moved = logs.some(
      (l) => l.eventName === "Transfer" && l.args.from === treasury.address && l.args.to === destination && l.args.value === amount,
    );
    if (!used || !moved) {
      throw new Error(`transaction ${txHash} used nonce ${nonce} but is not a transfer of ${amount} to ${destination}: not posting`);
    }
  }

  return {
    id: `chain:${chainId}:${token}:${treasury.address}`,
    chainId,
    token,
    treasury: treasury.address,
    gas: gas.address,
    blockNumber: () => pub.getBlockNumber(),
    /// Sends (or finds) the payout's transfer; returns {txRef, nonce, outcome, sendToReceiptMs}.
    async send({ slug, key, destination, amount, fromBlock = 0n, killPoint: kill = killPoint }) {
      destination = getAddress(destination);
      amount = BigInt(amount);
      const nonce = payoutNonce(slug, key);
      if (await read("authorizationState", [treasury.address, nonce])) {
        return { txRef: await findUsed(nonce, destination, amount, BigInt(fromBlock)), nonce, outcome: "already_sent" };
      }
      const held = await read("balanceOf", [treasury.address]);
      if (held < amount) throw new Error(`treasury ${treasury.address} holds ${held}, the payout needs ${amount}: not sent`);
      const message = {
        from: treasury.address,
        to: destination,
        value: amount,
        validAfter: 0n,
        validBefore: BigInt(Math.floor(Date.now() / 1000) + validForS),
        nonce,
      };
      const signature = await treasury.signTypedData({
        domain: { name: tokenName, version: tokenVersion, chainId, verifyingContract: token },
        types: TRANSFER_WITH_AUTHORIZATION,
        primaryType: "TransferWithAuthorization",
        message,
      });
      const { v, r, s } = parseSignature(signature);
      await kill("sign");
      const t0 = performance.now();
      const hash = await wallet.writeContract({
        address: token,
        abi: EIP3009_ABI,
        functionName: "transferWithAuthorization",
        args: [message.from, message.to, message.value, message.validAfter, message.validBefore, nonce, Number(v), r, s],
      });
      await kill("broadcast");
      const receipt = await pub.waitForTransactionReceipt({ hash });
      const sendToReceiptMs = performance.now() - t0;
      await checkTransfer(hash, nonce, destination, amount, receipt);
      return { txRef: hash, nonce, outcome: "sent", sendToReceiptMs };
    },
  };
}

/// One tenant's payout run. Returns what happened, for logs and tests.
export async function payTenant(api, stateFile, slug, destination, rail = simulatedRail) {
  const state = loadState(stateFile);
  const t = (state.tenants[slug] ??= { cursor: 0, intent: null });
  if (!t.intent) {
    const { upTo } = await readToEnd(api, slug, t.cursor);
    if (upTo === t.cursor) return { slug, action: "nothing_new", cursor: t.cursor };
    const { json: earnings } = await api.earnings(slug);
    if (BigInt(earnings.available) === 0n) {
      t.cursor = upTo;
      saveState(stateFile, state);
      return { slug, action: "nothing_available", cursor: upTo };
    }
    t.intent = {
      key: `payout:${slug}:${t.cursor + 1}-${upTo}`,
      // Exactly these bytes are sent on every attempt (the fingerprint is their SHA-256).
      body: JSON.stringify({ amount: earnings.available, destination }),
      upTo,
    };
    saveState(stateFile, state);
  }
  await killPoint("intent");
  const { key, body, upTo } = t.intent;
  const created = await api.createPayout(slug, key, body);
  const payout = created.json;
  await killPoint("create");
  let posted = payout;
  let sent = null;
  if (payout.state === "pending") {
    // The rail this intent is paid on, and where its logs start, are fixed before the first
    // send: a rerun on another rail (or chain, or token) must not pay it a second time.
    if (t.intent.rail && t.intent.rail !== rail.id) {
      throw new Error(`intent ${key} is being paid on ${t.intent.rail}, not ${rail.id}: refusing`);
    }
    if (!t.intent.rail) {
      t.intent.rail = rail.id;
      if (rail.blockNumber) t.intent.fromBlock = String(await rail.blockNumber());
      saveState(stateFile, state);
    }
    sent = await rail.send({ slug, key, destination: payout.destination, amount: payout.amount, fromBlock: BigInt(t.intent.fromBlock ?? 0) });
    await killPoint("send");
    posted = (await api.postPayout(slug, payout.id, sent.txRef)).json;
  }
  await killPoint("post");
  t.cursor = upTo;
  t.intent = null;
  saveState(stateFile, state);
  return {
    slug,
    action: created.status === 201 ? "paid" : "resumed",
    payoutId: posted.id,
    amount: posted.amount,
    state: posted.state,
    txRef: posted.txRef,
    cursor: upTo,
    rail: rail.id,
    ...(sent?.outcome ? { transfer: { outcome: sent.outcome, nonce: sent.nonce, sendToReceiptMs: sent.sendToReceiptMs } } : {}),
  };
}

function parseArgs(argv) {
  const out = { tenants: [], base: "http://127.0.0.1:8787", state: ".state/payout-job.json", simulate: false };
  for (let i = 0; i < argv.length; i++) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === "--base") (out.base = v), i++;
    else if (k === "--state") (out.state = v), i++;
    else if (k === "--rpc") (out.rpc = v), i++;
    else if (k === "--token") (out.token = v), i++;
    else if (k === "--token-name") (out.tokenName = v), i++;
    else if (k === "--token-version") (out.tokenVersion = v), i++;
    else if (k === "--valid-for") (out.validForS = Number(v)), i++;
    else if (k === "--simulate") out.simulate = true;
    else if (k === "--tenant") {
      const [slug, destination] = v.split("=");
      out.tenants.push({ slug, destination });
      i++;
    } else throw new Error(`unknown argument ${k}`);
  }
  return out;
}

const usage = (msg) => {
  console.error(msg);
  process.exit(2);
};

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = parseArgs(process.argv.slice(2));
  const token = process.env.PLATFORM_PAYOUT_TOKEN;
  if (!token) usage("PLATFORM_PAYOUT_TOKEN is required");
  if (args.tenants.length === 0 || args.tenants.some((t) => !t.destination)) {
    usage("usage: payout-job.mjs --base URL --state FILE --tenant slug=0xDESTINATION ... [--rpc URL --token 0xTOKEN | --simulate]");
  }
  const chainCfg = {
    rpcUrl: args.rpc ?? process.env.PAYOUT_RPC_URL,
    token: args.token ?? process.env.PAYOUT_TOKEN_ADDRESS,
    treasuryKey: process.env.PAYOUT_TREASURY_KEY,
  };
  const given = Object.entries(chainCfg).filter(([, v]) => v);
  let rail;
  if (args.simulate || given.length === 0) {
    console.error(
      `payout-job: SIMULATED transfers, no funds move (${args.simulate ? "--simulate" : "no PAYOUT_TREASURY_KEY / PAYOUT_RPC_URL / PAYOUT_TOKEN_ADDRESS set"})`,
    );
    rail = simulatedRail;
  } else {
    if (given.length < 3) {
      usage("payout-job: paying on chain needs PAYOUT_TREASURY_KEY, PAYOUT_RPC_URL (or --rpc) and PAYOUT_TOKEN_ADDRESS (or --token)");
    }
    if (!isAddress(chainCfg.token)) usage(`payout-job: token ${chainCfg.token} is not an address`);
    const bad = args.tenants.find((t) => !isAddress(t.destination));
    if (bad) usage(`payout-job: ${bad.slug}'s destination ${bad.destination} is not an address`);
    const validForS = args.validForS ?? Number(process.env.PAYOUT_VALID_FOR_S ?? DEFAULT_VALID_FOR_S);
    if (!Number.isInteger(validForS) || validForS <= 0) usage("payout-job: --valid-for must be a positive number of seconds");
    rail = await chainRail({
      ...chainCfg,
      gasKey: process.env.PAYOUT_GAS_KEY || chainCfg.treasuryKey,
      tokenName: args.tokenName ?? process.env.PAYOUT_TOKEN_NAME ?? "USDC",
      tokenVersion: args.tokenVersion ?? process.env.PAYOUT_TOKEN_VERSION ?? "2",
      validForS,
    });
  }
  const api = client(args.base, token);
  let failed = false;
  for (const { slug, destination } of args.tenants) {
    try {
      console.log(JSON.stringify(await payTenant(api, args.state, slug, destination, rail)));
    } catch (e) {
      failed = true;
      console.error(`payout-job: ${slug}: ${e.message}`);
    }
  }
  process.exit(failed ? 1 : 0);
}
