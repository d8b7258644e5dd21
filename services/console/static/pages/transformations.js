// An endpoint's transformation (SPEC §17), on its page: the JavaScript, enabled or not, a
// sample event and "Test", which runs it (POST /api/transformations/test) and shows the
// webhook it would send — as text, never as HTML — or the error with its line and column.

import { call, enc, post } from "../api.js";
import { errorBox, field, flash, form, h, jsonBlock, section } from "../dom.js";
import { sampleTest } from "./templates.js";

const STARTER = `function handler(webhook) {
  // webhook: {event_type, payload, url, method, headers}
  // return it changed (payload, url, method POST/PUT/PATCH, headers), or {cancel: true}
  return webhook;
}
`;
const SAMPLE = { type: "message.created", timestamp: "2024-01-01T00:00:00Z", data: { text: "hello" } };

/** The editor: save (PATCH `transformation`, or null to remove it) and test. */
export function transformationSection(endpoint, go) {
  const current = endpoint.transformation;
  const code = h("textarea", { name: "code", rows: "10", spellcheck: "false", autocomplete: "off", class: "template-source" });
  code.value = current ? current.code : STARTER;
  code.defaultValue = code.value;
  const enabled = h("input", { type: "checkbox", name: "enabled" });
  enabled.checked = current ? current.enabled : true;
  enabled.defaultChecked = enabled.checked;
  const payload = h("textarea", { rows: "6", spellcheck: "false", class: "template-sample" });
  payload.value = JSON.stringify(SAMPLE, null, 2);
  const eventType = h("input", { value: "message.created", autocomplete: "off" });
  const { test, output } = sampleTest(payload, "event", async (sampled) => {
    const answer = await post("/api/transformations/test", {
      code: code.value,
      payload: sampled,
      event_type: eventType.value || "message.created",
    });
    return answer.cancel ? h("p", {}, "Cancelled: this delivery would end unsent.") : jsonBlock(answer.webhook);
  });
  const url = `/api/outgoing-webhooks/${enc(endpoint.id)}`;
  const save = form(
    [
      field("Code", code, "function handler(webhook); 50 ms and 32 MB a run; an error fails the attempt (transformation_error), retried on schedule"),
      field("Enabled", enabled),
    ],
    "Save transformation",
    async (data) => {
      await call("PATCH", url, { json: { transformation: { code: String(data.get("code") || ""), enabled: enabled.checked } } });
      flash("Transformation saved.");
      go("endpoints", endpoint.id);
      return null;
    },
  );
  const remove = current
    ? h("button", { type: "button", class: "danger" }, "Remove transformation")
    : null;
  remove?.addEventListener("click", async () => {
    if (!window.confirm("Remove this endpoint's transformation?")) return;
    try {
      await call("PATCH", url, { json: { transformation: null } });
      flash("Transformation removed.");
      go("endpoints", endpoint.id);
    } catch (err) {
      remove.after(errorBox(err));
    }
  });
  return section(
    "Transformation",
    save,
    remove,
    h("h3", {}, "Try it"),
    field("Sample event (the body hookhub sends)", payload),
    field("Event type", eventType),
    h("div", { class: "actions" }, test),
    output,
  );
}
