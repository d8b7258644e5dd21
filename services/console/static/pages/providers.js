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

export async function render(main, { go }) {
  main.append(h("h1", {}, "Provider apps"));
  const apps = await get("/api/providers");
  main.append(
    table(
      [
        { title: "", cell: (r) => providerIcon(r.provider) },
        { title: "Provider", cell: (r) => providerTitle(r.provider) },
        { title: "Client id", cell: (r) => r.client_id || "—" },
        { title: "Set", cell: (r) => (r.configured || []).join(", ") || "nothing" },
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
      { caption: "Provider apps" },
    ),
  );
  const fieldsBox = h("div");
  const providerSelect = select("provider", Object.keys(FIELDS).filter((p) => FIELDS[p].length), "github");
  const draw = () => {
    const provider = providerSelect.value;
    fieldsBox.replaceChildren(
      ...FIELDS[provider].map((name) =>
        field(name, h("input", { name, type: name === "client_id" ? "text" : "password", autocomplete: "off" }), name === "client_id" ? "" : "write-only"),
      ),
      provider === "slack"
        ? field("history_tier", select("history_tier", [["", "unchanged"], "tier3", "limited"], ""), "Slack's history rate tier for imports")
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
