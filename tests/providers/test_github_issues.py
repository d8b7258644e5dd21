"""GitHub issues (shared/providers/github/issues.py): the quoted message's Markdown, and
GitHub's answers sorted into our errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shared.providers.commonmark import ZWJ
from shared.providers.github.issues import _result, issue_body, quote_message
from shared.providers.issues import (
    IssueRateLimited,
    IssueRefused,
    IssueTokenRejected,
    IssueUnreachable,
    QuotedMessage,
)
from tests.providers.notify_support import HOSTILE, assert_inert, plain, to_html


def test_quote_has_author_time_text_and_link_back() -> None:
    quoted = quote_message(
        QuotedMessage(
            author="Ada",
            text="deploy failed\n\nsee logs",
            time=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
            permalink="https://chat.example.com/m/1",
        )
    )
    assert quoted == (
        "> **Ada** wrote at 2026-03-01 09:30 UTC:\n"
        ">\n"
        "> deploy failed\n"
        ">\n"
        "> see logs\n"
        ">\n"
        "> [View the message in chat](<https://chat.example.com/m/1>)"
    )


@pytest.mark.parametrize(
    "hostile",
    [
        "line\n\nnot quoted?",
        "</blockquote><h1>x</h1>",
        "```\ncode fence\n```",
        "# heading\n- list\n1. numbered\n===",
        "[link](https://evil.example) ![img](https://evil.example/x.png)",
        "@octocat please look at #12",
        "*emph* _emph_ `code` ~~strike~~ | table |",
        "&lt;script&gt; <!-- comment -->",
        "ends with backslash \\",
        "carriage\rreturn\r\nand\x00control",
        "    indented like code",
        *HOSTILE,
    ],
)
def test_every_line_of_the_text_stays_inside_the_quote_and_literal(hostile: str) -> None:
    quoted = quote_message(QuotedMessage(author="x", text=hostile))
    for line in quoted.split("\n"):
        assert line == ">" or line.startswith("> "), repr(line)
    # Read back with a CommonMark parser: one blockquote, and the text in it renders no
    # markup of its own (no HTML, link, image, heading, list, code or emphasis).
    rendered = to_html(quoted)
    assert rendered.count("<blockquote>") == 1 and rendered.rstrip().endswith("</blockquote>")
    text = "\n".join(quoted.split("\n")[2:])
    assert_inert(text)
    inner = to_html(text)
    for tag in ("<ul", "<ol", "<code", "<pre", "<a ", "<table", "<hr"):
        assert tag not in inner, (tag, inner)
    # Neither a mention nor an issue reference survives for GitHub to link (a backslash would
    # not stop either: GitHub finds them after Markdown is read).
    assert "@octocat" not in quoted and "#12" not in quoted
    assert "\x00" not in quoted and "\r" not in quoted


def test_the_quote_reads_as_the_message_said_it() -> None:
    said = "plain words, https://example.com/a?b=c\n- item\n2. second\n@octocat see #12"
    quoted = quote_message(QuotedMessage(author="Ada", text=said))
    assert quoted.split("\n")[2:] == [
        "> plain words, https://example.com/a?b=c",
        "> \\- item",
        "> 2\\. second",
        f"> @{ZWJ}octocat see #{ZWJ}12",
    ]
    assert (
        "plain words, https://example.com/a?b=c\n- item\n2. second\n"
        "@octocat see #12"  # as a reader sees it: the joiners do not show
    ) in plain(quoted)


def test_the_whole_message_is_quoted_and_the_author_stays_on_its_line() -> None:
    long = "\n".join(f"line {n}" for n in range(100)) + "x" * 10_000
    quoted = quote_message(QuotedMessage(author="Ada\n# Lovelace", text=long))
    assert quoted.startswith("> **Ada # Lovelace** wrote:\n>\n> line 0\n")
    assert quoted.endswith("x" * 10_000) and "…" not in quoted
    # A link back only to an http(s) message.
    quoted = quote_message(QuotedMessage(author="Ada", text="hi", permalink="javascript:x()"))
    assert quoted == "> **Ada** wrote:\n>\n> hi"


def test_body_is_the_callers_then_the_quote() -> None:
    assert issue_body("Steps:\n1. run", None) == "Steps:\n1. run"
    body = issue_body("Steps", QuotedMessage(author="Ada", text="hi"))
    assert body.startswith("Steps\n\n> **Ada** wrote:")
    assert issue_body(None, None) == ""


def answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_created() -> None:
    created = _result(
        "o/r",
        answer(201, {"id": 7, "number": 3, "html_url": "https://github.com/o/r/issues/3"}),
    )
    assert (created.id, created.key_or_number, created.url) == (
        "7",
        "3",
        "https://github.com/o/r/issues/3",
    )


def test_refusals() -> None:
    with pytest.raises(IssueTokenRejected):
        _result("o/r", answer(401, {"message": "Bad credentials"}))
    with pytest.raises(IssueRefused) as refused:
        _result("o/r", answer(404, {"message": "Not Found"}))
    assert refused.value.error == "repository_not_accessible" and "o/r" in refused.value.message
    with pytest.raises(IssueRefused) as refused:
        _result("o/r", answer(403, {"message": "Resource not accessible by integration"}))
    assert refused.value.upstream_status == 403
    with pytest.raises(IssueRefused) as refused:
        _result(
            "o/r",
            answer(
                422,
                {
                    "message": "Validation Failed",
                    "errors": [{"resource": "Label", "code": "invalid", "field": "labels"}],
                },
            ),
        )
    assert refused.value.message == (
        "GitHub refused the issue: Validation Failed (Label labels invalid)"
    )
    with pytest.raises(IssueRefused) as refused:
        _result("o/r", answer(410, {"message": "Issues are disabled for this repo"}))
    assert refused.value.error == "issues_disabled"
    with pytest.raises(IssueUnreachable):
        _result("o/r", answer(502, None))


def test_rate_limits() -> None:
    with pytest.raises(IssueRateLimited) as limited:
        _result("o/r", answer(403, {"message": "secondary rate limit"}, **{"retry-after": "30"}))
    assert limited.value.retry_after == 30
    reset = str(int(time.time()) + 120)
    with pytest.raises(IssueRateLimited) as limited:
        _result(
            "o/r",
            answer(
                403,
                {"message": "API rate limit exceeded"},
                **{"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
            ),
        )
    assert 100 < limited.value.retry_after <= 120
    with pytest.raises(IssueRateLimited) as limited:
        _result("o/r", answer(429, {"message": "too many"}))
    assert limited.value.retry_after == 60
