// Stands in for Cloudflare's Workers for Platforms dispatch namespace, which wrangler and
// Miniflare cannot run locally. Miniflare loads this module as the dispatcher's DISPATCHER
// binding (a wrapped binding); its env holds a service binding per user Worker, named by
// the Worker's script name.
//
// It keeps the real binding's contract, so the dispatcher's code path is the production one:
// - get(name, args, options) returns a fetcher at once; an unknown name only fails when
//   fetched, with "Worker not found." as the real namespace does;
// - options.limits must be {cpuMs, subRequests} with positive integers (TypeError otherwise);
// - the limits asked for travel to the user Worker in the `x-wfp-emulator-limits` request
//   header, so local runs and tests can check what the dispatcher asked for. (Cloudflare
//   enforces them instead; no such header exists in production.)

const LIMIT_KEYS = ["cpuMs", "subRequests"];

function checkOptions(options) {
  if (options === undefined || options === null) return null;
  if (typeof options !== "object") throw new TypeError("options must be an object");
  const limits = options.limits;
  if (limits === undefined) return null;
  if (typeof limits !== "object" || limits === null) throw new TypeError("options.limits must be an object");
  for (const key of Object.keys(limits)) {
    if (!LIMIT_KEYS.includes(key)) throw new TypeError(`unknown limit ${key}`);
    if (!Number.isInteger(limits[key]) || limits[key] <= 0) {
      throw new TypeError(`limits.${key} must be a positive integer`);
    }
  }
  return limits;
}

export default function makeDispatchNamespace(env) {
  return {
    get(name, args, options) {
      if (typeof name !== "string" || name.length === 0) throw new TypeError("name must be a non-empty string");
      const limits = checkOptions(options);
      const target = env[name];
      return {
        async fetch(input, init) {
          if (!target || typeof target.fetch !== "function") throw new Error("Worker not found.");
          const request = new Request(input, init);
          const headers = new Headers(request.headers);
          headers.set("x-wfp-emulator-limits", JSON.stringify(limits));
          return target.fetch(new Request(request, { headers }));
        },
      };
    },
  };
}
