// The console's shell: sign-in, navigation and hash routing (#/page/id?filters). Nothing
// after the "#" is sent to the server, so neither the token nor a filter is in any request
// line or access log.

import { checkToken, forgetToken, setToken, token, whenUnauthorized } from "./api.js";
import { clear, errorBox, field, flash, h } from "./dom.js";
import * as audit from "./pages/audit.js";
import * as deliveries from "./pages/deliveries.js";
import * as endpoints from "./pages/endpoints.js";
import * as imports from "./pages/imports.js";
import * as incoming from "./pages/incoming.js";
import * as integrations from "./pages/integrations.js";
import * as mappings from "./pages/mappings.js";
import * as overview from "./pages/overview.js";
import * as providers from "./pages/providers.js";

const PAGES = [
  ["overview", "Overview", overview],
  ["integrations", "Integrations", integrations],
  ["incoming", "Incoming webhooks", incoming],
  ["endpoints", "Outgoing endpoints", endpoints],
  ["deliveries", "Deliveries", deliveries],
  ["mappings", "Sync mappings", mappings],
  ["imports", "Imports", imports],
  ["providers", "Provider apps", providers],
  ["audit", "Audit log", audit],
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const signOutButton = document.getElementById("sign-out");
let cleanup = null;
let signInMessage = "";

function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?", 2);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || "overview", id: parts[1] || null, params: new URLSearchParams(query) };
}

export function go(page, id, params) {
  let hash = `#/${page}`;
  if (id) hash += `/${encodeURIComponent(id)}`;
  const query = params ? new URLSearchParams(params).toString() : "";
  if (query) hash += `?${query}`;
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

function stop() {
  if (typeof cleanup === "function") {
    try {
      cleanup();
    } catch {
      /* a page's timers: nothing to report */
    }
  }
  cleanup = null;
}

function buildNav(current) {
  clear(nav).append(
    h(
      "ul",
      {},
      PAGES.map(([key, title]) =>
        h(
          "li",
          {},
          h("a", { href: `#/${key}`, "aria-current": key === current ? "page" : null }, title),
        ),
      ),
    ),
  );
}

async function route() {
  stop();
  if (!token()) {
    showSignIn();
    return;
  }
  nav.hidden = false;
  signOutButton.hidden = false;
  const { page, id, params } = parseHash();
  const entry = PAGES.find(([key]) => key === page);
  buildNav(entry ? page : null);
  clear(main);
  if (!entry) {
    main.append(h("h1", {}, "Not found"), h("p", {}, "No such page. Pick one above."));
    return;
  }
  document.title = `${entry[1]} · hookhub console`;
  try {
    cleanup = await entry[2].render(main, { id, params, go });
  } catch (err) {
    main.append(errorBox(err));
  }
}

function showSignIn() {
  nav.hidden = true;
  signOutButton.hidden = true;
  document.title = "Sign in · hookhub console";
  const input = h("input", {
    type: "password",
    name: "token",
    autocomplete: "current-password",
    required: true,
    spellcheck: "false",
  });
  const status = h("div", { class: "form-status", "aria-live": "assertive" });
  if (signInMessage) status.append(h("p", { class: "error", role: "alert" }, signInMessage));
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const formEl = h(
    "form",
    { class: "form signin", id: "signin" },
    field(
      "Admin token",
      input,
      "HOOKHUB_ADMIN_TOKEN, or the token `make run` prints (.hookhub/admin_token). Kept in this tab only.",
    ),
    h("div", { class: "actions" }, submit),
    status,
  );
  formEl.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(status);
    const candidate = input.value.trim();
    if (!candidate) return;
    submit.disabled = true;
    try {
      await checkToken(candidate);
      setToken(candidate);
      signInMessage = "";
      input.value = "";
      if (!window.location.hash || window.location.hash === "#/signin") go("overview");
      else route();
    } catch (err) {
      status.append(
        err.status === 401
          ? h("p", { class: "error", role: "alert" }, "That token was refused: it is not hookhub's admin token.")
          : errorBox(err),
      );
    } finally {
      submit.disabled = false;
    }
  });
  clear(main).append(
    h(
      "section",
      { class: "card narrow" },
      h("h1", {}, "Sign in to hookhub"),
      formEl,
    ),
  );
  input.focus();
}

whenUnauthorized(() => {
  forgetToken();
  signInMessage = "The admin token was refused (changed or revoked?). Sign in again.";
  route();
});

signOutButton.addEventListener("click", () => {
  forgetToken();
  signInMessage = "";
  stop();
  window.location.hash = "#/overview";
  route();
});

window.addEventListener("hashchange", () => {
  route();
  main.focus({ preventScroll: true });
});

// Back from an OAuth connect: the callback redirected to /?integration_id=…&status=…
const back = new URLSearchParams(window.location.search);
if (back.has("status") || back.has("error")) {
  if (back.get("error")) flash(`The provider did not connect: ${back.get("error")} ${back.get("error_description") || ""}`, "error");
  else flash(`${back.get("provider") || "The provider"} connected (${back.get("integration_id") || ""}).`);
  window.history.replaceState(null, "", `/${back.get("integration_id") ? `#/integrations/${encodeURIComponent(back.get("integration_id"))}` : window.location.hash}`);
}

route();
