"""Egress guard for outgoing deliveries: public addresses only, judged where we connect (§7)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import re
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc
import httpx
from aiohappyeyeballs import AddrInfoType, SocketFactoryType

from shared.kernel.errors import Invalid
from shared.kernel.http.tls import KEEPALIVE_SECONDS

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# Spelled out rather than left to `is_global` alone: the stdlib lists change between patch
# releases, and a webhook target never legitimately lives in any of these.
_REFUSED_V4: tuple[IPv4Network, ...] = tuple(
    IPv4Network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, home of the cloud metadata service
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes the limited broadcast 255.255.255.255
    )
)

_REFUSED_V6: tuple[IPv6Network, ...] = tuple(
    IPv6Network(cidr)
    for cidr in (
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",  # local-use NAT64: translated by a gateway inside the network
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo is judged by its embedded IPv4)
        "2001:db8::/32",
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local
        "fe80::/10",
        "fec0::/10",  # deprecated site-local, still routed inside some networks
        "ff00::/8",
    )
)

# Everything public in IPv6 lives here; the rest of the space is reserved or special.
_GLOBAL_UNICAST_V6 = IPv6Network("2000::/3")
_NAT64 = IPv6Network("64:ff9b::/96")
_TEREDO = IPv6Network("2001::/32")

_METADATA_V4 = IPv4Address("169.254.169.254")
_LOOPBACK = (IPv4Address("127.0.0.1"), IPv6Address("::1"))


def _embedded_ipv4(ip: IPv6Address) -> tuple[IPv4Address, ...] | None:
    """The IPv4 addresses a translating form forwards to, or None if `ip` is not one."""
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if ip in _NAT64:
        return (IPv4Address(int(ip) & 0xFFFFFFFF),)
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip in _TEREDO and ip.teredo is not None:
        return ip.teredo
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True for public unicast; the allow-list is not consulted here."""
    if isinstance(ip, IPv4Address):
        return ip.is_global and not ip.is_multicast and not any(ip in n for n in _REFUSED_V4)
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        # A translating prefix delivers to the embedded IPv4, so that is what gets judged:
        # ::ffff:10.0.0.1 and 2002:0a00:0001:: both reach 10.0.0.1.
        return all(is_public_address(v4) for v4 in embedded)
    return (
        ip in _GLOBAL_UNICAST_V6
        and ip.is_global
        and not ip.is_multicast
        and not any(ip in n for n in _REFUSED_V6)
    )


@dataclass(frozen=True)
class EgressPolicy:
    """Which addresses outgoing deliveries may reach: public ones, plus the allow-list."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_setting(cls, value: str) -> EgressPolicy:
        """Parse HOOKHUB_EGRESS_ALLOW_CIDRS (comma-separated; empty allows nothing extra)."""
        networks: list[IPNetwork] = []
        for raw in value.split(","):
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry))
            except ValueError as exc:
                hint = ""
                with contextlib.suppress(ValueError):
                    hint = f"; did you mean {ipaddress.ip_network(entry, strict=False)}?"
                raise ValueError(
                    f"HOOKHUB_EGRESS_ALLOW_CIDRS: {entry!r} is not a valid CIDR ({exc}){hint}"
                ) from None
        return cls(tuple(networks))

    def allowlisted(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        # The kernel treats ::ffff:a.b.c.d as a.b.c.d, so an IPv4 allow-list entry covers it.
        if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(candidate in network for candidate in candidates for network in self.allowed)

    def allows(self, ip: IPAddress) -> bool:
        return self.allowlisted(ip) or is_public_address(ip)

    @property
    def allows_internal_names(self) -> bool:
        """Whether names that only resolve inside a network may be configured at all.

        An operator who allowed a private range (beyond loopback) expects to reach services by
        their internal names (`*.svc.cluster.local`); the connect-time check still judges every
        address those names resolve to.
        """
        return any(not network.is_loopback for network in self.allowed)


# --- creation time: the URL as written ---------------------------------------------------------

# One inet_aton part: hex (WHATWG also takes a bare "0x" as 0), octal with a leading zero, or
# decimal. Anything else ("08", "0x7g", "") makes the whole host not an IPv4 literal.
_AT_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")
_NUMERIC_LABEL = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")
_HOST_LABEL = re.compile(r"[a-z0-9_-]+")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_METADATA_NAMES = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data.ec2.internal"}
)
_INTERNAL_SUFFIXES = (".local", ".internal", ".localdomain", ".home.arpa", ".lan", ".intranet")


def parse_inet_aton(text: str) -> IPv4Address | None:
    """The IPv4 address `text` spells under inet_aton rules (as getaddrinfo, curl and browsers
    read a host), or None if it is not such a spelling.

    1 to 4 dot-separated parts, each decimal, octal (leading 0) or hex (0x); the last part
    fills all remaining bytes: `127.1` is 127.0.0.1, `2130706433` is 127.0.0.1.
    """
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        if not _AT_PART.fullmatch(part):
            return None
        if part[:2] in ("0x", "0X"):
            values.append(int(part[2:] or "0", 16))
        elif part.startswith("0"):
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *head, last = values
    if any(value > 0xFF for value in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for index, value in enumerate(head):
        number |= value << (8 * (3 - index))
    return IPv4Address(number)


def _refused(message: str) -> Invalid:
    return Invalid(message, code="egress_refused")


def _invalid(message: str) -> Invalid:
    return Invalid(message, code="invalid_url")


def check_url(url: str, policy: EgressPolicy) -> None:
    """Refuse, at creation time, a delivery URL that cannot be a public http(s) target.

    Only what the URL itself says is judged (schemes, credentials, address literals in every
    spelling a resolver accepts, names that are internal by definition); where a name points
    is judged when connecting, by `guarded_socket_factory`.
    """
    if _FORBIDDEN_CHARS.search(url):
        # Whitespace, control characters and backslashes are where URL parsers disagree.
        raise _invalid("url must not contain whitespace, control characters or backslashes")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        # httpx refuses some inet_aton spellings (0177.0.0.1) that other clients accept; say
        # what they are rather than only that they are malformed.
        try:
            written = urlsplit(url).hostname or ""
        except ValueError:
            written = ""
        literal = parse_inet_aton(written.removesuffix("."))
        if literal is not None:
            _check_literal(literal, policy, written)
        raise _invalid(f"url is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise _invalid("url must use http or https")
    authority = re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]
    if "@" in authority or parsed.userinfo:
        raise _invalid("url must not contain credentials (user:password@); use headers")
    port = parsed.port
    if port is not None and not 1 <= port <= 65535:
        raise _invalid("url has a port outside 1-65535")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise _invalid("url has no host")

    if ":" in host:
        address_text, zone_sep, _zone = host.partition("%")
        try:
            address: IPAddress = IPv6Address(address_text)
        except ValueError:
            raise _invalid(f"url host [{host}] is not a valid IPv6 address") from None
        _check_literal(address, policy, host)
        if zone_sep:
            raise _invalid("url host carries a zone id, which only link-local addresses use")
        return

    name = host.removesuffix(".")
    labels = name.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # A host ending in a number is an IPv4 address to browsers (WHATWG) and resolvers
        # alike, never a DNS name: either it parses as one or the URL is malformed.
        literal = parse_inet_aton(name)
        if literal is None:
            raise _invalid(f"url host {host!r} is not a valid IPv4 address")
        _check_literal(literal, policy, host)
        return
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise _invalid(f"url host {host!r} is not a valid host name")
    _check_name(name, policy)


def _check_literal(address: IPAddress, policy: EgressPolicy, written: str) -> None:
    if not policy.allows(address):
        raise _refused(
            f"url host {written} is {address}, a non-public address "
            "(loopback, private, link-local, reserved or similar); deliveries only go to "
            "public addresses unless HOOKHUB_EGRESS_ALLOW_CIDRS allows it"
        )


def _check_name(name: str, policy: EgressPolicy) -> None:
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        if not any(policy.allows(address) for address in _LOOPBACK):
            raise _refused(f"url host {name!r} is the local machine")
        return
    if name in _METADATA_NAMES:
        if not policy.allows(_METADATA_V4):
            raise _refused(f"url host {name!r} is a cloud metadata service")
        return
    internal = "." not in name or name.endswith(_INTERNAL_SUFFIXES)
    if internal and not policy.allows_internal_names:
        raise _refused(
            f"url host {name!r} is a name that only resolves inside a private network; "
            "deliveries go to public hosts"
        )


# --- connect time: the address actually connected to ------------------------------------------


class EgressRefused(OSError):
    """A connection to an address the egress policy refuses was not even opened.

    An OSError, as any other failed connect: aiohttp tries the name's next address, and if
    none is left raises `aiohttp.ClientConnectorError` carrying this as `os_error`, which
    callers retry and log like any failed connection. Nothing of the request was sent.
    """

    def __init__(self, address: str) -> None:
        # With an errno, as a refused connect has one: aiohttp shows only `strerror`.
        super().__init__(
            errno.EPERM,
            f"egress refused: {address} is not a public address and "
            "HOOKHUB_EGRESS_ALLOW_CIDRS does not allow it; nothing was sent",
        )
        self.address = address


def guarded_socket_factory(policy: EgressPolicy) -> SocketFactoryType:
    """aiohttp's `socket_factory`: judges each address just before the socket connects to it.

    aiohttp resolves the name, then connects a socket to each resolved address in turn
    (happy eyeballs) with no second lookup, so the address judged here is exactly the peer
    the connection would have: no DNS-rebinding window, literals and names alike, and
    nothing is connected to a refused address at all.
    """

    def create(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _canonical, sockaddr = addr_info
        address = _parse_address(sockaddr[0]) if sockaddr else None
        if address is None or not policy.allows(address):
            raise EgressRefused(_describe(address) if address is not None else str(sockaddr))
        return socket.socket(family=family, type=type_, proto=proto)

    return create


def _describe(address: IPAddress) -> str:
    """`::ffff:7f00:1 (127.0.0.1)`: an address that forwards to IPv4 says where."""
    embedded = _embedded_ipv4(address) if isinstance(address, IPv6Address) else None
    return f"{address} ({', '.join(map(str, embedded))})" if embedded else str(address)


def _parse_address(value: object) -> IPAddress | None:
    if not isinstance(value, str):
        return None
    try:
        # A scope (fe80::1%eth0) says which interface, not which address: judged without it.
        return ipaddress.ip_address(value.partition("%")[0])
    except ValueError:
        return None


async def allowed_addresses(host: str, port: int, policy: EgressPolicy) -> list[str]:
    """The addresses `host` resolves to, for a client that connects by itself (AMQP, Kafka:
    no socket factory to judge its connects in); raises `EgressRefused` if the policy
    refuses any of them. Connecting to one of these, rather than to the name, leaves no
    window for the name to resolve elsewhere in between (a client that needs the name for
    TLS has that window)."""
    literal = _parse_address(host.strip("[]"))
    if literal is not None:
        found = [literal]
    else:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found = [a for a in (_parse_address(info[4][0]) for info in infos) if a is not None]
    for address in found:
        if not policy.allows(address):
            raise EgressRefused(f"{host} ({_describe(address)})")
    return [str(address) for address in found]


# What a failed connect's errno means to whoever reads an attempt's error.
_CONNECT_ERRNOS = {
    errno.ECONNREFUSED: "connection refused by {}",
    errno.ETIMEDOUT: "connecting to {} timed out",
    errno.EHOSTUNREACH: "{} is unreachable (no route to the host)",
    errno.ENETUNREACH: "{} is unreachable (no route to its network)",
    errno.ECONNRESET: "the connection to {} was reset while opening",
}


def describe_failure(exc: aiohttp.ClientError) -> str:
    """An attempt's error in words, for the delivery log and the console.

    aiohttp's own text of a failed connect is "Cannot connect to host localhost:9
    ssl:default [Connect call failed ('127.0.0.1', 9)]": `ssl:default` reads as a TLS
    problem on a plain `http://` refusal. Other failures keep aiohttp's text after the
    exception's name, as before.
    """
    if not isinstance(exc, aiohttp.ClientConnectorError):
        return f"{type(exc).__name__}: {exc}"
    where = f"{exc.host}:{exc.port}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"the TLS certificate of {where} was not accepted: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"the TLS handshake with {where} failed: {exc.os_error}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"could not resolve {exc.host}: {exc.strerror or exc.os_error}"
    refused = exc.os_error
    if isinstance(refused, EgressRefused):
        return f"{where}: {refused.strerror}"
    known = _CONNECT_ERRNOS.get(refused.errno or 0)
    if known is not None:
        return known.format(where)
    return f"could not connect to {where}: {refused.strerror or refused}"


class NewestFirst(aiohttp.TCPConnector):
    """A pool that hands out the connection used last, not the one idle longest.

    aiohttp (3.10 and later) reuses its idle connections oldest first: at a steady 1.2
    requests a second a pool then keeps about `KEEPALIVE_SECONDS` times 1.2 connections warm
    where one would do, and whatever a burst opened stays open as long as traffic goes on.
    Newest first, the connections a burst added fall idle and are closed after
    `KEEPALIVE_SECONDS`, and one a receiver is about to time out is the last to be reused.
    (aiohttp's private pool: if its shape changes this does nothing, and
    tests/shared/test_egress.py says so.)"""

    def _release(self, key: Any, protocol: Any, *, should_close: bool = False) -> None:
        super()._release(key, protocol, should_close=should_close)
        idle = getattr(self, "_conns", {}).get(key)
        if isinstance(idle, deque) and idle and idle[-1][0] is protocol:
            idle.appendleft(idle.pop())


class GuardedClient:
    """The HTTP client of deliveries: guarded connections; no proxies, cookies or redirects.

    POST is all it does. Its pool holds `max_connections`, reused newest first, dropped
    after `KEEPALIVE_SECONDS` idle. No proxy (`trust_env=False`: a proxy would be the peer judged,
    hiding the real target), no cookie jar (a receiver's cookies are sent back to no one),
    and a redirect is returned as the response it is, never followed. `resolver` replaces
    the system's DNS and `trust` its CA store (tests). Create it inside the running event
    loop.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        max_connections: int,
        *,
        resolver: aiohttp.abc.AbstractResolver | None = None,
        trust: ssl.SSLContext | None = None,
    ) -> None:
        connector = NewestFirst(
            limit=max_connections,
            keepalive_timeout=KEEPALIVE_SECONDS,
            socket_factory=guarded_socket_factory(policy),
            resolver=resolver,
            # Certificates always verified, against the system's CA store unless `trust`.
            ssl=trust if trust is not None else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    @contextlib.asynccontextmanager
    async def post(
        self,
        url: str,
        *,
        body: bytes,
        headers: Mapping[str, str],
        time_limit: float,
        method: str = "POST",
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The response, its body unread; `time_limit` (s) bounds it all, connecting included.
        `method`: another that sends a body (a transformation's PUT or PATCH)."""
        async with self._session.request(
            method,
            url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=time_limit),
            allow_redirects=False,
        ) as response:
            yield response

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> GuardedClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


__all__ = [
    "EgressPolicy",
    "EgressRefused",
    "GuardedClient",
    "NewestFirst",
    "allowed_addresses",
    "check_url",
    "describe_failure",
    "guarded_socket_factory",
    "is_public_address",
    "parse_inet_aton",
]


async def read_prefix(content: aiohttp.StreamReader, limit: int) -> str:
    """The first `limit` bytes of a response body as text; the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def header_fields(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Response headers by lower-case name, repeated fields joined with ", " (RFC 9110 5.3)."""
    fields: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return fields
