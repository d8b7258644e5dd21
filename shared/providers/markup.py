"""CommonMark that hookhub wrote itself (notifications, their cards, the replies of clicks
and commands: shared/providers/commonmark.py made them) in each network's own markup.

A chat message from the chat product is plain text (docs/events.md, `message.created`):
each network escapes it. What hookhub wrote is CommonMark, where `[title](<url>)` is a link
and `\\_` an underscore; shown as it is, a network's reader sees the markup. So such a post
(`OutboundPost.markup` "commonmark") is parsed once, by a real CommonMark parser
(markdown-it-py, raw HTML off: it is text), and written out by the network's `Markup`:
Slack's mrkdwn (`<url|text>`), Telegram's and Teams' HTML, Matrix's HTML beside a plain
body, Google Chat's own markup, Discord's and Mattermost's Markdown.

What the parse yields is safe to write in any of them: text nodes are text, escaped by the
network's `text` (a `<`, `&`, `*` from outside is the character, never markup; the
zero-width joiners commonmark.py put after `@` and `<` stay, so no mention comes alive),
and a link is written only to an absolute http(s) URL (anything else is its text alone).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token

from shared.providers import commonmark as md

# CommonMark as the notifications are written (raw HTML off: `<b>` from outside is text),
# with GFM's strikethrough, which commonmark.py escapes (`~`).
_PARSER = MarkdownIt("commonmark", {"html": False}).enable("strikethrough")
_BULLET = "•"


def safe_href(href: str | None) -> str | None:
    """`href` if it may be linked to: an absolute http(s) URL with nothing in it that
    could end a link in a network's markup (markdown-it has percent-encoded the rest)."""
    if not href or not href.lower().startswith(("https://", "http://")):
        return None
    if any(char.isspace() or char in "<>|\"'`" for char in href):
        return None
    return href


class Markup:
    """How one network writes CommonMark's parts. The defaults are plain text (what a
    network with no markup for a part shows): subclasses override what they have."""

    # Between a paragraph's lines (CommonMark's soft and hard breaks: hookhub's lines are
    # meant as lines) and between blocks; between blocks a blank line apart in the source.
    line_break = "\n"
    block_break = "\n\n"

    def text(self, value: str) -> str:
        return value

    def code(self, value: str) -> str:
        return self.text(value)

    def strong(self, inner: str) -> str:
        return inner

    def emphasis(self, inner: str) -> str:
        return inner

    def strike(self, inner: str) -> str:
        return inner

    def link(self, inner: str, url: str) -> str:
        """`inner` (already written) linking to `url` (checked by `safe_href`)."""
        return f"{inner} ({self.text(url)})"

    def code_block(self, value: str) -> str:
        return self.text(value.rstrip("\n"))

    def quote(self, inner: str) -> str:
        """A blockquote of `inner` (its blocks written, joined by `block_break`)."""
        return "\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))

    def heading(self, inner: str) -> str:
        return self.strong(inner)

    def items(self, items: Sequence[str], ordered: bool, start: int) -> str:
        lines = []
        for number, item in enumerate(items, start):
            marker = f"{number}." if ordered else _BULLET
            lines.append(f"{marker} " + item.replace("\n", "\n   "))
        return "\n".join(lines)

    def rule(self) -> str:
        return "―――"

    def document(self, blocks: Sequence[tuple[str, bool]]) -> str:
        """Blocks one after the other: on the next line, or after a blank one where the
        source had one (hookhub's texts put a quote right under its line)."""
        out: list[str] = []
        for written, gap in blocks:
            if out:
                out.append(self.block_break if gap else self.line_break)
            out.append(written)
        return "".join(out)


# What a backtick inside code is written as (U+02CB) where code has no escape for it.
MODIFIER_GRAVE = "\u02cb"


class Asterisks(Markup):
    """A single `*` for bold, `_` for italics, `~` struck, backticks for code, with no
    escape character: Slack's mrkdwn and Google Chat's text. A backtick inside code is
    written as a look-alike, which keeps the span shut."""

    def code(self, value: str) -> str:
        return f"`{self.text(value.replace('`', MODIFIER_GRAVE))}`"

    def strong(self, inner: str) -> str:
        return f"*{inner}*"

    def emphasis(self, inner: str) -> str:
        return f"_{inner}_"

    def strike(self, inner: str) -> str:
        return f"~{inner}~"

    def code_block(self, value: str) -> str:
        block = value.rstrip("\n").replace("```", MODIFIER_GRAVE * 3)
        return f"```\n{self.text(block)}\n```"


class Markdown(Markup):
    """Markdown as a chat renders it (Discord's, Mattermost's): `**bold**`, italics with
    `emphasis_mark`, `~~struck~~`, code spans fenced longer than what they hold, `-` and
    `1.` lists, `[text](url)` (its parentheses percent-encoded). Subclasses escape text."""

    emphasis_mark = "*"

    def code(self, value: str) -> str:
        return md.code(value, len(value) + 1) or self.text(value)

    def strong(self, inner: str) -> str:
        return f"**{inner}**"

    def emphasis(self, inner: str) -> str:
        return f"{self.emphasis_mark}{inner}{self.emphasis_mark}"

    def strike(self, inner: str) -> str:
        return f"~~{inner}~~"

    def link(self, inner: str, url: str) -> str:
        return f"[{inner}]({url.replace('(', '%28').replace(')', '%29')})"

    def code_block(self, value: str) -> str:
        block = value.rstrip("\n").replace("```", "`\u200b``")  # a fence inside: broken
        return f"```\n{block}\n```"

    def items(self, items: Sequence[str], ordered: bool, start: int) -> str:
        marker = "{}." if ordered else "-"
        # A nested list's lines indented under their item.
        return "\n".join(
            f"{marker.format(number)} " + item.replace("\n", "\n   ")
            for number, item in enumerate(items, start)
        )


class Html(Markup):
    """HTML as a chat's messages take it (Telegram's, Teams', Matrix's): subclasses name
    the tags they know, and say whether lists are `<ul>`/`<ol>` (else `•` lines) and how
    text is escaped (`html.escape` by default: `&`, `<`, `>`)."""

    strong_tag = "strong"
    emphasis_tag = "em"
    strike_tag = "del"
    lists = True

    def text(self, value: str) -> str:
        return html.escape(value, quote=False)

    def code(self, value: str) -> str:
        return f"<code>{self.text(value)}</code>"

    def strong(self, inner: str) -> str:
        return f"<{self.strong_tag}>{inner}</{self.strong_tag}>"

    def emphasis(self, inner: str) -> str:
        return f"<{self.emphasis_tag}>{inner}</{self.emphasis_tag}>"

    def strike(self, inner: str) -> str:
        return f"<{self.strike_tag}>{inner}</{self.strike_tag}>"

    def link(self, inner: str, url: str) -> str:
        return f'<a href="{html.escape(url, quote=True)}">{inner}</a>'

    def code_block(self, value: str) -> str:
        return f"<pre>{self.text(value.rstrip(chr(10)))}</pre>"

    def quote(self, inner: str) -> str:
        return f"<blockquote>{inner}</blockquote>"

    def items(self, items: Sequence[str], ordered: bool, start: int) -> str:
        if not self.lists:
            return super().items(items, ordered, start)
        tag = "ol" if ordered else "ul"
        return f"<{tag}>" + "".join(f"<li>{item}</li>" for item in items) + f"</{tag}>"


def render(text: str, markup: Markup) -> str:
    """`text` (CommonMark) in `markup`'s terms."""
    return _Blocks(markup, text).render(_PARSER.parse(text))


def plain(text: str) -> str:
    """`text` (CommonMark) as plain text: its markup gone, a link `text (url)`."""
    return render(text, _PLAIN)


_PLAIN = Markup()


@dataclass
class _Open:
    """A container block being read: its kind, its first source line, its blocks so far
    (each with whether a blank line came before it in the source) and, for a list, its
    numbering."""

    kind: str
    first_line: int | None = None
    blocks: list[tuple[str, bool]] = field(default_factory=list)
    ordered: bool = False
    start: int = 1

    def add(self, written: str, after_blank: bool) -> None:
        if written:
            self.blocks.append((written, bool(self.blocks) and after_blank))

    def written(self) -> list[str]:
        return [text for text, _ in self.blocks]


class _Blocks:
    def __init__(self, markup: Markup, source: str) -> None:
        self._markup = markup
        self._lines = source.split("\n")

    def render(self, tokens: list[Token]) -> str:
        markup = self._markup
        stack = [_Open("document")]
        for token in tokens:
            kind = token.type
            top = stack[-1]
            if kind in ("blockquote_open", "list_item_open"):
                stack.append(_Open(kind, _first_line(token)))
            elif kind in ("bullet_list_open", "ordered_list_open"):
                start = int(str(token.attrGet("start") or 1))
                ordered = kind == "ordered_list_open"
                stack.append(_Open(kind, _first_line(token), ordered=ordered, start=start))
            elif kind == "blockquote_close":
                stack.pop()
                stack[-1].add(markup.quote(markup.document(top.blocks)), self._gap(top.first_line))
            elif kind == "list_item_close":
                stack.pop()
                stack[-1].add(markup.line_break.join(top.written()), False)
            elif kind in ("bullet_list_close", "ordered_list_close"):
                stack.pop()
                items = markup.items(top.written(), top.ordered, top.start)
                stack[-1].add(items, self._gap(top.first_line))
            elif kind == "inline":
                top.add(_inline(token.children or [], markup), self._gap(_first_line(token)))
            elif kind == "heading_close" and top.blocks:
                written, gap = top.blocks[-1]
                top.blocks[-1] = (markup.heading(written), gap)
            elif kind in ("fence", "code_block"):
                top.add(markup.code_block(token.content), self._gap(_first_line(token)))
            elif kind == "hr":
                top.add(markup.rule(), self._gap(_first_line(token)))
        return markup.document(stack[0].blocks)

    def _gap(self, line: int | None) -> bool:
        """Whether the source line before `line` is blank (in a quote: only its `>`)."""
        if line is None or line < 1 or line > len(self._lines):
            return False
        return not self._lines[line - 1].strip(" \t>")


def _first_line(token: Token) -> int | None:
    return token.map[0] if token.map else None


def _inline(children: list[Token], markup: Markup) -> str:
    """An inline run: text, code, emphasis, strong, strikethrough, links (an image is its
    alt text, linked), breaks."""
    # Each open span: its kind, its href (a link's), and what is written inside it so far.
    stack: list[tuple[str, str | None, list[str]]] = [("", None, [])]
    for token in children:
        kind = token.type
        parts = stack[-1][2]
        if kind == "text":
            parts.append(markup.text(token.content))
        elif kind == "code_inline":
            parts.append(markup.code(token.content))
        elif kind in ("softbreak", "hardbreak"):
            parts.append(markup.line_break)
        elif kind in ("strong_open", "em_open", "s_open"):
            stack.append((kind, None, []))
        elif kind == "link_open":
            href = token.attrGet("href")
            stack.append((kind, safe_href(href if isinstance(href, str) else None), []))
        elif kind == "image":
            alt = markup.text(token.content or "image")
            src = token.attrGet("src")
            url = safe_href(src if isinstance(src, str) else None)
            parts.append(markup.link(alt, url) if url else alt)
        elif kind in ("strong_close", "em_close", "s_close", "link_close") and len(stack) > 1:
            opened, href, inner_parts = stack.pop()
            inner = "".join(inner_parts)
            if opened == "strong_open":
                written = markup.strong(inner)
            elif opened == "em_open":
                written = markup.emphasis(inner)
            elif opened == "s_open":
                written = markup.strike(inner)
            else:
                written = markup.link(inner, href) if href and inner else inner
            stack[-1][2].append(written)
    while len(stack) > 1:  # never for what the parser gives, but nothing is lost
        _, _, inner_parts = stack.pop()
        stack[-1][2].extend(inner_parts)
    return "".join(stack[0][2])
