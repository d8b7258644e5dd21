"""Box's two signatures: `BOX-SIGNATURE-PRIMARY` with the primary key and
`BOX-SIGNATURE-SECONDARY` with the secondary one, either matching being enough (a key is
reset while the other still signs), over the body and `BOX-DELIVERY-TIMESTAMP`.

Box's own verifier (box-sdk-gen's `WebhooksManager.validate_message`) is followed
exactly where the prose docs say less: `BOX-SIGNATURE-VERSION` must be `1` and
`BOX-SIGNATURE-ALGORITHM` `HmacSHA256`, and each key is tried on the body as received and
on the body with its characters escaped as Box escapes them before signing (`\\uXXXX` for
all but printable ASCII): Box signs a name like `スクリーンショット` as its escapes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.kernel.crypto import constant_time_equal
from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.ids import required_secret
from shared.providers.schemes import Window

PRIMARY = "box-signature-primary"
SECONDARY = "box-signature-secondary"
TIMESTAMP = "box-delivery-timestamp"
VERSION = "box-signature-version"
ALGORITHM = "box-signature-algorithm"

_BACKSLASH = re.compile(r"\\(?!/)")
_ESCAPED = re.compile(r"[^\x20-\x7e]|[\n\r\t]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Box's guide: "not older than ten minutes"; hookhub refuses as far in the future too.
_WINDOW = Window(600, header=TIMESTAMP, unit="rfc3339")


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _SHORT:
        return _SHORT[char]
    point = ord(char)
    if point <= 0xFFFF:
        return f"\\u{point:04x}"
    point -= 0x10000  # beyond the BMP: its UTF-16 surrogate pair
    return f"\\u{0xD800 + (point >> 10):04x}\\u{0xDC00 + (point & 0x3FF):04x}"


def escaped(body: bytes) -> bytes | None:
    """The body as Box escapes it before signing (box-sdk-gen's `escape_unicode`: every
    backslash not before `/` doubled, then control and non-ASCII characters escaped); None
    when that changes nothing or the body is not UTF-8."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    result = _ESCAPED.sub(_escape, _BACKSLASH.sub(r"\\\\", text)).encode()
    return result if result != body else None


def _digest(key: str, body: bytes, stamp: str) -> bytes:
    return hmac.new(key.encode(), body + stamp.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class BoxSignatures:
    """Box's primary and secondary signatures, ten minutes either way."""

    primary: str = "primary_key"
    secondary: str = "secondary_key"
    name: str = "box"

    @property
    def settings(self) -> tuple[str, ...]:
        return (self.primary, self.secondary)

    @property
    def headers(self) -> tuple[str, ...]:
        return (PRIMARY, SECONDARY, TIMESTAMP, VERSION, ALGORITHM)

    def configured(self, secrets: Mapping[str, str]) -> bool:
        return bool(secrets.get(self.primary))

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        primary = required_secret(secrets, self.primary)
        pairs = [(PRIMARY, primary), (SECONDARY, secrets.get(self.secondary) or "")]
        given = [(request.header(h), key) for h, key in pairs if key and request.header(h)]
        if not given:
            raise SignatureInvalid(f"{PRIMARY} (or {SECONDARY}) header is missing")
        if (request.header(VERSION) or "").strip() != "1":
            raise SignatureInvalid(f"{VERSION} is not 1")
        if (request.header(ALGORITHM) or "").strip() != "HmacSHA256":
            raise SignatureInvalid(f"{ALGORITHM} is not HmacSHA256")
        _WINDOW.check(request, now)
        stamp = request.header(TIMESTAMP) or ""
        bodies = [b for b in (request.body, escaped(request.body)) if b is not None]
        # Every candidate is compared, so the time taken does not say which one matched.
        matched = [
            constant_time_equal((signature or "").strip(), _encode(_digest(key, body, stamp)))
            for signature, key in given
            for body in bodies
        ]
        if not any(matched):
            raise SignatureInvalid(f"neither {PRIMARY} nor {SECONDARY} matches the request")

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        stamp = now.astimezone(UTC).isoformat(timespec="seconds")
        headers = {VERSION: "1", ALGORITHM: "HmacSHA256", TIMESTAMP: stamp}
        headers[PRIMARY] = _encode(_digest(secrets[self.primary], request.body, stamp))
        if secrets.get(self.secondary):
            headers[SECONDARY] = _encode(_digest(secrets[self.secondary], request.body, stamp))
        return headers


def _encode(digest: bytes) -> str:
    return base64.b64encode(digest).decode()
