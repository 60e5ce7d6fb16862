// Interactive local run: the platform on workerd, state in .state/, demo tenants seeded.
import { startLocal, seedDemoTenants, DEV_ADMIN_TOKEN, DEMO_TENANTS, DEMO_PAID_TENANTS, ROOT } from "./runtime.mjs";
import path from "node:path";

const port = Number(process.env.PORT ?? 8787);
/// Local-only tokens of the payout job's and operators' APIs (production: Worker secrets).
const DEV_PAYOUT_TOKEN = "local-dev-payout-token";
const DEV_OPERATOR_TOKEN = "local-dev-operator-token";
const platform = await startLocal({
  port,
  persistDir: path.join(ROOT, ".state"),
  verbose: true,
  // No facilitator locally: the development verifier, settlements recorded as local.
  allowLocalX402: true,
  vars: { PLATFORM_PAYOUT_TOKEN: DEV_PAYOUT_TOKEN, PLATFORM_OPERATOR_TOKEN: DEV_OPERATOR_TOKEN },
});
await seedDemoTenants(platform.url);
await seedDemoTenants(platform.url, DEV_ADMIN_TOKEN, DEMO_PAID_TENANTS);
const u = platform.url;
console.log(`
402claw edge is running on workerd at ${u}
Durable Object state: ${path.join(ROOT, ".state")} (kept across restarts)
Demo tenants: ${[...Object.keys(DEMO_TENANTS), ...Object.keys(DEMO_PAID_TENANTS)].join(", ")}
Payments: ALLOW_LOCAL_X402_VERIFICATION=true (local verifier, nothing settles on chain)

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

Paid calls (x402):
  curl -si ${u}/t/demo-paid/hello              # 402: v1 JSON body + v2 PAYMENT-REQUIRED header
  # pay with any x402 client (e.g. @x402/fetch or x402-fetch with a test key), then:
  curl -s -H 'authorization: Bearer ${DEV_PAYOUT_TOKEN}' "${u}/__platform/ledger/demo-paid/entries?after=0"
  curl -s -H 'authorization: Bearer ${DEV_OPERATOR_TOKEN}' ${u}/__platform/earnings
  PLATFORM_PAYOUT_TOKEN=${DEV_PAYOUT_TOKEN} scripts/payout-job --base ${u} --tenant demo-paid=0x3333333333333333333333333333333333333333

Ctrl-C stops it.`);

const stop = async () => {
  await platform.dispose();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
