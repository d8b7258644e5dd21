"""Signs webhook requests the way each provider does, with independent libraries where one
exists (githubkit, slack_sdk, PyNaCl), so the gateway is checked against someone else's code."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from githubkit.webhooks import sign as github_sign
from nacl.encoding import HexEncoder
from nacl.signing import SigningKey
from slack_sdk.signature import SignatureVerifier


@dataclass(frozen=True)
class Signed:
    body: bytes
    headers: dict[str, str]


def github(secret: str, event: str, body: bytes, delivery: str | None = None) -> Signed:
    return Signed(
        body,
        {
            "content-type": "application/json",
            "x-github-event": event,
            "x-github-delivery": delivery or str(uuid.uuid4()),
            "x-hub-signature-256": github_sign(secret, body, "sha256"),
        },
    )


def slack(secret: str, body: bytes, *, timestamp: int | None = None, form: bool = False) -> Signed:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = str(SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body))
    return Signed(
        body,
        {
            "content-type": "application/x-www-form-urlencoded" if form else "application/json",
            "x-slack-request-timestamp": stamp,
            "x-slack-signature": signature,
        },
    )


class DiscordApp:
    def __init__(self) -> None:
        self.key = SigningKey.generate()
        self.public_key = self.key.verify_key.encode(HexEncoder).decode()

    def sign(self, body: bytes, timestamp: str | None = None) -> Signed:
        stamp = timestamp or str(int(time.time()))
        signature = self.key.sign(stamp.encode() + body).signature.hex()
        return Signed(
            body,
            {
                "content-type": "application/json",
                "x-signature-ed25519": signature,
                "x-signature-timestamp": stamp,
            },
        )


def telegram(secret_token: str, update: dict[str, Any]) -> Signed:
    return Signed(
        json.dumps(update).encode(),
        {"content-type": "application/json", "x-telegram-bot-api-secret-token": secret_token},
    )


def jira(secret: str, body: bytes, identifier: str | None = None) -> Signed:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"content-type": "application/json", "x-hub-signature": f"sha256={digest}"}
    if identifier:
        headers["x-atlassian-webhook-identifier"] = identifier
    return Signed(body, headers)


@dataclass
class Case:
    """A provider's integration settings and how to make a valid request (given a marker)."""

    provider: str
    settings: dict[str, str]
    valid: Callable[[str], Signed]


def slack_callback(team: str, event_id: str, event: dict[str, Any]) -> bytes:
    """A Slack Events API `event_callback` body."""
    body = {"type": "event_callback", "team_id": team, "event_id": event_id, "event": event}
    return json.dumps(body).encode()


def provider_cases() -> dict[str, Case]:
    """A valid request per provider, each with fresh secrets (Telegram's bot is `1:ok`)."""
    discord = DiscordApp()
    gh, sl, tg, ji = (uuid.uuid4().hex for _ in range(4))

    def slack_event(marker: str) -> bytes:
        return slack_callback("T1", f"Ev{marker}", {"type": "message", "text": marker})

    return {
        "github": Case(
            "github",
            {"webhook_secret": gh},
            lambda m: github(gh, "issues", json.dumps({"action": m}).encode()),
        ),
        "slack": Case("slack", {"signing_secret": sl}, lambda m: slack(sl, slack_event(m))),
        "discord": Case(
            "discord",
            {"public_key": discord.public_key},
            lambda m: discord.sign(
                json.dumps(
                    {"id": m, "type": 2, "application_id": "A1", "data": {"name": "hi"}}
                ).encode()
            ),
        ),
        "telegram": Case(
            "telegram",
            {"bot_token": "1:ok", "secret_token": tg},
            lambda m: telegram(tg, {"update_id": int(m, 16) % 10**9, "message": {"text": m}}),
        ),
        "jira": Case(
            "jira",
            {"webhook_secret": ji},
            lambda m: jira(
                ji,
                json.dumps({"webhookEvent": "jira:issue_created", "m": m}).encode(),
                identifier=m,
            ),
        ),
    }
