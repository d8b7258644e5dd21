"""Jira's rich text as readable plain text: Atlassian Document Format (Cloud, REST v3 and
some webhooks) and wiki markup (Jira server and Data Center, REST v2 and most webhooks).

The result is plain text for a reader, not markup: the caller escapes it where it places
it (a notification quotes it with shared.providers.commonmark.quote). Links keep their
target beside their text (`text (url)`), mentions read `@Name`, lists `- item`, code its
content; what has no text (media, an unknown node) is left out or named in brackets.
"""

from __future__ import annotations

import re
from typing import Any

# ADF nests a few levels in practice; a document nested deeper than this is cut there
# rather than walked (the JSON limits allow 64 levels, each node two of them).
MAX_DEPTH = 30

_BLOCKS = {
    "paragraph",
    "heading",
    "codeBlock",
    "blockquote",
    "rule",
    "bulletList",
    "orderedList",
    "taskList",
    "decisionList",
    "table",
    "panel",
    "expand",
    "nestedExpand",
    "mediaSingle",
    "mediaGroup",
    "blockCard",
    "embedCard",
}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _attrs(node: dict[str, Any]) -> dict[str, Any]:
    attrs = node.get("attrs")
    return attrs if isinstance(attrs, dict) else {}


def _children(node: dict[str, Any]) -> list[dict[str, Any]]:
    content = node.get("content")
    return [c for c in content if isinstance(c, dict)] if isinstance(content, list) else []


def _text_node(node: dict[str, Any]) -> str:
    value = _str(node.get("text"))
    marks = node.get("marks")
    for mark in marks if isinstance(marks, list) else []:
        if isinstance(mark, dict) and mark.get("type") == "link":
            href = _str(_attrs(mark).get("href"))
            if href and href != value:
                value = f"{value} ({href})" if value else href
    return value


def _inline(nodes: list[dict[str, Any]], depth: int) -> str:
    parts: list[str] = []
    for node in nodes:
        kind = node.get("type")
        attrs = _attrs(node)
        if kind == "text":
            parts.append(_text_node(node))
        elif kind == "hardBreak":
            parts.append("\n")
        elif kind == "mention":
            name = _str(attrs.get("text")).lstrip("@") or _str(attrs.get("id")) or "someone"
            parts.append(f"@{name}")
        elif kind == "emoji":
            parts.append(_str(attrs.get("text")) or _str(attrs.get("shortName")))
        elif kind in ("inlineCard", "blockCard", "embedCard"):
            parts.append(_str(attrs.get("url")))
        elif kind == "status":
            parts.append(f"[{_str(attrs.get('text'))}]")
        elif kind == "date":
            parts.append(_str(attrs.get("timestamp")))
        elif kind in _BLOCKS:
            parts.append(_block(node, depth + 1))
        elif depth < MAX_DEPTH:
            parts.append(_inline(_children(node), depth + 1))
    return "".join(parts)


def _list(node: dict[str, Any], depth: int, ordered: bool) -> str:
    lines = []
    start = _attrs(node).get("order")
    number = start if type(start) is int else 1
    for item in _children(node):
        content = _blocks(_children(item), depth + 1) if item.get("content") else ""
        if item.get("type") in ("taskItem", "decisionItem"):
            content = _inline(_children(item), depth + 1)
            done = _attrs(item).get("state") == "DONE"
            marker = "[x]" if done else "[ ]"
        else:
            marker = f"{number}." if ordered else "-"
        number += 1
        first, *rest = (content or "").split("\n") or [""]
        lines.append(f"{marker} {first}".rstrip())
        lines += [f"  {line}" if line else "" for line in rest]
    return "\n".join(lines)


def _block(node: dict[str, Any], depth: int) -> str:
    if depth > MAX_DEPTH:
        return ""
    kind = node.get("type")
    children = _children(node)
    if kind in ("paragraph", "heading"):
        return _inline(children, depth)
    if kind == "codeBlock":
        return "".join(_str(c.get("text")) for c in children)
    if kind == "blockquote":
        return "\n".join(f"> {line}" for line in _blocks(children, depth).split("\n"))
    if kind == "rule":
        return "---"
    if kind in ("bulletList", "orderedList", "taskList", "decisionList"):
        return _list(node, depth, ordered=kind == "orderedList")
    if kind == "table":
        rows = []
        for row in children:
            cells = [_blocks(_children(cell), depth + 1) for cell in _children(row)]
            rows.append(" | ".join(" ".join(cell.split()) for cell in cells))
        return "\n".join(rows)
    if kind in ("mediaSingle", "mediaGroup", "media"):
        return "[attachment]"
    if kind in ("expand", "nestedExpand"):
        title = _str(_attrs(node).get("title"))
        body = _blocks(children, depth)
        return f"{title}\n{body}" if title else body
    if kind == "text" or (kind not in _BLOCKS and not children):
        return _inline([node], depth)
    return _blocks(children, depth)


def _blocks(nodes: list[dict[str, Any]], depth: int) -> str:
    parts = []
    for node in nodes:
        if node.get("type") in _BLOCKS or node.get("type") in ("panel", "doc"):
            parts.append(_block(node, depth + 1))
        else:
            # Inline nodes directly in a block container (lenient about what Jira sends).
            parts.append(_inline([node], depth + 1))
    return "\n\n".join(part for part in parts if part.strip())


def adf_text(document: Any) -> str:
    """An ADF document (`{"type": "doc", "content": [...]}`) as plain text."""
    if not isinstance(document, dict):
        return ""
    return _blocks(_children(document), 0).strip()


# -- wiki markup ------------------------------------------------------------------------------

_WIKI_RULES: list[tuple[re.Pattern[str], str]] = [
    # {code:java}...{code}, {noformat}...{noformat}: their content, as written.
    (re.compile(r"\{(?:code|noformat)(?::[^}]*)?\}\n?(.*?)\n?\{(?:code|noformat)\}", re.S), r"\1"),
    (re.compile(r"\{(?:quote|panel|color)(?::[^}]*)?\}"), ""),
    (re.compile(r"^h[1-6]\.\s*", re.M), ""),
    (re.compile(r"^bq\.\s*", re.M), "> "),
    (re.compile(r"^[*#-]+\s+", re.M), "- "),
    # [~accountid:5b10...] and [~username]: the mention.
    (re.compile(r"\[~(?:accountid:)?([^\]|]+)\]"), r"@\1"),
    # [text|url] and [url].
    (re.compile(r"\[([^\]|]+)\|([^\]]+)\]"), r"\1 (\2)"),
    (re.compile(r"\[((?:https?|mailto):[^\]]+)\]"), r"\1"),
    # !image.png! and !image.png|thumbnail!
    (re.compile(r"!([^!\s|]+)(?:\|[^!]*)?!"), r"[\1]"),
    # *bold*, _italic_, +underline+, -strike-, ^sup^, ~sub~, ??citation??, {{monospace}}.
    (re.compile(r"\{\{(.+?)\}\}"), r"\1"),
    (re.compile(r"(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<![\w_])_(\S(?:.*?\S)?)_(?![\w_])"), r"\1"),
    (re.compile(r"(?<![\w+])\+(\S(?:.*?\S)?)\+(?![\w+])"), r"\1"),
    (re.compile(r"(?<![\w^])\^(\S(?:.*?\S)?)\^(?![\w^])"), r"\1"),
    (re.compile(r"\?\?(.+?)\?\?"), r"\1"),
    (re.compile(r"^\|\|?(.*?)\|?\|?$", re.M), r"\1"),
    (re.compile(r"\s*\|\|?\s*"), " | "),
    (re.compile(r"\\\\"), "\n"),
    (re.compile(r"^-{4,}\s*$", re.M), "---"),
]


def wiki_text(value: Any) -> str:
    """Jira wiki markup as plain text: formatting dropped, links as `text (url)`, mentions
    as `@name`, lists as `- item`, code and quotes by their content."""
    if not isinstance(value, str):
        return ""
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    for pattern, replacement in _WIKI_RULES:
        text = pattern.sub(replacement, text)
    return text.strip()


def rich_text(value: Any) -> str:
    """A Jira rich-text field, whichever form it came in (ADF object or wiki string)."""
    if isinstance(value, dict):
        return adf_text(value)
    return wiki_text(value)
