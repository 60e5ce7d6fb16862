// What scripts/bench-peer and scripts/bench/profile.mjs both set up: the facilitator
// stand-in in its own node process, and the ledger probe (the fixture Worker
// scripts/bench/fixtures/ledger-probe.mjs bound to the dispatcher's TenantLedger class and to
// its FloorObject ceiling) with the call that drives it.

import path from "node:path";
import { spawn } from "node:child_process";
import { ROOT } from "../local/runtime.mjs";

/// The facilitator stand-in (tests/fakes/x402_facilitator.mjs), standalone, in a child node
/// process, so its CPU is measured on its own: {url, pid, close}.
export async function startFacilitatorProcess() {
  const child = spawn(process.execPath, [path.join(ROOT, "tests/fakes/x402_facilitator.mjs"), "0"], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (c) => {
      out += c;
      const m = out.match(/on (http:\/\/[^\s]+)/);
      if (m) resolve(m[1]);
    });
    child.on("exit", (code) => reject(new Error(`facilitator stand-in exited (${code})`)));
  });
  return { url, pid: child.pid, close: () => child.kill("SIGTERM") };
}

export const LEDGER_PROBE = "ledger-probe";

/// Miniflare options of the probe Worker, for startLocal's extraWorkers.
export const ledgerProbeWorker = () => ({
  // One ledger object driven directly (reserve + settle pairs), no dispatcher in between.
  name: LEDGER_PROBE,
  compatibilityDate: "2026-04-20",
  modulesRoot: ROOT,
  modules: [{ type: "ESModule", path: path.join(ROOT, "scripts/bench/fixtures/ledger-probe.mjs") }],
  durableObjects: { LEDGER: { className: "TenantLedger", scriptName: "claw-dispatcher" }, FLOOR: { className: "FloorObject", useSQLite: true }, RPC_FLOOR: { className: "RpcFloorObject", useSQLite: true } },
});

/// `n` reserve + settle pairs, `inflight` at once, against the ledger (or the floor object):
/// {pairs, ms, failed}.
export const probePairs = (local, n, inflight, floor = false) =>
  fetch(`${local.directUrls[LEDGER_PROBE]}/pairs?tenant=bench-ledger&n=${n}&inflight=${inflight}${floor === true ? "&floor=1" : floor ? `&floor=${floor}` : ""}`).then((r) => r.json());
