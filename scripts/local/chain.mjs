// A real local EVM chain for paid calls: anvil (from the npm package
// @foundry-rs/anvil-linux-amd64) with ClawUSD, an EIP-3009 token whose EIP-712 domain is
// USDC's ({name "USDC", version "2"}), and a Multicall3-compatible contract at the canonical
// Multicall3 address (the official facilitator reads its failure diagnostics through it).
//
// The anvil binary is spawned directly (no shell) and stopped by its PID: SIGTERM (anvil
// then writes its state file), SIGKILL if it has not exited within 3 s, and SIGKILL when
// this node process exits without stopping it.
//
// Accounts are anvil's deterministic development keys (public knowledge, local use only):
//   0 deployer   deploys ClawUSD and is its only minter
//   1 facilitator  the facilitator's gas account: sends transferWithAuthorization
//   2 treasury   the platform treasury: payouts to creators are sent from here (minted
//                PAYER_FUNDS_ATOMIC ClawUSD like the payers, and topped up the same way)
//   3 creator    the demo creator's payTo (receives payments)
//   4, 5, 6 payers  each minted PAYER_FUNDS_ATOMIC ClawUSD (1,000,000 tokens)
//
// With `statePath` (a directory) the chain's state is kept across restarts: anvil loads and
// dumps `<statePath>/anvil-state.json` (also every few seconds), and `deployment.json` says
// where the token is. The token is reused when its code is still there and the contract
// sources have not changed; otherwise it is deployed anew (balances start over).

import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import {
  createPublicClient,
  createWalletClient,
  defineChain,
  http,
  getAddress,
  keccak256,
  parseAbiItem,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { fileURLToPath } from "node:url";
import { loadArtifacts } from "./chain/compile.mjs";

// Not imported from runtime.mjs: that one loads miniflare and wrangler, which chain users
// (the facilitator, pay.mjs) do not need.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export const ANVIL_BIN = path.join(ROOT, "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
export const MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11";
/// Base Sepolia's chain id: protocol v1 clients only know named networks, and `base-sepolia`
/// is 84532, so a local chain with this id serves v1 and v2 (`eip155:84532`) alike.
export const DEFAULT_CHAIN_ID = 84532;
export const TOKEN_DECIMALS = 6;
/// 1,000,000 tokens of 6 decimals per payer.
export const PAYER_FUNDS_ATOMIC = 1_000_000n * 10n ** 6n;
/// A restarted chain tops a payer back up to PAYER_FUNDS_ATOMIC below this (100 tokens).
const PAYER_TOP_UP_BELOW_ATOMIC = 100n * 10n ** 6n;
/// Seconds between state dumps when `statePath` is set (anvil also dumps on SIGTERM).
const STATE_INTERVAL_S = 5;
const RPC_READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 3_000;

const DEV_KEYS = [
  "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
  "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
  "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
  "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
  "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
];
const account = (i) => {
  const a = privateKeyToAccount(DEV_KEYS[i]);
  return { address: a.address, privateKey: DEV_KEYS[i], account: a };
};
/// The chain's named accounts (see the header). `account` is a viem local account.
export const ACCOUNTS = Object.freeze({
  deployer: account(0),
  facilitator: account(1),
  treasury: account(2),
  creator: account(3),
  payers: [account(4), account(5), account(6)],
});

const TRANSFER_EVENT = parseAbiItem("event Transfer(address indexed from, address indexed to, uint256 value)");

function freePort(host) {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function rpc(url, method, params = []) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = await res.json();
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result;
}

/// Spawns anvil and resolves once its RPC answers. Rejects (and kills it) otherwise.
async function spawnAnvil({ host, port, chainId, blockTimeS, stateFile }) {
  if (!fs.existsSync(ANVIL_BIN)) throw new Error(`${ANVIL_BIN} is missing: run npm ci`);
  const args = ["--host", host, "--port", String(port), "--chain-id", String(chainId), "--silent"];
  if (blockTimeS) args.push("--block-time", String(blockTimeS));
  if (stateFile) args.push("--state", stateFile, "--state-interval", String(STATE_INTERVAL_S));
  const child = spawn(ANVIL_BIN, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  const url = `http://${host}:${port}`;
  const deadline = Date.now() + RPC_READY_TIMEOUT_MS;
  let gone = null;
  exited.then((e) => (gone = e));
  for (;;) {
    if (gone) {
      process.removeListener("exit", killOnExit);
      throw new Error(`anvil exited (${gone.code ?? gone.signal}) before answering: ${stderr.trim()}`);
    }
    try {
      const id = await rpc(url, "eth_chainId");
      if (Number(id) !== chainId) throw new Error(`anvil answers chain id ${Number(id)}, expected ${chainId}`);
      break;
    } catch (e) {
      if (e.message.startsWith("anvil answers")) {
        child.kill("SIGKILL");
        throw e;
      }
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`anvil did not answer on ${url} within ${RPC_READY_TIMEOUT_MS} ms: ${stderr.trim()}`);
      }
      await sleep(20);
    }
  }
  const stop = async () => {
    if (gone) return;
    child.kill("SIGTERM");
    const timer = sleep(STOP_GRACE_MS).then(() => "timeout");
    if ((await Promise.race([exited, timer])) === "timeout") {
      child.kill("SIGKILL");
      await exited;
    }
    process.removeListener("exit", killOnExit);
  };
  return { url, pid: child.pid, stop, exited };
}

/// A viem chain object for the local chain.
export { TRANSFER_WITH_AUTHORIZATION } from "../eip3009.mjs";


export function localChain(chainId, rpcUrl) {
  return defineChain({
    id: chainId,
    name: `claw-local-${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
}

/**
 * Starts anvil with ClawUSD deployed (or found again in `statePath`), Multicall3 code in
 * place and the payers and the treasury funded. Returns
 *   { rpcUrl, chainId, network: "eip155:<id>", token, multicall, accounts, pid,
 *     publicClient, walletClient(key), balanceOf(addr), authorizationState(addr, nonce),
 *     transfersTo(addr, {fromBlock}), mint(to, atomic), tokenRequirementsExtra, stop() }
 * - port: 0 picks a free one. chainId: 84532 by default (see DEFAULT_CHAIN_ID).
 * - statePath: a directory to keep the chain in across restarts (null: in memory).
 * - blockTimeS: mine a block every N seconds instead of one per transaction.
 */
export async function startChain({ port = 0, host = "127.0.0.1", chainId = DEFAULT_CHAIN_ID, statePath = null, blockTimeS } = {}) {
  const artifacts = await loadArtifacts();
  const codeHash = keccak256(artifacts.contracts.ClawUSD.deployedBytecode);
  let stateFile = null;
  let deploymentFile = null;
  let saved = null;
  if (statePath) {
    fs.mkdirSync(statePath, { recursive: true });
    stateFile = path.join(statePath, "anvil-state.json");
    deploymentFile = path.join(statePath, "deployment.json");
    try {
      saved = JSON.parse(fs.readFileSync(deploymentFile, "utf8"));
    } catch {}
    // State of another chain id, or with no record of its token: start over.
    if (saved?.chainId !== chainId) {
      saved = null;
      fs.rmSync(stateFile, { force: true });
    }
  }

  let anvil;
  for (let attempt = 0; ; attempt++) {
    const p = port || (await freePort(host));
    try {
      anvil = await spawnAnvil({ host, port: p, chainId, blockTimeS, stateFile });
      break;
    } catch (e) {
      // A free port taken between our probe and anvil's bind: try another one.
      if (port || attempt >= 2 || !/address already in use|Address in use|os error 98/i.test(e.message)) throw e;
    }
  }

  try {
    const rpcUrl = anvil.url;
    const chain = localChain(chainId, rpcUrl);
    // Automining: receipts are there at once; with a block time, poll often.
    const pollingInterval = blockTimeS ? 100 : 50;
    const publicClient = createPublicClient({ chain, transport: http(rpcUrl), pollingInterval });
    const walletClient = (key) =>
      createWalletClient({ chain, transport: http(rpcUrl), account: privateKeyToAccount(key), pollingInterval });
    const deployer = walletClient(ACCOUNTS.deployer.privateKey);
    const tokenAbi = artifacts.contracts.ClawUSD.abi;

    await rpc(rpcUrl, "anvil_setCode", [MULTICALL3_ADDRESS, artifacts.contracts.Multicall.deployedBytecode]);

    let token = null;
    if (saved?.token && saved.codeHash === codeHash) {
      const code = await publicClient.getCode({ address: saved.token });
      if (code && code !== "0x") token = getAddress(saved.token);
    }
    const fresh = !token;
    if (fresh) {
      const hash = await deployer.deployContract({ abi: tokenAbi, bytecode: artifacts.contracts.ClawUSD.bytecode });
      const receipt = await publicClient.waitForTransactionReceipt({ hash });
      if (receipt.status !== "success") throw new Error(`ClawUSD deployment failed: ${hash}`);
      token = getAddress(receipt.contractAddress);
    }
    const balanceOf = (address) =>
      publicClient.readContract({ address: token, abi: tokenAbi, functionName: "balanceOf", args: [address] });

    // Fund the payers and the treasury: sends in a row with explicit nonces, then wait for
    // every receipt.
    const mints = [];
    for (const p of [...ACCOUNTS.payers, ACCOUNTS.treasury]) {
      const balance = fresh ? 0n : await balanceOf(p.address);
      if (balance < PAYER_TOP_UP_BELOW_ATOMIC) mints.push([p.address, PAYER_FUNDS_ATOMIC - balance]);
    }
    if (mints.length) {
      let nonce = await publicClient.getTransactionCount({ address: ACCOUNTS.deployer.address, blockTag: "pending" });
      const hashes = [];
      for (const [to, amount] of mints) {
        hashes.push(await deployer.writeContract({ address: token, abi: tokenAbi, functionName: "mint", args: [to, amount], nonce: nonce++ }));
      }
      for (const hash of hashes) {
        const r = await publicClient.waitForTransactionReceipt({ hash });
        if (r.status !== "success") throw new Error(`mint failed: ${hash}`);
      }
    }
    if (deploymentFile) {
      fs.writeFileSync(deploymentFile, JSON.stringify({ chainId, token, codeHash, deployer: ACCOUNTS.deployer.address }, null, 2) + "\n");
    }

    return {
      rpcUrl,
      chainId,
      network: `eip155:${chainId}`,
      token,
      multicall: MULTICALL3_ADDRESS,
      accounts: ACCOUNTS,
      pid: anvil.pid,
      decimals: TOKEN_DECIMALS,
      /// The `extra` of payment requirements in this token (its EIP-712 domain).
      tokenRequirementsExtra: { name: "USDC", version: "2" },
      tokenAbi,
      chain,
      publicClient,
      walletClient,
      balanceOf,
      authorizationState: (authorizer, nonce) =>
        publicClient.readContract({ address: token, abi: tokenAbi, functionName: "authorizationState", args: [authorizer, nonce] }),
      /// The token's Transfer logs to `to`, oldest first: [{from, to, value, txHash, blockNumber, logIndex}].
      async transfersTo(to, { fromBlock = 0n } = {}) {
        const logs = await publicClient.getLogs({ address: token, event: TRANSFER_EVENT, args: { to }, fromBlock, toBlock: "latest" });
        return logs.map((l) => ({
          from: l.args.from,
          to: l.args.to,
          value: l.args.value,
          txHash: l.transactionHash,
          blockNumber: l.blockNumber,
          logIndex: l.logIndex,
        }));
      },
      async mint(to, amount) {
        const hash = await deployer.writeContract({ address: token, abi: tokenAbi, functionName: "mint", args: [to, BigInt(amount)] });
        const r = await publicClient.waitForTransactionReceipt({ hash });
        if (r.status !== "success") throw new Error(`mint failed: ${hash}`);
        return hash;
      },
      stop: anvil.stop,
    };
  } catch (e) {
    await anvil.stop();
    throw e;
  }
}

/// Formats atomic units of a 6-decimal token as a decimal string (no floats).
export function formatAtomic(atomic, decimals = TOKEN_DECIMALS) {
  const v = BigInt(atomic);
  const sign = v < 0n ? "-" : "";
  const abs = v < 0n ? -v : v;
  const unit = 10n ** BigInt(decimals);
  const frac = (abs % unit).toString().padStart(decimals, "0").replace(/0+$/, "");
  return `${sign}${abs / unit}${frac ? "." + frac : ""}`;
}
