// An integration's notification subscriptions, on its page (SPEC §12, §16): the table
// (filters summarised, counts, last error), enable/disable, delete, and creating one from
// the events and filters the sync service lists (GET /api/notification-events).

import { call, enc, get, post } from "../api.js";
import { actionButton, badge, errorBox, field, form, h, pager, section, select, table, timeEl, whereIn, writes } from "../dom.js";
import { catalogEntry } from "../providers.js";
import { templateEditor, templateOf } from "./templates.js";

/** Whether `provider`'s integrations take subscriptions: every one sending webhooks but
 * the chats, whose messages are synced (the catalog says "notifications"). */
export function notifies(provider) {
  const entry = catalogEntry(provider);
  return Boolean(entry && entry.category !== "chat" && entry.capabilities.includes("notifications"));
}

// What a repository is called, where the provider has them.
const REPOSITORY_HINT = {
  github: "owner/name or owner/*",
  gitlab: "group/project or group/*",
  bitbucket: "workspace/repository or workspace/*",
};

// Defaults that count only in part (docs/notifications.md).
const PARTLY = {
  github: "a push counts only on the repository's default branch",
  jira: "an issue update counts only when it changed the status",
};

/** Names, globs and keys: separated by spaces or commas. */
function words(text) {
  return String(text || "").split(/[\s,]+/).filter(Boolean);
}

/** Labels, which may hold spaces: separated by commas. */
function items(text) {
  return String(text || "")
    .split(",")
    .map((v) => v.trim())
    .filter(Boolean);
}

function check(name, value, ...label) {
  return h("label", { class: "check" }, h("input", { type: "checkbox", name, value }), label);
}

function events(r) {
  const chosen = r.events ? r.events.join(", ") : h("span", { class: "muted" }, "defaults");
  const except = r.exclude_events?.length ? h("div", {}, `except ${r.exclude_events.join(", ")}`) : null;
  return [chosen, except];
}

function filters(r) {
  const lines = [];
  if (r.repositories) lines.push(`repositories: ${r.repositories.join(", ")}`);
  if (r.projects) lines.push(`projects: ${r.projects.join(", ")}`);
  if (r.branches) lines.push(`branches: ${r.branches.join(", ")}`);
  for (const part of ["any", "all", "none"]) {
    if (r.labels?.[part]?.length) lines.push(`labels, ${part} of: ${r.labels[part].join(", ")}`);
  }
  if (r.authors?.exclude?.length) lines.push(`not by: ${r.authors.exclude.join(", ")}`);
  if (r.authors?.bots === false) lines.push("no bots");
  if (r.drafts) lines.push("drafts too");
  if (r.template) lines.push("rendered by its template");
  return lines.length ? h("ul", { class: "plain" }, lines.map((line) => h("li", {}, line))) : "—";
}

export async function subscriptionsSection(integration) {
  const base = `/api/integrations/${enc(integration.id)}/subscriptions`;
  const list = pager(
    (cursor) => get(base, { limit: 20, cursor }),
    (rows) =>
      table(
        [
          { title: "Channel", cell: (r) => h("code", {}, r.channel_id) },
          { title: "Events", cell: events },
          { title: "Filters", cell: filters },
          { title: "Threads", cell: (r) => (r.threads === "off" ? "off" : "per item") },
          { title: "Status", cell: (r) => badge(r.enabled ? "enabled" : "disabled") },
          { title: "Notified", cell: (r) => String(r.notified_count ?? 0) },
          { title: "Filtered", cell: (r) => String(r.filtered_count ?? 0) },
          { title: "Last notified", cell: (r) => timeEl(r.last_notified_at) },
          {
            title: "Last error",
            cell: (r) => (r.last_error ? [`${r.last_error.code}: ${r.last_error.message}${whereIn(r.last_error)} `, timeEl(r.last_error.at)] : "—"),
          },
          {
            title: "Actions",
            writes: true,
            cell: (r) =>
              h(
                "div",
                { class: "actions" },
                actionButton(r.enabled ? "Disable" : "Enable", async () => {
                  await call("PATCH", `${base}/${enc(r.id)}`, { json: { enabled: !r.enabled } });
                  list.reload();
                }),
                actionButton(
                  "Delete",
                  async () => {
                    await call("DELETE", `${base}/${enc(r.id)}`);
                    list.reload();
                  },
                  { className: "danger", confirmText: `Delete the subscription of ${r.channel_id}? Nothing more is posted through it.` },
                ),
              ),
          },
        ],
        rows,
        { caption: "Subscriptions", empty: "No channel is notified yet: subscribe one below." },
      ),
    { label: "subscriptions" },
  );
  const catalog = await get("/api/notification-events", { provider: integration.provider }).catch((err) => err);
  // The provider's documented example webhook, where the catalog has one, for the template's test.
  const sample = await get(`/api/provider-catalog/${enc(integration.provider)}`)
    .then((entry) => entry.sample ?? {})
    .catch(() => ({}));
  return section(
    "Notification subscriptions",
    h("p", { class: "muted" }, "This integration's events as messages in chat channels, filtered."),
    list,
    writes(h("h3", {}, "New subscription"), createForm(integration.provider, catalog, sample, base, () => list.reload())),
  );
}

// A phone's width (console.css's breakpoint): the event checkboxes, a screen or two of them,
// start folded there.
const NARROW = "(max-width: 640px)";

function eventPicker(provider, catalog) {
  if (catalog instanceof Error) return errorBox(catalog);
  const groups = new Map();
  for (const e of catalog.events) groups.set(e.group, [...(groups.get(e.group) || []), e]);
  const chosen = h("span", { class: "muted" });
  const picker = h(
    "details",
    { class: "event-picker", open: !window.matchMedia(NARROW).matches },
    h("summary", {}, "Event types ", chosen),
    h(
      "div",
      { class: "event-groups" },
      [...groups].map(([group, names]) =>
        h(
          "fieldset",
          {},
          h("legend", {}, group),
          names.map((e) => check("events", e.name, h("code", {}, e.name), e.default ? [" ", badge("default")] : null)),
        ),
      ),
    ),
  );
  if (catalog.generic.length) {
    picker.append(
      h(
        "details",
        {},
        h("summary", {}, `Other events, rendered generically: who, what, where (${catalog.generic.length})`),
        h("div", { class: "event-groups" }, catalog.generic.map((kind) => check("events", kind, h("code", {}, kind)))),
      ),
    );
  }
  // The summary says what is chosen, so that a folded picker still shows it.
  const count = () => {
    const n = picker.querySelectorAll("input[name=events]:checked").length;
    chosen.textContent = n ? `(${n} chosen)` : "(none chosen: the defaults)";
  };
  picker.addEventListener("change", count);
  count();
  return h(
    "fieldset",
    {},
    h("legend", {}, "Events"),
    h(
      "p",
      { class: "hint" },
      catalog.events.some((e) => e.default)
        ? `None chosen: the provider's defaults, marked “default”${PARTLY[provider] ? ` (${PARTLY[provider]})` : ""}.`
        : "None chosen: nothing is notified until events are named (this provider has no defaults).",
    ),
    picker,
  );
}

// The event type a template's test run is given, by provider.
const SAMPLE_EVENT = { github: "pull_request.opened", jira: "issue.created" };

function createForm(provider, catalog, sample, base, created) {
  const applies = new Set(catalog instanceof Error ? [] : catalog.filters);
  const github = provider === "github";
  const bots = h("input", { type: "checkbox", name: "no_bots" });
  const drafts = h("input", { type: "checkbox", name: "drafts" });
  const only = (name, ...fields) => (applies.has(name) ? fields : null);
  return form(
    [
      field("Channel id", h("input", { name: "channel_id", required: true, autocomplete: "off" }), "the chat channel the notifications go to"),
      eventPicker(provider, catalog),
      field(
        "Event patterns",
        h("input", { name: "event_patterns", autocomplete: "off", spellcheck: "false" }),
        "more, separated by spaces; * within a part or as a whole part: pull_request.*, check_run.fail*",
      ),
      field("Leave out events", h("input", { name: "exclude_events", autocomplete: "off", spellcheck: "false" }), "names or patterns, also left out of the defaults"),
      applies.size
        ? h(
            "fieldset",
            { class: "columns" },
            h("legend", {}, "Filters (empty: no filter)"),
            only("repositories", field("Repositories", h("input", { name: "repositories", autocomplete: "off" }), REPOSITORY_HINT[provider] || "names or globs")),
            only("branches", field("Branches", h("input", { name: "branches", autocomplete: "off" }), "globs: main, release/*")),
            only(
              "labels",
              field("Labels, any of", h("input", { name: "labels.any", autocomplete: "off" }), "separated by commas"),
              field("Labels, all of", h("input", { name: "labels.all", autocomplete: "off" }), "separated by commas"),
              field("Labels, none of", h("input", { name: "labels.none", autocomplete: "off" }), "separated by commas"),
            ),
            only("projects", field("Projects", h("input", { name: "projects", autocomplete: "off" }), provider === "jira" ? "Jira project keys: SP BUG" : "keys, separated by spaces")),
            only(
              "authors",
              field("Authors left out", h("input", { name: "authors.exclude", autocomplete: "off" }), github ? "logins or globs: dependabot*" : "names, ids or globs"),
              h("div", { class: "field check" }, bots, h("label", { for: (bots.id = "sub-no-bots") }, "Leave out bots")),
            ),
            only("drafts", h("div", { class: "field check" }, drafts, h("label", { for: (drafts.id = "sub-drafts") }, "Drafts too"))),
          )
        : null,
      field("Threads", select("threads", [["item", "on: a thread per item, its root kept current"], ["off", "off: every notification in the channel"]], "item")),
      templateEditor({ provider, eventType: SAMPLE_EVENT[provider] || sample.event_type || "", sample: sample.payload ?? {} }),
    ],
    "Create subscription",
    async (data, el) => {
      const body = { channel_id: String(data.get("channel_id") || "").trim(), threads: data.get("threads") };
      const chosen = [...data.getAll("events"), ...words(data.get("event_patterns"))];
      if (chosen.length) body.events = chosen;
      for (const name of ["exclude_events", "repositories", "branches", "projects"]) {
        const value = words(data.get(name));
        if (value.length) body[name] = value;
      }
      const labels = {};
      for (const part of ["any", "all", "none"]) {
        const value = items(data.get(`labels.${part}`));
        if (value.length) labels[part] = value;
      }
      if (Object.keys(labels).length) body.labels = labels;
      const authors = {};
      const excluded = words(data.get("authors.exclude"));
      if (excluded.length) authors.exclude = excluded;
      if (bots.checked) authors.bots = false;
      if (Object.keys(authors).length) body.authors = authors;
      if (applies.has("drafts") && drafts.checked) body.drafts = true;
      const template = templateOf(data);
      if (template) body.template = template;
      const sub = await post(base, body);
      el.reset();
      el.querySelector(".event-picker")?.dispatchEvent(new Event("change")); // its count
      created();
      return h("p", {}, `Subscription ${sub.id} created: ${sub.channel_id} is notified.`);
    },
  );
}
