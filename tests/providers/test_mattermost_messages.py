"""Mattermost events → message changes, and chat text → defused Mattermost markdown, without
a server.

The `posted` event below has the fields mattermost-server's app/notification.go
(`createNewPostEvent`, later `SendNotifications`) adds: `post` (the post as JSON, model.Post's
fields), `channel_type`, `channel_display_name`, `channel_name`, `sender_name`, `team_id`,
`set_online`; the envelope `{event, data, broadcast, seq}` is model/websocket_message.go's.
The ids are shaped like model.NewId (26 of [a-z0-9])."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.providers.chat import Attachment, Author, BotIdentity, OutboundPost, PermanentError
from shared.providers.mattermost.api import MAX_MESSAGE, websocket_url
from shared.providers.mattermost.messages import (
    MattermostChat,
    credential,
    defuse,
    message,
    props,
    split_credential,
)

POST = {
    "id": "xgmyzbkrz3gmdxnmf3yqiow3ar",
    "create_at": 1_717_000_000_123,
    "update_at": 1_717_000_000_123,
    "edit_at": 0,
    "delete_at": 0,
    "is_pinned": False,
    "user_id": "us3mhnfn87g8tpa4h7wjy1nmxa",
    "channel_id": "ch7ubsjtjpr3zfuqqiyz3srgdc",
    "root_id": "",
    "original_id": "",
    "message": "deploy is done",
    "type": "",
    "props": {},
    "hashtags": "",
    "pending_post_id": "us3mhnfn87g8tpa4h7wjy1nmxa:1717000000100",
    "reply_count": 0,
    "metadata": {},
}


def event(kind: str, post: dict[str, Any], channel_type: str = "O") -> dict[str, Any]:
    data: dict[str, Any] = {"post": json.dumps(post)}
    if kind == "posted":
        data |= {
            "channel_display_name": "Town Square",
            "channel_name": "town-square",
            "channel_type": channel_type,
            "sender_name": "@ada",
            "team_id": "tm4mj8w8xtbzbrkc1iogzbtwzo",
            "set_online": True,
        }
    broadcast = {"omit_users": None, "user_id": "", "channel_id": post["channel_id"], "team_id": ""}
    return {"event": kind, "data": data, "broadcast": broadcast, "seq": 7}


chat = MattermostChat(api=None)  # type: ignore[arg-type]  # no call reaches the API here


def test_a_posted_event_is_a_created_change() -> None:
    whole = event("posted", POST)
    for payload in (whole, whole["data"]):  # the envelope, or its data as the socket hands it
        (change,) = chat.changes("posted", payload)
        assert (change.kind, change.external_message_id) == ("created", POST["id"])
        assert change.external_channel_id == POST["channel_id"]
        assert change.text == "deploy is done" and change.external_thread_id is None
        assert change.occurred_at == datetime(2024, 5, 29, 16, 26, 40, 123000, tzinfo=UTC)
        assert change.sender.user_id == POST["user_id"] and not change.sender.is_bot
        assert change.ignored is None


def test_replies_edits_and_deletes() -> None:
    reply = {**POST, "id": "r" * 26, "root_id": POST["id"]}
    (created,) = chat.changes("posted", event("posted", reply))
    assert created.external_thread_id == POST["id"] and created.subtype == "reply"
    edited_post = {**POST, "message": "deploy is done!", "edit_at": 1_717_000_100_000}
    (edited,) = chat.changes("post_edited", event("post_edited", edited_post))
    assert edited.kind == "edited" and edited.text == "deploy is done!"
    assert edited.occurred_at.timestamp() == 1_717_000_100
    deleted_post = {**POST, "delete_at": 1_717_000_200_000}
    (deleted,) = chat.changes("post_deleted", event("post_deleted", deleted_post))
    assert deleted.kind == "deleted" and deleted.text == ""
    assert chat.changes("typing", {"data": {}}) == []
    assert chat.changes("posted", {"data": {"post": "not json"}}) == []


def test_what_is_not_bridged_is_ignored() -> None:
    joined = {**POST, "type": "system_join_channel", "message": "ada joined the channel."}
    assert chat.changes("posted", event("posted", joined))[0].ignored == (
        "Mattermost system message (system_join_channel)"
    )
    direct = chat.changes("posted", event("posted", POST, channel_type="D"))[0]
    assert direct.ignored == "a direct or group message (not bridged)"
    ours = {**POST, "user_id": "bt9k1nwhxfrmxb8ii3zt6u7hzh", "props": {"from_hookhub": "true"}}
    own = chat.changes("posted", event("posted", ours))[0]
    me = BotIdentity(user_id="bt9k1nwhxfrmxb8ii3zt6u7hzh", bot_id="bt9k1nwhxfrmxb8ii3zt6u7hzh")
    assert own.ignored == "hookhub's own post" and chat.is_own(own, me)
    assert not chat.is_own(chat.changes("posted", event("posted", POST))[0], me)


def test_another_integrations_post_shows_the_name_it_gave_and_files_are_named() -> None:
    hooked = {
        **POST,
        "props": {"from_webhook": "true", "override_username": "CI"},
        "metadata": {"files": [{"id": "f" * 26, "name": "log.txt", "mime_type": "text/plain"}]},
    }
    (change,) = chat.changes("posted", event("posted", hooked))
    assert change.author == Author(name="CI") and change.sender.is_bot
    assert change.text == "[file: log.txt]\ndeploy is done"


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("@channel look", "@\u200bchannel look"),
        ("@all and @here", "@\u200ball and @\u200bhere"),
        ("ping @ada.l", "ping @\u200bada.l"),
        ("mail a@b.c", "mail a@b.c"),
        (
            "-@channel, (@here) _@all :@ada",
            "-@\u200bchannel, (@\u200bhere) _@\u200ball :@\u200bada",
        ),
        ("x-@here é@all a_@all", "x-@\u200bhere é@\u200ball a_@\u200ball"),
        ("<img src=x onerror=alert(1)>", "\\<img src=x onerror=alert(1)\\>"),
        ("keep `@here <b>` and\n```\n@all <i>\n```", "keep `@here <b>` and\n```\n@all <i>\n```"),
        ("a lone @ stays", "a lone @ stays"),
    ],
)
def test_hostile_text_is_defused(text: str, sent: str) -> None:
    assert defuse(text) == sent


def test_props_message_and_credential() -> None:
    post = OutboundPost(
        text="x" * (MAX_MESSAGE + 10),
        author=Author(name=" Ada\n Lovelace ", avatar_url="javascript:alert(1)"),
        attachments=(Attachment(url="https://f.example/a).png", name="[a]"),),
        tag="msg_1",
    )
    shown = props(post)
    assert shown == {
        "override_username": "Ada Lovelace",
        "from_hookhub": "true",
        "hookhub_tag": "msg_1",
    }  # no icon from a URL that is not http(s)
    body = message(post)
    assert len(body) == MAX_MESSAGE and body.endswith("\n[\\[a\\]](https://f.example/a%29.png)")
    assert split_credential(credential("https://chat.example/api/v4/", " tok ")) == (
        "https://chat.example",
        "tok",
    )
    with pytest.raises(PermanentError):
        split_credential("no-token-here")


def test_the_websocket_url_follows_the_server_url() -> None:
    assert websocket_url("https://chat.example/") == "wss://chat.example/api/v4/websocket"
    assert websocket_url("http://10.0.0.2:8065/mm/api/v4") == (
        "ws://10.0.0.2:8065/mm/api/v4/websocket"
    )
    with pytest.raises(ValueError):
        websocket_url("chat.example")
