// Pays one call with the official x402 client, against the local chain that scripts/dev
// runs: @x402/fetch + @x402/evm (protocol v2) by default, x402-fetch (v1) with --v1.
// Prints the status, the body, the decoded payment response, and the payer's and payTo's
// token balances before and after (read from the chain).
//
//   node scripts/local/pay.mjs <url> [--v1] [--payer 0|1|2] [--rpc URL] [--key 0x..]
//
// The payer is one of the local chain's funded payer accounts (scripts/local/chain.mjs),
// unless --key is given. --rpc defaults to $RPC_URL or http://127.0.0.1:8545 (scripts/dev's
// chain). The official v2 client only pays assets it knows unless allowed: the offer's asset
// is allowed here, capped at --max atomic units (default 1000000, one token).

import { wrapFetchWithPayment as wrapV2, x402Client, decodePaymentResponseHeader } from "@x402/fetch";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { wrapFetchWithPayment as wrapV1, decodeXPaymentResponse } from "x402-fetch";
import { createPublicClient, createWalletClient, http, parseAbi } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { ACCOUNTS, localChain, formatAtomic } from "./chain.mjs";

const ERC20 = parseAbi(["function balanceOf(address) view returns (uint256)", "function decimals() view returns (uint8)"]);

function parseArgs(argv) {
  const o = { v1: false, payer: 0, rpc: process.env.RPC_URL ?? "http://127.0.0.1:8545", key: null, max: "1000000", url: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--v1") o.v1 = true;
    else if (a === "--payer") o.payer = Number(argv[++i]);
    else if (a === "--rpc") o.rpc = argv[++i];
    else if (a === "--key") o.key = argv[++i];
    else if (a === "--max") o.max = argv[++i];
    else if (!a.startsWith("--") && !o.url) o.url = a;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.url) throw new Error("usage: node scripts/local/pay.mjs <url> [--v1] [--payer 0|1|2] [--rpc URL] [--key 0x..] [--max atomic]");
  if (!/^\d+$/.test(o.max)) throw new Error("--max is an integer number of atomic units");
  return o;
}

/// The offer a 402 makes (v2 header if present, else the v1 body's first entry).
async function readOffer(url) {
  const res = await fetch(url);
  if (res.status !== 402) return { status: res.status, offer: null };
  const header = res.headers.get("payment-required");
  if (header) return { status: 402, offer: JSON.parse(Buffer.from(header, "base64").toString("utf8")).accepts[0] };
  return { status: 402, offer: (await res.json()).accepts?.[0] ?? null };
}

const o = parseArgs(process.argv.slice(2));
const account = privateKeyToAccount(o.key ?? ACCOUNTS.payers[o.payer]?.privateKey ?? ACCOUNTS.payers[0].privateKey);
const chainId = Number(
  (await (await fetch(o.rpc, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }) })).json()).result,
);
const chain = localChain(chainId, o.rpc);
const pub = createPublicClient({ chain, transport: http(o.rpc) });

const { status: firstStatus, offer } = await readOffer(o.url);
if (!offer) {
  console.log(`${o.url} answered ${firstStatus} without a payment offer: nothing to pay`);
  process.exit(1);
}
const balances = async () => {
  const read = (a) => pub.readContract({ address: offer.asset, abi: ERC20, functionName: "balanceOf", args: [a] });
  return { payer: await read(account.address), payTo: await read(offer.payTo) };
};
const before = await balances();

let fetchPaid;
if (o.v1) {
  const wallet = createWalletClient({ account, chain, transport: http(o.rpc) });
  fetchPaid = wrapV1(fetch, wallet, BigInt(o.max));
} else {
  const client = new x402Client();
  registerExactEvmScheme(client, { signer: account });
  client.setSpendControls({ allowedAssets: [{ network: offer.network.startsWith("eip155:") ? offer.network : `eip155:${chainId}`, asset: offer.asset, maxAmountPerPayment: o.max }] });
  fetchPaid = wrapV2(fetch, client);
}

const t0 = performance.now();
const res = await fetchPaid(o.url);
const ms = performance.now() - t0;
const body = await res.text();
const receiptHeader = res.headers.get("payment-response") ?? res.headers.get("x-payment-response");
const receipt = receiptHeader ? (res.headers.get("payment-response") ? decodePaymentResponseHeader(receiptHeader) : decodeXPaymentResponse(receiptHeader)) : null;
const after = await balances();

const fmt = (v) => `${formatAtomic(v)} (${v} atomic)`;
const diff = (a, b) => `${b - a >= 0n ? "+" : ""}${b - a}`;
console.log(`${o.v1 ? "x402-fetch (v1)" : "@x402/fetch + @x402/evm (v2)"} paid ${o.url} in ${ms.toFixed(0)} ms`);
console.log(`status   ${res.status}${res.headers.get("x-claw-charged") ? " (x-claw-charged: true)" : ""}`);
console.log(`body     ${body.length > 2000 ? body.slice(0, 2000) + "..." : body}`);
console.log(`receipt  ${receipt ? JSON.stringify(receipt) : "(none)"}`);
console.log(`offer    ${offer.amount ?? offer.maxAmountRequired} atomic of ${offer.asset} on ${offer.network} to ${offer.payTo}`);
console.log(`payer    ${account.address}: ${fmt(before.payer)} -> ${fmt(after.payer)} [${diff(before.payer, after.payer)}]`);
console.log(`payTo    ${offer.payTo}: ${fmt(before.payTo)} -> ${fmt(after.payTo)} [${diff(before.payTo, after.payTo)}]`);
process.exit(res.ok ? 0 : 2);
