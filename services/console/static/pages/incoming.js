// Incoming webhooks: create, copy the URL, rotate its token, disable; one's page with its
// recent changes.

import { call, enc, get, post } from "../api.js";
import {
  actionButton,
  badge,
  copyable,
  dl,
  field,
  flash,
  form,
  h,
  link,
  pager,
  rememberWorkspace,
  section,
  table,
  timeEl,
  whereIn,
  workspaceField,
  writes,
} from "../dom.js";
import { recentChanges } from "./audit.js";
import { templateEditor, templateOf } from "./templates.js";

// What the template's test is given until the sender's own payload is pasted.
const SAMPLE = { text: "Build #42 passed", username: "ci" };

export async function render(main, { id, go }) {
  if (id) return detail(main, id);
  main.append(h("h1", {}, "Incoming webhooks"));
  const list = pager(
    (cursor) => get("/api/incoming-webhooks", { limit: 20, cursor }),
    (rows) =>
      table(
        [
          { title: "Name", cell: (r) => link(`#/incoming/${enc(r.id)}`, r.name) },
          { title: "Channel", cell: (r) => r.target_channel_id },
          { title: "URL", cell: (r) => copyable(r.url, "Copy URL") },
          { title: "State", cell: (r) => badge(r.enabled ? "enabled" : "disabled") },
          { title: "Messages", cell: (r) => String(r.message_count ?? 0) },
          { title: "Last message", cell: (r) => timeEl(r.last_message_at) },
          {
            title: "Actions",
            writes: true,
            cell: (r) =>
              h(
                "div",
                { class: "actions" },
                actionButton(
                  "Rotate URL",
                  async () => {
                    await post(`/api/incoming-webhooks/${enc(r.id)}/rotate-token`, {});
                    flash(`New URL for ${r.name}; the old one no longer works.`);
                    list.reload();
                  },
                  { confirmText: "Rotate? The current URL stops working at once." },
                ),
                actionButton(r.enabled ? "Disable" : "Enable", async () => {
                  await call("PATCH", `/api/incoming-webhooks/${enc(r.id)}`, { json: { enabled: !r.enabled } });
                  list.reload();
                }),
                actionButton(
                  "Delete",
                  async () => {
                    await call("DELETE", `/api/incoming-webhooks/${enc(r.id)}`);
                    list.reload();
                  },
                  { className: "danger", confirmText: "Delete this webhook? Its URL answers 404 from then on." },
                ),
              ),
          },
        ],
        rows,
        { caption: "Each URL and the channel it posts to", empty: "No incoming webhooks yet." },
      ),
    { label: "incoming webhooks" },
  );
  main.append(list);
  main.append(
    writes(section(
      "New incoming webhook",
      form(
        [
          workspaceField(),
          field("Target channel id", h("input", { name: "target_channel_id", required: true, autocomplete: "off" })),
          field("Name", h("input", { name: "name", autocomplete: "off" })),
          templateEditor({ sample: SAMPLE }),
        ],
        "Create incoming webhook",
        async (data) => {
          const body = {
            workspace_id: data.get("workspace_id"),
            target_channel_id: String(data.get("target_channel_id") || "").trim(),
          };
          const name = String(data.get("name") || "").trim();
          if (name) body.name = name;
          const template = templateOf(data);
          if (template) body.template = template;
          const created = await post("/api/incoming-webhooks", body);
          rememberWorkspace(body.workspace_id);
          list.reload();
          return h("div", {}, h("p", {}, "Created. Post to:"), copyable(created.url, "Copy URL"));
        },
      ),
    )),
  );
  void go;
  return null;
}

async function detail(main, id) {
  const hook = await get(`/api/incoming-webhooks/${enc(id)}`);
  main.append(
    h("p", {}, link("#/incoming", "← Incoming webhooks")),
    h("h1", {}, hook.name || hook.id),
    section(
      "Incoming webhook",
      dl([
        ["Id", h("code", {}, hook.id)],
        ["Workspace", hook.workspace_id],
        ["Channel", hook.target_channel_id],
        ["URL", copyable(hook.url, "Copy URL")],
        // The same hook in the formats other senders write (docs/api.md).
        ["Discord's format", copyable(`${hook.url}/discord`, "Copy Discord URL")],
        ["Teams' format", copyable(`${hook.url}/teams`, "Copy Teams URL")],
        ["State", badge(hook.enabled ? "enabled" : "disabled")],
        ["Messages", String(hook.message_count ?? 0)],
        ["Last message", timeEl(hook.last_message_at)],
        ["Template", hook.template ? h("pre", { class: "template-text" }, hook.template) : "none: posts are read as Slack's"],
        ["Template's last error", templateError(hook.last_error)],
        ["Created", timeEl(hook.created_at)],
      ]),
    ),
    writes(
      section(
        "Template",
        form(
          [templateEditor({ sample: SAMPLE, value: hook.template })],
          "Save template",
          async (data) => {
            const template = templateOf(data) ?? null;
            await call("PATCH", `/api/incoming-webhooks/${enc(id)}`, { json: { template } });
            return h("p", {}, template ? "Template saved: posts are rendered by it." : "Template removed.");
          },
        ),
      ),
    ),
    recentChanges(id),
  );
  return null;
}

function templateError(error) {
  if (!error) return "—";
  return [`${error.code}: ${error.message}${whereIn(error)} `, timeEl(error.at)];
}
