// Shared setup for the end-to-end tests: a real workerd (through Miniflare) running the
// built dispatcher, reached over real HTTP.

import { startLocal, seedDemoTenants, DEV_ADMIN_TOKEN } from "../../scripts/local/runtime.mjs";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import http from "node:http";
import net from "node:net";

export { DEV_ADMIN_TOKEN };

export function tempStateDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), "claw-e2e-"));
}

/// Starts the platform with fresh state (or `persistDir`) and the demo tenants registered.
export async function startPlatform({ persistDir = tempStateDir(), vars = {}, seed = true, directSockets = false, egressProbe = false } = {}) {
  const platform = await startLocal({ persistDir, vars, directSockets, egressProbe });
  if (seed) await seedDemoTenants(platform.url);
  return { ...platform, persistDir };
}

export function admin(baseUrl, token = DEV_ADMIN_TOKEN) {
  const call = async (method, p, body) => {
    const headers = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${baseUrl}/__platform${p}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: res.status, headers: res.headers, json, text };
  };
  return {
    put: (slug, config) => call("PUT", `/tenants/${slug}`, config),
    get: (slug) => call("GET", `/tenants/${slug}`),
    list: (query = "") => call("GET", `/tenants${query}`),
    suspend: (slug) => call("POST", `/tenants/${slug}/suspend`),
    resume: (slug) => call("POST", `/tenants/${slug}/resume`),
    del: (slug) => call("DELETE", `/tenants/${slug}`),
    raw: call,
  };
}

/// A request with full control over the Host header (fetch does not allow setting it).
/// `agent` (optional) reuses connections, as the benchmarks do.
export function rawRequest(baseUrl, { method = "GET", path: p = "/", headers = {}, body, agent } = {}) {
  const u = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, method, path: p, headers, agent },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json = null;
          try {
            json = JSON.parse(text);
          } catch {}
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
      },
    );
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/// Sends bytes as they are over TCP and returns the raw response head's status code (or
/// null if the server closed without answering). For requests no HTTP client would build.
export function rawBytes(baseUrl, bytes, timeoutMs = 5000) {
  const u = new URL(baseUrl);
  return new Promise((resolve) => {
    const sock = net.connect(Number(u.port), u.hostname);
    let data = "";
    const done = () => {
      sock.destroy();
      const m = data.match(/^HTTP\/1\.[01] (\d{3})/);
      resolve({ status: m ? Number(m[1]) : null, text: data });
    };
    sock.setTimeout(timeoutMs, done);
    sock.on("data", (d) => {
      data += d.toString("latin1");
      if (data.includes("\r\n\r\n")) {
        const len = data.match(/content-length: (\d+)/i);
        const head = data.indexOf("\r\n\r\n") + 4;
        if (len && data.length - head >= Number(len[1])) done();
      }
    });
    sock.on("end", done);
    sock.on("error", done);
    sock.write(bytes);
  });
}

/// Asserts a response is RFC 9457 problem+json with the given status and code.
export function assertProblem(assert, res, status, code) {
  assert.equal(res.status, status, `status for ${code}: ${res.text ?? ""}`);
  const ct = res.headers instanceof Headers ? res.headers.get("content-type") : res.headers["content-type"];
  assert.equal(ct, "application/problem+json");
  assert.equal(res.json?.code, code, res.text);
  assert.equal(res.json?.status, status);
  assert.ok(res.json?.type?.endsWith(`/${code}`));
  assert.equal(typeof res.json?.title, "string");
}

export async function getJson(url, init) {
  const res = await fetch(url, init);
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, text, json };
}

/// The pids of this process's children named `name` (Miniflare runs workerd as one), read
/// from /proc: for killing the runtime with SIGKILL in tests and benchmarks.
export function childPids(name, parent = process.pid) {
  const pids = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces, so split after its closing paren.
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const ppid = Number(stat.slice(close + 2).split(" ")[1]);
    if (comm === name && ppid === parent) pids.push(Number(entry));
  }
  return pids;
}
