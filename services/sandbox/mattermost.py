"""A fake Mattermost server on loopback: one team, one channel, three users (a bot and two
people), the REST API v4 calls hookhub makes and the WebSocket, over real HTTP.

REST (api.mattermost.com; docs.mattermost.com/api/reference): `GET /users/me`,
`GET /users/{id}`, `GET /channels/{id}`, `POST /posts`, `PUT /posts/{id}/patch`,
`DELETE /posts/{id}`, `GET /channels/{id}/posts` (`page`/`per_page`/`before`, or `since`),
`POST /posts/ephemeral` (a post one user alone sees, kept in `ephemeral`; only for a user
with `create_post_ephemeral`, a system admin's: `system_admins`, else 403) and `POST
/channels/direct` (the two users' direct message channel, type `D`).
Every call needs `Authorization: Bearer <token>` of a known personal access token; errors
answer Mattermost's AppError JSON `{"id", "message", "detailed_error", "request_id",
"status_code"}`. What the server does and this fake copies (mattermost-server source):

- `since` (sqlstore `GetPostsSince`): every post of the channel whose `update_at` is greater,
  deleted ones included (`delete_at` set) and the old copies an edit leaves behind
  (`original_id` set, `delete_at` set: `SqlPostStore.Update`), and a thread's root, whose
  `update_at` a reply moves on; `order` lists only those updated since, oldest last.
- an edit keeps the post's id and sets `edit_at` and `update_at`; a patch with `props`
  replaces them whole (`PostPatch`).
- a deleted post is gone for `DELETE` and `PATCH` (404 `app.post.get.app_error`); deleting
  a root deletes its replies (sqlstore `Delete`: `WHERE Id = ? OR RootId = ?`, with
  `props.deleteBy`).
- a 429 (app/ratelimit.go) answers the text `limit exceeded` with `X-RateLimit-Limit`,
  `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds until the limit resets) and
  `Retry-After` (seconds).

WebSocket (`/api/v4/websocket`, developers.mattermost.com "WebSocket API"; wsapi
`WebSocketRouter.ServeWebSocket`): the client sends `{"seq": 1, "action":
"authentication_challenge", "data": {"token"}}`; a known token is answered `{"status": "OK",
"seq_reply": 1}` and a `hello` event, an unknown one by closing the socket. Events
`{"event", "data", "broadcast", "seq"}` count `seq` from 0 on each connection; `posted`,
`post_edited` and `post_deleted` carry the post as a JSON string in `data.post`. Nothing is
replayed on a new connection: what happened meanwhile is read with `since`.

Interactive message buttons (developers.mattermost.com/integrate/plugins/interactive-
messages; mattermost-server `DoPostAction`): a post keeps its `props.attachments[].actions`
as written; `buttons` lists them, and `click` is a person clicking one: the server POSTs the
button's `integration.url` a `PostActionIntegrationRequest` (`user_id`, `user_name`,
`channel_id`, `channel_name`, `team_id`, `team_domain`, `post_id`, `trigger_id`, `type`,
`data_source`, and the button's `context` as it was posted). Mattermost signs nothing;
`click(context=...)` sends another context (a forgery).

Custom slash commands (developers.mattermost.com/integrate/slash-commands/): `add_command`
registers one (trigger word, Request URL) and gives its token; `user_runs` is a person
typing it: the form POST with `Authorization: Token <token>` and the same `token` field, a
`trigger_id` and a `response_url` on this server (`/hooks/commands/{id}`), where what the
app answers is kept (`command_responses`).

For tests: `drop()` cuts every socket without a close frame; `skip_seq()` loses an event;
`rate_limit_next()` answers the next REST call 429; `user_posts`, `user_edits` and
`user_deletes` act as a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.sandbox.discord import _transport
from services.sandbox.slack import Hold
from shared.kernel.cache import Kept
from shared.kernel.http.tls import tls

API = "/api/v4"
# model.PostMessageMaxRunesV2.
MAX_MESSAGE_RUNES = 16383
Handler = Callable[[Request, "User"], Awaitable[Response]]
_ID_ALPHABET = string.ascii_lowercase + string.digits

TEAM = ("tm4mj8w8xtbzbrkc1iogzbtwzo", "acme", "Acme")
CHANNEL = ("ch7ubsjtjpr3zfuqqiyz3srgdc", "town-square", "Town Square")
# (id, username, first name, last name, nickname, is_bot)
BOT = ("bt9k1nwhxfrmxb8ii3zt6u7hzh", "hookhub", "", "", "", True)
ADA = ("us3mhnfn87g8tpa4h7wjy1nmxa", "ada", "Ada", "Lovelace", "", False)
GRACE = ("us5qk4gpjb8hfxd3rh1q6stydr", "grace", "Grace", "Hopper", "Amazing Grace", False)


def new_id() -> str:
    """A Mattermost id: 26 characters of [a-z0-9] (model.NewId)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


@dataclass
class User:
    id: str
    username: str
    first_name: str = ""
    last_name: str = ""
    nickname: str = ""
    is_bot: bool = False

    def body(self) -> dict[str, Any]:
        # The fields of GET /users/{id} (api.mattermost.com, "Get a user"; sanitised: no email).
        body: dict[str, Any] = {
            "id": self.id,
            "create_at": 1_700_000_000_000,
            "update_at": 1_700_000_000_000,
            "delete_at": 0,
            "username": self.username,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "nickname": self.nickname,
            "auth_service": "",
            "roles": "system_user",
            "locale": "en",
            "last_picture_update": 0,
        }
        if self.is_bot:
            body["is_bot"] = True
            body["bot_description"] = "hookhub"
        return body


@dataclass
class Channel:
    id: str
    name: str
    display_name: str
    team_id: str
    members: set[str] = field(default_factory=set)
    posts: dict[str, dict[str, Any]] = field(default_factory=dict)
    type: str = "O"  # open; `D` a direct message channel

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "create_at": 1_700_000_000_000,
            "update_at": 1_700_000_000_000,
            "delete_at": 0,
            "team_id": self.team_id,
            "type": self.type,
            "display_name": self.display_name,
            "name": self.name,
            "header": "",
            "purpose": "",
            "last_post_at": max((p["create_at"] for p in self.posts.values()), default=0),
            "total_msg_count": sum(1 for p in self.posts.values() if not p["delete_at"]),
            "creator_id": "",
        }


# The server's cache of pending post ids (PendingPostIDsCacheSize, server/channels/app/post.go).
PENDING_POST_IDS = 25_000


class MattermostError(Exception):
    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message = status, error_id, message

    def response(self) -> JSONResponse:
        return JSONResponse(
            {
                "id": self.error_id,
                "message": self.message,
                "detailed_error": "",
                "request_id": new_id(),
                "status_code": self.status,
            },
            self.status,
        )


def _session_expired() -> MattermostError:
    return MattermostError(
        401,
        "api.context.session_expired.app_error",
        "Invalid or expired session, please login again.",
    )


def _forbidden() -> MattermostError:
    return MattermostError(
        403, "api.context.permissions.app_error", "You do not have the appropriate permissions."
    )


def _post_not_found() -> MattermostError:
    return MattermostError(404, "app.post.get.app_error", "Unable to get the post.")


def _invalid(param: str) -> MattermostError:
    return MattermostError(
        400, "api.context.invalid_param.app_error", f"Invalid or missing {param} in request body."
    )


@dataclass
class _Socket:
    websocket: WebSocket
    user_id: str | None = None
    seq: int = 0
    closed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class FakeMattermost:
    """The server. `tokens` maps personal access tokens to user ids; `base_url` is set by
    whoever serves `app()`."""

    def __init__(self) -> None:
        self.base_url = ""
        self.team_id, self.team_name, self.team_display_name = TEAM
        self.users: dict[str, User] = {}
        self.tokens: dict[str, str] = {}
        self.channels: dict[str, Channel] = {}
        for spec in (BOT, ADA, GRACE):
            self.add_user(*spec)
        self.add_channel(*CHANNEL, members=[BOT[0], ADA[0], GRACE[0]])
        self.bot_token = new_id()
        self.tokens[self.bot_token] = BOT[0]
        self.requests: list[tuple[str, str]] = []  # (method, path) of every REST call
        # Who has `create_post_ephemeral` (Mattermost gives it to system admins alone).
        self.system_admins: set[str] = set()
        # Ephemeral posts made, each `{user_id, post}`: shown to that user alone, stored
        # nowhere else (the server keeps none).
        self.ephemeral: list[dict[str, Any]] = []
        self._last_ms = 0
        # Creates by `pending_post_id`, as the server's deduplicateCreatePost keeps them
        # (its window, its 25,000 ids): id → the post made, "" while it is being made.
        self.pending_ttl_seconds = 30.0
        self._pending: Kept[str, str] = Kept(PENDING_POST_IDS)
        self._sockets: list[_Socket] = []
        self._rate_limited: list[tuple[float, int]] = []  # (retry after, reset)
        self._limited_channels: dict[str, int] = {}
        self._limited_retry_after = 2
        self._holds: list[Hold] = []
        self.connections_total = 0
        self.authenticated_total = 0
        # Custom slash commands by trigger word: (Request URL, token); and what apps
        # answered at their response_urls, by the hook's id.
        self.slash_commands: dict[str, tuple[str, str]] = {}
        self.command_responses: dict[str, list[dict[str, Any]]] = {}

    # -- the world ----------------------------------------------------------------------------

    def hold_answers(self, channel_id: str, after: int = 0) -> Hold:
        """Posts made in `channel_id` after the first `after` are made (stored, broadcast)
        but answered only once the hold is released: a post the network has while its
        sender does not know it, by construction."""
        hold = Hold("create_post", channel_id, after)
        self._holds.append(hold)
        return hold

    def add_user(
        self,
        user_id: str,
        username: str,
        first_name: str = "",
        last_name: str = "",
        nickname: str = "",
        is_bot: bool = False,
    ) -> User:
        user = User(user_id, username, first_name, last_name, nickname, is_bot)
        self.users[user_id] = user
        return user

    def add_channel(
        self, channel_id: str, name: str, display_name: str, *, members: list[str] | None = None
    ) -> Channel:
        channel = Channel(channel_id, name, display_name, self.team_id, set(members or []))
        self.channels[channel_id] = channel
        return channel

    def token_for(self, user_id: str) -> str:
        token = new_id()
        self.tokens[token] = user_id
        return token

    def now_ms(self) -> int:
        """The server's clock in ms, strictly increasing (so that `since` is exact in tests)."""
        self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        return self._last_ms

    def post(self, post_id: str) -> dict[str, Any] | None:
        for channel in self.channels.values():
            if post_id in channel.posts:
                return channel.posts[post_id]
        return None

    def live_posts(self, channel_id: str) -> list[dict[str, Any]]:
        """The channel's posts not deleted (nor old copies), oldest first."""
        posts = self.channels[channel_id].posts.values()
        return sorted((p for p in posts if not p["delete_at"]), key=lambda p: p["create_at"])

    def rate_limit_next(self, retry_after: int = 2, reset: int | None = None) -> None:
        """The next REST call is answered 429 (Retry-After `retry_after`)."""
        self._rate_limited.append((retry_after, reset if reset is not None else retry_after))

    def rate_limit_posts_in(self, channel_id: str, times: int = 1, retry_after: int = 2) -> None:
        """The next `times` posts made in one channel are answered 429 (the server's limit
        is per token or address; a channel of its own lets a test tell a lane that waits
        from one that does not)."""
        self._limited_channels[channel_id] = times
        self._limited_retry_after = retry_after

    # -- people acting (what the web app would do) --------------------------------------------

    async def user_posts(
        self, user_id: str, channel_id: str, message: str, root_id: str = ""
    ) -> dict[str, Any]:
        return await self._create(user_id, channel_id, message, root_id, {})

    async def user_edits(self, post_id: str, message: str) -> dict[str, Any]:
        return await self._patch(post_id, message, None)

    async def user_deletes(self, post_id: str) -> None:
        post = self.post(post_id)
        await self._delete(post_id, post["user_id"] if post else "")

    def buttons(self, post_id: str) -> list[dict[str, Any]]:
        """The buttons of a post's attachments (none for a post that is gone)."""
        post = self.post(post_id) or {}
        return [
            action
            for attachment in (post.get("props") or {}).get("attachments") or []
            for action in attachment.get("actions") or []
            if action.get("type", "button") == "button"
        ]

    async def click(
        self,
        post_id: str,
        name: str,
        user_id: str,
        *,
        context: dict[str, Any] | None = None,
        trigger_id: str | None = None,
    ) -> httpx.Response:
        """`user_id` clicks the button `name` of a post: the server's request to the
        button's integration URL, with its context (or `context`: a forgery); `trigger_id`:
        the same click's request made again."""
        post = self.post(post_id)
        if post is None:
            raise AssertionError(f"no post {post_id}")
        [button] = [b for b in self.buttons(post_id) if b.get("name") == name]
        integration = button.get("integration") or {}
        channel, user = self.channels[post["channel_id"]], self.users[user_id]
        request = {
            "user_id": user.id,
            "user_name": user.username,
            "channel_id": channel.id,
            "channel_name": channel.name,
            "team_id": channel.team_id,
            "team_domain": self.team_name,
            "post_id": post_id,
            "trigger_id": trigger_id or f"{new_id()}:{user.id}:{self.now_ms()}",
            "type": "button",
            "data_source": "",
            "context": integration.get("context") if context is None else context,
        }
        async with httpx.AsyncClient(verify=tls(), timeout=15.0) as client:
            return await client.post(
                integration["url"],
                json=request,
                headers={"Content-Type": "application/json", "User-Agent": "Mattermost-Bot/1.1"},
            )

    def add_command(self, trigger: str, url: str) -> str:
        """A custom slash command `/trigger` POSTing to `url`: its token."""
        token = new_id()
        self.slash_commands[trigger] = (url, token)
        return token

    async def user_runs(
        self,
        user_id: str,
        channel_id: str,
        text: str,
        *,
        trigger: str = "hookhub",
        token: str | None = None,
        trigger_id: str | None = None,
    ) -> tuple[httpx.Response, str]:
        """`user_id` types `/trigger text` in a channel: the server's request to the
        command's URL, with its token (or `token`: a forgery); (the answer, the hook id of
        its response_url)."""
        url, own = self.slash_commands[trigger]
        channel, user = self.channels[channel_id], self.users[user_id]
        hook = new_id()
        self.command_responses[hook] = []
        given = own if token is None else token
        form = {
            "channel_id": channel.id,
            "channel_name": channel.name,
            "command": f"/{trigger}",
            "response_url": f"{self.base_url}/hooks/commands/{hook}",
            "team_domain": self.team_name,
            "team_id": channel.team_id,
            "text": text,
            "token": given,
            "trigger_id": trigger_id or f"{new_id()}:{user.id}:{self.now_ms()}",
            "user_id": user.id,
            "user_name": user.username,
        }
        async with httpx.AsyncClient(verify=tls(), timeout=15.0) as client:
            answer = await client.post(
                url,
                data=form,
                headers={"Authorization": f"Token {given}", "Accept": "application/json"},
            )
        return answer, hook

    async def _command_response(self, request: Request) -> Response:
        """A command's response_url: what the app answers, kept (five at most, as the
        server allows)."""
        kept = self.command_responses.get(request.path_params["hook_id"])
        if kept is None or len(kept) >= 5:
            return MattermostError(
                404, "web.command_webhook.invalid.app_error", "Invalid webhook."
            ).response()
        kept.append(json.loads(await request.body() or b"{}"))
        return PlainTextResponse("")

    async def _create(
        self, user_id: str, channel_id: str, message: str, root_id: str, props: dict[str, Any]
    ) -> dict[str, Any]:
        channel = self.channels[channel_id]
        now = self.now_ms()
        post: dict[str, Any] = {
            "id": new_id(),
            "create_at": now,
            "update_at": now,
            "edit_at": 0,
            "delete_at": 0,
            "is_pinned": False,
            "user_id": user_id,
            "channel_id": channel_id,
            "root_id": root_id,
            "original_id": "",
            "message": message,
            "type": "",
            "props": props,
            "hashtags": "",
            "pending_post_id": "",
            "reply_count": 0,
            "metadata": {},
        }
        if self.users[user_id].is_bot:
            post["props"] = {**props, "from_bot": "true"}
        channel.posts[post["id"]] = post
        if root_id:
            root = channel.posts[root_id]
            root["update_at"] = now  # a reply moves its root on (SqlPostStore.SaveMultiple)
            root["reply_count"] += 1
        sender = self.users[user_id]
        await self._broadcast(
            "posted",
            {
                "channel_display_name": channel.display_name,
                "channel_name": channel.name,
                "channel_type": channel.type,
                "post": json.dumps(post),
                "sender_name": "@" + sender.username,
                "set_online": True,
                "team_id": channel.team_id,
            },
            channel,
        )
        return dict(post)

    async def _patch(
        self, post_id: str, message: str | None, props: dict[str, Any] | None
    ) -> dict[str, Any]:
        post = self.post(post_id)
        if post is None or post["delete_at"]:
            raise _post_not_found()
        channel = self.channels[post["channel_id"]]
        now = self.now_ms()
        # The old version is kept as a deleted copy with a new id (SqlPostStore.Update).
        old = {**post, "id": new_id(), "original_id": post_id, "delete_at": now, "update_at": now}
        channel.posts[old["id"]] = old
        if message is not None:
            post["message"] = message
        if props is not None:
            post["props"] = props
        post["edit_at"] = post["update_at"] = now
        await self._broadcast("post_edited", {"post": json.dumps(post)}, channel)
        return dict(post)

    async def _delete(self, post_id: str, by: str = "") -> None:
        post = self.post(post_id)
        if post is None or post["delete_at"]:
            raise _post_not_found()
        channel = self.channels[post["channel_id"]]
        now = self.now_ms()
        for other in channel.posts.values():
            if other["id"] == post_id or (other["root_id"] == post_id and not other["delete_at"]):
                other["delete_at"] = other["update_at"] = now
                other["props"] = {**other["props"], "deleteBy": by}
        await self._broadcast("post_deleted", {"post": json.dumps(post)}, channel)

    # -- the WebSocket ------------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Authenticated sockets open now."""
        return sum(1 for s in self._sockets if not s.closed and s.user_id)

    def skip_seq(self) -> None:
        """The next event of every socket comes with its `seq` one further on, as if one had
        been lost on the way."""
        for socket in self._sockets:
            socket.seq += 1

    async def drop(self, user_id: str | None = None) -> None:
        """Every socket (of `user_id`, if given) cut without a close frame (a network drop)."""
        for socket in [s for s in self._sockets if not s.closed and user_id in (None, s.user_id)]:
            socket.closed = True
            transport = _transport(socket.websocket)
            if transport is not None:
                transport.abort()
            else:  # pragma: no cover - another server than uvicorn
                with contextlib.suppress(Exception):
                    await socket.websocket.close(1011)

    async def _broadcast(self, event: str, data: dict[str, Any], channel: Channel) -> None:
        for socket in list(self._sockets):
            if socket.closed or socket.user_id not in channel.members:
                continue
            broadcast = {
                "omit_users": None,
                "user_id": "",
                "channel_id": channel.id,
                "team_id": "",
            }
            await self._event(socket, event, data, broadcast)

    async def _event(
        self, socket: _Socket, event: str, data: dict[str, Any], broadcast: dict[str, Any]
    ) -> None:
        async with socket.lock:
            if socket.closed:
                return
            payload = {"event": event, "data": data, "broadcast": broadcast, "seq": socket.seq}
            socket.seq += 1
            try:
                await socket.websocket.send_text(json.dumps(payload))
            except Exception:  # the peer went away
                socket.closed = True

    async def _socket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        socket = _Socket(websocket)
        self._sockets.append(socket)
        self.connections_total += 1
        try:
            while not socket.closed:
                raw = await websocket.receive_text()
                try:
                    request = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(request, dict):
                    continue
                await self._action(socket, request)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            socket.closed = True
            self._sockets.remove(socket)

    async def _action(self, socket: _Socket, request: dict[str, Any]) -> None:
        seq = request.get("seq")
        if request.get("action") != "authentication_challenge":
            if socket.user_id is None:
                await self._reply_error(
                    socket, seq, "api.web_socket_router.not_authenticated.app_error"
                )
            return
        if not isinstance(seq, int) or seq <= 0:
            await self._reply_error(socket, seq, "api.web_socket_router.bad_seq.app_error")
            return
        if socket.user_id is not None:
            return  # already authenticated: ignored, as the server does
        data = request.get("data")
        token = data.get("token") if isinstance(data, dict) else None
        user_id = self.tokens.get(token) if isinstance(token, str) else None
        if user_id is None:
            # The server drops the connection on a token it does not know (gorilla's
            # Conn.Close: the network connection closed, no close frame).
            socket.closed = True
            transport = _transport(socket.websocket)
            if transport is not None:
                transport.abort()
            else:  # pragma: no cover - another server than uvicorn
                await socket.websocket.close()
            return
        socket.user_id = user_id
        self.authenticated_total += 1
        async with socket.lock:
            await socket.websocket.send_text(json.dumps({"status": "OK", "seq_reply": seq}))
        hello = {"server_version": "10.5.0.0.fake", "connection_id": new_id()}
        broadcast = {"omit_users": None, "user_id": user_id, "channel_id": "", "team_id": ""}
        await self._event(socket, "hello", hello, broadcast)

    @staticmethod
    async def _reply_error(socket: _Socket, seq: Any, error_id: str) -> None:
        answer = {
            "status": "FAIL",
            "seq_reply": seq,
            "error": {"id": error_id, "message": error_id, "status_code": 400},
        }
        async with socket.lock:
            await socket.websocket.send_text(json.dumps(answer))

    # -- REST -----------------------------------------------------------------------------------

    def app(self) -> Starlette:
        async def healthz(_: Request) -> JSONResponse:
            return JSONResponse({"ok": True})

        return Starlette(
            routes=[
                Route("/healthz", healthz),
                Route(API + "/users/me", self._rest(self._me)),
                Route(API + "/users/me/teams", self._rest(self._my_teams)),
                Route(API + "/users/me/teams/{team_id}/channels", self._rest(self._my_channels)),
                Route(API + "/users/{user_id}", self._rest(self._user)),
                Route(API + "/channels/{channel_id}", self._rest(self._channel)),
                Route(API + "/channels/{channel_id}/posts", self._rest(self._posts)),
                Route(API + "/posts", self._rest(self._create_post), methods=["POST"]),
                Route(
                    API + "/posts/ephemeral",
                    self._rest(self._create_ephemeral),
                    methods=["POST"],
                ),
                Route(API + "/channels/direct", self._rest(self._direct_channel), methods=["POST"]),
                Route(
                    API + "/posts/{post_id}/patch", self._rest(self._patch_post), methods=["PUT"]
                ),
                Route(API + "/posts/{post_id}", self._rest(self._delete_post), methods=["DELETE"]),
                WebSocketRoute(API + "/websocket", self._socket),
                Route("/hooks/commands/{hook_id}", self._command_response, methods=["POST"]),
            ]
        )

    def _rest(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            self.requests.append((request.method, request.url.path))
            if self._rate_limited:
                retry_after, reset = self._rate_limited.pop(0)
                return _limit_exceeded(retry_after, reset)
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            user_id = self.tokens.get(token) if scheme.lower() == "bearer" else None
            if user_id is None:
                return _session_expired().response()
            try:
                return await handler(request, self.users[user_id])
            except MattermostError as exc:
                return exc.response()

        return endpoint

    def _member_channel(self, channel_id: str, user: User) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise MattermostError(
                404, "app.channel.get.existing.app_error", "Unable to find the existing channel."
            )
        if user.id not in channel.members:
            raise _forbidden()
        return channel

    async def _me(self, request: Request, user: User) -> Response:
        return JSONResponse(user.body())

    async def _my_teams(self, request: Request, user: User) -> Response:
        # GET /users/me/teams: the teams of the user (one team here, every user in it).
        team = {"id": self.team_id, "name": self.team_name, "display_name": self.team_display_name}
        return JSONResponse([team])

    async def _my_channels(self, request: Request, user: User) -> Response:
        # GET /users/me/teams/{team_id}/channels: the team's channels the user is in.
        team_id = request.path_params["team_id"]
        mine = [
            c.body()
            for c in self.channels.values()
            if c.team_id == team_id and user.id in c.members
        ]
        return JSONResponse(mine)

    async def _user(self, request: Request, user: User) -> Response:
        found = self.users.get(request.path_params["user_id"])
        if found is None:
            raise MattermostError(404, "app.user.missing_account.const", "Unable to find the user.")
        return JSONResponse(found.body())

    async def _channel(self, request: Request, user: User) -> Response:
        return JSONResponse(self._member_channel(request.path_params["channel_id"], user).body())

    async def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise _invalid("post") from None
        if not isinstance(body, dict):
            raise _invalid("post")
        return body

    async def _create_post(self, request: Request, user: User) -> Response:
        body = await self._body(request)
        channel_id, message = body.get("channel_id"), body.get("message", "")
        if not isinstance(channel_id, str) or not isinstance(message, str):
            raise _invalid("channel_id")
        channel = self._member_channel(channel_id, user)
        if self._limited_channels.get(channel_id):
            self._limited_channels[channel_id] -= 1
            return _limit_exceeded(self._limited_retry_after, self._limited_retry_after)
        if len(message) > MAX_MESSAGE_RUNES:
            raise MattermostError(
                400, "model.post.is_valid.message_length.app_error", "Invalid Message property"
            )
        root_id = body.get("root_id") or ""
        if root_id:
            root = channel.posts.get(root_id)
            if root is None or root["delete_at"]:
                raise MattermostError(
                    400, "api.post.create_post.root_id.app_error", "Invalid RootId parameter."
                )
            if root["root_id"]:
                root_id = root["root_id"]
        props = body.get("props") or {}
        if not isinstance(props, dict):
            raise _invalid("props")
        pending = body.get("pending_post_id")
        pending = pending if isinstance(pending, str) else ""
        if pending:
            # server/channels/app/post.go deduplicateCreatePost: an id seen within the
            # window answers with the post it made; one still being made, a 500.
            seen = self._pending.fresh(pending)
            if seen is not None:
                if not seen[0]:
                    raise MattermostError(  # its id and status the server's; the text ours
                        500,
                        "api.post.deduplicate_create_post.pending",
                        "a post with this pending_post_id is being made",
                    )
                found = self.post(seen[0])
                if found is not None:
                    return JSONResponse(found, 201)
            self._pending.put(pending, "", self.pending_ttl_seconds)
        post = await self._create(user.id, channel_id, message, root_id, props)
        if pending:
            post["pending_post_id"] = pending
            self._pending.put(pending, post["id"], self.pending_ttl_seconds)
        for hold in self._holds:
            await hold.passing("create_post", channel_id)
        return JSONResponse(post, 201)

    async def _create_ephemeral(self, request: Request, user: User) -> Response:
        """`POST /posts/ephemeral` `{user_id, post: {channel_id, message}}`: "Must have
        create_post_ephemeral permission (currently only given to system admin)"
        (docs.mattermost.com/api/reference/create-post-ephemeral)."""
        if user.id not in self.system_admins:
            raise _forbidden()
        body = await self._body(request)
        target, post = body.get("user_id"), body.get("post")
        if not isinstance(target, str) or target not in self.users:
            raise _invalid("user_id")
        if not isinstance(post, dict) or not isinstance(post.get("message"), str):
            raise _invalid("post")
        channel = self._member_channel(str(post.get("channel_id") or ""), user)
        now = self.now_ms()
        made = {
            "id": new_id(),
            "create_at": now,
            "update_at": now,
            "user_id": user.id,
            "channel_id": channel.id,
            "root_id": str(post.get("root_id") or ""),
            "message": post["message"],
            "type": "system_ephemeral",
            "props": {},
        }
        self.ephemeral.append({"user_id": target, "post": made})
        return JSONResponse(made, 201)

    async def _direct_channel(self, request: Request, user: User) -> Response:
        """`POST /channels/direct` with two user ids, the caller's among them: their
        direct message channel (the one they have, or made), type `D`, named
        `{id}__{id}` in order."""
        try:
            ids = await request.json()
        except ValueError:
            raise _invalid("user_ids") from None
        if (
            not isinstance(ids, list)
            or len(ids) != 2
            or not all(isinstance(i, str) and i in self.users for i in ids)
        ):
            raise _invalid("user_ids")
        if user.id not in ids:
            raise _forbidden()
        name = "__".join(sorted(ids))
        found = next((c for c in self.channels.values() if c.name == name), None)
        if found is None:
            found = Channel(new_id(), name, "", "", set(ids), type="D")
            self.channels[found.id] = found
        return JSONResponse(found.body(), 201)

    def direct_posts(self, user_id: str) -> list[dict[str, Any]]:
        """The posts in `user_id`'s direct message channels, oldest first."""
        found = [
            post
            for channel in self.channels.values()
            if channel.type == "D" and user_id in channel.members
            for post in channel.posts.values()
        ]
        return sorted(found, key=lambda p: p["create_at"])

    async def _patch_post(self, request: Request, user: User) -> Response:
        post = self.post(request.path_params["post_id"])
        if post is None or post["delete_at"]:
            raise _post_not_found()
        if post["user_id"] != user.id:
            raise _forbidden()  # editing others' posts needs edit_others_posts
        body = await self._body(request)
        message, props = body.get("message"), body.get("props")
        if message is not None and not isinstance(message, str):
            raise _invalid("message")
        if props is not None and not isinstance(props, dict):
            raise _invalid("props")
        if post["props"].get("from_bot") and props is not None:
            props = {**props, "from_bot": "true"}
        return JSONResponse(await self._patch(post["id"], message, props))

    async def _delete_post(self, request: Request, user: User) -> Response:
        post = self.post(request.path_params["post_id"])
        if post is None or post["delete_at"]:
            raise _post_not_found()
        if post["user_id"] != user.id:
            raise _forbidden()  # deleting others' posts needs delete_others_posts
        await self._delete(post["id"], user.id)
        return JSONResponse({"status": "OK"})

    async def _posts(self, request: Request, user: User) -> Response:
        channel = self._member_channel(request.path_params["channel_id"], user)
        query = request.query_params
        since = query.get("since")
        if since is not None:
            try:
                since_ms = int(since)
            except ValueError:
                raise _invalid("since") from None
            changed = [p for p in channel.posts.values() if p["update_at"] > since_ms]
            changed.sort(key=lambda p: p["create_at"], reverse=True)
            changed = changed[:1000]
            posts = {p["id"]: p for p in changed}
            for p in changed:  # the roots of the replies, outside `order`
                if p["root_id"] and p["root_id"] in channel.posts:
                    posts.setdefault(p["root_id"], channel.posts[p["root_id"]])
            return JSONResponse(_post_list([p["id"] for p in changed], posts))
        try:
            page = int(query.get("page", "0"))
            per_page = min(int(query.get("per_page", "60")), 200)
        except ValueError:
            raise _invalid("page") from None
        live = [p for p in channel.posts.values() if not p["delete_at"]]
        live.sort(key=lambda p: p["create_at"], reverse=True)
        before = query.get("before")
        if before:
            anchor = channel.posts.get(before)
            if anchor is None:
                return JSONResponse(_post_list([], {}))
            live = [p for p in live if p["create_at"] < anchor["create_at"]]
        listed = live[page * per_page : (page + 1) * per_page]
        posts = {p["id"]: p for p in listed}
        for p in listed:
            if p["root_id"] and p["root_id"] in channel.posts:
                posts.setdefault(p["root_id"], channel.posts[p["root_id"]])
        return JSONResponse(_post_list([p["id"] for p in listed], posts))


def _limit_exceeded(retry_after: float, reset: float) -> Response:
    # The server's 429 (app/ratelimit.go, throttled's headers).
    return PlainTextResponse(
        "limit exceeded\n",
        429,
        headers={
            "X-RateLimit-Limit": "10",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset),
            "Retry-After": str(retry_after),
        },
    )


def _post_list(order: list[str], posts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A PostList (api.mattermost.com, "Get posts for a channel": order, posts, next_post_id,
    prev_post_id, has_next)."""
    return {
        "order": order,
        "posts": posts,
        "next_post_id": "",
        "prev_post_id": "",
        "has_next": False,
    }
