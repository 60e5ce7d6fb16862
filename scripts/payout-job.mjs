// Reference payout job: pays each tenant's available balance out, exactly once, however
// often it is killed and rerun.
//
//   PLATFORM_PAYOUT_TOKEN=... node scripts/payout-job.mjs --base http://127.0.0.1:8787 \
//       --state .state/payout-job.json --tenant demo-paid=0xDESTINATION [--tenant ...]
//
// Per tenant, from the cursor saved in the state file:
// 1. page the ledger's entries after the cursor (GET /__platform/ledger/{slug}/entries)
//    up to the last seq now: the range (cursor, upTo] names this payout;
// 2. read the available balance (GET .../earnings); nothing available: save the cursor, done;
// 3. write the intent {key, amount, destination, upTo} to the state file BEFORE creating
//    anything (the key is `payout:{slug}:{cursor+1}-{upTo}`, so a rerun sends the very
//    same request);
// 4. create the payout (POST .../payouts with Idempotency-Key: key): a rerun gets the
//    original payout back (200), never a second one; a changed body would be a 422;
// 5. "send" it: SIMULATED, no funds move; the transfer reference is derived from the key
//    (`simulated:<sha256(key)>`), so sending again names the same transfer. A real job
//    must make its transfer idempotent the same way (e.g. a fixed chain nonce per key);
// 6. post it with that reference (a repeat is a replay), then save the cursor = upTo
//    and clear the intent.
// A kill between any two steps is safe: the rerun resumes the saved intent with the same
// key and body. Even with the state file lost, the ledger never pays more than what is
// available (pending and posted payouts are already taken out of it).
//
// PAYOUT_JOB_EXIT_AFTER=intent|create|send|post makes the job exit (code 86) right after
// that step: how the tests kill it at every point.

import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";

export const PAGE_LIMIT = 100;
export const KILL_EXIT_CODE = 86;

function loadState(file) {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    if (e.code === "ENOENT") return { tenants: {} };
    throw e;
  }
}

/// Writes the state atomically (temp file + rename), so a kill never leaves half a file.
function saveState(file, state) {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(state, null, 2));
  fs.renameSync(tmp, file);
}

function killPoint(step) {
  if (process.env.PAYOUT_JOB_EXIT_AFTER === step) {
    console.error(`payout-job: exiting after ${step} (PAYOUT_JOB_EXIT_AFTER)`);
    process.exit(KILL_EXIT_CODE);
  }
}

export function client(base, token) {
  const call = async (method, p, { body, headers = {} } = {}) => {
    const res = await fetch(`${base}/__platform${p}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}), ...headers },
      body,
    });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {}
    if (res.status >= 400) {
      const err = new Error(`${method} ${p}: ${res.status} ${json?.code ?? text}`);
      err.status = res.status;
      err.problem = json;
      throw err;
    }
    return { status: res.status, json };
  };
  return {
    entries: (slug, after, limit = PAGE_LIMIT) => call("GET", `/ledger/${slug}/entries?after=${after}&limit=${limit}`),
    earnings: (slug) => call("GET", `/ledger/${slug}/earnings?days=1`),
    createPayout: (slug, key, body) => call("POST", `/ledger/${slug}/payouts`, { body, headers: { "idempotency-key": key } }),
    payout: (slug, id) => call("GET", `/ledger/${slug}/payouts/${id}`),
    postPayout: (slug, id, txRef) => call("POST", `/ledger/${slug}/payouts/${id}/post`, { body: JSON.stringify({ txRef }) }),
  };
}

/// Pages the journal from `after` to its end; returns {upTo, pages, entries}.
export async function readToEnd(api, slug, after, limit = PAGE_LIMIT) {
  let cursor = after;
  let pages = 0;
  let entries = 0;
  for (;;) {
    const { json } = await api.entries(slug, cursor, limit);
    pages += 1;
    entries += json.entries.length;
    cursor = json.nextCursor;
    if (!json.hasMore) return { upTo: cursor, pages, entries };
  }
}

/// The simulated transfer: no funds move. Its reference is a function of the key only.
export function simulatedTransfer(key) {
  return `simulated:${crypto.createHash("sha256").update(key).digest("hex")}`;
}

/// One tenant's payout run. Returns what happened, for logs and tests.
export async function payTenant(api, stateFile, slug, destination) {
  const state = loadState(stateFile);
  const t = (state.tenants[slug] ??= { cursor: 0, intent: null });
  if (!t.intent) {
    const { upTo } = await readToEnd(api, slug, t.cursor);
    if (upTo === t.cursor) return { slug, action: "nothing_new", cursor: t.cursor };
    const { json: earnings } = await api.earnings(slug);
    if (BigInt(earnings.available) === 0n) {
      t.cursor = upTo;
      saveState(stateFile, state);
      return { slug, action: "nothing_available", cursor: upTo };
    }
    t.intent = {
      key: `payout:${slug}:${t.cursor + 1}-${upTo}`,
      // Exactly these bytes are sent on every attempt (the fingerprint is their SHA-256).
      body: JSON.stringify({ amount: earnings.available, destination }),
      upTo,
    };
    saveState(stateFile, state);
  }
  killPoint("intent");
  const { key, body, upTo } = t.intent;
  const created = await api.createPayout(slug, key, body);
  const payout = created.json;
  killPoint("create");
  let posted = payout;
  if (payout.state === "pending") {
    const txRef = simulatedTransfer(key);
    killPoint("send");
    posted = (await api.postPayout(slug, payout.id, txRef)).json;
  }
  killPoint("post");
  t.cursor = upTo;
  t.intent = null;
  saveState(stateFile, state);
  return {
    slug,
    action: created.status === 201 ? "paid" : "resumed",
    payoutId: posted.id,
    amount: posted.amount,
    state: posted.state,
    txRef: posted.txRef,
    cursor: upTo,
  };
}

function parseArgs(argv) {
  const out = { tenants: [], base: "http://127.0.0.1:8787", state: ".state/payout-job.json" };
  for (let i = 0; i < argv.length; i++) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === "--base") (out.base = v), i++;
    else if (k === "--state") (out.state = v), i++;
    else if (k === "--tenant") {
      const [slug, destination] = v.split("=");
      out.tenants.push({ slug, destination });
      i++;
    } else throw new Error(`unknown argument ${k}`);
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = parseArgs(process.argv.slice(2));
  const token = process.env.PLATFORM_PAYOUT_TOKEN;
  if (!token) {
    console.error("PLATFORM_PAYOUT_TOKEN is required");
    process.exit(2);
  }
  if (args.tenants.length === 0 || args.tenants.some((t) => !t.destination)) {
    console.error("usage: payout-job.mjs --base URL --state FILE --tenant slug=0xDESTINATION ...");
    process.exit(2);
  }
  const api = client(args.base, token);
  let failed = false;
  for (const { slug, destination } of args.tenants) {
    try {
      console.log(JSON.stringify(await payTenant(api, args.state, slug, destination)));
    } catch (e) {
      failed = true;
      console.error(`payout-job: ${slug}: ${e.message}`);
    }
  }
  process.exit(failed ? 1 : 0);
}
