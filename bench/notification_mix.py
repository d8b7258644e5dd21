"""What a mix of benchmark "notifications" (bench.notifications) is made of, for the harness
there and each mix (GitHub's there, bench.notification_alerts, bench.notification_templates):
the `Mix` a mix is, its `Webhook`s, the phases and GUIDs naming them, a notice encoded as
sync publishes it."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

PER_REPOSITORY = 5  # subscriptions, each to its own channel: notifications per webhook
_GUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Each mix's phases are its own: the harness reads the inbound topic from its start, where
# an earlier mix's notifications are.
PHASES = {
    "check": 1,
    "burst": 2,
    "latency": 3,
    "alerts-check": 4,
    "alerts-burst": 5,
    "alerts-latency": 6,
    "templates-check": 7,
    "templates-burst": 8,
    "templates-latency": 9,
}


def chat_channel(index: int) -> str:
    return f"ch_notify{index:04d}"


def delivery_id(phase: str, seq: int) -> str:
    """A GUID, as GitHub's X-GitHub-Delivery, that names the phase and the webhook."""
    return str(uuid.UUID(int=(PHASES[phase] << 64) | seq))


def _guid_seq(delivery: bytes) -> int | None:
    """`delivery_id`'s (phase << 64 | seq), from a GUID it made."""
    return uuid.UUID(delivery.decode()).int if _GUID.fullmatch(delivery) else None


@dataclass(frozen=True)
class Webhook:
    """One webhook as its provider sends it: where (the integration's path), its body and
    headers, signed; `event` is its kind in the mix, `delivery` the GUID naming its phase
    and sequence number."""

    event: str
    body: bytes
    delivery: str
    path: str
    headers: dict[str, str]


class Mix(Protocol):
    """What one mix of webhooks brings to the benchmark: its integrations and
    subscriptions, its webhooks (the same for the same phase and seq), how a notification's
    delivery id names the webhook, and the baseline's fixed message. A mix is one more pair
    of tables (`notifications<suffix>`, `notifications<suffix>-latency`)."""

    name: str
    title: str
    mix: tuple[tuple[str, int], ...]

    def prepare(self, oauth_url: str, admin_token: str) -> None: ...
    def subscriptions(self) -> list[tuple[str, dict[str, Any]]]: ...
    def webhook(self, phase: str, seq: int, kind: str | None = None) -> Webhook: ...
    def seq_of(self, delivery: bytes) -> int | None: ...
    def fixed_message(self) -> bytes: ...
    def notes(self, kinds: Counter[str]) -> list[str]: ...


def _mix(kinds: Counter[str], mix: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{kinds[kind]:,} {kind}" for kind, _ in mix)


def encoded(notice: Any, provider: str) -> bytes:
    """A notice as sync publishes it, a root (its item card), in the benchmark's first
    channel: the baseline's fixed message."""
    from shared.kernel.envelopes import encode_inbound

    return encode_inbound(
        id="ntf_bench_fixed",
        type="message.received",
        workspace_id="ws_bench",
        channel_id=chat_channel(0),
        provider=provider,
        integration_id="int_bench",
        external_channel_id=notice.repository,
        external_message_id=str(uuid.UUID(int=0)),
        external_thread_id=notice.item,
        author_name=notice.actor.name if notice.actor else provider,
        avatar_url=notice.actor.avatar_url if notice.actor else None,
        author_external_id=notice.actor.external_id if notice.actor else None,
        text=notice.text,
        attachments=[],
        blocks=None,
        thread_id=None,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        card=notice.item_card.as_dict() if notice.item_card else None,
    ).value
