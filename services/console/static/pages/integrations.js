// Integrations: the table, one integration's details (webhook URL, setup steps, status,
// last errors, connect through OAuth, disconnect, a GitHub or Jira one's notification
// subscriptions), and creating one.

import { call, caller, canWrite, enc, get, post } from "../api.js";
import {
  actionButton,
  badge,
  clear,
  copyable,
  copyButton,
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
  workspaceFilter,
  writes,
} from "../dom.js";
import {
  catalogEntries,
  catalogEntry,
  loadCatalog,
  providerIcon,
  providersThat,
  providerTitle,
} from "../providers.js";
import { recentChanges } from "./audit.js";
import { notifies, subscriptionsSection } from "./subscriptions.js";

export async function render(main, { id, params, go }) {
  await loadCatalog();
  if (id) return detail(main, id, go);
  const provider = params.get("provider") || "";
  const workspace = params.get("workspace_id") || "";
  main.append(h("h1", {}, "Integrations"));

  const filters = form(
    [
      field("Provider", select("provider", [["", "any"], ...catalogEntries().map((e) => [e.provider, e.name])], provider)),
      workspaceFilter(workspace),
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
          { caption: "Each integration and its status", empty: "No integrations yet: create one below." },
        ),
      { label: "integrations" },
    ),
  );

  main.append(writes(createSection(go), connectSection()));
  return null;
}

/** "webhook_secret" → "Webhook secret": the API's name, as a label reads. */
function settingLabel(name) {
  const words = String(name).replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** One setting's field, as the catalog describes it: a secret as a password input
 * (write-only), `choices` as a select, `default` filled in, required marked. */
function settingField(setting) {
  const name = `settings.${setting.name}`;
  let control;
  if (setting.choices) {
    const options = setting.choices.map((choice) => [choice, choice === " " ? "space" : choice]);
    // Not required and no default: none chosen is an answer; required: one must be picked.
    if (setting.default == null) options.unshift(["", setting.required ? "choose…" : "none"]);
    control = select(name, options, setting.default ?? "");
    control.required = setting.required;
  } else {
    control = h("input", {
      name,
      type: setting.secret ? "password" : "text",
      autocomplete: setting.secret ? "new-password" : "off",
      spellcheck: "false",
      required: setting.required,
      value: setting.default ?? null,
    });
  }
  control.dataset.setting = setting.name;
  const marks = [setting.required ? "required" : "optional"];
  if (setting.secret) marks.push("write-only: never shown again");
  if (setting.default != null) marks.push(`default ${setting.default}`);
  return field(
    [settingLabel(setting.name), setting.required ? h("span", { class: "required" }, " (required)") : null],
    control,
    `${setting.description} · ${marks.join("; ")}`,
  );
}

/** What the form says of the provider picked: how its webhooks are verified, its docs. */
function providerFacts(entry) {
  return h(
    "p",
    { class: "muted provider-facts" },
    `${categoryTitle(entry.category)} · verification: ${verificationText(entry)} · `,
    docsLink(entry),
  );
}

/** The provider's documentation: an https link, else its address as text. */
function docsLink(entry) {
  const safe = urlOf(entry.docs_url, ["https:"]);
  const text = `${entry.name} documentation`;
  return safe ? h("a", { href: safe, rel: "noopener noreferrer", target: "_blank" }, text) : `${text}: ${entry.docs_url}`;
}

function categoryTitle(category) {
  return settingLabel(category);
}

/** The provider picker: grouped by category, narrowed by what is typed in Find. */
function providerOptions(providerSelect, query, selected) {
  const words = query.trim().toLowerCase();
  const shown = catalogEntries().filter(
    (e) => !words || [e.name, e.provider, e.category].some((text) => text.toLowerCase().includes(words)),
  );
  const groups = new Map();
  for (const entry of shown) {
    if (!groups.has(entry.category)) groups.set(entry.category, []);
    groups.get(entry.category).push(entry);
  }
  clear(providerSelect).append(
    ...[...groups.keys()].sort().map((category) =>
      h(
        "optgroup",
        { label: categoryTitle(category) },
        groups.get(category).map((e) => h("option", { value: e.provider, selected: e.provider === selected }, e.name)),
      ),
    ),
  );
  if (!shown.some((e) => e.provider === selected) && shown.length) providerSelect.value = shown[0].provider;
  return shown.length;
}

function createSection(go) {
  const first = catalogEntry("github") ? "github" : catalogEntries()[0]?.provider;
  const providerSelect = h("select", { name: "provider", required: true });
  const find = h("input", { type: "search", autocomplete: "off", spellcheck: "false" });
  const findField = field("Find a provider", find, " ");
  // How many the typing left, said as it changes.
  const found = findField.querySelector(".hint");
  found.setAttribute("aria-live", "polite");
  const facts = h("div");
  const settingsBox = h("fieldset", { class: "settings" }, h("legend", {}, "Settings"));
  const inner = h("div");
  settingsBox.append(inner);
  const draw = () => {
    const entry = catalogEntry(providerSelect.value);
    clear(facts);
    clear(inner);
    if (!entry) return;
    facts.append(providerFacts(entry));
    inner.append(...entry.settings.map(settingField));
    if (!entry.settings.length) inner.append(h("p", { class: "muted" }, "No settings: connect it through OAuth below."));
  };
  const narrow = () => {
    const before = providerSelect.value;
    const count = providerOptions(providerSelect, find.value, before);
    found.textContent = count ? `${count} of ${catalogEntries().length} providers` : "No provider matches.";
    if (providerSelect.value !== before || !count) draw();
  };
  providerOptions(providerSelect, "", first);
  found.textContent = `${catalogEntries().length} providers`;
  draw();
  find.addEventListener("input", narrow);
  providerSelect.addEventListener("change", draw);
  const el = form(
    [
      findField,
      field("Provider", providerSelect),
      facts,
      workspaceField(),
      field("Name", h("input", { name: "name", autocomplete: "off" })),
      settingsBox,
    ],
    "Create integration",
    async (data) => {
      const body = { provider: data.get("provider"), workspace_id: data.get("workspace_id"), settings: {} };
      const name = (data.get("name") || "").trim();
      if (name) body.name = name;
      const entry = catalogEntry(body.provider);
      for (const setting of entry?.settings || []) {
        const value = String(data.get(`settings.${setting.name}`) ?? "");
        // A choice is sent as it is (a space is a separator); a typed value without the
        // spaces a paste brings along.
        const sent = setting.choices ? value : value.trim();
        if (sent) body.settings[setting.name] = sent;
      }
      const created = await post("/api/integrations", body);
      rememberWorkspace(body.workspace_id);
      flash(`Integration ${created.id} created.`);
      go("integrations", created.id);
    },
  );
  // The form's reset puts the first provider back: its settings with it.
  el.addEventListener("reset", () =>
    setTimeout(() => {
      providerOptions(providerSelect, "", first);
      draw();
    }),
  );
  return section("New integration", el);
}

function connectSection() {
  const el = form(
    [
      field("Provider", select("provider", providersThat("oauth").map((e) => [e.provider, e.name]), "github")),
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

/** `url` when it is a URL of one of `protocols` (a link's href), else null. */
function urlOf(url, protocols) {
  try {
    const parsed = new URL(url);
    return protocols.includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

function authorizeLink(url) {
  const safe = urlOf(url, ["https:", "http:"]);
  if (!safe) return h("p", { class: "error" }, "The provider's authorization URL is not an http(s) URL.");
  return h(
    "p",
    {},
    "Continue at the provider: ",
    // In a frame, the provider's page in a tab of its own: providers refuse to be framed.
    h("a", { href: safe, rel: "noopener noreferrer", class: "button primary", target: window.top === window ? null : "_blank" }, "Authorize"),
  );
}

function verificationText(entry) {
  const v = entry.verification;
  if (!v) return "none: the provider sends no webhooks";
  return v.headers.length ? `${v.scheme}, from ${v.headers.join(", ")}` : v.scheme;
}

/** The names of the secrets set: what is set and not shown in `config`. */
function writeOnly(integration) {
  const shown = new Set(Object.keys(integration.config || {}));
  return (integration.settings_configured || []).filter((name) => !shown.has(name));
}

/** A setup step with this integration's webhook URL where `{webhook_url}` is, and then a
 * button that copies the URL; all of it text. */
function setupStep(step, webhookUrl) {
  const parts = String(step).split("{webhook_url}");
  const filled = parts.map((text, i) => [i ? (webhookUrl ? h("code", {}, webhookUrl) : "(no webhook URL)") : null, text]);
  return parts.length > 1 && webhookUrl ? [filled, " ", copyButton(webhookUrl, "Copy")] : filled;
}

async function detail(main, id, go) {
  const [integration, status] = await Promise.all([
    get(`/api/integrations/${enc(id)}`),
    get(`/api/integrations/${enc(id)}/status`).catch(() => null),
  ]);
  const entry = catalogEntry(integration.provider);
  // An account and a token are an OAuth connection's (or a chat's bot): a provider that only
  // sends webhooks has neither, and no provider app to ask about (the API answers 422).
  const oauth = Boolean(entry?.capabilities.includes("oauth"));
  // The provider's default OAuth scopes, as the oauth service asks for them (the admin's
  // to read: provider apps belong to no workspace).
  const app = caller.workspace_id || !oauth ? null : await get(`/api/providers/${enc(integration.provider)}`).catch(() => null);
  const scopes = app?.default_scopes || [];
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
      oauth || integration.account ? ["Account", integration.account ? `${integration.account.name || ""} (${integration.account.id || ""})` : "—"] : null,
      ["Verification", entry ? verificationText(entry) : "—"],
      entry?.handshake ? ["Handshake", entry.handshake] : null,
      ["Write-only settings set", writeOnly(integration).join(", ") || "none"],
      ["Last event", timeEl(integration.last_event_at)],
      ["Events", String(integration.event_count ?? 0)],
      ["Errors", String(integration.error_count ?? 0)],
      oauth || status?.token_expires_at ? ["Token expires", timeEl(status?.token_expires_at)] : null,
    ]),
  );
  main.append(facts);
  // What an integration sending webhooks is for, right after what it is: not below the
  // setup steps and the actions, a phone's several screens down.
  if (notifies(integration.provider)) main.append(await subscriptionsSection(integration));

  if (integration.webhook_url) {
    main.append(
      section(
        "Webhook URL",
        h("p", {}, "Paste this URL into the provider:"),
        copyable(integration.webhook_url, "Copy URL"),
      ),
    );
  }
  const config = Object.entries(integration.config || {});
  if (config.length) {
    main.append(
      section(
        "Settings",
        dl(config.map(([name, value]) => [settingLabel(name), h("code", {}, value === " " ? "space" : value)])),
      ),
    );
  }
  if (entry) {
    main.append(
      section(
        `Setting up ${entry.name}`,
        h("ol", { class: "steps" }, entry.setup.map((step) => h("li", {}, setupStep(step, integration.webhook_url)))),
        scopes.length ? h("p", {}, "OAuth scopes asked for by default: ", h("code", {}, scopes.join(" "))) : null,
        entry.events.length
          ? h("p", {}, "Common events: ", entry.events.map((event, i) => [i ? " " : null, h("code", {}, event)]))
          : null,
        h("p", {}, docsLink(entry)),
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
  if (entry?.capabilities.includes("oauth")) {
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
  const chat = Boolean(entry?.capabilities.includes("sync"));
  if (chat) actions.push(h("a", { href: `#/mappings?integration_id=${enc(id)}`, class: "button" }, "Sync mappings"));
  if (chat || canWrite()) main.append(section("Actions", h("div", { class: "actions" }, actions), result));
  main.append(recentChanges(id));
  return null;
}
