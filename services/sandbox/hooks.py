"""What the GitHub and Jira stand-ins share to send webhooks: the POST, the record of one
delivery as the providers' "Recent deliveries" show it, and the refusal of an event the
stand-in cannot send."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Coroutine, Mapping, MutableSequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import structlog
from starlette.background import BackgroundTask

from shared.kernel.http.tls import tls

# How much of an answer a delivery keeps, and how long a POST may take (GitHub gives up
# after 10 s).
EXCERPT = 1000
TIMEOUT = 10.0
# How many deliveries a hook keeps (GitHub keeps three days' worth).
KEPT = 100


class EventRefused(ValueError):
    """The stand-in cannot send the event asked for: an unknown event, repository, project,
    user or item, a parameter the event does not take, or an action the item's state forbids
    (merging a closed pull request). The message says which."""


# The JSON types of the events' parameters, by name, in both stand-ins.
_TEXT = [
    "title",
    "body",
    "user",
    "head",
    "base",
    "state",
    "reason",
    "branch",
    "repository",
    "summary",
    "description",
    "issue_type",
    "priority",
    "assignee",
    "status",
    "key",
    "project",
]
PARAM_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(_TEXT, (str,)),
    "number": (int,),
    "draft": (bool,),
    "labels": (list, tuple),
    "commits": (str, list, tuple),
}


def bind(event: str, handler: Callable[..., Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The event's parameters as its handler takes them, as a JSON API would pass them: None
    means the default, a number may come as a string of digits. A parameter the event does
    not take, or one of the wrong type, is refused."""
    given = {key: value for key, value in params.items() if value is not None}
    number = given.get("number")
    if isinstance(number, str) and number.isdigit():
        given["number"] = int(number)
    try:
        inspect.signature(handler).bind(**given)
    except TypeError as error:
        raise EventRefused(f"{event}: {error}") from None
    for key, value in given.items():
        kinds = PARAM_TYPES.get(key, (object,))
        wrong = not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        if isinstance(value, list | tuple) and not all(isinstance(v, str) for v in value):
            wrong = True
        if wrong:
            names = " or ".join(
                dict.fromkeys(
                    "a list of strings" if k in (list, tuple) else k.__name__ for k in kinds
                )
            )
            raise EventRefused(f"{event}: {key} must be {names}")
    return given


@dataclass
class Delivery:
    """One POST of a webhook to a hook's URL, and what came back."""

    id: int
    guid: str  # GitHub's X-GitHub-Delivery, Jira's X-Atlassian-Webhook-Identifier
    hook_id: int
    event: str  # GitHub's X-GitHub-Event, Jira's webhookEvent
    action: str | None
    url: str
    delivered_at: datetime
    request_headers: dict[str, str]
    request_body: bytes
    redelivery: bool = False
    status_code: int | None = None  # None: no HTTP answer
    status: str = ""  # "OK", "Invalid HTTP Response: 500", "failed to connect to host", ...
    response_body: str = ""
    duration: float = 0.0
    payload: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def summary(self) -> dict[str, Any]:
        """JSON-able, without the request body: what a deliveries list shows."""
        return {
            "id": self.id,
            "guid": self.guid,
            "hook_id": self.hook_id,
            "event": self.event,
            "action": self.action,
            "url": self.url,
            "delivered_at": self.delivered_at.isoformat().replace("+00:00", "Z"),
            "redelivery": self.redelivery,
            "status_code": self.status_code,
            "status": self.status,
            "ok": self.ok,
            "duration": round(self.duration, 3),
            "response_body": self.response_body,
        }


async def post(delivery: Delivery) -> Delivery:
    """POST the delivery's body with its headers; what came back (or why nothing did) is
    recorded on it, never raised."""
    started = time.monotonic()
    try:
        # No proxy from the environment: the stand-ins post to loopback.
        async with httpx.AsyncClient(verify=tls(), timeout=TIMEOUT, trust_env=False) as client:
            answer = await client.post(
                delivery.url, content=delivery.request_body, headers=delivery.request_headers
            )
    except httpx.TimeoutException:
        delivery.status = "timed out"
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        delivery.status = f"failed to connect to host ({type(error).__name__})"
    else:
        delivery.status_code = answer.status_code
        delivery.status = "OK" if delivery.ok else f"Invalid HTTP Response: {answer.status_code}"
        delivery.response_body = answer.text[:EXCERPT]
    delivery.duration = time.monotonic() - started
    return delivery


class Pending:
    """Deliveries an API call starts (GitHub's ping of a new hook, the webhook about an issue
    the API created), sent once the call's answer has gone out, as the providers do."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def later(self, work: Callable[[], Coroutine[Any, Any, Any]]) -> BackgroundTask:
        async def run() -> None:
            task = asyncio.create_task(work())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return BackgroundTask(run)

    async def settled(self) -> None:
        """Wait until every delivery started this way has been answered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def record(
    provider: str,
    kept: MutableSequence[Delivery],
    hook_deliveries: MutableSequence[Delivery] | None,
    delivery: Delivery,
) -> None:
    """Keep a delivery in the stand-in's list and its hook's (None: the hook is gone since),
    and log it."""
    kept.append(delivery)
    if hook_deliveries is not None:
        hook_deliveries.append(delivery)
    structlog.get_logger(__name__).info(
        "sandbox_webhook_delivered",
        provider=provider,
        webhook=delivery.event,
        action=delivery.action,
        url=delivery.url,
        status=delivery.status,
    )
