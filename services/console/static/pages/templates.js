// A template's editor (SPEC §16), in the subscription and incoming-webhook forms: the
// JavaScript, a sample payload, and "Test", which runs it (POST /api/templates/test) and
// shows the message as the chat would get it — as text, never as HTML — or the error with
// its line and column.

import { post } from "../api.js";
import { clear, errorBox, field, h } from "../dom.js";

const STARTER = `function handler(event) {
  // event: {provider, event_type, headers, payload}
  return {text: \`\${event.event_type} from \${event.provider}\`};
}
`;

/** The editor: a fieldset whose `template` textarea the form reads (empty: no template). */
export function templateEditor({ provider = "incoming_webhook", eventType = "message", sample = {}, value = "" } = {}) {
  const source = h("textarea", {
    name: "template",
    rows: "8",
    spellcheck: "false",
    autocomplete: "off",
    placeholder: STARTER,
    class: "template-source",
    value: value || undefined,
  });
  const payload = h("textarea", { name: "template_sample", rows: "6", spellcheck: "false", class: "template-sample" });
  payload.value = JSON.stringify(sample, null, 2);
  payload.defaultValue = payload.value;
  const kind = h("input", { name: "template_event_type", value: eventType, autocomplete: "off" });
  const { test, output } = sampleTest(payload, "payload", async (sampled) => {
    const answer = await post("/api/templates/test", {
      template: source.value || STARTER,
      payload: sampled,
      provider,
      event_type: kind.value || eventType,
    });
    return preview(answer);
  });
  return h(
    "details",
    { class: "template-editor", open: Boolean(value) },
    h("summary", {}, "Template (JavaScript; empty: the default rendering)"),
    field("Template", source, "function handler(event) returning {text, title?, url?, fields?, state?, color?, item?, skip?}; 50 ms and 32 MB a run"),
    field("Sample payload", payload, "JSON the test gives the template as event.payload"),
    field("Event type", kind),
    h("div", { class: "actions" }, test),
    output,
  );
}

/** A "Test" button that parses `payload` (a textarea of JSON) and shows what `run(sampled)`
 * returns in `output`, or the error; the template and transformation editors' both. */
export function sampleTest(payload, what, run) {
  const output = h("div", { class: "template-preview", "aria-live": "polite" });
  const test = h("button", { type: "button", class: "template-test" }, "Test");
  test.addEventListener("click", async () => {
    clear(output);
    let sampled;
    try {
      sampled = JSON.parse(payload.value || "null");
    } catch (err) {
      output.append(errorBox(new Error(`the sample ${what} is not JSON: ${err.message}`)));
      return;
    }
    test.disabled = true;
    try {
      output.append(await run(sampled));
    } catch (err) {
      output.append(errorBox(err));
    } finally {
      test.disabled = false;
    }
  });
  return { test, output };
}

/** The test's answer: the message's text as text (a <pre>), and its card. */
function preview({ result, notice }) {
  if (result.skip) return h("p", { class: "template-skipped" }, "Skipped: this event would post nothing.");
  const card = notice.card;
  return h(
    "div",
    {},
    h("h4", {}, "Message"),
    h("pre", { class: "template-text" }, notice.text),
    card
      ? h(
          "div",
          { class: "template-card" },
          h("h4", {}, "Card"),
          h("p", {}, h("strong", {}, card.title), card.state ? ` · ${card.state}` : "", card.color ? ` · ${card.color}` : ""),
          card.url ? h("p", {}, h("code", {}, card.url)) : null,
          card.fields.length ? h("ul", { class: "plain" }, card.fields.map((f) => h("li", {}, `${f.name}: ${f.value}`))) : null,
        )
      : null,
    result.item ? h("p", { class: "muted" }, `Thread: ${result.item}`) : null,
  );
}

/** The form's template for a request body: the text, or nothing when left empty. */
export function templateOf(data) {
  const text = String(data.get("template") || "");
  return text.trim() ? text : undefined;
}
