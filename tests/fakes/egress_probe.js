// Test fixture: stands in for a tenant's own Worker code, without the emulator shim
// (wfp_user_worker.js) around it, so nothing replaces or removes what it sends. Its fetch()
// goes to the outbound Worker running in its production mode ("claw-egress-env": parameters
// from env, see scripts/local/runtime.mjs, startLocal's egressProbe), which is what a
// tenant's fetch reaches under Workers for Platforms.
//
// GET /?url=<target>   fetches <target> once; the request's `x-wfp-emulator-outbound` header
//                      (a forgery, if the test sends one) is put on that fetch as it is.
//   &via=emulator      sends the same fetch to the emulator-mode outbound Worker
//                      ("claw-egress", bound as EMULATOR_EGRESS) instead: the control that
//                      shows the forged header is one the outbound Worker would read there.
// Answers {status, egress, code, body}: the outbound Worker's status, its x-claw-egress
// marker, the problem code of a refusal, and the start of the body.
const OUTBOUND_HEADER = "x-wfp-emulator-outbound";

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const target = url.searchParams.get("url");
    if (!target) return new Response("url required", { status: 400 });
    const headers = new Headers();
    const forged = request.headers.get(OUTBOUND_HEADER);
    if (forged !== null) headers.set(OUTBOUND_HEADER, forged);
    const onward = new Request(target, { headers, redirect: "manual" });
    const r = url.searchParams.get("via") === "emulator" ? await env.EMULATOR_EGRESS.fetch(onward) : await fetch(onward);
    const text = await r.text();
    let code = null;
    if (r.headers.get("content-type") === "application/problem+json") code = JSON.parse(text).code;
    return Response.json({ status: r.status, egress: r.headers.get("x-claw-egress"), code, body: text.slice(0, 2000) });
  },
};
