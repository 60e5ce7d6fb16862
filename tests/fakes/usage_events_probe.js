// Test and benchmark fixture: talks to the dispatcher's UsageEvents objects directly (the
// class bound here by script name), as the dispatcher does, for what the platform API
// deliberately cannot do: deliver an event twice (idempotency), or feed a synthetic event
// stream (ingest rate, rank error). The platform has no ingest route, so no operator or
// caller can forge events; this fixture exists only in the local runtime of tests and
// benchmarks.
//
// POST /events?tenant=<slug>   body: a JSON array of events -> the object's answer
// POST /rollup?tenant=<slug>   -> the object's answer (roll up to trending now)
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const tenant = url.searchParams.get("tenant");
    if (!tenant) return new Response("tenant required", { status: 400 });
    const stub = env.EVENTS.get(env.EVENTS.idFromName(tenant));
    const path = url.pathname === "/rollup" ? "/rollup" : "/events";
    const init = { method: "POST", headers: { "content-type": "application/json" } };
    if (path === "/events") init.body = await request.text();
    const res = await stub.fetch(`https://events.internal${path}`, init);
    return new Response(await res.text(), { status: res.status, headers: { "content-type": res.headers.get("content-type") ?? "text/plain" } });
  },
};
