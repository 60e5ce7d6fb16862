// Stands in for Cloudflare's Workers for Platforms dispatch namespace, which wrangler and
// Miniflare cannot run locally. Miniflare loads this module as the dispatcher's DISPATCHER
// binding (a wrapped binding); its env holds a service binding per sample user Worker, named
// by the Worker's script name, OUTBOUND_PARAMETERS, the outbound parameter names declared
// for the namespace (wrangler.toml, [[dispatch_namespaces]] outbound.parameters), and
// SCRIPTS_RUNTIME, the stand-in of the namespace's script store (wfp_scripts_api.js): a
// script uploaded through the script API runs there at once, through workerd's Worker Loader.
//
// It keeps the real binding's contract, so the dispatcher's code path is the production one:
// - get(name, args, options) returns a fetcher at once; an unknown name only fails when
//   fetched, with "Worker not found." as the real namespace does;
// - options.limits must be {cpuMs, subRequests} with positive integers (TypeError otherwise);
// - options.outbound must be an object whose members are declared outbound parameters
//   (TypeError otherwise).
// What it cannot do like the real one, it hands over in request headers (no such headers
// exist in production):
// - `x-wfp-emulator-limits`: the limits asked for, so local runs and tests can check them
//   (Cloudflare enforces them instead);
// - `x-wfp-emulator-outbound`: the outbound parameters (JSON). Workers for Platforms gives
//   them to the outbound Worker as env members; locally, the user Worker shim
//   (wfp_user_worker.js) keeps them for the call and puts them on each of the call's
//   outbound requests, which Miniflare routes to the outbound Worker ("claw-egress").

const LIMIT_KEYS = ["cpuMs", "subRequests"];
const LIMITS_HEADER = "x-wfp-emulator-limits";
const OUTBOUND_HEADER = "x-wfp-emulator-outbound";
const SCRIPT_HEADER = "x-wfp-emulator-script";

function checkOptions(options, declared) {
  if (options === undefined || options === null) return { limits: null, outbound: null };
  if (typeof options !== "object") throw new TypeError("options must be an object");
  let limits = options.limits ?? null;
  if (limits !== null) {
    if (typeof limits !== "object") throw new TypeError("options.limits must be an object");
    for (const key of Object.keys(limits)) {
      if (!LIMIT_KEYS.includes(key)) throw new TypeError(`unknown limit ${key}`);
      if (!Number.isInteger(limits[key]) || limits[key] <= 0) {
        throw new TypeError(`limits.${key} must be a positive integer`);
      }
    }
  }
  const outbound = options.outbound ?? null;
  if (outbound !== null) {
    if (typeof outbound !== "object" || Array.isArray(outbound)) {
      throw new TypeError("options.outbound must be an object");
    }
    for (const key of Object.keys(outbound)) {
      if (!declared.includes(key)) throw new TypeError(`outbound parameter ${key} is not declared`);
    }
  }
  return { limits, outbound };
}

export default function makeDispatchNamespace(env) {
  const declared = env.OUTBOUND_PARAMETERS ?? [];
  return {
    get(name, args, options) {
      if (typeof name !== "string" || name.length === 0) throw new TypeError("name must be a non-empty string");
      const { limits, outbound } = checkOptions(options, declared);
      const sample = name === "SCRIPTS_RUNTIME" ? undefined : env[name];
      return {
        async fetch(input, init) {
          const request = new Request(input, init);
          const headers = new Headers(request.headers);
          headers.set(LIMITS_HEADER, JSON.stringify(limits));
          if (outbound) headers.set(OUTBOUND_HEADER, JSON.stringify(outbound));
          else headers.delete(OUTBOUND_HEADER);
          if (sample && typeof sample.fetch === "function") return sample.fetch(new Request(request, { headers }));
          if (!env.SCRIPTS_RUNTIME) throw new Error("Worker not found.");
          // An uploaded script: the script store runs it (or says it has none).
          headers.set(SCRIPT_HEADER, name);
          const answer = await env.SCRIPTS_RUNTIME.fetch(new Request(request, { headers }));
          if (answer.headers.get("x-wfp-emulator-missing")) throw new Error("Worker not found.");
          if (answer.headers.get("x-wfp-emulator-error")) throw new Error(await answer.text());
          return answer;
        },
      };
    },
  };
}
