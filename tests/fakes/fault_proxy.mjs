// A fault-injecting HTTP proxy on loopback, in front of a real part: it stands in for the
// network between the platform and its facilitator or its chain RPC provider, which cannot
// be made to fail on demand here. The real facilitator and the real chain answer; the proxy
// decides whether that answer reaches the platform.
//
// startFaultProxy(targetUrl) -> { url, setMode(mode), requests, close() }, modes:
//   "pass"             forward as is;
//   "answer-then-drop" forward, wait for the real answer (so its effect happened, e.g. a
//                      settlement is on chain), then drop the connection without answering;
//   "answer-then-hang" the same, then never answer (the caller's own timeout ends it);
//   "drop"             drop the connection without forwarding (the request never arrives);
//   "down"             answer 503;
//   "garbage"          answer 200 with a body that is not JSON;
//   "lie-chain-id"     JSON-RPC only: answer eth_chainId with chain 1, forward the rest.
// Modes can be limited to one path: setMode(mode, { path: "/settle" }) (others pass).
// `onAnswer` (setMode option) runs after the real answer arrived and before it is passed on
// (or dropped): e.g. kill the platform at the exact moment a settlement is on chain and the
// platform has not heard of it.

import http from "node:http";

export async function startFaultProxy(targetUrl) {
  const target = new URL(targetUrl);
  let mode = "pass";
  let onlyPath = null;
  let onAnswer = null;
  const requests = [];

  const forward = (req, body) =>
    new Promise((resolve, reject) => {
      const out = http.request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: target.pathname.replace(/\/$/, "") + req.url,
          headers: { ...req.headers, host: target.host },
        },
        (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on("error", reject);
        },
      );
      out.on("error", reject);
      out.end(body);
    });

  const server = http.createServer(async (req, res) => {
    // The caller may die mid-request (the tests SIGKILL workerd): an aborted request ends
    // here, quietly, like a network would drop it.
    const chunks = [];
    try {
      for await (const c of req) chunks.push(c);
    } catch {
      return req.socket.destroy();
    }
    const body = Buffer.concat(chunks);
    const active = onlyPath === null || req.url === onlyPath ? mode : "pass";
    requests.push({ path: req.url, mode: active });
    try {
      if (active === "drop") return req.socket.destroy();
      if (active === "down") {
        res.writeHead(503, { "content-type": "text/plain" });
        return res.end("unavailable");
      }
      if (active === "garbage") {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end("<html>not json</html>");
      }
      if (active === "lie-chain-id") {
        let rpc = null;
        try {
          rpc = JSON.parse(body.toString("utf8"));
        } catch {}
        if (rpc?.method === "eth_chainId") {
          res.writeHead(200, { "content-type": "application/json" });
          return res.end(JSON.stringify({ jsonrpc: "2.0", id: rpc.id, result: "0x1" }));
        }
      }
      const answer = await forward(req, body);
      if (onAnswer && (onlyPath === null || req.url === onlyPath)) await onAnswer(req.url);
      if (active === "answer-then-drop") return req.socket.destroy();
      if (active === "answer-then-hang") return; // closed by close()
      const headers = { ...answer.headers };
      delete headers["transfer-encoding"];
      delete headers["content-length"];
      res.writeHead(answer.status, headers);
      res.end(answer.body);
    } catch {
      req.socket.destroy();
    }
  });
  server.on("clientError", (_e, socket) => socket.destroy());
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    setMode(next, { path = null, onAnswer: hook = null } = {}) {
      mode = next;
      onlyPath = path;
      onAnswer = hook;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
