// The signed-in home: the tenants this key may see. A creator sees exactly its own; an
// operator sees every tenant with its status and earnings, the totals across tenants, and
// suspends or resumes.

import { api, session } from "../api.js";
import { h, clear, state, table, section } from "../dom.js";
import { formatAtomic, formatCount } from "../money.js";

const amount = (atomic) => h("span", { class: "amount", title: `${atomic} atomic units` }, formatAtomic(atomic));

/** Every page of `GET /tenants`. */
export async function allTenants() {
  const out = [];
  let after = null;
  for (let i = 0; i < 50; i++) {
    const page = await api(`/tenants?limit=100${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    out.push(...page.tenants);
    if (!page.nextCursor) break;
    after = page.nextCursor;
  }
  return out;
}

/** Every page of the operators' `GET /earnings` (25 tenants a page), with summed totals. */
async function allEarnings() {
  const rows = [];
  const pages = [];
  let after = null;
  for (let i = 0; i < 40; i++) {
    const page = await api(`/earnings?limit=25&days=1${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    rows.push(...page.tenants);
    pages.push(page);
    if (!page.nextCursor) break;
    after = page.nextCursor;
  }
  return { rows, pages };
}

export function statusBadge(status) {
  return h("span", { class: `badge ${status === "active" ? "ok" : "warn"}`, "data-field": "status" }, status);
}

export async function setSuspended(slug, suspend) {
  return api(`/tenants/${slug}/${suspend ? "suspend" : "resume"}`, { method: "POST" });
}

export async function renderTenants(main) {
  const who = session.who;
  const operator = who?.kind === "operator";
  const body = h("div", {}, state("loading", "Loading your tenants…"));
  clear(main).append(h("h1", {}, operator ? "All tenants" : "Your APIs"), body);
  let tenants;
  try {
    tenants = await allTenants();
  } catch (e) {
    clear(body).append(state("error", e.message));
    return;
  }
  if (!tenants.length) {
    clear(body).append(
      state("empty", operator ? "No tenant is registered yet." : "This key does not cover any tenant yet. Ask the operator to add yours to it."),
    );
    return;
  }
  let earnings = new Map();
  let totals = null;
  if (operator) {
    try {
      const { rows, pages } = await allEarnings();
      earnings = new Map(rows.map((r) => [r.slug, r]));
      totals = pages;
    } catch (e) {
      body.append(state("error", `Earnings could not be loaded: ${e.message}`));
    }
  }
  const rows = tenants.map((t) => {
    const slug = t.config.slug;
    const e = earnings.get(slug);
    const cells = [
      h("a", { href: `#/t/${slug}`, "data-tenant": slug }, slug),
      statusBadge(t.status),
      t.config.resourceType,
      t.config.price ? amount(t.config.price.amountAtomic) : "free",
    ];
    if (operator) {
      cells.push(
        e?.earnings ? amount(e.earnings.gross) : e?.error ? h("span", { class: "muted" }, e.error) : "…",
        e?.earnings ? amount(e.earnings.net) : "",
        e?.earnings ? formatCount(e.earnings.settledCount) : "",
        h(
          "button",
          {
            type: "button",
            class: "small",
            "data-action": t.status === "active" ? "suspend" : "resume",
            onclick: async (ev) => {
              ev.target.disabled = true;
              try {
                await setSuspended(slug, t.status === "active");
                await renderTenants(main);
              } catch (err) {
                body.prepend(state("error", err.message));
                ev.target.disabled = false;
              }
            },
          },
          t.status === "active" ? "Suspend" : "Resume",
        ),
      );
    }
    return cells;
  });
  const headers = ["tenant", "status", "kind", "price / call"];
  if (operator) headers.push("gross", "net", "settled calls", "");
  const parts = [table(headers, rows, { id: "tenants" })];
  if (operator && totals) {
    // The API sums each page exactly; the pages' totals are summed here, exactly (BigInt).
    const sum = (f) => totals.reduce((t, p) => t + BigInt(p.totals?.[f] ?? "0"), 0n).toString();
    parts.unshift(
      h(
        "dl",
        { class: "stats", id: "totals" },
        h("div", {}, h("dt", {}, "gross, all tenants"), h("dd", { "data-field": "gross" }, amount(sum("gross")))),
        h("div", {}, h("dt", {}, "platform fees"), h("dd", { "data-field": "fees" }, amount(sum("fees")))),
        h("div", {}, h("dt", {}, "creators' net"), h("dd", { "data-field": "net" }, amount(sum("net")))),
      ),
    );
  }
  clear(body).append(section(operator ? `${tenants.length} tenants` : `${tenants.length} tenant${tenants.length > 1 ? "s" : ""}`, ...parts));
}
