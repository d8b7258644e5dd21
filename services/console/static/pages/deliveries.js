// Deliveries: filtered, one page at a time; a delivery with its payload and every attempt,
// refreshed while it is still open; retry; recover since (per endpoint).

import { enc, get, post } from "../api.js";
import {
  actionButton,
  badge,
  clear,
  dl,
  field,
  filled,
  flash,
  form,
  h,
  jsonBlock,
  link,
  pager,
  section,
  select,
  table,
  timeEl,
} from "../dom.js";
import { recoverSection } from "./endpoints.js";

const STATUSES = ["pending", "active", "delayed", "completed", "failed", "cancelled"];
const OPEN = new Set(["pending", "active", "delayed"]);

export async function render(main, { id, params, go }) {
  if (id) return detail(main, id, go);
  const webhookId = params.get("webhook_id") || "";
  const status = params.get("status") || "";
  const eventType = params.get("event_type") || "";
  const since = params.get("since") || "";
  main.append(h("h1", {}, "Deliveries"));
  // The endpoints by name, for the filter and the table (the first 200: a list of more
  // still filters by an id given in the address).
  const endpoints = await get("/api/outgoing-webhooks", { limit: 200 }).then(
    (page) => page.data,
    () => [],
  );
  const names = new Map(endpoints.map((e) => [e.id, e.name || e.id]));
  const choices = endpoints.map((e) => [e.id, `${e.name || e.id} (…${e.id.slice(-6)})`]);
  if (webhookId && !names.has(webhookId)) choices.unshift([webhookId, webhookId]);
  main.append(
    form(
      [
        field("Endpoint", select("webhook_id", [["", "any"], ...choices], webhookId)),
        field("Status", select("status", [["", "any"], ...STATUSES], status)),
        field("Event type", h("input", { name: "event_type", value: eventType, autocomplete: "off" })),
        field("Created since", h("input", { name: "since", type: "datetime-local", value: since })),
      ],
      "Filter",
      async (data) => go("deliveries", null, filled(data)),
      { className: "form inline filters", reads: true },
    ),
  );
  const sinceIso = since ? new Date(since).toISOString() : "";
  const list = pager(
    (cursor) =>
      get("/api/deliveries", {
        limit: 50,
        cursor,
        webhook_id: webhookId,
        status,
        event_type: eventType,
        since: sinceIso,
      }),
    (rows) =>
      table(
        [
          { title: "Delivery", cell: (r) => link(`#/deliveries/${enc(r.id)}`, r.id) },
          { title: "Event type", cell: (r) => r.event_type },
          {
            title: "Endpoint",
            cell: (r) => h("a", { href: `#/endpoints/${enc(r.webhook_id)}`, title: r.webhook_id }, names.get(r.webhook_id) || r.webhook_id),
          },
          { title: "Status", cell: (r) => badge(r.status) },
          { title: "Attempts", cell: (r) => String(r.attempts) },
          { title: "Last answer", cell: (r) => lastAnswer(r) },
          { title: "Event time", cell: (r) => timeEl(r.occurred_at) },
          { title: "Created", cell: (r) => timeEl(r.created_at) },
        ],
        rows,
        { caption: "Deliveries, newest event first", empty: "No deliveries match." },
      ),
    { label: "deliveries" },
  );
  main.append(h("div", { class: "actions" }, actionButton("Refresh", () => list.reload(), { reads: true })), list);
  if (webhookId) main.append(recoverSection(webhookId, () => list.reload()));
  return null;
}

/** The status code, or the error (its first lines; the whole as the title). */
function lastAnswer(r) {
  if (r.last_status_code) return String(r.last_status_code);
  if (r.last_error) return h("span", { class: "clip", title: r.last_error }, r.last_error);
  return "—";
}

async function detail(main, id, go) {
  main.append(h("p", {}, link("#/deliveries", "← Deliveries")), h("h1", {}, `Delivery ${id}`));
  const body = h("div", { id: "delivery" });
  main.append(body);
  let timer = null;
  let stopped = false;

  async function load() {
    const delivery = await get(`/api/deliveries/${enc(id)}`);
    if (stopped) return;
    clear(body).append(
      section(
        "Delivery",
        dl([
          ["Status", badge(delivery.status)],
          ["Event", `${delivery.event_type} (${delivery.event_id})`],
          ["Endpoint", link(`#/endpoints/${enc(delivery.webhook_id)}`, delivery.webhook_id)],
          ["Message id (webhook-id)", h("code", {}, delivery.msg_id)],
          ["Trace id", delivery.trace_id ? h("code", {}, delivery.trace_id) : "none: its event came with no trace"],
          ["Attempts", String(delivery.attempts)],
          ["Next attempt", timeEl(delivery.next_attempt_at)],
          ["Event time", timeEl(delivery.occurred_at)],
          ["Created", timeEl(delivery.created_at)],
        ]),
        h(
          "div",
          { class: "actions" },
          ["failed", "delayed"].includes(delivery.status)
            ? actionButton("Retry now", async () => {
                await post(`/api/deliveries/${enc(id)}/retry`, {});
                flash("Retry queued.");
                clearTimeout(timer);
                await load();
              })
            : null,
          delivery.status === "completed"
            ? actionButton(
                "Send again (force)",
                async () => {
                  await post(`/api/deliveries/${enc(id)}/retry`, {}, { force: "true" });
                  flash("Sent again.");
                  clearTimeout(timer);
                  await load();
                },
                { confirmText: "The receiver gets this event a second time (same webhook-id). Send it again?" },
              )
            : null,
        ),
      ),
      section(
        `Attempts (${delivery.attempt_log.length})`,
        delivery.attempt_log.length
          ? h("ol", { class: "attempts" }, delivery.attempt_log.map((a, i, all) => attempt(a, i === all.length - 1)))
          : h("p", { class: "muted" }, "No attempt yet."),
      ),
      section(
        "Payload",
        h("p", { class: "muted" }, "The event as hookhub made it, before the endpoint's transformation (if it has one): what each attempt sent is shown with the attempt, above."),
        jsonBlock(delivery.payload),
      ),
    );
    if (OPEN.has(delivery.status)) timer = setTimeout(() => load().catch(() => {}), 1000);
  }

  await load();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** What an attempt sent: the request line, every header (the endpoint's own as a note:
 * their values are write-only) and the body, where a transformation made it other than the
 * payload. */
function sent(request, latest) {
  if (!request) return h("p", { class: "muted" }, "Request sent: not recorded (nothing was sent, or the attempt predates the record).");
  return h(
    "details",
    { class: "sent", open: latest },
    h("summary", {}, "Request sent"),
    h("p", {}, h("code", { class: "wrap" }, `${request.method} ${request.url}`)),
    h("h4", {}, "Headers"),
    jsonBlock(request.headers),
    h("h4", {}, "Body"),
    request.body === null
      ? h("p", { class: "muted" }, "The payload below, as it is.")
      : h("pre", { class: "json sent-body" }, request.body),
  );
}

function attempt(a, latest) {
  const ok = a.status_code && a.status_code >= 200 && a.status_code < 300;
  return h(
    "li",
    { class: `attempt ${ok ? "ok" : "bad"}` },
    h(
      "p",
      {},
      h("strong", {}, `Attempt ${a.attempt}`),
      " · ",
      timeEl(a.at),
      " · ",
      badge(a.status_code ? String(a.status_code) : "no answer", ok ? "completed" : "failed"),
      ` · ${a.duration_ms} ms`,
      a.next_attempt_at ? [" · next at ", timeEl(a.next_attempt_at)] : null,
    ),
    a.error ? h("p", { class: "error-text" }, a.error) : null,
    sent(a.request, latest),
    Object.keys(a.response_headers || {}).length
      ? h("details", {}, h("summary", {}, "Response headers"), jsonBlock(a.response_headers))
      : null,
    a.response_body ? h("details", {}, h("summary", {}, "Response body"), h("pre", { class: "json" }, a.response_body)) : null,
  );
}
