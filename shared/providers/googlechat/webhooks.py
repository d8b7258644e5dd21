"""Google Chat: the interaction events Chat POSTs to the app's HTTP endpoint, authenticated
by the bearer token in `Authorization` (shared.providers.googlechat.auth says which token,
for which audience setting).

An event (developers.google.com/workspace/chat/api/reference/rest/v1/Event) is a JSON
object whose `type` names it (`MESSAGE`, `ADDED_TO_SPACE`, `REMOVED_FROM_SPACE`,
`CARD_CLICKED`, `WIDGET_UPDATED`, `APP_COMMAND`); a MESSAGE event's delivery id is its
message's name, a CARD_CLICKED's the clicked message, who, which action and when
(`card_click_id`), the others' their type, space and `eventTime`. The answer is `{}`: the
app says nothing in the space in reply (a synchronous reply would be a Message here). For a
card's button clicked (a CARD_CLICKED event on our message) that is the least that answers
it, at once, and leaves the message as it is: a Message with an `actionResponse` of type
NEW_MESSAGE (the default) or UPDATE_MESSAGE would post one or rewrite ours
(developers.google.com/workspace/chat/receive-respond-interactions; ActionResponse.
ResponseType: "UPDATE_MESSAGE … only permitted on a CARD_CLICKED event where the message
sender type is BOT"). The click's outcome reaches the space as the thread reply the click
worker posts.

The audience is the integration's `audience` setting (the Cloud project number, or the URL
given to Chat), else the URL the request was made to (`{webhook_url}`), without a query.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import httpx

from shared.kernel.errors import Unavailable
from shared.kernel.settings import Settings
from shared.providers.base import InboundRequest, MalformedWebhook, ParsedWebhook, Reply
from shared.providers.googlechat.auth import (
    CHAT_ISSUER,
    Certs,
    Endpoints,
    bearer_names,
    verify_bearer,
)
from shared.providers.googlechat.messages import CARD_CLICKED, card_click_id
from shared.providers.googlechat.network import endpoints
from shared.providers.ids import decode_json_object

AUDIENCE = "audience"


class GoogleChatWebhooks:
    name: str = "googlechat"
    max_body_bytes: int = 1024 * 1024
    secret_fields: tuple[str, ...] = ()  # a public key verifies; nothing of ours is secret
    handshake_methods: tuple[str, ...] = ()
    delivery_id_header: str | None = None

    def __init__(self, endpoints: Endpoints | None = None, certs: Certs | None = None) -> None:
        # Google's own URLs; the sandbox's wiring points them at the stand-in.
        self.endpoints = endpoints or Endpoints()
        self.certs = certs or Certs()
        self._client: httpx.AsyncClient | None = None

    def handshake(self, request: InboundRequest, secrets: Mapping[str, str] | None) -> Reply | None:
        return None

    def audience(self, request: InboundRequest, settings: Mapping[str, str]) -> str:
        """The setting, else the URL called without its query: Google's sample takes
        Flask's `request.base_url` (googleworkspace/google-chat-samples,
        python/user-auth-app/request_verifier.py)."""
        return settings.get(AUDIENCE) or request.url.partition("?")[0]

    def start(self, settings: Settings, client: httpx.AsyncClient) -> None:
        """The gateway's settings say where the certificates are; `client` fetches them."""
        self.endpoints = endpoints(settings)
        self._client = client

    async def prepare(self, request: InboundRequest) -> None:
        """The certificates of the issuer the token names at hand before `verify`: kept for
        their max-age, fetched again for a key the kept ones lack (Google rotated its keys)
        at most once a minute. A token of no issuer is left to `verify` to refuse."""
        if self._client is None:
            raise Unavailable("Google Chat's certificates have no HTTP client (not started)")
        issuer, key_id = bearer_names(request.header("authorization"))
        if issuer is None:
            return
        url = (
            self.endpoints.chat_certs_url
            if issuer == CHAT_ISSUER
            else self.endpoints.oauth2_certs_url
        )
        await self.certs.load(self._client, url)
        if key_id and not self.certs.has_key(url, key_id) and self.certs.may_refetch(url):
            await self.certs.load(self._client, url, force=True)

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        """Against the certificates `prepare` had at hand: nothing is fetched here."""
        audience = self.audience(request, secrets)
        verify_bearer(request.header("authorization"), audience, self.certs, self.endpoints)

    def parse(self, request: InboundRequest) -> ParsedWebhook:
        body = decode_json_object(request.body)
        event_type = body.get("type")
        if not isinstance(event_type, str) or not event_type:
            raise MalformedWebhook("a Google Chat event names its `type`")
        message = body.get("message")
        name = message.get("name") if isinstance(message, Mapping) else None
        if event_type == "MESSAGE":
            if not isinstance(name, str) or not name:
                raise MalformedWebhook("a MESSAGE event carries a message with a `name`")
            delivery_id = name
        elif event_type == CARD_CLICKED:
            delivery_id = f"{CARD_CLICKED}:{card_click_id(body)}"
        else:
            space = body.get("space")
            space_name = space.get("name") if isinstance(space, Mapping) else None
            delivery_id = f"{event_type}:{space_name or ''}:{body.get('eventTime') or ''}"
        return ParsedWebhook(
            event_type=event_type, delivery_id=delivery_id, payload=body, reply=Reply(200, {})
        )


WEBHOOKS = GoogleChatWebhooks()
