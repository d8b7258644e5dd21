"""The replay window of signed request timestamps: Slack's five minutes, Discord's too."""

from __future__ import annotations

import re
from datetime import datetime

from shared.providers.base import InboundRequest, SignatureInvalid

# Slack's own advice: refuse requests whose timestamp is more than five minutes off, so a
# captured request cannot be replayed later. Redeliveries inside it are the dedupe's.
MAX_CLOCK_SKEW_SECONDS = 300
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


def check_fresh(request: InboundRequest, header: str, now: datetime) -> str:
    """The header's Unix-seconds timestamp, once it is an integer within the window of `now`;
    else SignatureInvalid (401, as a bad signature). The header name is given as the
    provider spells it, for the message."""
    timestamp = request.header(header)
    if timestamp is None or not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureInvalid(f"{header} is missing or not an integer")
    if abs(now.timestamp() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise SignatureInvalid(f"{header} is stale (more than {MAX_CLOCK_SKEW_SECONDS} s off)")
    return timestamp
