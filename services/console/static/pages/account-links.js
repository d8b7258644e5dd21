// Account links (SPEC §20 "Who acts"): which provider user a chat user of a workspace acts
// as when they click an action on a notification card (docs/acting.md). The links, filtered
// by workspace (the admin's) and provider, one page at a time; linking a chat user, or
// replacing their link; unlinking one.

import { call, enc, get } from "../api.js";
import {
  actionButton,
  badge,
  field,
  filled,
  form,
  h,
  pager,
  rememberWorkspace,
  section,
  select,
  table,
  timeEl,
  workspaceField,
  workspaceFilter,
  writes,
} from "../dom.js";
import { providerIcon, providerTitle } from "../providers.js";

/** The providers whose users are linked by a mapping: the API's MAPPING_PROVIDERS
 * (shared/domain/account_links.py), which its 422 for another provider lists. A test holds
 * the two the same. */
export const MAPPING_PROVIDERS = ["alertmanager", "grafana", "opsgenie", "pagerduty", "sentry"];

/** A field's value without the spaces around it; one of spaces alone as it was typed, for
 * the API to say what is wrong with it. */
function typed(data, name) {
  const value = String(data.get(name) ?? "");
  return value.trim() || value;
}

function providerChoices() {
  return MAPPING_PROVIDERS.map((provider) => [provider, providerTitle(provider)]);
}

/** A link's address: the API names the workspace with `?workspace_id=` (the admin must;
 * a portal's own is its session's). */
function linkPath(provider, chatUserId) {
  return `/api/account-links/${enc(provider)}/${enc(chatUserId)}`;
}

export async function render(main, { params, go }) {
  const workspace = params.get("workspace_id") || "";
  const provider = params.get("provider") || "";
  main.append(
    h("h1", {}, "Account links"),
    h(
      "p",
      { class: "muted" },
      "Who a chat user is at a provider: a click on a notification card's action acts as that provider user.",
    ),
    form(
      [field("Provider", select("provider", [["", "any"], ...providerChoices()], provider)), workspaceFilter(workspace)],
      "Filter",
      async (data) => go("account-links", null, filled(data)),
      { className: "form inline filters", reads: true },
    ),
  );
  const list = pager(
    (cursor) => get("/api/account-links", { limit: 20, cursor, provider, workspace_id: workspace }),
    (rows) =>
      table(
        [
          { title: "Chat user", cell: (r) => h("code", {}, r.chat_user_id) },
          { title: "Provider", cell: (r) => [providerIcon(r.provider), " ", providerTitle(r.provider)] },
          { title: "Provider user", cell: (r) => r.provider_user },
          { title: "Name", cell: (r) => r.name || "—" },
          {
            title: "Status",
            cell: (r) => [badge(r.status), r.last_error ? h("div", { class: "muted" }, r.last_error) : null],
          },
          { title: "Workspace", cell: (r) => r.workspace_id },
          { title: "Created", cell: (r) => timeEl(r.created_at) },
          { title: "Updated", cell: (r) => timeEl(r.updated_at) },
          {
            title: "Actions",
            writes: true,
            cell: (r) =>
              actionButton(
                "Unlink",
                async () => {
                  await call("DELETE", linkPath(r.provider, r.chat_user_id), { query: { workspace_id: r.workspace_id } });
                  list.reload();
                },
                {
                  className: "danger",
                  confirmText: `Unlink ${r.chat_user_id} from ${providerTitle(r.provider)} user ${r.provider_user}? Their clicks act there no more until linked again.`,
                },
              ),
          },
        ],
        rows,
        { caption: "Each chat user and who they act as", empty: "No account links yet." },
      ),
    { label: "account links" },
  );
  main.append(list, writes(linkSection(() => list.reload())));
  return null;
}

function linkSection(reload) {
  return section(
    "Link a chat user",
    h("p", { class: "muted" }, "A chat user already linked to the provider has their link replaced."),
    form(
      [
        workspaceField(),
        field("Provider", select("provider", providerChoices(), MAPPING_PROVIDERS[0])),
        field("Chat user id", h("input", { name: "chat_user_id", required: true, autocomplete: "off" }), "the chat product's id of the user"),
        field(
          "Provider user",
          h("input", { name: "provider_user", required: true, autocomplete: "off" }),
          "PagerDuty's From email, Opsgenie's user, Sentry's user, a silence's createdBy (Alertmanager, Grafana)",
        ),
        field("Name", h("input", { name: "name", autocomplete: "off" }), "optional: the person's name"),
      ],
      "Save link",
      async (data) => {
        const workspaceId = data.get("workspace_id");
        const body = { provider_user: typed(data, "provider_user") };
        const name = String(data.get("name") || "").trim();
        if (name) body.name = name;
        const link = await call("PUT", linkPath(data.get("provider"), typed(data, "chat_user_id")), {
          json: body,
          query: { workspace_id: workspaceId },
        });
        rememberWorkspace(workspaceId);
        reload();
        const done = link.created_at === link.updated_at ? "Linked" : "Link replaced";
        return h("p", {}, `${done}: ${link.chat_user_id} acts at ${providerTitle(link.provider)} as ${link.provider_user}.`);
      },
    ),
  );
}
