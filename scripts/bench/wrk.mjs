// Runs wrk against a URL and returns {rps, p50Ms, p99Ms, requests, errors}.
import { spawnSync } from "node:child_process";

function toMs(s) {
  const m = s.match(/^([\d.]+)(us|ms|s)$/);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === "us" ? v / 1000 : m[2] === "s" ? v * 1000 : v;
}

export function wrk(url, { connections = 32, threads = 1, seconds = 10, headers = {} } = {}) {
  const args = ["-t", String(threads), "-c", String(connections), "-d", `${seconds}s`, "--latency"];
  for (const [k, v] of Object.entries(headers)) args.push("-H", `${k}: ${v}`);
  args.push(url);
  const out = spawnSync("wrk", args, { encoding: "utf8" });
  if (out.status !== 0) throw new Error(`wrk failed: ${out.stderr || out.error}`);
  const text = out.stdout;
  const pct = (p) => toMs((text.match(new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m")) ?? [])[1] ?? "");
  const non2xx = Number((text.match(/Non-2xx or 3xx responses: (\d+)/) ?? [0, 0])[1]);
  const sockErr = text.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  return {
    rps: Number((text.match(/Requests\/sec:\s+([\d.]+)/) ?? [])[1]),
    p50Ms: pct(50),
    p99Ms: pct(99),
    requests: Number((text.match(/(\d+) requests in/) ?? [])[1]),
    errors: non2xx + (sockErr ? sockErr.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0),
  };
}

export function row(name, r) {
  return `| ${name} | ${r.rps.toFixed(0)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.requests} | ${r.errors} |`;
}
export const HEADER = "| case | req/s | p50 ms | p99 ms | requests | errors |\n|---|---|---|---|---|---|";
