"""What the notification tests share: notifications read back through a real CommonMark
parser (markdown-it-py, raw HTML on as CommonMark has it), and the hostile strings."""

from __future__ import annotations

import functools
import html
import json
import pickle
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from shared.providers.commonmark import ZWJ
from shared.providers.notify import Card, Unrenderable

PARSER = MarkdownIt("commonmark")
PROVIDERS = Path(__file__).parents[2] / "shared" / "providers"

# Text from outside that must stay text wherever a notification places it.
HOSTILE = [
    "<script>alert(1)</script>",
    "[x](javascript:alert(1))",
    "![img](javascript:alert(1)) <javascript:alert(1)>",
    "ends a span `` ` `` and ``` opens a fence",
    "*emphasis* _also_ **strong** ~~strike~~",
    "@everyone and @here and @channel",
    "# not a heading",
    "> not a quote",
    "1. not a list",
    "- not a list",
    "&lt;b&gt; &amp; entity",
    "<!-- comment --> <img src=x onerror=alert(1)>",
    "back\\slash at the end \\",
    "| a | b |",
    "[ref]: https://evil.example",
]


def clone(payload: Any) -> Any:
    """A deep copy of a payload (JSON), as `copy.deepcopy` makes it but several times
    faster: the mutation tests make thousands. A scalar (immutable) is itself."""
    if not isinstance(payload, dict | list):
        return payload
    # Only what this process just pickled is unpickled.
    return pickle.loads(pickle.dumps(payload, pickle.HIGHEST_PROTOCOL))  # noqa: S301


@functools.lru_cache(maxsize=4096)
def _read(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """`text` parsed once: its HTML and its links. Most of a payload's mutations render
    the same text, and each check of it would otherwise parse it again."""
    tokens = PARSER.parse(text)
    return str(PARSER.renderer.render(tokens, PARSER.options, {})), tuple(_links(tokens))


def to_html(text: str) -> str:
    return _read(text)[0]


def plain(text: str) -> str:
    """What a reader sees: the rendered HTML's text, without the zero-width joiners."""
    rendered = re.sub(r"<[^>]+>", "", to_html(text))
    return html.unescape(rendered).replace(ZWJ, "")


def links(text: str) -> list[tuple[str, str]]:
    """(href, link text) of every link in `text`, as the parser sees them."""
    return list(_read(text)[1])


def _links(tokens: list[Token]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []

    def walk(tokens: list[Token]) -> None:
        href: str | None = None
        label: list[str] = []
        for token in tokens:
            if token.children:
                walk(token.children)
            if token.type == "link_open":
                href, label = str(token.attrGet("href")), []
            elif token.type == "link_close" and href is not None:
                found.append((href, "".join(label).replace(ZWJ, "")))
                href = None
            elif href is not None and token.type in ("text", "code_inline"):
                label.append(token.content)

    walk(tokens)
    return found


def _emphasis(html_text: str) -> list[int]:
    return [html_text.count(tag) for tag in ("<em>", "<strong>", "<del>")]


def assert_inert(text: str, *expected: str, baseline: str | None = None) -> None:
    """`text` renders no markup of its own making from outside strings: no script, no
    raw HTML, no link or image to anything but http(s), no heading, no emphasis (beyond
    the renderer's own in `baseline`: the same notice made from harmless strings); each of
    `expected` reads intact; no chat-wide mention survives."""
    rendered = to_html(text)
    lowered = rendered.lower()
    assert "<script" not in lowered
    assert "<img" not in lowered
    assert "<!--" not in lowered
    assert not re.search(r"<h[1-6]", lowered)
    own = _emphasis(to_html(baseline).lower()) if baseline is not None else [0, 0, 0]
    assert _emphasis(lowered) == own, (_emphasis(lowered), own)
    for href, _ in links(text):
        assert href.startswith(("https://", "http://")), href
    assert "javascript:" not in " ".join(href for href, _ in links(text))
    seen = plain(text)
    for wanted in expected:
        assert wanted in seen, (wanted, seen)
    for mention in ("@everyone", "@here", "@channel"):
        assert mention not in text


# What a probe found raw in a card: a tag, chat-wide mentions in Slack's and everyone's
# spelling, a Slack user mention, and a right-to-left override; and how it reads defused.
CARD_HOSTILE = "<script>x</script> @everyone <!channel> <@U024BE7LH> \u202eevil\u202c"
CARD_READS = "<script>x</script> @everyone <!channel> <@U024BE7LH> evil"

# What a card or an author's name from outside may not hold (chat-wide mentions, Slack's and
# Discord's `<…>` markup, an HTML tag) and the characters no published text keeps.
_LIVE = re.compile(
    r"@[\w.-]|<[^\s\u200d]|[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def assert_defused(value: str, expected: str | None = None) -> None:
    """`value` (a card's title or field, a name) is plain text that nothing reads as a
    mention, markup or a direction change, and reads as `expected` (joiners aside)."""
    assert not _LIVE.search(value), value
    if expected is not None:
        assert value.replace(ZWJ, "") == expected, value


def set_path(payload: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = payload
    for key in parents:
        node = node[key]
    node[last] = value


# What a field of a payload may be turned into: absent in effect, or of another type.
RETYPED: tuple[Any, ...] = (None, 5, [], "", {"x": 1}, True)


def mutations(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """`payload` with one field (at any depth of its objects) replaced by each of
    `RETYPED`, one copy at a time: what a renderer must render or call Unrenderable."""

    def paths(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield (*prefix, key)
                yield from paths(value, (*prefix, key))

    for path in list(paths(payload)):
        for replacement in RETYPED:
            changed = clone(payload)
            node = changed
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = replacement
            yield changed


def assert_renders_or_refuses(
    render: Callable[[dict[str, Any]], Any], payload: dict[str, Any]
) -> None:
    """Every mutation of `payload` renders inert text, or is Unrenderable with a reason:
    no other exception escapes the renderer, and the renderer's own emphasis is at most
    what the payload as it was shows."""
    own = _emphasis(to_html(render(payload).text))
    for changed in mutations(payload):
        try:
            notice = render(changed)
        except Unrenderable as refused:
            assert refused.reason
            continue
        assert notice.text or notice.quiet
        made = _emphasis(to_html(notice.text))
        assert all(m <= o for m, o in zip(made, own, strict=True)), (made, own)
        assert_inert(notice.text, baseline=notice.text)  # emphasis checked just above


def sample(provider: str, name: str) -> dict[str, Any]:
    """`shared/providers/<provider>/samples/<name>.json`, a fresh copy."""
    loaded: dict[str, Any] = json.loads(
        (PROVIDERS / provider / "samples" / f"{name}.json").read_text()
    )
    return loaded


def card_fields(card: Card | None) -> dict[str, str]:
    assert card is not None
    return {f.name: f.value for f in card.fields}
