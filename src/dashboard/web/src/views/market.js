// The marketplace (no sign-in): trending APIs over 1h / 24h / 7d, each with its price,
// calls, distinct payers and an example that pays with the official x402 client.

import { api } from "../api.js";
import { h, clear, state } from "../dom.js";
import { formatAtomic, formatCount } from "../money.js";

export const WINDOWS = ["1h", "24h", "7d"];

/**
 * A Node script paying one call with the official x402 v2 client (@x402/fetch + @x402/evm),
 * allowed to pay this offer's asset up to its price and no more.
 */
export function paidExample(url, price) {
  const allowed = { network: price.network, asset: price.asset, maxAmountPerPayment: price.amountAtomic };
  return [
    "// npm install @x402/fetch @x402/evm viem   (save as pay.mjs, run: PRIVATE_KEY=0x... node pay.mjs)",
    'import { wrapFetchWithPayment, x402Client } from "@x402/fetch";',
    'import { registerExactEvmScheme } from "@x402/evm/exact/client";',
    'import { privateKeyToAccount } from "viem/accounts";',
    "",
    "const client = new x402Client();",
    "registerExactEvmScheme(client, { signer: privateKeyToAccount(process.env.PRIVATE_KEY) });",
    `client.setSpendControls({ allowedAssets: [${JSON.stringify(allowed)}] });`,
    "const fetchWithPayment = wrapFetchWithPayment(fetch, client);",
    `const res = await fetchWithPayment(${JSON.stringify(url)});`,
    "console.log(res.status, await res.text());",
  ].join("\n");
}

function freeExample(url) {
  return `curl -s ${url}`;
}

function price(offer) {
  if (!offer) return h("span", { class: "muted" }, "unknown");
  if (!offer.price) return h("span", { class: "price" }, "free");
  const p = offer.price;
  return h(
    "span",
    { class: "price amount", title: `${p.amountAtomic} atomic units of ${p.asset} on ${p.network}` },
    `${formatAtomic(p.amountAtomic)} ${p.assetName ?? "USDC"} / call`,
  );
}

function entryCard(entry, offer) {
  const url = `${location.origin}/t/${entry.tenant}/`;
  const example = offer?.price ? paidExample(url, offer.price) : freeExample(url);
  const code = h("pre", { class: "example" }, h("code", {}, example));
  const copy = h(
    "button",
    {
      type: "button",
      class: "small",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(example);
          copy.textContent = "Copied";
        } catch {
          copy.textContent = "Select the text to copy";
        }
      },
    },
    "Copy",
  );
  return h(
    "li",
    { class: "card market-entry", "data-tenant": entry.tenant },
    h(
      "div",
      { class: "row" },
      h("h3", {}, entry.tenant),
      offer?.suspended ? h("span", { class: "badge warn" }, "suspended") : null,
      price(offer),
    ),
    offer?.price?.description ? h("p", { class: "muted" }, offer.price.description) : null,
    h(
      "dl",
      { class: "stats" },
      h("div", {}, h("dt", {}, "calls"), h("dd", { "data-field": "calls" }, formatCount(entry.calls))),
      h("div", {}, h("dt", {}, "distinct payers"), h("dd", { "data-field": "payers" }, formatCount(entry.payers))),
      h(
        "div",
        {},
        h("dt", {}, "revenue"),
        h("dd", { "data-field": "revenue", class: "amount", title: `${entry.revenueAtomic} atomic units` }, formatAtomic(entry.revenueAtomic)),
      ),
    ),
    h("details", {}, h("summary", {}, offer?.price ? "Call it with an x402 client" : "Call it"), code, copy),
  );
}

export async function renderMarket(main, windowName = "24h") {
  const tabs = h(
    "div",
    { class: "tabs", role: "tablist" },
    WINDOWS.map((w) =>
      h("a", { href: `#/market/${w}`, role: "tab", "aria-selected": w === windowName ? "true" : "false" }, w),
    ),
  );
  const list = h("div", {}, state("loading", "Loading the trending APIs…"));
  clear(main).append(
    h("h1", {}, "Trending APIs"),
    h("p", { class: "muted" }, "Paid and free APIs ranked by calls over the window (settled paid calls, served free ones)."),
    tabs,
    list,
  );
  let top;
  try {
    top = await api(`/trending?window=${windowName}&limit=20`, { auth: false });
  } catch (e) {
    clear(list).append(state("error", `The ranking could not be loaded: ${e.message}`));
    return;
  }
  if (!top.entries.length) {
    clear(list).append(state("empty", `Nothing called in the last ${windowName} yet. Rankings are updated about 30 s after calls.`));
    return;
  }
  const offers = await Promise.all(
    top.entries.map((e) => api(`/market/${e.tenant}`, { auth: false }).catch(() => null)),
  );
  clear(list).append(h("ol", { class: "market" }, top.entries.map((e, i) => entryCard(e, offers[i]))));
}
