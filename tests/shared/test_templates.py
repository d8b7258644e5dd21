"""Templates' shared rules (shared/domain/templates.py): the event without credentials, the result's
checks naming the path, the result as a notice (mentions defused), the failures' codes and
the runs counted, the check at save."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
from prometheus_client import CollectorRegistry

from shared.domain.templates import (
    TemplateFailure,
    TemplateMetrics,
    TemplateResult,
    Templates,
    event_of,
    result_of,
)
from shared.kernel.errors import Invalid
from shared.kernel.jsbox import Limits, Sandbox
from shared.providers.notify import Card, Notice
from shared.providers.templated import notice_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def templates() -> AsyncIterator[tuple[Templates, CollectorRegistry]]:
    registry = CollectorRegistry()
    # A time limit long enough that an unbounded allocation reaches the heap's limit first,
    # however busy the machine.
    sandbox = Sandbox(Limits(seconds=5))
    yield Templates(sandbox, TemplateMetrics(registry)), registry
    await sandbox.close()


def runs(registry: CollectorRegistry, use: str, outcome: str) -> float:
    value = registry.get_sample_value(
        "hookhub_template_runs_total", {"use": use, "outcome": outcome}
    )
    return value or 0.0


def test_the_event_has_no_credentials() -> None:
    headers = {
        "Authorization": "Bearer x",
        "Cookie": "a=b",
        "X-Hub-Signature-256": "sha256=…",
        "X-Gitlab-Token": "t",
        "X-Webhook-Secret": "s",
        "X-Api-Key": "k",
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
    }
    event = event_of("github", "push", {"a": 1}, headers)
    assert event == {
        "provider": "github",
        "event_type": "push",
        "headers": {"content-type": "application/json", "x-github-event": "push"},
        "payload": {"a": 1},
    }


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("hello", "returned a string, not an object"),
        (None, "returned null, not an object"),
        ([1], "returned an array, not an object"),
        ({"text": 5}, "text: Input should be a valid string"),
        ({}, "`text` is required (or `skip: true`)"),
        ({"text": "x" * 40_001}, "text: String should have at most 40000 characters"),
        ({"text": "x", "url": "javascript:alert(1)"}, "url: Value error, must be an absolute"),
        ({"text": "x", "color": "red"}, "color: String should match pattern"),
        ({"text": "x", "fields": [{"name": "a"}]}, "fields.0.value: Field required"),
        ({"text": "x", "fields": [{"name": "a", "value": "b"}] * 26}, "fields: List should have"),
        ({"text": "x", "titel": "typo"}, "titel: Extra inputs are not permitted"),
        ({"text": "x", "skip": "yes"}, "skip: Input should be a valid boolean"),
    ],
)
def test_a_bad_result_names_the_path(value: Any, says: str) -> None:
    outcome = result_of(value)
    assert isinstance(outcome, TemplateFailure)
    assert outcome.code == "bad_result" and says in outcome.message, outcome.message


def test_a_result_is_a_notice_with_mentions_defused() -> None:
    result = result_of(
        {
            "text": "**Deploy** of `api` by @everyone <!channel>",
            "title": "api <@U123>",
            "url": "https://ci.example.com/1",
            "state": "failed",
            "color": "#D00000",
            "fields": [{"name": "attempt", "value": 3}, {"name": "ok", "value": False}],
            "item": "deploy-api",
        }
    )
    assert isinstance(result, TemplateResult)
    default = Notice(event="push", text="default", item=None, card=Card(title="d"))
    notice = notice_of(result, default)
    assert notice.event == "push"
    assert notice.text == "**Deploy** of `api` by @\u200deveryone <\u200d!channel>"
    assert notice.card is not None and notice.card.as_dict() == {
        "title": "api <\u200d@\u200dU123>",
        "url": "https://ci.example.com/1",
        "state": "failed",
        "color": "#d00000",
        "fields": [{"name": "attempt", "value": "3"}, {"name": "ok", "value": "false"}],
    }
    assert (notice.item, notice.item_card) == ("deploy-api", notice.card)
    # Without an item the renderer's threads it; without a card the root is not edited.
    plain = result_of({"text": "just text"})
    assert isinstance(plain, TemplateResult)
    threaded = notice_of(plain, Notice(event="x", text="d", item="o/r#1", item_card=Card("t")))
    assert (threaded.item, threaded.card, threaded.item_card) == ("o/r#1", None, None)
    skipped = result_of({"skip": True})
    assert isinstance(skipped, TemplateResult)
    assert notice_of(skipped, default).quiet == "skipped by the template"


async def test_failures_are_coded_and_counted(
    templates: tuple[Templates, CollectorRegistry],
) -> None:
    runner, registry = templates
    event = event_of("github", "push", {"ref": "refs/heads/main"})
    cases = {
        "function handler(e) { return {text: e.payload.ref}; }": None,
        "function handler(e) {\n  return e.nope.x;\n}": "template_error",
        "function handler(e) { while (true) {} }": "template_timeout",
        "function handler(e) { let a = []; while (true) a.push(new Array(1e6)); }": "template_memory",
        "function handler(e) { return {text: 5}; }": "bad_result",
    }
    for source, code in cases.items():
        outcome = await runner.render(source, event, use="subscription", scope="ws")
        if code is None:
            assert outcome == TemplateResult(text="refs/heads/main")
        else:
            assert isinstance(outcome, TemplateFailure) and outcome.code == code, outcome
    thrown = await runner.render(
        "function handler(e) {\n  return e.nope.x;\n}", event, use="subscription", scope="ws"
    )
    assert isinstance(thrown, TemplateFailure)
    assert (thrown.line, thrown.column) == (2, 17)
    assert thrown.as_error()["line"] == 2
    for label in ("ok", "timeout", "memory", "bad_result"):
        assert runs(registry, "subscription", label) == 1
    assert runs(registry, "subscription", "error") == 2


async def test_a_lone_surrogate_is_the_templates_fault_and_no_error_log(
    templates: tuple[Templates, CollectorRegistry],
) -> None:
    # A payload's JSON may escape half of a UTF-16 pair ("\ud800"): a template that hands
    # it back is a bad result, counted, not "the sandbox failed" logged at error level at
    # each event (anyone could fill the error logs with it).
    runner, registry = templates
    event = event_of("incoming_webhook", "message", {"text": "a\ud800"})
    echo = "function handler(e) {\n  return {text: e.payload.text};\n}"
    counted = runs(registry, "incoming_webhook", "bad_result")
    with structlog.testing.capture_logs() as logs:
        for source, data in (
            (echo, event),
            ("function handler(e) {\n  return {text: 'x\\udc00'};\n}", event_of("x", "y", {})),
        ):
            outcome = await runner.render(source, data, use="incoming_webhook", scope="ws_s")
            assert isinstance(outcome, TemplateFailure) and outcome.code == "bad_result"
            assert "lone surrogate" in outcome.message
        # Seen, not shown: a template that reads it still renders.
        length = "function handler(e) {\n  return {text: 'chars: ' + e.payload.text.length};\n}"
        shown = await runner.render(length, event, use="incoming_webhook", scope="ws_s")
        assert shown == TemplateResult(text="chars: 2")
        many = await runner.render_many(echo, [event, event], use="subscription", scope="ws_s")
        assert [o.code for o in many if isinstance(o, TemplateFailure)] == ["bad_result"] * 2
    assert runs(registry, "incoming_webhook", "bad_result") == counted + 2
    assert not [log for log in logs if log["log_level"] in ("error", "critical")]


async def test_a_template_is_checked_at_save(
    templates: tuple[Templates, CollectorRegistry],
) -> None:
    runner, _ = templates
    await runner.check("function handler(event) { return {text: 'x'}; }")
    await runner.check(None)
    with pytest.raises(Invalid) as caught:
        await runner.check("function handler(event) {\n  return {text: };\n}")
    assert caught.value.code == "invalid_template"
    assert caught.value.extra == {"line": 2, "column": 17}
    assert "SyntaxError" in caught.value.message


def doc_examples() -> list[str]:
    text = (ROOT / "docs" / "notifications.md").read_text()
    section = text[text.index("\n## Templates\n") :]
    return re.findall(r"^```js\n(.*?)^```", section, re.M | re.S)


async def test_the_documented_examples_do_what_the_page_says(
    templates: tuple[Templates, CollectorRegistry],
) -> None:
    runner, _ = templates
    group, as_fields, only_failures = doc_examples()
    alert = json.loads((ROOT / "shared/providers/alertmanager/samples/resolved.json").read_text())
    summary = await runner.render(
        group, event_of("incoming_webhook", "message", alert), use="test", scope=""
    )
    assert isinstance(summary, TemplateResult), summary
    assert summary.text == "**High CPU Temperature**: 0 of 1 firing"
    assert (summary.state, summary.color, summary.item) == ("resolved", "#2ea44f", "{}/{}:{}")
    assert summary.fields is not None and summary.fields[0].name == "andromeda"
    flat = {"service": "api", "version": "2.4.1", "ok": True, "nested": {"x": 1}}
    shown = await runner.render(
        as_fields, event_of("incoming_webhook", "message", flat), use="test", scope=""
    )
    assert isinstance(shown, TemplateResult) and shown.fields is not None
    assert [(f.name, f.value) for f in shown.fields] == [
        ("service", "api"),
        ("version", "2.4.1"),
        ("ok", "true"),
    ]
    deployment = json.loads(
        (ROOT / "tests/corpus/github/deployment_status/payload.json").read_text()
    )
    deployment["deployment"]["environment"] = "production"
    for state, skipped in (("success", True), ("failure", False)):
        deployment["deployment_status"]["state"] = state
        event = event_of("github", f"deployment_status.{state}", deployment)
        outcome = await runner.render(only_failures, event, use="test", scope="")
        assert isinstance(outcome, TemplateResult) and outcome.skip is skipped
