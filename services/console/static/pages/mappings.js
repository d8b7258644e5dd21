// Sync mappings of one integration (with their errors), creating one (the API's validation
// errors shown as they come), and the message lookup: every copy of one message.

import { call, caller, enc, get, post } from "../api.js";
import {
  actionButton,
  badge,
  dl,
  field,
  filled,
  form,
  h,
  link,
  pager,
  section,
  select,
  table,
  timeEl,
  writes,
} from "../dom.js";
import { loadCatalog, providerIcon, providerTitle, providersThat } from "../providers.js";

/** The chat networks, as the catalog says (`sync` among their capabilities): a network
 * added to hookhub shows up here with no change to the console. */
function chatNetworks() {
  return providersThat("sync");
}

/** An integration as the picker offers it: its name, then what tells it from another of
 * the same name: the provider, the account it is connected as, its workspace (the admin
 * sees every one), its status unless connected, and the end of its id. */
function integrationLabel(i) {
  const parts = [i.name || i.id, providerTitle(i.provider)];
  if (i.account) parts.push(i.account.name ? `${i.account.name} (${i.account.id})` : i.account.id);
  if (!caller.workspace_id) parts.push(i.workspace_id);
  if (i.status !== "connected") parts.push(i.status);
  parts.push(`…${i.id.slice(-6)}`);
  return parts.join(" · ");
}

/** The chat integrations to pick from (the first 100 of each provider). */
async function chatIntegrations() {
  await loadCatalog();
  const pages = await Promise.all(
    chatNetworks().map(({ provider }) =>
      get("/api/integrations", { limit: 100, provider }).catch(() => ({ data: [] })),
    ),
  );
  return pages.flatMap((page) => page.data);
}

function picker(chats, integrationId, go) {
  const where = caller.workspace_id ? " in this workspace" : "";
  if (!chats.length && !integrationId) {
    return h(
      "p",
      { class: "empty", role: "status" },
      `No integration of a chat network (${chatNetworks().map((entry) => entry.name).join(", ")})${where} yet: mappings are a chat integration's. Create one on `,
      link("#/integrations", "Integrations"),
      ".",
    );
  }
  const options = chats.map((i) => [i.id, integrationLabel(i)]);
  if (integrationId && !chats.some((i) => i.id === integrationId)) options.unshift([integrationId, integrationId]);
  const connected = chats.some((i) => i.status === "connected");
  return h(
    "div",
    {},
    form(
      [field("Integration", select("integration_id", [["", "choose…"], ...options], integrationId))],
      "Show mappings",
      async (data) => go("mappings", null, filled(data)),
      { className: "form inline filters", reads: true },
    ),
    connected
      ? null
      : h(
          "p",
          { class: "muted", role: "status" },
          `There are chat network integrations${where}, but none of them is connected: a new mapping needs a connected one (connect it from its page on `,
          link("#/integrations", "Integrations"),
          ").",
        ),
  );
}

export async function render(main, { params, go }) {
  const integrationId = params.get("integration_id") || "";
  main.append(h("h1", {}, "Sync mappings"));
  main.append(picker(await chatIntegrations(), integrationId, go));
  if (integrationId) {
    const list = pager(
      (cursor) => get(`/api/integrations/${enc(integrationId)}/mappings`, { limit: 20, cursor }),
      (rows) =>
        table(
          [
            { title: "", cell: (r) => providerIcon(r.provider) },
            // The name, then the id, once: a network that tells no name (a Teams channel
            // before its first activity) has the id as its name.
            { title: "Provider channel", cell: (r) => [...new Set([r.external_channel_name, r.external_channel_id].filter(Boolean))].join(" ") },
            { title: "Chat channel", cell: (r) => r.channel_id },
            { title: "Direction", cell: (r) => r.direction },
            { title: "Status", cell: (r) => [badge(r.status), r.enabled ? null : badge("disabled")] },
            {
              title: "Last error",
              cell: (r) => (r.last_error ? [`${r.last_error.code}: ${r.last_error.message} `, timeEl(r.last_error.at)] : "—"),
            },
            { title: "Errors", cell: (r) => String(r.error_count ?? 0) },
            { title: "Last synced", cell: (r) => timeEl(r.last_synced_at) },
            {
              title: "Actions",
              writes: true,
              cell: (r) =>
                h(
                  "div",
                  { class: "actions" },
                  actionButton(r.enabled ? "Disable" : "Enable", async () => {
                    await call("PATCH", `/api/integrations/${enc(integrationId)}/mappings/${enc(r.id)}`, {
                      json: { enabled: !r.enabled },
                    });
                    list.reload();
                  }),
                  actionButton(
                    "Delete",
                    async () => {
                      await call("DELETE", `/api/integrations/${enc(integrationId)}/mappings/${enc(r.id)}`);
                      list.reload();
                    },
                    { className: "danger", confirmText: "Delete this mapping? Nothing more is synced through it." },
                  ),
                ),
            },
          ],
          rows,
          { caption: "Mappings", empty: "This integration maps no channel yet." },
        ),
      { label: "mappings" },
    );
    main.append(
      h("p", {}, link(`#/integrations/${enc(integrationId)}`, "The integration")),
      list,
      writes(section(
        "New mapping",
        form(
          [
            field("Provider channel id", h("input", { name: "external_channel_id", required: true, autocomplete: "off" }), "The network's id of the channel: Slack C…, Discord 1…, Telegram -100…, Teams 19:…@thread.tacv2, Google Chat spaces/…, Mattermost 26 letters and digits, Matrix !…:server (in the sandbox, each network tab's Connect it)"),
            field("Chat channel id", h("input", { name: "channel_id", required: true, autocomplete: "off" })),
            field("Direction", select("direction", ["both", "inbound", "outbound"], "both")),
          ],
          "Create mapping",
          async (data) => {
            const created = await post(`/api/integrations/${enc(integrationId)}/mappings`, {
              external_channel_id: String(data.get("external_channel_id") || "").trim(),
              channel_id: String(data.get("channel_id") || "").trim(),
              direction: data.get("direction"),
            });
            list.reload();
            return h("p", {}, `Mapping ${created.id} created (${created.external_channel_name || created.external_channel_id}).`);
          },
        ),
      )),
    );
  }
  main.append(lookupSection());
  return null;
}

function lookupSection() {
  const result = h("div", { "aria-live": "polite" });
  const byProvider = form(
    [
      field(
        "Provider",
        select(
          "provider",
          chatNetworks().map((entry) => [entry.provider, entry.name]),
          chatNetworks()[0]?.provider,
        ),
      ),
      field("Provider channel id", h("input", { name: "external_channel_id", required: true })),
      field("Provider message id", h("input", { name: "external_message_id", required: true })),
    ],
    "Look up by provider copy",
    async (data) => show(result, await get("/api/messages/lookup", filled(data))),
    { className: "form inline", reads: true },
  );
  const byChat = form(
    [
      field("Chat channel id", h("input", { name: "channel_id", required: true })),
      field("Chat message id", h("input", { name: "message_id", required: true })),
    ],
    "Look up by chat message",
    async (data) => show(result, await get("/api/messages/lookup", filled(data))),
    { className: "form inline", reads: true },
  );
  return section("Message lookup", h("p", { class: "muted" }, "Every copy sync knows of one message."), byProvider, byChat, result);
}

function show(box, found) {
  box.replaceChildren(
    dl([
      ["Workspace", found.workspace_id],
      ["Chat channel", found.channel_id],
      ["Chat message", found.message_id || "—"],
      ["Inbound envelope", found.inbound_id || "—"],
    ]),
    table(
      [
        { title: "", cell: (c) => providerIcon(c.provider) },
        { title: "Channel", cell: (c) => c.external_channel_id },
        { title: "Message", cell: (c) => c.external_message_id },
        { title: "Thread", cell: (c) => c.external_thread_id || "—" },
        { title: "Origin", cell: (c) => c.origin },
        { title: "Mapping", cell: (c) => c.mapping_id || "—" },
      ],
      found.copies || [],
      { caption: "Copies", empty: "No copies." },
    ),
  );
  return null;
}
