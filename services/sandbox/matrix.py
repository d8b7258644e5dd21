"""A stand-in Matrix homeserver with one application service, strict where hookhub's calls
meet the spec (spec.matrix.org v1.17: Client-Server API, Application Service API).

One room (`!sandbox:<server>`, room version 11, public) with three people (`@alice`,
`@bob`, `@carol`) and the appservice's own user (`sender_localpart`, power 50: it may
redact others' events). The Client-Server calls hookhub makes, under `/_matrix/client/v3`:

- `GET /account/whoami`; `POST /register` (`m.login.application_service`: only the
  appservice, only inside its exclusive namespace, `M_USER_IN_USE` for a user that exists);
- `PUT /profile/{userId}/displayname|avatar_url` (oneself only; an avatar is an mxc:// URI);
  `GET /profile/{userId}`; `POST /_matrix/media/v3/upload` (the bytes kept in `media`);
- `POST /rooms/{roomId}/join`, `POST /rooms/{roomId}/invite` (a room that is `invite`
  only takes the invited);
- `GET /rooms/{roomId}/state/m.room.name/`; `GET /rooms/{roomId}/event/{eventId}`;
- `PUT /rooms/{roomId}/send/{eventType}/{txnId}`: members only; a retransmission (same
  user, same path) answers the first event's id ("Transaction identifiers");
- `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`: one's own events, or anyone's with
  power 50; the redacted event keeps no content; the redaction names it in
  `content.redacts` (room version 11);
- `GET /rooms/{roomId}/messages`: `dir` `b`/`f`, `from` (optional), `limit`; `end` absent
  at the timeline's end; an edited event carries its latest edit in
  `unsigned.m.relations.m.replace` (server-side aggregation).

The appservice authenticates with `Authorization: Bearer <as_token>` and acts as a user of
its namespace with `?user_id=`; people with their own access tokens. Every refusal is
`{"errcode", "error"}`; `rate_limit()` makes the next calls 429 `M_LIMIT_EXCEEDED` with
`retry_after_ms` (and `Retry-After` unless told not to).

Transactions: every event goes on a queue; `push()` sends what is queued to the
appservice's `url` + `/_matrix/app/v1/transactions/{txnId}`, txnIds counting up, with
`Authorization: Bearer <hs_token>`; `push(again=True)` sends the last one again, the same
txnId and events, as a homeserver does when an answer was lost. Nothing is pushed unless a
test asks: no background task, no timing.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.kernel.http.tls import tls

CLIENT = "/_matrix/client/v3"
PEOPLE = ("alice", "bob", "carol")
EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _refuse(status: int, errcode: str, error: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"errcode": errcode, "error": error, **extra}, status_code=status)


class Refused(Exception):
    def __init__(self, status: int, errcode: str, error: str) -> None:
        super().__init__(error)
        self.response = _refuse(status, errcode, error)


@dataclass
class Appservice:
    as_token: str
    hs_token: str
    url: str
    sender_localpart: str
    user_regex: str


@dataclass
class Room:
    id: str
    name: str
    join_rule: str = "public"
    members: set[str] = field(default_factory=set)
    invited: set[str] = field(default_factory=set)
    power: dict[str, int] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Limit:
    times: int
    retry_after_ms: int
    header: bool
    room: str | None = None


class FakeMatrix:
    def __init__(self, server_name: str = "sandbox.test") -> None:
        self.server_name = server_name
        self.appservice: Appservice | None = None
        self.people: dict[str, str] = {}  # access token → user id
        self.users: set[str] = set()
        self.profiles: dict[str, dict[str, str]] = {}
        self.rooms: dict[str, Room] = {}
        self.media: dict[str, tuple[bytes, str]] = {}  # media id → (bytes, content type)
        self.queue: list[dict[str, Any]] = []  # events not yet pushed
        self.pushed: list[tuple[str, list[dict[str, Any]], int]] = []  # (txnId, events, status)
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, query)
        self._txn_ids = itertools.count(1)
        self._event_ids = itertools.count(1)
        # Event times: a second apart from 2026-01-01, so that tests can name a moment.
        self._clock = itertools.count(EPOCH_MS, 1000)
        self._sent: dict[tuple[str, str], str] = {}  # (user, path) → event id
        self._limits: list[_Limit] = []
        # Push each event sent through the API to the appservice before answering the send.
        self.echo_sends = False
        for name in PEOPLE:
            user = self.user_id(name)
            self.users.add(user)
            self.people[f"token-{name}"] = user
            self.profiles[user] = {"displayname": name.title()}
        self.room = self.add_room("sandbox", "Sandbox")

    # -- set-up ----------------------------------------------------------------------------

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def add_room(self, localpart: str, name: str, join_rule: str = "public") -> Room:
        room = Room(id=f"!{localpart}:{self.server_name}", name=name, join_rule=join_rule)
        room.members.update(self.user_id(n) for n in PEOPLE)
        self.rooms[room.id] = room
        if self.appservice is not None:
            self._seat_bot(room)
        return room

    def register_appservice(self, registration: dict[str, Any]) -> Appservice:
        """The registration as hookhub generates it (`registration_yaml`, parsed)."""
        users = registration["namespaces"]["users"]
        assert users and users[0]["exclusive"] is True, "hookhub's namespace is exclusive"
        self.appservice = Appservice(
            as_token=registration["as_token"],
            hs_token=registration["hs_token"],
            url=registration["url"],
            sender_localpart=registration["sender_localpart"],
            user_regex=users[0]["regex"],
        )
        self.users.add(self.bot)
        for room in self.rooms.values():
            self._seat_bot(room)
        return self.appservice

    def _seat_bot(self, room: Room) -> None:
        room.members.add(self.bot)
        room.power[self.bot] = 50

    @property
    def bot(self) -> str:
        assert self.appservice is not None
        return self.user_id(self.appservice.sender_localpart)

    def in_namespace(self, user_id: str) -> bool:
        assert self.appservice is not None
        return user_id == self.bot or re.fullmatch(self.appservice.user_regex, user_id) is not None

    def rate_limit(
        self,
        times: int = 1,
        retry_after_ms: int = 2000,
        header: bool = True,
        room: str | None = None,
    ) -> None:
        """The next `times` calls (about `room`, if given) are refused 429
        `M_LIMIT_EXCEEDED`."""
        self._limits.append(_Limit(times, retry_after_ms, header, room))

    # -- what people do --------------------------------------------------------------------

    def _append(
        self, room: Room, sender: str, type: str, content: dict[str, Any]
    ) -> dict[str, Any]:
        event = {
            "type": type,
            "event_id": f"${next(self._event_ids)}sandbox",
            "room_id": room.id,
            "sender": sender,
            "origin_server_ts": next(self._clock),
            "content": content,
            "unsigned": {},
        }
        room.timeline.append(event)
        # As it is now: a later redaction does not change what was queued.
        self.queue.append(copy.deepcopy(event))
        return event

    def says(
        self, person: str, content: dict[str, Any], room: Room | None = None
    ) -> dict[str, Any]:
        """`person` (alice, bob, carol) sends an `m.room.message` with this content."""
        return self._append(room or self.room, self.user_id(person), "m.room.message", content)

    def edits(
        self, person: str, event_id: str, body: str, room: Room | None = None
    ) -> dict[str, Any]:
        """`person` replaces the text of their `event_id` (an `m.replace`, with the fallback
        body a client that knows no edits shows: "* " and the new text)."""
        content = {
            "msgtype": "m.text",
            "body": f"* {body}",
            "m.new_content": {"msgtype": "m.text", "body": body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        }
        return self.says(person, content, room)

    def redacts(self, person: str, event_id: str, room: Room | None = None) -> dict[str, Any]:
        room = room or self.room
        return self._redact(room, self.user_id(person), event_id)

    def event(self, event_id: str) -> dict[str, Any]:
        for room in self.rooms.values():
            for event in room.timeline:
                if event["event_id"] == event_id:
                    return event
        raise KeyError(event_id)

    async def push(self, again: bool = False, hs_token: str | None = None) -> int:
        """The queued events as one transaction to the appservice (or the last one again);
        the appservice's HTTP status."""
        assert self.appservice is not None
        if again:
            txn_id, events, _ = self.pushed[-1]
        else:
            txn_id, events = str(next(self._txn_ids)), self.queue
            self.queue = []
        url = f"{self.appservice.url.rstrip('/')}/_matrix/app/v1/transactions/{txn_id}"
        token = self.appservice.hs_token if hs_token is None else hs_token
        async with httpx.AsyncClient(verify=tls(), timeout=15.0) as client:
            answer = await client.put(
                url, json={"events": events}, headers={"Authorization": f"Bearer {token}"}
            )
        self.pushed.append((txn_id, events, answer.status_code))
        return answer.status_code

    def shown(self, room: Room) -> list[dict[str, Any]]:
        """A room's messages as a client shows them: edits applied, redacted ones gone, a
        reply's or thread message's thread its root's event id."""
        shown = []
        for event in room.timeline:
            content = event["content"]
            if event["type"] != "m.room.message" or not content:
                continue
            relates = content.get("m.relates_to") or {}
            if relates.get("rel_type") == "m.replace":
                continue
            latest = self._aggregated(room, event)["unsigned"].get("m.relations", {})
            edit = latest.get("m.replace")
            text = edit["content"]["m.new_content"].get("body", "") if edit else content["body"]
            thread = (
                relates.get("event_id")
                if relates.get("rel_type") == "m.thread"
                else (relates.get("m.in_reply_to") or {}).get("event_id")
            )
            sender = event["sender"]
            shown.append(
                {
                    "id": event["event_id"],
                    "user": {
                        "id": sender,
                        "name": self.profiles.get(sender, {}).get("displayname", sender),
                    },
                    "text": text,
                    "thread": thread,
                    "edited": edit is not None,
                    "from_hookhub": self.appservice is not None and self.in_namespace(sender),
                }
            )
        return shown

    # -- the Client-Server API -------------------------------------------------------------

    def _requester(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        token = (
            header[7:] if header.startswith("Bearer ") else request.query_params.get("access_token")
        )
        if not token:
            raise Refused(401, "M_MISSING_TOKEN", "Missing access token")
        appservice = self.appservice
        if appservice is not None and token == appservice.as_token:
            user = request.query_params.get("user_id") or self.bot
            if not self.in_namespace(user):
                raise Refused(
                    403, "M_FORBIDDEN", "Application service cannot masquerade as this user"
                )
            if user not in self.users:
                raise Refused(
                    403, "M_FORBIDDEN", "Application service has not registered this user"
                )
            return user
        person = self.people.get(token)
        if person is None:
            raise Refused(401, "M_UNKNOWN_TOKEN", "Unknown access token")
        return person

    def _room(self, room_id: str) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            raise Refused(403, "M_FORBIDDEN", "You are not a member of this room")
        return room

    def _member(self, room_id: str, user: str) -> Room:
        room = self._room(room_id)
        if user not in room.members:
            raise Refused(403, "M_FORBIDDEN", f"User {user} not in room {room_id}")
        return room

    def _redact(self, room: Room, user: str, event_id: str) -> dict[str, Any]:
        target = next((e for e in room.timeline if e["event_id"] == event_id), None)
        if target is None:
            raise Refused(404, "M_NOT_FOUND", "Event not found")
        if target["sender"] != user and room.power.get(user, 0) < 50:
            raise Refused(403, "M_FORBIDDEN", "You don't have permission to redact events")
        target["content"] = {}
        target["unsigned"] = {"redacted_because": {"sender": user}}
        return self._append(room, user, "m.room.redaction", {"redacts": event_id})

    def _aggregated(self, room: Room, event: dict[str, Any]) -> dict[str, Any]:
        """The event with its latest valid edit bundled ("Server-side aggregation")."""
        edits = [
            e
            for e in room.timeline
            if e["type"] == event["type"]
            and e["sender"] == event["sender"]
            and e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
            and e["content"]["m.relates_to"].get("event_id") == event["event_id"]
            and "m.new_content" in e["content"]
        ]
        if not edits:
            return event
        unsigned = {**event["unsigned"], "m.relations": {"m.replace": edits[-1]}}
        return {**event, "unsigned": unsigned}

    def app(self) -> Starlette:
        def handler(work: Any) -> Any:
            async def endpoint(request: Request) -> Response:
                self.requests.append((request.method, request.url.path, dict(request.query_params)))
                for limit in self._limits:
                    if limit.times > 0 and (limit.room is None or limit.room in request.url.path):
                        limit.times -= 1
                        headers = (
                            {"Retry-After": str(-(-limit.retry_after_ms // 1000))}
                            if limit.header
                            else {}
                        )
                        return JSONResponse(
                            {
                                "errcode": "M_LIMIT_EXCEEDED",
                                "error": "Too many requests",
                                "retry_after_ms": limit.retry_after_ms,
                            },
                            status_code=429,
                            headers=headers,
                        )
                try:
                    user = self._requester(request)
                    body: dict[str, Any] = {}
                    if request.method in ("PUT", "POST"):
                        try:
                            body = await request.json()
                        except ValueError:
                            return _refuse(400, "M_NOT_JSON", "Content not JSON.")
                        if not isinstance(body, dict):
                            return _refuse(400, "M_BAD_JSON", "Content must be a JSON object.")
                    return JSONResponse(await work(request, user, body, **request.path_params))
                except Refused as refused:
                    return refused.response

            return endpoint

        async def whoami(request: Request, user: str, body: dict[str, Any]) -> dict[str, Any]:
            return {"user_id": user}

        async def register(request: Request, user: str, body: dict[str, Any]) -> dict[str, Any]:
            if self.appservice is None or user != self.bot:
                raise Refused(401, "M_UNKNOWN_TOKEN", "only an application service registers")
            if body.get("type") != "m.login.application_service":
                raise Refused(400, "M_BAD_JSON", "type must be m.login.application_service")
            if body.get("inhibit_login") is not True:
                raise Refused(400, "M_APPSERVICE_LOGIN_UNSUPPORTED", "set inhibit_login")
            new = self.user_id(str(body.get("username", "")))
            if not re.fullmatch(r"@[a-z0-9._=/-]+:.+", new):
                raise Refused(400, "M_INVALID_USERNAME", "User ID can only contain a-z0-9._=-/")
            if not self.in_namespace(new):
                raise Refused(400, "M_EXCLUSIVE", "This user ID is outside your namespace")
            if new in self.users:
                raise Refused(400, "M_USER_IN_USE", "User ID already taken.")
            self.users.add(new)
            self.profiles[new] = {"displayname": new[1:].split(":")[0]}
            return {"user_id": new}

        async def profile(
            request: Request, user: str, body: dict[str, Any], user_id: str, field: str
        ) -> dict[str, Any]:
            if field not in ("displayname", "avatar_url"):
                raise Refused(404, "M_UNRECOGNIZED", "Unrecognized request")
            if user_id != user:
                raise Refused(403, "M_FORBIDDEN", "Cannot set another user's profile")
            value = body.get(field)
            if not isinstance(value, str):
                raise Refused(400, "M_BAD_JSON", f"{field} must be a string")
            if field == "avatar_url" and not value.startswith("mxc://"):
                raise Refused(400, "M_INVALID_PARAM", "avatar_url must be an mxc:// URI")
            self.profiles.setdefault(user, {})[field] = value
            return {}

        async def get_profile(
            request: Request, user: str, body: dict[str, Any], user_id: str
        ) -> dict[str, Any]:
            if user_id not in self.users:
                raise Refused(404, "M_NOT_FOUND", "Profile was not found")
            return dict(self.profiles.get(user_id, {}))

        async def join(
            request: Request, user: str, body: dict[str, Any], room_id: str
        ) -> dict[str, Any]:
            room = self._room(room_id)
            if room.join_rule != "public" and user not in room.invited | room.members:
                raise Refused(403, "M_FORBIDDEN", "You are not invited to this room.")
            room.members.add(user)
            room.invited.discard(user)
            return {"room_id": room.id}

        async def invite(
            request: Request, user: str, body: dict[str, Any], room_id: str
        ) -> dict[str, Any]:
            room = self._member(room_id, user)
            invitee = str(body.get("user_id"))
            if invitee in room.members:
                raise Refused(403, "M_FORBIDDEN", f"{invitee} is already in the room.")
            room.invited.add(invitee)
            return {}

        async def name(
            request: Request, user: str, body: dict[str, Any], room_id: str
        ) -> dict[str, Any]:
            room = self._member(room_id, user)
            if not room.name:
                raise Refused(404, "M_NOT_FOUND", "Event not found.")
            return {"name": room.name}

        async def get_event(
            request: Request, user: str, body: dict[str, Any], room_id: str, event_id: str
        ) -> dict[str, Any]:
            room = self._member(room_id, user)
            for event in room.timeline:
                if event["event_id"] == event_id:
                    return dict(event)
            raise Refused(404, "M_NOT_FOUND", "Event not found.")

        async def send(
            request: Request,
            user: str,
            body: dict[str, Any],
            room_id: str,
            event_type: str,
            txn_id: str,
        ) -> dict[str, Any]:
            room = self._member(room_id, user)
            key = (user, request.url.path)
            if key in self._sent:
                return {"event_id": self._sent[key]}
            event = self._append(room, user, event_type, body)
            self._sent[key] = event["event_id"]
            if self.echo_sends:  # the transaction with it goes out before the send answers
                await self.push()
            return {"event_id": event["event_id"]}

        async def redact(
            request: Request,
            user: str,
            body: dict[str, Any],
            room_id: str,
            event_id: str,
            txn_id: str,
        ) -> dict[str, Any]:
            room = self._member(room_id, user)
            key = (user, request.url.path)
            if key in self._sent:
                return {"event_id": self._sent[key]}
            redaction = self._redact(room, user, event_id)
            self._sent[key] = redaction["event_id"]
            return {"event_id": redaction["event_id"]}

        async def messages(
            request: Request, user: str, body: dict[str, Any], room_id: str
        ) -> dict[str, Any]:
            room = self._member(room_id, user)
            query = request.query_params
            direction = query.get("dir", "b")
            if direction not in ("b", "f"):
                raise Refused(400, "M_INVALID_PARAM", "dir must be b or f")
            limit = min(int(query.get("limit", "10")), 1000)
            # A token is a position between events: `t<n>` is before the n-th event.
            size = len(room.timeline)
            start = query.get("from")
            at = int(start[1:]) if start else (size if direction == "b" else 0)
            if direction == "b":
                chosen = room.timeline[max(at - limit, 0) : at][::-1]
                after = max(at - limit, 0)
                end = f"t{after}" if after > 0 else None
            else:
                chosen = room.timeline[at : at + limit]
                after = min(at + limit, size)
                end = f"t{after}" if after < size else None
            answer: dict[str, Any] = {
                "start": f"t{at}",
                "chunk": [self._aggregated(room, e) for e in chosen],
            }
            if end is not None:
                answer["end"] = end
            return answer

        async def upload(request: Request) -> Response:
            self.requests.append((request.method, request.url.path, dict(request.query_params)))
            try:
                self._requester(request)
            except Refused as refused:
                return refused.response
            data = await request.body()
            media_id = f"m{next(self._event_ids)}"
            self.media[media_id] = (data, request.headers.get("content-type", ""))
            return JSONResponse({"content_uri": f"mxc://{self.server_name}/{media_id}"})

        async def healthz(_: Request) -> JSONResponse:
            return JSONResponse({"ok": True})

        return Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/_matrix/media/v3/upload", upload, methods=["POST"]),
                Route(f"{CLIENT}/account/whoami", handler(whoami), methods=["GET"]),
                Route(f"{CLIENT}/register", handler(register), methods=["POST"]),
                Route(
                    CLIENT + "/profile/{user_id}/{field:str}",
                    handler(profile),
                    methods=["PUT"],
                ),
                Route(CLIENT + "/profile/{user_id}", handler(get_profile), methods=["GET"]),
                Route(CLIENT + "/rooms/{room_id}/join", handler(join), methods=["POST"]),
                Route(CLIENT + "/rooms/{room_id}/invite", handler(invite), methods=["POST"]),
                Route(CLIENT + "/rooms/{room_id}/state/m.room.name/", handler(name)),
                Route(CLIENT + "/rooms/{room_id}/state/m.room.name", handler(name)),
                Route(
                    CLIENT + "/rooms/{room_id}/send/{event_type}/{txn_id}",
                    handler(send),
                    methods=["PUT"],
                ),
                Route(
                    CLIENT + "/rooms/{room_id}/redact/{event_id}/{txn_id}",
                    handler(redact),
                    methods=["PUT"],
                ),
                Route(CLIENT + "/rooms/{room_id}/messages", handler(messages)),
                Route(CLIENT + "/rooms/{room_id}/event/{event_id}", handler(get_event)),
            ]
        )
