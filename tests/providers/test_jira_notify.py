"""Jira notifications (shared/providers/jira/notify.py) over payloads written down from
Atlassian's documentation (tests/providers/jira_payloads/README.md says where each came
from): names, changelogs, ADF and wiki markup as readable text, malformed payloads, and
text from outside kept text (read back with a real CommonMark parser)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from shared.providers.jira.markup import adf_text, wiki_text
from shared.providers.jira.notify import NOTIFIER
from shared.providers.notify import Notice, Notifier, Unrenderable, known
from tests.providers.notify_support import (
    CARD_HOSTILE,
    CARD_READS,
    HOSTILE,
    assert_defused,
    assert_inert,
    clone,
    links,
    plain,
    to_html,
)

PAYLOADS = Path(__file__).parent / "jira_payloads"
_notifier: Notifier = NOTIFIER


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((PAYLOADS / name).read_text()))


def render(payload: Any) -> Notice:
    return NOTIFIER.notice(None, payload)


@pytest.mark.parametrize(
    ("name", "event", "who", "item"),
    [
        ("issue_created.json", "issue.created", "Ada Lovelace", "SP-10"),
        ("issue_updated.json", "issue.updated", "Bryan Rollins [Atlassian]", "JRA-20002"),
        ("issue_updated_server.json", "issue.updated", "Bryan Rollins [Atlassian]", "JRA-20002"),
        ("issue_updated_status.json", "issue.updated", "Ada Lovelace", "SP-10"),
        ("issue_commented_server.json", "comment.created", "Leo Franchi", "BUG-15"),
        ("issue_deleted_legacy.json", "issue.deleted", "Leo Franchi", "BUG-15"),
        ("comment_created.json", "comment.created", "Ada Lovelace", "SP-10"),
        ("comment_created_adf.json", "comment.created", "Ada Lovelace", "SP-10"),
        ("worklog_created.json", "worklog.created", "Test User", None),
        ("sprint_started.json", "sprint.started", None, None),
        ("sprint_closed.json", "sprint.closed", None, None),
    ],
)
def test_every_documented_payload_renders(
    name: str, event: str, who: str | None, item: str | None
) -> None:
    notice = render(load(name))
    assert notice.event == event and notice.event in NOTIFIER.events
    assert notice.quiet is None
    assert notice.item == item
    assert_inert(notice.text)
    seen = plain(notice.text)
    if who:
        assert seen.startswith(who)
        assert notice.actor is not None and notice.actor.name == who
    if item:
        summary = load(name)["issue"]["fields"]["summary"]
        assert f"{item} {summary}" in seen
        assert any(text == f"{item} {summary}" for _, text in links(notice.text))
        assert notice.item_card is not None and notice.item_card.title == f"{item} {summary}"
        assert notice.project == item.split("-")[0]


def test_a_status_change_is_the_headline_and_the_default() -> None:
    notice = render(load("issue_updated_status.json"))
    seen = plain(notice.text)
    assert seen.startswith("Ada Lovelace moved SP-10 A descriptive title from To Do to In Progress")
    assert "Assignee: Unassigned → Ada Lovelace" in seen
    assert "Description changed" in seen and "old" not in seen
    assert notice.changed == {"status", "assignee", "description"}
    assert notice.default
    assert notice.item_card is not None
    assert notice.item_card.state == "In Progress"
    assert ("Assignee", "Ada Lovelace") in [(f.name, f.value) for f in notice.item_card.fields]
    # An update that did not change the status is not a default.
    other = render(load("issue_updated.json"))
    assert not other.default and other.changed == {"summary", "issuetype"}
    assert "Summary: What is going on here????? → A new summary." in plain(other.text)
    assert "Type: Improvement → New Feature" in plain(other.text)


@pytest.mark.parametrize("name", ["issue_updated.json", "issue_updated_server.json"])
def test_atlassians_priority_is_read_as_an_object_or_a_string(name: str) -> None:
    # Jira Cloud's example gives `priority` as an object, the Server/Data Center one as the
    # bare string "Minor"; the user has an `accountId` in the first, `name`/`key` in the other.
    notice = render(load(name))
    assert notice.item_card is not None
    assert ("Priority", "Minor") in [(f.name, f.value) for f in notice.item_card.fields]
    assert notice.labels == ("UI", "dialogue", "move")
    assert notice.actor is not None
    assert notice.actor.login in ("99:27935d01-92a7-4687-8272-a9b8d3b2ae2e", "brollins")


def test_defaults() -> None:
    assert render(load("issue_created.json")).default
    assert render(load("comment_created.json")).default
    assert not render(load("worklog_created.json")).default
    assert not render(load("sprint_started.json")).default
    for pattern in NOTIFIER.default_events:
        assert known(NOTIFIER, pattern)
    assert known(NOTIFIER, "comment.*") and known(NOTIFIER, "sprint.closed")
    assert not known(NOTIFIER, "sprint.created") and not known(NOTIFIER, "pull_request")


@pytest.mark.parametrize(
    ("webhook_event", "event"),
    [
        ("jira:issue_deleted", "issue.deleted"),
        ("comment_updated", "comment.updated"),
        ("comment_deleted", "comment.deleted"),
        ("worklog_updated", "worklog.updated"),
        ("worklog_deleted", "worklog.deleted"),
    ],
)
def test_the_other_actions_are_named_and_rendered(webhook_event: str, event: str) -> None:
    source = {"issue": "issue_created.json", "comme": "comment_created.json"}.get(
        event.split(".")[0][:5], "worklog_created.json"
    )
    payload = load(source)
    payload["webhookEvent"] = webhook_event
    notice = render(payload)
    assert notice.event == event
    assert_inert(notice.text)
    assert (
        "deleted" in plain(notice.text)
        or "edited" in plain(notice.text)
        or "changed" in plain(notice.text)
    )


@pytest.mark.parametrize(
    "echo",
    ["issue_commented", "issue_comment_edited", "issue_work_logged", "issue_worklog_deleted"],
)
def test_an_issue_update_raised_by_a_comment_or_a_worklog_is_quiet(echo: str) -> None:
    payload = load("issue_created.json")
    payload.update(webhookEvent="jira:issue_updated", issue_event_type_name=echo)
    assert echo in (render(payload).quiet or "")
    payload["changelog"] = {"items": []}
    assert echo in (render(payload).quiet or "")


@pytest.mark.parametrize(
    ("name", "event", "verb", "quoted"),
    [
        ("issue_commented_server.json", "comment.created", "commented on", True),
        ("issue_comment_edited_server.json", "comment.updated", "edited a comment on", True),
        ("issue_comment_deleted_server.json", "comment.deleted", "deleted a comment on", False),
        # An older Jira: the comment, and no `issue_event_type_name`.
        ("issue_commented_legacy.json", "comment.created", "commented on", True),
    ],
)
def test_jira_server_comments_are_comment_notifications_in_the_issues_thread(
    name: str, event: str, verb: str, quoted: bool
) -> None:
    """Jira Server and Data Center tell of a comment by a `jira:issue_updated` alone."""
    payload = load(name)
    assert payload["webhookEvent"] == "jira:issue_updated" and "changelog" not in payload
    notice = render(payload)
    assert notice.quiet is None
    assert notice.event == event
    key, summary = payload["issue"]["key"], payload["issue"]["fields"]["summary"]
    assert notice.item == key  # threaded under the issue
    assert notice.default == (event == "comment.created")
    seen = plain(notice.text)
    assert seen.startswith(f"{payload['user']['displayName']} {verb} {key} {summary}")
    [(href, _)] = links(notice.text)
    assert href.startswith(f"{payload['issue']['self'].split('/rest/')[0]}/browse/{key}")
    if quoted:
        assert "<blockquote>" in to_html(notice.text)
        assert payload["comment"]["body"] in seen
        assert notice.occurrence and payload["comment"]["id"] in notice.occurrence
    else:
        assert "<blockquote>" not in to_html(notice.text) and notice.occurrence is None


def test_an_older_jiras_edited_comment_is_an_edit() -> None:
    payload = load("issue_commented_legacy.json")
    payload["comment"]["updated"] = "2013-03-27T17:10:00.000+0000"
    notice = render(payload)
    assert notice.event == "comment.updated" and "edited a comment on" in plain(notice.text)
    # A type name that is not a comment's (a transition that changed nothing, with a
    # comment): the comment is what there is to tell.
    payload["issue_event_type_name"] = "issue_generic"
    assert render(payload).event == "comment.updated"


def test_a_comment_and_the_issue_update_beside_it_are_one_occurrence() -> None:
    """Jira Cloud sends `comment_created` and a `jira:issue_updated` (`issue_commented`) of
    the same comment: both name it alike; an edit and a later edit do not."""
    created = load("comment_created.json")
    beside = load("issue_created.json")
    beside.update(
        webhookEvent="jira:issue_updated",
        issue_event_type_name="issue_commented",
        comment=copy.deepcopy(created["comment"]),
    )
    one, two = render(created), render(beside)
    assert (one.event, two.event) == ("comment.created", "comment.created")
    assert one.occurrence is not None and one.occurrence == two.occurrence
    edited = copy.deepcopy(created)
    edited["webhookEvent"] = "comment_updated"
    edited["comment"]["updated"] = "2030-01-01T00:00:00.000+0000"
    again = copy.deepcopy(edited)
    again["comment"]["updated"] = "2030-01-02T00:00:00.000+0000"
    occurrences = {one.occurrence, render(edited).occurrence, render(again).occurrence}
    assert len(occurrences) == 3
    # Without the comment (Cloud once it drops the object), the comment event says it.
    beside.pop("comment")
    assert "issue_commented" in (render(beside).quiet or "")


def test_an_update_with_changes_quotes_the_comment_it_carries() -> None:
    """Atlassian's Data Center example: a summary and type change with a comment."""
    notice = render(load("issue_updated_server.json"))
    assert notice.event == "issue.updated"
    assert "Just in time for AtlasCamp!" in plain(notice.text)
    assert "<blockquote>" in to_html(notice.text)


def test_a_deleted_issue_is_linked_from_its_self_and_key() -> None:
    """An older Jira's `jira:issue_deleted` has no browse link: the site's address comes
    from `issue.self`, the issue's from its key."""
    notice = render(load("issue_deleted_legacy.json"))
    assert notice.event == "issue.deleted"
    assert links(notice.text) == [
        ("http://lfranchi.com:8080/browse/BUG-15", "BUG-15 New bug with hook")
    ]
    assert notice.card is not None and notice.card.url == "http://lfranchi.com:8080/browse/BUG-15"


def test_comments_in_wiki_markup_and_adf_read_as_text() -> None:
    wiki = plain(render(load("comment_created.json")).text)
    assert "Reproduced on staging: see the log (https://logs.example.com/run/42)" in wiki
    assert "- first" in wiki and "- second" in wiki
    adf = plain(render(load("comment_created_adf.json")).text)
    assert "Fixed in the PR (https://github.com/acme/app/pull/7), thanks @Ada Lovelace!" in adf
    assert "- unit tests" in adf and "- docs" in adf and "assert login()" in adf


def test_adf_walker() -> None:
    document = {
        "type": "doc",
        "content": [
            {
                "type": "heading",
                "attrs": {"level": 1},
                "content": [{"type": "text", "text": "Title"}],
            },
            {
                "type": "orderedList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {"type": "paragraph", "content": [{"type": "text", "text": "one"}]}
                        ],
                    },
                    {
                        "type": "listItem",
                        "content": [
                            {
                                "type": "paragraph",
                                "content": [
                                    {"type": "text", "text": "two"},
                                    {"type": "hardBreak"},
                                    {"type": "text", "text": "more"},
                                ],
                            }
                        ],
                    },
                ],
            },
            {
                "type": "blockquote",
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": "quoted"}]}],
            },
            {
                "type": "paragraph",
                "content": [
                    {"type": "inlineCard", "attrs": {"url": "https://x.example"}},
                    {"type": "emoji", "attrs": {"shortName": ":smile:"}},
                    {"type": "status", "attrs": {"text": "DONE"}},
                ],
            },
            {
                "type": "taskList",
                "content": [
                    {
                        "type": "taskItem",
                        "attrs": {"state": "DONE"},
                        "content": [{"type": "text", "text": "task"}],
                    }
                ],
            },
            {"type": "mediaSingle", "content": [{"type": "media", "attrs": {}}]},
            {
                "type": "table",
                "content": [
                    {
                        "type": "tableRow",
                        "content": [
                            {
                                "type": "tableCell",
                                "content": [
                                    {
                                        "type": "paragraph",
                                        "content": [{"type": "text", "text": "a"}],
                                    }
                                ],
                            },
                            {
                                "type": "tableCell",
                                "content": [
                                    {
                                        "type": "paragraph",
                                        "content": [{"type": "text", "text": "b"}],
                                    }
                                ],
                            },
                        ],
                    }
                ],
            },
            {"type": "unknownBlock", "content": [{"type": "text", "text": "kept"}]},
            "junk",
            {"type": 5},
            {"content": "x"},
        ],
    }
    text = adf_text(document)
    assert text.startswith("Title\n\n1. one\n2. two\n  more\n\n> quoted")
    assert "https://x.example:smile:[DONE]" in text
    assert "[x] task" in text and "[attachment]" in text and "a | b" in text and "kept" in text
    assert adf_text("x") == "" and adf_text({"content": 5}) == ""
    deep: dict[str, Any] = {"type": "text", "text": "bottom"}
    for _ in range(500):
        deep = {"type": "blockquote", "content": [deep]}
    adf_text({"type": "doc", "content": [deep]})  # cut, not a RecursionError


def test_wiki_markup() -> None:
    assert wiki_text("h1. Title\n*bold* _it_ {{mono}} [text|https://a.example] [~ada]") == (
        "Title\nbold it mono text (https://a.example) @ada"
    )
    assert wiki_text("{code:python}\nx = 1\n{code}") == "x = 1"
    assert wiki_text("bq. quoted") == "> quoted"
    assert wiki_text("||h1||h2||\n|a|b|") == "h1 | h2\na | b"
    assert wiki_text(None) == ""


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_summaries_and_comments(hostile: str) -> None:
    payload = load("comment_created.json")
    payload["issue"]["fields"]["summary"] = hostile
    payload["comment"]["body"] = hostile + "\n# heading\n> quote"
    notice = render(payload)
    flat = " ".join(hostile.split())
    assert_inert(notice.text, f"SP-10 {flat}")
    assert to_html(notice.text).count("<blockquote>") == 1

    adf = load("comment_created_adf.json")
    adf["comment"]["body"]["content"][0]["content"][0]["text"] = hostile
    assert_inert(render(adf).text)

    status = load("issue_updated_status.json")
    status["changelog"]["items"][0]["toString"] = hostile
    status["user"]["displayName"] = hostile
    assert_inert(render(status).text, flat)


@pytest.mark.parametrize("name", ["issue_created.json", "comment_created.json"])
def test_a_cards_text_from_outside_is_defused(name: str) -> None:
    payload = load(name)
    fields = payload["issue"]["fields"]
    fields["summary"] = CARD_HOSTILE
    fields["status"]["name"] = CARD_HOSTILE
    fields["project"]["name"] = CARD_HOSTILE
    fields["priority"] = {"name": CARD_HOSTILE}
    for user in (payload.get("user"), payload.get("comment", {}).get("author")):
        if user:
            user["displayName"] = CARD_HOSTILE
    notice = render(payload)
    assert notice.card is not None and notice.item_card is not None
    for card in (notice.card, notice.item_card):
        assert_defused(card.title, f"SP-10 {CARD_READS}")
        assert card.state is not None
        assert_defused(card.state)
        for field in card.fields:
            assert_defused(field.value)
    assert notice.actor is not None
    assert_defused(notice.actor.name, CARD_READS)
    assert "\u202e" not in notice.text
    assert_inert(notice.text)


def test_links_only_to_http() -> None:
    payload = load("issue_created.json")
    payload["issue"]["self"] = "javascript:alert(1)//rest/api/2/issue/1"
    notice = render(payload)
    assert links(notice.text) == []
    assert "SP-10 A descriptive title" in plain(notice.text)


WRONG: list[Any] = [None, [], {}, "x", 7, True]


@pytest.mark.parametrize("name", sorted(p.name for p in PAYLOADS.glob("*.json")))
def test_malformed_payloads_render_what_is_there_or_are_unrenderable(name: str) -> None:
    original = load(name)
    for key, value in original.items():
        paths = [[key]]
        if isinstance(value, dict):
            paths += [[key, inner] for inner in value]
            if isinstance(value.get("fields"), dict):
                paths += [[key, "fields", inner] for inner in value["fields"]]
        for path in paths:
            for wrong in WRONG:
                payload = clone(original)
                node = payload
                for step in path[:-1]:
                    node = node[step]
                node[path[-1]] = wrong
                try:
                    notice = render(payload)
                except Unrenderable as refused:
                    assert refused.reason
                    continue
                assert notice.text or notice.quiet
                assert_inert(notice.text)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {},
        {"webhookEvent": 5},
        {"webhookEvent": "jira:issue_created", "issue": []},
        {"webhookEvent": "comment_created"},
        {"webhookEvent": "sprint_started", "sprint": {}},
    ],
)
def test_unrenderable(payload: Any) -> None:
    with pytest.raises(Unrenderable):
        render(payload)


def test_an_event_notifications_do_not_render_is_quiet_not_an_error() -> None:
    """A Jira webhook registered for more events than notifications render (a board, a
    version): nothing is posted, and no subscription's `last_error` is set."""
    notice = render({"webhookEvent": "board_created", "board": {"id": 1}})
    assert notice.quiet and "board_created" in notice.quiet
    assert notice.text == "" and notice.event == "board_created" and not notice.default
