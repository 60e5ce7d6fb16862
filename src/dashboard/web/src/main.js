// The dashboard's entry: a hash router over the views, the header (who is signed in), and
// the session (a bearer token in this tab's session storage).

import "uplot/dist/uPlot.min.css";
import "./style.css";
import { session } from "./api.js";
import { h, clear, state } from "./dom.js";
import { renderMarket, WINDOWS } from "./views/market.js";
import { renderSignIn } from "./views/signin.js";
import { renderTenants } from "./views/tenants.js";
import { renderTenant } from "./views/tenant.js";

const main = document.getElementById("main");
let current = new AbortController();

function header() {
  const who = session.who;
  const nav = clear(document.getElementById("nav"));
  nav.append(h("a", { href: "#/market/24h" }, "Marketplace"));
  if (who) nav.append(h("a", { href: "#/tenants" }, who.kind === "operator" ? "All tenants" : "Your APIs"));
  const box = clear(document.getElementById("who"));
  if (who) {
    box.append(
      h("span", { class: "muted", id: "signed-in-as" }, who.kind === "operator" ? "operator" : `creator ${who.prefix ?? ""}`.trim()),
      h(
        "button",
        {
          type: "button",
          class: "small",
          onclick: () => {
            session.clear();
            location.hash = "#/market/24h";
          },
        },
        "Sign out",
      ),
    );
  } else {
    box.append(h("a", { href: "#/signin", class: "button" }, "Sign in"));
  }
}

function route() {
  current.abort();
  current = new AbortController();
  header();
  const [, view, arg] = (location.hash || "#/").split("/");
  const signedIn = Boolean(session.token && session.who);
  switch (view) {
    case "signin":
      return renderSignIn(main);
    case "tenants":
      return signedIn ? renderTenants(main) : renderSignIn(main, "Sign in to see your APIs.");
    case "t":
      return signedIn && /^[a-z0-9-]{1,63}$/.test(arg ?? "")
        ? renderTenant(main, arg, current.signal)
        : renderSignIn(main, "Sign in to see this API.");
    case "market":
      return renderMarket(main, WINDOWS.includes(arg) ? arg : "24h");
    default:
      return renderMarket(main, "24h");
  }
}

// A key that expired or was revoked mid-session: say so, and ask for a new one.
window.addEventListener("claw:unauthorized", (ev) => {
  session.clear();
  current.abort();
  header();
  renderSignIn(main, ev.detail);
});
window.addEventListener("hashchange", route);
try {
  route();
} catch (e) {
  clear(main).append(state("error", `The dashboard failed to start: ${e.message}`));
}
