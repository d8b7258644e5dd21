// The audit log: every change made through the management API, newest first, filtered by
// resource, action and time, one page at a time; and a resource's recent changes, for its
// own page. An entry names the fields a change sent, never their values.

import { enc, get } from "../api.js";
import { field, filled, form, h, link, pager, section, select, table, timeEl } from "../dom.js";

const ACTIONS = [
  "create",
  "update",
  "delete",
  "enable",
  "disable",
  "rotate",
  "test",
  "recover",
  "retry",
  "connect",
  "connected",
  "disconnect",
  "import",
  "cancel",
  "resume",
  "expire-all",
  "create-issue",
];

// The console's page of each resource type that has one.
const PAGES = {
  integration: "integrations",
  outgoing_webhook: "endpoints",
  incoming_webhook: "incoming",
  delivery: "deliveries",
  import: "imports",
};

function actor(entry) {
  const { kind, id } = entry.actor;
  return kind === "admin" ? "admin" : `${kind} ${id}`;
}

function resource(entry) {
  const type = entry.resource_type || "—";
  if (!entry.resource_id) return type;
  const page = PAGES[entry.resource_type];
  const id = page ? link(`#/${page}/${enc(entry.resource_id)}`, entry.resource_id) : h("code", {}, entry.resource_id);
  return h("span", {}, `${type} `, id);
}

const WHEN = { title: "When", cell: (e) => timeEl(e.at) };
const WHO = { title: "Who", cell: actor };
const ACTION = { title: "Action", cell: (e) => e.action };
const FIELDS = { title: "Fields sent", cell: (e) => (e.fields.length ? h("code", {}, e.fields.join(", ")) : "—") };

export async function render(main, { params, go }) {
  const resourceId = params.get("resource_id") || "";
  const action = params.get("action") || "";
  const since = params.get("since") || "";
  main.append(h("h1", {}, "Audit log"));
  main.append(
    form(
      [
        field("Resource id", h("input", { name: "resource_id", value: resourceId, autocomplete: "off" })),
        field("Action", select("action", [["", "any"], ...ACTIONS], action)),
        field("Since", h("input", { name: "since", type: "datetime-local", value: since }), "your local time"),
      ],
      "Filter",
      async (data) => go("audit", null, filled(data)),
      { className: "form inline filters", reads: true },
    ),
  );
  const sinceIso = since ? new Date(since).toISOString() : "";
  main.append(
    pager(
      (cursor) => get("/api/audit-events", { limit: 50, cursor, resource_id: resourceId, action, since: sinceIso }),
      (rows) =>
        table(
          [
            WHEN,
            WHO,
            { title: "Workspace", cell: (e) => e.workspace_id || "—" },
            { title: "Resource", cell: resource },
            ACTION,
            FIELDS,
            { title: "Request id", cell: (e) => (e.request_id ? h("code", {}, e.request_id) : "—") },
          ],
          rows,
          { caption: "Changes, newest first", empty: "No change matches." },
        ),
      { label: "audit log" },
    ),
  );
  return null;
}

/** The last changes of one resource, newest first: a section for the resource's page. */
export function recentChanges(resourceId) {
  const list = pager(
    (cursor) => get("/api/audit-events", { limit: 10, cursor, resource_id: resourceId }),
    (rows) => table([WHEN, WHO, ACTION, FIELDS], rows, { caption: "Who changed what, newest first", empty: "No change recorded." }),
    { label: "recent changes" },
  );
  return section(
    "Recent changes",
    list,
    h("p", {}, link(`#/audit?resource_id=${enc(resourceId)}`, "In the audit log")),
  );
}
