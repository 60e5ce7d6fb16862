// Compiles the local chain's contracts (ClawUSD.sol, Multicall.sol) with the npm `solc`
// (wasm, ~4 s and ~260 MB) into the committed artifacts.json: per contract its abi,
// bytecode and deployedBytecode, plus the sha256 of the sources. Scripts load the committed
// artifact through loadArtifacts(), which recompiles only when a source's hash differs, so
// a normal run never starts solc.
//
//   node scripts/local/chain/compile.mjs            # recompile if a source changed
//   node scripts/local/chain/compile.mjs --force    # recompile anyway

import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const DIR = path.dirname(fileURLToPath(import.meta.url));
export const SOURCES = ["ClawUSD.sol", "Multicall.sol"];
export const ARTIFACTS_PATH = path.join(DIR, "artifacts.json");
/// Anvil 1.7 runs a later hardfork; cancun keeps the bytecode valid on any recent chain.
const EVM_VERSION = "cancun";

function readSources() {
  return Object.fromEntries(SOURCES.map((f) => [f, fs.readFileSync(path.join(DIR, f), "utf8")]));
}

/// sha256 over every source, in order, each as "name\0content\0".
export function sourceHash(sources = readSources()) {
  const h = crypto.createHash("sha256");
  for (const f of SOURCES) h.update(`${f}\0${sources[f]}\0`);
  return h.digest("hex");
}

export async function compile() {
  const sources = readSources();
  const { default: solc } = await import("solc");
  const input = {
    language: "Solidity",
    sources: Object.fromEntries(Object.entries(sources).map(([f, content]) => [f, { content }])),
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: EVM_VERSION,
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
    },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (out.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length) throw new Error(errors.map((e) => e.formattedMessage).join("\n"));
  const contracts = {};
  for (const file of SOURCES) {
    for (const [name, c] of Object.entries(out.contracts[file] ?? {})) {
      contracts[name] = {
        source: file,
        abi: c.abi,
        bytecode: "0x" + c.evm.bytecode.object,
        deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      };
    }
  }
  const artifacts = {
    compiler: `solc ${solc.version()}`,
    evmVersion: EVM_VERSION,
    sourceHash: sourceHash(sources),
    sources: Object.fromEntries(
      SOURCES.map((f) => [f, crypto.createHash("sha256").update(sources[f]).digest("hex")]),
    ),
    contracts,
  };
  fs.writeFileSync(ARTIFACTS_PATH, JSON.stringify(artifacts, null, 2) + "\n");
  return artifacts;
}

/// The committed artifacts, recompiled first only if the sources changed since.
export async function loadArtifacts() {
  let artifacts = null;
  try {
    artifacts = JSON.parse(fs.readFileSync(ARTIFACTS_PATH, "utf8"));
  } catch {}
  if (artifacts?.sourceHash === sourceHash()) return artifacts;
  process.stderr.write("chain: contract sources changed, compiling with solc (a few seconds)\n");
  return compile();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const t0 = Date.now();
  const force = process.argv.includes("--force");
  const fresh = !force && (() => {
    try {
      return JSON.parse(fs.readFileSync(ARTIFACTS_PATH, "utf8")).sourceHash === sourceHash();
    } catch {
      return false;
    }
  })();
  if (fresh) {
    console.log(`${path.relative(process.cwd(), ARTIFACTS_PATH)} is up to date`);
  } else {
    const a = await compile();
    console.log(`compiled ${Object.keys(a.contracts).join(", ")} with ${a.compiler} in ${Date.now() - t0} ms`);
  }
}
