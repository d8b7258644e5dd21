"""A template's result (shared.domain.templates) as the providers show it: text, card, notice."""

from __future__ import annotations

from dataclasses import replace

from shared.domain.templates import TemplateResult
from shared.providers import commonmark as md
from shared.providers.notify import Card, Notice
from shared.providers.notify import Field as CardField

__all__ = ["card_of", "notice_of", "text_of"]


def card_of(result: TemplateResult) -> Card | None:
    """The result's card, when it has any of title, url, state, colour or fields (the title
    then defaults to the text's first line). Defused as every card is (Card)."""
    if not (result.title or result.url or result.state or result.color or result.fields):
        return None
    return Card(
        title=result.title or md.line((result.text or "").split("\n", 1)[0]),
        url=result.url,
        state=result.state,
        color=result.color.lower() if result.color else None,
        fields=tuple(CardField(f.name, f.value) for f in result.fields or ()),
    )


def text_of(result: TemplateResult) -> str:
    """The workspace's own CommonMark, as written, with mentions and raw HTML defused and
    control characters gone (shared.providers.commonmark.plain)."""
    return md.plain(result.text or "")


def notice_of(result: TemplateResult, default: Notice) -> Notice:
    """`default` (the renderer's notice, whose facts the filters used) shown as the template
    says: its text and card; threaded by its `item` (else the renderer's); the root edited
    only to a template's card; `skip` makes it quiet."""
    if result.skip:
        return replace(default, quiet="skipped by the template")
    card = card_of(result)
    item = result.item or default.item
    return replace(
        default,
        text=text_of(result),
        card=card,
        item=item,
        item_card=card if item is not None else None,
    )
