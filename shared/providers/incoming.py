"""What an incoming webhook's body becomes, whichever chat's format it was written for
(Slack's, Discord's, Microsoft Teams'): CommonMark text, a card, and the name and avatar it
asks to be shown under; and the light markup those formats write, turned into CommonMark.

Each format is one module with one entry point, `convert(body) -> Incoming`:
`shared.providers.slack.incoming`, `shared.providers.discord.incoming`,
`shared.providers.microsoft.teams`. They are pure: a parsed JSON body in, an `Incoming` out.

What came from outside is data. The only markup in `text` is what a converter writes
itself — emphasis, links, headings, quotes, lists, code — from the structure it recognised
(`Markup`); every character of the sender's text is escaped where it lands
(shared.providers.commonmark), links go to http(s) targets only (a `javascript:` or
`data:` one keeps its label as text), mentions (`@everyone`, `<!channel>`, `<@U1>`,
`<@123>`) are defused with a zero-width joiner, and control and bidirectional characters
are removed.

Bounds, so that no body costs more than its size: `MAX_PARTS` blocks, attachments, embeds,
sections or card elements per list, `MAX_FIELDS` fields per list and in the card,
`MAX_DEPTH` containers inside containers; what is past a bound is counted in an
"… and N more" line, not rendered. The text is cut at `MAX_TEXT` characters, at a line.
Values of the wrong type (a number where a string goes, an object where a list goes) are
read as far as they make sense and otherwise skipped: a body never fails for them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.providers import commonmark as md
from shared.providers.notify import Card, Field

MAX_TEXT = 40_000
MAX_PARTS = 50
MAX_FIELDS = 25
MAX_DEPTH = 8
# Plenty for a heading or a label; past it, "…".
MAX_LINE = 2_000


@dataclass(frozen=True)
class Incoming:
    """One incoming webhook's message: `text` in CommonMark, `card` (SPEC §12's) when the
    body had a title, fields or a colour, and the author `username`/`avatar_url` it asked
    for (None: the hook's defaults)."""

    text: str
    card: Card | None = None
    username: str | None = None
    avatar_url: str | None = None


def string(value: object) -> str:
    """`value` where a string is expected: a string as it is, a number written out, and
    anything else (an object, a list, a boolean, null) as nothing."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def items(value: object, limit: int = MAX_PARTS) -> list[Mapping[str, Any]]:
    """The objects of a list (other entries skipped), at most `limit` of them."""
    if not isinstance(value, list):
        return []
    found: list[Mapping[str, Any]] = [item for item in value if isinstance(item, dict)]
    return found[:limit]


def more(value: object, limit: int) -> str:
    """ "… and N more" when the list `value` has more than `limit` entries, else ""."""
    extra = len(value) - limit if isinstance(value, list) else 0
    return md.text(f"… and {extra} more") if extra > 0 else ""


def hex_color(value: object) -> str | None:
    """`#rrggbb` from `#RRGGBB` or `RRGGBB` (Slack's and Teams' colours); None otherwise."""
    text = string(value).strip().lstrip("#")
    if re.fullmatch(r"[0-9a-fA-F]{6}", text):
        return "#" + text.lower()
    return None


def field_name(name: object) -> str:
    """A field's name without the colon some senders end it with (`Board:`)."""
    return string(name).strip().rstrip(":").rstrip()


def field(name: object, value: object) -> Field | None:
    shown_name, shown_value = md.line(field_name(name), MAX_LINE), md.line(value, MAX_LINE)
    if not shown_name and not shown_value:
        return None
    return Field(shown_name, shown_value)


def card(
    title: object, url: object, color: str | None, fields: Iterable[Field | None]
) -> Card | None:
    """SPEC §12's card when there is something to show in one, else None."""
    kept = tuple(f for f in fields if f is not None)[:MAX_FIELDS]
    shown = md.line(title, MAX_LINE)
    if not shown and not kept and color is None:
        return None
    return Card(title=shown, url=md.safe_url(url), color=color, fields=kept)


def field_line(name: str, value: str) -> str:
    """`**name:** value`, both already CommonMark; the value alone when there is no name."""
    if not name:
        return value
    return f"**{name}:** {value}" if value else f"**{name}**"


def strong(value: str) -> str:
    return f"**{value}**" if value else ""


def byline(name: object, url: object) -> str:
    """An author's name (plain text from outside), linked when `url` is http(s)."""
    shown = string(name).strip()
    return link_or_text(shown, url) if shown else ""


def heading(title: object, url: object) -> str:
    """A title (plain text from outside: markup in it stays text) in bold, linked."""
    return strong(byline(title, url))


def field_lines(markup: Markup, value: object, name_key: str, value_key: str) -> list[str]:
    """A list of fields as `**name:** value` lines: the name plain text, the value in
    `markup`; at most `MAX_FIELDS`, then "… and N more"."""
    lines = [
        field_line(md.text(field_name(f.get(name_key)), MAX_LINE), markup.inline(f.get(value_key)))
        for f in items(value, MAX_FIELDS)
    ]
    return [*lines, more(value, MAX_FIELDS)]


def footer(*parts: str) -> str:
    """A footer's parts (plain text from outside) on one line, in italics."""
    shown = " · ".join(part.strip() for part in parts if part.strip())
    return f"*{md.text(shown, MAX_LINE)}*" if shown else ""


def join(parts: Iterable[str], separator: str = "\n\n") -> str:
    """The non-empty parts; paragraphs by default (a quote, a list or a code block in one
    part must end before the next begins)."""
    return separator.join(part for part in parts if part)


def finish(parts: Iterable[str]) -> str:
    """The parts as paragraphs, cut at `MAX_TEXT` characters at a line's end."""
    # Private-use characters are held pieces' in `Markup`; a sender's own go everywhere alike.
    text = _PRIVATE.sub("", join(part.strip("\n") for part in parts))
    if len(text) <= MAX_TEXT:
        return text
    cut = text[:MAX_TEXT].rsplit("\n", 1)[0]
    return cut + "\n\n" + md.text("… (cut)")


# -- markup ------------------------------------------------------------------------------------

# Pieces of CommonMark are set aside as characters of Unicode's private use area while the
# text around them is escaped, then put back; the sender's own such characters are removed.
_PRIVATE = re.compile("[\ue000-\uf8ff]")
_FIRST_HELD = 0xE000
_MAX_HELD = 0xF8FF - 0xE000
_FENCE = re.compile(r"```(.*?)```", re.DOTALL)
_BACKTICKS = re.compile(r"`+")
_LANGUAGE = re.compile(r"[\w+#.-]{1,30}\n")


class Held:
    """CommonMark set aside while the text around it is escaped."""

    def __init__(self) -> None:
        self.pieces: list[str] = []

    def hold(self, markup: str) -> str:
        if len(self.pieces) >= _MAX_HELD:  # a line of tens of thousands of spans: let go
            return ""
        self.pieces.append(markup)
        return chr(_FIRST_HELD + len(self.pieces) - 1)

    def line(self, text: str) -> str:
        """`text` (the sender's characters and held pieces) as one line of CommonMark, in
        one pass: escaped, and each held piece put back (an `@` right before one, as in
        `@*everyone*`, defused so that it cannot join it into a mention)."""
        return md.escape_line(md.line(text, MAX_TEXT), self._escape)

    def _escape(self, found: re.Match[str]) -> str:
        index = ord(found.group()) - _FIRST_HELD
        if index < 0:
            return md.escape_match(found)
        return self.pieces[index] if index < len(self.pieces) else ""


def unprivate(value: object) -> str:
    """Text from outside (`string`'s reading of it) without control, bidirectional and
    private-use characters (the last are `Held`'s)."""
    return _PRIVATE.sub("", md.clean(string(value)))


def fence(body: str) -> str:
    """A fenced code block that nothing inside it can close."""
    body = md.unmention(body.strip("\n"))
    if not body.strip():
        return ""
    longest = max((len(run) for run in _BACKTICKS.findall(body)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}\n{body}\n{marks}"


@dataclass(frozen=True)
class Emphasis:
    """`marker`text`marker` on one line, shown between `shown` (CommonMark's marker; ""
    shows the text plain), the text neither starting nor ending with a space nor holding
    the marker itself (a single marker's text none of its character, a double's no
    double); unless `intraword`, not inside a word (Slack's rule, and CommonMark's for
    `_`)."""

    marker: str
    shown: str
    intraword: bool = False

    def pattern(self, inner: str) -> str:
        """The regular expression, the text its group `inner`; it starts with the marker,
        so that the engine scans for it fast."""
        m = re.escape(self.marker)
        c = re.escape(self.marker[0])
        inside = f"[^{c}\\n]" if len(self.marker) == 1 else f"(?:[^{c}\\n]|{c}(?!{c}))"
        edge = f"[^\\s{c}\\\\]"
        before = "" if self.intraword else rf"(?<![\w{c}\\]{m})"
        after = "" if self.intraword else rf"(?![\w{c}])"
        return f"{m}{before}(?=[^\\s{c}])(?P<{inner}>(?:{inside})*?{edge}|{edge}){m}{after}"


@dataclass(frozen=True)
class Markup:
    """One format's inline markup, turned into CommonMark.

    `atoms` (a regular expression's source, its alternatives' groups named) finds what is
    taken whole (code spans, links, mentions) and `atom` renders a match as CommonMark,
    `atom_flags` the flags of that part (`re.IGNORECASE`); `emphasis` are the format's
    emphasis markers, the first that matches at a place taken; `entities` the format's
    entities and their characters (Slack's `&amp;`), `decode` the same for a whole text;
    `blocks` finds a line's block marker (a quote, a heading, a list item) and `block`
    gives its CommonMark prefix.

    A line is read in one pass of one regular expression, which finds whichever of these
    comes first: an atom, an entity, an emphasis (whose text is read the same way), or a
    character that CommonMark or a chat would read as markup or a mention (escaped or
    defused, `shared.providers.commonmark`)."""

    atoms: str
    atom: Callable[[re.Match[str]], str]
    emphasis: Sequence[Emphasis]
    blocks: re.Pattern[str]
    block: Callable[[re.Match[str]], str]
    atom_starts: str
    entities: Mapping[str, str] = dataclasses.field(default_factory=dict)
    atom_flags: re.RegexFlag = re.NOFLAG
    _scanner: re.Pattern[str] = dataclasses.field(init=False, repr=False, compare=False)
    _handlers: dict[str | None, Callable[[re.Match[str]], str]] = dataclasses.field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        flags = "i" if self.atom_flags & re.IGNORECASE else ""
        parts = [f"(?{flags}:{self.atoms})"]
        handlers: dict[str | None, Callable[[re.Match[str]], str]] = dict.fromkeys(
            re.compile(self.atoms).groupindex, self.atom
        )
        starts = self.atom_starts + md.INLINE + "@"
        if self.entities:
            parts.append(f"(?P<_entity>{'|'.join(map(re.escape, self.entities))})")
            handlers["_entity"] = self._entity
            starts += "".join(entity[0] for entity in self.entities)
        for index, each in enumerate(self.emphasis):
            parts.append(f"(?P<_e{index}>{each.pattern(f'_i{index}')})")
            handlers[f"_e{index}"] = self._emphasised(each.shown, f"_i{index}")
            starts += each.marker[0]
        parts.append(f"(?P<_char>[{re.escape(md.INLINE)}@])(?=(?P<_after>.)?)")
        handlers["_char"] = handlers["_after"] = _defused
        # A lookahead of every character a match can start with: the engine then skips to
        # the next one fast, where an alternation alone is tried at every character.
        first = "".join(sorted(set(starts)))
        scanner = re.compile(f"(?=[{re.escape(first)}])(?:{'|'.join(parts)})", re.DOTALL)
        object.__setattr__(self, "_scanner", scanner)
        object.__setattr__(self, "_handlers", handlers)

    def _entity(self, found: re.Match[str]) -> str:
        # What follows is not looked at: a `<` from `&lt;` is defused whatever it is.
        char = self.entities[found.group()]
        return md.escape_char(char, char, _not_space)

    def _emphasised(self, shown: str, inner: str) -> Callable[[re.Match[str]], str]:
        return lambda found: shown + self._scan(found.group(inner)) + shown

    def decode(self, text: str) -> str:
        """`text` with the format's entities turned into their characters."""
        if "&" not in text or not self.entities:
            return text
        for entity, char in self.entities.items():
            text = text.replace(entity, char)
        return text

    def inline(self, value: object) -> str:
        """`value` as one line of CommonMark (line breaks become spaces)."""
        return self._inline(unprivate(value))

    def _inline(self, text: str) -> str:
        """`inline` of text `unprivate` has cleaned already (a line of `text`'s)."""
        shown = " ".join(self._scan(text[:MAX_TEXT]).split())
        return md.escape_line_start(shown)

    def _scan(self, text: str) -> str:
        return self._scanner.sub(self._token, text)

    def _token(self, found: re.Match[str]) -> str:
        return self._handlers[found.lastgroup](found)

    def text(self, value: object) -> str:
        """`value` as CommonMark lines: code fences kept as code, a quote, heading or list
        marker at a line's start kept as CommonMark's, the rest of each line inline."""
        text = unprivate(value)
        if "```" not in text:
            return "\n".join(self._lines(text)).strip("\n")
        out: list[str] = []
        position = 0
        for found in _FENCE.finditer(text):
            out.extend(self._lines(text[position : found.start()]))
            body = self.decode(found.group(1))
            language = _LANGUAGE.match(body)
            out.append(fence(body[language.end() :] if language else body))
            position = found.end()
        out.extend(self._lines(text[position:]))
        return "\n".join(out).strip("\n")

    def _lines(self, text: str) -> list[str]:
        out = []
        in_block = False
        for raw in text.split("\n"):
            line = raw.strip()
            marker = self.blocks.match(line)
            prefix = ""
            if marker:
                prefix, line = self.block(marker), line[marker.end() :]
            elif in_block and line:
                # The chats end a quote or a list at the line's end; CommonMark would run the
                # next line on into it (a lazy continuation) without a blank line between.
                out.append("")
            in_block = bool(marker)
            out.append(prefix + self._inline(line) if line or not prefix else prefix.rstrip())
        return out


def _defused(found: re.Match[str]) -> str:
    """A character of the sender's that markup would take, as text; an `@` with anything
    but a space after it defused (as before emphasis: `@*everyone*`)."""
    return md.escape_char(found.group("_char"), found.group("_after"), _not_space)


def _not_space(char: str) -> bool:
    return not char.isspace()


def link_or_text(label: str, url: object) -> str:
    """A link with `label` (plain text from outside) to an http(s) `url`; the label
    alone, escaped, for any other target."""
    return md.link(md.text(label, MAX_LINE), url)


# Markdown as Discord and Teams write it: `**bold**`, `*italic*`/`_italic_`, `__underline__`
# (emphasis here), `~~strike~~`, `||spoiler||` (shown), code, `[label](url)`, `<url>` and
# bare URLs, `# headings`, `> quotes`, lists, and backslash escapes.
_MARKDOWN_ATOMS = (
    r"`(?P<code>[^`\n]+)`"
    r"|\[(?P<label>[^\[\]\n]{1,500})\]\(\s*<?(?P<target>[^\s()<>]+)>?(?:\s+\"[^\"\n]*\")?\s*\)"
    r"|<(?P<autolink>https?://[^\s<>]+)>"
    r"|(?P<url>https?://[^\s<>()\[\]]+)"
    r"|<(?P<mention>@[!&]?\d+|#\d+)>"
    r"|\\(?P<escaped>[!-/:-@\[-`{-~])"
)
_TRAILING = re.compile(r"[.,;:!?'\"]+$")
_MARKDOWN_BLOCKS = re.compile(
    r"(?P<quote>>>>|>)\s|(?P<heading>#{1,3})\s+|(?P<bullet>[-*+])\s+|(?P<number>\d{1,9})[.)]\s+"
)


def _markdown_atom(found: re.Match[str]) -> str:
    if (code := found.group("code")) is not None:
        return md.code(code, MAX_LINE)
    if (label := found.group("label")) is not None:
        return link_or_text(label, found.group("target"))
    if (autolink := found.group("autolink")) is not None:
        return link_or_text(autolink, autolink)
    if (url := found.group("url")) is not None:
        trailing = _TRAILING.search(url)
        tail = trailing.group(0) if trailing else ""
        url = url[: len(url) - len(tail)]
        return link_or_text(url, url) + md.text(tail)
    if (mention := found.group("mention")) is not None:
        return md.text(mention.replace("!", "").replace("&", ""))  # `@123`, `#123`: defused
    escaped = found.group("escaped")
    return "@" + md.ZWJ if escaped == "@" else "\\" + escaped


def _markdown_block(found: re.Match[str]) -> str:
    if found.group("quote"):
        return "> "
    if heading := found.group("heading"):
        return heading + " "
    if found.group("bullet"):
        return "- "
    return f"{found.group('number')}. "


MARKDOWN = Markup(
    atoms=_MARKDOWN_ATOMS,
    atom=_markdown_atom,
    atom_starts="`[<\\hH",
    atom_flags=re.IGNORECASE,
    emphasis=(
        Emphasis("**", "**", intraword=True),
        Emphasis("__", "*"),
        Emphasis("~~", "~~", intraword=True),
        Emphasis("||", "", intraword=True),
        Emphasis("*", "*"),
        Emphasis("_", "*"),
    ),
    blocks=_MARKDOWN_BLOCKS,
    block=_markdown_block,
)
