// The console's shell: sign-in, navigation and hash routing (#/page/id?filters). Nothing
// after the "#" is sent to the server, so neither the token nor a filter is in any request
// line or access log. At /portal: a portal session's workspace alone (portal.js).

import { PORTAL, checkToken, forgetToken, setToken, token, whenUnauthorized } from "./api.js";
import { clear, errorBox, field, flash, h } from "./dom.js";
import * as accountLinks from "./pages/account-links.js";
import * as audit from "./pages/audit.js";
import * as deliveries from "./pages/deliveries.js";
import * as endpoints from "./pages/endpoints.js";
import * as eventTypes from "./pages/eventtypes.js";
import * as imports from "./pages/imports.js";
import * as incoming from "./pages/incoming.js";
import * as integrations from "./pages/integrations.js";
import * as mappings from "./pages/mappings.js";
import * as overview from "./pages/overview.js";
import * as providers from "./pages/providers.js";
import * as portal from "./portal.js";
import { loadCatalog } from "./providers.js";
import { sandbox } from "./sandbox.js";

if (PORTAL) {
  portal.takeToken(); // first of all: the token out of the address bar
  portal.applyLook(document.querySelector(".brand"));
}

const PAGES = [
  ["overview", "Overview", overview],
  ["integrations", "Integrations", integrations],
  ["incoming", "Incoming webhooks", incoming],
  ["endpoints", "Outgoing endpoints", endpoints],
  ["event-types", "Event types", eventTypes],
  ["deliveries", "Deliveries", deliveries],
  ["mappings", "Sync mappings", mappings],
  ["account-links", "Account links", accountLinks],
  ["imports", "Imports", imports],
  ["providers", "Provider apps", providers],
  ["audit", "Audit log", audit],
];

// What belongs to no workspace is not in the portal.
const pages = PORTAL ? PAGES.filter(([key]) => !["overview", "providers"].includes(key)) : PAGES;
const HOME = PORTAL ? "integrations" : "overview";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const menuButton = document.getElementById("menu");
const signOutButton = document.getElementById("sign-out");
let cleanup = null;
let signInMessage = "";
// Whether the stack runs with the sandbox (sandbox.js): asked at once, not in a portal.
const withSandbox = PORTAL ? Promise.resolve(null) : sandbox();

// On a narrow screen the navigation is behind the menu button (console.css), closed until
// it is opened, and closed again by any navigation or Escape.
function setMenu(open) {
  nav.classList.toggle("open", open);
  menuButton.setAttribute("aria-expanded", String(open));
}
menuButton.addEventListener("click", () => setMenu(!nav.classList.contains("open")));
nav.addEventListener("click", (event) => {
  if (event.target instanceof Element && event.target.closest("a")) setMenu(false);
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && nav.classList.contains("open")) {
    setMenu(false);
    menuButton.focus();
  }
});

function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?", 2);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || HOME, id: parts[1] || null, params: new URLSearchParams(query) };
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

function buildNav(current, withSandboxLink) {
  clear(nav).append(
    h(
      "ul",
      {},
      pages.map(([key, title]) =>
        h(
          "li",
          {},
          h("a", { href: `#/${key}`, "aria-current": key === current ? "page" : null }, title),
        ),
      ),
      withSandboxLink ? h("li", {}, h("a", { href: "/sandbox/", class: "sandbox" }, "Sandbox")) : null,
    ),
  );
}

// The portal's session, once GET /api/me has said whose it is (false: it has ended).
let opened = PORTAL ? portal.open(main, signOutButton) : Promise.resolve(true);

async function route() {
  stop();
  if (!(await opened)) return;
  if (!token()) {
    if (PORTAL) portal.ended(main);
    else showSignIn();
    return;
  }
  const sandboxState = await withSandbox;
  // Every page names providers as the catalog does; a page that needs more of it asks again
  // (and shows the error) when this failed.
  try {
    await loadCatalog();
  } catch {
    if (!token()) return; // refused: sign-in or the ended page shows
  }
  setMenu(false);
  nav.hidden = false;
  menuButton.hidden = false;
  signOutButton.hidden = PORTAL;
  const { page, id, params } = parseHash();
  const entry = pages.find(([key]) => key === page);
  buildNav(entry ? page : null, Boolean(sandboxState));
  clear(main);
  if (!entry) {
    main.append(h("h1", {}, "Not found"), h("p", {}, "No such page. Pick one above."));
    return;
  }
  document.title = `${entry[1]} · ${PORTAL ? portal.title : "hookhub console"}`;
  try {
    cleanup = await entry[2].render(main, { id, params, go });
  } catch (err) {
    if (token()) main.append(errorBox(err)); // else refused: sign-in or the ended page shows
  }
}

function showSignIn() {
  setMenu(false);
  nav.hidden = true;
  menuButton.hidden = true;
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
          ? h(
              "p",
              { class: "error", role: "alert" },
              err.code === "not_admin"
                ? "That is a workspace's key, not the admin token: a workspace opens its console through a portal link."
                : "That token was refused: it is not hookhub's admin token.",
            )
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
  if (PORTAL) {
    stop();
    portal.ended(main);
    return;
  }
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
  // A new link into the same page (only its fragment changed, so it was not loaded again).
  if (PORTAL && portal.takeToken()) opened = portal.open(main, signOutButton);
  route();
  main.focus({ preventScroll: true });
});

// Back from an OAuth connect: the callback redirected to /?integration_id=…&status=… (a
// portal's own query kept before those; a portal without its session says it on its page).
const back = new URLSearchParams(window.location.search);
if ((back.has("status") || back.has("error")) && (token() || !PORTAL)) {
  const integrationId = back.get("integration_id");
  if (back.get("error")) flash(`The provider did not connect: ${back.get("error")} ${back.get("error_description") || ""}`, "error");
  else flash(`${back.get("provider") || "The provider"} connected (${integrationId || ""}).`);
  for (const name of ["integration_id", "provider", "status", "error", "error_description"]) back.delete(name);
  const rest = back.toString() ? `?${back}` : "";
  window.history.replaceState(null, "", `${window.location.pathname}${rest}${integrationId ? `#/integrations/${encodeURIComponent(integrationId)}` : window.location.hash}`);
}

route();
