// Interactive local run: the platform on workerd, state in .state/, demo tenants seeded.
//
// Payments (CLAW_PAYMENTS):
//   chain (default)  a real local chain (anvil, state in .state/chain/, RPC on CHAIN_PORT,
//                    default 8545) with the ClawUSD token, and the official x402
//                    facilitator logic on FACILITATOR_PORT (default 4021); the dispatcher
//                    gets FACILITATOR_URL, and demo-paid is priced in ClawUSD: funds move.
//   local            the development verifier in the Worker
//                    (ALLOW_LOCAL_X402_VERIFICATION=true): signatures checked, settlements
//                    recorded as local, no funds move, no chain.
import { startLocal, seedDemoTenants, DEV_ADMIN_TOKEN, DEMO_TENANTS, DEMO_PAID_TENANTS, ROOT } from "./runtime.mjs";
import { startChainAndFacilitator } from "./payments.mjs";
import { formatAtomic } from "./chain.mjs";
import path from "node:path";

const port = Number(process.env.PORT ?? 8787);
const mode = process.env.CLAW_PAYMENTS ?? "chain";
if (mode !== "chain" && mode !== "local") {
  console.error(`CLAW_PAYMENTS must be "chain" (default) or "local", not ${JSON.stringify(mode)}`);
  process.exit(2);
}
/// Local-only tokens of the payout job's and operators' APIs (production: Worker secrets).
const DEV_PAYOUT_TOKEN = "local-dev-payout-token";
const DEV_OPERATOR_TOKEN = "local-dev-operator-token";
const vars = { PLATFORM_PAYOUT_TOKEN: DEV_PAYOUT_TOKEN, PLATFORM_OPERATOR_TOKEN: DEV_OPERATOR_TOKEN };

let payments = null;
let paidTenants = DEMO_PAID_TENANTS;
if (mode === "chain") {
  payments = await startChainAndFacilitator({
    statePath: path.join(ROOT, ".state/chain"),
    chainPort: Number(process.env.CHAIN_PORT ?? 8545),
    facilitatorPort: Number(process.env.FACILITATOR_PORT ?? 4021),
    log: (line) => console.log(`[facilitator] ${line}`),
  });
  vars.FACILITATOR_URL = payments.facilitatorUrl;
  // The ledgers ask the chain about payments whose settlement outcome is unknown.
  vars.CHAIN_RPC_URLS = JSON.stringify({ [payments.network]: payments.chain.rpcUrl });
  paidTenants = {
    "demo-paid": {
      ...DEMO_PAID_TENANTS["demo-paid"],
      price: payments.tenantPrice({ amountAtomic: "1000", description: "demo paid call" }),
    },
  };
}

let platform;
try {
  platform = await startLocal({
    port,
    persistDir: path.join(ROOT, ".state"),
    verbose: true,
    allowLocalX402: mode === "local",
    vars,
  });
  await seedDemoTenants(platform.url);
  await seedDemoTenants(platform.url, DEV_ADMIN_TOKEN, paidTenants);
} catch (e) {
  await platform?.dispose();
  await payments?.stop();
  throw e;
}
const u = platform.url;
const paid = paidTenants["demo-paid"].price;
// pay.mjs reads the chain at http://127.0.0.1:8545 unless told otherwise.
const rpcArg = payments && payments.chain.rpcUrl !== "http://127.0.0.1:8545" ? ` --rpc ${payments.chain.rpcUrl}` : "";

let paymentsText;
if (payments) {
  const a = payments.accounts;
  const c = payments.chain;
  const bal = async (x) => formatAtomic(await c.balanceOf(x));
  paymentsText = `Payments: real, on a local chain (CLAW_PAYMENTS=local for the in-Worker verifier, no funds move)
  chain        ${c.rpcUrl} (anvil, chain id ${c.chainId}, ${c.network} / base-sepolia), state in ${path.join(ROOT, ".state/chain")}
  token        ClawUSD ${c.token} (6 decimals, EIP-712 domain USDC / 2)
  facilitator  ${payments.facilitatorUrl} (official @x402/core + @x402/evm logic), gas account ${a.facilitator.address}
  demo-paid    ${paid.amountAtomic} atomic (${formatAtomic(paid.amountAtomic)} ClawUSD) per call to creator ${a.creator.address} (balance ${await bal(a.creator.address)})
  payers       ${(await Promise.all(a.payers.map(async (p, i) => `${i}: ${p.address} (${await bal(p.address)})`))).join("\n               ")}
  treasury     ${a.treasury.address} (platform payouts; anvil's development keys, local only)`;
} else {
  paymentsText = `Payments: ALLOW_LOCAL_X402_VERIFICATION=true (local verifier, nothing settles on chain)`;
}

console.log(`
402claw edge is running on workerd at ${u}
Durable Object state: ${path.join(ROOT, ".state")} (kept across restarts)
Demo tenants: ${[...Object.keys(DEMO_TENANTS), ...Object.keys(paidTenants)].join(", ")}
${paymentsText}

Try:
  curl -s ${u}/t/demo-fn/hello?name=agent
  curl -s http://demo-fn.localhost:${port}/echo -d 'hi'
  curl -s "${u}/t/demo-dataset/rows?country=PT"
  curl -s ${u}/t/nobody/x                      # 404 problem+json
  for i in 1 2 3 4; do curl -s -o /dev/null -D - ${u}/t/demo-limited/hello | grep -iE '^(HTTP|ratelimit|retry-after)'; done
                                               # rate limited: 3 at once, then 429 with Retry-After
  curl -s -H 'authorization: Bearer ${DEV_ADMIN_TOKEN}' ${u}/__platform/tenants
  curl -s -X PUT -H 'authorization: Bearer ${DEV_ADMIN_TOKEN}' ${u}/__platform/tenants/my-api \\
       -d '{"resourceType":"function","workerName":"demo-fn","plan":"pro","rateLimit":{"perCaller":"100/60s"}}'

Deploy your own code (live at once; the script API stand-in at ${platform.cloudflareApiUrl}, scripts kept in .state/kv):
  curl -s -X PUT -H 'authorization: Bearer ${DEV_ADMIN_TOKEN}' ${u}/__platform/tenants/my-fn \\
       -d '{"resourceType":"function","plan":"free","exposeEnv":["GREETING"],"maxDurationMs":5000}'
  printf 'export default { fetch(req, env) { return new Response((env.GREETING ?? "hello") + " from my-fn") } }' > /tmp/index.js
  curl -s -X PUT -H 'authorization: Bearer ${DEV_ADMIN_TOKEN}' ${u}/__platform/tenants/my-fn/deployment \\
       -F 'metadata={"main_module":"index.js","compatibility_date":"2026-04-20"};type=application/json' \\
       -F 'index.js=@/tmp/index.js;type=application/javascript+module'
  curl -s ${u}/t/my-fn/
  curl -s -X PUT -H 'authorization: Bearer ${DEV_ADMIN_TOKEN}' ${u}/__platform/tenants/my-fn/secrets/GREETING -d '{"value":"hi"}'
  curl -s -H 'authorization: Bearer ${DEV_ADMIN_TOKEN}' ${u}/__platform/tenants/my-fn/deployment    # live version + history
  curl -s -X POST -H 'authorization: Bearer ${DEV_ADMIN_TOKEN}' ${u}/__platform/tenants/my-fn/deployment/rollback
  # a dataset: {"resourceType":"dataset","plan":"pro"}, then one CSV part named by main_module:
  #   -F 'metadata={"main_module":"cities.csv","compatibility_date":"2026-04-20"};type=application/json' -F 'cities.csv=@tests/tenants/cities.csv;type=text/csv'
  #   curl -s "${u}/t/my-data/rows?country=PT&sort=-id&limit=2"; curl -s ${u}/t/my-data/schema

Paid calls (x402):
  curl -si ${u}/t/demo-paid/hello              # 402: v1 JSON body + v2 PAYMENT-REQUIRED header
${
  payments
    ? `  node scripts/local/pay.mjs${rpcArg} "${u}/t/demo-paid/hello?name=agent"          # pays with @x402/fetch (v2), prints balances
  node scripts/local/pay.mjs${rpcArg} --v1 --payer 1 "${u}/t/demo-paid/hello?name=v1"  # x402-fetch (v1)
  curl -s ${payments.facilitatorUrl}/supported`
    : `  # pay with any x402 client (e.g. @x402/fetch or x402-fetch with a test key), then:`
}
  curl -s -H 'authorization: Bearer ${DEV_PAYOUT_TOKEN}' "${u}/__platform/ledger/demo-paid/entries?after=0"
  curl -s -H 'authorization: Bearer ${DEV_OPERATOR_TOKEN}' ${u}/__platform/earnings
${
  payments
    ? `  PLATFORM_PAYOUT_TOKEN=${DEV_PAYOUT_TOKEN} PAYOUT_RPC_URL=${payments.chain.rpcUrl} PAYOUT_TOKEN_ADDRESS=${payments.token} \\
  PAYOUT_TREASURY_KEY=${payments.accounts.treasury.privateKey} \\
    scripts/payout-job --base ${u} --tenant demo-paid=0x3333333333333333333333333333333333333333
                                               # pays demo-paid's available balance from the treasury, on chain, once`
    : `  PLATFORM_PAYOUT_TOKEN=${DEV_PAYOUT_TOKEN} scripts/payout-job --simulate --base ${u} --tenant demo-paid=0x3333333333333333333333333333333333333333`
}

Ctrl-C stops it.`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await platform.dispose();
  await payments?.stop();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
