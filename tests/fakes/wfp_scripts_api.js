// Stands in for Cloudflare's Workers for Platforms script API and for the dispatch
// namespace's script store, which cannot run locally. scripts/local/runtime.mjs runs it as
// the Worker "wfp-scripts-api" on a loopback socket of its own; the dispatcher reaches it
// through CF_API_BASE_URL exactly as it reaches https://api.cloudflare.com/client/v4 in
// production (same code, another base URL).
//
// The API (the real wire format: {success, errors, messages, result}; bearer API_TOKEN;
// only the account ACCOUNT_ID and the namespace NAMESPACE exist):
//   PUT    /client/v4/accounts/{a}/workers/dispatch/namespaces/{ns}/scripts/{script}
//          multipart/form-data: a `metadata` JSON part (main_module, compatibility_date,
//          compatibility_flags, tags, keep_bindings), one part per module by file name.
//          The script is compiled and its global scope run before it is accepted, as
//          Cloudflare does: a broken one is 400 {code 10021, "Uncaught SyntaxError: ..."},
//          one without a fetch handler 400 {code 10068}; the previous script stays.
//          Secrets survive only when keep_bindings lists "secret_text".
//   GET | DELETE .../scripts/{script}
//   PUT .../scripts/{script}/secrets {name, text, type: "secret_text"};
//   GET .../scripts/{script}/secrets (names and types, never values);
//   GET | DELETE .../scripts/{script}/secrets/{name}
// Scripts live in the KV namespace SCRIPTS (persisted by Miniflare: scripts/dev keeps them
// across restarts).
//
// The namespace's runtime: the namespace emulator (wfp_dispatch_namespace.js) sends a call
// for a script it has no service binding for here, with `x-wfp-emulator-script: <name>`.
// The script runs at once through workerd's Worker Loader (LOADER), loaded under an id of
// its etag, its secrets' version and the call's limits (a new upload is a new id: no
// restart), with its secrets as env, the limits the dispatcher asked for (also visible to
// it in `x-wfp-emulator-limits`), wrapped in wfp_user_worker.js (USER_WORKER_SHIM) so its
// outbound parameters reach the outbound Worker, and every fetch it makes sent to the
// outbound Worker (globalOutbound: EGRESS). None of this exists in production.

const API_PREFIX = "/client/v4/accounts/";
const MODULE_TYPES = {
  "application/javascript+module": "js",
  "text/plain": "text",
  "application/json": "json",
  "application/wasm": "wasm",
  "application/octet-stream": "data",
};

function envelope(status, result, errors = []) {
  return Response.json({ success: errors.length === 0, errors, messages: [], result }, { status });
}
const fail = (status, code, message) => envelope(status, null, [{ code, message }]);
const notFound = () => fail(404, 10007, "This Worker does not exist on your account.");

async function sha256Hex(bytes) {
  const d = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function loaderModule(type, bytes) {
  const kind = MODULE_TYPES[type];
  const text = () => new TextDecoder().decode(bytes);
  switch (kind) {
    case "js": return { js: text() };
    case "text": return { text: text() };
    case "json": return { json: JSON.parse(text()) };
    case "wasm": return { wasm: bytes };
    default: return { data: bytes };
  }
}

async function loadModules(env, rec) {
  const modules = {};
  for (const m of rec.modules) {
    const bytes = await env.SCRIPTS.get(`module:${rec.etag}:${m.name}`, "arrayBuffer");
    modules[m.name] = loaderModule(m.type, bytes);
  }
  return modules;
}

async function putScript(request, env, name) {
  const bytes = await request.arrayBuffer();
  let form;
  try {
    form = await new Response(bytes, { headers: { "content-type": request.headers.get("content-type") ?? "" } }).formData();
  } catch {
    return fail(400, 10021, "the body is not multipart/form-data");
  }
  let metadata;
  try {
    const m = form.get("metadata");
    metadata = JSON.parse(typeof m === "string" ? m : await m.text());
  } catch {
    return fail(400, 10021, "metadata is not JSON");
  }
  const main = metadata.main_module;
  const parts = [];
  for (const [field, value] of form.entries()) {
    if (field === "metadata") continue;
    if (typeof value === "string") return fail(400, 10021, `module ${field} has no content type`);
    const type = (value.type || "").split(";")[0].trim();
    if (!(type in MODULE_TYPES)) return fail(400, 10021, `module ${field}: unsupported type ${type}`);
    parts.push({ name: field, type, bytes: await value.arrayBuffer() });
  }
  if (!parts.some((p) => p.name === main && MODULE_TYPES[p.type] === "js")) {
    return fail(400, 10021, `main_module ${JSON.stringify(main)} is not an uploaded ES module`);
  }
  const tags = metadata.tags ?? [];
  if (tags.length > 8) return fail(400, 10021, "at most 8 tags");
  const etag = await sha256Hex(bytes);
  const modules = {};
  for (const p of parts) {
    try {
      modules[p.name] = loaderModule(p.type, p.bytes);
    } catch (e) {
      return fail(400, 10021, `module ${p.name}: ${e.message}`);
    }
  }
  // Compile it and run its global scope, as Cloudflare does before accepting a script.
  const probe = `import * as m from ${JSON.stringify("./" + main)};
export default { fetch() { return new Response(typeof m.default?.fetch === "function" ? "ok" : "none") } };`;
  try {
    const w = env.LOADER.get(`probe:${name}:${etag}`, async () => ({
      compatibilityDate: metadata.compatibility_date,
      compatibilityFlags: metadata.compatibility_flags ?? [],
      mainModule: "__wfp_probe.js",
      modules: { ...modules, "__wfp_probe.js": { js: probe } },
      env: {},
      globalOutbound: null,
    }));
    const answer = await (await w.getEntrypoint().fetch("http://probe/")).text();
    if (answer !== "ok") return fail(400, 10068, "No event handlers were registered. This script does nothing.");
  } catch (e) {
    const message = String(e?.message ?? e).replace(/^Error: /, "").replace(/^Failed to start Worker:\s*/, "");
    return fail(400, 10021, message.trim());
  }
  const previous = await env.SCRIPTS.get(`script:${name}`, "json");
  for (const p of parts) await env.SCRIPTS.put(`module:${etag}:${p.name}`, p.bytes);
  const keep = (metadata.keep_bindings ?? []).includes("secret_text");
  if (!keep) await env.SCRIPTS.delete(`secrets:${name}`);
  const now = new Date().toISOString();
  const rec = {
    id: name,
    etag,
    created_on: previous?.created_on ?? now,
    modified_on: now,
    tags,
    main_module: main,
    compatibility_date: metadata.compatibility_date,
    compatibility_flags: metadata.compatibility_flags ?? [],
    modules: parts.map((p) => ({ name: p.name, type: p.type })),
    secretsVersion: (previous?.secretsVersion ?? 0) + 1,
  };
  await env.SCRIPTS.put(`script:${name}`, JSON.stringify(rec));
  if (previous && previous.etag !== etag) await dropModules(env, previous);
  return envelope(200, scriptResult(rec));
}

async function dropModules(env, rec) {
  for (const m of rec.modules) await env.SCRIPTS.delete(`module:${rec.etag}:${m.name}`);
}

function scriptResult(rec) {
  const { id, etag, created_on, modified_on, tags, compatibility_date, compatibility_flags } = rec;
  return { id, etag, created_on, modified_on, tags, compatibility_date, compatibility_flags, handlers: ["fetch"], usage_model: "standard" };
}

async function secrets(env, name) {
  return (await env.SCRIPTS.get(`secrets:${name}`, "json")) ?? {};
}

async function bumpSecrets(env, name, rec, values) {
  await env.SCRIPTS.put(`secrets:${name}`, JSON.stringify(values));
  rec.secretsVersion += 1;
  await env.SCRIPTS.put(`script:${name}`, JSON.stringify(rec));
}

async function api(request, env, url) {
  if (request.headers.get("authorization") !== `Bearer ${env.API_TOKEN}`) {
    return fail(401, 10000, "Authentication error");
  }
  const m = url.pathname
    .slice(API_PREFIX.length)
    .match(/^([^/]+)\/workers\/dispatch\/namespaces\/([^/]+)\/scripts\/([^/]+)(?:\/secrets(?:\/([^/]+))?)?$/);
  if (!url.pathname.startsWith(API_PREFIX) || !m || m[1] !== env.ACCOUNT_ID || m[2] !== env.NAMESPACE) {
    return fail(404, 7003, `Could not route to ${url.pathname}, perhaps your object identifier is invalid?`);
  }
  const [, , , script] = m;
  const isSecrets = url.pathname.includes(`/scripts/${script}/secrets`);
  const secretName = m[4];
  const method = request.method;
  if (!isSecrets) {
    if (method === "PUT") return putScript(request, env, script);
    const rec = await env.SCRIPTS.get(`script:${script}`, "json");
    if (!rec) return notFound();
    if (method === "GET") {
      return envelope(200, { created_on: rec.created_on, modified_on: rec.modified_on, dispatch_namespace: env.NAMESPACE, script: scriptResult(rec) });
    }
    if (method === "DELETE") {
      await dropModules(env, rec);
      await env.SCRIPTS.delete(`secrets:${script}`);
      await env.SCRIPTS.delete(`script:${script}`);
      return envelope(200, null);
    }
    return fail(405, 10000, "method not allowed");
  }
  const rec = await env.SCRIPTS.get(`script:${script}`, "json");
  if (!rec) return notFound();
  const values = await secrets(env, script);
  if (secretName === undefined && method === "GET") {
    return envelope(200, Object.keys(values).sort().map((name) => ({ name, type: "secret_text" })));
  }
  if (secretName === undefined && method === "PUT") {
    let body;
    try {
      body = await request.json();
    } catch {
      return fail(400, 10021, "the body is not JSON");
    }
    if (typeof body?.name !== "string" || typeof body?.text !== "string" || body.type !== "secret_text") {
      return fail(400, 10021, "a secret is {name, text, type: secret_text}");
    }
    await bumpSecrets(env, script, rec, { ...values, [body.name]: body.text });
    return envelope(200, { name: body.name, type: "secret_text" });
  }
  if (secretName !== undefined && !(secretName in values)) {
    return fail(404, 10056, "secret not found");
  }
  if (method === "GET") return envelope(200, { name: secretName, type: "secret_text" });
  if (method === "DELETE") {
    delete values[secretName];
    await bumpSecrets(env, script, rec, values);
    return envelope(200, null);
  }
  return fail(405, 10000, "method not allowed");
}

/// A call for a script of the namespace, from the namespace emulator.
async function run(request, env, name) {
  const rec = await env.SCRIPTS.get(`script:${name}`, "json");
  if (!rec) return new Response("Worker not found.", { status: 404, headers: { "x-wfp-emulator-missing": "1" } });
  const limitsHeader = request.headers.get("x-wfp-emulator-limits");
  const limits = limitsHeader ? JSON.parse(limitsHeader) : null;
  const id = `${name}:${rec.etag}:${rec.secretsVersion}:${limitsHeader}`;
  const worker = env.LOADER.get(id, async () => {
    const modules = await loadModules(env, rec);
    const entry = [
      `import { wrapUserWorker } from "./__wfp_user_worker.js";`,
      `import worker from ${JSON.stringify("./" + rec.main_module)};`,
      `export default wrapUserWorker(worker);`,
    ].join("\n");
    return {
      compatibilityDate: rec.compatibility_date,
      // The shim keeps each call's outbound parameters with AsyncLocalStorage.
      compatibilityFlags: [...new Set([...rec.compatibility_flags, "nodejs_als"])],
      mainModule: "__wfp_entry.js",
      modules: { ...modules, "__wfp_user_worker.js": { js: env.USER_WORKER_SHIM }, "__wfp_entry.js": { js: entry } },
      env: await secrets(env, name),
      globalOutbound: env.EGRESS,
      ...(limits ? { limits } : {}),
    };
  });
  const headers = new Headers(request.headers);
  headers.delete("x-wfp-emulator-script");
  try {
    return await worker.getEntrypoint().fetch(new Request(request, { headers }));
  } catch (e) {
    return new Response(String(e?.message ?? e), { status: 500, headers: { "x-wfp-emulator-error": "1" } });
  }
}

export default {
  async fetch(request, env) {
    const script = request.headers.get("x-wfp-emulator-script");
    if (script !== null) return run(request, env, script);
    return api(request, env, new URL(request.url));
  },
};
