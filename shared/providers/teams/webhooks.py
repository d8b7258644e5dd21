"""Teams: the Bot Framework activities POSTed to the bot's messaging endpoint.

`verify` is synchronous, as the gateway's pipeline calls it, and so checks the bearer token
against the signing keys already fetched (`TeamsWebhooks.keys`, a `BotFrameworkKeys`); the
caller fetches them first with `await prepare(request)`, which fetches only when they are
stale or lack the token's key. Without fetched keys every activity is refused (401), never
accepted. The app id the token's audience must be is the integration's `app_id` setting.

Parsed: the activity's `type` is the event (`message`, `messageUpdate`, `messageDelete`,
`conversationUpdate`, `messageReaction`, `invoke`, …). Its `id` is the delivery id for a
`message` and an `adaptiveCard/action` invoke (a card's button clicked); an edit or a
deletion carries the id of the message it changes, so those (and every other type) are
known by their body's digest. The answer is an empty 200, as the Bot Framework SDK's
adapter gives for an activity it handled without a reply; an `adaptiveCard/action` is
answered with the invoke response it needs (`CARD_ACTION_ANSWER`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import httpx

from shared.kernel.errors import Unavailable
from shared.kernel.settings import Settings
from shared.providers.base import (
    InboundRequest,
    MalformedWebhook,
    ParsedWebhook,
    Reply,
    SignatureInvalid,
)
from shared.providers.ids import decode_json_object, derived_delivery_id
from shared.providers.teams.auth import (
    BotFrameworkKeys,
    KeysUnavailable,
    bearer,
    check_token,
    key_id,
)

APP_ID = "app_id"
CARD_ACTION = "adaptiveCard/action"
# The invoke response an `adaptiveCard/action` needs (else Teams shows the click failed):
# an `AdaptiveCardInvokeResponse` (botframework-schema; learn.microsoft.com/microsoftteams/
# platform/task-modules-and-cards/cards/universal-actions-for-adaptive-cards/
# work-with-universal-actions-for-adaptive-cards) whose message Teams shows the clicker.
# The outcome follows in the card's thread, from the click worker.
CARD_ACTION_ANSWER = {
    "statusCode": 200,
    "type": "application/vnd.microsoft.activity.message",
    "value": "Received: the outcome follows in the thread.",
}


class TeamsWebhooks:
    name: str = "teams"
    max_body_bytes: int = 1024 * 1024
    secret_fields: tuple[str, ...] = ()
    handshake_methods: tuple[str, ...] = ()
    delivery_id_header: str | None = None  # the id is in the body

    def __init__(self, keys: BotFrameworkKeys | None = None) -> None:
        self.keys = keys

    def start(self, settings: Settings, client: httpx.AsyncClient) -> None:
        """The gateway's settings say where the OpenID metadata is; `client` fetches it."""
        self.keys = BotFrameworkKeys(client, settings.teams_openid_metadata_url)

    def handshake(self, request: InboundRequest, secrets: Mapping[str, str] | None) -> Reply | None:
        return None

    async def prepare(self, request: InboundRequest) -> None:
        """Fetch the signing keys if the token's key is not among those held. Keys that
        cannot be fetched are our outage, not a bad request: 503, so the Bot Framework
        sends the activity again, rather than 401."""
        if self.keys is None:
            raise Unavailable("the Bot Framework's keys have no HTTP client (not started)")
        try:
            kid = key_id(bearer(request.header("authorization")))
        except SignatureInvalid:
            return  # `verify` says why
        try:
            await self.keys.key(kid)
        except KeysUnavailable as exc:
            raise Unavailable(f"cannot check the bearer token: {exc}") from exc

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        token = bearer(request.header("authorization"))
        kid = key_id(token)
        app_id = secrets.get(APP_ID) or request.config.get(APP_ID) or ""
        if self.keys is None:
            raise SignatureInvalid(
                "cannot check the bearer token: no Bot Framework keys are set up"
            )
        try:
            activity = decode_json_object(request.body)
        except MalformedWebhook as exc:
            raise SignatureInvalid(
                f"no activity to check the token against: {exc.message}"
            ) from exc
        check_token(
            token,
            self.keys.cached(kid),
            algorithms=self.keys.algorithms,
            app_id=app_id,
            activity=activity,
            now=now,
        )

    def parse(self, request: InboundRequest) -> ParsedWebhook:
        activity = decode_json_object(request.body)
        kind = activity.get("type")
        if not isinstance(kind, str) or not kind:
            raise MalformedWebhook("the activity has no `type`")
        activity_id = activity.get("id")
        delivery = (
            f"message:{activity_id}"
            if kind == "message" and isinstance(activity_id, str) and activity_id
            else derived_delivery_id(request.body)
        )
        reply = Reply(200, None)
        if kind == "invoke" and activity.get("name") == CARD_ACTION:
            # A card's button: the same click sent again is known by its activity's id.
            if isinstance(activity_id, str) and activity_id:
                delivery = f"invoke:{activity_id}"
            reply = Reply(200, CARD_ACTION_ANSWER)
        recipient = activity.get("recipient")
        account = recipient.get("id") if isinstance(recipient, dict) else None
        return ParsedWebhook(
            event_type=kind,
            delivery_id=delivery,
            payload=activity,
            reply=reply,
            account=account.removeprefix("28:") if isinstance(account, str) else None,
        )


WEBHOOKS = TeamsWebhooks()
