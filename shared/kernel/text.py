"""Characters that no text hookhub publishes keeps, wherever it came from: control
characters and Unicode's bidirectional controls.

A right-to-left override (U+202E) or isolate in a name, title or message makes what a
reader sees differ from what is there (a file name or link that reads backwards, text that
runs over what follows it); C0 and C1 controls draw nothing. Line breaks and tabs are text:
`printable` keeps `\\n`, `\\r` and `\\t`. Everything else (letters of every script, emoji,
the zero-width joiner that defuses mentions) stays as it came.
"""

from __future__ import annotations

import re

# The bidirectional formatting characters (Unicode's UAX #9): the Arabic letter mark, the
# left-to-right and right-to-left marks, the embeddings, overrides and their pop, the
# isolates and their pop.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNPRINTABLE = re.compile(f"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f{BIDI_CONTROLS}]")


def printable(value: str) -> str:
    """`value` without control and bidirectional formatting characters (tabs and line
    breaks kept)."""
    if _UNPRINTABLE.search(value) is None:  # nearly every text: nothing to copy
        return value
    return _UNPRINTABLE.sub("", value)
