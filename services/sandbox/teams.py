"""A stand-in for Microsoft Teams' Bot Framework on loopback, over real HTTP: its login, its
signing keys, its Connector, and Teams' side of a conversation.

- OpenID metadata `GET /v1/.well-known/openidconfiguration` and its JWKS `GET
  /v1/.well-known/keys`, with an RSA key of the stand-in's own (`kid` below) endorsing
  `msteams`; the metadata's fields are those of the real document at
  `https://login.botframework.com/v1/.well-known/openidconfiguration` as "Authentication with
  the Bot Connector API" shows it (issuer, authorization_endpoint, jwks_uri,
  id_token_signing_alg_values_supported, token_endpoint_auth_methods_supported).
- The login's token endpoint `POST /{tenant}/oauth2/v2.0/token` (client credentials, form
  encoded): `{"token_type": "Bearer", "expires_in", "ext_expires_in", "access_token"}` as
  the same article's "Bot to Connector" step shows; a wrong secret answers 401
  `invalid_client` (AADSTS7000215), an unknown app 400 `unauthorized_client`
  (AADSTS700016), as Microsoft Entra's error responses are shaped (`error`,
  `error_description`, `error_codes`).
- The Connector's Create Conversation (`POST /v3/conversations`): a user's one-on-one chat
  with the bot (`isGroup` false, one member by their `29:` id, the tenant), answered
  `{"id": "a:…"}` and kept as a conversation of its own (`personal`); a user the test puts
  in `unreachable` is refused 403 `Forbidden` (a tenant's policy, the user gone).
- The Connector (`/v3/conversations/{conversationId}/activities[/{activityId}]`: POST, PUT,
  DELETE), answering a `ResourceResponse` `{"id"}` and refusing with an `ErrorResponse`
  `{"error": {"code", "message"}}` (botbuilder-schema 4.17.1): 401 without a token it issued
  (ASP.NET Web API's default body, see `DENIED`), 404
  `ConversationNotFound` / `ActivityNotFoundInConversation`, 403
  `BotNotInConversationRoster` once the bot is removed, 429 `Throttled` with `Retry-After`
  when a test asks for it. A conversation id may carry `;messageid=<root>`: the message is
  then a reply in that thread.
- One team ("Contoso"), its General channel (whose id is the team's, as in Teams) and a
  second channel, and three people, all with ids in Teams' forms (`19:…@thread.tacv2`,
  `29:…`, an `aadObjectId` GUID). `add_team` makes another team with a serviceUrl of its
  own (`{base}/<region>/`, as Teams' differ by region and tenant): its activities say it,
  and its conversations are served there only (elsewhere 404 `ConversationNotFound`, the
  stand-in's choice: what the real Connector answers a call at another serviceUrl is not
  documented).
- Teams' side: `user_sends`, `user_edits`, `user_deletes` build the activity (`message`;
  `messageUpdate` with `channelData.eventType` `editMessage`; `messageDelete` with
  `softDeleteMessage`, as "Messages in bot conversations" in the Teams platform docs shows
  them) and POST it to the bot's messaging endpoint with a JWT the stand-in signs with its
  own key, so the real verification runs; `token_for` signs one a test can bend.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.kernel.http.tls import tls

ISSUER = "https://api.botframework.com"
CHANNEL_ID = "msteams"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TEAM_ID = "19:e3f1a2b4c5d6e7f8a9b0c1d2e3f4a5b6@thread.tacv2"
GENERAL = TEAM_ID  # a team's General channel has the team's id
DESIGN = "19:0f9e8d7c6b5a49382716a5b4c3d2e1f0@thread.tacv2"
USERS = {
    "ada": {
        "id": "29:1ada5a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1",
        "name": "Ada Lovelace",
        "aadObjectId": "6f1c4a52-3b5e-4d8a-9f0b-1c2d3e4f5a6b",
    },
    "grace": {
        "id": "29:1grace0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f",
        "name": "Grace Hopper",
        "aadObjectId": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    },
    "alan": {
        "id": "29:1alan5a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2",
        "name": "Alan Turing",
        "aadObjectId": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
    },
}
THREAD = ";messageid="
# ASP.NET Web API's default 401 body, which the Connector (an ASP.NET service) is seen to
# answer; not a documented shape, so the client reads nothing from it but the status.
DENIED = {"Message": "Authorization has been denied for this request."}


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Bot:
    app_id: str
    password: str
    tenant: str = "botframework.com"
    name: str = "hookhub"
    endpoint: str | None = None  # the messaging endpoint activities are POSTed to


@dataclass
class Channel:
    id: str
    name: str
    team: str = TEAM_ID
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The ids of the messages edited (by their author, or the bot's own through the
    # Connector): what Teams marks "Edited".
    edited: set[str] = field(default_factory=set)
    # A one-on-one chat of the bot's: the user's key in USERS (None: a team's channel).
    personal: str | None = None


@dataclass
class FakeTeams:
    base_url: str = ""  # set once served
    kid: str = "sandbox-bf-key-1"
    key: rsa.RSAPrivateKey = field(default_factory=new_key)
    bots: dict[str, Bot] = field(default_factory=dict)
    channels: dict[str, Channel] = field(
        default_factory=lambda: {
            GENERAL: Channel(GENERAL, "General"),
            DESIGN: Channel(DESIGN, "Design"),
        }
    )
    removed: set[str] = field(default_factory=set)  # channels the bot was removed from
    # Users (keys of USERS) the bot cannot start a one-on-one chat with.
    unreachable: set[str] = field(default_factory=set)
    # Each team's region: its serviceUrl is `{base_url}/<region>/`.
    regions: dict[str, str] = field(default_factory=lambda: {TEAM_ID: "teams"})
    token_lifetime: int = 3599
    # access token → app id; every token request and Connector call, in order.
    tokens: dict[str, str] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    calls: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    metadata_reads: int = 0
    _throttle: list[list[int]] = field(default_factory=list)  # [times, retry_after]
    # Message and activity ids: Teams' own are the moment in ms, so they do not repeat when
    # the stand-in starts again (a restarted `make sandbox` had sent its first click with an
    # id of before, which hookhub took for a redelivery and published nothing of).
    _ids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(int(time.time() * 1000))
    )

    # -- set-up ----------------------------------------------------------------------------

    @property
    def service_url(self) -> str:
        return f"{self.base_url}/teams/"

    def service_url_of(self, channel_id: str) -> str:
        """The serviceUrl of the channel's team."""
        return f"{self.base_url}/{self.regions[self.channels[channel_id].team]}/"

    def add_team(self, region: str) -> str:
        """A new team served at `{base_url}/<region>/`; its id (its General channel's)."""
        team = f"19:{uuid.uuid4().hex}@thread.tacv2"
        self.regions[team] = region
        self.channels[team] = Channel(team, "General", team)
        return team

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/v1/.well-known/openidconfiguration"

    def add_bot(self, app_id: str | None = None, password: str | None = None, **kw: Any) -> Bot:
        bot = Bot(app_id or str(uuid.uuid4()), password or secrets.token_urlsafe(24), **kw)
        self.bots[bot.app_id] = bot
        return bot

    def throttle(self, retry_after: int, times: int = 1) -> None:
        """The next `times` Connector calls answer 429 `Throttled` with `Retry-After`."""
        self._throttle.append([times, retry_after])

    def remove_bot(self, channel_id: str) -> None:
        self.removed.add(channel_id)

    def message(self, channel_id: str, message_id: str) -> dict[str, Any] | None:
        return self.channels[channel_id].messages.get(message_id)

    # -- signing -----------------------------------------------------------------------------

    def jwk(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": _b64(numbers.n),
            "e": _b64(numbers.e),
            "endorsements": [CHANNEL_ID],
        }

    def token_for(
        self,
        app_id: str,
        *,
        service_url: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        now: float | None = None,
        lifetime: int = 3600,
        **claims: Any,
    ) -> str:
        """A JWT as the Bot Framework sends with an activity (`claims` replace or add any
        of its claims; a claim given as None is left out)."""
        moment = int(now if now is not None else time.time())
        body: dict[str, Any] = {
            "serviceurl": service_url or self.service_url,
            "nbf": moment - 5,
            "exp": moment + lifetime,
            "iss": ISSUER,
            "aud": app_id,
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(
            body, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid}
        )

    # -- Teams' side: activities to the bot ----------------------------------------------

    def activity(
        self,
        bot: Bot,
        kind: str,
        channel_id: str,
        user: str,
        message_id: str,
        *,
        text: str | None = None,
        root: str | None = None,
        event_type: str | None = None,
        entities: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """An activity shaped as Teams sends one from a channel. Sources (MicrosoftDocs/
        msteams-docs, bots/how-to/conversations/): conversation-messages.md's message
        example (id, timestamp, localTimestamp, serviceUrl, channelId `msteams`, from with
        aadObjectId, recipient `28:<app id>`, textFormat `plain`, locale) and its "Teams
        channel data" list (`tenant`, `team`, `channel`, the deprecated `teamsTeamId` and
        `teamsChannelId`, `eventType`); the "Inbound message example" of
        task-modules-and-cards/cards/cards-actions.md, an activity from a channel thread
        (conversation id `19:…@thread.skype;messageid=<root>`, channelData `channel`,
        `team`, `tenant`); botbuilder-schema
        4.17.1's `ConversationAccount` (`isGroup`, `conversationType`, `tenantId`)."""
        person = USERS[user]
        conversation = f"{channel_id}{THREAD}{root or message_id}"
        now = datetime.now(UTC)
        team = self.channels[channel_id].team if channel_id in self.channels else TEAM_ID
        channel_data: dict[str, Any] = {
            "teamsChannelId": channel_id,
            "teamsTeamId": team,
            "channel": {"id": channel_id},
            "team": {"id": team},
            "tenant": {"id": TENANT_ID},
        }
        if event_type:
            channel_data["eventType"] = event_type
        activity: dict[str, Any] = {
            "type": kind,
            "id": message_id,
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "localTimestamp": now.isoformat(),
            "serviceUrl": f"{self.base_url}/{self.regions[team]}/",
            "channelId": CHANNEL_ID,
            "from": dict(person),
            "conversation": {
                "isGroup": True,
                "conversationType": "channel",
                "tenantId": TENANT_ID,
                "id": conversation,
            },
            "recipient": {"id": f"28:{bot.app_id}", "name": bot.name},
            "entities": entities or [],
            "channelData": channel_data,
        }
        if kind == "message":
            activity["textFormat"] = "plain"
            activity["locale"] = "en-US"
        if text is not None:
            activity["text"] = text
        if root is not None and root != message_id:
            activity["replyToId"] = root
        return activity

    async def user_sends(
        self,
        bot: Bot,
        channel_id: str,
        user: str,
        text: str,
        *,
        root: str | None = None,
        mention_bot: bool = False,
    ) -> tuple[dict[str, Any], int]:
        """A person writes in a channel (or in `root`'s thread); (activity, status)."""
        message_id = str(next(self._ids))
        entities = []
        if mention_bot:
            # An @mention as Teams writes it: `<at>name</at>` in the text, and its entity.
            text = f"<at>{bot.name}</at> {text}"
            entities.append(
                {
                    "type": "mention",
                    "mentioned": {"id": f"28:{bot.app_id}", "name": bot.name},
                    "text": f"<at>{bot.name}</at>",
                }
            )
        activity = self.activity(
            bot, "message", channel_id, user, message_id, text=text, root=root, entities=entities
        )
        self.channels[channel_id].messages[message_id] = activity
        return activity, await self.deliver(bot, activity)

    async def user_edits(
        self, bot: Bot, channel_id: str, message_id: str, text: str
    ) -> tuple[dict[str, Any], int]:
        stored = self.channels[channel_id].messages[message_id]
        stored["text"] = text
        self.channels[channel_id].edited.add(message_id)
        user = next(k for k, v in USERS.items() if v["id"] == stored["from"]["id"])
        activity = self.activity(
            bot,
            "messageUpdate",
            channel_id,
            user,
            message_id,
            text=text,
            root=stored.get("replyToId"),
            event_type="editMessage",
        )
        return activity, await self.deliver(bot, activity)

    async def user_deletes(
        self, bot: Bot, channel_id: str, message_id: str
    ) -> tuple[dict[str, Any], int]:
        stored = self.channels[channel_id].messages.pop(message_id)
        user = next(k for k, v in USERS.items() if v["id"] == stored["from"]["id"])
        activity = self.activity(
            bot,
            "messageDelete",
            channel_id,
            user,
            message_id,
            root=stored.get("replyToId"),
            event_type="softDeleteMessage",
        )
        return activity, await self.deliver(bot, activity)

    def buttons(self, channel_id: str, message_id: str) -> list[dict[str, Any]]:
        """The `Action.Execute` actions of a message's Adaptive Cards."""
        message = self.channels[channel_id].messages[message_id]
        return [
            action
            for attachment in message.get("attachments") or []
            if attachment.get("contentType") == "application/vnd.microsoft.card.adaptive"
            for action in attachment["content"].get("actions") or []
            if action.get("type") == "Action.Execute"
        ]

    async def click(
        self,
        bot: Bot,
        channel_id: str,
        message_id: str,
        verb: str,
        user: str,
        *,
        activity_id: str | None = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        """`user` clicks an `Action.Execute` of a card of the bot's: the `invoke` activity
        named `adaptiveCard/action` Teams sends the bot (its `value` an
        `AdaptiveCardInvokeValue`: `action` {type, id, verb, data}, `trigger` manual;
        `replyToId` the card's message; learn.microsoft.com/microsoftteams/platform/
        task-modules-and-cards/cards/universal-actions-for-adaptive-cards/
        work-with-universal-actions-for-adaptive-cards), signed (with `token` when given: a
        forgery). The endpoint's status and answer."""
        [action] = [a for a in self.buttons(channel_id, message_id) if a["verb"] == verb]
        stored = self.channels[channel_id].messages[message_id]
        root = stored.get("replyToId") or message_id
        activity = self.activity(
            bot, "invoke", channel_id, user, activity_id or f"f:{next(self._ids)}", root=root
        )
        activity.update(
            name="adaptiveCard/action",
            replyToId=message_id,
            value={
                "action": {
                    "type": "Action.Execute",
                    "id": action.get("id") or secrets.token_hex(4),
                    "verb": verb,
                    "data": action.get("data") or {},
                },
                "trigger": "manual",
            },
        )
        answer = await self._post(bot, activity, token)
        try:
            return answer.status_code, answer.json()
        except ValueError:
            return answer.status_code, answer.text

    async def deliver(self, bot: Bot, activity: dict[str, Any], token: str | None = None) -> int:
        """POST the activity to the bot's messaging endpoint, signed; its status."""
        return (await self._post(bot, activity, token)).status_code

    async def _post(self, bot: Bot, activity: dict[str, Any], token: str | None) -> httpx.Response:
        if bot.endpoint is None:
            raise AssertionError("the bot has no messaging endpoint set")
        token = token or self.token_for(bot.app_id, service_url=activity["serviceUrl"])
        async with httpx.AsyncClient(verify=tls(), timeout=15.0) as client:
            return await client.post(
                bot.endpoint, json=activity, headers={"authorization": f"Bearer {token}"}
            )

    # -- the HTTP side ------------------------------------------------------------------------

    def app(self) -> Starlette:
        async def healthz(_: Request) -> JSONResponse:
            return JSONResponse({"ok": True})

        async def metadata(_: Request) -> JSONResponse:
            # The example document of "Authentication with the Bot Connector API", Step 2
            # (MicrosoftDocs/bot-docs articles/rest-api/bot-framework-rest-connector-
            # authentication.md), with the stand-in's own jwks_uri.
            self.metadata_reads += 1
            return JSONResponse(
                {
                    "issuer": ISSUER,
                    "authorization_endpoint": "https://invalid.botframework.com",
                    "jwks_uri": f"{self.base_url}/v1/.well-known/keys",
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                }
            )

        async def keys(_: Request) -> JSONResponse:
            # JWK (RFC 7517) plus `endorsements`, as the same article's Step 3 describes.
            return JSONResponse({"keys": [self.jwk()]})

        return Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/v1/.well-known/openidconfiguration", metadata),
                Route("/v1/.well-known/keys", keys),
                Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"]),
                Route("/{region}/v3/conversations", self._create, methods=["POST"]),
                Route(
                    "/{region}/v3/conversations/{conversation}/activities",
                    self._send,
                    methods=["POST"],
                ),
                Route(
                    "/{region}/v3/conversations/{conversation}/activities/{activity}",
                    self._activity,
                    methods=["PUT", "DELETE"],
                ),
            ]
        )

    async def _token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.token_requests.append(form)
        bot = self.bots.get(form.get("client_id", ""))
        if form.get("grant_type") != "client_credentials":
            return _aad(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        if bot is None:
            return _aad(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the "
                f"directory '{request.path_params['tenant']}'.",
            )
        if form.get("scope") != "https://api.botframework.com/.default":
            return _aad(400, "invalid_scope", 1002012, "The provided value for scope is not valid.")
        if request.path_params["tenant"] != bot.tenant:
            return _aad(400, "unauthorized_client", 700016, "The app is not in this tenant.")
        if not secrets.compare_digest(form.get("client_secret", ""), bot.password):
            return _aad(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                "is the client secret value, not the client secret ID.",
            )
        token = secrets.token_urlsafe(32)
        self.tokens[token] = bot.app_id
        # "Bot to Connector", Step 2 of the authentication article: the answer's fields.
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            }
        )

    def _check(self, request: Request, body: dict[str, Any] | None) -> Response | str:
        """The bot's app id, or the refusal."""
        self.calls.append((request.method, request.url.path, body))
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme != "Bearer" or token not in self.tokens:
            return JSONResponse(DENIED, 401)
        for rule in self._throttle:
            if rule[0] > 0:
                rule[0] -= 1
                return JSONResponse(
                    _error("Throttled", "Too many requests"),
                    429,
                    headers={"Retry-After": str(rule[1])},
                )
        return self.tokens[token]

    def personal_messages(self, user: str) -> list[dict[str, Any]]:
        """What the bot wrote in its one-on-one chats with `user` (a key of USERS)."""
        return [
            message
            for channel in self.channels.values()
            if channel.personal == user
            for message in channel.messages.values()
        ]

    async def _create(self, request: Request) -> Response:
        """Create Conversation (`ConversationParameters`, the Connector's API reference):
        here, a one-on-one chat of the bot with one user of the tenant."""
        body = await _body(request)
        app_id = self._check(request, body)
        if isinstance(app_id, Response):
            return app_id
        members = (body or {}).get("members")
        tenant = (body or {}).get("tenantId") or (
            ((body or {}).get("channelData") or {}).get("tenant") or {}
        ).get("id")
        if (
            body is None
            or body.get("isGroup")
            or not isinstance(members, list)
            or len(members) != 1
            or tenant != TENANT_ID
        ):
            return JSONResponse(
                _error("BadSyntax", "Incorrect conversation creation parameters"), 400
            )
        member = members[0].get("id") if isinstance(members[0], dict) else None
        user = next((key for key, u in USERS.items() if u["id"] == member), None)
        if user is None:
            return JSONResponse(_error("BadArgument", "Member id is not valid"), 400)
        if user in self.unreachable:
            return JSONResponse(_error("Forbidden", "The bot cannot message this user"), 403)
        conversation = f"a:{app_id}-{user}"
        if conversation not in self.channels:
            region = request.path_params["region"]
            team = next((t for t, r in self.regions.items() if r == region), TEAM_ID)
            self.channels[conversation] = Channel(
                conversation, f"{USERS[user]['name']} (personal)", team, personal=user
            )
        return JSONResponse({"id": conversation}, 201)

    def _conversation(self, request: Request) -> tuple[Channel, str | None] | Response:
        channel_id, _, root = request.path_params["conversation"].partition(THREAD)
        channel = self.channels.get(channel_id)
        if channel is None or self.regions.get(channel.team) != request.path_params["region"]:
            return JSONResponse(_error("ConversationNotFound", "Conversation not found."), 404)
        if channel_id in self.removed:
            return JSONResponse(
                _error(
                    "BotNotInConversationRoster", "The bot is not part of the conversation roster."
                ),
                403,
            )
        if root and root not in channel.messages:
            return JSONResponse(_error("ConversationNotFound", "Conversation not found."), 404)
        return channel, root or None

    async def _send(self, request: Request) -> Response:
        body = await _body(request)
        app_id = self._check(request, body)
        if isinstance(app_id, Response):
            return app_id
        found = self._conversation(request)
        if isinstance(found, Response):
            return found
        channel, root = found
        if body is None or body.get("type") != "message":
            return JSONResponse(_error("BadArgument", "Activity type is required."), 400)
        message_id = str(next(self._ids))
        stored = {
            **body,
            "id": message_id,
            "from": {"id": f"28:{app_id}", "name": self.bots[app_id].name},
            "conversation": {"id": f"{channel.id}{THREAD}{root or message_id}"},
        }
        if root:
            stored["replyToId"] = root
        channel.messages[message_id] = stored
        return JSONResponse({"id": message_id}, 201)

    async def _activity(self, request: Request) -> Response:
        body = await _body(request) if request.method == "PUT" else None
        app_id = self._check(request, body)
        if isinstance(app_id, Response):
            return app_id
        found = self._conversation(request)
        if isinstance(found, Response):
            return found
        channel, _ = found
        message = channel.messages.get(request.path_params["activity"])
        if message is None:
            return JSONResponse(
                _error("ActivityNotFoundInConversation", "Activity not found in conversation."),
                404,
            )
        if message.get("from", {}).get("id") != f"28:{app_id}":
            return JSONResponse(
                _error("ForbiddenOperationException", "The bot can only change its own messages."),
                403,
            )
        if request.method == "DELETE":
            del channel.messages[request.path_params["activity"]]
            return Response(status_code=200)
        if body is None or not isinstance(body.get("text"), str):
            return JSONResponse(_error("BadArgument", "Activity text is required."), 400)
        message.update(
            {k: v for k, v in body.items() if k in ("text", "textFormat", "attachments")}
        )
        channel.edited.add(message["id"])
        return JSONResponse({"id": message["id"]})


async def _body(request: Request) -> dict[str, Any] | None:
    try:
        data = await request.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _aad(status: int, error: str, code: int, description: str) -> JSONResponse:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return JSONResponse(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {uuid.uuid4()}\r\n"
            f"Correlation ID: {uuid.uuid4()}\r\nTimestamp: {now}",
            "error_codes": [code],
            "timestamp": now,
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
        status,
    )
