"""Microsoft Teams' incoming-webhook bodies as hookhub's `Incoming`: CommonMark text and a
card. Teams has no per-message author, so none is asked for.

Two forms are read:

- a connector **MessageCard** (`"@type": "MessageCard"`, or a body with `text`, `title`,
  `summary` or `sections` and no type, as the connector's own `{"text": "Hello World"}`
  example): title, text, each section's activity title, subtitle and text, title, facts as
  `name: value` and text, and `potentialAction` `OpenUri` actions as links; `themeColor`
  and the facts go in the card too;
- the **Workflows** form `{"type": "message", "attachments": [{"contentType":
  "application/vnd.microsoft.card.adaptive", "content": {AdaptiveCard}}]}` (a bare
  `AdaptiveCard`, and a MessageCard as an `application/vnd.microsoft.teams.card.o365connector`
  attachment, are read too): `TextBlock` (a heading for `style: heading` or a large size,
  bold for `weight: bolder`), `RichTextBlock` with its `TextRun`s, `FactSet` as
  `name: value`, `ColumnSet`, `Column`, `Container` and `Table` cells read through,
  `Image` and `ImageSet` as links, `ActionSet` and the card's `actions` as links where
  they are `Action.OpenUrl`. Other elements (inputs, `Action.Submit`, media) are skipped;
  an unknown type is never an error.

Text in both is Markdown as Teams reads it (`shared.providers.incoming.MARKDOWN`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.kernel.errors import Invalid
from shared.providers import commonmark as md
from shared.providers.incoming import (
    MARKDOWN,
    MAX_DEPTH,
    MAX_FIELDS,
    MAX_LINE,
    MAX_PARTS,
    Incoming,
    card,
    field,
    field_lines,
    finish,
    hex_color,
    items,
    join,
    link_or_text,
    more,
    string,
    strong,
)
from shared.providers.notify import Card, Field

__all__ = ["ADAPTIVE", "CONNECTOR", "convert"]

ADAPTIVE = "application/vnd.microsoft.card.adaptive"
CONNECTOR = "application/vnd.microsoft.teams.card.o365connector"
_MESSAGE_CARD_KEYS = ("text", "title", "summary", "sections")
_HEADING_SIZES = {"large", "extralarge"}

NO_CARD = (
    "a Teams message needs a MessageCard (`@type: MessageCard`) or a message with an "
    "Adaptive Card attachment (`type: message`, `attachments` of contentType " + ADAPTIVE + ")"
)


def convert(body: Mapping[str, Any]) -> Incoming:
    """A Teams webhook body (already checked to be an object). Raises `Invalid` for a body
    that is neither form, or whose cards have nothing to show."""
    rendered: list[tuple[str, Card | None]] = []
    if body.get("type") == "message" and isinstance(body.get("attachments"), list):
        for attachment in items(body.get("attachments")):
            content = attachment.get("content")
            if not isinstance(content, dict):
                continue
            if attachment.get("contentType") == ADAPTIVE:
                rendered.append(_adaptive(content))
            elif attachment.get("contentType") == CONNECTOR:
                rendered.append(_message_card(content))
        if not rendered:
            raise Invalid(NO_CARD, code="no_card")
    elif body.get("type") == "AdaptiveCard":
        rendered.append(_adaptive(body))
    elif body.get("@type") == "MessageCard" or (
        "type" not in body and any(key in body for key in _MESSAGE_CARD_KEYS)
    ):
        rendered.append(_message_card(body))
    else:
        raise Invalid(NO_CARD, code="no_card")
    text = finish(text for text, _ in rendered)
    if not text:
        raise Invalid("the Teams card has no text, facts or links to show", code="no_content")
    return Incoming(text=text, card=next((c for _, c in rendered if c is not None), None))


# -- MessageCard -------------------------------------------------------------------------------


def _message_card(message: Mapping[str, Any]) -> tuple[str, Card | None]:
    title = string(message.get("title")).strip()
    parts = [f"### {md.text(title, MAX_LINE)}" if title else ""]
    parts.append(MARKDOWN.text(string(message.get("text"))))
    fields: list[Field | None] = []
    sections = items(message.get("sections"))
    for section in sections:
        parts.append(_section(section))
        fields.extend(
            field(f.get("name"), f.get("value")) for f in items(section.get("facts"), MAX_FIELDS)
        )
    parts.append(more(message.get("sections"), MAX_PARTS))
    links = _open_uris(message.get("potentialAction"))
    parts.append(join((link for link, _ in links), " · "))
    if not join(parts):
        parts.append(md.text(message.get("summary"), MAX_LINE))
    first = sections[0] if sections else {}
    heading = title or string(message.get("summary")) or string(first.get("activityTitle"))
    url = links[0][1] if links else None
    built = card(heading, url, hex_color(message.get("themeColor")), fields)
    return join(parts), built


def _section(section: Mapping[str, Any]) -> str:
    head = [strong(md.text(string(section.get("title")), MAX_LINE))]
    activity = string(section.get("activityTitle")).strip()
    if activity:
        head.append(strong(MARKDOWN.inline(activity)))
    texts = [
        MARKDOWN.text(string(section.get(key)))
        for key in ("activitySubtitle", "activityText", "text")
    ]
    tail = field_lines(MARKDOWN, section.get("facts"), "name", "value")
    tail.append(join((link for link, _ in _open_uris(section.get("potentialAction"))), " · "))
    return join([join(head, "\n"), *texts, join(tail, "\n")])


def _open_uris(actions: object) -> list[tuple[str, str]]:
    """`OpenUri` actions as (link, URL): the `default` target's URI, else the first."""
    found = []
    for action in items(actions):
        if action.get("@type") != "OpenUri":
            continue
        targets = items(action.get("targets"))
        target = next(
            (t for t in targets if t.get("os") == "default"), targets[0] if targets else {}
        )
        url = md.safe_url(target.get("uri"))
        if url:
            found.append((link_or_text(md.line(action.get("name")) or url, url), url))
    return found


# -- Adaptive Card -----------------------------------------------------------------------------


class _Reading:
    """What an Adaptive Card's walk collects: the lines, its facts, its first heading and
    its first link."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.fields: list[Field | None] = []
        self.title = ""
        self.url: str | None = None

    def link(self, action: Mapping[str, Any]) -> str:
        if action.get("type") != "Action.OpenUrl":
            return ""
        url = md.safe_url(action.get("url"))
        if url is None:
            return ""
        self.url = self.url or url
        return link_or_text(md.line(action.get("title"), MAX_LINE) or url, url)


def _adaptive(content: Mapping[str, Any]) -> tuple[str, Card | None]:
    reading = _Reading()
    _elements(content.get("body"), reading, 0)
    reading.lines.append(join((reading.link(a) for a in items(content.get("actions"))), " · "))
    built = card(reading.title, reading.url, None, reading.fields)
    return join(reading.lines), built


def _elements(value: object, reading: _Reading, depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    for element in items(value):
        _element(element, reading, depth)
    if more(value, MAX_PARTS):
        reading.lines.append(more(value, MAX_PARTS))


def _element(element: Mapping[str, Any], reading: _Reading, depth: int) -> None:
    kind = element.get("type")
    lines = reading.lines
    if kind == "TextBlock":
        text = string(element.get("text"))
        if not text.strip():
            return
        size = string(element.get("size")).lower()
        if element.get("style") == "heading" or size in _HEADING_SIZES:
            lines.append(f"### {md.text(text, MAX_LINE)}")
            reading.title = reading.title or text
        elif string(element.get("weight")).lower() == "bolder":
            lines.append(strong(md.text(text, MAX_LINE)))
            reading.title = reading.title or text
        else:
            lines.append(MARKDOWN.text(text))
    elif kind == "RichTextBlock":
        lines.append(join((_run(run) for run in items(element.get("inlines"))), " "))
    elif kind == "FactSet":
        lines.extend(field_lines(MARKDOWN, element.get("facts"), "title", "value"))
        reading.fields.extend(
            field(fact.get("title"), fact.get("value"))
            for fact in items(element.get("facts"), MAX_FIELDS)
        )
    elif kind == "ColumnSet":
        for column in items(element.get("columns")):
            _elements(column.get("items"), reading, depth + 1)
    elif kind in ("Container", "Column"):
        _elements(element.get("items"), reading, depth + 1)
    elif kind == "Table":
        for row in items(element.get("rows")):
            for cell in items(row.get("cells")):
                _elements(cell.get("items"), reading, depth + 1)
    elif kind == "Image":
        label = md.line(element.get("altText"), MAX_LINE) or "image"
        if md.safe_url(element.get("url")):
            lines.append(link_or_text(label, element.get("url")))
    elif kind == "ImageSet":
        _elements(element.get("images"), reading, depth + 1)
    elif kind == "ActionSet":
        lines.append(join((reading.link(a) for a in items(element.get("actions"))), " · "))


def _run(run: Mapping[str, Any]) -> str:
    """A `TextRun` (or a bare string's worth of one) as inline CommonMark."""
    if run.get("type") != "TextRun":
        return ""
    text = md.text(string(run.get("text")), MAX_LINE)
    if not text:
        return ""
    if run.get("strikethrough") is True:
        text = f"~~{text}~~"
    if run.get("italic") is True:
        text = f"*{text}*"
    if string(run.get("weight")).lower() == "bolder":
        text = f"**{text}**"
    action = run.get("selectAction")
    if isinstance(action, dict) and action.get("type") == "Action.OpenUrl":
        text = md.link(text, action.get("url"))
    return text
