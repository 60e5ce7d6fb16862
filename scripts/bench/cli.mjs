// scripts/bench-cli: the claw binary's size, and how long `claw deploy` of a small function
// takes end to end (process start, tenant read, config check, bundling, upload, answer)
// against the local platform on workerd (Miniflare's API, inspector off).

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { startLocal, DEV_ADMIN_TOKEN, ROOT } from "../local/runtime.mjs";

const TARGET_DIR = process.env.CARGO_TARGET_DIR ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR) : path.join(ROOT, "target");
const CLAW = path.join(TARGET_DIR, "release", "claw");
const RUNS = Number(process.env.BENCH_DEPLOYS ?? 15);

const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// Size: as built, stripped (a copy), and gzipped (what a download would weigh).
const stripped = path.join(os.tmpdir(), `claw-stripped-${process.pid}`);
fs.copyFileSync(CLAW, stripped);
const s = spawnSync("strip", [stripped], { stdio: "inherit" });
if (s.status !== 0) throw new Error("strip failed (apt-get install binutils)");
const raw = fs.statSync(CLAW).size;
const strippedSize = fs.statSync(stripped).size;
const gz = zlib.gzipSync(fs.readFileSync(stripped), { level: 9 }).length;
fs.rmSync(stripped);

const project = fs.mkdtempSync(path.join(os.tmpdir(), "claw-bench-"));
fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(project, "node_modules"));
fs.writeFileSync(
  path.join(project, "plain.js"),
  `export default { fetch(req) { return Response.json({ hello: new URL(req.url).searchParams.get("name") }); } };\n`,
);
fs.writeFileSync(path.join(project, "util.ts"), `export const shout = (s: string): string => s.toUpperCase();\n`);
fs.writeFileSync(
  path.join(project, "typed.ts"),
  `import { shout } from "./util";\nexport default { fetch(req: Request): Response { return new Response(shout(new URL(req.url).pathname)); } };\n`,
);

const platform = await startLocal({ persistDir: fs.mkdtempSync(path.join(os.tmpdir(), "claw-bench-state-")) });
const env = { PATH: process.env.PATH, HOME: project, XDG_CONFIG_HOME: project, CLAW_URL: platform.url, CLAW_TOKEN: DEV_ADMIN_TOKEN };

function deployOnce(file, slug) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(CLAW, ["deploy", file, "--slug", slug], { cwd: project, env, encoding: "utf8" });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`claw deploy ${file} failed: ${r.stderr}`);
  return ms;
}

try {
  const rows = [];
  for (const [file, slug] of [["plain.js", "bench-plain"], ["typed.ts", "bench-typed"]]) {
    deployOnce(file, slug); // creates the tenant: not measured
    const times = [];
    for (let i = 0; i < RUNS; i++) times.push(deployOnce(file, slug));
    const check = await fetch(`${platform.url}/t/${slug}/x?name=bench`);
    if (check.status !== 200) throw new Error(`${slug} does not answer: ${check.status}`);
    rows.push([file, median(times), Math.min(...times), Math.max(...times)]);
  }
  console.log(`claw binary (release, ${process.platform}-${process.arch}): ${kib(raw)} as built, ${kib(strippedSize)} stripped, ${kib(gz)} stripped+gzip`);
  console.log(`claw deploy of a small function, ${RUNS} redeploys each (wall time of the whole command, local workerd):`);
  for (const [file, med, min, max] of rows) {
    console.log(`  ${file.padEnd(9)} median ${med.toFixed(0)} ms  (min ${min.toFixed(0)}, max ${max.toFixed(0)})`);
  }
} finally {
  await platform.dispose();
  fs.rmSync(project, { recursive: true, force: true });
}
