// Real payments for the local platform, the e2e tests and the benchmarks: the local chain
// (scripts/local/chain.mjs) plus the official facilitator logic on loopback
// (scripts/local/facilitator.mjs), started together and stopped together.

import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { privateKeyToAccount } from "viem/accounts";
import { startChain } from "./chain.mjs";
import { startFacilitator } from "./facilitator.mjs";

/**
 * Starts the chain, then the facilitator on it (gas account: the chain's facilitator
 * account). Returns { chain, facilitator, facilitatorUrl, network, token, accounts,
 * tenantPrice({amountAtomic, payTo, description}), stop() }.
 * Options: statePath, chainPort, chainId, blockTimeS (startChain); facilitatorPort, log
 * (startFacilitator).
 */
export async function startChainAndFacilitator({ statePath = null, chainPort = 0, chainId, blockTimeS, facilitatorPort = 0, log = null } = {}) {
  const chain = await startChain({ port: chainPort, statePath, blockTimeS, ...(chainId ? { chainId } : {}) });
  let facilitator;
  try {
    facilitator = await startFacilitator({
      rpcUrl: chain.rpcUrl,
      privateKey: chain.accounts.facilitator.privateKey,
      chainId: chain.chainId,
      port: facilitatorPort,
      log,
    });
  } catch (e) {
    await chain.stop();
    throw e;
  }
  return {
    chain,
    facilitator,
    facilitatorUrl: facilitator.url,
    network: chain.network,
    token: chain.token,
    accounts: chain.accounts,
    /// A tenant config's `price` in the chain's token (CAIP-2 network, the token's domain).
    tenantPrice: ({ amountAtomic = "1000", payTo = chain.accounts.creator.address, description } = {}) => ({
      amountAtomic: String(amountAtomic),
      network: chain.network,
      asset: chain.token,
      payTo,
      assetName: chain.tokenRequirementsExtra.name,
      assetVersion: chain.tokenRequirementsExtra.version,
      ...(description ? { description } : {}),
    }),
    async stop() {
      await facilitator.close();
      await chain.stop();
    },
  };
}

/**
 * `fetch` that pays with the official v2 client (@x402/fetch + @x402/evm) as `account` (a
 * viem account, or one of the chain's {address, privateKey} accounts), allowed to pay
 * `pay`'s token up to `maxAmountAtomic`. `seen` collects the payment headers it sends (to
 * retry or replay one).
 */
export function paidFetch(pay, account, { maxAmountAtomic, seen = [] }) {
  const client = new x402Client();
  const signer = account.signTypedData ? account : privateKeyToAccount(account.privateKey);
  registerExactEvmScheme(client, { signer });
  // The official client pays only assets it knows unless they are allowed explicitly.
  client.setSpendControls({ allowedAssets: [{ network: pay.network, asset: pay.token, maxAmountPerPayment: String(maxAmountAtomic) }] });
  const recording = (input, init) => {
    const h = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    if (h.get("payment-signature")) seen.push(h.get("payment-signature"));
    return fetch(input, init);
  };
  return wrapFetchWithPayment(recording, client);
}
