"""Egress guard: URL checks at creation time, peer-address checks at connect time, no redirects."""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
from ipaddress import IPv4Address, IPv6Address, ip_address
from types import TracebackType

import aiohttp
import aiohttp.abc
import pytest
import trustme
from aiohttp import web
from aiohttp.abc import ResolveResult

from shared.kernel.egress import (
    EgressPolicy,
    EgressRefused,
    GuardedClient,
    check_url,
    describe_failure,
    is_public_address,
    parse_inet_aton,
)
from shared.kernel.embedded import free_port
from shared.kernel.errors import Invalid

NOTHING_EXTRA = EgressPolicy.from_setting("")
LOOPBACK_V4 = EgressPolicy.from_setting("127.0.0.0/8")

# --- creation time ----------------------------------------------------------------------------

REFUSED = [
    # loopback in every spelling a resolver or browser accepts
    ("http://127.0.0.1", "egress_refused"),
    ("http://127.0.0.1./", "egress_refused"),
    ("http://127.1", "egress_refused"),
    ("http://127.0.1", "egress_refused"),
    ("http://2130706433", "egress_refused"),
    ("http://0x7f000001", "egress_refused"),
    ("http://0X7F000001/", "egress_refused"),
    ("http://0177.0.0.1", "egress_refused"),
    ("http://017700000001", "egress_refused"),
    ("http://0x7f.1", "egress_refused"),
    ("http://0x7f.0.0.1", "egress_refused"),
    ("http://0x7f.0.0x0.01", "egress_refused"),
    ("http://[::1]", "egress_refused"),
    ("http://[0:0:0:0:0:0:0:1]:8080/", "egress_refused"),
    ("http://[::ffff:127.0.0.1]", "egress_refused"),
    ("http://[::ffff:7f00:1]", "egress_refused"),
    # private, shared, link-local, metadata
    ("http://[0:0:0:0:0:ffff:10.0.0.1]", "egress_refused"),
    ("http://[64:ff9b::10.0.0.1]", "egress_refused"),
    ("http://[2002:0a00:0001::]", "egress_refused"),
    ("http://10.0.0.1", "egress_refused"),
    ("http://012.0.0.1", "egress_refused"),
    ("http://167772161", "egress_refused"),
    ("http://172.16.5.4", "egress_refused"),
    ("http://192.168.1.1", "egress_refused"),
    ("http://100.64.0.1", "egress_refused"),
    ("http://169.254.169.254/latest/meta-data", "egress_refused"),
    ("http://0xa9fea9fe/latest/meta-data", "egress_refused"),
    ("http://[fe80::1%25eth0]", "egress_refused"),
    ("http://[fe80::1]", "egress_refused"),
    ("http://[fd00::1]", "egress_refused"),
    ("http://[fec0::1]", "egress_refused"),
    # unspecified, multicast, broadcast, reserved, documentation
    ("http://0.0.0.0", "egress_refused"),
    ("http://0", "egress_refused"),
    ("http://[::]", "egress_refused"),
    ("http://224.0.0.1", "egress_refused"),
    ("http://[ff02::1]", "egress_refused"),
    ("http://255.255.255.255", "egress_refused"),
    ("http://4294967295", "egress_refused"),
    ("http://240.0.0.1", "egress_refused"),
    ("http://192.0.2.10", "egress_refused"),
    ("http://198.18.0.1", "egress_refused"),
    ("http://[2001:db8::1]", "egress_refused"),
    # names that are local or internal by definition
    ("http://localhost", "egress_refused"),
    ("http://LOCALHOST.:8080/", "egress_refused"),
    ("http://foo.localhost", "egress_refused"),
    ("http://metadata.google.internal", "egress_refused"),
    ("http://printer.local", "egress_refused"),
    ("http://db.corp.internal", "egress_refused"),
    ("http://redis:6379", "egress_refused"),
    # not a deliverable URL
    ("ftp://example.com", "invalid_url"),
    ("file:///etc/passwd", "invalid_url"),
    ("gopher://example.com", "invalid_url"),
    ("http://user:pw@example.com", "invalid_url"),
    ("http://user@example.com", "invalid_url"),
    ("http://@example.com", "invalid_url"),
    ("http://example.com\\@127.0.0.1/", "invalid_url"),
    ("http://", "invalid_url"),
    ("http:///hook", "invalid_url"),
    ("http://example.com /hook", "invalid_url"),
    ("http://[2606:4700::1111%25eth0]/", "invalid_url"),
    ("http://1.2.3.4.5/", "invalid_url"),
    ("http://foo.123/", "invalid_url"),
    ("http://%31%32%37.0.0.1/", "invalid_url"),
    ("http://a..b/", "invalid_url"),
    ("http://93.184.216.34:0/", "invalid_url"),
    ("http://93.184.216.34:70000/", "invalid_url"),
]

ALLOWED = [
    "https://example.com/hook",
    "http://93.184.216.34",
    "http://1572395042",  # 93.184.216.34 as one number: a spelling, not a refusal
    "http://[2606:4700::1111]",
    "http://[::ffff:93.184.216.34]",
    "http://[64:ff9b::93.184.216.34]",
    "https://hooks.example.org:8443/x?y=1",
    "https://EXAMPLE.com./hook",
    "https://bücher.example/hook",
    "https://under_score.example.com/",
]


@pytest.mark.parametrize(("url", "code"), REFUSED)
def test_creation_time_refusals(url: str, code: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_url(url, NOTHING_EXTRA)
    assert caught.value.status == 422
    assert caught.value.code == code, caught.value.message


@pytest.mark.parametrize("url", ALLOWED)
def test_creation_time_public_targets_pass(url: str) -> None:
    check_url(url, NOTHING_EXTRA)


def test_refusal_names_the_address_it_decoded() -> None:
    with pytest.raises(Invalid, match=r"0x7f000001 is 127\.0\.0\.1"):
        check_url("http://0x7f000001/", NOTHING_EXTRA)


def test_the_allow_list_opens_its_own_range_and_nothing_else() -> None:
    for url in (
        "http://127.0.0.1:9000",
        "http://127.1:9000/hook",
        "http://[::ffff:127.0.0.1]:9000",
        "http://localhost:9000",
    ):
        check_url(url, LOOPBACK_V4)
    for url in ("http://10.0.0.1", "http://[::1]", "http://169.254.169.254", "http://redis"):
        with pytest.raises(Invalid):
            check_url(url, LOOPBACK_V4)


def test_internal_names_pass_once_a_private_range_is_allowed() -> None:
    cluster = EgressPolicy.from_setting("10.0.0.0/8")
    check_url("http://receiver.default.svc.cluster.local/hook", cluster)
    check_url("http://receiver:8080/hook", cluster)
    with pytest.raises(Invalid, match="metadata"):
        check_url("http://metadata.google.internal/", cluster)
    with pytest.raises(Invalid, match="local machine"):
        check_url("http://localhost/", cluster)


# --- inet_aton spellings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7F.0.0.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("0x7f.0x00.0x0001", "127.0.0.1"),
        ("10.0x10203", "10.1.2.3"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),  # WHATWG reads a bare 0x as 0; glibc refuses it
        ("4294967295", "255.255.255.255"),
        ("4294967296", None),
        ("256.0.0.1", None),
        ("1.256.1", None),
        ("1.2.65536", None),
        ("1.2.3.4.5", None),
        ("08.0.0.1", None),
        ("0x7g.1", None),
        ("1..1", None),
        ("", None),
        ("example.com", None),
        ("١٢٧.0.0.1", None),  # Arabic-Indic digits are not digits to a resolver
    ],
)
def test_parse_inet_aton(text: str, expected: str | None) -> None:
    parsed = parse_inet_aton(text)
    assert (str(parsed) if parsed is not None else None) == expected


def _spell(number: int, rng: random.Random) -> str:
    """`number` in a random inet_aton spelling: 1-4 parts, each decimal, octal or hex."""
    octets = number.to_bytes(4, "big")
    count = rng.randint(1, 4)
    values = [*octets[: count - 1], int.from_bytes(octets[count - 1 :], "big")]
    parts = []
    for value in values:
        style = rng.choice(("dec", "oct", "hex", "HEX"))
        if style == "dec":
            parts.append(str(value))
        elif style == "oct":
            parts.append("0" + format(value, "o"))
        elif style == "hex":
            parts.append("0x" + format(value, "x"))
        else:
            parts.append("0X" + format(value, "X"))
    return ".".join(parts)


def test_parse_inet_aton_agrees_with_the_c_library() -> None:
    rng = random.Random(7)
    samples = [
        0,
        1,
        0x7F000001,
        0xA9FEA9FE,
        0xFFFFFFFF,
        *(rng.getrandbits(32) for _ in range(2000)),
    ]
    for number in samples:
        text = _spell(number, rng)
        assert parse_inet_aton(text) == IPv4Address(socket.inet_aton(text)), text
        assert parse_inet_aton(text) == IPv4Address(number), text


# --- the policy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.31.255.255", False),
        ("172.32.0.1", True),
        ("100.64.0.1", False),
        ("100.128.0.1", True),
        ("169.254.169.254", False),
        ("0.1.2.3", False),
        ("192.0.0.9", False),
        ("198.51.100.7", False),
        ("203.0.113.7", False),
        ("239.255.255.250", False),
        ("fe80::1", False),
        ("fd12:3456::1", False),
        ("fec0::1", False),
        ("ff0e::1", False),  # global-scope multicast is still multicast
        ("2001:db8::1", False),
        ("3fff::1", False),
        ("::", False),
        ("::1", False),
        ("100::1", False),
        ("5f00::1", False),
        ("4000::1", False),  # outside 2000::/3: unassigned
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(ip_address(address)) is public


@pytest.mark.parametrize(
    ("address", "public"),
    [
        # IPv4-mapped
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::ffff:8.8.8.8", True),
        # NAT64 well-known prefix
        ("64:ff9b::10.0.0.1", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("64:ff9b::8.8.8.8", True),
        ("64:ff9b:1::8.8.8.8", False),  # local-use NAT64 is translated inside the network
        # 6to4
        ("2002:a00:1::", False),
        ("2002:7f00:1::1", False),
        ("2002:c0a8:101::", False),
        ("2002:808:808::1", True),
        # Teredo: server 65.54.227.120, client 127.0.0.1 (obfuscated as ~)
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", True),
        # IPv4-compatible (deprecated) and IPv4-translated: reserved space, whatever they embed
        ("::8.8.8.8", False),
        ("::ffff:0:8.8.8.8", False),
    ],
)
def test_ipv6_forms_that_embed_ipv4(address: str, public: bool) -> None:
    assert is_public_address(ip_address(address)) is public


def test_the_allow_list_wins() -> None:
    policy = EgressPolicy.from_setting(" 127.0.0.0/8 , ::1/128,10.1.0.0/16,")
    for allowed in ("127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1", "10.1.2.3", "8.8.8.8"):
        assert policy.allows(ip_address(allowed)), allowed
    for refused in ("10.2.0.1", "169.254.169.254", "fe80::1", "::ffff:10.2.0.1", "0.0.0.0"):
        assert not policy.allows(ip_address(refused)), refused
    assert not NOTHING_EXTRA.allows(IPv4Address("127.0.0.1"))
    assert EgressPolicy.from_setting("169.254.169.254").allows(IPv4Address("169.254.169.254"))
    assert EgressPolicy.from_setting("fd00::/8").allows(IPv6Address("fd00::1"))


def test_dev_default_allows_loopback_and_nothing_else() -> None:
    dev = EgressPolicy.from_setting("127.0.0.0/8,::1/128")
    assert dev.allows(IPv4Address("127.0.0.1")) and dev.allows(IPv6Address("::1"))
    assert not dev.allows(IPv4Address("192.168.0.1"))
    assert not dev.allows_internal_names
    assert EgressPolicy.from_setting("10.0.0.0/8").allows_internal_names


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("10.0.0.1/8", r"'10\.0\.0\.1/8' is not a valid CIDR .*did you mean 10\.0\.0\.0/8\?"),
        ("127.0.0.0/8,localhost", r"'localhost' is not a valid CIDR"),
        ("10.0.0.0/33", r"'10\.0\.0\.0/33' is not a valid CIDR"),
    ],
)
def test_bad_allow_list_is_refused_clearly(setting: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"HOOKHUB_EGRESS_ALLOW_CIDRS: {message}"):
        EgressPolicy.from_setting(setting)


# --- connect time, against real sockets ----------------------------------------------------------

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
REDIRECT = (
    b"HTTP/1.1 302 Found\r\nlocation: http://10.0.0.1/x\r\ncontent-length: 0\r\n"
    b"connection: close\r\n\r\n"
)


class Recorder:
    """A tiny HTTP/1.1 server that keeps every byte each connection sent it."""

    def __init__(
        self, response: bytes = OK, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> None:
        self.response = response
        self.host = host
        self.tls = tls
        self.connections: list[bytearray] = []
        self.finished = 0
        self.port = 0

    async def __aenter__(self) -> Recorder:
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received = bytearray()
        self.connections.append(received)
        try:
            while b"\r\n\r\n" not in received:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                received += chunk
            if b"\r\n\r\n" in received:
                writer.write(self.response)
                await writer.drain()
        finally:
            self.finished += 1
            writer.close()

    async def settled(self, at_least: int) -> None:
        """Wait until `at_least` connections were accepted and every one has ended."""
        for _ in range(500):
            if len(self.connections) >= at_least and self.finished == len(self.connections):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{len(self.connections)} connections, {self.finished} finished")


async def _post(client: GuardedClient, url: str) -> tuple[int, dict[str, str], str]:
    async with client.post(
        url,
        body=b'{"secret": "payload"}',
        headers={"content-type": "application/json"},
        time_limit=5,
    ) as response:
        return response.status, dict(response.headers), await response.text()


async def test_a_name_resolving_to_loopback_is_refused_with_nothing_connected() -> None:
    async with Recorder() as server, GuardedClient(NOTHING_EXTRA, 2) as client:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await _post(client, f"http://localhost:{server.port}/hook")
        # Judged on the address the socket was about to connect to: no connection was made.
        await asyncio.sleep(0.05)
        assert server.connections == []
    message = str(caught.value)
    assert f"localhost:{server.port}" in message
    assert "egress refused: 127.0.0.1 is not a public address" in message


async def test_tls_handshake_never_starts_on_a_refused_connection() -> None:
    async with Recorder() as server, GuardedClient(NOTHING_EXTRA, 2) as client:
        with pytest.raises(aiohttp.ClientConnectorError, match="egress refused"):
            await _post(client, f"https://localhost:{server.port}/")
        await asyncio.sleep(0.05)
        assert server.connections == []


async def test_a_refused_literal_is_not_even_connected_to() -> None:
    async with Recorder() as server, GuardedClient(NOTHING_EXTRA, 2) as client:
        for host in ("127.0.0.1", "[::ffff:127.0.0.1]"):
            with pytest.raises(aiohttp.ClientConnectorError) as caught:
                await _post(client, f"http://{host}:{server.port}/")
            refused = caught.value.os_error
            assert isinstance(refused, EgressRefused)
            # Python 3.13 spells a mapped address ::ffff:127.0.0.1, 3.11 ::ffff:7f00:1.
            assert refused.address.endswith(("127.0.0.1", ":7f00:1 (127.0.0.1)"))
        await asyncio.sleep(0.05)
        assert server.connections == []


async def test_allowed_loopback_is_delivered() -> None:
    async with Recorder() as server, GuardedClient(LOOPBACK_V4, 2) as client:
        # localhost may resolve to ::1 first: refused (the policy allows 127/8 only), so the
        # client goes on to 127.0.0.1.
        for url in (f"http://localhost:{server.port}/hook", f"http://127.0.0.1:{server.port}/hook"):
            status, _, text = await _post(client, url)
            assert (status, text) == (200, "ok")
        await server.settled(at_least=2)
    assert all(data.startswith(b"POST /hook HTTP/1.1\r\n") for data in server.connections)
    assert all(data.endswith(b'{"secret": "payload"}') for data in server.connections)


async def test_redirects_are_returned_not_followed() -> None:
    async with Recorder(REDIRECT) as server, GuardedClient(LOOPBACK_V4, 2) as client:
        status, headers, _ = await _post(client, f"http://127.0.0.1:{server.port}/hook")
        await server.settled(at_least=1)
        assert status == 302
        assert headers["Location"] == "http://10.0.0.1/x"
        assert len(server.connections) == 1
        assert server.connections[0].startswith(b"POST /hook ")


async def test_proxy_settings_in_the_environment_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A proxy would make the peer the proxy, hiding the real target from the check.
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9/")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with Recorder() as server, GuardedClient(LOOPBACK_V4, 2) as client:
        status, _, _ = await _post(client, f"http://localhost:{server.port}/direct")
        assert status == 200
        assert server.connections[0].startswith(b"POST /direct HTTP/1.1\r\n")


async def test_cookies_a_receiver_sets_are_never_sent_back() -> None:
    set_cookie = (
        b"HTTP/1.1 200 OK\r\nset-cookie: session=abc; Path=/\r\ncontent-length: 2\r\n"
        b"connection: close\r\n\r\nok"
    )
    async with Recorder(set_cookie) as server, GuardedClient(LOOPBACK_V4, 2) as client:
        for _ in range(2):
            await _post(client, f"http://127.0.0.1:{server.port}/hook")
        await server.settled(at_least=2)
    assert all(b"cookie" not in data.lower() for data in server.connections)


class Rebinding(aiohttp.abc.AbstractResolver):
    """A resolver that lies: every name resolves to `targets`, as after a DNS rebind."""

    def __init__(self, *targets: str) -> None:
        self._targets = targets

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=target,
                port=port,
                family=socket.AF_INET6 if ":" in target else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for target in self._targets
        ]

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("family", ["127.0.0.1", "::1"])
async def test_the_address_connected_to_is_judged_whatever_the_name_said(family: str) -> None:
    try:
        recorder = Recorder(host=family)
        await recorder.__aenter__()
    except OSError:
        pytest.skip(f"cannot listen on {family} here")
    url = f"http://hooks.example.com:{recorder.port}/"
    try:
        async with GuardedClient(NOTHING_EXTRA, 2, resolver=Rebinding(family)) as client:
            with pytest.raises(aiohttp.ClientConnectorError, match=f"egress refused: {family} "):
                await _post(client, url)
        await asyncio.sleep(0.05)
        assert recorder.connections == []

        policy = EgressPolicy.from_setting(family)
        async with GuardedClient(policy, 2, resolver=Rebinding(family)) as client:
            assert (await _post(client, url))[0] == 200
    finally:
        await recorder.__aexit__(None, None, None)


async def test_of_a_names_addresses_only_the_allowed_ones_are_tried() -> None:
    async with (
        Recorder() as server,
        GuardedClient(LOOPBACK_V4, 2, resolver=Rebinding("10.0.0.1", "::1", "127.0.0.1")) as client,
    ):
        status, _, _ = await _post(client, f"http://hooks.example.com:{server.port}/hook")
        assert status == 200
        await server.settled(at_least=1)
        assert len(server.connections) == 1


# --- TLS: verified, whoever the name resolves to ------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_tls(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_https_is_delivered_to_a_certificate_for_the_name(ca: trustme.CA) -> None:
    tls = _server_tls(ca, "hooks.example.com")
    resolver = Rebinding("127.0.0.1")
    async with (
        Recorder(tls=tls) as server,
        GuardedClient(LOOPBACK_V4, 2, resolver=resolver, trust=_trusting(ca)) as client,
    ):
        status, _, text = await _post(client, f"https://hooks.example.com:{server.port}/hook")
        assert (status, text) == (200, "ok")
        await server.settled(at_least=1)
        assert server.connections[0].startswith(b"POST /hook HTTP/1.1\r\n")


async def test_https_refuses_a_certificate_for_another_name_or_from_another_ca(
    ca: trustme.CA,
) -> None:
    resolver = Rebinding("127.0.0.1")
    for server_tls, trust in (
        (_server_tls(ca, "other.example.com"), _trusting(ca)),  # the wrong name
        (_server_tls(trustme.CA(), "hooks.example.com"), _trusting(ca)),  # an unknown CA
        (_server_tls(ca, "hooks.example.com"), None),  # the system store does not know it
    ):
        async with (
            Recorder(tls=server_tls) as server,
            GuardedClient(LOOPBACK_V4, 2, resolver=resolver, trust=trust) as client,
        ):
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await _post(client, f"https://hooks.example.com:{server.port}/hook")
            await asyncio.sleep(0.05)
            assert all(data == b"" for data in server.connections)  # nothing of the request


async def test_idle_connections_are_reused_newest_first() -> None:
    """After a burst opened three connections, one request at a time uses one of them, not
    each in turn: the others fall idle and the pool closes them (KEEPALIVE_SECONDS)."""
    gate = asyncio.Event()
    ports: dict[str, list[int]] = {"burst": [], "steady": []}

    async def handle(request: web.Request) -> web.Response:
        assert request.transport is not None
        ports[request.match_info["phase"]].append(request.transport.get_extra_info("peername")[1])
        if request.match_info["phase"] == "burst":
            await gate.wait()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{phase}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with GuardedClient(LOOPBACK_V4, 3) as client:
            burst = [
                asyncio.ensure_future(_post(client, f"http://127.0.0.1:{port}/burst"))
                for _ in range(3)
            ]
            while len(ports["burst"]) < 3:  # all three in the handler, each on its own connection
                await asyncio.sleep(0.01)
            gate.set()
            assert [status for status, _, _ in await asyncio.gather(*burst)] == [200] * 3
            for _ in range(6):
                status, _, _ = await _post(client, f"http://127.0.0.1:{port}/steady")
                assert status == 200
    finally:
        await runner.cleanup()
    assert len(set(ports["burst"])) == 3
    assert set(ports["steady"]) <= set(ports["burst"])  # reused, none opened
    assert len(set(ports["steady"])) == 1, ports  # the same one each time


class NoSuchName(aiohttp.abc.AbstractResolver):
    """A resolver that finds nothing, as for a misspelt host."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        return None


async def test_a_failed_connect_says_what_failed_in_words() -> None:
    """aiohttp's "Cannot connect to host 127.0.0.1:9 ssl:default [...]" read as a TLS
    problem on a plain refusal: the attempt's error says what failed, and where."""
    closed = free_port()  # bound and closed again: nothing listens there
    async with GuardedClient(LOOPBACK_V4, 2) as client:
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            await _post(client, f"http://127.0.0.1:{closed}/hook")
    assert describe_failure(refused.value) == f"connection refused by 127.0.0.1:{closed}"
    async with GuardedClient(LOOPBACK_V4, 2, resolver=NoSuchName()) as client:
        with pytest.raises(aiohttp.ClientConnectorDNSError) as unresolved:
            await _post(client, "https://hooks.example.com/hook")
    assert describe_failure(unresolved.value) == (
        "could not resolve hooks.example.com: Name or service not known"
    )
    async with GuardedClient(NOTHING_EXTRA, 2) as client:
        with pytest.raises(aiohttp.ClientConnectorError) as judged:
            await _post(client, f"http://127.0.0.1:{closed}/hook")
    assert describe_failure(judged.value).startswith(
        f"127.0.0.1:{closed}: egress refused: 127.0.0.1 is not a public address"
    )
