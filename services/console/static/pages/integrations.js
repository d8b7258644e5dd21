// Integrations: the table, one integration's details (webhook URL, setup steps, status,
// last errors, connect through OAuth, disconnect, a GitHub or Jira one's notification
// subscriptions), and creating one.

import { call, caller, canWrite, enc, get, post } from "../api.js";
import {
  actionButton,
  badge,
  clear,
  copyable,
  dl,
  field,
  filled,
  flash,
  form,
  h,
  jsonBlock,
  link,
  pager,
  rememberWorkspace,
  section,
  select,
  table,
  timeEl,
  workspaceField,
  writes,
} from "../dom.js";
import { PROVIDER_NAMES, PROVIDERS, providerIcon, providerTitle } from "../providers.js";
import { recentChanges } from "./audit.js";
import { NOTIFYING, subscriptionsSection } from "./subscriptions.js";

export async function render(main, { id, params, go }) {
  if (id) return detail(main, id, go);
  const provider = params.get("provider") || "";
  const workspace = params.get("workspace_id") || "";
  main.append(h("h1", {}, "Integrations"));

  const filters = form(
    [
      field("Provider", select("provider", [["", "any"], ...PROVIDER_NAMES], provider)),
      caller.workspace_id ? null : field("Workspace id", h("input", { name: "workspace_id", value: workspace })),
    ],
    "Filter",
    async (data) => go("integrations", null, filled(data)),
    { className: "form inline filters", reads: true },
  );
  main.append(filters);

  main.append(
    pager(
      (cursor) =>
        get("/api/integrations", { limit: 20, cursor, provider, workspace_id: workspace }),
      (rows) =>
        table(
          [
            { title: "", cell: (r) => providerIcon(r.provider) },
            {
              title: "Name",
              cell: (r) => link(`#/integrations/${enc(r.id)}`, r.name || r.id),
            },
            { title: "Provider", cell: (r) => providerTitle(r.provider) },
            { title: "Workspace", cell: (r) => r.workspace_id },
            {
              title: "Status",
              cell: (r) => [badge(r.status), r.enabled === false ? badge("disabled") : null],
            },
            { title: "Last event", cell: (r) => timeEl(r.last_event_at) },
            { title: "Events", cell: (r) => String(r.event_count ?? 0) },
            { title: "Errors", cell: (r) => String(r.error_count ?? 0) },
          ],
          rows,
          { caption: "Integrations", empty: "No integrations yet: create one below." },
        ),
      { label: "integrations" },
    ),
  );

  main.append(writes(createSection(go), connectSection()));
  return null;
}

function settingsFields(provider, box) {
  clear(box);
  const spec = PROVIDERS[provider];
  if (!spec) return;
  for (const [name, label, required] of spec.settings) {
    box.append(
      field(
        label,
        h("input", {
          name: `settings.${name}`,
          type: "password",
          autocomplete: "off",
          required,
          "data-setting": name,
        }),
        required ? "required; write-only: never shown again" : "optional; write-only",
      ),
    );
  }
  if (!spec.settings.length) box.append(h("p", { class: "muted" }, "No settings: connect it through OAuth below."));
}

function createSection(go) {
  const providerSelect = select("provider", PROVIDER_NAMES, "github");
  const settingsBox = h("fieldset", { class: "settings" }, h("legend", {}, "Settings"));
  const inner = h("div");
  settingsBox.append(inner);
  settingsFields("github", inner);
  providerSelect.addEventListener("change", () => settingsFields(providerSelect.value, inner));
  const el = form(
    [
      field("Provider", providerSelect),
      workspaceField(),
      field("Name", h("input", { name: "name", autocomplete: "off" })),
      settingsBox,
    ],
    "Create integration",
    async (data) => {
      const body = { provider: data.get("provider"), workspace_id: data.get("workspace_id"), settings: {} };
      const name = (data.get("name") || "").trim();
      if (name) body.name = name;
      for (const [k, v] of data.entries()) {
        if (k.startsWith("settings.") && String(v).trim()) body.settings[k.slice(9)] = String(v).trim();
      }
      const created = await post("/api/integrations", body);
      rememberWorkspace(body.workspace_id);
      flash(`Integration ${created.id} created.`);
      go("integrations", created.id);
    },
  );
  return section("New integration", el);
}

function connectSection() {
  const el = form(
    [
      field("Provider", select("provider", ["github", "slack", "discord", "jira", "google"], "github")),
      workspaceField(),
      field("Scopes", h("input", { name: "scopes", autocomplete: "off" }), "space-separated; empty: the provider's defaults"),
    ],
    "Connect through OAuth",
    async (data) => {
      const body = {
        provider: data.get("provider"),
        workspace_id: data.get("workspace_id"),
        return_to: returnTo(),
      };
      const scopes = String(data.get("scopes") || "").trim();
      if (scopes) body.scopes = scopes.split(/\s+/);
      const started = await post("/api/auth/oauth/connect", body);
      rememberWorkspace(body.workspace_id);
      return authorizeLink(started.authorization_url);
    },
  );
  const first = caller.workspace_id ? "by hookhub's operator" : "(Provider apps)";
  return section("Connect an account through OAuth", h("p", { class: "muted" }, `hookhub's app at the provider must be set up first ${first}.`), el);
}

/** Where the provider sends the browser back: this console (the portal keeps its query). */
function returnTo() {
  return `${window.location.origin}${window.location.pathname}${window.location.search}`;
}

function authorizeLink(url) {
  let safe = null;
  try {
    const parsed = new URL(url);
    if (parsed.protocol === "https:" || parsed.protocol === "http:") safe = parsed.href;
  } catch {
    safe = null;
  }
  if (!safe) return h("p", { class: "error" }, "The provider's authorization URL is not an http(s) URL.");
  return h(
    "p",
    {},
    "Continue at the provider: ",
    // In a frame, the provider's page in a tab of its own: providers refuse to be framed.
    h("a", { href: safe, rel: "noopener noreferrer", class: "button primary", target: window.top === window ? null : "_blank" }, "Authorize"),
  );
}

async function detail(main, id, go) {
  const [integration, status] = await Promise.all([
    get(`/api/integrations/${enc(id)}`),
    get(`/api/integrations/${enc(id)}/status`).catch(() => null),
  ]);
  // The provider's default OAuth scopes, as the oauth service asks for them (the admin's
  // to read: provider apps belong to no workspace).
  const app = caller.workspace_id ? null : await get(`/api/providers/${enc(integration.provider)}`).catch(() => null);
  const scopes = app?.default_scopes || [];
  const spec = PROVIDERS[integration.provider];
  main.append(
    h("p", {}, link("#/integrations", "← Integrations")),
    h("h1", {}, providerIcon(integration.provider), " ", integration.name || integration.id),
  );

  const facts = section(
    "Status",
    dl([
      ["Id", h("code", {}, integration.id)],
      ["Provider", providerTitle(integration.provider)],
      ["Workspace", integration.workspace_id],
      ["Status", badge(integration.status)],
      ["Enabled", integration.enabled === false ? "no" : "yes"],
      ["Account", integration.account ? `${integration.account.name || ""} (${integration.account.id || ""})` : "—"],
      ["Settings set", (integration.settings_configured || []).join(", ") || "none"],
      ["Last event", timeEl(integration.last_event_at)],
      ["Events", String(integration.event_count ?? 0)],
      ["Errors", String(integration.error_count ?? 0)],
      ["Token expires", timeEl(status?.token_expires_at)],
    ]),
  );
  main.append(facts);
  // What a GitHub or Jira integration is for, right after what it is: not below the setup
  // steps and the actions, a phone's several screens down.
  if (NOTIFYING.includes(integration.provider)) main.append(await subscriptionsSection(integration));

  if (integration.webhook_url) {
    main.append(
      section(
        "Webhook URL",
        h("p", {}, "Paste this URL into the provider:"),
        copyable(integration.webhook_url, "Copy URL"),
      ),
    );
  }
  if (spec) {
    main.append(
      section(
        `Setting up ${spec.title}`,
        h("ol", { class: "steps" }, spec.steps.map((step) => h("li", {}, step))),
        scopes.length ? h("p", {}, "OAuth scopes asked for by default: ", h("code", {}, scopes.join(" "))) : null,
      ),
    );
  }

  const errors = [];
  if (integration.last_error) errors.push(["Last error", integration.last_error]);
  if (status?.last_error && status.last_error !== integration.last_error) errors.push(["Last error", status.last_error]);
  if (status?.last_refresh_error) errors.push(["Last token refresh error", status.last_refresh_error]);
  const refused = integration.last_webhook_error;
  if (refused) {
    errors.push([
      "Last refused webhook",
      h(
        "span",
        {},
        `${refused.code}: ${refused.message} (`,
        timeEl(refused.at),
        refused.delivery_id ? [", delivery ", h("code", {}, refused.delivery_id)] : null,
        ")",
      ),
    ]);
  }
  main.append(
    section(
      "Last errors",
      errors.length
        ? dl(errors.map(([k, v]) => [k, typeof v === "string" || v instanceof Node ? v : jsonBlock(v)]))
        : h("p", { class: "muted" }, "None."),
    ),
  );

  const result = h("div", { "aria-live": "polite" });
  const actions = [
    actionButton(
      integration.enabled === false ? "Enable" : "Disable",
      async () => {
        await call("PATCH", `/api/integrations/${enc(id)}`, { json: { enabled: integration.enabled === false } });
        go("integrations", id);
      },
    ),
    actionButton(
      "Disconnect",
      async () => {
        const answer = await post(`/api/integrations/${enc(id)}/disconnect`, {});
        flash(`Disconnected (revocation: ${answer.revocation}).`);
        go("integrations", id);
      },
      { className: "danger", confirmText: "Disconnect this integration? Its tokens are revoked and forgotten." },
    ),
  ];
  if (integration.provider !== "telegram") {
    actions.push(
      actionButton("Connect through OAuth", async () => {
        const started = await post("/api/auth/oauth/connect", {
          provider: integration.provider,
          workspace_id: integration.workspace_id,
          integration_id: integration.id,
          return_to: returnTo(),
        });
        clear(result).append(authorizeLink(started.authorization_url));
      }),
    );
  }
  actions.push(
    actionButton(
      "Delete",
      async () => {
        await call("DELETE", `/api/integrations/${enc(id)}`);
        flash(`Integration ${id} deleted.`);
        go("integrations");
      },
      { className: "danger", confirmText: "Delete this integration?" },
    ),
  );
  const chat = ["slack", "telegram", "discord"].includes(integration.provider);
  if (chat) actions.push(h("a", { href: `#/mappings?integration_id=${enc(id)}`, class: "button" }, "Sync mappings"));
  if (chat || canWrite()) main.append(section("Actions", h("div", { class: "actions" }, actions), result));
  main.append(recentChanges(id));
  return null;
}
