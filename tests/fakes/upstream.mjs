// A scriptable upstream API on loopback for proxy and egress tests and the proxy benchmark.
// It records every request it receives (method, path, query, headers, body), so tests can
// check what the platform sent (an injected secret) and count upstream calls (cache hits
// save them). What it answers is chosen by the last path segment and the query:
//   /echo           200 JSON {method, path, query, headers, bodyLength}
//   /json           200 JSON object {id, name, secret, nested, n}; /array: a JSON array
//   /text           200 text/plain, not JSON
//   /gzip, /br      200 a JSON object, gzip- or brotli-encoded (Content-Encoding)
//   /slow?ms=       answers after ms milliseconds; /slow-body?ms= sends the head at once
//                   and the body after ms
//   /hang           never answers; /hang-body sends the head and part of a body, never the
//                   rest (both until close(): for timeouts, with no clock in the test)
//   /big?bytes=&chunked=1   a body of that many bytes, with a Content-Length unless chunked
//   /status?code=   that status
//   /redirect       302 to another host
//   /__stats        {total}: requests received so far, this one not included (for a
//                   benchmark running the upstream in a process of its own)
// On every route: ?cc= sets Cache-Control, ?age= sets Age, ?vary= sets Vary,
// ?echo-header=name sends the request's header `name` back as a response header of the
// same name.
import http from "node:http";
import zlib from "node:zlib";

export async function startUpstream({ host = "127.0.0.1", port = 0, record = true } = {}) {
  const calls = [];
  let total = 0;
  const timers = new Set();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url, "http://upstream.local");
      if (url.pathname === "/__stats") {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end(JSON.stringify({ total }));
      }
      total++;
      const body = Buffer.concat(chunks);
      if (record) calls.push({ method: req.method, path: url.pathname, query: url.search, headers: req.headers, body: body.toString("utf8") });
      const q = url.searchParams;
      const headers = {};
      if (q.has("cc")) headers["cache-control"] = q.get("cc");
      if (q.has("age")) headers.age = q.get("age");
      if (q.has("vary")) headers.vary = q.get("vary");
      for (const name of q.getAll("echo-header")) {
        if (req.headers[name] !== undefined) headers[name] = req.headers[name];
      }
      const json = (status, value) => {
        const text = JSON.stringify(value);
        res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(text) });
        res.end(text);
      };
      const later = (ms, fn) => {
        const t = setTimeout(() => {
          timers.delete(t);
          fn();
        }, ms);
        timers.add(t);
      };
      const last = url.pathname.split("/").filter(Boolean).pop() ?? "";
      switch (last) {
        case "echo":
          return json(200, { method: req.method, path: url.pathname, query: url.search, headers: req.headers, bodyLength: body.length });
        case "json":
          return json(200, { id: 7, name: "widget", secret: "internal-only", nested: { a: [1, 2] }, n: 12345678901234567890 });
        case "gzip":
        case "br": {
          const text = JSON.stringify({ id: 7, name: "widget", secret: "internal-only" });
          const packed = last === "gzip" ? zlib.gzipSync(text) : zlib.brotliCompressSync(text);
          res.writeHead(200, { ...headers, "content-type": "application/json", "content-encoding": last, "content-length": packed.length });
          return res.end(packed);
        }
        case "array":
          return json(200, [{ id: 1, name: "a", secret: "x" }, { id: 2, name: "b", secret: "y" }, 3]);
        case "text":
          res.writeHead(200, { ...headers, "content-type": "text/plain" });
          return res.end("plain text, not JSON");
        case "slow":
          return later(Number(q.get("ms") ?? 1000), () => json(200, { slow: true }));
        case "hang":
          return;
        case "hang-body":
          res.writeHead(200, { ...headers, "content-type": "application/json" });
          return res.write('{"hanging":');
        case "slow-body":
          res.writeHead(200, { ...headers, "content-type": "application/json" });
          res.write('{"slow":');
          return later(Number(q.get("ms") ?? 1000), () => res.end("true}"));
        case "big": {
          const n = Number(q.get("bytes") ?? 1024);
          const chunked = q.get("chunked") === "1";
          res.writeHead(200, { ...headers, "content-type": "application/octet-stream", ...(chunked ? {} : { "content-length": n }) });
          const piece = Buffer.alloc(Math.min(n, 16 * 1024), 120);
          let left = n;
          while (left > 0) {
            const k = Math.min(left, piece.length);
            res.write(piece.subarray(0, k));
            left -= k;
          }
          return res.end();
        }
        case "status": {
          const code = Number(q.get("code") ?? 200);
          return json(code, { status: code });
        }
        case "redirect":
          res.writeHead(302, { ...headers, location: "https://elsewhere.example.com/" });
          return res.end();
        default:
          return json(404, { error: "no such route", path: url.pathname });
      }
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise((resolve) => server.listen(port, host, resolve));
  const address = server.address();
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    calls,
    /// Requests received so far (all, also when not recording).
    get total() {
      return total;
    },
    /// Recorded requests whose path ends with `suffix` (and whose query contains `query`).
    hits(suffix, query = "") {
      return calls.filter((c) => c.path.endsWith(suffix) && c.query.includes(query));
    },
    close() {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

// `node tests/fakes/upstream.mjs [port]`: run it on its own; prints `upstream on <url>`.
if (import.meta.url === `file://${process.argv[1]}`) {
  const u = await startUpstream({ port: Number(process.argv[2] ?? 0), record: false });
  console.log(`upstream on ${u.url}`);
  process.on("SIGTERM", () => u.close().then(() => process.exit(0)));
}
