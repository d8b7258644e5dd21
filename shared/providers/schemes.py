"""Signature schemes: each one piece of code that a provider names with its parameters.

A scheme both verifies a request (raising `SignatureInvalid`, comparisons in constant time,
on the raw body bytes) and signs one (what the sandbox sends and the tests build), from the
same description, so that what hookhub sends and what it accepts cannot drift apart:

- `Hmac`: an HMAC (SHA-1/256/512) in a header, hex or base64, with an optional prefix
  (`sha256=`), over chosen parts of the request (`Signed`: the body, a header, the URL,
  literal text, or a provider's own part), several signatures per header allowed, an
  optional timestamp and replay window.
- `Timestamped`: `t=<unix>,v1=<hex>` in one header (Stripe, Calendly).
- `StandardWebhooks`: `webhook-id`/`-timestamp`/`-signature` (or Svix's `svix-*`), a
  `whsec_` secret.
- `Token`: a header (or query parameter) equal to a secret, with an optional `Bearer `.
- `Basic`: HTTP Basic credentials.
- `EcdsaP256`: a base64 DER ECDSA P-256/SHA-256 signature over timestamp + body, checked with
  a public key (SendGrid).
- `AnyOf`: the first of several configured schemes (a sender that offers a choice).

Every scheme names the settings it reads (`settings`) and the headers it needs
(`headers`), for the catalog.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.kernel.crypto import constant_time_equal
from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.ids import decode_json_object, field_at, required_secret

Algorithm = Literal["sha1", "sha256", "sha512"]
Encoding = Literal["hex", "base64"]
KeyForm = Literal["text", "base64", "hex", "whsec"]

_DIGEST_SIZE = {"sha1": 20, "sha256": 32, "sha512": 64}
_HEX = {n: re.compile(f"[0-9a-fA-F]{{{2 * size}}}") for n, size in _DIGEST_SIZE.items()}
_B64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


class Unsignable(Exception):
    """The scheme cannot make a signature (a public-key scheme: only its holder can)."""


# -- what is signed ----------------------------------------------------------------------


class Part(Protocol):
    """A piece of the signed content, read from the request."""

    def read(self, request: InboundRequest) -> bytes: ...


@dataclass(frozen=True)
class Body:
    def read(self, request: InboundRequest) -> bytes:
        return request.body


@dataclass(frozen=True)
class Url:
    """The URL as the provider called it: hookhub's public URL, path and query."""

    def read(self, request: InboundRequest) -> bytes:
        return request.url.encode()


@dataclass(frozen=True)
class Method:
    def read(self, request: InboundRequest) -> bytes:
        return request.method.encode()


@dataclass(frozen=True)
class HeaderValue:
    """A header's value (a timestamp, a message id); missing → refused, named."""

    name: str

    def read(self, request: InboundRequest) -> bytes:
        value = request.header(self.name)
        if value is None:
            raise SignatureInvalid(f"{self.name} header is missing")
        return value.encode()


@dataclass(frozen=True)
class Text:
    value: str

    def read(self, request: InboundRequest) -> bytes:
        return self.value.encode()


@dataclass(frozen=True)
class Custom:
    """A provider's own piece (Twilio's sorted form parameters): `read(request)`."""

    reader: Callable[[InboundRequest], bytes]
    description: str

    def read(self, request: InboundRequest) -> bytes:
        return self.reader(request)


BODY = Body()
URL = Url()
METHOD = Method()


def signed_content(parts: Sequence[Part], request: InboundRequest) -> bytes:
    return b"".join(part.read(request) for part in parts)


# -- timestamps and keys ----------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A signed timestamp and the replay window around now: a stale request is refused.

    `header` holds the timestamp (Unix seconds, or milliseconds with `unit`, or an RFC 3339
    time with `unit="rfc3339"`: Zendesk, Box, Twitch); or `json` is its path in the JSON
    body (Linear's `webhookTimestamp`)."""

    tolerance_seconds: int
    header: str | None = None
    json: tuple[str, ...] = ()
    unit: Literal["s", "ms", "rfc3339"] = "s"

    def check(self, request: InboundRequest, now: datetime) -> None:
        if self.header is not None:
            raw: object = request.header(self.header)
            where = self.header
        else:
            raw = field_at(decode_json_object(request.body), *self.json)
            where = "`" + ".".join(self.json) + "`"
        if self.unit == "rfc3339":
            check_rfc3339(raw, where, self.tolerance_seconds, now)
        else:
            check_window(raw, where, self.tolerance_seconds, now, self.unit)

    def stamp(self, now: datetime) -> str:
        if self.unit == "rfc3339":
            return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        seconds = now.timestamp()
        return str(int(seconds * 1000) if self.unit == "ms" else int(seconds))


_INTEGER = re.compile(r"[0-9]{1,16}")


def check_window(
    raw: object, where: str, tolerance: int, now: datetime, unit: Literal["s", "ms"] = "s"
) -> int:
    """The timestamp, once an integer within `tolerance` seconds of `now`; else 401."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    # As sent: the digits are what is signed, so padding is not taken off.
    if not isinstance(raw, str) or not _INTEGER.fullmatch(raw):
        raise SignatureInvalid(f"{where} is missing or not an integer timestamp")
    value = int(raw)
    seconds = value / 1000 if unit == "ms" else value
    if abs(now.timestamp() - seconds) > tolerance:
        raise SignatureInvalid(f"{where} is stale (more than {tolerance} s off)")
    return value


# A date, a time to the second (any fraction: Twitch sends nanoseconds) and an offset.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def check_rfc3339(raw: object, where: str, tolerance: int, now: datetime) -> datetime:
    """An RFC 3339 timestamp (`2021-03-25T05:09:27Z`, `2016-07-11T10:10:33-07:00`), once
    within `tolerance` seconds of `now`; else 401."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not _RFC3339.fullmatch(text):
        raise SignatureInvalid(f"{where} is missing or not an RFC 3339 timestamp")
    try:
        # Python 3.11's fromisoformat reads any fraction (keeping microseconds) and `Z`.
        moment = datetime.fromisoformat(text.upper())
    except ValueError as exc:  # month 13, hour 25
        raise SignatureInvalid(f"{where} is not a valid RFC 3339 timestamp") from exc
    if abs((now - moment).total_seconds()) > tolerance:
        raise SignatureInvalid(f"{where} is stale (more than {tolerance} s off)")
    return moment


def key_bytes(secret: str, form: KeyForm) -> bytes:
    """The HMAC key a setting's text stands for."""
    try:
        if form == "base64":
            return base64.b64decode(secret, validate=True)
        if form == "hex":
            return bytes.fromhex(secret)
        if form == "whsec":
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureInvalid(f"the signing secret is not valid {form}") from exc
    return secret.encode()


def _digest(key: bytes, content: bytes, algorithm: Algorithm) -> bytes:
    # The one-shot form: OpenSSL's HMAC in one call, no HMAC object (a third of the cost).
    return hmac.digest(key, content, algorithm)


def _encode(digest: bytes, encoding: Encoding) -> str:
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def _matches(candidate: str, digest: bytes, encoding: Encoding, algorithm: Algorithm) -> bool:
    """`candidate` is `digest` in `encoding`: hex in any case, base64 standard or URL-safe,
    padded or not. A value in another encoding is simply not a match."""
    if encoding == "hex":
        if not _HEX[algorithm].fullmatch(candidate):
            return False
        return constant_time_equal(candidate.lower(), digest.hex())
    if not _B64.fullmatch(candidate):
        return False
    try:
        decoded = base64.b64decode(
            candidate.replace("-", "+").replace("_", "/") + "=" * (-len(candidate) % 4),
            validate=True,
        )
    except binascii.Error:
        return False
    return constant_time_equal(decoded, digest)


# -- schemes -------------------------------------------------------------------------------


class Scheme(Protocol):
    """How one provider's requests are authenticated."""

    @property
    def name(self) -> str:
        """What the catalog calls it (`hmac`, `timestamped_hmac`, `standard_webhooks`…)."""
        ...

    @property
    def settings(self) -> tuple[str, ...]:
        """The integration settings it reads (all of them, the optional ones too)."""
        ...

    @property
    def headers(self) -> tuple[str, ...]:
        """The request headers it reads, for the catalog."""
        ...

    def configured(self, secrets: Mapping[str, str]) -> bool:
        """Its required settings are set (what `AnyOf` chooses by)."""
        ...

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        """Raise SignatureInvalid unless the request is authentic."""
        ...

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        """The headers that make `request` authentic (what the sandbox sends). The
        request's own headers may already hold ids the signature covers."""
        ...


class KeyedBy:
    """A scheme keyed by one integration setting, the one its `setting` names: the
    settings it reads and whether it is configured follow from that name."""

    setting: str

    @property
    def settings(self) -> tuple[str, ...]:
        return (self.setting,)

    def configured(self, secrets: Mapping[str, str]) -> bool:
        return bool(secrets.get(self.setting))


@dataclass(frozen=True)
class Hmac(KeyedBy):
    """An HMAC of chosen parts of the request, in one header.

    `several`: the header may carry several signatures separated by it (a secret being
    rotated); any one matching is enough. `window`: a signed timestamp's replay window."""

    header: str
    setting: str = "webhook_secret"  # the setting holding the key
    algorithm: Algorithm = "sha256"
    encoding: Encoding = "hex"
    prefix: str = ""
    signed: tuple[Part, ...] = (BODY,)
    key: KeyForm = "text"
    several: str | None = None
    window: Window | None = None
    name: str = "hmac"

    @property
    def headers(self) -> tuple[str, ...]:
        extra = [p.name for p in self.signed if isinstance(p, HeaderValue)]
        if self.window is not None and self.window.header is not None:
            extra.append(self.window.header)
        return tuple(dict.fromkeys([self.header, *extra]))

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        secret = required_secret(secrets, self.setting)
        value = request.header(self.header)
        if value is None:
            raise SignatureInvalid(f"{self.header} header is missing")
        if self.window is not None:
            self.window.check(request, now)
        candidates = value.split(self.several) if self.several else [value]
        prefix = self.prefix.lower()
        signatures = [
            c.strip()[len(prefix) :]
            for c in candidates
            if c.strip().lower().startswith(prefix) and len(c.strip()) > len(prefix)
        ]
        if not signatures:
            raise SignatureInvalid(
                f"{self.header} is not {self.prefix}<{self.encoding} {self.algorithm} HMAC>"
            )
        digest = _digest(
            key_bytes(secret, self.key), signed_content(self.signed, request), self.algorithm
        )
        # Every candidate is compared, so the time taken does not say which one matched.
        matched = [_matches(s, digest, self.encoding, self.algorithm) for s in signatures]
        if not any(matched):
            raise SignatureInvalid(f"{self.header} does not match the request")

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.window is not None and self.window.header is not None:
            headers[self.window.header] = self.window.stamp(now)
        stamped = with_headers(request, headers)
        digest = _digest(
            key_bytes(secrets[self.setting], self.key),
            signed_content(self.signed, stamped),
            self.algorithm,
        )
        headers[self.header] = self.prefix + _encode(digest, self.encoding)
        return headers


_PAIR = re.compile(r"\s*([A-Za-z0-9_]+)=([^,]*)")


@dataclass(frozen=True)
class Timestamped(KeyedBy):
    """`<header>: t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}">`; several `v1`
    may be given (Stripe signs with each secret being rolled)."""

    header: str
    tolerance_seconds: int = 300
    setting: str = "webhook_secret"  # the setting holding the key
    version: str = "v1"
    name: str = "timestamped_hmac"

    @property
    def headers(self) -> tuple[str, ...]:
        return (self.header,)

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        secret = required_secret(secrets, self.setting)
        value = request.header(self.header)
        if value is None:
            raise SignatureInvalid(f"{self.header} header is missing")
        pairs = [(m[1], m[2].strip()) for m in _PAIR.finditer(value)]
        stamps = [v for k, v in pairs if k == "t"]
        signatures = [v for k, v in pairs if k == self.version]
        if len(stamps) != 1 or not signatures:
            raise SignatureInvalid(f"{self.header} is not t=<timestamp>,{self.version}=<hex>")
        check_window(stamps[0], f"{self.header} t", self.tolerance_seconds, now)
        digest = _digest(secret.encode(), stamps[0].encode() + b"." + request.body, "sha256")
        matched = [_matches(s, digest, "hex", "sha256") for s in signatures]
        if not any(matched):
            raise SignatureInvalid(f"no {self.version} signature in {self.header} matches")

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        stamp = str(int(now.timestamp()))
        digest = _digest(
            secrets[self.setting].encode(), stamp.encode() + b"." + request.body, "sha256"
        )
        return {self.header: f"t={stamp},{self.version}={digest.hex()}"}


@dataclass(frozen=True)
class StandardWebhooks(KeyedBy):
    """Standard Webhooks (standardwebhooks.com), which Svix-signed senders follow too:
    `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> ...` (or the same
    under `svix-`), an HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed by the base64 after
    `whsec_`, within five minutes."""

    setting: str = "signing_secret"  # the setting holding the key
    tolerance_seconds: int = 300
    name: str = "standard_webhooks"

    @property
    def headers(self) -> tuple[str, ...]:
        return ("webhook-id", "webhook-timestamp", "webhook-signature")

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        secret = required_secret(secrets, self.setting)
        family = "webhook" if request.header("webhook-signature") is not None else "svix"
        message_id = request.header(f"{family}-id")
        stamp = request.header(f"{family}-timestamp")
        signatures = request.header(f"{family}-signature")
        if message_id is None or stamp is None or signatures is None:
            raise SignatureInvalid(
                "webhook-id, webhook-timestamp and webhook-signature (or svix-*) are required"
            )
        check_window(stamp, f"{family}-timestamp", self.tolerance_seconds, now)
        content = f"{message_id}.{stamp.strip()}.".encode() + request.body
        digest = _digest(key_bytes(secret, "whsec"), content, "sha256")
        candidates = [s.split(",", 1) for s in signatures.split()]
        matched = [
            _matches(c[1], digest, "base64", "sha256")
            for c in candidates
            if len(c) == 2 and c[0] == "v1"
        ]
        if not any(matched):
            raise SignatureInvalid(f"no v1 signature in {family}-signature matches")

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        message_id = request.header("webhook-id") or f"msg_{time.time_ns():x}"
        stamp = str(int(now.timestamp()))
        content = f"{message_id}.{stamp}.".encode() + request.body
        digest = _digest(key_bytes(secrets[self.setting], "whsec"), content, "sha256")
        return {
            "webhook-id": message_id,
            "webhook-timestamp": stamp,
            "webhook-signature": "v1," + _encode(digest, "base64"),
        }


@dataclass(frozen=True)
class Token(KeyedBy):
    """A header (or, with `query`, a query parameter) equal to a secret; `prefix` is what
    comes before it (`Bearer `), compared case-insensitively as HTTP's schemes are."""

    header: str = "authorization"
    setting: str = "token"  # the setting holding the token
    prefix: str = ""
    query: str | None = None
    name: str = "token"

    @property
    def headers(self) -> tuple[str, ...]:
        return () if self.query else (self.header,)

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        secret = required_secret(secrets, self.setting)
        where = f"query parameter {self.query}" if self.query else f"{self.header} header"
        value = request.query.get(self.query) if self.query else request.header(self.header)
        if value is None:
            raise SignatureInvalid(f"{where} is missing")
        if not value[: len(self.prefix)].lower() == self.prefix.lower():
            raise SignatureInvalid(f"{where} does not start with {self.prefix.strip()!r}")
        if not constant_time_equal(value[len(self.prefix) :].strip(), secret):
            raise SignatureInvalid(f"{where} does not hold the integration's token")

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        if self.query:
            # The token is in the URL the sender was given (`url_params`): nothing to add.
            if request.query.get(self.query) != secrets[self.setting]:
                raise Unsignable(
                    f"a query token goes in the URL: call the URL with ?{self.query}=<token> "
                    "(Entry.sender_url)"
                )
            return {}
        return {self.header: self.prefix + secrets[self.setting]}


@dataclass(frozen=True)
class Basic:
    """HTTP Basic credentials equal to the integration's username and password."""

    username: str = "username"
    password: str = "password"  # noqa: S105 - the setting's name
    name: str = "basic"

    @property
    def settings(self) -> tuple[str, ...]:
        return (self.username, self.password)

    @property
    def headers(self) -> tuple[str, ...]:
        return ("authorization",)

    def configured(self, secrets: Mapping[str, str]) -> bool:
        return bool(secrets.get(self.username) and secrets.get(self.password))

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        expected = (
            required_secret(secrets, self.username) + ":" + required_secret(secrets, self.password)
        )
        value = request.header("authorization") or ""
        scheme, _, credentials = value.strip().partition(" ")
        if scheme.lower() != "basic":
            raise SignatureInvalid("Authorization: Basic credentials are required")
        try:
            given = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise SignatureInvalid("Authorization: Basic credentials are not base64") from exc
        if not constant_time_equal(given, expected):
            raise SignatureInvalid("Authorization: Basic credentials do not match")

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        pair = f"{secrets[self.username]}:{secrets[self.password]}".encode()
        return {"authorization": "Basic " + base64.b64encode(pair).decode()}


@dataclass(frozen=True)
class EcdsaP256:
    """A base64 DER ECDSA P-256 SHA-256 signature over `timestamp + body`, checked with the
    sender's public key (base64 DER SubjectPublicKeyInfo, or PEM)."""

    header: str
    timestamp_header: str
    public_key: str = "public_key"
    tolerance_seconds: int | None = None
    name: str = "ecdsa_p256"

    @property
    def settings(self) -> tuple[str, ...]:
        return (self.public_key,)

    @property
    def headers(self) -> tuple[str, ...]:
        return (self.header, self.timestamp_header)

    def configured(self, secrets: Mapping[str, str]) -> bool:
        return bool(secrets.get(self.public_key))

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        key = load_p256_key(required_secret(secrets, self.public_key))
        signature = request.header(self.header)
        stamp = request.header(self.timestamp_header)
        if signature is None or stamp is None:
            raise SignatureInvalid(f"{self.header} and {self.timestamp_header} are required")
        if self.tolerance_seconds is not None:
            check_window(stamp, self.timestamp_header, self.tolerance_seconds, now)
        try:
            key.verify(
                base64.b64decode(signature.strip(), validate=True),
                stamp.encode() + request.body,
                ec.ECDSA(hashes.SHA256()),
            )
        except (InvalidSignature, binascii.Error, ValueError) as exc:
            raise SignatureInvalid(f"{self.header} does not match the request") from exc

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        raise Unsignable("only the holder of the private key signs")


def load_p256_key(text: str) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from base64 DER (how SendGrid shows it) or PEM."""
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text.strip(), validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise SignatureInvalid("the integration's public key is not a P-256 public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise SignatureInvalid("the integration's public key is not a P-256 public key")
    return key


@dataclass(frozen=True)
class AnyOf:
    """A sender that offers several ways (a bearer token, Basic credentials, an HMAC): the
    first whose settings the integration has set is the one its requests must pass."""

    schemes: tuple[Scheme, ...]
    name: str = "any_of"

    @property
    def settings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for scheme in self.schemes for s in scheme.settings))

    @property
    def headers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(h for scheme in self.schemes for h in scheme.headers))

    def configured(self, secrets: Mapping[str, str]) -> bool:
        return self.chosen(secrets) is not None

    def chosen(self, secrets: Mapping[str, str]) -> Scheme | None:
        return next((s for s in self.schemes if s.configured(secrets)), None)

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        scheme = self.chosen(secrets)
        if scheme is None:
            raise SignatureInvalid(
                "cannot verify: set one of the integration settings "
                + ", ".join(repr(s) for s in self.settings)
            )
        scheme.verify(request, secrets, now)

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        scheme = self.chosen(secrets)
        if scheme is None:
            raise Unsignable("no scheme is configured")
        return scheme.sign(request, secrets, now)


def url_params(scheme: Scheme, secrets: Mapping[str, str]) -> dict[str, str]:
    """The query parameters the sender's URL must carry for `scheme` with these settings: a
    `Token(query=...)`'s token (Statuspage can put its secret nowhere else); none else."""
    if isinstance(scheme, AnyOf):
        chosen = scheme.chosen(secrets)
        return url_params(chosen, secrets) if chosen is not None else {}
    if isinstance(scheme, Token) and scheme.query and secrets.get(scheme.setting):
        return {scheme.query: secrets[scheme.setting]}
    return {}


def with_headers(request: InboundRequest, headers: Mapping[str, str]) -> InboundRequest:
    """`request` with `headers` added (lower-cased names), for a scheme signing in steps."""
    if not headers:
        return request
    merged = {**request.headers, **{k.lower(): v for k, v in headers.items()}}
    return dataclasses.replace(request, headers=merged)
