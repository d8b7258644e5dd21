"""Grafana's alerting webhooks as notifications (SPEC §16): one thread per alert group,
firing then resolved, as Alertmanager's; and Grafana's legacy alerting, one per rule.

Grafana Alerting (Grafana 8 and later) sends Alertmanager's format (the group: `groupKey`,
`status`, `alerts`, `commonLabels`, …) with more: the group's `title`, `message`, `state`
and `orgId`, and per alert its `values` (or `valueString`) and links to its `dashboardURL`,
`panelURL` and `silenceURL`. It is rendered by Alertmanager's renderer
(shared.providers.alertmanager.notify.group_notice), each alert's line with its values and
links; the item is the group (`groupKey`).

Legacy alerting (dashboard alerts, before Grafana 8; Grafana 11 removed them) sends one rule:
`ruleId`, `ruleName`, `ruleUrl`, `state` (`alerting`, `ok`, `no_data`, `pending`,
`paused`), `message` and `evalMatches` (each metric and its value). The item is the rule
(`rule <ruleId>`): alerting and no data open it (`firing`, `no_data`), ok ends it
(`resolved`); pending and paused leave it as it was.

Payloads as Grafana's docs show them ("Webhook notifier": grafana/grafana
`docs/sources/alerting/configure-notifications/manage-contact-points/integrations/
webhook-notifier.md`); samples in ./samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.providers import commonmark as md
from shared.providers.alertmanager.notify import group_notice
from shared.providers.ids import field_at, id_field, str_field
from shared.providers.notify import (
    GRAY,
    GREEN,
    RED,
    YELLOW,
    Card,
    Field,
    Notice,
    ServiceNotifier,
    Unrenderable,
)

# Legacy `state` → the event it is, its colour, and whether it opens or ends the rule's thread.
LEGACY = {
    "alerting": ("firing", RED, False),
    "no_data": ("no_data", YELLOW, False),
    "ok": ("resolved", GREEN, True),
    "pending": ("pending", YELLOW, None),
    "paused": ("paused", GRAY, None),
}
EVENTS: frozenset[str] = frozenset({"firing", "resolved", "no_data", "pending", "paused"})
DEFAULT_EVENTS: tuple[str, ...] = ("firing", "resolved", "no_data")
# Values (and evaluated metrics) shown per alert; the rest are cut.
VALUES_SHOWN = 6
VALUE_CHARS = 120


def _number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _values(alert: Mapping[str, Any]) -> str | None:
    """`values` (`{"B": 44.2, "C": 1}`, Grafana 9 and later) as `B=44.24, C=1`, else the
    `valueString` Grafana 8 sends, trimmed."""
    found = alert.get("values")
    if isinstance(found, dict):
        pairs = [(str(k), n) for k, v in found.items() if (n := _number(v)) is not None]
        if pairs:
            return ", ".join(f"{k}={n}" for k, n in pairs[:VALUES_SHOWN])
    text = str_field(alert, "valueString")
    return md.line(text, VALUE_CHARS) if text else None


def _alert_extra(alert: Mapping[str, Any]) -> list[str]:
    """What Grafana adds to an alert's line: its values, then its dashboard, panel and
    silence links."""
    values = _values(alert)
    parts = [md.code(values, VALUE_CHARS)] if values else []
    for label, key in (
        ("dashboard", "dashboardURL"),
        ("panel", "panelURL"),
        ("silence", "silenceURL"),
    ):
        url = md.safe_url(alert.get(key))
        if url is not None:
            parts.append(md.link(label, url))
    return parts


def _legacy_notice(payload: Mapping[str, Any]) -> Notice:
    rule_id = id_field(payload, "ruleId")
    if rule_id is None:
        raise Unrenderable("`ruleId` is missing")
    state = str_field(payload, "state") or ""
    if state not in LEGACY:
        raise Unrenderable(f"`state` is {state!r}, not a Grafana alert state")
    event, color, resolved = LEGACY[state]
    name = str_field(payload, "ruleName") or str_field(payload, "title") or f"rule {rule_id}"
    url = str_field(payload, "ruleUrl")
    lines = [md.link(f"**{md.text(f'[{state.upper()}] {name}')}**", url) + " · Grafana"]
    message = str_field(payload, "message")
    if message:
        lines.append(md.quote(message))
    matches = field_at(payload, "evalMatches")
    shown = [m for m in matches if isinstance(m, dict)] if isinstance(matches, list) else []
    for match in shown[:VALUES_SHOWN]:
        metric = str_field(match, "metric") or "value"
        value = _number(match.get("value"))
        lines.append(f"- {md.text(metric)}" + (f" = {md.code(value)}" if value else ""))
    if len(shown) > VALUES_SHOWN:
        lines.append(f"- and {len(shown) - VALUES_SHOWN} more")
    tags = field_at(payload, "tags")
    fields = [Field(str(k), str(v)) for k, v in (tags.items() if isinstance(tags, dict) else ())]
    card = Card(title=name, url=url, state=state, color=color, fields=tuple(fields[:VALUES_SHOWN]))
    return Notice(
        event=event,
        text="\n".join(lines),
        card=card,
        item=f"rule {rule_id}",
        item_card=card,
        default=event in DEFAULT_EVENTS,
        resolved=resolved,
    )


def _render(event_header: str | None, payload: Mapping[str, Any]) -> Notice:
    if "groupKey" not in payload and "ruleId" in payload:
        return _legacy_notice(payload)
    receiver = str_field(payload, "receiver")
    return group_notice(
        payload,
        service=f"Grafana ({receiver})" if receiver else "Grafana",
        url=str_field(payload, "externalURL"),
        alert_extra=_alert_extra,
    )


NOTIFIER = ServiceNotifier(
    name="grafana",
    events=EVENTS,
    default_events=DEFAULT_EVENTS,
    render=_render,
)
