"""Plain text → Atlassian Document Format (shared/providers/jira/adf.py), checked against the
fake Jira's validator of the ADF shapes Jira accepts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.sandbox.atlassian import adf_problem
from shared.providers.issues import QuotedMessage
from shared.providers.jira import adf


def test_paragraphs_at_blank_lines_and_hard_breaks_at_line_breaks() -> None:
    doc = adf.document("first line\nsecond line\n\n\nnext paragraph")
    assert doc == {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "first line"},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "second line"},
                ],
            },
            {"type": "paragraph", "content": [{"type": "text", "text": "next paragraph"}]},
        ],
    }
    assert adf_problem(doc) is None


def test_links_are_link_marks_without_the_sentence_punctuation() -> None:
    [paragraph] = adf.paragraphs("see https://example.com/a_(b)?q=1. And (http://x.io/p).")
    assert paragraph["content"] == [
        {"type": "text", "text": "see "},
        {
            "type": "text",
            "text": "https://example.com/a_(b)?q=1",
            "marks": [{"type": "link", "attrs": {"href": "https://example.com/a_(b)?q=1"}}],
        },
        {"type": "text", "text": ". And ("},
        {
            "type": "text",
            "text": "http://x.io/p",
            "marks": [{"type": "link", "attrs": {"href": "http://x.io/p"}}],
        },
        {"type": "text", "text": ")."},
    ]


def test_code_spans_are_code_marks_and_their_urls_stay_code() -> None:
    [paragraph] = adf.paragraphs("run `make test https://x.io` now")
    assert paragraph["content"] == [
        {"type": "text", "text": "run "},
        {"type": "text", "text": "make test https://x.io", "marks": [{"type": "code"}]},
        {"type": "text", "text": " now"},
    ]


def test_the_message_is_a_blockquote_with_author_time_text_and_link() -> None:
    message = QuotedMessage(
        author="Ada Lovelace",
        text="the build is red\nsince `main@4f2`",
        time=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        permalink="https://chat.example.com/c/ch_1/m_1",
    )
    doc = adf.document(None, message)
    assert doc is not None and adf_problem(doc) is None
    [quote] = doc["content"]
    assert quote["type"] == "blockquote"
    header, body, back = quote["content"]
    assert header["content"] == [
        {"type": "text", "text": "Ada Lovelace", "marks": [{"type": "strong"}]},
        {"type": "text", "text": " wrote at 2026-03-01 09:30 UTC:"},
    ]
    assert body["content"] == [
        {"type": "text", "text": "the build is red"},
        {"type": "hardBreak"},
        {"type": "text", "text": "since "},
        {"type": "text", "text": "main@4f2", "marks": [{"type": "code"}]},
    ]
    assert back["content"] == [
        {
            "type": "text",
            "text": "View the message in chat",
            "marks": [{"type": "link", "attrs": {"href": "https://chat.example.com/c/ch_1/m_1"}}],
        }
    ]


def test_hostile_text_stays_text() -> None:
    hostile = (
        "<script>alert(1)</script> [click](javascript:alert(1)) {color:red}x{color} "
        "**bold** h1. title !image.png! \x00\x1b[31m ``` javascript:alert(2)"
    )
    doc = adf.document(hostile, QuotedMessage(author="<b>Mallory</b>\n", text=hostile))
    assert doc is not None and adf_problem(doc) is None
    texts: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("type") == "text":
            texts.append(node)
        for child in node.get("content", []):
            walk(child)

    walk(doc)
    # Nothing became a link (no http(s) URL in it), nor anything but plain text and the author.
    assert all(
        mark["type"] in ("strong", "code") for node in texts for mark in node.get("marks", [])
    )
    joined = "".join(str(node["text"]) for node in texts)
    assert "<script>alert(1)</script>" in joined and "[click](javascript:alert(1))" in joined
    assert "\x00" not in joined and "\x1b" not in joined


def test_nothing_to_say_is_no_description() -> None:
    assert adf.document(None) is None
    assert adf.document("  \n\n ") is None
