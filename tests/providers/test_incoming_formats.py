"""The incoming-webhook converters (Slack's, Discord's and Teams' bodies → CommonMark text, a
card, the author asked for) on the vendors' own and real senders' bodies, read back through a
real CommonMark parser; and on hostile ones."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from shared.kernel.errors import Invalid
from shared.providers.commonmark import ZWJ
from shared.providers.discord import incoming as discord
from shared.providers.incoming import MAX_DEPTH, MAX_FIELDS, MAX_TEXT, Incoming
from shared.providers.microsoft import teams
from shared.providers.notify import Field
from shared.providers.slack import incoming as slack
from tests.providers.notify_support import HOSTILE, assert_defused, links, plain, to_html

PAYLOADS = Path(__file__).parent / "incoming_payloads"
# Strikethrough is GFM's, which chats that render CommonMark read too.
GFM = MarkdownIt("commonmark").enable("strikethrough")
Convert = Callable[[Mapping[str, Any]], Incoming]


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return loaded


def lines(text: str) -> list[str]:
    """What a reader sees, line by line."""
    return [line.strip() for line in plain(text).split("\n") if line.strip()]


def tags(text: str) -> list[str]:
    return re.findall(r"<(\w+)", to_html(text))


# -- Slack ---------------------------------------------------------------------------------------


def test_slack_documented_attachment_every_part_in_order() -> None:
    converted = slack.convert(load("slack_attachments.json"))
    assert lines(converted.text) == [
        "Optional pre-text that appears above the attachment block",
        "author_name",
        "title",
        "Optional text that appears within the attachment",
        "A field's title: This field's value",
        "A short field's title: A short field's value",
        "A second short field's title: A second short field's value",
        "footer · 1973-11-29 21:33 UTC",
    ]
    assert links(converted.text) == [
        ("http://flickr.com/bobby/", "author_name"),
        ("https://api.slack.com/", "title"),
    ]
    assert "<code>text</code>" in to_html(converted.text)
    assert converted.card is not None
    assert converted.card.as_dict() == {
        "title": "title",
        "url": "https://api.slack.com/",
        "state": None,
        "color": "#36a64f",
        "fields": [
            {"name": "A field's title", "value": "This field's value"},
            {"name": "A short field's title", "value": "A short field's value"},
            {"name": "A second short field's title", "value": "A second short field's value"},
        ],
    }


def test_slack_github_action_fields_hold_links_and_a_named_colour() -> None:
    converted = slack.convert(load("slack_github_action_notification.json"))
    assert lines(converted.text)[:2] == [
        "A GitHub Action Event push has failure",
        "Repository: octo-org/octo-repo",
    ]
    assert ("https://github.com/octocat", "octocat") in links(converted.text)
    assert converted.card is not None
    assert converted.card.title == "A GitHub Action Event push has failure"
    assert converted.card.color == slack.NAMED_COLORS["danger"]
    assert converted.card.fields[0].name == "Repository"
    assert (
        converted.card.fields[0].value
        == "octo-org/octo-repo (https://github.com/octo-org/octo-repo)"
    )


def test_slack_blocks_inside_an_attachment_divider_and_url_buttons() -> None:
    converted = slack.convert(load("slack_github_action_blocks.json"))
    assert "<hr />" in to_html(converted.text)
    assert [label for _, label in links(converted.text)] == ["Build", "Commit"]
    assert converted.card is not None and converted.card.color == "#d90000"


@pytest.mark.parametrize(
    ("mrkdwn", "html"),
    [
        ("*bold* _italic_ ~strike~", "<strong>bold</strong> <em>italic</em> <s>strike</s>"),
        ("`a *b*`", "<code>a *b*</code>"),
        (
            "<https://x.test/a?b=1&amp;c=2|the *docs*>",
            '<a href="https://x.test/a?b=1&amp;c=2">the *docs*</a>',
        ),
        ("<https://x.test>", '<a href="https://x.test">https://x.test</a>'),
        ("a*b*c and snake_case_name", "a*b*c and snake_case_name"),
        ("&lt;b&gt; &amp; &lt;/b&gt;", "&lt;b&gt; &amp; &lt;/b&gt;"),
        ("> quoted *bold*", "<blockquote>\n<p>quoted <strong>bold</strong></p>\n</blockquote>"),
    ],
)
def test_slack_mrkdwn_becomes_commonmark(mrkdwn: str, html: str) -> None:
    rendered = str(GFM.render(slack.convert({"text": mrkdwn}).text))
    assert html in rendered.replace(ZWJ, ""), rendered


def test_slack_code_block_kept_and_fenced_past_its_backticks() -> None:
    converted = slack.convert({"text": "before\n```x = 1\n`` y `` <@U1>\n```after"})
    rendered = to_html(converted.text)
    assert "<pre><code>x = 1\n`` y `` &lt;" in rendered
    assert plain(converted.text).rstrip().endswith("after")


@pytest.mark.parametrize(
    ("markup", "reads"),
    [
        ("<@U024BE7LH>", "@U024BE7LH"),
        ("<@U024BE7LH|bob>", "@bob"),
        ("<#C024BE7LR|general>", "#general"),
        ("<!channel>", "@channel"),
        ("<!here>", "@here"),
        ("<!everyone>", "@everyone"),
        ("<!subteam^SAZ94GDB8|@ops>", "@ops"),
        ("<!date^1392734382^{date_num}|2014-02-18 6:39:42 AM PST>", "2014-02-18 6:39:42 AM PST"),
        ("<mailto:bob@example.com|Bob>", "Bob"),
        ("<javascript:alert(1)|click>", "click"),
        ("<data:text/html,x|img>", "img"),
    ],
)
def test_slack_mentions_and_links_read_as_harmless_text(markup: str, reads: str) -> None:
    text = slack.convert({"text": f"see {markup} now"}).text
    assert plain(text).strip() == f"see {reads} now"
    assert links(text) == []
    assert not re.search(r"@(?!\u200d)\w|<(?![\s\u200d])", text), text


def test_slack_block_kit_header_section_fields_context_image_rich_text() -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Deploy *v2*"}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "Ready: <https://x.test/d|deploy>"},
            "fields": [
                {"type": "mrkdwn", "text": "*Type:*\nComputer (laptop)"},
                {"type": "mrkdwn", "text": "*When:*\nSubmitted Aug 10"},
            ],
            "accessory": {"type": "image", "image_url": "https://x.test/i.png", "alt_text": "pic"},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "by _ci_"}]},
        {"type": "image", "image_url": "https://x.test/big.png", "alt_text": "graph"},
        {"type": "input", "element": {"type": "plain_text_input"}},
        {"type": "unknown_future_block", "text": 5},
        {
            "type": "rich_text",
            "elements": [
                {
                    "type": "rich_text_section",
                    "elements": [
                        {"type": "text", "text": "Hello "},
                        {"type": "text", "text": "world", "style": {"bold": True}},
                        {"type": "link", "url": "https://x.test/r", "text": "here"},
                        {"type": "user", "user_id": "U1"},
                        {"type": "broadcast", "range": "channel"},
                    ],
                },
                {
                    "type": "rich_text_list",
                    "style": "bullet",
                    "elements": [
                        {
                            "type": "rich_text_section",
                            "elements": [{"type": "text", "text": "one"}],
                        },
                        {
                            "type": "rich_text_section",
                            "elements": [{"type": "text", "text": "two"}],
                        },
                    ],
                },
                {"type": "rich_text_preformatted", "elements": [{"type": "text", "text": "a\nb"}]},
            ],
        },
    ]
    converted = slack.convert({"text": "fallback only", "blocks": blocks})
    html = to_html(converted.text)
    assert "<h3>Deploy *v2*</h3>" in html
    assert "fallback only" not in html, "with blocks, text is Slack's notification fallback"
    assert "Type: Computer (laptop)" in plain(converted.text)
    assert ("https://x.test/d", "deploy") in links(converted.text)
    assert ("https://x.test/i.png", "pic") in links(converted.text)
    assert ("https://x.test/big.png", "graph") in links(converted.text)
    assert "<em>by <em>ci</em></em>" in html
    assert "<strong>world</strong>" in html
    assert "<li>one</li>" in html and "<pre><code>a\nb" in html
    assert "@U1" in plain(converted.text) and f"@{ZWJ}channel" in converted.text
    assert converted.card is not None
    assert converted.card.title == "Deploy *v2*"
    assert [(f.name, f.value) for f in converted.card.fields] == [
        ("Type", "Computer (laptop)"),
        ("When", "Submitted Aug 10"),
    ]


def test_slack_author_and_avatar_asked_for() -> None:
    converted = slack.convert(
        {"text": "x", "username": "@everyone\u202e bot", "icon_url": "javascript:alert(1)"}
    )
    assert converted.username is not None
    assert_defused(converted.username, "@everyone bot")
    assert converted.avatar_url is None
    assert slack.convert({"text": "x"}).card is None


# -- Discord -------------------------------------------------------------------------------------


def test_discord_grafana_alert_content_embeds_colour_and_author() -> None:
    converted = discord.convert(load("discord_grafana.json"))
    html = to_html(converted.text)
    assert "<strong>Firing</strong>" in html
    assert "<li>alertname = alert1</li>" in html
    assert ("http://localhost/d/abcd", "http://localhost/d/abcd") in links(converted.text)
    assert ("http://localhost/alerting/list", "[FIRING:1] (val1)") in links(converted.text)
    assert ("https://www.example.com/test-image-1.jpg", "image") in links(converted.text)
    assert "Grafana v11.0.0" in plain(converted.text)
    assert converted.username == "Grafana"
    assert converted.card is not None
    assert converted.card.as_dict() == {
        "title": "[FIRING:1] (val1)",
        "url": "http://localhost/alerting/list",
        "state": None,
        "color": "#d63232",
        "fields": [],
    }


def test_discord_embed_fields_author_footer_and_markdown() -> None:
    body = {
        "content": "**b** *i* __u__ ~~s~~ ||spoiler|| `c` [docs](https://x.test/docs) <@123> <@&9> <#7> @here",
        "avatar_url": "https://x.test/a.png",
        "embeds": [
            {
                "author": {"name": "Ann", "url": "https://x.test/ann"},
                "title": "Build 42",
                "url": "https://x.test/b/42",
                "description": "> passed\n- fast",
                "color": 0x00FF00,
                "fields": [{"name": "Branch", "value": "`main`", "inline": True}],
                "thumbnail": {"url": "https://x.test/t.png"},
                "footer": {"text": "CI"},
                "timestamp": "2026-01-02T03:04:05.000Z",
            }
        ],
    }
    converted = discord.convert(body)
    html = to_html(converted.text)
    for fragment in ("<strong>b</strong>", "<em>i</em>", "<em>u</em>", "<code>c</code>"):
        assert fragment in html
    assert "spoiler" in plain(converted.text) and "||" not in converted.text
    assert ("https://x.test/docs", "docs") in links(converted.text)
    assert ("https://x.test/ann", "Ann") in links(converted.text)
    assert ("https://x.test/b/42", "Build 42") in links(converted.text)
    assert "<blockquote>" in html and "<li>fast</li>" in html
    assert "Branch: main" in plain(converted.text)
    assert "CI · 2026-01-02T03:04:05.000Z" in plain(converted.text)
    assert not re.search(r"@(?!\u200d)\w", converted.text)
    assert converted.avatar_url == "https://x.test/a.png"
    assert converted.card is not None
    assert converted.card.color == "#00ff00"
    assert [(f.name, f.value) for f in converted.card.fields] == [("Branch", "`main`")]


@pytest.mark.parametrize(
    "body",
    [{}, {"content": "   "}, {"embeds": []}, {"content": 5.5e300, "embeds": "x"}, {"embeds": [{}]}],
)
def test_discord_without_content_or_embeds_is_refused_in_discords_words(
    body: dict[str, Any],
) -> None:
    if body.get("content") == 5.5e300:  # a number is written out: that is content
        assert discord.convert(body).text
        return
    with pytest.raises(Invalid, match="needs `content` or `embeds`"):
        discord.convert(body)


# -- Teams ---------------------------------------------------------------------------------------


def test_teams_documented_message_card_sections_facts_and_open_uri() -> None:
    converted = teams.convert(load("teams_message_card.json"))
    assert lines(converted.text) == [
        "Larry Bryant created a new task",
        "On Project Tango",
        "Assigned to: Unassigned",
        "Due date: Mon May 01 2017 17:07:18 GMT-0700 (Pacific Daylight Time)",
        "Status: Not started",
        "Learn More",
    ]
    # OpenUri is a link; ActionCard and HttpPOST ask for input or post: not links.
    assert links(converted.text) == [
        ("https://docs.microsoft.com/outlook/actionable-messages", "Learn More")
    ]
    assert converted.card is not None
    assert converted.card.title == "Larry Bryant created a new task"
    assert converted.card.color == "#0076d7"
    assert [f.name for f in converted.card.fields] == ["Assigned to", "Due date", "Status"]
    assert converted.username is None


def test_teams_connector_hello_world_and_workflows_adaptive_card() -> None:
    assert teams.convert({"text": "Hello World"}).text == "Hello World"
    converted = teams.convert(load("teams_workflows_adaptive.json"))
    assert links(converted.text) == [
        ("https://adaptivecards.io/samples", "https://adaptivecards.io/samples")
    ]


def test_teams_adaptive_sample_columns_image_facts_heading() -> None:
    converted = teams.convert(load("teams_activity_update.json"))
    html = to_html(converted.text)
    assert "<h3>Publish Adaptive Card schema</h3>" in html
    assert "<strong>Matt Hidinger</strong>" in html
    assert links(converted.text)[0][1] == "Matt Hidinger"  # the Image, inside a Column
    assert "Board: Adaptive Card" in plain(converted.text)
    assert "Set due date" not in plain(converted.text), "Action.ShowCard asks for input"
    assert converted.card is not None
    assert converted.card.title == "Publish Adaptive Card schema"
    assert converted.card.fields[0] == Field("Board", "Adaptive Card")


def test_teams_grafana_alert_title_text_and_action() -> None:
    converted = teams.convert(load("teams_grafana.json"))
    assert "<h3>[FIRING:1] (val1)</h3>" in to_html(converted.text)
    assert ("http://localhost/alerting/list", "View URL") in links(converted.text)
    assert converted.card is not None
    assert converted.card.url == "http://localhost/alerting/list"


def test_teams_rich_text_container_table_and_unknown_elements() -> None:
    card = {
        "type": "AdaptiveCard",
        "body": [
            {
                "type": "Container",
                "items": [
                    {
                        "type": "RichTextBlock",
                        "inlines": [
                            {"type": "TextRun", "text": "bold", "weight": "Bolder"},
                            {
                                "type": "TextRun",
                                "text": "site",
                                "selectAction": {
                                    "type": "Action.OpenUrl",
                                    "url": "https://x.test/s",
                                },
                            },
                        ],
                    },
                    {
                        "type": "Table",
                        "rows": [
                            {
                                "type": "TableRow",
                                "cells": [
                                    {
                                        "type": "TableCell",
                                        "items": [{"type": "TextBlock", "text": "cell"}],
                                    }
                                ],
                            }
                        ],
                    },
                    {"type": "Carousel.FromTheFuture", "items": 5},
                    {"type": "Input.Text", "id": "x"},
                ],
            }
        ],
        "actions": [
            {"type": "Action.OpenUrl", "title": "Open", "url": "https://x.test/o"},
            {"type": "Action.Submit", "title": "No"},
        ],
    }
    converted = teams.convert(
        {"type": "message", "attachments": [{"contentType": teams.ADAPTIVE, "content": card}]}
    )
    assert "<strong>bold</strong>" in to_html(converted.text)
    assert links(converted.text) == [("https://x.test/s", "site"), ("https://x.test/o", "Open")]
    assert "cell" in plain(converted.text)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "message", "attachments": []},
        {"type": "message", "attachments": [{"contentType": "image/png", "content": {}}]},
        {"type": "something"},
        {"@type": "SomethingCard"},
        {"unrelated": True},
    ],
)
def test_teams_body_that_is_no_card_is_refused_in_the_users_words(body: dict[str, Any]) -> None:
    with pytest.raises(Invalid) as refused:
        teams.convert(body)
    assert refused.value.code == "no_card"
    assert "MessageCard" in refused.value.message and "Adaptive Card" in refused.value.message


# -- hostile content, every format ---------------------------------------------------------------


def _slack_everywhere(value: str) -> dict[str, Any]:
    return {
        "text": value,
        "attachments": [
            {
                "pretext": value,
                "author_name": value,
                "author_link": "javascript:alert(1)",
                "title": value,
                "title_link": "data:text/html,<script>x</script>",
                "text": value,
                "fields": [{"title": value, "value": value}],
                "footer": value,
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": value}},
                    {
                        "type": "section",
                        "text": {"type": "mrkdwn", "text": value},
                        "fields": [{"type": "plain_text", "text": value}],
                    },
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": value}]},
                    {
                        "type": "rich_text",
                        "elements": [
                            {
                                "type": "rich_text_section",
                                "elements": [
                                    {"type": "text", "text": value, "style": {"bold": True}},
                                    {"type": "link", "url": "javascript:x", "text": value},
                                    {"type": "user", "user_id": value},
                                ],
                            },
                            {
                                "type": "rich_text_preformatted",
                                "elements": [{"type": "text", "text": value}],
                            },
                        ],
                    },
                ],
            }
        ],
    }


def _discord_everywhere(value: str) -> dict[str, Any]:
    return {
        "content": value,
        "embeds": [
            {
                "author": {"name": value, "url": "javascript:alert(1)"},
                "title": value,
                "url": "data:text/html,x",
                "description": value,
                "fields": [{"name": value, "value": value}],
                "footer": {"text": value},
            }
        ],
    }


def _teams_everywhere(value: str) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": teams.ADAPTIVE,
                "content": {
                    "type": "AdaptiveCard",
                    "body": [
                        {"type": "TextBlock", "text": value, "style": "heading"},
                        {"type": "TextBlock", "text": value},
                        {"type": "FactSet", "facts": [{"title": value, "value": value}]},
                        {"type": "Image", "url": "javascript:alert(1)", "altText": value},
                    ],
                    "actions": [{"type": "Action.OpenUrl", "title": value, "url": "data:x"}],
                },
            },
            {
                "contentType": teams.CONNECTOR,
                "content": {
                    "@type": "MessageCard",
                    "title": value,
                    "text": value,
                    "sections": [
                        {"activityTitle": value, "facts": [{"name": value, "value": value}]}
                    ],
                    "potentialAction": [
                        {
                            "@type": "OpenUri",
                            "name": value,
                            "targets": [{"os": "default", "uri": "javascript:x"}],
                        }
                    ],
                },
            },
        ],
    }


FORMATS: list[tuple[Convert, Callable[[str], dict[str, Any]]]] = [
    (slack.convert, _slack_everywhere),
    (discord.convert, _discord_everywhere),
    (teams.convert, _teams_everywhere),
]
HOSTILE_MORE = [
    *HOSTILE,
    "[x](http://evil.example) in a title",
    "](javascript:alert(1)) closes a link",
    "<!channel> <!here> <@U123> <@123> <@&456> <#789> @everyone",
    "right\u202eto\u2066left\x00\x07 controls",
    "\ue000 held \ue001 characters",
]


def _live(text: str) -> list[str]:
    """Mentions and `<` markup that a chat or an HTML renderer would read, outside the link
    targets hookhub writes itself."""
    outside = re.sub(r"\]\(<[^>\s]*>\)", "](…)", text)
    return re.findall(r"@(?!\u200d)[\w.-]|<(?![\s\u200d])", outside)


@pytest.mark.parametrize("value", HOSTILE_MORE)
@pytest.mark.parametrize(("convert", "build"), FORMATS, ids=["slack", "discord", "teams"])
def test_hostile_text_stays_data_in_every_place_of_every_format(
    convert: Convert, build: Callable[[str], dict[str, Any]], value: str
) -> None:
    converted = convert(build(value))
    html = to_html(converted.text).lower()
    assert "<script" not in html and "<img" not in html and "<!--" not in html
    # Only the markup the converters write (Discord's and Teams' Markdown has headings).
    written = r"<(?!/?(p|strong|em|code|pre|a|h[1-3]|blockquote|ul|ol|li|hr)\b)"
    assert not re.search(written, html), html
    for href, _ in links(converted.text):
        assert href.startswith(("https://", "http://")), href
    assert _live(converted.text) == [], converted.text
    assert not re.search("[\x00-\x08\u202a-\u202e\u2066-\u2069\ue000-\uf8ff]", converted.text)
    if converted.card is not None:
        assert_defused(converted.card.title)
        for f in converted.card.fields:
            assert_defused(f.name)
            assert_defused(f.value)


TITLED: list[tuple[Convert, Callable[[str], dict[str, Any]]]] = [
    (slack.convert, lambda t: {"attachments": [{"title": t, "title_link": "https://x.test/a"}]}),
    (discord.convert, lambda t: {"embeds": [{"title": t, "url": "https://x.test/a"}]}),
    (teams.convert, lambda t: {"@type": "MessageCard", "title": t}),
    (
        teams.convert,
        lambda t: {
            "type": "AdaptiveCard",
            "body": [{"type": "TextBlock", "text": t, "size": "Large"}],
        },
    ),
]


@pytest.mark.parametrize(
    "title", ["[x](http://evil.example) T", "](javascript:alert(1)) T", "**bold** <b>x</b> T"]
)
@pytest.mark.parametrize(
    ("convert", "build"), TITLED, ids=["slack", "discord", "teams", "adaptive"]
)
def test_a_title_reads_exactly_as_sent_and_links_nowhere_else(
    convert: Convert, build: Callable[[str], dict[str, Any]], title: str
) -> None:
    converted = convert(build(title))
    assert converted.card is not None
    assert converted.card.title.replace(ZWJ, "") == title
    assert title in plain(converted.text)
    assert all(href == "https://x.test/a" for href, _ in links(converted.text))
    assert "<strong>bold</strong>" not in to_html(converted.text).replace("<strong>[", "")


WRONG_TYPES: list[Any] = [None, 5, 1.5, True, [], {}, "x", [1, "a", None], {"a": [1]}]


@pytest.mark.parametrize("wrong", WRONG_TYPES)
def test_values_of_the_wrong_type_never_fail(wrong: Any) -> None:
    slack_body = {
        "text": "t",
        "username": wrong,
        "icon_url": wrong,
        "blocks": [{"type": "section", "text": wrong, "fields": wrong, "accessory": wrong}, wrong],
        "attachments": [
            {
                "title": wrong,
                "fields": [{"title": wrong, "value": wrong}],
                "ts": wrong,
                "color": wrong,
            },
            wrong,
        ],
    }
    assert slack.convert(slack_body).text
    discord_body = {
        "content": "c",
        "username": wrong,
        "embeds": [
            {
                "title": wrong,
                "color": wrong,
                "fields": [{"name": wrong, "value": wrong}, wrong],
                "author": wrong,
                "footer": wrong,
                "image": wrong,
            }
        ],
    }
    assert discord.convert(discord_body).text
    adaptive = {
        "type": "AdaptiveCard",
        "body": [
            {"type": "TextBlock", "text": "t"},
            {"type": "FactSet", "facts": wrong},
            {"type": "ColumnSet", "columns": wrong},
            {"type": wrong, "items": wrong},
            wrong,
        ],
        "actions": wrong,
    }
    assert teams.convert(adaptive).text
    card = {
        "@type": "MessageCard",
        "text": "t",
        "title": wrong,
        "themeColor": wrong,
        "sections": [wrong, {"facts": wrong, "activityTitle": wrong}],
        "potentialAction": wrong,
    }
    assert teams.convert(card).text


def test_huge_counts_and_deep_nesting_are_bounded() -> None:
    fields = [{"title": f"f{i}", "value": str(i)} for i in range(1000)]
    converted = slack.convert({"attachments": [{"fields": fields}] * 200})
    assert "… and 975 more" in plain(converted.text)
    assert "… and 150 more" in plain(converted.text)
    assert len(converted.text) <= MAX_TEXT + 20
    assert converted.card is not None and len(converted.card.fields) == MAX_FIELDS

    embeds = [{"title": "t", "fields": [{"name": "n", "value": "v"}] * 100}] * 30
    converted = discord.convert({"embeds": embeds})
    assert "… and 20 more" in plain(converted.text)
    assert converted.card is not None and len(converted.card.fields) == MAX_FIELDS

    element: dict[str, Any] = {"type": "TextBlock", "text": "deepest"}
    for _ in range(40):
        element = {"type": "Container", "items": [element, {"type": "TextBlock", "text": "level"}]}
    converted = teams.convert({"type": "AdaptiveCard", "body": [element]})
    assert "deepest" not in converted.text
    assert plain(converted.text).count("level") == MAX_DEPTH

    assert len(slack.convert({"text": "*a* " * 20_000}).text) <= MAX_TEXT + 20


@pytest.mark.parametrize(
    ("convert", "body"),
    [
        (slack.convert, {"text": "*a " * 8_000}),
        (slack.convert, {"text": "~a _a " * 4_000}),
        (discord.convert, {"content": "**a " * 6_000}),
        (discord.convert, {"content": "__a ||a " * 3_000}),
    ],
)
def test_a_line_of_unclosed_markers_stays_text(convert: Convert, body: dict[str, Any]) -> None:
    """Markers that never close are text; each is looked at once (a pattern that scanned
    to the line's end from every marker took seconds on a 40,000-character line)."""
    converted = convert(body)
    assert "<strong>" not in to_html(converted.text) and "<em>" not in to_html(converted.text)
    written = next(iter(body.values()))
    assert plain(converted.text).split() == written.split()
