"""Plain text → Atlassian Document Format, the JSON Jira Cloud's REST v3 takes for rich
text fields (`description`): `{"type": "doc", "version": 1, "content": [...]}`.

Blank lines separate paragraphs; a single line break is a `hardBreak`; `http(s)://` URLs
become text with a `link` mark; `` `code` `` spans text with a `code` mark; the chat
message is a `blockquote` (its author in a `strong` mark). Everything else is text, kept
as written: ADF is a tree of typed nodes, not markup, so nothing in the text (HTML, wiki
markup, Markdown) is interpreted by Jira.
"""

from __future__ import annotations

import re
from typing import Any

from shared.providers.issues import QuotedMessage, utc

Node = dict[str, Any]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_CODE = re.compile(r"`([^`\n]+)`")
_URL = re.compile(r"https?://[^\s<>\"'`]+")
# Punctuation that ends a sentence rather than the URL before it.
_TRAILING = ".,;:!?'\"*_"


def text(value: str, *marks: Node) -> Node:
    node: Node = {"type": "text", "text": value}
    if marks:
        node["marks"] = list(marks)
    return node


def link(href: str) -> Node:
    return {"type": "link", "attrs": {"href": href}}


CODE: Node = {"type": "code"}
STRONG: Node = {"type": "strong"}
HARD_BREAK: Node = {"type": "hardBreak"}


def _clean(value: str) -> str:
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def _url_end(candidate: str) -> str:
    """The URL without punctuation that follows it in prose (and an unmatched `)`)."""
    while candidate:
        last = candidate[-1]
        if last in _TRAILING or (last == ")" and candidate.count("(") < candidate.count(")")):
            candidate = candidate[:-1]
            continue
        break
    return candidate


def _links(value: str) -> list[Node]:
    nodes: list[Node] = []
    position = 0
    for match in _URL.finditer(value):
        url = _url_end(match.group(0))
        if len(url) <= len("https://"):
            continue
        if match.start() > position:
            nodes.append(text(value[position : match.start()]))
        nodes.append(text(url, link(url)))
        position = match.start() + len(url)
    if position < len(value):
        nodes.append(text(value[position:]))
    return nodes


def inline(line: str) -> list[Node]:
    """One line's text nodes: code spans, links, plain text (never an empty text node)."""
    nodes: list[Node] = []
    position = 0
    for match in _CODE.finditer(line):
        nodes += _links(line[position : match.start()])
        nodes.append(text(match.group(1), CODE))
        position = match.end()
    nodes += _links(line[position:])
    return [node for node in nodes if node.get("text") != ""]


def paragraph(*content: Node) -> Node:
    return {"type": "paragraph", "content": list(content)}


def paragraphs(value: str) -> list[Node]:
    """Paragraphs of `value`, split at blank lines, lines joined by hard breaks."""
    found = []
    for block in _PARAGRAPH_BREAK.split(_clean(value)):
        content: list[Node] = []
        for line in block.split("\n"):
            if not line.strip():
                continue
            if content:
                content.append(HARD_BREAK)
            content += inline(line)
        if content:
            found.append(paragraph(*content))
    return found


def blockquote(message: QuotedMessage) -> Node:
    """The chat message: who wrote it and when, its text, a link back to it."""
    said = " wrote"
    if message.time is not None:
        said += f" at {utc(message.time).strftime('%Y-%m-%d %H:%M UTC')}"
    content = [paragraph(text(_clean(message.author) or "someone", STRONG), text(said + ":"))]
    content += paragraphs(message.text)
    if message.permalink and message.permalink.startswith(("https://", "http://")):
        content.append(paragraph(text("View the message in chat", link(message.permalink))))
    return {"type": "blockquote", "content": content}


def document(description: str | None, message: QuotedMessage | None = None) -> Node | None:
    """The issue's description: the caller's text, then the quoted message (None: neither)."""
    content = paragraphs(description or "")
    if message is not None:
        content.append(blockquote(message))
    if not content:
        return None
    return {"type": "doc", "version": 1, "content": content}
