"""Discord's Execute Webhook body (`content`, `username`, `avatar_url`, up to 10 `embeds`) as
hookhub's `Incoming`: CommonMark text, a card, the author it asks for.

`content` is Discord's markdown, close to CommonMark: bold, italics, underline (shown as
emphasis), strikethrough, spoilers (shown), code, `[label](url)` links, headings, quotes
and lists are kept as CommonMark's; mentions (`<@123>`, `<@&123>`, `<#123>`, `@everyone`,
`@here`) are defused. Each embed follows: author (linked), title (linked to `url`),
description, fields as `name: value`, image and thumbnail as links, footer with the
timestamp. The card is the first embed with a title or fields: its title, URL and colour
(the integer as `#rrggbb`), and the fields of every embed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.kernel.errors import Invalid
from shared.providers import commonmark as md
from shared.providers.incoming import (
    MARKDOWN,
    MAX_FIELDS,
    Incoming,
    byline,
    card,
    field,
    field_lines,
    finish,
    footer,
    heading,
    items,
    join,
    link_or_text,
    more,
    string,
)
from shared.providers.notify import Card, Field

__all__ = ["MAX_EMBEDS", "convert"]

# Execute Webhook: "array of up to 10 embed objects".
MAX_EMBEDS = 10


def convert(body: Mapping[str, Any]) -> Incoming:
    """A Discord webhook body (already checked to be an object). Raises `Invalid` when it
    has neither content nor an embed with something to show, as Discord refuses it."""
    embeds = items(body.get("embeds"), MAX_EMBEDS)
    parts = [MARKDOWN.text(string(body.get("content")))]
    parts.extend(_embed(embed) for embed in embeds)
    parts.append(more(body.get("embeds"), MAX_EMBEDS))
    text = finish(parts)
    if not text:
        raise Invalid("a Discord message needs `content` or `embeds`", code="no_content")
    return Incoming(
        text=text,
        card=_card(embeds),
        username=md.plain(md.line(body.get("username"), 200)) or None,
        avatar_url=md.safe_url(body.get("avatar_url")),
    )


def color(value: object) -> str | None:
    """Discord's colour, an integer `0xRRGGBB`, as `#rrggbb`."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFFFF:
        return f"#{value:06x}"
    return None


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _embed(embed: Mapping[str, Any]) -> str:
    author = _object(embed.get("author"))
    head = [
        byline(author.get("name"), author.get("url")),
        heading(embed.get("title"), embed.get("url")),
    ]
    tail = field_lines(MARKDOWN, embed.get("fields"), "name", "value")
    for key in ("image", "thumbnail"):
        url = md.safe_url(_object(embed.get(key)).get("url"))
        if url:
            tail.append(link_or_text(key, url))
    text = string(_object(embed.get("footer")).get("text"))
    tail.append(footer(text, string(embed.get("timestamp"))))
    description = MARKDOWN.text(string(embed.get("description")))
    return join([join(head, "\n"), description, join(tail, "\n")])


def _card(embeds: list[Mapping[str, Any]]) -> Card | None:
    if not embeds:
        return None
    first = next(
        (e for e in embeds if string(e.get("title")).strip() or items(e.get("fields"))),
        embeds[0],
    )
    fields: list[Field | None] = [
        field(f.get("name"), f.get("value"))
        for embed in embeds
        for f in items(embed.get("fields"), MAX_FIELDS)
    ]
    return card(first.get("title"), first.get("url"), color(first.get("color")), fields)
