// Amounts are atomic-unit decimal strings (as the API gives them). They are shown in whole
// units with exact BigInt arithmetic, never through floats; the atomic value goes in the
// element's title. USDC-style assets (6 decimals) are all the platform prices in today.

export const DECIMALS = 6;

/** "1234567" -> "1.234567"; "1000" -> "0.001"; "0" -> "0"; thousands grouped with ",". */
export function formatAtomic(atomic, decimals = DECIMALS) {
  const s = String(atomic ?? "");
  if (!/^[0-9]+$/.test(s)) return "?";
  const v = BigInt(s);
  const base = 10n ** BigInt(decimals);
  const whole = (v / base).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const frac = (v % base).toString().padStart(decimals, "0").replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : whole;
}

/** Sum of atomic strings, as an atomic string (exact). */
export function sumAtomic(values) {
  let t = 0n;
  for (const v of values) if (/^[0-9]+$/.test(String(v))) t += BigInt(v);
  return t.toString();
}

/**
 * For charts only (a plot is a picture, not a figure anyone reads off): whole units as a
 * JS number. Exact up to 2^53 atomic units; the table beside each chart has the exact values.
 */
export function plotUnits(atomic, decimals = DECIMALS) {
  const s = String(atomic ?? "0");
  if (!/^[0-9]+$/.test(s)) return null;
  const base = 10n ** BigInt(decimals);
  const v = BigInt(s);
  return Number(v / base) + Number(v % base) / Number(base);
}

/** Integers with thousands separators (counts). */
export function formatCount(n) {
  return typeof n === "number" && Number.isFinite(n) ? n.toLocaleString("en-US") : "?";
}
