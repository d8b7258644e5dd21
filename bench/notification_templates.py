"""The templates' mix of benchmark "notifications" (bench.notifications): the alerts' mix
(bench.notification_alerts) with every subscription on a template (SPEC §16), so each
notification is rendered by the workspace's JavaScript in the sandbox (shared.kernel.jsbox) instead
of the provider's renderer: the renderer still runs (the filters judge its facts), then the
batch's templates run together in the sandbox's worker process.

The template is the kind a workspace writes: an Alertmanager group's status, name and first
alerts as fields, threaded by its `groupKey`; a PagerDuty incident's title and state,
threaded by its id.
"""

from __future__ import annotations

from typing import Any

from bench.notification_alerts import Alerts

TEMPLATE = """
function handler(event) {
  const p = event.payload;
  if (event.provider === "alertmanager") {
    const alerts = p.alerts || [];
    const name = (p.commonLabels || {}).alertname || "alerts";
    return {
      text: `**[${String(p.status).toUpperCase()}] ${name}**: ${alerts.length} alert(s)`,
      title: name,
      state: p.status,
      color: p.status === "resolved" ? "#1f883d" : "#cf222e",
      item: p.groupKey,
      fields: alerts.slice(0, 5).map((a) => ({
        name: (a.labels || {}).host || a.fingerprint || "alert",
        value: (a.annotations || {}).description || a.status,
      })),
    };
  }
  const e = p.event || {};
  const d = e.data || {};
  return {
    text: `**${d.title || "incident"}**: ${e.event_type}`,
    title: d.title || "incident",
    state: d.status,
    item: d.id,
  };
}
"""


class TemplatedAlerts(Alerts):
    name = "templates"
    title = "Alertmanager and PagerDuty notifications, every subscription on a template"
    # The issue's target with templates (the renderers' mixes: 0.6).
    target_ratio = 0.4

    def subscriptions(self) -> list[tuple[str, dict[str, Any]]]:
        return [(i, {**body, "template": TEMPLATE}) for i, body in super().subscriptions()]

    def notes(self, kinds: Any) -> list[str]:
        return [
            *super().notes(kinds),
            "every subscription on a template (its JavaScript in the sandbox: bench/"
            "notification_templates.py), run instead of the renderer's text and card; the 5 "
            "subscriptions of an integration share it, so it runs once an event (as for any "
            "workspace's channels on one template)",
        ]
