// Building the page. Everything is made with createElement and textContent: a value that
// came from outside (a payload, a provider's name, an error text) is always text, never
// markup. No function here takes HTML.
//
// A caller that can only read (a read-only portal session) is offered nothing that
// changes anything: an action button or a form is left out unless it says it only reads
// (`reads: true`: a filter, a lookup, a refresh), and so is what a page wraps in
// `writes(…)` or a table column marked `writes: true`. The API refuses such a caller anyway.

import { canWrite, caller } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";

/** h("button", {class: "x", onclick: fn}, "text", child, …) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** The same in SVG (charts). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "value" && "value" in el) {
      // Also the default a form's reset goes back to (an input's value attribute).
      if ("defaultValue" in el) el.defaultValue = value;
      el.value = value;
    } else if (name === "checked" || name === "selected" || name === "disabled") {
      el[name] = Boolean(value);
      if (value) el.setAttribute(name, "");
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

let fieldSeq = 0;

/** A labelled form field: <label for=id>Label</label><input id=id …>, with an optional hint. */
export function field(label, control, hint) {
  const id = control.id || `f${++fieldSeq}`;
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("small", { id: hintId, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

export function select(name, options, selected) {
  return h(
    "select",
    { name },
    options.map((o) => {
      const [value, text] = Array.isArray(o) ? o : [o, o];
      return h("option", { value, selected: value === selected }, text);
    }),
  );
}

export function badge(text, kind) {
  return h("span", { class: `badge badge-${kind || text}` }, text);
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString();
}

export function timeEl(iso) {
  return iso ? h("time", { datetime: iso, title: iso }, when(iso)) : "—";
}

export function link(href, text) {
  return h("a", { href }, text);
}

/** A button that copies `value` to the clipboard and says so. */
export function copyButton(value, label = "Copy") {
  const button = h("button", { type: "button", class: "copy" }, label);
  button.setAttribute("aria-label", `${label}: ${value}`);
  button.addEventListener("click", async () => {
    let ok = false;
    try {
      await navigator.clipboard.writeText(value);
      ok = true;
    } catch {
      ok = legacyCopy(value);
    }
    button.textContent = ok ? "Copied" : "Select and copy by hand";
    setTimeout(() => {
      button.textContent = label;
    }, 2000);
  });
  return button;
}

function legacyCopy(value) {
  const area = h("textarea", { readonly: true, class: "offscreen" });
  area.value = value;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

/** A value with a copy button: the webhook URL, a secret shown once. */
export function copyable(value, label = "Copy") {
  return h("div", { class: "copyable" }, h("code", { class: "value" }, value), copyButton(value, label));
}

/** JSON shown as text in a <pre>. */
export function jsonBlock(value) {
  const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  return h("pre", { class: "json", tabindex: "0" }, text);
}

/** What only a caller that can write is shown: `nodes` for it, nothing for the others. */
export function writes(...nodes) {
  const fragment = document.createDocumentFragment();
  return canWrite() ? append(fragment, nodes) : fragment;
}

/**
 * A table. columns: [{title, cell: (row) => Node|string, writes?}], rows: [...].
 */
export function table(columns, rows, { caption, empty = "Nothing here yet." } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  columns = columns.filter((c) => !c.writes || canWrite());
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.title)))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            {},
            columns.map((c) => h("td", { "data-label": c.title }, c.cell(row))),
          ),
        ),
      ),
    ),
  );
}

/**
 * One page of a list at a time, through the API's cursors: never the whole list.
 * fetchPage(cursor) → {data, next_cursor}; render(rows) → Node.
 */
export function pager(fetchPage, render, { label = "items" } = {}) {
  const box = h("div", { class: "pager-box" });
  const body = h("div", { class: "pager-body", "aria-live": "polite" });
  const prev = h("button", { type: "button" }, "Previous page");
  const next = h("button", { type: "button" }, "Next page");
  const where = h("span", { class: "muted" });
  const nav = h("div", { class: "pager" }, prev, where, next);
  nav.setAttribute("aria-label", `Pages of ${label}`);
  box.append(body, nav);
  const cursors = [null];
  let index = 0;
  let nextCursor = null;

  async function load() {
    body.setAttribute("aria-busy", "true");
    try {
      const page = await fetchPage(cursors[index]);
      nextCursor = page.next_cursor;
      clear(body).append(render(page.data));
      where.textContent = `page ${index + 1}`;
    } catch (err) {
      clear(body).append(errorBox(err));
    } finally {
      body.removeAttribute("aria-busy");
      prev.disabled = index === 0;
      next.disabled = !nextCursor;
    }
  }
  prev.addEventListener("click", () => {
    if (index > 0) {
      index -= 1;
      load();
    }
  });
  next.addEventListener("click", () => {
    if (nextCursor) {
      cursors[index + 1] = nextCursor;
      index += 1;
      load();
    }
  });
  box.reload = load;
  load();
  return box;
}

/** ` (line 2, column 7)` for a template's error that says where, unless its message says
 * it already (a template refused at save does). */
export function whereIn(error) {
  if (!Number.isInteger(error?.line)) return "";
  const at = `(line ${error.line}, column ${error.column})`;
  return String(error.message || "").includes(at) ? "" : ` ${at}`;
}

/** An API error as text: its code, message and the fields a 422 names. */
export function errorBox(err) {
  const box = h("div", { class: "error", role: "alert" });
  const code = err && err.code ? `${err.code}: ` : "";
  box.append(h("strong", {}, "Error "), `${code}${(err && err.message) || String(err)}${whereIn(err)}`);
  if (err && Array.isArray(err.details) && err.details.length) {
    box.append(
      h(
        "ul",
        {},
        err.details.map((d) =>
          h("li", {}, `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.message || d.msg}`),
        ),
      ),
    );
  }
  return box;
}

/** A form whose submit runs `action(form data)` and shows its error in the form; nothing
 * for a caller that cannot write, unless the form only `reads`. Once a form that changes
 * something has done it, its fields go back to their defaults (a second click must not make
 * a duplicate; the workspace field keeps the one just used); a form that only reads (a
 * filter, a lookup) keeps what was asked. */
export function form(fields, submitLabel, action, { className = "form", reads = false } = {}) {
  if (!reads && !canWrite()) return document.createDocumentFragment();
  const status = h("div", { class: "form-status", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary" }, submitLabel);
  const el = h("form", { class: className, novalidate: false }, fields, h("div", { class: "actions" }, submit), status);
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(status);
    submit.disabled = true;
    try {
      const result = await action(new FormData(el), el);
      if (!reads) resetForm(el);
      if (result instanceof Node) status.append(result);
    } catch (err) {
      status.append(errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  return el;
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), children);
}

/** An action button that runs `fn` and reports its error next to itself; nothing for a
 * caller that cannot write, unless the action only `reads`. */
export function actionButton(label, fn, { className = "", confirmText, reads = false } = {}) {
  if (!reads && !canWrite()) return document.createDocumentFragment();
  const button = h("button", { type: "button", class: className }, label);
  button.addEventListener("click", async () => {
    if (confirmText && !window.confirm(confirmText)) return;
    button.disabled = true;
    try {
      await fn(button);
    } catch (err) {
      const box = errorBox(err);
      button.after(box);
      setTimeout(() => box.remove(), 8000);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

export function flash(message, kind = "ok") {
  const area = document.getElementById("flash");
  const note = h("p", { class: `note note-${kind}` }, message);
  area.append(note);
  setTimeout(() => note.remove(), 6000);
}

export function dl(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(Boolean).map(([term, value]) => [h("dt", {}, term), h("dd", {}, value ?? "—")]),
  );
}

export function pct(part, whole) {
  if (!whole) return "—";
  return `${((100 * part) / whole).toFixed(1)} %`;
}

/** A form back to its defaults, its workspace field to the workspace last used. */
function resetForm(el) {
  el.reset();
  for (const input of el.querySelectorAll("input[data-workspace]")) {
    input.defaultValue = lastWorkspace();
    input.value = input.defaultValue;
  }
}

const WORKSPACE_KEY = "hookhub.workspace";
// The sandbox's workspace, when the stack runs with it (sandbox.js): the default until one
// was used. Nothing else is: no workspace is made up.
let sandboxWorkspace = "";

export function setSandboxWorkspace(value) {
  sandboxWorkspace = value || "";
}

/** The workspace the operator last used (not a secret: kept in localStorage), else the
 * sandbox's, else none; a portal's own. */
export function lastWorkspace() {
  if (caller.workspace_id) return caller.workspace_id;
  let remembered = null;
  try {
    remembered = localStorage.getItem(WORKSPACE_KEY);
  } catch {
    remembered = null;
  }
  return remembered || sandboxWorkspace;
}

/** Called once a create in `value` has succeeded. */
export function rememberWorkspace(value) {
  if (caller.workspace_id) return;
  try {
    if (value) localStorage.setItem(WORKSPACE_KEY, String(value));
  } catch {
    /* storage refused: nothing is remembered */
  }
}

/** Form data as an object of the non-empty fields. */
export function filled(data) {
  const out = {};
  for (const [k, v] of data.entries()) {
    if (typeof v === "string" && v.trim() !== "") out[k] = v.trim();
  }
  return out;
}

/** The workspace field every create form has: fixed to a portal's workspace. */
export function workspaceField() {
  const fixed = Boolean(caller.workspace_id);
  return field(
    "Workspace id",
    h("input", {
      name: "workspace_id",
      required: true,
      value: lastWorkspace(),
      autocomplete: "off",
      readonly: fixed,
      "data-workspace": true,
    }),
    fixed ? "this portal's workspace" : "remembered in this browser once a create succeeds",
  );
}

/** A list's workspace filter: the admin's alone (a portal's lists are its workspace's). */
export function workspaceFilter(value) {
  return caller.workspace_id ? null : field("Workspace id", h("input", { name: "workspace_id", value }));
}
