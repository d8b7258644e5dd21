"""A slash command's response URL (Slack's, Mattermost's): where the network takes later
answers to one command, a URL that is its own credential, good for a while and a few
answers (Slack: five within 30 minutes, docs.slack.dev/interactivity/
implementing-slash-commands; Mattermost the same, developers.mattermost.com/integrate/
slash-commands/). The caller checks the URL is the network's before it sends anything."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from shared.providers.chat import PermanentError, ProviderUnreachable, RateLimited

# When a 429 says nothing about how long to wait.
DEFAULT_RETRY_AFTER = 1.0


async def respond(client: httpx.AsyncClient, url: str, body: Mapping[str, Any], what: str) -> None:
    """POST `body` (JSON) to a response URL. A 429 is RateLimited, no answer or a 5xx
    ProviderUnreachable; any other refusal (expired, used up) concerns this answer only."""
    try:
        answer = await client.post(
            url,
            content=orjson.dumps(dict(body)),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
    except httpx.HTTPError as exc:
        raise ProviderUnreachable(f"{what}: no answer ({type(exc).__name__})") from exc
    if answer.status_code == 429:
        try:
            wait = max(0.0, float(answer.headers.get("retry-after", "")))
        except ValueError:
            wait = DEFAULT_RETRY_AFTER
        raise RateLimited(f"{what} answered 429", wait)
    if answer.status_code >= 500:
        raise ProviderUnreachable(f"{what} answered {answer.status_code}")
    if answer.status_code >= 400:
        raise PermanentError(
            f"{what} refused the answer: HTTP {answer.status_code}",
            f"http_{answer.status_code}",
            "message",
        )
