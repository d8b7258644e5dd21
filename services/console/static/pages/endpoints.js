// Outgoing endpoints: create (the secret shown once), rotate, test, enable/disable, the trace
// context sent or not, extra headers (write-only values), its circuit breaker tuned or off,
// the success rate of each, recover failed deliveries since a time, replay what it missed
// while disabled, and its operational events as a timeline.

import { call, enc, get, post } from "../api.js";
import {
  actionButton,
  badge,
  clear,
  copyable,
  dl,
  field,
  flash,
  form,
  h,
  link,
  pager,
  pct,
  rememberWorkspace,
  section,
  table,
  timeEl,
  workspaceField,
  writes,
} from "../dom.js";
import { recentChanges } from "./audit.js";
import { catalogPicker } from "./eventtypes.js";
import { transformationSection } from "./transformations.js";

// Where a destination sends (docs/destinations.md): its type and the field that names it.
const ADDRESS = {
  sqs: "queue_url", sns: "topic_arn", eventbridge: "event_bus_name", kinesis: "stream_name",
  s3: "bucket", pubsub: "topic", rabbitmq: "exchange", kafka: "topic",
};

function target(endpoint) {
  const destination = endpoint.destination;
  if (!destination) return endpoint.url;
  return `${destination.type}: ${destination.config[ADDRESS[destination.type]] ?? ""}`;
}

export async function render(main, { id, go }) {
  if (id) return detail(main, id, go);
  main.append(h("h1", {}, "Outgoing endpoints"));
  const secretBox = h("div", { "aria-live": "polite" });
  main.append(secretBox);
  const list = pager(
      (cursor) => get("/api/outgoing-webhooks", { limit: 20, cursor }),
      (rows) => {
        const rendered = table(
          [
            { title: "Name", cell: (r) => link(`#/endpoints/${enc(r.id)}`, r.name || r.id) },
            { title: "URL", cell: (r) => h("code", { class: "wrap" }, target(r)) },
            { title: "Events", cell: (r) => (r.events || []).join(", ") },
            {
              title: "State",
              cell: (r) => [
                badge(r.enabled ? "enabled" : "disabled"),
                circuitBadge(r.circuit),
                r.disabled_reason ? h("small", {}, ` ${r.disabled_reason}`) : null,
              ],
            },
            { title: "Success rate", cell: (r) => successRate(r.id) },
          ],
          rows,
          { caption: "Each endpoint, its events and its state", empty: "No endpoints yet: create one below." },
        );
        return rendered;
      },
      { label: "endpoints" },
    );
  main.append(list, writes(createSection(secretBox, () => list.reload())));
  return null;
}

/** completed / (completed + failed) from GET /api/webhooks/stats?webhook_id=. */
function successRate(endpointId) {
  const cell = h("span", { class: "muted" }, "…");
  get("/api/webhooks/stats", { webhook_id: endpointId })
    .then((stats) => {
      const finished = stats.completed + stats.failed;
      cell.className = "";
      cell.textContent = finished
        ? `${pct(stats.completed, finished)} (${stats.completed}/${finished})`
        : "no deliveries yet";
    })
    .catch(() => {
      cell.textContent = "—";
    });
  return cell;
}

function createSection(secretBox, created) {
  const el = form(
    [
      workspaceField(),
      field("Name", h("input", { name: "name", autocomplete: "off" })),
      field("URL", h("input", { name: "url", type: "url", required: true, placeholder: "https://example.com/hooks" })),
      eventsField(),
      field("Retry schedule (seconds)", h("input", { name: "retry_schedule", placeholder: "5, 10, 20" }), "comma-separated; empty: the default"),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "propagate_trace" }), TRACE_CHECK),
    ],
    "Create endpoint",
    async (data) => {
      const body = {
        workspace_id: data.get("workspace_id"),
        url: String(data.get("url") || "").trim(),
        events: String(data.get("events") || "")
          .split(",")
          .map((e) => e.trim())
          .filter(Boolean),
        propagate_trace: data.get("propagate_trace") === "on",
      };
      const name = String(data.get("name") || "").trim();
      if (name) body.name = name;
      const schedule = String(data.get("retry_schedule") || "").trim();
      if (schedule) body.retry_schedule = schedule.split(",").map((v) => Number(v.trim()));
      const endpoint = await post("/api/outgoing-webhooks", body);
      rememberWorkspace(body.workspace_id);
      showSecret(secretBox, endpoint, "created");
      created();
      return h("p", {}, "Created: ", link(`#/endpoints/${enc(endpoint.id)}`, endpoint.name || endpoint.id));
    },
  );
  return section("New endpoint", el);
}

const TRACE_CHECK = "Send the trace context: each attempt's traceparent (W3C), for the receiver's traces";

/** The endpoint's `events`: typed (any type, `*`, prefixes), or ticked from the catalog. */
function eventsField() {
  const input = h("input", { name: "events", required: true, value: "message.*" });
  return [field("Events", input, "comma-separated: event types, * or prefixes like message.*"), catalogPicker(input)];
}

/** The secret, once: it is not shown again after this page is left. */
function showSecret(box, endpoint, verb) {
  clear(box).append(
    h(
      "section",
      { class: "card secret", id: "secret-once" },
      h("h2", {}, `Endpoint ${verb}: its signing secret`),
      h("p", {}, "Shown this once: keep it now to verify the signatures hookhub sends."),
      copyable(endpoint.secret, "Copy secret"),
      h("p", {}, link(`#/endpoints/${enc(endpoint.id)}`, `Open ${endpoint.name || endpoint.id}`)),
    ),
  );
}

const OPEN = new Set(["pending", "active", "delayed"]);
// How long a test event's delivery is followed on the endpoint's page before the page
// leaves it to the delivery's own page: one look a second.
const FOLLOW_TRIES = 30;

async function detail(main, id, go) {
  const endpoint = await get(`/api/outgoing-webhooks/${enc(id)}`);
  const stats = h("div", {}, statsFacts(await get("/api/webhooks/stats", { webhook_id: id })));
  main.append(
    h("p", {}, link("#/endpoints", "← Outgoing endpoints")),
    h("h1", {}, endpoint.name || endpoint.id),
  );
  const secretBox = h("div", { "aria-live": "polite" });
  const testResult = h("div", { "aria-live": "polite", id: "test-result" });
  const recent = pager(
    (cursor) => get("/api/deliveries", { limit: 10, cursor, webhook_id: id }),
    (rows) =>
      table(
        [
          { title: "Delivery", cell: (r) => link(`#/deliveries/${enc(r.id)}`, r.id) },
          { title: "Event type", cell: (r) => r.event_type },
          { title: "Status", cell: (r) => badge(r.status) },
          { title: "Attempts", cell: (r) => String(r.attempts) },
          { title: "Last answer", cell: (r) => (r.last_status_code ? String(r.last_status_code) : r.last_error || "—") },
          { title: "Event time", cell: (r) => timeEl(r.occurred_at) },
        ],
        rows,
        { caption: "Latest deliveries", empty: "No deliveries yet." },
      ),
    { label: "this endpoint's deliveries" },
  );
  let stopped = false;
  let timer = null;
  let following = 0;

  /** The counts and the latest deliveries again: after a test event or a recovery. */
  async function refresh() {
    const fresh = await get("/api/webhooks/stats", { webhook_id: id });
    if (stopped) return;
    stats.replaceChildren(statsFacts(fresh));
    await recent.reload();
  }

  const pause = (ms) =>
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    });

  /** A test event's delivery, looked at every second until it has finished (bounded). */
  async function follow(deliveryId, state) {
    const mine = ++following;
    for (let tries = 0; tries < FOLLOW_TRIES; tries += 1) {
      let delivery = null;
      try {
        delivery = await get(`/api/deliveries/${enc(deliveryId)}`);
      } catch (err) {
        if (err.status !== 404) throw err; // 404: not written yet
      }
      if (stopped) return;
      if (delivery) {
        if (mine === following) {
          state.replaceChildren(badge(delivery.status), delivery.last_status_code ? ` ${delivery.last_status_code}` : "");
        }
        if (!OPEN.has(delivery.status)) {
          await refresh();
          return;
        }
        if (tries === 0) await recent.reload();
      }
      await pause(1000);
      if (stopped) return;
    }
    if (mine === following) state.append(" still open: follow it on its page.");
    await refresh();
  }

  main.append(
    secretBox,
    section(
      "Endpoint",
      dl([
        ["Id", h("code", {}, endpoint.id)],
        ["Workspace", endpoint.workspace_id],
        ["URL", h("code", { class: "wrap" }, target(endpoint))],
        ["Events", (endpoint.events || []).join(", ")],
        ["State", badge(endpoint.enabled ? "enabled" : "disabled")],
        ["Disabled because", endpoint.disabled_reason || "—"],
        ["Circuit", circuitText(endpoint.circuit)],
        ["Circuit breaker", breakerText(endpoint.circuit_breaker)],
        ["Ordering", endpoint.ordering === "fifo" ? "FIFO: one at a time per ordering key, in order" : "none"],
        ["Trace context", endpoint.propagate_trace ? "sent: each attempt's traceparent" : "not sent"],
        [
          "Retry schedule",
          (endpoint.retry_schedule || []).length ? `${endpoint.retry_schedule.join(", ")} s` : "none: one attempt only",
        ],
        ["Timeout", `${endpoint.timeout_seconds} s`],
        ["Created", timeEl(endpoint.created_at)],
      ]),
    ),
    section(
      "Deliveries",
      stats,
      recent,
      h("p", {}, link(`#/deliveries?webhook_id=${enc(id)}`, "All of this endpoint's deliveries")),
    ),
  );
  const actions = h(
    "div",
    { class: "actions" },
    actionButton("Send test event", async () => {
      const sent = await post(`/api/outgoing-webhooks/${enc(id)}/test`, {});
      const state = h("span", { class: "muted" }, "sent, waiting for it to finish…");
      clear(testResult).append(
        h("p", {}, "Test event: ", link(`#/deliveries/${enc(sent.delivery_id)}`, `delivery ${sent.delivery_id}`), " ", state),
      );
      follow(sent.delivery_id, state).catch((err) => {
        state.replaceChildren(`could not be followed (${err.message})`);
      });
    }),
    actionButton(endpoint.enabled ? "Disable" : "Enable", async () => {
      await call("PATCH", `/api/outgoing-webhooks/${enc(id)}`, { json: { enabled: !endpoint.enabled } });
      flash(endpoint.enabled ? "Endpoint disabled." : "Endpoint enabled.");
      go("endpoints", id);
    }),
    actionButton(endpoint.propagate_trace ? "Stop sending the trace context" : "Send the trace context", async () => {
      await call("PATCH", `/api/outgoing-webhooks/${enc(id)}`, { json: { propagate_trace: !endpoint.propagate_trace } });
      flash(endpoint.propagate_trace ? "The trace context is no longer sent." : "The trace context is sent from now on.");
      go("endpoints", id);
    }),
    actionButton(
      "Rotate secret",
      async () => {
        const rotated = await post(`/api/outgoing-webhooks/${enc(id)}/rotate-secret`, {});
        showSecret(secretBox, { ...endpoint, ...rotated, secret: rotated.secret }, "rotated");
      },
      { confirmText: "Rotate the secret? The old one keeps signing beside the new one for a day." },
    ),
    actionButton(
      "Delete",
      async () => {
        await call("DELETE", `/api/outgoing-webhooks/${enc(id)}`);
        flash(`Endpoint ${id} deleted.`);
        go("endpoints");
      },
      { className: "danger", confirmText: "Delete this endpoint? Its open deliveries fail." },
    ),
  );
  main.append(
    writes(section("Actions", actions, testResult)),
    endpoint.ordering === "fifo" ? await heldKeysSection(id) : "",
    headersSection(endpoint, go),
    writes(breakerSection(endpoint, go)),
    writes(transformationSection(endpoint, go)),
    recoverSection(id, () => refresh()),
    replaySection(id),
    operationalSection(id),
    recentChanges(id),
  );
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** A FIFO endpoint's keys that wait (SPEC §17): each one's head delivery and how long. */
async function heldKeysSection(id) {
  const held = await get(`/api/outgoing-webhooks/${enc(id)}/held-keys`);
  const rows = table(
    [
      { title: "Key", cell: (r) => h("code", {}, r.ordering_key || "(none: the endpoint's one queue)") },
      { title: "Head delivery", cell: (r) => link(`#/deliveries/${enc(r.head.id)}`, r.head.id) },
      { title: "Status", cell: (r) => badge(r.head.status) },
      { title: "Attempts", cell: (r) => String(r.head.attempts) },
      { title: "Last answer", cell: (r) => (r.head.last_status_code ? String(r.head.last_status_code) : r.head.last_error || "—") },
      { title: "Next attempt", cell: (r) => (r.head.next_attempt_at ? timeEl(r.head.next_attempt_at) : "—") },
      { title: "Waiting", cell: (r) => `${Math.round(r.waiting_seconds)} s` },
      { title: "Queued", cell: (r) => String(r.queued) },
    ],
    held.data,
    { caption: "Keys held behind their head delivery", empty: "No key is held: every key flows." },
  );
  return section("Held keys", rows, held.truncated ? h("p", { class: "muted" }, "More deliveries are queued than were read.") : "");
}

function statsFacts(stats) {
  const finished = stats.completed + stats.failed;
  return dl([
    ["Success rate", finished ? `${pct(stats.completed, finished)} (${stats.completed} of ${finished} finished)` : "no deliveries finished yet"],
    ["Pending / active / delayed", `${stats.pending} / ${stats.active} / ${stats.delayed}`],
    ["Failed", String(stats.failed)],
    ["Cancelled (by the transformation)", String(stats.cancelled || 0)],
  ]);
}

/** Extra headers: names only (values are write-only: the API never returns them); set one
 * (a new value replaces the old) or remove one, the others kept (PATCH merges by name). */
function headersSection(endpoint, go) {
  const url = `/api/outgoing-webhooks/${enc(endpoint.id)}`;
  const names = endpoint.headers_configured || [];
  const rows = table(
    [
      { title: "Header", cell: (name) => h("code", {}, name) },
      { title: "Value", cell: () => h("span", { class: "muted" }, "set (write-only)") },
      {
        title: "",
        writes: true,
        cell: (name) =>
          actionButton(
            `Remove ${name}`,
            async () => {
              await call("PATCH", url, { json: { headers: { [name]: null } } });
              flash(`Header ${name} removed.`);
              go("endpoints", endpoint.id);
            },
            { confirmText: `Remove the header ${name}?` },
          ),
      },
    ],
    names,
    { caption: "Extra headers", empty: "No extra headers." },
  );
  const setForm = form(
    [
      field("Header name", h("input", { name: "header_name", required: true, autocomplete: "off", placeholder: "Authorization" })),
      field("Header value", h("input", { name: "header_value", type: "password", autocomplete: "off" }), "sent with every delivery; not shown again"),
    ],
    "Set header",
    async (data) => {
      const name = String(data.get("header_name") || "").trim();
      await call("PATCH", url, { json: { headers: { [name]: String(data.get("header_value") || "") } } });
      flash(`Header ${name} set.`);
      go("endpoints", endpoint.id);
      return null;
    },
    { className: "form inline" },
  );
  return section("Extra headers", rows, setForm);
}

/** Recover an endpoint's failed deliveries since a time; `recovered()` refreshes what
 * shows them. */
export function recoverSection(id, recovered) {
  const el = form(
    [sinceField("your local time")],
    "Recover failed deliveries",
    async (data) => {
      const since = sinceOf(data);
      const answer = await post(`/api/outgoing-webhooks/${enc(id)}/recover`, { since });
      if (recovered) await recovered();
      return h("p", {}, `${answer.recovered} failed deliveries sent again.`);
    },
    { className: "form inline" },
  );
  return writes(section("Recover since", el));
}

/** "Since", an hour ago in local time: where a recover or a replay starts. */
function sinceField(hint) {
  const hourAgo = new Date(Date.now() - 3600_000);
  const local = new Date(hourAgo.getTime() - hourAgo.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  return field("Since", h("input", { name: "since", type: "datetime-local", required: true, value: local }), hint);
}

function sinceOf(data) {
  return new Date(String(data.get("since"))).toISOString();
}

/** Replay what the endpoint missed (SPEC §17): events of its types published since a time
 * of which it has no delivery, read back from Kafka; the replays with their progress. */
function replaySection(id) {
  const url = `/api/outgoing-webhooks/${enc(id)}`;
  const list = h("div", { "aria-live": "polite" });
  const show = async () => {
    const replays = await get(`${url}/replays`, { limit: 10 });
    clear(list);
    list.append(
      table(
        [
          { title: "Started", cell: (r) => timeEl(r.created_at) },
          { title: "Window", cell: (r) => [timeEl(r.since), " to ", r.until ? timeEl(r.until) : "its start"] },
          { title: "Status", cell: (r) => [badge(r.status, r.status === "completed" ? "completed" : r.status === "running" ? "pending" : "failed"), r.error ? ` ${r.error}` : ""] },
          { title: "Read", cell: (r) => (r.records == null ? String(r.read) : `${r.read} of ${r.records} records`) },
          { title: "Replayed", cell: (r) => `${r.replayed} sent, ${r.already_delivered} had a delivery${r.truncated ? " (the topic no longer held the window's start)" : ""}` },
        ],
        replays,
        { caption: "Replays", empty: "No replays yet." },
      ),
    );
  };
  const el = form(
    [sinceField("your local time; enable the endpoint first")],
    "Replay missed events",
    async (data) => {
      const since = sinceOf(data);
      const replay = await post(`${url}/replay`, { since });
      await show();
      return h("p", {}, `Replay ${replay.id} started: events it has no delivery of are sent again.`);
    },
    { className: "form inline" },
  );
  show().catch(() => {});
  return section("Replay what it missed", writes(el), list);
}

/** The endpoint's operational events (its changes, failing and recovered, deliveries
 * exhausted, its circuit), newest first: what its subscribers to `operational.*` were sent. */
function operationalSection(id) {
  const timeline = pager(
    (cursor) => get("/api/operational-events", { limit: 20, cursor, resource_id: id }),
    (rows) =>
      table(
        [
          { title: "When", cell: (r) => timeEl(r.occurred_at) },
          { title: "Event", cell: (r) => h("code", {}, r.type.replace(/^operational\./, "")) },
          { title: "Reason", cell: (r) => String(r.data.reason || "—") },
          { title: "Last answer", cell: (r) => lastAnswer(r.data) },
          {
            title: "Delivery",
            cell: (r) => (r.data.delivery_id ? link(`#/deliveries/${enc(r.data.delivery_id)}`, r.data.delivery_id) : "—"),
          },
        ],
        rows,
        { caption: "Operational events", empty: "No operational events for this endpoint yet." },
      ),
    { label: "this endpoint's operational events" },
  );
  return section("Operational events", timeline);
}

function lastAnswer(data) {
  if (data.last_status_code) return String(data.last_status_code);
  return data.last_error ? String(data.last_error) : "—";
}

// The circuit breaker (SPEC §17): shown only when it is not closed in the list.
function circuitBadge(circuit) {
  if (!circuit || circuit.state === "closed") return null;
  return badge(`circuit ${circuit.state.replace("_", " ")}`, "failed");
}

function circuitText(circuit) {
  if (!circuit || circuit.state === "closed") return "closed: attempts go out";
  const rate = `${Math.round((circuit.failure_rate || 0) * 100)}% of the last attempts failed`;
  return [
    badge(circuit.state.replace("_", " "), "failed"),
    ` since `,
    timeEl(circuit.opened_at),
    `; ${rate}; next probe `,
    timeEl(circuit.next_probe_at),
  ];
}

/** The endpoint's `circuit_breaker` (SPEC §17) in words: what opens it, or that it is off. */
function breakerText(tuning) {
  const t = tuning || {};
  if (t.enabled === false) return "off: the retry schedule alone decides when each attempt goes";
  const coolDown = t.cool_down_seconds == null ? "the deployment's cool-down (30 s unless set)" : `${t.cool_down_seconds} s`;
  return (
    `on: opens when ${Math.round((t.failure_ratio ?? 0.5) * 100)}% of the last ${t.window ?? 20} attempts failed ` +
    `(or 5 timed out in a row); the first probe ${coolDown} after`
  );
}

/** Tune the circuit breaker or turn it off: a PATCH of all four fields, an empty cool-down
 * leaving it to the deployment's. */
function breakerSection(endpoint, go) {
  const t = endpoint.circuit_breaker || {};
  const number = (name, value, attrs) => h("input", { name, type: "number", required: true, value: String(value), ...attrs });
  const el = form(
    [
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "enabled", checked: t.enabled !== false }), "On: stop sending while most attempts fail"),
      field("Failure ratio", number("failure_ratio", t.failure_ratio ?? 0.5, { min: "0.01", max: "1", step: "0.01" }), "the share of the last attempts that must fail to open it (up to 1)"),
      field("Window", number("window", t.window ?? 20, { min: "1", max: "1000", step: "1" }), "how many of the last attempts count (1-1000)"),
      field(
        "Cool-down (seconds)",
        h("input", { name: "cool_down_seconds", type: "number", min: "1", max: "86400", step: "any", value: t.cool_down_seconds == null ? "" : String(t.cool_down_seconds), placeholder: "30" }),
        "from its opening to the first probe; empty: the deployment's",
      ),
    ],
    "Save circuit breaker",
    async (data) => {
      const coolDown = String(data.get("cool_down_seconds") || "").trim();
      const circuitBreaker = {
        enabled: data.get("enabled") === "on",
        failure_ratio: Number(data.get("failure_ratio")),
        window: Number(data.get("window")),
        cool_down_seconds: coolDown ? Number(coolDown) : null,
      };
      await call("PATCH", `/api/outgoing-webhooks/${enc(endpoint.id)}`, { json: { circuit_breaker: circuitBreaker } });
      flash(circuitBreaker.enabled ? "Circuit breaker saved." : "Circuit breaker turned off: the retry schedule alone decides.");
      go("endpoints", endpoint.id);
      return null;
    },
  );
  return section("Circuit breaker", el);
}
