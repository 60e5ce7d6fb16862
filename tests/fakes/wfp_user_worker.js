// Local stand-in for what Workers for Platforms does around a user Worker that has an
// outbound Worker: every fetch() the user Worker makes goes to the outbound Worker, and the
// outbound parameters of the call it serves reach the outbound Worker. Miniflare already
// routes the user Worker's fetches to "claw-egress" (outboundService); what it cannot do is
// attach per-call parameters. So scripts/local/runtime.mjs loads each sample tenant through
// this shim, which:
// - takes the call's parameters off the incoming request (`x-wfp-emulator-outbound`, set by
//   wfp_dispatch_namespace.js) and keeps them for the call (AsyncLocalStorage);
// - sets them on each outbound request of that call (a tenant cannot choose them: any copy
//   it sets is replaced, or removed when the call has none);
// - counts the call's subrequests and those the outbound Worker denied
//   (`x-claw-egress: denied`), and reports them on the tenant's answer in
//   `x-wfp-emulator-subrequests: {"total":n,"denied":m}`, for local runs and tests.
// None of this exists in production; the outbound Worker's per-subrequest log records are
// what production counts from.
import { AsyncLocalStorage } from "node:async_hooks";

const OUTBOUND_HEADER = "x-wfp-emulator-outbound";
const COUNT_HEADER = "x-wfp-emulator-subrequests";
const calls = new AsyncLocalStorage();
const runtimeFetch = globalThis.fetch;

globalThis.fetch = async function fetch(input, init) {
  const call = calls.getStore();
  const request = new Request(input, init);
  const headers = new Headers(request.headers);
  if (call?.params) headers.set(OUTBOUND_HEADER, call.params);
  else headers.delete(OUTBOUND_HEADER);
  if (call) call.total++;
  const response = await runtimeFetch(new Request(request, { headers }));
  if (call && response.headers.get("x-claw-egress") === "denied") call.denied++;
  return response;
};

export function wrapUserWorker(worker) {
  return {
    async fetch(request, env, ctx) {
      const call = { params: request.headers.get(OUTBOUND_HEADER), total: 0, denied: 0 };
      const headers = new Headers(request.headers);
      headers.delete(OUTBOUND_HEADER);
      const response = await calls.run(call, () => worker.fetch(new Request(request, { headers }), env, ctx));
      if (response.webSocket) return response;
      const out = new Response(response.body, response);
      out.headers.set(COUNT_HEADER, JSON.stringify({ total: call.total, denied: call.denied }));
      return out;
    },
  };
}
