// Event types (SPEC §17): the catalog with each type's schema and examples, as JSON text.
// The admin sees and changes every type; a portal sees its workspace's own types and the
// global ones it does not shadow, and changes its own only (a global type is read-only
// there: the workspace may shadow it with its own of the same name). Also the picker the
// endpoint form offers the catalog's names with.

import { call, caller, canWrite, enc, get, post } from "../api.js";
import {
  actionButton,
  badge,
  dl,
  field,
  flash,
  form,
  h,
  jsonBlock,
  lastWorkspace,
  link,
  pager,
  rememberWorkspace,
  section,
  table,
  timeEl,
  writes,
} from "../dom.js";

const STARTER_SCHEMA = { type: "object", properties: { channel_id: { type: "string" } }, required: ["channel_id"] };

/** The types a workspace sees (its own and the unshadowed global ones); the admin's
 * without a workspace: every type. One page of 200: a catalog is short. */
export async function catalogNames(workspaceId) {
  const names = new Set();
  let cursor;
  do {
    const page = await get("/api/event-types", { limit: 200, cursor, workspace_id: workspaceId || undefined });
    page.data.forEach((t) => names.add(t.name));
    cursor = page.next_cursor;
  } while (cursor);
  return [...names].sort();
}

/** Whether this caller may change `type`: the admin any, a portal that can write its own. */
function editable(type) {
  if (!canWrite()) return false;
  return caller.kind === "admin" || (type.workspace_id !== null && type.workspace_id === caller.workspace_id);
}

function scope(type) {
  return type.workspace_id === null ? badge("global", "environment") : h("code", {}, type.workspace_id);
}

function flags(type) {
  return [type.enforce ? badge("enforced", "enabled") : null, " ", type.deprecated ? badge("deprecated", "disabled") : null];
}

/** The page's link to a type: the workspace it belongs to in the query, for the admin. */
function typeHref(type) {
  const query = type.workspace_id && caller.kind === "admin" ? `?workspace_id=${enc(type.workspace_id)}` : "";
  return `#/event-types/${enc(type.name)}${query}`;
}

export async function render(main, { id, params, go }) {
  if (id) return detail(main, id, params.get("workspace_id"), go);
  main.append(
    h("h1", {}, "Event types"),
    h(
      "p",
      { class: "muted" },
      "The catalog of event types: each one's JSON Schema (2020-12) of the event's data, and examples. ",
      "An enforced schema refuses events whose data fails it. ",
      caller.workspace_id
        ? "Global types are read-only here: create this workspace's own of the same name to replace one for it."
        : "A workspace's own type replaces a global one of the same name for that workspace.",
    ),
  );
  const list = pager(
    (cursor) => get("/api/event-types", { limit: 50, cursor }),
    (rows) =>
      table(
        [
          { title: "Name", cell: (r) => link(typeHref(r), r.name) },
          { title: "Owner", cell: scope },
          { title: "Description", cell: (r) => r.description || "—" },
          { title: "Schema", cell: flags },
          { title: "Examples", cell: (r) => String((r.examples || []).length) },
        ],
        rows,
        { caption: "Each type, its owner and its schema", empty: "No event types yet: the types stay an open set." },
      ),
    { label: "event types" },
  );
  main.append(list, writes(createSection(go)));
  return null;
}

/** A JSON textarea's value, or an error naming the field. */
function parsed(data, name, label, fallback) {
  const text = String(data.get(name) || "").trim();
  if (!text) return fallback;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${label} is not JSON: ${err.message}`);
  }
}

function jsonArea(name, value, rows = 8) {
  const area = h("textarea", { name, rows: String(rows), spellcheck: "false", autocomplete: "off", class: "json-source" });
  area.value = value === undefined ? "" : JSON.stringify(value, null, 2);
  area.defaultValue = area.value;
  return area;
}

function schemaFields(type) {
  return [
    field("Description", h("input", { name: "description", autocomplete: "off", value: type?.description || "" })),
    field("Schema", jsonArea("schema", type ? type.schema : STARTER_SCHEMA, 10), "JSON Schema 2020-12 of the event's data; references stay inside it (#/$defs/…)"),
    field("Examples", jsonArea("examples", type ? type.examples : [], 6), "a JSON array of data objects, each valid against the schema"),
    h(
      "div",
      { class: "field" },
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "enforce", checked: Boolean(type?.enforce) }), "Enforce: refuse events whose data fails the schema"),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "deprecated", checked: Boolean(type?.deprecated) }), "Deprecated"),
    ),
  ];
}

function createSection(go) {
  const fixed = Boolean(caller.workspace_id);
  const workspace = h("input", { name: "workspace_id", autocomplete: "off", value: fixed ? caller.workspace_id : "", readonly: fixed });
  const el = form(
    [
      field("Name", h("input", { name: "name", required: true, autocomplete: "off", placeholder: "message.created" }), "dotted lower-case words"),
      field("Workspace id", workspace, fixed ? "this portal's workspace" : "empty: a global type, for every workspace"),
      ...schemaFields(null),
    ],
    "Create event type",
    async (data) => {
      const body = {
        name: String(data.get("name") || "").trim(),
        description: String(data.get("description") || ""),
        schema: parsed(data, "schema", "The schema", {}),
        examples: parsed(data, "examples", "The examples", []),
        enforce: data.get("enforce") === "on",
        deprecated: data.get("deprecated") === "on",
      };
      const owner = String(data.get("workspace_id") || "").trim();
      if (owner) body.workspace_id = owner;
      const made = await post("/api/event-types", body);
      if (owner) rememberWorkspace(owner);
      flash(`Event type ${made.name} created.`);
      go("event-types", made.name, made.workspace_id && !fixed ? { workspace_id: made.workspace_id } : null);
      return null;
    },
  );
  return section("New event type", el);
}

async function detail(main, name, workspaceId, go) {
  const query = workspaceId ? { workspace_id: workspaceId } : undefined;
  const type = await call("GET", `/api/event-types/${enc(name)}`, { query });
  const path = `/api/event-types/${enc(type.name)}`;
  const own = type.workspace_id && caller.kind === "admin" ? { workspace_id: type.workspace_id } : undefined;
  main.append(
    h("p", {}, link("#/event-types", "← Event types")),
    h("h1", {}, type.name),
    section(
      "Event type",
      dl([
        ["Owner", type.workspace_id === null ? "global: every workspace that has no type of this name" : type.workspace_id],
        ["Description", type.description || "—"],
        ["Schema", type.enforce ? "enforced: events whose data fails it are refused" : "documents only (not enforced)"],
        ["Deprecated", type.deprecated ? "yes" : "no"],
        ["Updated", timeEl(type.updated_at)],
      ]),
    ),
    section("Schema of the event's data", jsonBlock(type.schema)),
    section(
      "Examples",
      (type.examples || []).length ? type.examples.map((example) => jsonBlock(example)) : h("p", { class: "empty" }, "No examples."),
    ),
  );
  if (!editable(type)) {
    if (canWrite() && type.workspace_id === null) {
      main.append(h("p", { class: "muted" }, "A global type: read-only here. Create this workspace's own type of the same name to replace it."));
    }
    return null;
  }
  const edit = form(
    schemaFields(type),
    "Save",
    async (data) => {
      await call("PATCH", path, {
        query: own,
        json: {
          description: String(data.get("description") || ""),
          schema: parsed(data, "schema", "The schema", {}),
          examples: parsed(data, "examples", "The examples", []),
          enforce: data.get("enforce") === "on",
          deprecated: data.get("deprecated") === "on",
        },
      });
      flash(`Event type ${type.name} saved.`);
      go("event-types", type.name, own);
      return null;
    },
  );
  const remove = actionButton(
    "Delete",
    async () => {
      await call("DELETE", path, { query: own });
      flash(`Event type ${type.name} deleted.`);
      go("event-types");
    },
    { className: "danger", confirmText: `Delete the event type ${type.name}?` },
  );
  main.append(section("Change", edit), section("Actions", h("div", { class: "actions" }, remove)));
  return null;
}

/** Checkboxes of the catalog's names beside an endpoint's comma-separated `events` input:
 * ticking one adds it there, unticking removes it; anything else typed stays (types are an
 * open set, and wildcards are patterns, not types). */
export function catalogPicker(input) {
  const box = h("div", { class: "event-type-picker", "aria-live": "polite" });
  const chosen = () =>
    String(input.value || "")
      .split(",")
      .map((e) => e.trim())
      .filter(Boolean);
  catalogNames(caller.workspace_id ? null : lastWorkspace())
    .then((names) => {
      if (!names.length) return;
      const checks = names.map((name) => {
        const tick = h("input", { type: "checkbox", value: name, checked: chosen().includes(name) });
        tick.addEventListener("change", () => {
          const rest = chosen().filter((e) => e !== name);
          input.value = (tick.checked ? [...rest, name] : rest).join(", ");
        });
        return h("label", { class: "check" }, tick, h("code", {}, name));
      });
      box.append(h("details", { class: "event-picker" }, h("summary", {}, `From the catalog (${names.length})`), h("div", { class: "event-groups" }, checks)));
    })
    .catch(() => {
      /* the catalog is a help: the field takes any type */
    });
  return box;
}
