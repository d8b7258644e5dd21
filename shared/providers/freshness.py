"""The replay window of signed request timestamps: Slack's five minutes, Discord's too."""

from __future__ import annotations

from datetime import datetime

from shared.providers.base import InboundRequest
from shared.providers.schemes import check_window

# Slack's own advice: refuse requests whose timestamp is more than five minutes off, so a
# captured request cannot be replayed later. Redeliveries inside it are the dedupe's.
MAX_CLOCK_SKEW_SECONDS = 300


def check_fresh(request: InboundRequest, header: str, now: datetime) -> str:
    """The header's Unix-seconds timestamp, as sent, once it is an integer within the window
    of `now`; else SignatureInvalid (401, as a bad signature). The header name is given as
    the provider spells it, for the message. (The catalog's schemes use `Window`.)"""
    timestamp = request.header(header)
    check_window(timestamp, header, MAX_CLOCK_SKEW_SECONDS, now)
    assert timestamp is not None  # refused above
    return timestamp
