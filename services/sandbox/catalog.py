"""Every catalog provider's webhook, sent by the sandbox (SPEC §15): the provider's documented
sample, signed as the provider signs it for an integration's `webhook_url`, POSTed to hookhub.

An integration of the sandbox's own (one per provider, in the sandbox's workspace, made on
first use with the catalog's example settings and remembered in memory), or a user's, whose
settings the user gives: hookhub never returns a secret, so the sandbox cannot read them.

Another sample of the provider's folder may be named (`sample`: `firing.json`, then
`resolved.json`, to watch an alert's thread resolve): sent with the catalog sample's
headers, except that a delivery id the provider sends in a header is the named sample's own
(each sample is its own delivery; the same one sent again is a redelivery). Not for a
provider that names the event in a header: the sample files do not hold it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson

from shared.errors import HookhubError
from shared.ids import utcnow
from shared.providers.base import InboundRequest
from shared.providers.catalog import CATALOG, Entry, Sample
from shared.providers.declared import Declared, FirstOf, FromHeader
from shared.providers.schemes import AnyOf, Unsignable

# An integration's id as hookhub makes them: what may go into the path of the API call.
_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
# A sample's file name in its provider's folder (no path).
_SAMPLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}")


class SendRefused(Exception):
    """What the sandbox answers instead of sending: `status`, `code` and why, in words."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def sendable() -> dict[str, Entry]:
    """The catalog providers whose webhooks the sandbox can send: declared, with a sample."""
    return {
        name: entry
        for name, entry in CATALOG.items()
        if isinstance(entry.webhooks, Declared) and entry.sample is not None
    }


class CatalogWebhooks:
    """Sends the catalog's samples to hookhub at `origin` (where the sandbox reaches it),
    making its own integrations with `admin_token` in `workspace_id`."""

    def __init__(self, origin: str, admin_token: str, workspace_id: str) -> None:
        self.origin = origin.rstrip("/")
        self.admin_token = admin_token
        self.workspace_id = workspace_id
        # provider → (integration id, webhook URL, the settings it was made with)
        self.own: dict[str, tuple[str, str, dict[str, str]]] = {}
        self._making = asyncio.Lock()  # two first sends of a provider make one integration

    def listing(self) -> list[dict[str, Any]]:
        return [
            {
                "provider": name,
                "name": entry.name,
                "category": entry.category,
                "settings": [
                    {"name": s.name, "secret": s.secret, "required": s.required}
                    for s in entry.settings
                ],
                "integration_id": self.own[name][0] if name in self.own else None,
            }
            for name, entry in sendable().items()
        ]

    async def send(self, provider: str, body: Mapping[str, Any]) -> dict[str, Any]:
        entry = sendable().get(provider)
        if entry is None:
            raise SendRefused(
                404,
                "not_found",
                f"the sandbox sends no {provider!r} webhook; GET /sandbox/api/webhooks lists "
                "the providers it sends",
            )
        integration_id = body.get("integration_id")
        given = _settings(body.get("settings"))
        sample = _named_sample(entry, body.get("sample"))
        async with self._client() as client:
            if integration_id is None or integration_id == "":
                if given is not None:
                    raise SendRefused(
                        422,
                        "invalid",
                        "settings go with an integration_id: the sandbox's own integration "
                        "has the settings it was made with",
                    )
                found = await self._own(client, entry)
                answer = await self._send(client, entry, *found, sample)
                if answer["status"] == 404 and _code(answer) == "unknown_integration":
                    # Deleted in hookhub since the sandbox made it: made again, sent again.
                    self.own.pop(provider, None)
                    made = await self._own(client, entry)
                    answer = await self._send(client, entry, *made, sample)
                return answer
            if not isinstance(integration_id, str) or not _ID.fullmatch(integration_id):
                raise SendRefused(
                    422, "invalid", "integration_id must be an integration's id (int_…)"
                )
            return await self._send(
                client, entry, *await self._users(client, entry, integration_id, given), sample
            )

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.origin,
            timeout=10.0,
            headers={"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {},
        )

    async def _own(
        self, client: httpx.AsyncClient, entry: Entry
    ) -> tuple[str, str, dict[str, str]]:
        async with self._making:
            made = self.own.get(entry.provider)
            if made is not None:
                return made
            if not self.admin_token:
                raise SendRefused(
                    409,
                    "no_admin_token",
                    "the sandbox has no admin token to make an integration with: give the "
                    "integration_id of yours and its settings",
                )
            settings = entry.examples()
            answer = await _call(
                client.post(
                    "/api/integrations",
                    json={
                        "provider": entry.provider,
                        "workspace_id": self.workspace_id,
                        "name": f"{entry.name} (sandbox)",
                        "settings": settings,
                    },
                )
            )
            if answer.status_code != 201:
                raise SendRefused(
                    502,
                    "not_made",
                    f"hookhub did not make the sandbox's {entry.name} integration "
                    f"({answer.status_code}): {answer.text[:500]}",
                )
            doc = answer.json()
            made = self.own[entry.provider] = (doc["id"], doc["webhook_url"], settings)
            return made

    async def _users(
        self,
        client: httpx.AsyncClient,
        entry: Entry,
        integration_id: str,
        given: dict[str, str] | None,
    ) -> tuple[str, str, dict[str, str]]:
        """A user's integration: its URL and non-secret settings from hookhub, its secrets
        from the user."""
        if given is None:
            raise SendRefused(
                422,
                "settings_required",
                f"give the settings integration {integration_id} was made with (settings: "
                "{name: value}): hookhub never returns a secret, so the sandbox cannot sign "
                "for it without them",
            )
        answer = await _call(client.get(f"/api/integrations/{integration_id}"))
        if answer.status_code == 404:
            raise SendRefused(404, "not_found", f"hookhub has no integration {integration_id}")
        if answer.status_code != 200:
            raise SendRefused(
                502,
                "not_read",
                f"hookhub did not show integration {integration_id} ({answer.status_code}): "
                f"{answer.text[:500]}",
            )
        doc = answer.json()
        if doc["provider"] != entry.provider or not doc.get("webhook_url"):
            raise SendRefused(
                422,
                "invalid",
                # No article: "a alertmanager integration" (a provider's name may start
                # with a vowel).
                f"integration {integration_id} takes {doc['provider']} webhooks, not "
                f"{entry.provider}'s",
            )
        settings = {**doc.get("config", {}), **given}
        assert isinstance(entry.webhooks, Declared)
        scheme = entry.webhooks.scheme
        # A sender offering several ways (GitLab's token or signing token) needs only the
        # one the integration was made with.
        if not scheme.configured(settings):
            missing = [n for n in entry.webhooks.secret_fields if n not in settings]
            joined = " or ".join(missing) if isinstance(scheme, AnyOf) else ", ".join(missing)
            raise SendRefused(
                422,
                "settings_required",
                f"{entry.name} signs with {joined}: give the value(s) integration "
                f"{integration_id} was made with",
            )
        return integration_id, doc["webhook_url"], settings

    async def _send(
        self,
        client: httpx.AsyncClient,
        entry: Entry,
        integration_id: str,
        webhook_url: str,
        settings: dict[str, str],
        sample: Sample | None = None,
    ) -> dict[str, Any]:
        now = utcnow()
        url = entry.sender_url(settings, webhook_url)
        try:
            body, headers = entry.signed_sample(settings, url, now, sample)
        except Unsignable as exc:
            raise SendRefused(422, "unsignable", f"{entry.name}: {exc}") from None
        except (KeyError, ValueError) as exc:  # a setting the scheme cannot use
            raise SendRefused(
                422, "invalid", f"{entry.name} cannot sign with these settings: {exc!r}"
            ) from None
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        answer = await _call(client.post(path, content=body, headers=headers))
        return {
            "provider": entry.provider,
            "integration_id": integration_id,
            "webhook_url": webhook_url,
            "event_type": _event_type(entry, url, body, headers, settings),
            "status": answer.status_code,
            "answer": _decoded(answer),
            # The signatures shown are the sandbox's own, for its made-up settings or the
            # ones the user gave it.
            "sent_headers": headers,
        }


def _named_sample(entry: Entry, name: Any) -> Sample | None:
    """The sample of the provider's folder named `name` (None: the catalog's), as the
    provider would send it (module docstring)."""
    if name is None or entry.sample is None or name == entry.sample.file:
        return None
    # Where the header is read first, it would name the catalog sample's event.
    if isinstance(_options(getattr(entry.webhooks, "event", None))[0], FromHeader):
        raise SendRefused(
            422,
            "invalid",
            f"{entry.name} names the event in a header the sample files do not hold: the "
            "sandbox sends its catalog sample only",
        )
    folder = entry.sample.folder(entry.provider)
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != "README.md")
    if not isinstance(name, str) or not _SAMPLE.fullmatch(name) or name not in names:
        raise SendRefused(
            422,
            "invalid",
            f"sample must name one of {entry.name}'s samples: {', '.join(names)}",
        )
    options = _options(getattr(entry.webhooks, "delivery_id", None))
    own = str(uuid.uuid5(uuid.NAMESPACE_URL, f"hookhub-sandbox:{entry.provider}/{name}"))
    headers = {
        key: own
        if any(isinstance(o, FromHeader) and o.name == key.lower() for o in options)
        else value
        for key, value in entry.sample.headers.items()
    }
    return dataclasses.replace(entry.sample, file=name, headers=headers)


def _options(locator: Any) -> tuple[Any, ...]:
    """Where a declared value may be (each place of a `FirstOf`)."""
    return locator.options if isinstance(locator, FirstOf) else (locator,)


async def _call(request: Any) -> httpx.Response:
    try:
        answer: httpx.Response = await request
    except httpx.HTTPError as exc:
        raise SendRefused(502, "not_delivered", f"hookhub did not answer: {exc!r}") from None
    return answer


def _settings(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise SendRefused(422, "invalid", "settings must be an object of strings")
    return value


def _event_type(
    entry: Entry,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    settings: Mapping[str, str],
) -> str | None:
    """The event's name as hookhub reads it from the sample (the first, for a body of
    several), or None when it cannot be read."""
    assert isinstance(entry.webhooks, Declared)
    config = {
        s.name: settings[s.name] for s in entry.settings if not s.secret and s.name in settings
    }
    request = InboundRequest(
        headers={k.lower(): v for k, v in headers.items()},
        body=body,
        received_at=utcnow(),
        query=dict(parse_qsl(urlsplit(url).query, keep_blank_values=True)),
        url=url,
        config=config,
    )
    try:
        return entry.webhooks.parse(request).event_type
    except HookhubError:
        return None


def _decoded(answer: httpx.Response) -> Any:
    if answer.headers.get("content-type", "").startswith("application/json"):
        try:
            return orjson.loads(answer.content)
        except orjson.JSONDecodeError:
            pass
    return answer.text


def _code(answer: Mapping[str, Any]) -> str | None:
    body = answer.get("answer")
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return str(code) if code is not None else None
    return None
