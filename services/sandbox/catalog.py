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

What became of a sent webhook is said with the answer, since a 200 alone does not: whether
hookhub published it or took it for a redelivery (its `Hookhub-Outcome` header), and what
each of the integration's subscriptions does with the event (the provider's renderer and
the subscriptions' own filters, as sync applies them), so that a filtered event is not a
silence.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import orjson

from services.sandbox.acted import ActedOn
from services.sync.subscriptions.filters import Filters, filtered, filters_of
from shared.kernel.errors import HookhubError
from shared.kernel.http.tls import tls
from shared.kernel.ids import utcnow
from shared.providers.base import OUTCOME_HEADER, InboundRequest, ParsedWebhook
from shared.providers.catalog import CATALOG, Entry, Sample
from shared.providers.declared import Declared, FirstOf, FromHeader
from shared.providers.ids import JsonBody
from shared.providers.notifiers import NOTIFIERS
from shared.providers.notify import Notice
from shared.providers.schemes import AnyOf, Unsignable

# An integration's id as hookhub makes them: what may go into the path of the API call.
_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
# A chat channel's id, as a subscription takes one.
_CHANNEL = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
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

    def __init__(
        self, origin: str, admin_token: str, workspace_id: str, acted: ActedOn | None = None
    ) -> None:
        self.origin = origin.rstrip("/")
        # The stand-ins acted on: the sandbox's own integrations act on them, as its people.
        self.acted = acted
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
                # The one sent when none is named first.
                "samples": samples(entry),
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
        if body.get("fresh") is True:
            sample = self._fresh(entry, sample)
        channel = body.get("channel_id")
        if channel is not None and not (isinstance(channel, str) and _CHANNEL.fullmatch(channel)):
            raise SendRefused(422, "invalid", "channel_id must be a chat channel's id (ch_…)")
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
                await self._subscribed(client, found[0], channel)
                answer = await self._send(client, entry, *found, sample)
                if answer["status"] == 404 and _code(answer) == "unknown_integration":
                    # Deleted in hookhub since the sandbox made it: made again, sent again.
                    self.own.pop(provider, None)
                    made = await self._own(client, entry)
                    await self._subscribed(client, made[0], channel)
                    answer = await self._send(client, entry, *made, sample)
                return answer
            if not isinstance(integration_id, str) or not _ID.fullmatch(integration_id):
                raise SendRefused(
                    422, "invalid", "integration_id must be an integration's id (int_…)"
                )
            users = await self._users(client, entry, integration_id, given)
            await self._subscribed(client, integration_id, channel)
            return await self._send(client, entry, *users, sample)

    def _fresh(self, entry: Entry, sample: Sample | None) -> Sample:
        """The sample as a new item's, made now in the stand-in acted on (its incident, its
        alert, its group), a delivery of its own; 422 for a provider the sandbox acts on no
        stand-in of."""
        rewrite = self.acted.fresh(entry.provider) if self.acted is not None else None
        if rewrite is None:
            raise SendRefused(
                422,
                "invalid",
                f"fresh: the sandbox makes new items of PagerDuty, Opsgenie and Alertmanager, "
                f"not of {entry.name}",
            )
        assert entry.sample is not None
        sent = sample or entry.sample
        stamped = sent.stamped

        def rewritten(raw: bytes, now: datetime) -> bytes:
            raw = stamped(raw, now) if stamped is not None else raw
            return orjson.dumps(rewrite(orjson.loads(raw)))

        headers = _delivered_as(entry, sent.headers, str(uuid.uuid4()))
        return dataclasses.replace(sent, headers=headers, stamped=rewritten)

    async def _subscribed(
        self, client: httpx.AsyncClient, integration_id: str, channel: str | None
    ) -> None:
        """A subscription of the integration posting into `channel` (its default events),
        made unless one is there: what a newcomer would make in the console before the
        event, so that the first send is posted (a second send of a sample is a
        redelivery)."""
        if not channel:
            return
        path = f"/api/integrations/{integration_id}/subscriptions"
        listed = await _call(client.get(path, params={"limit": "100"}))
        if listed.status_code == 200 and any(
            doc["channel_id"] == channel for doc in listed.json()["data"]
        ):
            return
        made = await _call(client.post(path, json={"channel_id": channel}))
        if made.status_code != 201:
            raise SendRefused(
                502,
                "not_subscribed",
                f"hookhub did not subscribe {channel} ({made.status_code}): {made.text[:500]}",
            )

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            verify=tls(),
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
            if self.acted is not None:
                settings |= self.acted.settings(entry.provider)
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
            await self._link(client, entry)
            made = self.own[entry.provider] = (doc["id"], doc["webhook_url"], settings)
            return made

    async def _link(self, client: httpx.AsyncClient, entry: Entry) -> None:
        """The sandbox's people linked to the provider's stand-in, where it acts for a named
        user: what a workspace admin does once for each of its users."""
        if self.acted is None:
            return
        for chat_user, body in self.acted.links(entry.provider):
            answer = await _call(
                client.put(
                    f"/api/account-links/{entry.provider}/{quote(chat_user, safe='')}",
                    params={"workspace_id": self.workspace_id},
                    json=body,
                )
            )
            if answer.status_code not in (200, 201):
                raise SendRefused(
                    502,
                    "not_linked",
                    f"hookhub did not link {chat_user} to {entry.name} "
                    f"({answer.status_code}): {answer.text[:500]}",
                )

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
        parsed = _parsed(entry, url, body, headers, settings)
        sent = sample or entry.sample
        assert sent is not None  # sendable(): every provider here has one
        outcome = answer.headers.get(OUTCOME_HEADER) if answer.is_success else None
        return {
            "provider": entry.provider,
            "integration_id": integration_id,
            "webhook_url": webhook_url,
            "sample": sent.file,
            "event_type": parsed.event_type if parsed is not None else None,
            "status": answer.status_code,
            "outcome": outcome,
            "notification": await self._notification(client, entry, integration_id, parsed)
            if outcome == "accepted"
            else None,
            "answer": _decoded(answer),
            # The signatures shown are the sandbox's own, for its made-up settings or the
            # ones the user gave it.
            "sent_headers": headers,
        }

    async def _notification(
        self,
        client: httpx.AsyncClient,
        entry: Entry,
        integration_id: str,
        parsed: ParsedWebhook | None,
    ) -> dict[str, Any] | None:
        """What sync makes of the event: the notice the provider's renderer gives it, and
        for each of the integration's subscriptions why it leaves it out (None: it posts
        it). None when there is nothing to tell (no renderer, an unreadable event)."""
        if entry.provider not in NOTIFIERS or parsed is None:
            return None
        try:
            notice = _notice(entry, parsed)
        except Exception as exc:  # what sync would report as unrenderable, said here
            return {"event": parsed.event_type, "unrenderable": f"{type(exc).__name__}: {exc}"}
        answer = await _call(
            client.get(f"/api/integrations/{integration_id}/subscriptions", params={"limit": "100"})
        )
        subscriptions = answer.json()["data"] if answer.status_code == 200 else None
        return {
            "event": notice.event,
            "default": notice.default,
            "quiet": notice.quiet,
            "needs_root": notice.needs_root,
            # None: hookhub did not list them (not the sandbox's to read).
            "subscriptions": None
            if subscriptions is None
            else [
                {
                    "id": doc["id"],
                    "channel_id": doc["channel_id"],
                    "left_out": filtered(filters_of(doc), notice),
                }
                for doc in subscriptions
            ],
        }


def samples(entry: Entry) -> list[str]:
    """The samples the sandbox sends of a provider, the one sent when none is named first:
    every file of its folder, or the catalog's alone where the event's name is a header
    (module docstring)."""
    return list(_samples(entry.provider))


@functools.cache
def _samples(provider: str) -> tuple[str, ...]:
    # The first is the catalog's, unless a subscription with the provider's default events
    # leaves it out and posts another (Stripe's `setup_intent.created`, against its
    # `charge.…` samples): a newcomer's first send then shows in the chat, one that starts
    # an item's thread (PagerDuty's incident reopened or triggered) before one that changes it.
    entry = CATALOG[provider]
    assert entry.sample is not None
    catalog = entry.sample.file
    if _names_event_in_header(entry):
        return (catalog,)
    folder = entry.sample.folder(provider)
    others = sorted(
        p.name for p in folder.iterdir() if p.is_file() and p.name not in ("README.md", catalog)
    )
    if posted_by_default(entry, catalog) is None:
        posted = {name: n for name in others if (n := posted_by_default(entry, name))}
        if posted:
            first = min(posted, key=lambda name: (posted[name].resolved is not False, name))
            return (first, *sorted([catalog, *(n for n in others if n != first)]))
    return (catalog, *others)


def posted_by_default(entry: Entry, name: str) -> Notice | None:
    """The notice of the sample `name` if a subscription with the provider's defaults (and
    no filter) posts it into its channel, else None."""
    if entry.provider not in NOTIFIERS:
        return None
    settings = entry.examples()
    url = entry.sender_url(settings, f"https://hookhub.invalid/api/webhooks/{entry.provider}/x")
    try:
        body, headers = entry.signed_sample(settings, url, utcnow(), _as_sent(entry, name))
    except (Unsignable, KeyError, ValueError):
        return None
    parsed = _parsed(entry, url, body, headers, settings)
    if parsed is None:
        return None
    try:
        notice = _notice(entry, parsed)
    except Exception:  # a renderer that fails on a sample: not one to start with
        return None
    return notice if filtered(Filters(), notice) is None and not notice.needs_root else None


def _notice(entry: Entry, parsed: ParsedWebhook) -> Notice:
    """The notice sync renders of the event; what the renderer raises, raised."""
    payload = parsed.payload
    if isinstance(payload, JsonBody):
        payload = payload.decode()
    return NOTIFIERS[entry.provider].notice(parsed.event_type, payload)


def _names_event_in_header(entry: Entry) -> bool:
    # Where the header is read first, it would name the catalog sample's event.
    return isinstance(_options(getattr(entry.webhooks, "event", None))[0], FromHeader)


def _named_sample(entry: Entry, name: Any) -> Sample | None:
    """The sample of the provider's folder named `name` (None: the first of `samples`), as
    the provider would send it (module docstring); None for the catalog's as it is."""
    assert entry.sample is not None
    if name is None:
        name = samples(entry)[0]
    if name == entry.sample.file:
        return None
    if _names_event_in_header(entry):
        raise SendRefused(
            422,
            "invalid",
            f"{entry.name} names the event in a header the sample files do not hold: the "
            "sandbox sends its catalog sample only",
        )
    names = sorted(samples(entry))
    if not isinstance(name, str) or not _SAMPLE.fullmatch(name) or name not in names:
        raise SendRefused(
            422,
            "invalid",
            f"sample must name one of {entry.name}'s samples: {', '.join(names)}",
        )
    return _as_sent(entry, name)


def _as_sent(entry: Entry, name: str) -> Sample:
    """The sample `name` with the catalog sample's headers, a delivery id the provider
    sends in a header made its own."""
    assert entry.sample is not None
    if name == entry.sample.file:
        return entry.sample
    own = str(uuid.uuid5(uuid.NAMESPACE_URL, f"hookhub-sandbox:{entry.provider}/{name}"))
    headers = _delivered_as(entry, entry.sample.headers, own)
    return dataclasses.replace(entry.sample, file=name, headers=headers)


def _delivered_as(entry: Entry, headers: Mapping[str, str], own: str) -> dict[str, str]:
    """`headers` with the delivery id the provider sends in a header, if it does, `own`."""
    options = _options(getattr(entry.webhooks, "delivery_id", None))
    return {
        key: own
        if any(isinstance(o, FromHeader) and o.name == key.lower() for o in options)
        else value
        for key, value in headers.items()
    }


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


def _parsed(
    entry: Entry,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    settings: Mapping[str, str],
) -> ParsedWebhook | None:
    """The event as hookhub reads it from the sample (the first, for a body of several),
    or None when it cannot be read."""
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
        parsed = entry.webhooks.parse(request)
    except HookhubError:
        return None
    return parsed.events[0] if parsed.events else parsed


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
