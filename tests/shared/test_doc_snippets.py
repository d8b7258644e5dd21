"""The Python the README and the walk-throughs give a newcomer to paste: it parses, and it
finds the broker where `make run` was told it is (`HOOKHUB_KAFKA_BOOTSTRAP`), never at an
address written into it, which is wrong for anyone who started the stack on other ports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/walkthroughs.md", "docs/destinations.md")
# A fenced Python block, or a shell heredoc fed to python (`python3 - <<'EOF'` … `EOF`).
FENCED = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
HEREDOC = re.compile(r"python3? -[^\n]*<<'?(\w+)'?[^\n]*\n(.*?)^\1$", re.M | re.S)


def snippets(text: str) -> list[str]:
    return [m.group(1) for m in FENCED.finditer(text)] + [
        m.group(2) for m in HEREDOC.finditer(text)
    ]


def _reads_the_environment(value: ast.expr) -> bool:
    """`os.environ.get("HOOKHUB_KAFKA_BOOTSTRAP", …)`, `os.environ["…"]` or `os.getenv(…)`."""
    return "HOOKHUB_KAFKA_BOOTSTRAP" in ast.unparse(value) and (
        "environ" in ast.unparse(value) or "getenv" in ast.unparse(value)
    )


@pytest.mark.parametrize("doc", DOCS)
def test_the_kafka_snippets_read_the_bootstrap_from_the_environment(doc: str) -> None:
    text = (ROOT / doc).read_text()
    found = []
    for code in snippets(text):
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.keyword) and node.arg == "bootstrap_servers":
                found.append(ast.unparse(node.value))
                assert _reads_the_environment(node.value), (doc, ast.unparse(node.value))
    assert found, f"{doc}: no Kafka client in its Python snippets"
    assert 'bootstrap_servers="127.0.0.1:9092"' not in text


# The walk-throughs a newcomer pastes, whole, into a shell.
WALK_THROUGHS = (
    "README.md",
    "docs/walkthroughs.md",
    "docs/notifications.md",
    "docs/sandbox.md",
    "docs/import.md",
    "docs/providers.md",
    "docs/listen.md",
)
SHELL = re.compile(r"^ *```(?:sh|bash)\n(.*?)^ *```", re.M | re.S)
ASSIGNED = re.compile(
    r"(?:^|[\s;(|&])(?:export\s+)?([A-Z_][A-Z0-9_]*)=|\bfor ([A-Z_][A-Z0-9_]*) in"
)
USED = re.compile(r"\$\{?([A-Z_][A-Z0-9_]*)")


def _commands(text: str) -> list[str]:
    """The shell lines of `text`'s blocks without their comments: what hookhub answers (`# →
    …`) may show the default port."""
    lines = (line for block in SHELL.findall(text) for line in block.splitlines())
    return [re.split(r"(?:^|\s)#", line, maxsplit=1)[0] for line in lines]


@pytest.mark.parametrize("doc", WALK_THROUGHS)
def test_the_walk_throughs_reach_the_origin_through_one_variable(doc: str) -> None:
    """A new user who moved the ports (`HOOKHUB_HTTP_PORT`) found 8080 written into every
    command: each starts its URL with `$HOOKHUB`, set once."""
    commands = _commands((ROOT / doc).read_text())
    written = [c for c in commands if re.search(r"(127\.0\.0\.1|localhost):8080", c)]
    assert written == [], doc
    assert any("$HOOKHUB/" in c for c in commands), f"{doc}: no command reaches the origin"


@pytest.mark.parametrize("doc", WALK_THROUGHS)
def test_every_variable_a_walk_through_uses_is_set_or_said(doc: str) -> None:
    """`$HOOKHUB`, `$ADMIN_TOKEN` and `$GITHUB_INTEGRATION` were used and defined nowhere:
    each variable is set in the page's commands, or the page names it (in backquotes)
    saying what it holds; hookhub's own settings (`HOOKHUB_*`) and `HOME` are the shell's."""
    text = (ROOT / doc).read_text()
    code = "\n".join(_commands(text))
    assigned = {name for pair in ASSIGNED.findall(code) for name in pair if name}
    said = set(re.findall(r"`\$?([A-Z_][A-Z0-9_]*)`", text))
    unset = {
        name
        for name in USED.findall(code)
        if name not in assigned | said and not name.startswith("HOOKHUB_") and name != "HOME"
    }
    assert unset == set(), doc
