// 402claw dataset Worker (fixed; the platform uploads it with the creator's data as the JSON
// module __claw_data.json: {columns: [{name, type}], rows: [[...], ...]}, typed at upload).
//
// GET /schema                       columns, types, row count
// GET /rows (or /)                  a page of rows:
//   <col>=v            equality          <col>.ne=v        not equal
//   <col>.gt|gte|lt|lte=v  ranges        <col>.in=a,b,c    one of (at most 100)
//   fields=a,b         field selection   sort=a,-b         ascending / descending (-), stable
//   limit=1..1000      page size (default 100)            cursor=...  the previous nextCursor
//   format=json|csv    JSON {rows, count, total, nextCursor} or CSV (x-next-cursor, x-total-count)
// Filter values are read by the column's type (integer, number, boolean, string); a bad query
// is a 400 problem (invalid_query) naming the parameter. Nulls never match a filter and sort last.
import data from "./__claw_data.json";

const MAX_LIMIT = 1000;
const DEFAULT_LIMIT = 100;
const MAX_IN = 100;
const OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in"];
const WORDS = ["fields", "sort", "limit", "cursor", "format"];
const columns = data.columns;
const rows = data.rows;
const index = new Map(columns.map((c, i) => [c.name, i]));
// Sorted row orders, per sort spec, kept for the isolate's life (the data never changes).
const orders = new Map();

class QueryError extends Error {
  constructor(field, detail) {
    super(detail);
    this.field = field;
  }
}

function problem(status, code, title, detail, field) {
  const body = { type: `https://402claw.dev/problems/${code}`, title, status, code, detail };
  if (field) body.field = field;
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/problem+json" } });
}

function typed(column, raw, field) {
  switch (column.type) {
    case "integer": {
      if (!/^-?\d+$/.test(raw)) throw new QueryError(field, `${column.name} is an integer column: ${JSON.stringify(raw)}`);
      const n = Number(raw);
      if (!Number.isSafeInteger(n)) throw new QueryError(field, `${raw} is out of range`);
      return n;
    }
    case "number": {
      const n = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(n)) throw new QueryError(field, `${column.name} is a number column: ${JSON.stringify(raw)}`);
      return n;
    }
    case "boolean":
      if (raw === "true") return true;
      if (raw === "false") return false;
      throw new QueryError(field, `${column.name} is a boolean column: true or false`);
    default:
      return raw;
  }
}

function parseFilters(params) {
  const filters = [];
  for (const [key, raw] of params) {
    if (WORDS.includes(key)) continue;
    const dot = key.lastIndexOf(".");
    const name = dot < 0 ? key : key.slice(0, dot);
    const op = dot < 0 ? "eq" : key.slice(dot + 1);
    const col = index.get(name);
    if (col === undefined) throw new QueryError(key, `no column ${JSON.stringify(name)}`);
    if (!OPS.includes(op)) throw new QueryError(key, `unknown operator ${JSON.stringify(op)} (${OPS.join(", ")})`);
    const column = columns[col];
    if (op === "in") {
      const values = raw.split(",");
      if (values.length > MAX_IN) throw new QueryError(key, `at most ${MAX_IN} values`);
      filters.push({ col, op, set: new Set(values.map((v) => typed(column, v, key))) });
    } else {
      if (["gt", "gte", "lt", "lte"].includes(op) && column.type === "boolean") {
        throw new QueryError(key, `${name} is a boolean column: no ranges`);
      }
      filters.push({ col, op, value: typed(column, raw, key) });
    }
  }
  return filters;
}

function matches(row, filters) {
  for (const f of filters) {
    const v = row[f.col];
    if (v === null) return false;
    switch (f.op) {
      case "eq": if (v !== f.value) return false; break;
      case "ne": if (v === f.value) return false; break;
      case "gt": if (!(v > f.value)) return false; break;
      case "gte": if (!(v >= f.value)) return false; break;
      case "lt": if (!(v < f.value)) return false; break;
      case "lte": if (!(v <= f.value)) return false; break;
      case "in": if (!f.set.has(v)) return false; break;
    }
  }
  return true;
}

function parseSort(spec) {
  if (!spec) return [];
  const keys = spec.split(",");
  if (keys.length > 4) throw new QueryError("sort", "at most 4 sort keys");
  return keys.map((k) => {
    const desc = k.startsWith("-");
    const name = desc ? k.slice(1) : k;
    const col = index.get(name);
    if (col === undefined) throw new QueryError("sort", `no column ${JSON.stringify(name)}`);
    return { col, dir: desc ? -1 : 1 };
  });
}

function order(sortKeys, spec) {
  if (sortKeys.length === 0) return null;
  let o = orders.get(spec);
  if (o) return o;
  o = Array.from(rows.keys());
  o.sort((a, b) => {
    for (const { col, dir } of sortKeys) {
      const x = rows[a][col];
      const y = rows[b][col];
      if (x === y) continue;
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    }
    return a - b;
  });
  if (orders.size >= 16) orders.delete(orders.keys().next().value);
  orders.set(spec, o);
  return o;
}

// The cursor binds a position to the query it came from (fnv-1a of the other parameters).
function fingerprint(params) {
  const text = [...params].filter(([k]) => k !== "cursor").map(([k, v]) => `${k}=${v}`).sort().join("&");
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16);
}

function csvField(v) {
  if (v === null) return "";
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function query(url) {
  const params = url.searchParams;
  for (const w of WORDS) {
    if (params.getAll(w).length > 1) throw new QueryError(w, `${w} given more than once`);
  }
  const format = params.get("format") ?? "json";
  if (format !== "json" && format !== "csv") throw new QueryError("format", "json or csv");
  let limit = DEFAULT_LIMIT;
  if (params.has("limit")) {
    const raw = params.get("limit");
    limit = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!(limit >= 1 && limit <= MAX_LIMIT)) throw new QueryError("limit", `limit is 1 to ${MAX_LIMIT}`);
  }
  let fields = columns.map((_, i) => i);
  if (params.has("fields")) {
    fields = params.get("fields").split(",").map((name) => {
      const i = index.get(name);
      if (i === undefined) throw new QueryError("fields", `no column ${JSON.stringify(name)}`);
      return i;
    });
  }
  const fp = fingerprint(params);
  let offset = 0;
  if (params.has("cursor")) {
    const m = /^(\d+)\.([0-9a-f]+)$/.exec(params.get("cursor"));
    if (!m || m[2] !== fp) throw new QueryError("cursor", "not a cursor of this query");
    offset = Number(m[1]);
  }
  const filters = parseFilters(params);
  const sortSpec = params.get("sort") ?? "";
  const o = order(parseSort(sortSpec), sortSpec);
  const page = [];
  let total = 0;
  for (let k = 0; k < rows.length; k++) {
    const row = rows[o ? o[k] : k];
    if (!matches(row, filters)) continue;
    if (total >= offset && page.length < limit) page.push(row);
    total++;
  }
  const next = offset + page.length < total ? `${offset + page.length}.${fp}` : null;
  if (format === "csv") {
    const lines = [fields.map((i) => csvField(columns[i].name)).join(",")];
    for (const row of page) lines.push(fields.map((i) => csvField(row[i])).join(","));
    const headers = { "content-type": "text/csv; charset=utf-8", "x-total-count": String(total) };
    if (next) headers["x-next-cursor"] = next;
    return new Response(lines.join("\r\n") + "\r\n", { headers });
  }
  const out = page.map((row) => Object.fromEntries(fields.map((i) => [columns[i].name, row[i]])));
  const body = { rows: out, count: out.length, total };
  if (next) body.nextCursor = next;
  return Response.json(body);
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (request.method !== "GET" && request.method !== "HEAD") {
      const r = problem(405, "method_not_allowed", "Method not allowed", `${request.method} is not allowed on a dataset`);
      r.headers.set("allow", "GET, HEAD");
      return r;
    }
    if (url.pathname === "/schema") return Response.json({ columns, rowCount: rows.length });
    if (url.pathname === "/rows" || url.pathname === "/") {
      try {
        return query(url);
      } catch (e) {
        if (e instanceof QueryError) return problem(400, "invalid_query", "Invalid query parameter", e.message, e.field);
        throw e;
      }
    }
    return problem(404, "route_not_found", "No such route", "a dataset serves /rows and /schema");
  },
};
