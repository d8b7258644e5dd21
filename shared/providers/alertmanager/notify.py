"""Alertmanager's notifications as chat messages (SPEC §16): one thread per alert group,
its root turning from firing to resolved.

A webhook is one group (`groupKey`: the route and the labels it groups by) with its `status`
(`firing` while any alert of it fires, `resolved` once all have) and every alert of it
(`alerts`, each with its own status, labels, annotations, `startsAt`, `endsAt` and
`generatorURL`). The item is the group, so a group's firing, its changes and its resolution
are one thread; its state is the group's status; it began with its first alert's `startsAt`
and, resolved, ended with its last alert's `endsAt`. Each alert is a line: its name, what it
says (its `summary` and `description` annotations, else `message`; what every alert of the
group says is quoted once above them) and the labels that tell it apart from the others
(those not common to the group), linked to its source; the labels the group shares are the
card's fields.

Payload version 4, as https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
documents it. Grafana's alerting webhooks are this format with more fields
(shared.providers.grafana.notify reuses `group_notice`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.providers import commonmark as md
from shared.providers.ids import field_at, str_field
from shared.providers.notify import (
    GREEN,
    RED,
    YELLOW,
    Card,
    Field,
    Notice,
    ServiceNotifier,
    Unrenderable,
    when,
)

EVENTS = frozenset({"firing", "resolved"})
# Alerts listed in one message; the rest are counted ("and 12 more").
ALERTS_SHOWN = 20
# Labels shown as the card's fields, and beside each alert.
LABELS_SHOWN = 8
STATE_COLORS = {"firing": RED, "resolved": GREEN}
# Labels that say where an alert is: shown first.
FIRST_LABELS = ("severity", "environment", "env", "cluster", "namespace", "service", "job")


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str | int | float)}


def _ordered(labels: Mapping[str, str], skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    first = [(k, labels[k]) for k in FIRST_LABELS if k in labels and k not in skip]
    rest = sorted((k, v) for k, v in labels.items() if k not in FIRST_LABELS and k not in skip)
    return (first + rest)[:LABELS_SHOWN]


def _said(annotations: Any, besides: tuple[str, ...] = ()) -> tuple[str, ...]:
    """What an alert says of itself: its `summary` and its `description` (the annotations
    Prometheus's and Grafana's rules conventionally write), else its `message`; each once,
    leaving out what is in `besides` (the group's common ones, said once above)."""
    if not isinstance(annotations, dict):
        return ()
    said: list[str] = []
    for key in ("summary", "description", "message"):
        value = annotations.get(key)
        if key == "message" and said:
            break
        if isinstance(value, str) and value.strip() and value not in said:
            said.append(value)
    return tuple(value for value in said if value not in besides)


# What a sender adds to an alert's line (Grafana: its values and links), as CommonMark.
AlertExtra = Callable[[Mapping[str, Any]], list[str]]


def _alert_line(
    alert: Mapping[str, Any],
    common: Mapping[str, str],
    common_said: tuple[str, ...],
    url_key: str,
    extra: AlertExtra | None = None,
) -> str:
    labels = _labels(alert.get("labels"))
    name = labels.get("alertname") or "alert"
    head = md.link(f"**{md.text(name)}**", alert.get(url_key))
    if str_field(alert, "status") == "resolved":
        head += " (resolved)"
    own = _said(alert.get("annotations"), besides=common_said)
    if own:
        head += ": " + " — ".join(md.text(value) for value in own)
    apart = [(k, v) for k, v in _ordered(labels, ("alertname",)) if common.get(k) != v]
    if apart:
        head += " · " + ", ".join(f"{md.text(k)}={md.text(v)}" for k, v in apart)
    if extra is not None:
        head += "".join(f" · {part}" for part in extra(alert) if part)
    return f"- {head}"


def group_notice(
    payload: Mapping[str, Any],
    *,
    service: str,
    url: str | None,
    alert_url_key: str = "generatorURL",
    title: str | None = None,
    alert_extra: AlertExtra | None = None,
) -> Notice:
    """An Alertmanager-format group (Alertmanager's, Grafana's) rendered: its item is
    `groupKey`, its state `status`; `url` is where the group is seen (Alertmanager's
    `externalURL`, Grafana's alert rule); `alert_url_key` each alert's link;
    `alert_extra` what a sender adds to each alert's line (Grafana's values and links).
    Alerts the sender left out (`truncatedAlerts`) are counted with those not shown."""
    status = str_field(payload, "status")
    if status not in EVENTS:
        raise Unrenderable(f"`status` is {status!r}, not firing or resolved")
    group_key = str_field(payload, "groupKey")
    if group_key is None:
        raise Unrenderable("`groupKey` is missing")
    listed = payload.get("alerts")
    alerts = [a for a in listed if isinstance(a, dict)] if isinstance(listed, list) else []
    common = _labels(payload.get("commonLabels"))
    group_labels = _labels(payload.get("groupLabels"))
    firing = sum(1 for a in alerts if str_field(a, "status") == "firing")
    name = (
        title
        or " ".join(group_labels.values())
        or common.get("alertname")
        or next((_labels(a.get("labels")).get("alertname") for a in alerts), None)
        or "alerts"
    )
    counted = f"{status.upper()}:{firing}" if status == "firing" else status.upper()
    heading = f"[{counted}] {name}"
    common_said = _said(payload.get("commonAnnotations"))
    lines = [md.link(f"**{md.text(heading)}**", url) + f" · {md.text(service)}"]
    if common_said:
        lines.append(md.quote("\n\n".join(common_said)))
    lines += [
        _alert_line(a, common, common_said, alert_url_key, alert_extra)
        for a in alerts[:ALERTS_SHOWN]
    ]
    truncated = field_at(payload, "truncatedAlerts")
    left_out = max(len(alerts) - ALERTS_SHOWN, 0) + (
        truncated if type(truncated) is int and truncated > 0 else 0
    )
    if left_out:
        lines.append(f"- and {left_out} more")
    resolved_count = len(alerts) - firing
    fields = [Field(k, v) for k, v in _ordered(common, ("alertname",))]
    fields.append(
        Field(
            "Alerts",
            f"{firing} firing" + (f", {resolved_count} resolved" if resolved_count else ""),
        )
    )
    card = Card(
        title=heading,
        url=md.safe_url(url),
        state=status,
        color=STATE_COLORS.get(status, YELLOW),
        fields=tuple(fields),
    )
    starts = [t for a in alerts if (t := when(a.get("startsAt"))) is not None]
    # A firing alert's `endsAt` is when it will be taken as resolved if not seen again (a
    # guess ahead); a resolved one's is when it resolved. The group ended with its last.
    ends = [
        t
        for a in alerts
        if str_field(a, "status") == "resolved" and (t := when(a.get("endsAt"))) is not None
    ]
    return Notice(
        event=status,
        text="\n".join(lines),
        card=card,
        item=group_key,
        item_card=card,
        default=True,
        resolved=status == "resolved",
        started_at=min(starts) if starts else None,
        ended_at=max(ends) if ends and status == "resolved" else None,
        # What a silence of the group matches (shared.providers.alertmanager.acting): the
        # labels the route grouped by, or, grouped by none, those its alerts share; and
        # where the group's Alertmanager (or Grafana) is.
        item_ref={
            "labels": group_labels or common,
            "external_url": str_field(payload, "externalURL"),
        },
    )


def _render(event_header: str | None, payload: Mapping[str, Any]) -> Notice:
    receiver = field_at(payload, "receiver")
    service = (
        f"Alertmanager ({receiver})" if isinstance(receiver, str) and receiver else "Alertmanager"
    )
    return group_notice(payload, service=service, url=str_field(payload, "externalURL"))


NOTIFIER = ServiceNotifier(
    name="alertmanager",
    events=EVENTS,
    default_events=("firing", "resolved"),
    render=_render,
)
