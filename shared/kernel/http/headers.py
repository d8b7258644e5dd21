"""Request headers as hookhub reads them: UTF-8 text, or a 400 naming the header; a header
nothing reads changes nothing, whatever its bytes.

HTTP lets a value carry any byte past ASCII (`obs-text`, RFC 9110 5.5): `X-Foo: caf\\xe9`
is a legal request, and a sender's proxy may add such a header to webhooks it passes on.
So nothing is decoded until it is read, and only what is read must be UTF-8.

The single origin cannot pass such a value on (its HTTP client writes header values as
UTF-8 text): it leaves the header out and names it in `hookhub-undecodable-headers`
(services/edge.py, which drops any such header a client sends). A service reading a header
named there answers as it would have to the value itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from starlette.types import Scope

from shared.kernel.errors import BadRequest

# What the edge names the headers it left out with; lower case, as ASGI gives names.
UNDECODABLE_HEADERS = "hookhub-undecodable-headers"


def not_utf8(name: str) -> BadRequest:
    return BadRequest(
        f"the value of the {name} header is not UTF-8 (hookhub reads this header)",
        code="bad_header",
    )


class RequestHeaders(Mapping[str, str]):
    """A request's headers by lower-case name (ASGI guarantees it), each value decoded from
    UTF-8 when it is read: one that is not (or one the edge left out as not) raises the 400
    of `not_utf8`. A repeated header keeps its first value, as Starlette's `Headers.get`."""

    __slots__ = ("_raw", "_undecodable")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        found = {name.decode("latin-1"): value for name, value in reversed(list(raw))}
        named = found.pop(UNDECODABLE_HEADERS, b"").decode("latin-1")
        self._undecodable = frozenset(n.strip() for n in named.split(",") if n.strip())
        self._raw = found

    def __getitem__(self, name: str) -> str:
        if name in self._undecodable:
            raise not_utf8(name)
        try:
            return self._raw[name].decode("utf-8")
        except UnicodeDecodeError:
            raise not_utf8(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._raw or name in self._undecodable

    def __iter__(self) -> Iterator[str]:
        yield from self._raw
        yield from self._undecodable - self._raw.keys()

    def __len__(self) -> int:
        return len(self._raw.keys() | self._undecodable)


def check_read(scope: Scope, names: Iterable[str]) -> None:
    """The 400 of `not_utf8` for the first of `names` the request carries undecodable."""
    headers = RequestHeaders(scope["headers"])
    for name in names:
        headers.get(name)
