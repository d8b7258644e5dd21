// The console in one workspace (SPEC §13), at /portal: the session's token taken out of the
// URL's fragment before anything else, the workspace and what the session may do learnt
// from GET /api/me, the chat product's colours, logo and title from the query, and the page
// shown once the session has ended.

import { call, caller, forgetToken, setToken, token } from "./api.js";
import { append, badge, clear, errorBox, h, timeEl } from "./dom.js";

const PREFIX = "hhp_";
// ?accent=4f46e5&background=ffffff… → the stylesheet's custom properties (console.css).
const COLOURS = {
  accent: "--accent",
  accent_text: "--accent-text",
  background: "--bg",
  surface: "--card",
  text: "--text",
  header: "--header-bg",
  header_text: "--header-text",
};
const HEX = /^(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;
const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);
const query = new URLSearchParams(window.location.search);

/** The portal's name, from `?title=`: in the header and the tab's title. */
export const title = (query.get("title") || "").trim().slice(0, 80) || "hookhub";

/**
 * `#token=hhp_…` into the tab's session storage, and out of the address at once: not left
 * in the address bar or the tab's history, and never sent anywhere (a fragment never is).
 * Whether the address held one (a token that is not a portal session's is forgotten).
 */
export function takeToken() {
  const given = new URLSearchParams(window.location.hash.slice(1)).get("token");
  if (given === null) return false;
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  if (given.startsWith(PREFIX)) setToken(given);
  else forgetToken();
  return true;
}

/** The chat product's look: colours as CSS custom properties (CSSOM, which a `style-src
 * 'self'` policy allows), its logo and its title. A value that is not one is ignored. */
export function applyLook(brand) {
  const root = document.documentElement;
  for (const [name, property] of Object.entries(COLOURS)) {
    const value = query.get(name);
    if (value === null) continue;
    if (HEX.test(value)) {
      root.style.setProperty(property, `#${value}`);
      root.classList.add("themed");
    } else {
      console.warn(`hookhub portal: ?${name}= takes a hex colour such as 4f46e5; ignored`);
    }
  }
  const logo = logoUrl(query.get("logo"));
  append(clear(brand), [logo ? h("img", { class: "logo", src: logo, alt: "" }) : null, title]);
}

/** An https image URL (http on this machine), as the edge lets the page's policy name its
 * origin (shared/kernel/http/origins.py); else null. */
function logoUrl(value) {
  if (!value) return null;
  let url;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  const allowed = url.protocol === "https:" || (url.protocol === "http:" && LOOPBACK.has(url.hostname));
  return allowed && !url.username && !url.password ? url.href : null;
}

/**
 * Who the session is (GET /api/me), into `caller`; the session's facts beside `before`.
 * False, with the ended page shown, when there is no session to open.
 */
export async function open(main, before) {
  document.getElementById("session")?.remove();
  if (!token()) {
    ended(main);
    return false;
  }
  let me;
  try {
    me = await call("GET", "/api/me", { quiet401: true });
  } catch (err) {
    if (err.status !== 401) {
      clear(main).append(h("h1", {}, "Not available"), errorBox(err), h("p", {}, "Reload the page to try again."));
      return false;
    }
    me = null;
  }
  if (!me || me.kind !== "portal") {
    forgetToken();
    ended(main);
    return false;
  }
  Object.assign(caller, me);
  before.before(
    h(
      "p",
      { class: "session", id: "session" },
      "Workspace ",
      h("strong", {}, me.workspace_id),
      me.can_write ? null : [" ", badge("read-only", "readonly")],
      me.expires_at ? [h("span", { class: "until" }, " until "), timeEl(me.expires_at)] : null,
    ),
  );
  return true;
}

/** The page of a link that no longer opens anything (or never did). */
export function ended(main) {
  document.getElementById("nav").hidden = true;
  document.getElementById("menu").hidden = true;
  document.getElementById("session")?.remove();
  document.title = `Link expired · ${title}`;
  // Back from a provider in a tab of its own (a framed portal's OAuth): no session here.
  const back = query.has("status") || query.has("error");
  clear(main).append(
    h(
      "section",
      { class: "card narrow ended", role: "alert" },
      back
        ? [
            h("h1", {}, "Back from the provider"),
            h(
              "p",
              {},
              query.get("error") ? `It did not connect: ${query.get("error")}. ` : "It is connected. ",
              "Close this tab and reload the settings page you came from.",
            ),
          ]
        : [
            h("h1", {}, "This link has expired"),
            h("p", {}, "Ask for a new one: open these settings again from the page that linked here."),
          ],
    ),
  );
}
