"""The Python the README and the walk-throughs give a newcomer to paste: it parses, and it
finds the broker where `make run` was told it is (`HOOKHUB_KAFKA_BOOTSTRAP`), never at an
address written into it, which is wrong for anyone who started the stack on other ports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/walkthroughs.md")
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
