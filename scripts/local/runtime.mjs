// The local platform on workerd, through Miniflare's API: the built dispatcher (with its
// Durable Objects, from wrangler.toml), the sample tenant Workers, the Workers for
// Platforms namespace emulator from tests/fakes/ bound as DISPATCHER, and the namespace's
// outbound Worker "claw-egress" (the same build with WORKER_ROLE=outbound, from
// wrangler.egress.toml), through which every fetch of a tenant Worker goes.
//
// Used by scripts/dev (interactive), the end-to-end tests and the benchmarks. No wrangler
// dev proxy sits in front: requests go straight to workerd's socket, and the inspector is
// off unless asked for.

import { Miniflare, Log, LogLevel } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import path from "node:path";
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import net from "node:net";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/// The admin token of local runs only; production takes it from a Worker secret.
export const DEV_ADMIN_TOKEN = "local-dev-admin-token";
/// The analytics token (usage events feed, usage series) and the caller-hash salt of local
/// runs only; production takes them from the PLATFORM_ANALYTICS_TOKEN and USAGE_SALT secrets.
export const DEV_ANALYTICS_TOKEN = "local-dev-analytics-token";
export const DEV_USAGE_SALT = "local-dev-usage-salt-0123456789";

/// A paid demo tenant (scripts/dev registers it): 1000 atomic USDC (0.001 USDC) per call on
/// base-sepolia, served by the demo-fn Worker. The payTo is a placeholder address.
export const DEMO_PAID_TENANTS = {
  "demo-paid": {
    resourceType: "function",
    workerName: "demo-fn",
    plan: "pro",
    price: {
      amountAtomic: "1000",
      network: "base-sepolia",
      asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
      payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
      description: "demo paid call",
    },
  },
};

/// A fixture Worker that reaches the UsageEvents objects directly (tests and the usage
/// benchmark; the platform itself has no ingest route).
export const USAGE_EVENTS_PROBE = {
  name: "usage-events-probe",
  compatibilityDate: "2026-04-20",
  modulesRoot: ROOT,
  modules: [{ type: "ESModule", path: path.join(ROOT, "tests/fakes/usage_events_probe.js") }],
  durableObjects: { EVENTS: { className: "UsageEvents", scriptName: "claw-dispatcher" } },
};

/// User Workers in the local namespace: script name -> module files (first is the entry).
export const TENANT_WORKERS = {
  "demo-fn": ["tests/tenants/demo-fn.js"],
  "demo-dataset": ["tests/tenants/demo-dataset.js", "tests/tenants/cities.csv"],
};

/// The demo tenants registered by scripts/dev (and used by tests and benchmarks).
export const DEMO_TENANTS = {
  "demo-fn": { resourceType: "function", workerName: "demo-fn", plan: "free" },
  "demo-dataset": { resourceType: "dataset", workerName: "demo-dataset", plan: "pro" },
  // Rate limited per caller: 3 calls at once (burst 2), then one every 2 s.
  "demo-limited": {
    resourceType: "function",
    workerName: "demo-fn",
    plan: "free",
    rateLimit: { perCaller: "5/10s", burst: 2 },
  },
};

/// The stand-in of Cloudflare's script API (tests/fakes/wfp_scripts_api.js) on its own
/// loopback socket, and what the dispatcher is told about it (local values only; production
/// sets CF_ACCOUNT_ID, CF_DISPATCH_NAMESPACE and the CF_API_TOKEN secret).
export const SCRIPTS_API_WORKER = "wfp-scripts-api";
export const DEV_CF_ACCOUNT_ID = "local-account";
export const DEV_CF_NAMESPACE = "402claw-local";
export const DEV_CF_API_TOKEN = "local-dev-cloudflare-api-token";

/// A free loopback port (the script API's socket must be known before workerd starts).
async function freePort(host) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, host, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/// The outbound parameters declared for the namespace (wrangler.toml, [[dispatch_namespaces]]
/// outbound.parameters); the emulator refuses others, as the real binding only passes these.
export const OUTBOUND_PARAMETERS = ["tenant", "allowedHosts", "callId"];
export const EGRESS_WORKER = "claw-egress";

/// Test-only (startLocal's `egressProbe`): a second instance of the outbound Worker that
/// reads its parameters from env, as in production (no OUTBOUND_PARAMS_FROM_EMULATOR), with
/// these fixed values, and the Worker `egress-probe` (tests/fakes/egress_probe.js), a stand-in
/// for a tenant's own code whose fetches go to that instance and that may set any header,
/// a forged `x-wfp-emulator-outbound` included.
export const ENV_EGRESS_WORKER = "claw-egress-env";
export const EGRESS_PROBE_WORKER = "egress-probe";
export const EGRESS_PROBE_PARAMS = { tenant: "forge-test", allowedHosts: ["localhost"], callId: "forge-test-call" };

// Each tenant Worker runs behind tests/fakes/wfp_user_worker.js, which carries the call's
// outbound parameters to the outbound Worker (see that file); its fetches go to claw-egress.
function tenantWorker(name, files) {
  const entry = `./${files[0]}`;
  return {
    name,
    compatibilityDate: "2026-04-20",
    compatibilityFlags: ["nodejs_als"],
    modulesRoot: ROOT,
    modules: [
      {
        type: "ESModule",
        path: path.join(ROOT, `__wfp_user_worker_${name}.js`),
        contents: [
          `import { wrapUserWorker } from "./tests/fakes/wfp_user_worker.js";`,
          `import worker from ${JSON.stringify(entry)};`,
          `export default wrapUserWorker(worker);`,
        ].join("\n"),
      },
      { type: "ESModule", path: path.join(ROOT, "tests/fakes/wfp_user_worker.js") },
      ...files.map((f) => ({
        type: f.endsWith(".js") ? "ESModule" : "Text",
        path: path.join(ROOT, f),
      })),
    ],
    outboundService: EGRESS_WORKER,
  };
}

function readWorkerOptions(config) {
  // wrangler warns that dispatch namespaces do not run locally; the emulator below is why.
  const logLevel = process.env.WRANGLER_LOG;
  process.env.WRANGLER_LOG = "error";
  try {
    return unstable_getMiniflareWorkerOptions(path.join(ROOT, config)).workerOptions;
  } finally {
    if (logLevel === undefined) delete process.env.WRANGLER_LOG;
    else process.env.WRANGLER_LOG = logLevel;
  }
}

/// workerd's output, minus the outbound Worker's per-subrequest records unless verbose.
function runtimeStdio(verbose) {
  const pipe = (stream, out) => {
    let rest = "";
    stream.on("data", (chunk) => {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop();
      for (const line of lines) {
        if (verbose || !line.includes('{"egress":')) out.write(line + "\n");
      }
    });
    stream.on("end", () => rest && out.write(rest + "\n"));
  };
  return (stdout, stderr) => {
    pipe(stdout, process.stdout);
    pipe(stderr, process.stderr);
  };
}

/**
 * Starts the platform on workerd. Returns { url, directUrls, cloudflareApiUrl, mf, dispose }
 * (cloudflareApiUrl: the script API stand-in's base, `.../client/v4`).
 * - persistDir: Durable Object state lives here (survives restarts); null for in-memory.
 * - port: dispatcher port (0 picks a free one).
 * - directSockets: also give the dispatcher and each tenant Worker a socket of its own that
 *   bypasses Miniflare's entry worker (directUrls[name]), for side-by-side benchmarks.
 * - vars: extra bindings for the dispatcher (strings), e.g. tokens. PLATFORM_DOMAIN,
 *   PLATFORM_HOSTS and ALLOW_LOOPBACK_UPSTREAMS also apply to the outbound Worker.
 * - allowLoopbackUpstreams: sets ALLOW_LOOPBACK_UPSTREAMS=true (proxy upstreams and
 *   tenants' fetches may reach loopback servers, e.g. tests/fakes/upstream.mjs). Off by
 *   default, as in production.
 * - omitBindings: dispatcher bindings to leave out (e.g. ["RATE_LIMITER"], to run the
 *   dispatcher with an unreachable limiter).
 * - extraWorkers: more Miniflare worker options in the same workerd (benchmark fixtures);
 *   with directSockets each gets directUrls[name] too.
 * - allowLocalX402: set ALLOW_LOCAL_X402_VERIFICATION=true (development verifier: payments
 *   checked in the Worker, settlements recorded locally, no funds move). Off unless asked.
 * - egressProbe: also run the outbound Worker in its production mode (parameters from env:
 *   EGRESS_PROBE_PARAMS) as ENV_EGRESS_WORKER, and the tenant stand-in EGRESS_PROBE_WORKER
 *   whose fetches go to it, on a socket of its own (directUrls[EGRESS_PROBE_WORKER]).
 */
export async function startLocal({
  persistDir = path.join(ROOT, ".state"),
  port = 0,
  host = "127.0.0.1",
  vars = {},
  directSockets = false,
  allowLoopbackUpstreams = false,
  verbose = false,
  omitBindings = [],
  extraWorkers = [],
  allowLocalX402 = false,
  egressProbe = false,
} = {}) {
  const main = path.join(ROOT, "build/index.js");
  if (!fs.existsSync(main)) throw new Error("build/index.js is missing: run scripts/build first");
  const scriptsApiPort = await freePort(host);
  const cloudflareApiUrl = `http://${host}:${scriptsApiPort}/client/v4`;
  const workerOptions = readWorkerOptions("wrangler.toml");
  delete workerOptions.dispatchNamespaces;
  if (allowLoopbackUpstreams) vars = { ...vars, ALLOW_LOOPBACK_UPSTREAMS: "true" };
  const shared = Object.fromEntries(
    ["PLATFORM_DOMAIN", "PLATFORM_HOSTS", "ALLOW_LOOPBACK_UPSTREAMS"].filter((k) => k in vars).map((k) => [k, vars[k]]),
  );
  const dispatcher = {
    ...workerOptions,
    name: "claw-dispatcher",
    modulesRoot: path.join(ROOT, "build"),
    modules: [
      { type: "ESModule", path: main },
      { type: "CompiledWasm", path: path.join(ROOT, "build/index_bg.wasm") },
    ],
    bindings: {
      ...workerOptions.bindings,
      PLATFORM_DOMAIN: "localhost",
      PLATFORM_ADMIN_TOKEN: DEV_ADMIN_TOKEN,
      ...(allowLocalX402 ? { ALLOW_LOCAL_X402_VERIFICATION: "true" } : {}),
      PLATFORM_ANALYTICS_TOKEN: DEV_ANALYTICS_TOKEN,
      USAGE_SALT: DEV_USAGE_SALT,
      // Usage events take each call's subrequest count from the emulator (local only).
      SUBREQUESTS_FROM_EMULATOR: "true",
      // Deployments go to the script API's stand-in (production: api.cloudflare.com).
      CF_API_BASE_URL: cloudflareApiUrl,
      CF_ACCOUNT_ID: DEV_CF_ACCOUNT_ID,
      CF_DISPATCH_NAMESPACE: DEV_CF_NAMESPACE,
      CF_API_TOKEN: DEV_CF_API_TOKEN,
      ...vars,
    },
    wrappedBindings: { DISPATCHER: { scriptName: "wfp-dispatch-namespace" } },
  };
  delete dispatcher.modulesRules;
  for (const name of omitBindings) {
    for (const kind of ["bindings", "durableObjects", "kvNamespaces", "serviceBindings"]) {
      if (dispatcher[kind]) delete dispatcher[kind][name];
    }
  }
  if (directSockets) dispatcher.unsafeDirectSockets = [{ host, port: 0 }];
  const namespace = {
    name: "wfp-dispatch-namespace",
    modules: [{ type: "ESModule", path: path.join(ROOT, "tests/fakes/wfp_dispatch_namespace.js") }],
    modulesRoot: ROOT,
    bindings: { OUTBOUND_PARAMETERS },
    serviceBindings: {
      ...Object.fromEntries(Object.keys(TENANT_WORKERS).map((n) => [n, n])),
      SCRIPTS_RUNTIME: SCRIPTS_API_WORKER,
    },
  };
  // Cloudflare's script API and the namespace's script store: uploads run at once through
  // the Worker Loader, their fetches through the outbound Worker.
  const scriptsApi = {
    name: SCRIPTS_API_WORKER,
    compatibilityDate: "2026-04-20",
    modulesRoot: ROOT,
    modules: [{ type: "ESModule", path: path.join(ROOT, "tests/fakes/wfp_scripts_api.js") }],
    kvNamespaces: { SCRIPTS: "wfp-scripts" },
    workerLoaders: { LOADER: {} },
    serviceBindings: { EGRESS: EGRESS_WORKER },
    bindings: {
      ACCOUNT_ID: DEV_CF_ACCOUNT_ID,
      NAMESPACE: DEV_CF_NAMESPACE,
      API_TOKEN: DEV_CF_API_TOKEN,
      USER_WORKER_SHIM: fs.readFileSync(path.join(ROOT, "tests/fakes/wfp_user_worker.js"), "utf8"),
    },
    unsafeDirectSockets: [{ host, port: scriptsApiPort }],
  };
  const egressOptions = readWorkerOptions("wrangler.egress.toml");
  const egress = {
    name: EGRESS_WORKER,
    compatibilityDate: egressOptions.compatibilityDate,
    compatibilityFlags: egressOptions.compatibilityFlags,
    modulesRoot: path.join(ROOT, "build"),
    modules: dispatcher.modules,
    bindings: {
      ...egressOptions.bindings,
      PLATFORM_DOMAIN: "localhost",
      // The emulator's stand-in for Workers for Platforms' outbound parameters.
      OUTBOUND_PARAMS_FROM_EMULATOR: "true",
      ...shared,
    },
  };
  const tenants = Object.entries(TENANT_WORKERS).map(([name, files]) => {
    const w = tenantWorker(name, files);
    if (directSockets) w.unsafeDirectSockets = [{ host, port: 0 }];
    return w;
  });
  // The production path of the outbound Worker, for tests: the same build and settings as
  // claw-egress, minus the emulator's header, plus the parameters as env members (JSON
  // bindings: allowedHosts is an array, as Workers for Platforms passes it).
  const probes = egressProbe
    ? [
        {
          ...egress,
          name: ENV_EGRESS_WORKER,
          bindings: { ...egressOptions.bindings, PLATFORM_DOMAIN: "localhost", ...shared, ...EGRESS_PROBE_PARAMS },
        },
        {
          name: EGRESS_PROBE_WORKER,
          compatibilityDate: "2026-04-20",
          modulesRoot: ROOT,
          modules: [{ type: "ESModule", path: path.join(ROOT, "tests/fakes/egress_probe.js") }],
          serviceBindings: { EMULATOR_EGRESS: EGRESS_WORKER },
          outboundService: ENV_EGRESS_WORKER,
          unsafeDirectSockets: [{ host, port: 0 }],
        },
      ]
    : [];
  if (probes.length && "OUTBOUND_PARAMS_FROM_EMULATOR" in probes[0].bindings) {
    throw new Error(`${ENV_EGRESS_WORKER} must read its parameters from env`);
  }
  const extras = extraWorkers.map((w) => (directSockets ? { ...w, unsafeDirectSockets: [{ host, port: 0 }] } : w));
  const mf = new Miniflare({
    host,
    port,
    log: new Log(verbose ? LogLevel.INFO : LogLevel.WARN),
    // No network here: use Miniflare's placeholder request.cf instead of fetching one.
    cf: false,
    durableObjectsPersist: persistDir ? path.join(persistDir, "do") : false,
    // The uploaded scripts (the script API's stand-in keeps them in KV).
    kvPersist: persistDir ? path.join(persistDir, "kv") : false,
    handleRuntimeStdio: runtimeStdio(verbose),
    workers: [dispatcher, namespace, scriptsApi, egress, ...tenants, ...probes, ...extras],
  });
  const url = await mf.ready;
  const directUrls = {};
  if (directSockets) {
    for (const name of ["claw-dispatcher", ...Object.keys(TENANT_WORKERS), ...extras.map((w) => w.name)]) {
      directUrls[name] = (await mf.unsafeGetDirectURL(name)).toString().replace(/\/$/, "");
    }
  }
  if (egressProbe) {
    directUrls[EGRESS_PROBE_WORKER] = (await mf.unsafeGetDirectURL(EGRESS_PROBE_WORKER)).toString().replace(/\/$/, "");
  }
  return { url: url.toString().replace(/\/$/, ""), directUrls, cloudflareApiUrl, mf, dispose: () => mf.dispose() };
}

/// Registers (creates or replaces) the demo tenants through the admin API.
export async function seedDemoTenants(baseUrl, token = DEV_ADMIN_TOKEN, tenants = DEMO_TENANTS) {
  for (const [slug, config] of Object.entries(tenants)) {
    const res = await fetch(`${baseUrl}/__platform/tenants/${slug}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(config),
    });
    if (res.status !== 200 && res.status !== 201) {
      throw new Error(`seeding ${slug}: ${res.status} ${await res.text()}`);
    }
  }
}
