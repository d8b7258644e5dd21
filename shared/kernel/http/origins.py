"""Web origins a Content-Security-Policy of ours may name: the sites allowed to frame the
portal (`HOOKHUB_PORTAL_FRAME_ANCESTORS`) and the one a portal's logo is loaded from.

Strict on purpose: a value is put in a response header as it is, so only `https://host` or
`https://host:port` (a DNS name or an IPv4 address, no path, no wildcard), `http://` on this
machine alone (`localhost`, `127.0.0.1`, `[::1]`: a chat product in development), and for
frame ancestors `'self'`. Nothing else can reach the policy: no `;`, `,`, quote or space.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST = rf"{_LABEL}(?:\.{_LABEL})*"
_PORT = r"(?::(?P<port>[1-9][0-9]{0,4}))?"
_HTTPS = re.compile(rf"https://{_HOST}{_PORT}")
_LOOPBACK = re.compile(rf"http://(?:localhost|127\.0\.0\.1|\[::1\]){_PORT}")
SELF = "'self'"
# The longest logo URL taken from a portal's query.
MAX_URL = 2048


def origin(value: str) -> str | None:
    """`value` as an origin a policy may name (lower case), or None if it is not one."""
    candidate = value.strip().lower()
    match = _HTTPS.fullmatch(candidate) or _LOOPBACK.fullmatch(candidate)
    if match is None or int(match["port"] or 1) > 65535:
        return None
    return candidate


def frame_ancestors(value: str) -> str:
    """A space-separated list of origins (or `'self'`), normalised; ValueError naming the
    first that is not one. Empty: no site may frame the page."""
    sources = []
    for item in value.split():
        source = SELF if item == SELF else origin(item)
        if source is None:
            raise ValueError(
                f"{item!r} is not an origin: write https://host or https://host:port "
                f"(http:// only for localhost, 127.0.0.1 or [::1]), or 'self'; no path, "
                f"no wildcard, separated by spaces"
            )
        if source not in sources:
            sources.append(source)
    return " ".join(sources)


def origin_of_url(url: str) -> str | None:
    """The origin of an image URL (a portal's logo), if it is one a policy may name and the
    URL has nothing a browser would refuse or reinterpret (credentials, spaces, quotes)."""
    if not url or len(url) > MAX_URL or not url.isascii():
        return None
    if any(c.isspace() or c in "\"'<>\\`" or ord(c) < 32 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    return origin(f"{parts.scheme}://{parts.netloc}")
