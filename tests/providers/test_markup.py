"""Hookhub's own CommonMark (a notification's card text) written in each network's markup
(shared/providers/markup.py): a link is the network's own link, never `[title](<url>)`
shown as it is; what came from outside stays text (no tag, no live mention, no link made
of it); the chat's plain text is written as before."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.providers import commonmark as md
from shared.providers import markup
from shared.providers.chat import Author, OutboundPost
from shared.providers.discord.messages import content
from shared.providers.googlechat.messages import ANGLE_QUOTE
from shared.providers.googlechat.messages import format_post as google_chat_post
from shared.providers.matrix.messages import format_content
from shared.providers.mattermost.messages import message
from shared.providers.slack.messages import outbound_text
from shared.providers.teams.messages import format_post as teams_post
from shared.providers.telegram.messages import format_post as telegram_post

ZWJ = "\u200d"
URL = "https://github.com/octo/hello/pull/7?a=1&b=2"
# A title from outside: a tag, an entity's character, a mention, Slack's `<!channel>`, a
# link of Slack's and one of Markdown's.
TITLE = "Fix <b> & @here <!channel> <https://evil.example|x> [y](https://evil.example)"
# A notification's text as commonmark.py writes it: who, what (linked), a quoted body.
CARD = (
    f"**{md.text('Ada_L')}** opened {md.link(md.text(TITLE), URL)}\n"
    f"{md.quote('Looks _good_ <@U123>')}"
)


def _post(text: str = CARD, commonmark: bool = True) -> OutboundPost:
    return OutboundPost(text, Author("GitHub"), markup="commonmark" if commonmark else "plain")


def test_the_parse_keeps_lines_and_paragraphs_as_written() -> None:
    text = "line one\n> quoted\n\nafter a blank line\n\n- a\n- b"
    assert markup.plain(text) == "line one\n> quoted\n\nafter a blank line\n\n• a\n• b"
    assert markup.plain("[the doc](<https://x.example/a?b=1>)") == (
        "the doc (https://x.example/a?b=1)"
    )
    # Only http(s) is linked: anything else is its text (a `javascript:` one is no link to
    # CommonMark's parser at all).
    assert markup.plain("[get](ftp://files.example/f)") == "get"
    assert markup.plain("[run](javascript:alert(1))") == "[run](javascript:alert(1))"


def test_slack_writes_mrkdwn_links_and_escapes_what_came_from_outside() -> None:
    written = outbound_text(_post())
    first, quoted = written.split("\n")
    assert first.startswith("*Ada_L* opened <https://github.com/octo/hello/pull/7?a=1&amp;b=2|")
    label = first.split("|", 1)[1]
    assert label == (
        f"Fix &lt;{ZWJ}b&gt; &amp; @{ZWJ}here &lt;{ZWJ}!channel&gt; "
        f"&lt;{ZWJ}https://evil.example|x&gt; [y](https://evil.example)>"
    )
    # No `<` is left but the link's own: nothing from outside is a mention or a link.
    assert written.count("<") == 1
    assert quoted == f"> Looks _good_ &lt;{ZWJ}@{ZWJ}U123&gt;"
    # The chat's own plain text: escaped, not read as CommonMark.
    assert (
        outbound_text(_post("**not bold** & [x](y)", commonmark=False))
        == "**not bold** &amp; [x](y)"
    )


def test_telegram_writes_html() -> None:
    written = telegram_post(_post())
    assert written.startswith("<b>GitHub</b>\n<b>Ada_L</b> opened ")
    assert f'<a href="{URL.replace("&", "&amp;")}">Fix &lt;{ZWJ}b&gt; &amp; @' in written
    # The body's `_good_` was escaped (commonmark.py's quote): underscores, no italics.
    assert written.endswith(f"<blockquote>Looks _good_ &lt;{ZWJ}@{ZWJ}U123&gt;</blockquote>")
    assert f"](<{URL}" not in written and f"]({URL}" not in written  # no Markdown link
    assert telegram_post(_post("a [b](c)", commonmark=False)).endswith("\na [b](c)")


def test_teams_writes_its_html_with_every_markup_character_a_reference() -> None:
    written = teams_post(_post())
    assert "<strong>Ada&#95;L</strong> opened " in written
    assert f'<a href="{URL.replace("&", "&amp;")}">Fix &#60;{ZWJ}b&#62; &#38; &#64;' in written
    assert "<blockquote>Looks &#95;good&#95; &#60;" in written
    assert "](<" not in written and "**" not in written


def test_matrix_writes_html_beside_a_plain_body() -> None:
    written = format_content(_post())
    assert written.body.startswith(f"Ada_L opened Fix <{ZWJ}b> & @{ZWJ}here")
    assert f"({URL})\n> Looks _good_ <{ZWJ}@{ZWJ}U123>" in written.body
    html = written.formatted_body
    assert f'<strong>Ada_L</strong> opened <a href="{URL.replace("&", "&amp;")}">' in html
    assert html.endswith(f"<blockquote>Looks _good_ &lt;{ZWJ}@{ZWJ}U123&gt;</blockquote>")
    # A matrix.to link would be a pill: its text alone.
    pill = format_content(_post("[Ada](<https://matrix.to/#/@ada:example.org>)"))
    assert "<a " not in pill.formatted_body


def test_google_chat_writes_its_own_links() -> None:
    written = google_chat_post(_post())
    first = written.split("\n")[1]
    # The label's `>` a look-alike (`ANGLE_QUOTE`): it would end the link.
    label = f"Fix <{ZWJ}b{ANGLE_QUOTE} & @{ZWJ}here <{ZWJ}!channel"
    assert first.startswith(f"*Ada_L* opened <{URL}|{label}")
    assert first.endswith("[y](https://evil.example)>")
    assert written.split("\n")[2] == f"> Looks _good_ <{ZWJ}@{ZWJ}U123>"


@pytest.mark.parametrize("write", [content, message], ids=["discord", "mattermost"])
def test_discord_and_mattermost_write_markdown_links_with_outside_text_escaped(
    write: Callable[[OutboundPost], str],
) -> None:
    written = write(_post())
    first, quoted = written.split("\n")
    assert first.startswith(r"**Ada\_L** opened [Fix \<")
    assert first.endswith(rf"\[y\](https://evil.example)]({URL})")
    # The title's own link and Slack's are text: one link in all.
    assert first.count("](") == 2 and r"\[y\](" in first
    assert quoted.startswith(r"> Looks \_good\_ \<")
