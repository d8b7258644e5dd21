"""CircleCI webhooks as notifications (SPEC §16): a workflow (or a job) that failed opens
a thread for its project, branch and name, and the next success there is its recovery,
posted by default only in that thread; a subscription that names the success's event
takes every success (Zulip shows each completed workflow and job).

The gateway's event is `type` (`workflow-completed`, `job-completed`, `ping`); the names
subscriptions use are `workflow.<status>` and `job.<status>`, the status as CircleCI's
outbound webhooks reference lists it (`failed`, `error`, `canceled`, `unauthorized`; for
jobs also `infrastructure_fail`, `timedout`, `terminated_unknown`, `-` written `_`), a
`success` named `recovered`; and `ping`.

Payloads as https://circleci.com/docs/webhooks-reference/ documents them (`project`,
`workflow`, `job`, `pipeline.vcs`), read defensively.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.providers import commonmark as md
from shared.providers.notify import (
    GRAY,
    GREEN,
    RED,
    Notice,
    Scene,
    Unrenderable,
    any_matches,
    card_of,
    settled,
)
from shared.providers.reading import first_line, integer, obj, text

WORKFLOW_STATUSES = ("recovered", "failed", "error", "canceled", "unauthorized")
JOB_STATUSES = (*WORKFLOW_STATUSES, "infrastructure_fail", "timedout", "terminated_unknown")
FAILED = frozenset(
    {"failed", "error", "unauthorized", "infrastructure_fail", "timedout", "terminated_unknown"}
)
EVENTS: frozenset[str] = frozenset(
    [
        *(f"workflow.{s}" for s in WORKFLOW_STATUSES),
        *(f"job.{s}" for s in JOB_STATUSES),
        "ping",
    ]
)
DEFAULT_EVENTS: tuple[str, ...] = (
    "workflow.failed",
    "workflow.error",
    "workflow.recovered",
)
_WORDS = {
    "recovered": "succeeded",
    "failed": "failed",
    "error": "errored",
    "canceled": "was canceled",
    "unauthorized": "was not authorized to run",
    "infrastructure_fail": "failed (infrastructure)",
    "timedout": "timed out",
    "terminated_unknown": "was terminated",
}


def _completed(c: Scene, noun: str) -> Notice:
    workflow, job = obj(c.payload, "workflow"), obj(c.payload, "job")
    run = job if noun == "job" else workflow
    name = text(run, "name")
    status = text(run, "status")
    if name is None or status is None:
        raise Unrenderable(f"a {noun}-completed without the {noun}'s `name` and `status`")
    status = status.lower().replace("-", "_")
    state = "recovered" if status == "success" else status
    vcs = obj(c.payload, "pipeline", "vcs")
    branch = text(vcs, "branch")
    tag = text(vcs, "tag")
    ref = branch or tag
    number = integer(c.payload, "pipeline", "number")
    url = text(workflow, "url")
    label = name if noun == "workflow" else f"{name} ({text(workflow, 'name') or 'workflow'})"
    on = f" on {md.code(ref)}" if ref else ""
    revision = text(vcs, "revision")
    if revision:
        on += f" ({md.code(revision[:7])})"
    word = _WORDS.get(state, md.text(state))
    line = f"{noun.capitalize()} {md.link(md.text(label), url)} {word}{on}{c.where}"
    if number is not None:
        line += f", pipeline {md.text(f'#{number}')}"
    subject = first_line(text(vcs, "commit", "subject"))
    author = text(vcs, "commit", "author", "name")
    if subject:
        line += f": {md.text(subject)}" + (f" — {md.text(author)}" if author else "")
    event = f"{noun}.{state}"
    item = None
    if c.place and ref:
        item = f"{c.place}@{ref}:{text(workflow, 'name') or name}"
        if noun == "job":
            item += f":{name}"
    card = card_of(
        f"{noun.capitalize()} {label}",
        url,
        status,
        GREEN if status == "success" else RED if status in FAILED else GRAY,
        [
            ("Project", c.place),
            ("Branch", branch),
            ("Tag", tag),
            ("Pipeline", number and f"#{number}"),
        ],
    )
    return Notice(
        event=event,
        text=line,
        card=card,
        item=item,
        item_card=card if item else None,
        default=any_matches(DEFAULT_EVENTS, event),
        branch=branch,
        resolved=False if state in FAILED else True if state == "recovered" else None,
        # By default a success means something only after a failure (its recovery); asked
        # for by name, every completion is news.
        needs_root_by_default=state == "recovered",
    )


class CircleCINotifier:
    name: str = "circleci"
    events: frozenset[str] = EVENTS
    generic_events: frozenset[str] = frozenset()
    default_events: tuple[str, ...] = DEFAULT_EVENTS
    filters: frozenset[str] = frozenset({"branches"})

    def notice(self, event_header: str | None, payload: Mapping[str, Any]) -> Notice:
        if not isinstance(payload, Mapping):
            raise Unrenderable("the payload is not a JSON object")
        kind = text(payload, "type") or (event_header or "").strip()
        c = Scene(
            event=kind,
            payload=payload,
            actor=None,
            place=text(payload, "project", "slug") or text(payload, "project", "name"),
            place_url=None,
        )
        if kind == "workflow-completed":
            return settled(_completed(c, "workflow"))
        if kind == "job-completed":
            return settled(_completed(c, "job"))
        if kind == "ping":
            webhook = text(payload, "webhook", "name") or "a webhook"
            return Notice(event="ping", text=f"CircleCI pinged {md.text(webhook)}{c.where}")
        raise Unrenderable(f"`type` is {kind!r}, not a CircleCI webhook event")


NOTIFIER = CircleCINotifier()
