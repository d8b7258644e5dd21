// Overview: each service's readiness and its consumers' lag (the origin's /readyz), the
// six delivery queue counters, deliveries per minute by outcome over the last hour, and
// (the admin's alone: it spans workspaces) the busiest workspaces over the usage window.

import { PORTAL, caller, get } from "../api.js";
import { badge, h, s, section, table } from "../dom.js";

const OUTCOMES = [
  ["success", "2xx"],
  ["http_error", "other HTTP status"],
  ["network_error", "timeout or no connection"],
];

export async function render(main) {
  main.append(h("h1", {}, "Overview"));
  const health = h("div", { id: "health" }, h("p", { class: "muted" }, "Asking every service…"));
  const counters = h("div", { id: "counters" });
  const chart = h("div", { id: "chart" });
  const everyWorkspace = !PORTAL && caller.kind === "admin";
  const busiest = h("div", { id: "busiest" });
  main.append(
    section("Services", health),
    section("Delivery queue", counters),
    section("Deliveries per minute, last hour", chart),
    ...(everyWorkspace ? [section("Busiest workspaces", busiest)] : []),
  );
  let timer = null;
  let stopped = false;
  let lastTimeline = null;
  // The chart is drawn at the width it is shown at (its text at its own size on a phone as
  // on a wide screen): again when that width changes.
  const drawChart = () => {
    if (lastTimeline) chart.replaceChildren(barChart(lastTimeline, chart.clientWidth));
  };
  let drawnAt = 0;
  let frame = 0;
  const onResize = () => {
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => {
      if (chart.clientWidth !== drawnAt) {
        drawnAt = chart.clientWidth;
        drawChart();
      }
    });
  };
  window.addEventListener("resize", onResize);

  async function load() {
    const [ready, stats, timeline, usage] = await Promise.all([
      readiness(),
      get("/api/webhooks/stats").catch((err) => err),
      get("/api/webhooks/stats/timeline", { minutes: 60 }).catch((err) => err),
      everyWorkspace ? get("/api/usage", { limit: 10 }).catch((err) => err) : null,
    ]);
    if (stopped) return;
    if (usage) {
      busiest.replaceChildren(
        usage instanceof Error ? h("p", { class: "error" }, usage.message) : busiestTable(usage),
      );
    }
    health.replaceChildren(ready);
    counters.replaceChildren(
      stats instanceof Error ? h("p", { class: "error" }, stats.message) : counterList(stats),
    );
    if (timeline instanceof Error) {
      lastTimeline = null;
      chart.replaceChildren(h("p", { class: "error" }, timeline.message));
    } else {
      lastTimeline = timeline;
      drawnAt = chart.clientWidth;
      drawChart();
    }
    timer = setTimeout(() => load().catch(() => {}), 10_000);
  }
  await load();
  return () => {
    stopped = true;
    clearTimeout(timer);
    cancelAnimationFrame(frame);
    window.removeEventListener("resize", onResize);
  };
}

async function readiness() {
  let body;
  try {
    const response = await fetch("/readyz", { cache: "no-store", credentials: "omit" });
    body = await response.json();
  } catch (err) {
    return h("p", { class: "error" }, `The origin did not answer /readyz (${err.message}).`);
  }
  const rows = Object.entries(body.services || {}).map(([name, info]) => ({ name, info }));
  const lagRows = [];
  for (const { name, info } of rows) {
    for (const [group, topics] of Object.entries(info.consumer_lag || {})) {
      for (const [topic, lag] of Object.entries(topics)) lagRows.push({ name, group, topic, lag });
    }
  }
  return h(
    "div",
    {},
    h("p", {}, "hookhub is ", badge(body.status === "ready" ? "ready" : "not_ready")),
    table(
      [
        { title: "Service", cell: (r) => r.name },
        { title: "Readiness", cell: (r) => badge(r.info.status === "ready" ? "ready" : r.info.status || "unknown") },
        {
          title: "Checks",
          cell: (r) =>
            Object.entries(r.info.checks || {})
              .map(([k, v]) => `${k}: ${v}`)
              .join("; ") || r.info.error || "—",
        },
      ],
      rows,
    ),
    table(
      [
        { title: "Service", cell: (r) => r.name },
        { title: "Consumer group", cell: (r) => r.group },
        { title: "Topic", cell: (r) => r.topic },
        { title: "Lag (messages)", cell: (r) => String(r.lag) },
      ],
      lagRows,
      { caption: "Consumer lag", empty: "No consumer lag reported." },
    ),
  );
}

/** GET /api/usage's ranking: one row a workspace, the busiest first. */
function busiestTable(usage) {
  const { since, days } = usage.window;
  const byProvider = (counts) =>
    Object.entries(counts.by_provider)
      .map(([provider, n]) => `${provider} ${n}`)
      .join(" · ");
  const withDetail = (counts) =>
    h("span", {}, String(counts.total), counts.total ? h("span", { class: "muted" }, ` (${byProvider(counts)})`) : null);
  return table(
    [
      { title: "Workspace", cell: (w) => w.workspace_id },
      { title: "Events", cell: (w) => withDetail(w.events) },
      { title: "Deliveries", cell: (w) => String(w.deliveries) },
      { title: "Messages synced", cell: (w) => String(w.messages_synced) },
      { title: "Messages imported", cell: (w) => String(w.messages_imported) },
      { title: "Integrations", cell: (w) => withDetail(w.integrations) },
      { title: "Endpoints", cell: (w) => String(w.endpoints) },
    ],
    usage.data,
    {
      caption: `The last ${days} days (since ${new Date(since).toLocaleDateString()}), the busiest first`,
      empty: `No workspace has done anything in the last ${days} days.`,
    },
  );
}

function counterList(stats) {
  const names = ["total", "pending", "active", "delayed", "completed", "failed"];
  return h(
    "ul",
    { class: "counters" },
    names.map((name) =>
      h("li", { class: `counter counter-${name}` }, h("span", { class: "n" }, String(stats[name] ?? 0)), h("span", { class: "k" }, name)),
    ),
  );
}

// The chart's coordinates are CSS pixels: drawn as wide as it is shown (never narrower than
// this; a narrower screen scrolls it sideways), its labels keep the stylesheet's size.
const CHART_MIN_WIDTH = 320;

/** Stacked bars, one a minute, built as SVG elements (no chart library, no markup strings),
 * `available` pixels wide. */
function barChart(timeline, available) {
  const minutes = timeline.minutes || [];
  const width = Math.max(CHART_MIN_WIDTH, Math.floor(available || 720));
  const height = width < 600 ? 180 : 200;
  const pad = { left: 40, bottom: 24, top: 10, right: 8 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const totals = minutes.map((m) => OUTCOMES.reduce((sum, [key]) => sum + (m[key] || 0), 0));
  const max = Math.max(1, ...totals);
  const barW = minutes.length ? innerW / minutes.length : innerW;
  const total = totals.reduce((a, b) => a + b, 0);
  const svg = s(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart", role: "img", "aria-labelledby": "chart-title" },
    s("title", { id: "chart-title" }, `Deliveries per minute by outcome over the last hour: ${total} attempts, at most ${max} in a minute`),
    s("line", { x1: pad.left, y1: pad.top + innerH, x2: pad.left + innerW, y2: pad.top + innerH, class: "axis" }),
    s("text", { x: pad.left - 4, y: pad.top + 12, class: "tick", "text-anchor": "end" }, String(max)),
    s("text", { x: pad.left - 4, y: pad.top + innerH, class: "tick", "text-anchor": "end" }, "0"),
    s("text", { x: pad.left, y: height - 6, class: "tick" }, "−60 min"),
    s("text", { x: pad.left + innerW, y: height - 6, class: "tick", "text-anchor": "end" }, "now"),
  );
  minutes.forEach((m, i) => {
    let y = pad.top + innerH;
    for (const [key, label] of OUTCOMES) {
      const n = m[key] || 0;
      if (!n) continue;
      const barH = (n / max) * innerH;
      y -= barH;
      svg.append(
        s(
          "rect",
          { x: pad.left + i * barW + 0.5, y, width: Math.max(1, barW - 1), height: barH, class: `bar bar-${key}` },
          s("title", {}, `${new Date(m.minute).toLocaleTimeString()}: ${n} ${label}`),
        ),
      );
    }
  });
  const legend = h(
    "ul",
    { class: "legend" },
    OUTCOMES.map(([key, label]) => h("li", {}, h("span", { class: `swatch bar-${key}` }), `${label}: ${minutes.reduce((a, m) => a + (m[key] || 0), 0)}`)),
  );
  return h(
    "figure",
    {},
    h("div", { class: "chart-scroll" }, svg),
    legend,
    h("figcaption", { class: "muted" }, "Attempts that ended in each minute, by outcome."),
  );
}
