// Interactive local run: the platform on workerd, state in .state/, demo tenants seeded.
import { startLocal, seedDemoTenants, DEV_ADMIN_TOKEN, DEMO_TENANTS, ROOT } from "./runtime.mjs";
import path from "node:path";

const port = Number(process.env.PORT ?? 8787);
const platform = await startLocal({ port, persistDir: path.join(ROOT, ".state"), verbose: true });
await seedDemoTenants(platform.url);
const u = platform.url;
console.log(`
402claw edge is running on workerd at ${u}
Durable Object state: ${path.join(ROOT, ".state")} (kept across restarts)
Demo tenants: ${Object.keys(DEMO_TENANTS).join(", ")}

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

Ctrl-C stops it.`);

const stop = async () => {
  await platform.dispose();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
