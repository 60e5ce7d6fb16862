// Sample "function" tenant: a creator's own Worker, deployed into the dispatch namespace.
// / lists its routes; /hello answers a greeting; /echo shows what the tenant received (method, path, query,
// headers, body, and the custom limits the dispatcher asked the namespace for); /fetch
// fetches each `url` query parameter in turn and reports what came back (its fetches go
// through the platform's outbound Worker, which applies the tenant's allowedHosts).
export default {
  async fetch(request) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/":
        return Response.json({ api: "demo-fn", path: url.pathname, routes: ["/hello?name=", "/echo", "/status?code=", "/stream?chunks=", "/fetch?url=", "/upgrade"] });
      case "/hello":
        return Response.json({ hello: url.searchParams.get("name") ?? "world" });
      case "/echo": {
        const body = await request.text();
        const limits = request.headers.get("x-wfp-emulator-limits");
        return Response.json({
          method: request.method,
          path: url.pathname,
          query: url.search,
          headers: Object.fromEntries(request.headers),
          bodyLength: body.length,
          bodySha: await sha256(body),
          dispatchLimits: limits ? JSON.parse(limits) : null,
        });
      }
      case "/status": {
        const code = Number(url.searchParams.get("code") ?? "200");
        return new Response(`status ${code}`, { status: code, headers: { "x-demo": "status" } });
      }
      case "/upgrade": {
        // A WebSocket upgrade (status 101), which the platform does not pass through.
        const [client, server] = Object.values(new WebSocketPair());
        server.accept();
        return new Response(null, { status: 101, webSocket: client });
      }
      case "/stream": {
        const chunks = Number(url.searchParams.get("chunks") ?? "3");
        const enc = new TextEncoder();
        let i = 0;
        const body = new ReadableStream({
          pull(controller) {
            if (i >= chunks) return controller.close();
            controller.enqueue(enc.encode(`chunk ${i++}\n`));
          },
        });
        return new Response(body, { headers: { "content-type": "text/plain" } });
      }
      case "/fetch": {
        const results = [];
        for (const target of url.searchParams.getAll("url")) {
          try {
            const r = await fetch(target, { redirect: "manual" });
            const text = await r.text();
            let code = null;
            if (r.headers.get("content-type") === "application/problem+json") code = JSON.parse(text).code;
            results.push({ url: target, status: r.status, egress: r.headers.get("x-claw-egress"), code, body: text.slice(0, 2000) });
          } catch (e) {
            results.push({ url: target, error: String(e?.message ?? e) });
          }
        }
        return Response.json({ results });
      }
      case "/throw":
        throw new Error("a bug in the tenant's code");
      default:
        return Response.json({ error: "not found", path: url.pathname }, { status: 404 });
    }
  },
};

async function sha256(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
