// Provider apps: hookhub's own OAuth client and app-level secrets at each provider.

import { call, enc, get } from "../api.js";
import { actionButton, badge, field, flash, form, h, section, select, table, timeEl } from "../dom.js";
import { providerIcon, providerTitle } from "../providers.js";

const FIELDS = {
  slack: ["client_id", "client_secret", "signing_secret"],
  discord: ["client_id", "client_secret", "public_key"],
  github: ["client_id", "client_secret"],
  jira: ["client_id", "client_secret"],
  google: ["client_id", "client_secret"],
  telegram: [],
};

// What each field is called at the provider's own pages; its name in the API as the hint.
const LABELS = {
  client_id: "Client ID",
  client_secret: "Client secret",
  signing_secret: "Signing secret",
  public_key: "Public key",
  history_tier: "History tier",
};

const label = (name) => LABELS[name] || name;

export async function render(main, { go }) {
  main.append(h("h1", {}, "Provider apps"));
  const apps = await get("/api/providers");
  main.append(
    table(
      [
        { title: "", cell: (r) => providerIcon(r.provider) },
        { title: "Provider", cell: (r) => providerTitle(r.provider) },
        { title: "Client ID", cell: (r) => r.client_id || "—" },
        { title: "Set", cell: (r) => (r.configured || []).map(label).join(", ") || "nothing" },
        { title: "From", cell: (r) => badge(r.source) },
        { title: "Updated", cell: (r) => timeEl(r.updated_at) },
        {
          title: "",
          cell: (r) =>
            r.source === "api"
              ? actionButton(
                  "Forget",
                  async () => {
                    await call("DELETE", `/api/providers/${enc(r.provider)}`);
                    flash(`${providerTitle(r.provider)}: the environment applies again.`);
                    go("providers");
                  },
                  { className: "danger", confirmText: "Forget what the API set for this provider?" },
                )
              : "",
        },
      ],
      apps.data,
      { caption: "Each provider's app" },
    ),
  );
  const fieldsBox = h("div", { class: "fields" });
  const providerSelect = select(
    "provider",
    Object.keys(FIELDS)
      .filter((p) => FIELDS[p].length)
      .map((p) => [p, providerTitle(p)]),
    "github",
  );
  const draw = () => {
    const provider = providerSelect.value;
    fieldsBox.replaceChildren(
      ...FIELDS[provider].map((name) =>
        field(
          label(name),
          h("input", { name, type: name === "client_id" ? "text" : "password", autocomplete: "off", spellcheck: "false" }),
          name === "client_id" ? `API field ${name}` : `API field ${name}; write-only: never shown again`,
        ),
      ),
      provider === "slack"
        ? field(
            label("history_tier"),
            select("history_tier", [["", "unchanged"], "tier3", "limited"], ""),
            "API field history_tier: Slack's rate tier for reading history in imports",
          )
        : "",
    );
  };
  providerSelect.addEventListener("change", draw);
  draw();
  main.append(
    section(
      "Set a provider app",
      h("p", { class: "muted" }, "Only the fields you fill in change; secrets are stored encrypted and never shown."),
      form([field("Provider", providerSelect), fieldsBox], "Save", async (data) => {
        const body = {};
        for (const [k, v] of data.entries()) {
          if (k !== "provider" && String(v).trim()) body[k] = String(v).trim();
        }
        await call("PUT", `/api/providers/${enc(data.get("provider"))}`, { json: body });
        flash(`${providerTitle(data.get("provider"))} app saved.`);
        go("providers");
      }),
    ),
  );
  return null;
}
