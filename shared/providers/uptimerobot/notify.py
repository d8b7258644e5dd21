"""UptimeRobot's webhook alert contact as notifications (SPEC §16): one thread per monitor,
down then up again.

The body is the user's own template, UptimeRobot's `*variables*` substituted; hookhub's
setup gives one (shared.providers.uptimerobot.catalog.TEMPLATE: `monitor_id`, `monitor_url`,
`monitor_friendly_name`, `alert_type`, `alert_type_friendly_name`, `alert_details`,
`alert_friendly_duration`, `alert_duration`, `alert_datetime`), and Zulip's earlier one
names them as UptimeRobot does (`monitorID`, `alertTypeFriendlyName`, …): both are read. A
variable UptimeRobot has no value for is left as written (`*alertFriendlyDuration*`), and
counts as absent.

The item is the monitor (`monitor_id`; a template without it threads on the monitor's URL,
else its name). `alert_type` 1 (Down) opens it, 2 (Up) ends it; other alerts (an SSL
certificate about to expire) leave it as it was. The event is the friendly alert type in
lower case (`down`, `up`: the catalog's names). On Up, the outage ended at the alert's
time and began the alert's duration before it, where the template has both.

Checked against UptimeRobot's "Webhook Integration" help page and Zulip's captures; samples
in ./samples.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from shared.providers import commonmark as md
from shared.providers.notify import (
    GRAY,
    GREEN,
    RED,
    Card,
    Field,
    Notice,
    ServiceNotifier,
    Unrenderable,
    when,
)
from shared.providers.uptimerobot.catalog import ENTRY

EVENTS: frozenset[str] = frozenset(name.lower() for name in ENTRY.events)
DEFAULT_EVENTS: tuple[str, ...] = ("down", "up")
# `alertType`: 1 down, 2 up.
ALERT_TYPES = {"1": ("down", RED, False), "2": ("up", GREEN, True)}
# Each value by hookhub's template's name, and by UptimeRobot's own (Zulip's earlier one).
NAMES = {
    "monitor_id": "monitorID",
    "monitor_url": "monitorURL",
    "monitor_friendly_name": "monitorFriendlyName",
    "alert_type": "alertType",
    "alert_type_friendly_name": "alertTypeFriendlyName",
    "alert_details": "alertDetails",
    "alert_friendly_duration": "alertFriendlyDuration",
    "alert_duration": "alertDuration",
    "alert_datetime": "alertDateTime",
}
_UNSET = re.compile(r"^\*[A-Za-z]+\*$")
EVENT_CHARS = 80


def _value(payload: Mapping[str, Any], name: str) -> str | None:
    """A template's value, by either name; an unsubstituted `*variable*` is absent."""
    for key in (name, NAMES[name]):
        found = payload.get(key)
        if isinstance(found, int) and not isinstance(found, bool):
            return str(found)
        if isinstance(found, str) and found.strip() and not _UNSET.match(found.strip()):
            return found.strip()
    return None


def _alerted(payload: Mapping[str, Any]) -> datetime | None:
    """The alert's own time (`alert_datetime`, seconds since the epoch)."""
    at = _value(payload, "alert_datetime")
    return when(int(at)) if at and at.isdigit() else when(at)


def _started(payload: Mapping[str, Any], state: str | None) -> datetime | None:
    """When the outage began: a Down alert's time, or an Up alert's time less its duration."""
    moment = _alerted(payload)
    if moment is None or state not in ("down", "up"):
        return None
    if state == "down":
        return moment
    seconds = _value(payload, "alert_duration")
    return moment - timedelta(seconds=int(seconds)) if seconds and seconds.isdigit() else None


def _render(event_header: str | None, payload: Mapping[str, Any]) -> Notice:
    name = _value(payload, "monitor_friendly_name")
    url = _value(payload, "monitor_url")
    item = _value(payload, "monitor_id") or url or name
    if item is None:
        raise Unrenderable("the monitor is not named (`monitor_id`, `monitor_url`)")
    alert_type = _value(payload, "alert_type")
    friendly = _value(payload, "alert_type_friendly_name") or (event_header or "").strip()
    state, color, resolved = ALERT_TYPES.get(alert_type or "", (None, GRAY, None))
    if state is None and friendly.lower() in ("down", "up"):
        state, color, resolved = ALERT_TYPES["1" if friendly.lower() == "down" else "2"]
    event = (state or friendly.lower() or "alert")[:EVENT_CHARS]
    title = name or url or f"Monitor {item}"
    details = _value(payload, "alert_details")
    duration = _value(payload, "alert_friendly_duration")
    heading = md.link(f"**{md.text(title)}**", url)
    if state == "down":
        head = f"{heading} is down"
    elif state == "up":
        head = f"{heading} is up again"
    else:
        head = f"{heading}: {md.text(friendly or 'alert')}"
    if details:
        head += f": {md.text(details)}"
    if state == "up" and duration:
        head += f" · down for {md.text(duration)}"
    lines = [head]
    if url and md.safe_url(url) is None:  # a host or an address, not a link
        lines.append(f"Monitor: {md.code(url)}")
    pairs = [
        ("Monitor", url),
        ("Details", details),
        ("Down for" if state == "up" else "Duration", duration),
    ]
    card = Card(
        title=title,
        url=url,
        state=state or friendly or None,
        color=color,
        fields=tuple(Field(k, v) for k, v in pairs if v),
    )
    return Notice(
        event=event,
        text="\n".join(lines),
        card=card,
        item=item,
        item_card=card if state is not None else None,
        default=event in DEFAULT_EVENTS,
        resolved=resolved,
        started_at=_started(payload, state),
        ended_at=_alerted(payload) if state == "up" else None,
    )


NOTIFIER = ServiceNotifier(
    name="uptimerobot",
    events=EVENTS,
    default_events=DEFAULT_EVENTS,
    render=_render,
)
