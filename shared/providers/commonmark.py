"""CommonMark from text that came from outside: titles, bodies, branch names, commit
messages and summaries placed in a notification as data, never as markup.

What each helper guarantees, wherever its result is placed in a line or a link's text:

- `text` escapes every character that could open markup (emphasis, code spans, links,
  images, raw HTML and entities, GFM tables and strikethrough) with a backslash, which
  CommonMark allows before any ASCII punctuation, and the markers that count only at a
  line's start (headings, quotes, lists, thematic breaks, setext underlines). Line breaks
  become spaces: a title stays on its line.
- `code` is a code span whose fence is one backtick longer than the longest run inside,
  so no backtick in the value can close it.
- `link` links only to `http://` and `https://` targets (a `javascript:`, `data:` or
  relative one is dropped and its text shown as text); the target sits in `<...>` with
  what could end it percent-encoded.
- `quote` is a blockquote, every line of it quoted, the value trimmed to `QUOTE_LIMIT`
  characters first.

Mentions: an `@` followed by a name character, and a `<` followed by anything but a space,
get a zero-width joiner (U+200D) after them, so no chat (Slack, Discord, Mattermost, Zulip)
reads `@everyone`, `@here`, `@channel`, `@someone`, Slack's `<!channel>`, `<@U123>` and
`<https://x|label>` or Discord's `<@123>` from outside as a mention or markup of its own,
and no HTML renderer reads `<script>` as a tag; it looks the same to a reader. `plain` is
that for plain text (a card's title and fields, an author's name).

Control characters and bidirectional formatting characters (a right-to-left override) are
removed everywhere (shared.kernel.text).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote as percent

from shared.kernel.text import BIDI_CONTROLS, printable

# Bodies and comments are shown as a preview: the link leads to the rest.
QUOTE_LIMIT = 500
QUOTE_LINES = 12
ZWJ = "\u200d"

# Anywhere on a line: emphasis, code spans, link and image brackets (with `[` and `]`
# escaped, no `(...)` or `!` can form a link or an image), raw HTML and autolinks (`<`),
# entities (`&`), GFM tables and strikethrough.
INLINE = "\\`*_[]<|~&"
# Markers that open a block only at a line's start: headings, quotes, lists, thematic
# breaks and setext underlines, ordered lists (`1.` or `1)` before a space); the last
# character of the marker is escaped.
_LINE_START = re.compile(r"^(?:#{1,6}(?=\s|$)|[>+=-]|\d{1,9}[.)](?=\s|$))")
_MENTION = re.compile(r"@(?=[\w.-])|<(?=[^\s\u200d])")
# One pass over a line does all of it: each character `INLINE` escapes, a `<` (escaped, and
# defused unless a space follows), an `@` before a name (defused), and (for
# `shared.providers.incoming`'s held pieces) a private-use character; the character after
# each is group 1. One character class, so that the scan is the regular expression
# engine's fast one.
ESCAPES = re.compile(f"[{re.escape(INLINE)}@\ue000-\uf8ff](?=(.)?)", re.DOTALL)
_ESCAPED = {char: "\\" + char for char in INLINE if char != "<"}
_BACKTICKS = re.compile(r"`+")
_URL_UNSAFE = re.compile(f"[\\s<>\\\\\\x00-\\x1f\\x7f-\\x9f{BIDI_CONTROLS}]")


def clean(value: object) -> str:
    """A string with control and bidirectional formatting characters gone and line
    endings as `\\n`."""
    if not isinstance(value, str):
        value = "" if value is None else str(value)
    return printable(value.replace("\r\n", "\n").replace("\r", "\n"))


def unmention(value: str) -> str:
    return _MENTION.sub(lambda found: found.group(0) + ZWJ, value)


def plain(value: object) -> str:
    """Plain text from outside, for where a chat shows text as it is (a card, a name):
    control and bidirectional characters gone, mentions and markup defused."""
    return unmention(clean(value))


def escape_match(found: re.Match[str]) -> str:
    """What an `ESCAPES` match becomes in literal text (a private-use character stays)."""
    return escape_char(found.group(), found.group(1))


def escape_char(char: str, after: str | None, names: Callable[[str], bool] | None = None) -> str:
    """`char`, followed by `after` (None at the end), as literal text: a character
    `INLINE` names escaped, a `<` escaped and defused unless a space follows, an `@`
    defused when what follows could make a name of it (`names`: a word character, `.`,
    `-` or a held piece by default)."""
    escaped = _ESCAPED.get(char)
    if escaped is not None:
        return escaped
    if char == "<":
        return "\\<" if after is None or after.isspace() or after == ZWJ else "\\<" + ZWJ
    if char == "@" and after is not None and (names or _names)(after):
        return "@" + ZWJ
    return char


def _names(char: str) -> bool:
    """Whether `char` after an `@` could make a name of it (a word character, `.`, `-`,
    or a held piece)."""
    return char.isalnum() or char in "_.-" or "\ue000" <= char <= "\uf8ff"


def escape_line_start(line: str) -> str:
    """`line` (CommonMark already) with a block marker at its start escaped."""
    match = _LINE_START.match(line)
    if match is None:
        return line
    marker = match.group(0)
    return f"{marker[:-1]}\\{marker[-1]}{line[match.end() :]}"


def escape_line(line: str, escape: Callable[[re.Match[str]], str] = escape_match) -> str:
    """One line, already collapsed (`line`), as literal CommonMark: `ESCAPES`' matches
    replaced by `escape` (the private-use characters kept as they are by default), a
    block marker at its start escaped (no marker holds a character `ESCAPES` matches)."""
    return escape_line_start(ESCAPES.sub(escape, line.lstrip(" \t")))


def line(value: object, limit: int = 200) -> str:
    """One line of plain text, whitespace collapsed, trimmed to `limit` characters."""
    flat = " ".join(clean(value).split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat


def text(value: object, limit: int = 200) -> str:
    """`value` as literal inline CommonMark on one line (see the module's docstring)."""
    return escape_line(line(value, limit))


def code(value: object, limit: int = 200) -> str:
    """`value` as a code span that nothing inside it can close."""
    inner = unmention(line(value, limit))
    if not inner:
        return ""
    longest = max((len(run) for run in _BACKTICKS.findall(inner)), default=0)
    fence = "`" * (longest + 1)
    # A span's content that starts or ends with a backtick needs a space to stay apart from
    # the fence (CommonMark strips exactly one space at each end).
    if inner.startswith("`") or inner.endswith("`"):
        inner = f" {inner} "
    return f"{fence}{inner}{fence}"


def safe_url(url: object) -> str | None:
    """`url` if it is an absolute http(s) URL, ready to sit in `<...>`; None otherwise."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url.lower().startswith(("https://", "http://")) or len(url) <= len("https://"):
        return None
    return _URL_UNSAFE.sub(lambda m: percent(m.group(0)), url)


def link(label: str, url: object) -> str:
    """`[label](<url>)`, or the label alone when the URL is not http(s).

    `label` is already CommonMark (escape what came from outside with `text` or `code`)."""
    target = safe_url(url)
    if target is None or not label:
        return label
    return f"[{label}](<{target}>)"


def quote(value: object, limit: int = QUOTE_LIMIT, lines: int = QUOTE_LINES) -> str:
    """`value` as a `>` blockquote of literal text, trimmed to `limit` characters and
    `lines` lines ("…" says it was cut); "" for an empty value."""
    body = clean(value).strip()
    if not body:
        return ""
    cut = False
    if len(body) > limit:
        body, cut = body[:limit].rstrip(), True
    split = body.split("\n")
    if len(split) > lines:
        split, cut = split[:lines], True
    quoted = []
    for raw in split:
        escaped = escape_line(raw.rstrip())
        quoted.append(f"> {escaped}" if escaped else ">")
    if cut:
        quoted[-1] = quoted[-1] + " …" if quoted[-1] != ">" else "> …"
    return "\n".join(quoted)
