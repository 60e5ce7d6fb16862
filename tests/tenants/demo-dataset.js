// Sample "dataset" tenant: a CSV file served as a queryable API, as the platform generates
// for dataset creators. GET /rows?<column>=<value>&limit=N, GET /rows/<id>, GET /schema.
import csv from "./cities.csv";

const [header, ...lines] = csv.trim().split("\n");
const columns = header.split(",");
const rows = lines.map((line) => Object.fromEntries(line.split(",").map((v, i) => [columns[i], v])));

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (request.method !== "GET") return Response.json({ error: "method not allowed" }, { status: 405 });
    if (url.pathname === "/schema") return Response.json({ columns, count: rows.length });
    const one = url.pathname.match(/^\/rows\/([^/]+)$/);
    if (one) {
      const row = rows.find((r) => r.id === one[1]);
      return row ? Response.json(row) : Response.json({ error: "no such row" }, { status: 404 });
    }
    if (url.pathname === "/rows") {
      const limit = Math.min(Number(url.searchParams.get("limit") ?? "100") || 100, 100);
      const filters = [...url.searchParams].filter(([k]) => columns.includes(k));
      const hits = rows.filter((r) => filters.every(([k, v]) => r[k].toLowerCase() === v.toLowerCase()));
      return Response.json({ rows: hits.slice(0, limit), total: hits.length });
    }
    return Response.json({ error: "not found" }, { status: 404 });
  },
};
