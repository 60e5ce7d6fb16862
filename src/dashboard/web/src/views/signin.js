// Sign in with a creator key or an operator token. The token stays in this tab's session
// storage and goes out only as a bearer header to this origin.

import { session, whoami } from "../api.js";
import { h, clear, state } from "../dom.js";

export function renderSignIn(main, reason) {
  const input = h("input", {
    type: "password",
    id: "token",
    name: "token",
    autocomplete: "off",
    required: true,
    placeholder: "claw_ck_… or operator token",
  });
  const msg = h("div", { "aria-live": "polite" }, reason ? state("error", reason) : null);
  const form = h(
    "form",
    {
      class: "card signin",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        clear(msg).append(state("loading", "Checking…"));
        session.set(token);
        try {
          const who = await whoami();
          session.setWho(who);
          location.hash = "#/tenants";
        } catch (e) {
          session.clear();
          clear(msg).append(state("error", e.message));
        }
      },
    },
    h("label", { for: "token" }, "Creator key or operator token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
    h("p", { class: "muted" }, "Kept in this tab only (session storage) and sent as a bearer header; no cookies. Closing the tab signs you out."),
    msg,
  );
  clear(main).append(h("h1", {}, "Sign in"), form);
  input.focus();
}
