// One tenant, as its creator (or an operator) sees it: earnings over time, calls per day by
// stage, payers, latency, top routes, the ledger (cursor paging), payouts, a live tail of
// usage events, and its settings (price, limits, deployment with rollback, secret names).
// Each part loads on its own and explains its own empty, loading and error states.

import { api, session } from "../api.js";
import { h, clear, state, table, section } from "../dom.js";
import { formatAtomic, formatCount, plotUnits } from "../money.js";
import { dayChart } from "../chart.js";
import { statusBadge, setSuspended } from "./tenants.js";

const amount = (atomic, field) =>
  atomic === undefined || atomic === null
    ? ""
    : h("span", { class: "amount", title: `${atomic} atomic units`, "data-field": field ?? null }, formatAtomic(atomic));
const time = (ms) => (typeof ms === "number" ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "");
const stat = (label, value, field) => h("div", {}, h("dt", {}, label), h("dd", { "data-field": field }, value));

/** Runs `load` into a section body, with a loading state first and an explained error. */
async function fill(body, what, load) {
  clear(body).append(state("loading", `Loading ${what}…`));
  try {
    const nodes = await load();
    clear(body).append(...[nodes].flat());
  } catch (e) {
    clear(body).append(state("error", `${what[0].toUpperCase()}${what.slice(1)} could not be loaded: ${e.message}`));
  }
}

async function earnings(slug) {
  const e = await api(`/ledger/${slug}/earnings?days=30`);
  const summary = h(
    "dl",
    { class: "stats", id: "earnings" },
    stat("gross", amount(e.gross), "gross"),
    stat("platform fee", amount(e.fees), "fees"),
    stat("net", amount(e.net), "net"),
    stat("available", amount(e.available), "available"),
    stat("settled calls", formatCount(e.settledCount), "settledCount"),
    stat("pending", amount(e.pending), "pending"),
    stat("outcome unknown", amount(e.unknown), "unknown"),
    stat("paid out", amount(e.paidOut), "paidOut"),
  );
  if (!e.days.length) return [summary, state("empty", "No settled call yet: earnings per day appear after the first paid call.")];
  const chart = dayChart(
    "Earnings per day (whole units)",
    e.days.map((d) => d.day),
    [
      { label: "gross", values: e.days.map((d) => plotUnits(d.gross)) },
      { label: "fee", values: e.days.map((d) => plotUnits(d.fee)) },
      { label: "net", values: e.days.map((d) => plotUnits(d.net)) },
    ],
  );
  const rows = [...e.days].reverse().map((d) => [d.day, amount(d.gross), amount(d.fee), amount(d.net), formatCount(d.count)]);
  return [summary, chart, table(["day (UTC)", "gross", "fee", "net", "calls"], rows, { id: "earnings-days" })];
}

const STAGES = [
  ["served", "served"],
  ["settled", "settled"],
  ["challenged", "challenged (402)"],
  ["rateLimited", "rate-limited"],
  ["errors", "errors"],
];
const errors = (s) => s.error + s.verifyFailed + s.settlementFailed;

async function calls(slug) {
  const s = await api(`/usage/${slug}/stats?days=14`);
  const l = s.latencyMs;
  const summary = h(
    "dl",
    { class: "stats", id: "calls" },
    ...STAGES.map(([k, label]) => stat(label, formatCount(k === "errors" ? errors(s.totals) : s.totals[k]), k)),
    stat("distinct payers", formatCount(s.payers), "payers"),
    stat("distinct callers", formatCount(s.callers), "callers"),
    stat("latency p50 / p95", l ? `${l.p50} / ${l.p95} ms` : "no answered call", "latency"),
  );
  if (!s.days.length) return [summary, state("empty", "No call in the last 14 days.")];
  const chart = dayChart(
    "Calls per day by stage",
    s.days.map((d) => d.day),
    STAGES.map(([k, label]) => ({ label, values: s.days.map((d) => (k === "errors" ? errors(d) : d[k])) })),
  );
  const days = [...s.days].reverse().map((d) => [d.day, ...STAGES.map(([k]) => formatCount(k === "errors" ? errors(d) : d[k]))]);
  const routes = s.topRoutes.map((r) => [h("code", {}, r.route), formatCount(r.calls), formatCount(r.answered)]);
  return [
    summary,
    chart,
    table(["day (UTC)", ...STAGES.map(([, l]) => l)], days, { id: "calls-days" }),
    h("h3", {}, "Top routes"),
    table(["route", "calls", "answered"], routes, { id: "top-routes" }),
  ];
}

function ledger(slug, body) {
  const PAGE = 20;
  const stack = [0];
  const load = async () => {
    const after = stack[stack.length - 1];
    const page = await api(`/ledger/${slug}/entries?after=${after}&limit=${PAGE}`);
    if (!page.entries.length && after === 0) return state("empty", "The ledger is empty: no paid call yet.");
    const rows = page.entries.map((e) => [
      String(e.seq),
      time(e.atMs),
      e.kind.replaceAll("_", " "),
      amount(e.amount),
      amount(e.fee),
      amount(e.net),
      h("code", { class: "clip", title: e.txRef ?? "" }, e.txRef ?? e.payoutId ?? ""),
    ]);
    const nav = h(
      "div",
      { class: "row" },
      h("button", { type: "button", class: "small", disabled: stack.length === 1, onclick: () => (stack.pop(), fill(body, "the ledger", load)) }, "← Previous"),
      h("span", { class: "muted" }, `entries ${page.entries[0]?.seq ?? after} – ${page.entries.at(-1)?.seq ?? after}`),
      h("button", { type: "button", class: "small", disabled: !page.hasMore, onclick: () => (stack.push(page.nextCursor), fill(body, "the ledger", load)) }, "Next →"),
    );
    return [table(["seq", "time (UTC)", "entry", "amount", "fee", "net", "transaction / payout"], rows, { id: "ledger" }), nav];
  };
  return fill(body, "the ledger", load);
}

async function payouts(slug) {
  const e = await api(`/ledger/${slug}/earnings?days=1`);
  const summary = h(
    "dl",
    { class: "stats", id: "payouts" },
    stat("paid out", amount(e.paidOut), "paidOut"),
    stat("posted payouts", formatCount(e.paidOutCount), "paidOutCount"),
    stat("pending", amount(e.payoutsPending), "payoutsPending"),
    stat("pending payouts", formatCount(e.payoutsPendingCount), "payoutsPendingCount"),
    stat("voided payouts", formatCount(e.payoutsVoidedCount), "payoutsVoidedCount"),
    stat("available", amount(e.available), "available"),
  );
  let list = null;
  try {
    const l = await api(`/ledger/${slug}/payouts?limit=50`);
    const rows = (l.payouts ?? []).map((p) => [p.id, p.state, amount(p.amount), h("code", { class: "clip" }, p.destination), h("code", { class: "clip", title: p.txRef ?? "" }, p.txRef ?? ""), time(p.updatedAtMs)]);
    list = rows.length ? table(["payout", "state", "amount", "destination", "transaction", "updated (UTC)"], rows, { id: "payout-list" }) : state("empty", "No payout yet.");
  } catch (err) {
    // Platforms without the payout list route: the totals above are all there is.
    if (err.status !== 404 && err.status !== 405) list = state("error", `The payout list could not be loaded: ${err.message}`);
  }
  return [summary, list];
}

function tail(slug, body, signal) {
  const KEEP = 30;
  const events = [];
  let cursor = "0";
  const list = h("div", {}, state("loading", "Catching up with the feed…"));
  const status = h("p", { class: "muted", "aria-live": "off" });
  clear(body).append(status, list);
  const render = () => {
    if (!events.length) return clear(list).append(state("empty", "No event yet. Calls show up here within seconds."));
    const rows = events.map((e) => [time(e.timeMs), h("span", { class: `stage ${e.stage}` }, e.stage), String(e.statusCode), h("code", {}, e.route), `${e.latencyMs} ms`, amount(e.amountAtomic), e.errorCode ?? ""]);
    clear(list).append(table(["time (UTC)", "stage", "status", "route", "latency", "amount", "code"], rows, { id: "tail" }));
  };
  const poll = async () => {
    try {
      // Catch up page by page (at most 20 pages of 500 at once), then poll for new ones.
      for (let i = 0; i < 20 && !signal.aborted; i++) {
        const page = await api(`/events?tenant=${slug}&since=${cursor}&limit=500`);
        cursor = page.nextCursor;
        events.unshift(...page.events.reverse());
        events.length = Math.min(events.length, KEEP);
        if (!page.hasMore) break;
      }
      status.textContent = `Live: polling every 3 s (last event #${cursor}).`;
      render();
    } catch (e) {
      status.textContent = "";
      clear(list).append(state("error", `The events feed could not be read: ${e.message}`));
      if (e.status === 401 || e.status === 403) return;
    }
    if (!signal.aborted) setTimeout(poll, 3000);
  };
  poll();
}

async function settings(slug, body) {
  const t = await api(`/tenants/${slug}`);
  const c = t.config;
  const limits = c.rateLimit && Object.keys(c.rateLimit).length ? h("code", {}, JSON.stringify(c.rateLimit)) : "none";
  const config = h(
    "dl",
    { class: "stats", id: "settings" },
    stat("kind", c.resourceType, "resourceType"),
    stat("plan", c.plan, "plan"),
    stat("price / call", c.price ? amount(c.price.amountAtomic, "price") : "free", "priceCell"),
    stat("network", c.price?.network ?? "–", "network"),
    stat("pay to", c.price ? h("code", { class: "clip" }, c.price.payTo) : "–", "payTo"),
    stat("rate limits", limits, "rateLimit"),
    stat("allowed hosts", c.allowedHosts?.length ? c.allowedHosts.join(", ") : "none", "allowedHosts"),
  );
  const deployment = h("div", {}, state("loading", "Loading the deployment…"));
  const secrets = h("div", {}, state("loading", "Loading secret names…"));
  const loadDeployment = async () => {
    try {
      const d = await api(`/tenants/${slug}/deployment`);
      const v = (x) => [String(x.version), time(x.createdAt * 1000), x.mainModule, formatCount(x.size), h("code", { class: "clip", title: x.hash }, x.hash.slice(0, 12))];
      const rollback = h(
        "button",
        {
          type: "button",
          class: "small",
          disabled: (d.history?.length ?? 0) < 2,
          onclick: async () => {
            if (rollback.dataset.armed !== "1") {
              rollback.dataset.armed = "1";
              rollback.textContent = "Confirm: serve the previous version";
              return;
            }
            rollback.disabled = true;
            try {
              await api(`/tenants/${slug}/deployment/rollback`, { method: "POST" });
              await loadDeployment();
            } catch (e) {
              deployment.append(state("error", `Rollback refused: ${e.message}`));
            }
          },
        },
        "Roll back",
      );
      clear(deployment).append(
        d.live ? h("p", {}, "Live: version ", h("strong", { "data-field": "liveVersion" }, String(d.live.version))) : state("empty", "Nothing deployed yet."),
        d.history?.length ? table(["version", "created (UTC)", "main module", "bytes", "sha-256"], d.history.map(v), { id: "deployments" }) : null,
        rollback,
      );
    } catch (e) {
      clear(deployment).append(
        e.status === 404 && e.code === "route_not_found"
          ? state("empty", "This platform does not expose deployments yet.")
          : state("error", `The deployment could not be loaded: ${e.message}`),
      );
    }
  };
  const loadSecrets = async () => {
    try {
      const s = await api(`/tenants/${slug}/secrets`);
      clear(secrets).append(
        s.secrets.length ? h("ul", { id: "secrets" }, s.secrets.map((x) => h("li", {}, h("code", {}, x.name)))) : state("empty", "No secret set. Values are never shown, only names."),
      );
    } catch (e) {
      clear(secrets).append(
        e.status === 404 && e.code === "route_not_found"
          ? state("empty", "This platform does not expose secrets yet.")
          : state("error", `Secret names could not be loaded: ${e.message}`),
      );
    }
  };
  // Only a function or dataset tenant without a named script of its own is deployed through
  // the API (a named script, or a proxy, answers 409 deployment_not_supported): say so.
  if (c.workerName || c.resourceType === "proxy") {
    const why = c.workerName
      ? `This tenant runs the script ${c.workerName}, installed by the operator: it is not deployed through the API.`
      : "A proxy tenant is served by the platform itself: there is no script to deploy.";
    clear(deployment).append(state("empty", why));
    clear(secrets).append(state("empty", "Secrets belong to a deployed script."));
  } else {
    loadDeployment();
    loadSecrets();
  }
  return [config, h("h3", {}, "Deployment"), deployment, h("h3", {}, "Secrets"), secrets];
}

export async function renderTenant(main, slug, signal) {
  const who = session.who;
  const operator = who?.kind === "operator";
  if (!operator && !(who?.tenants ?? []).includes(slug)) {
    // A creator's key covers its own tenants only; the API would refuse (403) anyway.
    clear(main).append(
      h("p", {}, h("a", { href: "#/tenants" }, "← your APIs")),
      h("h1", {}, slug),
      state("error", "Your key does not give access to this API: it is not one of yours."),
    );
    return;
  }
  const head = h("div", { class: "row" }, h("h1", {}, slug));
  const parts = {
    earnings: h("div", {}),
    calls: h("div", {}),
    ledger: h("div", {}),
    payouts: h("div", {}),
    tail: h("div", {}),
    settings: h("div", {}),
  };
  clear(main).append(
    h("p", {}, h("a", { href: "#/tenants" }, "← all tenants")),
    head,
    section("Earnings (last 30 days with settlements)", parts.earnings),
    section("Calls (last 14 days)", parts.calls),
    section("Live events", parts.tail),
    section("Ledger", parts.ledger),
    section("Payouts", parts.payouts),
    section("Settings", parts.settings),
  );
  api(`/tenants/${slug}`)
    .then((t) => {
      head.append(statusBadge(t.status));
      if (operator) {
        const suspend = t.status === "active";
        head.append(
          h(
            "button",
            {
              type: "button",
              class: "small",
              "data-action": suspend ? "suspend" : "resume",
              onclick: async (ev) => {
                ev.target.disabled = true;
                try {
                  await setSuspended(slug, suspend);
                  // The router renders the page again (and stops this one's polling).
                  window.dispatchEvent(new HashChangeEvent("hashchange"));
                } catch (e) {
                  head.after(state("error", e.message));
                }
              },
            },
            suspend ? "Suspend" : "Resume",
          ),
        );
      }
    })
    .catch((e) => head.after(state("error", e.message)));
  fill(parts.earnings, "earnings", () => earnings(slug));
  fill(parts.calls, "call statistics", () => calls(slug));
  ledger(slug, parts.ledger);
  fill(parts.payouts, "payouts", () => payouts(slug));
  fill(parts.settings, "settings", () => settings(slug, parts.settings));
  tail(slug, parts.tail, signal);
}
