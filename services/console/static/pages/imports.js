// Imports: upload an export (Slack's ZIP, Telegram Desktop's result.json, DiscordChatExporter's
// JSON; a dry run first, with its report), then import it for real; a progress bar that
// follows the job live; cancel, resume; the quarantine list.

import { call, enc, get, post } from "../api.js";
import {
  actionButton,
  append,
  badge,
  clear,
  dl,
  field,
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

const LIVE = new Set(["queued", "running"]);

// POST /api/imports' `source`: what the file is, how to make it, whose channels it names.
const SOURCES = {
  slack_export: {
    label: "Slack export",
    accept: ".zip,application/zip",
    hint: "Workspace settings → Import/Export Data → Export, the ZIP as downloaded",
    channels: "Slack channel",
  },
  telegram_export: {
    label: "Telegram Desktop export",
    accept: ".json,.zip,application/json,application/zip",
    hint: "Telegram Desktop: a chat's ⋮ menu → Export chat history (or Settings → Advanced → Export Telegram data), format “Machine-readable JSON”: result.json, or the export folder zipped",
    channels: "Telegram chat (name, or id: as result.json writes it, or the Bot API's -100…)",
  },
  discord_export: {
    label: "DiscordChatExporter export",
    accept: ".json,.zip,application/json,application/zip",
    hint: "DiscordChatExporter, format JSON: one channel's .json, or a ZIP of several (exportguild)",
    channels: "Discord channel (name or id)",
  },
};

export async function render(main, { id }) {
  if (id) {
    main.append(h("p", {}, link("#/imports", "← Imports")), h("h1", {}, `Import ${id}`));
    const panel = jobPanel(id);
    main.append(panel.el);
    return panel.stop;
  }
  main.append(h("h1", {}, "Imports"));
  const live = h("div", { id: "import-live" });
  let panel = null;
  const stopPanel = () => panel && panel.stop();

  const sourceSelect = select(
    "source",
    Object.entries(SOURCES).map(([value, spec]) => [value, spec.label]),
    "slack_export",
  );
  const fileInput = h("input", { name: "file", type: "file", required: true });
  const fileField = field("Export file", fileInput, SOURCES.slack_export.hint);
  const mapInput = h("textarea", { name: "channel_map", rows: "3", placeholder: '{"general": "ch_general"}', spellcheck: "false" });
  const mapField = field("Channel map (JSON)", mapInput, "each channel → a chat channel");
  // The file's hint and accepted types, and the map's hint, follow the source chosen (and
  // its reset to Slack once an upload went through).
  const follow = () => {
    const spec = SOURCES[sourceSelect.value] || SOURCES.slack_export;
    fileInput.accept = spec.accept;
    fileField.querySelector(".hint").textContent = spec.hint;
    mapField.querySelector(".hint").textContent =
      `each ${spec.channels} → a chat channel; empty: the integration's mappings decide`;
  };
  sourceSelect.addEventListener("change", follow);
  follow();
  const dryRun = h("input", { name: "dry_run", type: "checkbox", checked: true });
  const upload = form(
    [
      workspaceField(),
      field("Source", sourceSelect, "what the file is"),
      fileField,
      field(
        "Integration id (optional)",
        h("input", { name: "integration_id", autocomplete: "off", placeholder: "int_…" }),
        "the integration the export is for; empty: the workspace's one of that provider (of the export's team or server)",
      ),
      mapField,
      h("div", { class: "field check" }, dryRun, h("label", { for: (dryRun.id = "dry-run") }, "Dry run first: read everything, publish nothing, report")),
    ],
    "Upload",
    async (data) => {
      const job = await uploadExport(data, dryRun.checked);
      rememberWorkspace(String(data.get("workspace_id")));
      // The form is emptied once this returns: the real import takes what the dry run read.
      const uploaded = data;
      show(job.id, {
        onRealImport: async () => {
          const real = await uploadExport(uploaded, false);
          show(real.id);
        },
      });
      return null;
    },
  );
  const jobs = pager(
    (cursor) => get("/api/imports", { limit: 20, cursor }),
    (rows) =>
      table(
        [
          { title: "Job", cell: (r) => link(`#/imports/${enc(r.id)}`, r.id) },
          { title: "Source", cell: (r) => `${sourceName(r)}${r.dry_run ? " (dry run)" : ""}` },
          { title: "Status", cell: (r) => badge(r.status) },
          { title: "Progress", cell: (r) => `${Math.round(r.progress.percent)} %` },
          { title: "Imported", cell: (r) => count(r, r.progress.messages_imported, "would import") },
          { title: "Quarantined", cell: (r) => count(r, r.progress.messages_quarantined, "would quarantine") },
          { title: "Created", cell: (r) => timeEl(r.created_at) },
        ],
        rows,
        { caption: "Import jobs", empty: "No imports yet." },
      ),
    { label: "import jobs" },
  );
  // A job just made is listed at once, and again each time its status changes.
  function show(id, options = {}) {
    stopPanel();
    panel = jobPanel(id, { ...options, onStatus: () => jobs.reload() });
    clear(live).append(panel.el);
    jobs.reload();
  }
  upload.addEventListener("reset", () => setTimeout(follow));
  main.append(writes(section("Upload an export", upload)), live);
  main.append(section("Jobs", jobs));
  return stopPanel;
}

/** What a job reads: "Telegram Desktop export", or "slack api". */
function sourceName(job) {
  const spec = job.upload && SOURCES[job.upload.source];
  return spec ? spec.label : `${job.provider} ${job.source}`;
}

/** A count as a job reports it: for a dry run, what it would do. */
function count(job, n, dryVerb) {
  return job.dry_run ? `${dryVerb} ${n}` : String(n);
}

async function uploadExport(data, dryRun) {
  const body = new FormData();
  body.set("workspace_id", String(data.get("workspace_id") || ""));
  body.set("source", String(data.get("source") || "slack_export"));
  const integration = String(data.get("integration_id") || "").trim();
  if (integration) body.set("integration_id", integration);
  const file = data.get("file");
  if (!(file instanceof File) || !file.size) throw new Error("Choose the export file first.");
  body.set("file", file, file.name);
  const map = String(data.get("channel_map") || "").trim();
  if (map) {
    try {
      JSON.parse(map);
    } catch {
      throw new Error("The channel map is not JSON: write it as {\"their channel\": \"chat channel\"}.");
    }
    body.set("channel_map", map);
  }
  body.set("dry_run", dryRun ? "true" : "false");
  return call("POST", "/api/imports", { form: body });
}

/** One job, followed live (every second while it is queued or running). */
function jobPanel(id, { onRealImport, onStatus } = {}) {
  const el = h("section", { class: "card job", "data-job": id });
  const bar = h("progress", { max: "100", value: "0", id: `progress-${id}` });
  const barLabel = h("label", { for: bar.id }, "Progress");
  const percent = h("output", { for: bar.id, class: "percent" }, "0 %");
  const body = h("div");
  const heading = h("h2", {}, `Job ${id}`);
  el.append(heading, h("div", { class: "progress-row" }, barLabel, bar, percent), body);
  let timer = null;
  let stopped = false;
  let lastStatus = null;

  async function load() {
    let job;
    try {
      job = await get(`/api/imports/${enc(id)}`);
    } catch (err) {
      clear(body).append(h("p", { class: "error" }, err.message));
      return;
    }
    if (stopped) return;
    if (lastStatus !== null && job.status !== lastStatus && onStatus) onStatus(job);
    lastStatus = job.status;
    const value = job.status === "completed" ? 100 : Math.max(0, Math.min(100, job.progress.percent));
    bar.value = value;
    bar.setAttribute("aria-valuenow", String(Math.round(value)));
    percent.textContent = `${Math.round(value)} %`;
    heading.textContent = `Job ${job.id}${job.dry_run ? " (dry run)" : ""}`;
    const p = job.progress;
    // A dry run publishes nothing: its counts are what the import would do.
    const dry = job.dry_run;
    const parts = [
      dry ? h("p", { class: "muted" }, "A dry run: nothing was imported; these are the counts an import would reach.") : null,
      dl([
        ["Status", badge(job.status)],
        ["Source", `${sourceName(job)}${job.upload?.filename ? `: ${job.upload.filename}` : ""}`],
        ...(job.upload?.account ? [["Account in the ids", job.upload.account]] : []),
        ["Channels", `${p.channels_done} of ${p.channels_total}`],
        [dry ? "Would import" : "Messages imported", String(p.messages_imported)],
        [dry ? "Would skip" : "Skipped", String(p.messages_skipped)],
        [dry ? "Would quarantine" : "Quarantined", String(p.messages_quarantined)],
        ["Errors", String(p.errors)],
        ["Time left", p.eta_seconds != null && LIVE.has(job.status) ? `about ${Math.ceil(p.eta_seconds)} s` : "—"],
        ["Error", job.error || "—"],
      ]),
    ];
    const actions = h("div", { class: "actions" });
    if (LIVE.has(job.status) && !job.cancel_requested) {
      actions.append(
        actionButton("Cancel", async () => {
          await post(`/api/imports/${enc(id)}/cancel`, {});
          await load();
        }),
      );
    }
    if (job.status === "cancelled" || job.status === "failed") {
      actions.append(
        actionButton("Resume", async () => {
          await post(`/api/imports/${enc(id)}/resume`, {});
          await load();
        }),
      );
    }
    if (job.status === "completed" && job.dry_run && onRealImport) {
      actions.append(actionButton("Import for real", onRealImport, { className: "primary" }));
    }
    parts.push(actions);
    if (job.report) parts.push(report(job.report, dry));
    append(clear(body), parts);
    if (LIVE.has(job.status)) timer = setTimeout(load, 1000);
  }

  load();
  return {
    el,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

function report(r, dry) {
  const subtypes = Object.entries(r.by_subtype || {}).sort((a, b) => b[1] - a[1]);
  return h(
    "div",
    { class: "report" },
    h("h3", {}, dry ? "Report (dry run: what an import would do)" : "Report"),
    table(
      [
        { title: "Channel", cell: (c) => c.name },
        { title: "Chat channel", cell: (c) => c.channel_id },
        // What chose it: the channel_map key that matched, or the integration's mapping.
        { title: "Chosen by", cell: (c) => c.matched || "" },
        { title: dry ? "Would import" : "Imported", cell: (c) => String(c.imported) },
        { title: dry ? "Would skip" : "Skipped", cell: (c) => String(c.skipped) },
        { title: dry ? "Would quarantine" : "Quarantined", cell: (c) => String(c.quarantined) },
      ],
      r.channels || [],
      { caption: "Channels", empty: "No channel imported." },
    ),
    (r.skipped_channels || []).length
      ? table(
          [
            { title: "Skipped channel", cell: (c) => c.name },
            { title: "Why", cell: (c) => c.reason },
          ],
          r.skipped_channels,
          { caption: "Skipped channels" },
        )
      : null,
    (r.failed_channels || []).length
      ? table(
          [
            { title: "Failed channel", cell: (c) => c.name },
            { title: "Why", cell: (c) => c.reason },
          ],
          r.failed_channels,
          { caption: "Channels that could not be read" },
        )
      : null,
    subtypes.length
      ? table(
          [
            { title: "Kind", cell: (e) => e[0] },
            { title: "Messages", cell: (e) => String(e[1]) },
          ],
          subtypes,
          { caption: "By subtype" },
        )
      : null,
    h("h3", {}, `Quarantine (${r.quarantined_total ?? (r.quarantined || []).length})`),
    table(
      [
        { title: "File", cell: (q) => q.file },
        { title: "Position", cell: (q) => (q.position == null ? "—" : String(q.position)) },
        { title: "Reason", cell: (q) => q.reason },
      ],
      r.quarantined || [],
      { caption: "Records left out (the first 100)", empty: "Nothing quarantined." },
    ),
    r.pace ? h("details", {}, h("summary", {}, "Pace"), jsonBlock(r.pace)) : null,
    h("p", { class: "muted" }, `${dry ? "Reactions on the messages it would import" : "Reactions on imported messages"}: ${r.reactions ?? 0}`),
  );
}
