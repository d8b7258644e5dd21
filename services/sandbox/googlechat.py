"""A stand-in for Google Chat on loopback: the Chat REST API a Chat app calls with its
service account, Google's token endpoint, the certificates Chat's bearer tokens verify
against, and the interaction events Chat POSTs to the app's endpoint, signed.

- `POST /token`: the JWT bearer grant (RFC 7523) of a service account key this stand-in
  made (`service_account_json`): the assertion's signature, `iss`, `aud` (Google's token URL) and
  `scope` (`chat.bot`) are checked; the token lives `token_seconds`. An assertion with `sub`
  (domain-wide delegation: the service account acts as that user) is granted only for a
  user of the stand-in's (by email) and the scopes the administrator delegated
  (`delegated_scopes`, `chat.messages.readonly`); else 401 `{"error": "unauthorized_client",
  "error_description": …}` as Google answers a delegation that is missing (the shape
  reported in googleapis/google-api-python-client#792), or 400 `invalid_grant` ("Invalid
  email or User ID", as it is said to; not confirmed) for a `sub` that is no user of the
  Workspace.
- `GET /oauth2/v1/certs` and `/service_accounts/v1/metadata/x509/chat@system.gserviceaccount.com`:
  `{kid: PEM X.509 certificate}` of the stand-in's own RSA key, as Google's two endpoints
  answer (`Cache-Control: max-age`).
- `/v1/spaces/{space}` (get), `/v1/spaces/{space}/messages` (create, list),
  `/v1/spaces/{space}/messages/{message}` (get, patch, delete), answering Google's error
  envelope `{"error": {"code", "message", "status"}}`: 401 UNAUTHENTICATED, 404 NOT_FOUND,
  400 INVALID_ARGUMENT, 429 RESOURCE_EXHAUSTED (`limit`).
  Create honours `requestId` (the same id again answers the message it made), `messageId`
  (`client-…`, kept as `clientAssignedMessageId`: the name stays the generated one, and
  get, patch and delete take either), `messageReplyOption` with
  `thread.threadKey` or `thread.name`; patch takes `updateMask=text`; list takes
  `pageSize`, `pageToken`, `filter` (`create_time` `>`/`<` and `thread.name =`, joined by
  `AND`), `orderBy` (ascending by default) and
  `showDeleted` (a deleted message is kept, listed only with it, without its content), and
  answers only a user's token (delegated) of a member of the space: the app's own token is
  403 PERMISSION_DENIED (app authentication is a Developer Preview), and so is a user who
  is not a member. The other calls take only the app's token.
  Checked against developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages.
- `/v1/spaces/{space}/members` (list, as the app): the space's human memberships, each
  `member` with its `displayName` (app authentication), `pageSize`/`pageToken`.
- `PUT /app` `{"endpoint_url", "audience"}`: the Chat API's Configuration page (the app's
  HTTP endpoint URL and Authentication Audience).
- The tests' levers: `limit` (429s, on one space or any), `echo_posts` (the event of the
  app's own post delivered before the create answers), `key_ids` (more ids of the service
  account's key; one removed is a key deleted, its grants refused), `expire_tokens`,
  `rotate_key` (Chat's signing key).
- Cards: create and patch keep a message's `cardsV2` (patch with `updateMask=text,cardsV2`;
  `[]` removes them); `buttons` lists a message's card buttons, and `click` is a person
  clicking one: the CARD_CLICKED event (the Event reference's fields: `action`
  {actionMethodName, parameters}, `common` {invokedFunction, parameters}, the clicked
  `message`, the `user`) POSTed to the app's endpoint, signed as every event (`bearer=`
  another token: a forgery).
- `user_sends`: a person writes; the MESSAGE event (the shape of the Event reference's
  example) is POSTed to the app's endpoint with a bearer token as Chat makes it for the
  configured audience (an ID token for an endpoint URL, a chat@system JWT for a project
  number), signed by the stand-in's key.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt
from google.auth import jwt as google_jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.kernel.http.tls import tls

CHAT_ISSUER = "chat@system.gserviceaccount.com"
CHAT_BOT_SCOPE = "https://www.googleapis.com/auth/chat.bot"
CHAT_MESSAGES_READONLY = "https://www.googleapis.com/auth/chat.messages.readonly"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# The assertion's `aud` is Google's token URL whichever URL it is sent to ("The value is
# always https://oauth2.googleapis.com/token", the service account guide; google-auth's
# service_account.Credentials writes that constant).
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
MAX_TEXT = 4096  # Message.text: "up to 4,096 characters" (the messages guide)


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def certificate(key: rsa.RSAPrivateKey, subject: str) -> str:
    """A self-signed X.509 certificate of the key, PEM: what Google's certs endpoints hold."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def sign(key: rsa.RSAPrivateKey, key_id: str, claims: dict[str, Any]) -> str:
    """A JWT (RS256) of `claims`, signed with google-auth's signer."""
    signer = crypt.RSASigner.from_string(pem(key), key_id)
    encoded: bytes = google_jwt.encode(signer, claims)
    return encoded.decode()


def rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(code: int, status: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": message, "status": status}}, code, headers=headers
    )


@dataclass
class _Limit:
    times: int
    retry_after: int | None
    space: str | None = None  # only that space's calls (None: any)


@dataclass
class FakeSpace:
    name: str
    display_name: str
    space_type: str = "SPACE"
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Deleted messages, by name: listed only with `showDeleted`, without their content.
    deleted: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The stand-in's users (their keys) who are members: every one unless the test says.
    members: set[str] = field(default_factory=set)
    # Whether the Chat app is in the space (what its own calls need).
    app_member: bool = True

    def find(self, name: str) -> dict[str, Any] | None:
        """A message by its name, or by its custom one (`spaces/S/messages/client-…`):
        "Specify this field to get, update, or delete the message with the specified value"."""
        found = self.messages.get(name)
        if found is None and "/messages/client-" in name:
            custom = name.rpartition("/")[2]
            found = next(
                (m for m in self.messages.values() if m.get("clientAssignedMessageId") == custom),
                None,
            )
        return found

    def as_space(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": "ROOM",
            "displayName": self.display_name,
            "spaceType": self.space_type,
        }


@dataclass
class FakeGoogleChat:
    base_url: str = ""
    # How long an access token lives (the token endpoint's `expires_in`).
    token_seconds: int = 3600
    # The app's endpoint and how Chat authenticates to it: a project number or the URL.
    endpoint_url: str = ""
    audience: str = "1234567890"
    # The app's service account key (PEM); a new one when not given.
    account_pem: str = ""
    # Chat sends the app the event of its own post, before answering the create: the race
    # a Workspace Events subscription to the space's messages would make.
    echo_posts: bool = False
    # More ids of the service account's key (key files told apart): removing one is the
    # key deleted in the Cloud console, its grants refused from then on.
    key_ids: set[str] = field(default_factory=set)
    spaces: dict[str, FakeSpace] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # access token → expiry
    # A delegated access token → the user (key) it acts as; absent: the app's.
    token_users: dict[str, str] = field(default_factory=dict)
    # The scopes the Workspace administrator delegated to the service account (Admin
    # console → Security → API controls → Domain-wide delegation); empty: none.
    delegated_scopes: set[str] = field(default_factory=lambda: {CHAT_MESSAGES_READONLY})
    # Called before each spaces.messages.list is answered (a test's moment to change things).
    on_list: Callable[[], None] | None = None
    token_requests: int = 0
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    # The `markupSyntax` each text written said it was in (None: the app's default).
    syntaxes: list[Any] = field(default_factory=list)
    # Private messages made (`privateMessageViewer`): each the message with its viewer,
    # seen by that user and the app alone, never among the space's messages.
    private: list[dict[str, Any]] = field(default_factory=list)
    _limits: list[_Limit] = field(default_factory=list)
    _request_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        # Chat's (and Google's) signing key, and the app's service account.
        self.google_key = rsa_key()
        self.google_kid = secrets.token_hex(20)
        loaded = (
            serialization.load_pem_private_key(self.account_pem.encode(), None)
            if self.account_pem
            else None
        )
        self.account_key = loaded if isinstance(loaded, rsa.RSAPrivateKey) else rsa_key()
        self.account_kid = secrets.token_hex(20)
        self.account_email = "hookhub-chat@sandbox-project.iam.gserviceaccount.com"
        self.app_user = {
            "name": "users/app",
            "displayName": "hookhub",
            "type": "BOT",
        }
        for n, (name, email) in enumerate(
            (("Alice", "alice"), ("Bob", "bob"), ("Carol", "carol")), start=1
        ):
            self.users[name.lower()] = {
                "name": f"users/10000000000000000000{n}",
                "displayName": name,
                "avatarUrl": f"https://lh3.googleusercontent.com/a/{email}",
                "email": f"{email}@example.com",
                "type": "HUMAN",
                "domainId": "sandbox",
            }
        self.add_space("spaces/AAAAsandbox", "General")

    # -- seeding and the test's levers ----------------------------------------------------

    def add_space(self, name: str, display_name: str) -> FakeSpace:
        space = FakeSpace(name, display_name, members=set(self.users))
        self.spaces[name] = space
        return space

    def service_account_json(self, key_id: str | None = None) -> str:
        """The app's key file, as the Cloud console downloads it (its `token_uri` this
        stand-in's); `key_id`: one of `key_ids`."""
        return json.dumps(
            {
                "type": "service_account",
                "project_id": "sandbox-project",
                "private_key_id": key_id or self.account_kid,
                "private_key": pem(self.account_key),
                "client_email": self.account_email,
                "client_id": "100000000000000000001",
                "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                "token_uri": self.base_url + "/token",
            }
        )

    def limit(
        self, times: int = 1, retry_after: int | None = None, space: str | None = None
    ) -> None:
        """The next `times` API calls (on `space`'s messages, when given: Chat's write quota
        is per space) answer 429 RESOURCE_EXHAUSTED."""
        self._limits.append(_Limit(times, retry_after, space))

    def expire_tokens(self) -> None:
        self.tokens.clear()

    @staticmethod
    def edit(message: dict[str, Any], text: str) -> None:
        """The message's text changed (by its sender, or the app's patch)."""
        message.update(text=text, formattedText=text, lastUpdateTime=rfc3339(time.time()))

    @staticmethod
    def delete(space: FakeSpace, message: dict[str, Any]) -> None:
        """The message deleted: kept for `showDeleted`, without its content."""
        gone = space.messages.pop(message["name"])
        space.deleted[gone["name"]] = {
            "name": gone["name"],
            "createTime": gone["createTime"],
            "deleteTime": rfc3339(time.time()),
            "deletionMetadata": {"deletionType": "CREATOR"},
            "thread": gone["thread"],
            "space": gone["space"],
        }

    def user_by_email(self, email: str) -> str | None:
        """The key of the user with that email (a delegated grant's `sub`)."""
        return next((k for k, u in self.users.items() if u.get("email") == email), None)

    def rotate_key(self) -> None:
        """Google rotates its signing keys: a new key, under a new id, signs from now on."""
        self.google_key = rsa_key()
        self.google_kid = secrets.token_hex(20)

    # -- the events Chat sends --------------------------------------------------------------

    def bearer(
        self,
        *,
        audience: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        key_id: str | None = None,
        issuer: str | None = None,
        email: str = CHAT_ISSUER,
        lifetime: float = 3600,
        issued: float | None = None,
    ) -> str:
        """The token Chat puts in `Authorization: Bearer`: for a project number audience a
        JWT issued by chat@system.gserviceaccount.com, for a URL an ID token of Google's
        with `email` chat@system. The arguments forge or stale one for the tests."""
        audience = audience if audience is not None else self.audience
        iat = time.time() if issued is None else issued
        claims: dict[str, Any] = {"aud": audience, "iat": int(iat), "exp": int(iat + lifetime)}
        if audience.isdigit():
            claims.update(iss=issuer or CHAT_ISSUER, sub=CHAT_ISSUER)
        else:
            claims.update(
                iss=issuer or "https://accounts.google.com",
                email=email,
                email_verified=True,
                sub="113004223165183116406",
            )
        return sign(key or self.google_key, key_id or self.google_kid, claims)

    def message_event(
        self,
        space: str,
        user: str,
        text: str,
        *,
        thread: str | None = None,
        annotations: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A person writes in the space: the message is stored and its MESSAGE event made."""
        sender = self.users[user]
        message = self._store(self.spaces[space], sender, text, thread=thread)
        if annotations:
            message["annotations"] = annotations
        return self._event(self.spaces[space], message, sender)

    def _event(
        self, space: FakeSpace, message: dict[str, Any], sender: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "type": "MESSAGE",
            "eventTime": message["createTime"],
            "space": space.as_space(),
            "message": dict(message),
            "user": sender,
            "common": {"userLocale": "en", "hostApp": "CHAT"},
        }

    async def deliver(self, event: dict[str, Any], *, bearer: str | None = None) -> httpx.Response:
        """POST the event to the app's endpoint as Chat does (`User-Agent: Google-Dynamite`)."""
        token = bearer if bearer is not None else self.bearer()
        async with httpx.AsyncClient(verify=tls(), timeout=15.0) as client:
            return await client.post(
                self.endpoint_url,
                content=json.dumps(event).encode(),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "User-Agent": "Google-Dynamite",
                },
            )

    def command_event(
        self, space: str, user: str, words: str, *, command: str = "/hookhub", command_id: int = 1
    ) -> dict[str, Any]:
        """A person runs the app's slash command `command words`: the MESSAGE event Chat
        sends the app (the message seen by them and the app alone, so not kept among the
        space's messages), with
        `message.slashCommand`, its `SLASH_COMMAND` annotation and the words after the
        command as `argumentText` (developers.google.com/workspace/chat/commands)."""
        text = f"{command} {words}".strip()
        event = self.message_event(
            space,
            user,
            text,
            annotations=[
                {
                    "type": "SLASH_COMMAND",
                    "startIndex": 0,
                    "length": len(command),
                    "slashCommand": {
                        "bot": {"name": "users/app", "displayName": "hookhub", "type": "BOT"},
                        "type": "INVOKE",
                        "commandName": command,
                        "commandId": str(command_id),
                    },
                }
            ],
        )
        event["message"]["slashCommand"] = {"commandId": str(command_id)}
        event["message"]["argumentText"] = f" {words}" if words else ""
        # Seen by its user and the app alone: not among the space's messages (nor in what
        # spaces.messages.list answers others).
        self.spaces[space].messages.pop(event["message"]["name"], None)
        return event

    async def user_sends(self, space: str, user: str, text: str, **kw: Any) -> httpx.Response:
        return await self.deliver(self.message_event(space, user, text, **kw))

    def buttons(self, space: str, message: str) -> list[dict[str, Any]]:
        """The buttons of a message's cards (`cardsV2` → sections → buttonList)."""
        found = self.spaces[space].find(message) or {}
        return [
            button
            for card in found.get("cardsV2") or []
            for section in card.get("card", {}).get("sections") or []
            for widget in section.get("widgets") or []
            for button in widget.get("buttonList", {}).get("buttons") or []
        ]

    async def click(
        self,
        space: str,
        message: str,
        text: str,
        user: str,
        *,
        bearer: str | None = None,
        event_time: str | None = None,
    ) -> httpx.Response:
        """`user` clicks the button of `message` labelled `text`: its CARD_CLICKED event, as
        an HTTP Chat app receives it, POSTed signed (`bearer`: the token to send instead).
        `event_time`: the same event sent again."""
        found = self.spaces[space].find(message)
        if found is None:
            raise AssertionError(f"no message {message} in {space}")
        [button] = [b for b in self.buttons(space, message) if b.get("text") == text]
        action = button["onClick"]["action"]
        parameters = list(action.get("parameters") or [])
        event = {
            "type": "CARD_CLICKED",
            "eventTime": event_time or rfc3339(time.time()),
            "space": self.spaces[space].as_space(),
            "message": dict(found),
            "user": self.users[user],
            "action": {"actionMethodName": action["function"], "parameters": parameters},
            "common": {
                "userLocale": "en",
                "hostApp": "CHAT",
                "invokedFunction": action["function"],
                "parameters": {p["key"]: p["value"] for p in parameters},
            },
        }
        return await self.deliver(event, bearer=bearer)

    # -- storage ------------------------------------------------------------------------------

    def _store(
        self,
        space: FakeSpace,
        sender: dict[str, Any],
        text: str,
        *,
        thread: str | None = None,
        message_id: str | None = None,
    ) -> dict[str, Any]:
        n = next(self._ids)
        now = time.time() + n * 1e-3  # distinct, increasing createTimes
        local = f"m{n:06d}.m{n:06d}"
        thread_name = thread or f"{space.name}/threads/t{n:06d}"
        message: dict[str, Any] = {
            "name": f"{space.name}/messages/{local}",
            "sender": sender,
            "createTime": rfc3339(now),
            "text": text,
            "formattedText": text,
            "argumentText": text,
            "thread": {"name": thread_name},
            "space": {"name": space.name},
        }
        if message_id:
            message["clientAssignedMessageId"] = message_id
        if thread is not None:
            message["threadReply"] = True
        space.messages[message["name"]] = message
        return message

    # -- the API ------------------------------------------------------------------------------

    def app(self) -> Starlette:
        async def token(request: Request) -> Response:
            form = await request.form()
            self.token_requests += 1
            if form.get("grant_type") != JWT_BEARER:
                return JSONResponse({"error": "unsupported_grant_type"}, 400)
            try:
                cert = certificate(self.account_key, self.account_email)
                certs = dict.fromkeys({self.account_kid, *self.key_ids}, cert)
                claims = google_jwt.decode(
                    str(form.get("assertion", "")), certs=certs, audience=GOOGLE_TOKEN_URL
                )
            except ValueError as exc:
                return JSONResponse({"error": "invalid_grant", "error_description": str(exc)}, 400)
            if claims.get("iss") != self.account_email:
                return JSONResponse({"error": "invalid_grant", "error_description": "iss"}, 400)
            scopes = set(str(claims.get("scope", "")).split())
            subject = claims.get("sub")
            user = None
            if subject is not None:
                user = self.user_by_email(str(subject))
                if user is None:
                    return JSONResponse(
                        {"error": "invalid_grant", "error_description": "Invalid email or User ID"},
                        400,
                    )
                if not scopes or not scopes <= self.delegated_scopes:
                    return JSONResponse(
                        {
                            "error": "unauthorized_client",
                            "error_description": "Client is unauthorized to retrieve access "
                            "tokens using this method, or client not authorized for any of "
                            "the scopes requested.",
                        },
                        401,
                    )
            elif CHAT_BOT_SCOPE not in scopes:
                return JSONResponse({"error": "invalid_scope"}, 400)
            access = "ya29.sandbox-" + secrets.token_urlsafe(24)
            self.tokens[access] = time.time() + self.token_seconds
            if user is not None:
                self.token_users[access] = user
            return JSONResponse(
                {"access_token": access, "expires_in": self.token_seconds, "token_type": "Bearer"}
            )

        async def certs(_: Request) -> Response:
            return JSONResponse(
                {self.google_kid: certificate(self.google_key, CHAT_ISSUER)},
                headers={"Cache-Control": "public, max-age=3600, must-revalidate, no-transform"},
            )

        async def get_space(request: Request) -> Response:
            space = self._space(request)
            return space if isinstance(space, Response) else JSONResponse(space.as_space())

        async def messages(request: Request) -> Response:
            space = self._space(request, app_only=request.method == "POST")
            if isinstance(space, Response):
                return space
            if request.method == "POST":
                return await self._create(space, request.query_params, await request.json())
            user = self.token_users.get(_bearer(request))
            if user is None:
                # spaces.messages.list: user authentication, or a Developer Preview's app scope.
                return _error(
                    403,
                    "PERMISSION_DENIED",
                    "This method doesn't support app authentication with a service account. "
                    "Authenticate with a user account.",
                )
            if user not in space.members:
                return _error(403, "PERMISSION_DENIED", "The caller is not a member of the space.")
            if self.on_list is not None:
                self.on_list()
            return self._list(space, request.query_params)

        async def members(request: Request) -> Response:
            space = self._space(request)
            return (
                space if isinstance(space, Response) else self._members(space, request.query_params)
            )

        async def message(request: Request) -> Response:
            refused = self._refused(request)
            if refused is not None:
                return refused
            if self.token_users.get(_bearer(request)) is not None:
                return _insufficient()
            space = self.spaces.get("spaces/" + request.path_params["space"])
            wanted = f"spaces/{request.path_params['space']}/messages/{request.path_params['id']}"
            found = space.find(wanted) if space else None
            if space is None or found is None:
                return _error(404, "NOT_FOUND", "Message not found.")
            if request.method == "GET":
                return JSONResponse(found)
            if request.method == "DELETE":
                self.delete(space, found)
                return JSONResponse({})
            mask = set(request.query_params.get("updateMask", "").split(","))
            if not mask or not mask <= {"text", "cardsV2"}:
                return _error(400, "INVALID_ARGUMENT", "Invalid update mask.")
            body = await request.json()
            text = body.get("text")
            if "text" in mask and (not isinstance(text, str) or len(text) > MAX_TEXT):
                return _error(400, "INVALID_ARGUMENT", "Invalid message text.")
            if "cardsV2" in mask:
                cards = body.get("cardsV2") or []
                if not isinstance(cards, list):
                    return _error(400, "INVALID_ARGUMENT", "Invalid cardsV2.")
                found["cardsV2"] = cards
                if not cards:
                    del found["cardsV2"]
            if "text" in mask:
                self.edit(found, text)
                self.syntaxes.append(body.get("markupSyntax"))
            return JSONResponse(found)

        async def healthz(_: Request) -> Response:
            return JSONResponse({"ok": True})

        async def configure(request: Request) -> Response:
            """The Chat API's Configuration page: the app's HTTP endpoint URL and its
            Authentication Audience (a project number, or the URL itself)."""
            body = await request.json()
            url, audience = body.get("endpoint_url"), body.get("audience")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return _error(400, "INVALID_ARGUMENT", "endpoint_url must be an http(s) URL.")
            self.endpoint_url = url
            if isinstance(audience, str) and audience:
                self.audience = audience
            return JSONResponse({"endpoint_url": self.endpoint_url, "audience": self.audience})

        return Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/app", configure, methods=["PUT"]),
                Route("/token", token, methods=["POST"]),
                Route("/oauth2/v1/certs", certs),
                Route("/service_accounts/v1/metadata/x509/" + CHAT_ISSUER, certs),
                Route("/v1/spaces/{space}", get_space),
                Route("/v1/spaces/{space}/messages", messages, methods=["GET", "POST"]),
                Route("/v1/spaces/{space}/members", members),
                Route(
                    "/v1/spaces/{space}/messages/{id}",
                    message,
                    methods=["GET", "PATCH", "DELETE"],
                ),
            ]
        )

    def _space(self, request: Request, *, app_only: bool = True) -> FakeSpace | Response:
        """The space the path names, for a caller the stand-in answers (`_refused`); a
        user's delegated token only where not `app_only` (spaces.messages.list)."""
        refused = self._refused(request)
        if refused is not None:
            return refused
        if app_only and self.token_users.get(_bearer(request)) is not None:
            return _insufficient()
        space = self.spaces.get("spaces/" + request.path_params["space"])
        if space is None:
            return _error(404, "NOT_FOUND", "Requested entity was not found.")
        if not space.app_member and self.token_users.get(_bearer(request)) is None:
            # "the Chat app has to itself be a member of the space" (app authentication).
            return _error(403, "PERMISSION_DENIED", "The caller is not a member of the space.")
        return space

    def _refused(self, request: Request) -> Response | None:
        self.calls.append((request.method, request.url.path))
        space = request.path_params.get("space")
        space = f"spaces/{space}" if space else None
        token = _bearer(request)
        if not token or self.tokens.get(token, 0) < time.time():
            return _error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            )
        rule = next((r for r in self._limits if r.space in (None, space)), None)
        if rule is not None:
            rule.times -= 1
            if rule.times <= 0:
                self._limits.remove(rule)
            headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after else None
            return _error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Write requests' and limit 'Write requests "
                "per minute per space' of service 'chat.googleapis.com'.",
                headers,
            )
        return None

    async def _create(self, space: FakeSpace, query: Any, body: dict[str, Any]) -> Response:
        request_id = query.get("requestId")
        if request_id and (space.name, request_id) in self._request_ids:
            # "Specifying an existing request ID returns the message created with that ID
            # instead of creating a new message."
            first = self._request_ids[(space.name, request_id)]
            again = space.messages.get(first) or next(p for p in self.private if p["name"] == first)
            return JSONResponse(again)
        text = body.get("text")
        if not isinstance(text, str) or not text or len(text) > MAX_TEXT:
            return _error(400, "INVALID_ARGUMENT", "Message text is empty or too long.")
        message_id = query.get("messageId")
        if message_id is not None:
            if not message_id.startswith("client-") or len(message_id) > 63:
                return _error(400, "INVALID_ARGUMENT", "Invalid custom message ID.")
            if not re.fullmatch(r"client-[a-z0-9-]{1,56}", message_id):
                return _error(400, "INVALID_ARGUMENT", "Invalid custom message ID.")
            if space.find(f"{space.name}/messages/{message_id}") is not None:
                return _error(409, "ALREADY_EXISTS", "Message with this ID already exists.")
        thread = None
        option = query.get("messageReplyOption", "MESSAGE_REPLY_OPTION_UNSPECIFIED")
        wanted = body.get("thread") or {}
        if option != "MESSAGE_REPLY_OPTION_UNSPECIFIED" and wanted:
            thread = self._thread(space, wanted)
            if thread is None and option == "REPLY_MESSAGE_OR_FAIL":
                return _error(404, "NOT_FOUND", "Thread not found.")
        self.syntaxes.append(body.get("markupSyntax"))
        viewer = body.get("privateMessageViewer")
        if viewer is not None:
            return self._private(space, viewer, text, thread, request_id)
        made = self._store(space, self.app_user, text, thread=thread, message_id=message_id)
        if body.get("cardsV2"):
            made["cardsV2"] = body["cardsV2"]
        if thread is None and wanted.get("threadKey"):
            made["thread"]["threadKey"] = wanted["threadKey"]
        if request_id:
            self._request_ids[(space.name, request_id)] = made["name"]
        if self.echo_posts and self.endpoint_url:
            await self.deliver(self._event(space, made, self.app_user))
        return JSONResponse(made)

    def _private(
        self,
        space: FakeSpace,
        viewer: Any,
        text: str,
        thread: str | None,
        request_id: str | None,
    ) -> Response:
        """A private message ("Send private messages to Google Chat users",
        developers.google.com/workspace/chat/private-messages): `privateMessageViewer` a
        user of the space (`{"name": "users/{id}"}`), app authentication only (the caller
        here). Kept in `private`, not among the space's messages."""
        name = viewer.get("name") if isinstance(viewer, dict) else None
        member = next(
            (
                key
                for key, user in self.users.items()
                if user["name"] == name and key in space.members
            ),
            None,
        )
        if member is None:
            return _error(400, "INVALID_ARGUMENT", "Invalid private message viewer.")
        n = next(self._ids)
        made: dict[str, Any] = {
            "name": f"{space.name}/messages/p{n:06d}.p{n:06d}",
            "sender": self.app_user,
            "createTime": rfc3339(time.time()),
            "text": text,
            "thread": {"name": thread or f"{space.name}/threads/p{n:06d}"},
            "space": {"name": space.name},
            "privateMessageViewer": {"name": name},
        }
        self.private.append({**made, "viewer": member})
        if request_id:
            self._request_ids[(space.name, request_id)] = made["name"]
        return JSONResponse(made)

    def _thread(self, space: FakeSpace, wanted: dict[str, Any]) -> str | None:
        name, key = wanted.get("name"), wanted.get("threadKey")
        for known in space.messages.values():
            if name and known["thread"]["name"] == name:
                return str(name)
            if key and known["thread"].get("threadKey") == key:
                return str(known["thread"]["name"])
        return None

    def _list(self, space: FakeSpace, query: Any) -> Response:
        size = min(int(query.get("pageSize") or 25), 1000)
        if size < 0:
            return _error(400, "INVALID_ARGUMENT", "Invalid page size.")
        size = size or 25
        listed = list(space.messages.values())
        if query.get("showDeleted") == "true":
            listed += space.deleted.values()
        # `orderBy`: ascending (the default) or descending by create time; the stand-in
        # takes `ASC`/`DESC`, with or without the field's name before it.
        order = str(query.get("orderBy") or "ASC").split()[-1].upper()
        if order not in ("ASC", "DESC"):
            return _error(400, "INVALID_ARGUMENT", "Invalid order by.")
        ordered = sorted(listed, key=lambda m: m["createTime"], reverse=order == "DESC")
        found = query.get("filter")
        if found:
            wanted = _filter(found)
            if wanted is None:
                return _error(400, "INVALID_ARGUMENT", "Invalid filter.")
            ordered = [m for m in ordered if wanted(m)]
        start = int(query.get("pageToken") or 0)
        # With user authentication a sender may carry only its `name` and `type`
        # (developers.google.com/workspace/chat/api/reference/rest/v1/User): the stand-in
        # lists them so, the harder case.
        page = [
            {**m, "sender": {k: m["sender"][k] for k in ("name", "type")}} if "sender" in m else m
            for m in ordered[start : start + size]
        ]
        out: dict[str, Any] = {"messages": page} if page else {}
        if start + size < len(ordered):
            out["nextPageToken"] = str(start + size)
        return JSONResponse(out)

    def _members(self, space: FakeSpace, query: Any) -> Response:
        """The space's human memberships as the app sees them (its own left out)."""
        size = min(int(query.get("pageSize") or 100), 1000) or 100
        people = [self.users[key] for key in sorted(space.members)]
        listed = [
            {
                "name": f"{space.name}/members/{person['name'].rpartition('/')[2]}",
                "state": "JOINED",
                "role": "ROLE_MEMBER",
                "member": {k: person[k] for k in ("name", "displayName", "type")},
            }
            for person in people
        ]
        start = int(query.get("pageToken") or 0)
        page = listed[start : start + size]
        out: dict[str, Any] = {"memberships": page} if page else {}
        if start + size < len(listed):
            out["nextPageToken"] = str(start + size)
        return JSONResponse(out)


def _filter(text: str) -> Callable[[dict[str, Any]], bool] | None:
    """spaces.messages.list's `filter`: clauses joined by `AND`, each `create_time > "RFC
    3339"`, `create_time < "…"` (quoted) or `thread.name = spaces/S/threads/T` (the
    reference's examples); None for anything else (INVALID_ARGUMENT)."""
    after, before, thread = None, None, None
    for clause in text.split(" AND "):
        field_name, op, value = [*clause.split(None, 2), "", ""][:3]
        if field_name == "create_time" and op in (">", "<") and value.startswith('"'):
            try:
                moment = _when(value.strip('"'))
            except ValueError:
                return None
            after, before = (moment, before) if op == ">" else (after, moment)
        elif field_name == "thread.name" and op == "=" and value.startswith("spaces/"):
            thread = value
        else:
            return None

    def wanted(message: dict[str, Any]) -> bool:
        made = _when(message["createTime"])
        return (
            (after is None or made > after)
            and (before is None or made < before)
            and (thread is None or message["thread"]["name"] == thread)
        )

    return wanted


def _when(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""


def _insufficient() -> Response:
    """A user's delegated token (chat.messages.readonly) for a call it does not cover."""
    return _error(403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.")
