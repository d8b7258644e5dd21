"""Google Chat: the interaction events Chat POSTs to the app's HTTP endpoint, authenticated
by the bearer token in `Authorization` (shared.providers.googlechat.auth says which token,
for which audience setting).

An event (developers.google.com/workspace/chat/api/reference/rest/v1/Event) is a JSON
object whose `type` names it (`MESSAGE`, `ADDED_TO_SPACE`, `REMOVED_FROM_SPACE`,
`CARD_CLICKED`, `WIDGET_UPDATED`, `APP_COMMAND`); a MESSAGE event's delivery id is its
message's name, the others' their type, space and `eventTime`. The answer is `{}`: the app
says nothing in the space in reply (a synchronous reply would be a Message here).

The audience is the integration's `audience` setting (the Cloud project number, or the URL
given to Chat), else the URL the request was made to (`{webhook_url}`), without a query.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from shared.providers.base import InboundRequest, MalformedWebhook, ParsedWebhook, Reply
from shared.providers.googlechat.auth import Certs, Endpoints, UnknownKey, verify_bearer
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

    def handshake(self, request: InboundRequest, secrets: Mapping[str, str] | None) -> Reply | None:
        return None

    def audience(self, request: InboundRequest, settings: Mapping[str, str]) -> str:
        """The setting, else the URL called without its query: Google's sample takes
        Flask's `request.base_url` (googleworkspace/google-chat-samples,
        python/user-auth-app/request_verifier.py)."""
        return settings.get(AUDIENCE) or request.url.partition("?")[0]

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        """The certificates are kept for their max-age; when none are kept (nobody called
        `certs.load` ahead), they are fetched here, blocking this call for one GET. A key
        the kept ones lack refetches them once (Google rotates its keys), at most once a
        minute."""
        audience = self.audience(request, secrets)
        url = self.endpoints.certs_url(audience)
        header = request.header("authorization")
        self.certs.load_blocking(url)
        try:
            verify_bearer(header, audience, self.certs, self.endpoints)
        except UnknownKey:
            if not self.certs.may_refetch(url):
                raise
            self.certs.load_blocking(url, force=True)
            verify_bearer(header, audience, self.certs, self.endpoints)

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
        else:
            space = body.get("space")
            space_name = space.get("name") if isinstance(space, Mapping) else None
            delivery_id = f"{event_type}:{space_name or ''}:{body.get('eventTime') or ''}"
        return ParsedWebhook(
            event_type=event_type, delivery_id=delivery_id, payload=body, reply=Reply(200, {})
        )


WEBHOOKS = GoogleChatWebhooks()
