"""Slack's incoming-webhook body (`text` in mrkdwn, legacy `attachments`, Block Kit
`blocks`) as hookhub's `Incoming`: CommonMark text, a card, the author it asks for.

mrkdwn (Slack's "Formatting text for app surfaces"): `*bold*`, `_italic_`, `~strike~`,
`` `code` ``, ``` ```blocks``` ```, `>` quotes, `<url|label>`, `<url>`, `<mailto:…|label>`,
`<@U123>`, `<#C123|name>`, `<!here>`/`<!channel>`/`<!everyone>`, `<!subteam^S123|@team>`,
`<!date^…|fallback>`, and `&amp;`/`&lt;`/`&gt;`. Mentions become their readable text,
defused (`@channel`, `@U123`, `#general`), so nothing in the chat pings anyone.

When a body has `blocks`, Slack shows them and uses `text` only for notifications; so does
this: `text` is rendered only when the blocks render to nothing. Attachments follow, in
Slack's order: pretext, author (linked), title (linked), text, fields as `name: value`,
image, footer with its time; an attachment's own `blocks` are rendered too. The card takes
the first title (an attachment's, else a header block's), its link, the first attachment's
colour (`good`, `warning` and `danger` as the hex values commonly sent for them) and every
field (attachment fields, and section fields written `*Name*\\nvalue`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from shared.providers import commonmark as md
from shared.providers.incoming import (
    MARKDOWN,
    MAX_FIELDS,
    MAX_LINE,
    MAX_PARTS,
    Emphasis,
    Held,
    Incoming,
    Markup,
    byline,
    card,
    fence,
    field,
    field_lines,
    finish,
    footer,
    heading,
    hex_color,
    items,
    join,
    link_or_text,
    more,
    string,
    unprivate,
)
from shared.providers.notify import Field

__all__ = ["MRKDWN", "convert", "plain"]

# Slack names three attachment colours, "good (green), warning (yellow), danger (red)",
# without their values; these are the values commonly sent for them.
NAMED_COLORS = {"good": "#2eb886", "warning": "#daa038", "danger": "#a30200"}
# `&amp;` last: `&amp;lt;` is the text `&lt;`.
_ENTITIES = {"&lt;": "<", "&gt;": ">", "&amp;": "&"}
_ATOMS = r"`(?P<code>[^`\n]+)`|<(?P<markup>[^<>\n]+)>"
_MARKUP = re.compile(_ATOMS)
_SPECIAL = {"here", "channel", "everyone"}
_QUOTE = re.compile(r"(?:>|&gt;)\s?")
_FIELD = re.compile(r"^\*?(?P<name>[^*\n]+?):?\*?:?\n(?P<value>.+)$", re.DOTALL)


def decode(text: str) -> str:
    return MRKDWN.decode(text)


def _readable(inner: str) -> tuple[str, str | None]:
    """Slack's `<…>` as (plain text, link target or None)."""
    target, _, label = inner.partition("|")
    label = decode(label)
    if target.startswith("@"):
        return "@" + (label.lstrip("@") or target[1:]), None
    if target.startswith("#"):
        return "#" + (label.lstrip("#") or target[1:]), None
    if target.startswith("!"):
        command = target[1:]
        if command in _SPECIAL:
            return "@" + command, None
        if command.startswith("subteam^"):
            return "@" + (label.lstrip("@") or command.removeprefix("subteam^")), None
        if command.startswith("date^"):
            return label, None
        return label or command, None
    url = decode(target)
    return label or url.removeprefix("mailto:"), url


def _atom(found: re.Match[str]) -> str:
    if (code := found.group("code")) is not None:
        return md.code(decode(code), MAX_LINE)
    shown, url = _readable(found.group("markup"))
    return link_or_text(shown, url) if url else md.text(shown, MAX_LINE)


MRKDWN = Markup(
    atoms=_ATOMS,
    atom=_atom,
    atom_starts="`<",
    emphasis=(Emphasis("*", "**"), Emphasis("_", "*"), Emphasis("~", "~~")),
    blocks=_QUOTE,
    block=lambda _: "> ",
    entities=_ENTITIES,
)


def plain(value: object) -> str:
    """mrkdwn as plain text (for a card): markup made readable, `label (url)` for links."""

    def readable(found: re.Match[str]) -> str:
        if (code := found.group("code")) is not None:
            return code
        shown, url = _readable(found.group("markup"))
        return f"{shown} ({url})" if url and shown != url else shown

    return decode(_MARKUP.sub(readable, string(value)))


def convert(body: Mapping[str, Any]) -> Incoming:
    """A Slack incoming-webhook body (already checked to be an object)."""
    blocks = _blocks(body.get("blocks"))
    parts = [blocks or MRKDWN.text(string(body.get("text")))]
    attachments = items(body.get("attachments"))
    parts.extend(_attachment(attachment) for attachment in attachments)
    parts.append(more(body.get("attachments"), MAX_PARTS))
    return Incoming(
        text=finish(parts),
        card=_card(body, attachments),
        username=md.plain(md.line(body.get("username"), 200)) or None,
        avatar_url=md.safe_url(body.get("icon_url")),
    )


def _card(body: Mapping[str, Any], attachments: list[Mapping[str, Any]]) -> Any:
    block_list = items(body.get("blocks"))
    if not attachments and not block_list:
        return None
    titled = next((a for a in attachments if string(a.get("title")).strip()), None)
    header = next((_text_of(b.get("text")) for b in block_list if b.get("type") == "header"), "")
    # No title: the message's own first line names what the card is about.
    first_line = plain(body.get("text")).strip().split("\n", 1)[0]
    title = decode(string(titled.get("title"))) if titled else header or first_line
    url = titled.get("title_link") if titled else None
    color = _color(attachments[0].get("color")) if attachments else None
    fields: list[Field | None] = []
    for attachment in attachments:
        fields.extend(
            field(plain(f.get("title")), plain(f.get("value")))
            for f in items(attachment.get("fields"), MAX_FIELDS)
        )
        fields.extend(_section_fields(items(attachment.get("blocks"))))
    fields.extend(_section_fields(block_list))
    return card(title, url, color, fields)


def _color(value: object) -> str | None:
    name = string(value).strip().lower()
    return NAMED_COLORS.get(name) or hex_color(name)


def _section_fields(blocks: Iterable[Mapping[str, Any]]) -> list[Field | None]:
    """Section fields written as Slack's examples write them, `*Name:*\\nvalue`."""
    found: list[Field | None] = []
    for block in blocks:
        if block.get("type") != "section":
            continue
        for text in items(block.get("fields"), MAX_FIELDS):
            match = _FIELD.match(plain(text.get("text")).strip())
            if match:
                found.append(field(match.group("name"), match.group("value")))
    return found


# -- attachments -------------------------------------------------------------------------------


def _attachment(attachment: Mapping[str, Any]) -> str:
    head = [
        byline(attachment.get("author_name"), attachment.get("author_link")),
        heading(decode(string(attachment.get("title"))), attachment.get("title_link")),
    ]
    tail = field_lines(MRKDWN, attachment.get("fields"), "title", "value")
    if md.safe_url(attachment.get("image_url")):
        tail.append(link_or_text("image", attachment.get("image_url")))
    tail.append(footer(string(attachment.get("footer")), _time(attachment.get("ts"))))
    parts = [
        MRKDWN.text(string(attachment.get("pretext"))),
        join(head, "\n"),
        MRKDWN.text(string(attachment.get("text"))),
        _blocks(attachment.get("blocks")),
        join(tail, "\n"),
    ]
    return join(parts) or MRKDWN.text(string(attachment.get("fallback")))


def _time(value: object) -> str:
    try:
        seconds = float(string(value))
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (ValueError, OverflowError, OSError):
        return ""


# -- Block Kit ---------------------------------------------------------------------------------


def _blocks(value: object) -> str:
    rendered = [_block(block) for block in items(value)]
    return join([*rendered, more(value, MAX_PARTS)])


def _text_of(text: object) -> str:
    return string(text.get("text")) if isinstance(text, dict) else string(text)


def _text_object(text: object, *, one_line: bool = False) -> str:
    """A composition text object: mrkdwn converted, plain_text escaped."""
    if not isinstance(text, dict):
        return ""
    value = string(text.get("text"))
    if text.get("type") == "mrkdwn":
        return MRKDWN.inline(value) if one_line else MRKDWN.text(value)
    lines = [md.text(line, MAX_LINE) for line in value.split("\n")]
    return " ".join(lines) if one_line else "\n".join(lines)


def _element(element: Mapping[str, Any]) -> str:
    """A button with a URL as a link, an image as a link to it; other elements nothing."""
    kind = element.get("type")
    if kind == "button":
        label = md.line(_text_of(element.get("text")), MAX_LINE)
        return link_or_text(label, element.get("url")) if md.safe_url(element.get("url")) else ""
    if kind == "image":
        url = element.get("image_url")
        return link_or_text(md.line(element.get("alt_text")) or "image", url)
    return ""


def _block(block: Mapping[str, Any]) -> str:
    kind = block.get("type")
    if kind == "header":
        title = md.text(_text_of(block.get("text")), MAX_LINE)
        return f"### {title}" if title else ""
    if kind == "section":
        lines = [_text_object(f, one_line=True) for f in items(block.get("fields"))]
        accessory = block.get("accessory")
        if isinstance(accessory, dict):
            lines.append(_element(accessory))
        return join([_text_object(block.get("text")), join(lines, "\n")])
    if kind == "context":
        pieces = [
            _text_object(e, one_line=True)
            if e.get("type") != "image"
            else md.text(e.get("alt_text"))
            for e in items(block.get("elements"))
        ]
        return "*" + join(pieces, " · ") + "*" if any(pieces) else ""
    if kind == "divider":
        return "---"
    if kind == "image":
        label = _text_of(block.get("title")) or string(block.get("alt_text")) or "image"
        return link_or_text(md.line(label, MAX_LINE), block.get("image_url"))
    if kind == "actions":
        return join((_element(e) for e in items(block.get("elements"))), " · ")
    if kind == "rich_text":
        return join(_rich(e) for e in items(block.get("elements")))
    if kind == "markdown":  # Slack's block of standard Markdown
        return MARKDOWN.text(string(block.get("text")))
    return ""


_STYLES = (("code", None), ("bold", "**"), ("italic", "*"), ("strike", "~~"))


def _rich(element: Mapping[str, Any], depth: int = 0) -> str:
    kind = element.get("type")
    if kind == "rich_text_section":
        return _rich_section(element)
    if kind == "rich_text_preformatted":
        return fence(
            md.clean("".join(string(e.get("text")) for e in items(element.get("elements"), 500)))
        )
    if kind == "rich_text_quote":
        return "\n".join("> " + line for line in _rich_section(element).split("\n"))
    if kind == "rich_text_list":
        indent = "  " * min(_int(element.get("indent")), 8)
        ordered = element.get("style") == "ordered"
        lines = []
        for number, item in enumerate(items(element.get("elements")), start=1):
            marker = f"{number}. " if ordered else "- "
            lines.append(indent + marker + _rich_section(item).replace("\n", " "))
        return "\n".join(lines)
    return ""


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _rich_section(section: Mapping[str, Any]) -> str:
    """A section's runs as CommonMark lines: styled text, links, mentions (defused)."""
    held = Held()
    text = ""
    for run in items(section.get("elements"), 500):
        kind = run.get("type")
        if kind == "text":
            text += _styled(held, unprivate(run.get("text")), run.get("style"))
        elif kind == "link":
            url = run.get("url")
            label = unprivate(run.get("text")) or string(url)
            text += held.hold(link_or_text(label, url))
        elif kind in ("user", "usergroup"):
            text += "@" + unprivate(run.get("user_id") or run.get("usergroup_id"))
        elif kind == "channel":
            text += "#" + unprivate(run.get("channel_id"))
        elif kind == "broadcast":
            text += "@" + unprivate(run.get("range"))
        elif kind == "emoji":
            text += ":" + unprivate(run.get("name")) + ":"
        elif kind == "date":
            text += unprivate(run.get("fallback"))
    return "\n".join(held.line(line) for line in text.split("\n"))


def _styled(held: Held, text: str, style: object) -> str:
    if not isinstance(style, dict) or not text.strip():
        return text
    if style.get("code"):
        return held.hold(md.code(text, MAX_LINE))
    core = text.strip()
    lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
    for name, marker in _STYLES[1:]:
        if style.get(name) and marker:
            mark = held.hold(marker)
            core = f"{mark}{core}{mark}"
    return lead + core + trail
