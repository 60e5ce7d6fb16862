// End to end: what happens to usage events when workerd is killed (SIGKILL) right after it
// answered. A settled paid call's event is kept by the tenant's ledger in the same step as
// the settlement, and written into the events object by the ledger's alarm: after a
// restart on the same state every settled call has its event, exactly once. Other calls'
// events go through the usage queue from the call's waitUntil; those still on their way
// when the process dies may be lost: counted and reported here, not promised.

import { test } from "node:test";
import assert from "node:assert/strict";
import { admin, childPids, getJson, tempStateDir } from "./harness.mjs";
import { startFacilitator } from "../fakes/x402_facilitator.mjs";
import { pricedTenant, payHeaders, unb64 } from "./x402_client.mjs";
import { startLocal, seedDemoTenants, DEV_ANALYTICS_TOKEN } from "../../scripts/local/runtime.mjs";

const analytics = { authorization: `Bearer ${DEV_ANALYTICS_TOKEN}` };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function allEvents(base, tenant) {
  const out = [];
  let since = 0;
  for (;;) {
    const r = await getJson(`${base}/__platform/events?tenant=${tenant}&since=${since}&limit=500`, { headers: analytics });
    assert.equal(r.status, 200, r.text);
    out.push(...r.json.events);
    since = r.json.nextCursor;
    if (!r.json.hasMore) return out;
  }
}

/// Calls `url` once per headers object, all at once; SIGKILLs workerd the moment the last
/// answer is read. The statuses, in order ("lost" when no answer came).
async function callsThenKill(url, headersList) {
  const statuses = await Promise.all(
    headersList.map((headers) =>
      fetch(url, { headers })
        .then(async (r) => {
          await r.arrayBuffer();
          return r.status;
        })
        .catch(() => "lost"),
    ),
  );
  const pids = childPids("workerd");
  assert.ok(pids.length >= 1, "workerd runs as a child of this process");
  for (const pid of pids) process.kill(pid, "SIGKILL");
  return statuses;
}

test("SIGKILL right after answering: every settled call's event survives, once", async (t) => {
  const f = await startFacilitator();
  const persistDir = tempStateDir();
  const vars = { FACILITATOR_URL: f.url };
  let p = await startLocal({ persistDir, vars });
  try {
    await seedDemoTenants(p.url);
    const put = await admin(p.url).put("kill-paid", pricedTenant());
    assert.ok(put.status === 200 || put.status === 201, put.text);
    const url = `${p.url}/t/kill-paid/hello`;
    const res = await fetch(url);
    const challenge = { status: 402, v2: unb64(res.headers.get("payment-required")) };
    await res.text();
    const N = 40;
    const payments = [];
    for (let i = 0; i < N; i++) payments.push(await payHeaders(challenge, 2));
    const paid = await callsThenKill(url, payments);
    const settled = paid.filter((s) => s === 200).length;
    assert.ok(settled >= N / 2, `most paid calls were answered before the kill: ${paid.join(",")}`);
    await Promise.race([p.dispose().catch(() => {}), sleep(5000)]);

    // The same state again, and a free tenant's calls, killed the same way.
    p = await startLocal({ persistDir, vars });
    const free = await callsThenKill(`${p.url}/t/demo-fn/hello`, Array.from({ length: N }, () => ({})));
    const served = free.filter((s) => s === 200).length;
    await Promise.race([p.dispose().catch(() => {}), sleep(5000)]);

    p = await startLocal({ persistDir, vars });
    // The ledger's alarm writes the kept events within seconds of the restart.
    let events = [];
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      events = (await allEvents(p.url, "kill-paid")).filter((e) => e.stage === "settled");
      if (events.length >= settled) break;
      await sleep(250);
    }
    await sleep(1500);
    events = (await allEvents(p.url, "kill-paid")).filter((e) => e.stage === "settled");
    assert.equal(events.length, settled, "one settled event per settled (200) paid call, none lost, none twice");
    assert.equal(new Set(events.map((e) => e.id)).size, settled);
    const freeEvents = (await allEvents(p.url, "demo-fn")).filter((e) => e.stage === "served").length;
    t.diagnostic(`paid: ${settled} settled calls answered, ${settled - events.length} settled events lost`);
    t.diagnostic(`free: ${served} calls answered, ${Math.max(0, served - freeEvents)} events lost (the queue's local stand-in keeps messages in memory)`);
  } finally {
    await p.dispose().catch(() => {});
    await f.close();
  }
});
