"""docs/notifications.md's examples are what the renderers make of the tests' payloads today,
and every event name the renderers know is in it: the page cannot drift from the code."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from shared.providers.github.notify import NOTIFIER as GITHUB
from shared.providers.jira.notify import NOTIFIER as JIRA
from shared.providers.notify import Notifier, Unrenderable
from shared.providers.pagerduty.notify import NOTIFIER as PAGERDUTY
from tests.providers.test_github_notify import push
from tests.support import github_corpus

DOC = Path(__file__).parents[2] / "docs" / "notifications.md"
JIRA_PAYLOADS = Path(__file__).parent / "jira_payloads"
CLOSED = "tests/corpus/github/pull_request/closed.payload.json"
PROVIDERS = Path(__file__).parents[2] / "shared" / "providers"
_HEADING = re.compile(r"^### `([a-z_.*]+)`$")
# Providers whose examples are what they make of their samples
# (shared/providers/<name>/samples), by the page's section name.
SAMPLED: dict[str, Notifier] = {"PagerDuty": PAGERDUTY}


def _section(provider: str) -> str:
    text = DOC.read_text()
    start = text.index(f"\n## {provider}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def examples(provider: str) -> dict[str, str]:
    """`### \\`name\\`` → the indented block under it, unindented."""
    found: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in [*_section(provider).splitlines(), "### `end`"]:
        heading = _HEADING.match(line)
        if heading or line.startswith("## "):
            if name is not None:
                found[name] = "\n".join(lines).strip("\n")
            name, lines = (heading.group(1) if heading else None), []
        elif name is not None and (line.startswith("    ") or not line.strip()):
            lines.append(line[4:])
        elif name is not None and line.strip():
            found[name] = "\n".join(lines).strip("\n")
            name = None
    found.pop("end", None)
    return found


def rendered(notifier: Notifier) -> dict[str, set[str]]:
    """Every text the provider's test payloads render to, by event name (quiet or not)."""
    texts: dict[str, set[str]] = defaultdict(set)
    paths: list[tuple[str | None, Path]]
    if notifier is GITHUB:
        paths = [(p.parent.name, p) for p in github_corpus()]
    elif notifier is not JIRA:  # the event's name is in the sample itself
        paths = [(None, p) for p in sorted((PROVIDERS / notifier.name / "samples").glob("*.json"))]
    else:
        paths = [(None, p) for p in sorted(JIRA_PAYLOADS.glob("*.json"))]
    payloads = [(header, json.loads(path.read_text())) for header, path in paths]
    if notifier is GITHUB:
        # The corpus has no merged pull request: the page's is the closed one, merged.
        merged = json.loads((DOC.parents[1] / CLOSED).read_text())
        merged["pull_request"].update(merged=True, merged_at="2019-05-15T15:20:40Z")
        payloads.append(("pull_request", merged))
        # Nor a push of commits to a branch: the page's is the corpus push made into three.
        payloads.append(("push", push(3)))
    for header, payload in payloads:
        try:
            notice = notifier.notice(header, payload)
        except Unrenderable:
            continue
        texts[notice.event].add(notice.text)  # a quiet one's too: the page says it is quiet
    return texts


DOCUMENTED = [("GitHub", GITHUB), ("Jira", JIRA), *SAMPLED.items()]


@pytest.mark.parametrize(("provider", "notifier"), DOCUMENTED)
def test_every_example_is_what_the_renderer_makes_today(provider: str, notifier: Notifier) -> None:
    shown, texts = examples(provider), rendered(notifier)
    assert len(shown) >= 6, f"no examples found under ## {provider}"
    for name, example in shown.items():
        if name == "star.created":  # the generic rendering, shown in prose
            continue
        candidates = texts.get(name, set())
        assert example in candidates, (
            f"docs/notifications.md's `{name}` is not what the renderer makes of any test "
            f"payload; it makes:\n\n" + "\n---\n".join(sorted(candidates))
        )


@pytest.mark.parametrize(("provider", "notifier"), DOCUMENTED)
def test_every_event_name_is_on_the_page(provider: str, notifier: Notifier) -> None:
    section = _section(provider)
    missing = sorted(name for name in notifier.events if f"`{name}`" not in section)
    assert not missing, f"not in docs/notifications.md under ## {provider}: {missing}"
