"""Linear's webhooks rendered (SPEC §16): an issue is one thread under its identifier,
created then completed or canceled; comments land in it; an update says what changed, or
is quiet when nothing shown did; outside text stays text. Payloads from
shared/providers/linear/samples (their README says where each comes from)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.providers.linear.notify import NOTIFIER
from shared.providers.notify import Notice, Unrenderable
from tests.providers.mutations import survives
from tests.providers.notify_support import HOSTILE, assert_defused, assert_inert, links, plain
from tests.providers.samples import load

ACTOR = {"id": "2e6eea91", "name": "Ada Lovelace", "email": "ada@example.com", "type": "user"}


def sample(name: str) -> dict[str, Any]:
    return load("linear", name)


def render(payload: dict[str, Any]) -> Notice:
    kind, action = payload.get("type"), payload.get("action")
    header = f"{kind}.{action}" if isinstance(kind, str) and isinstance(action, str) else None
    return NOTIFIER.notice(header, payload)


def moved_to(state: str, state_type: str) -> dict[str, Any]:
    """Zulip's captured update of WEB-44, as Linear sends a move to another state:
    `updatedFrom` names the old `stateId`, `data.state` is the new one."""
    payload = sample("issue_update")
    payload["updatedFrom"] = {"updatedAt": "2023-04-11T10:13:05.980Z", "stateId": "a2530cac"}
    payload["data"]["state"] = {"id": "b1", "name": state, "type": state_type, "color": "#5e6ad2"}
    return payload


def test_an_issue_created_names_its_team_priority_labels_and_thread() -> None:
    notice = render(sample("issue_create_complex"))
    assert notice.event == "issue.created" and notice.default and notice.resolved is False
    assert notice.item == "WEB-44" and notice.project == "WEB"
    assert notice.labels == ("Improvement", "Feature", "Bug", "Custom Label")
    assert notice.started_at == datetime(2023, 4, 11, 10, 10, 15, 37000, tzinfo=UTC)
    assert plain(notice.text).startswith("Issue WEB-44 This is regarding the outage")
    assert "> The outage that occurred" in notice.text
    assert notice.item_card is not None and notice.item_card.state == "In Progress"
    fields = {f.name: f.value for f in notice.item_card.fields}
    assert fields["Priority"] == "Urgent" and fields["Assignee"] == "Satyam Bansal"
    assert fields["Team"] == "Webhooks"
    # The identifier from the team's key and the number when `identifier` is absent.
    assert render(sample("issue_create")).item == "KOR-11"


def test_an_issue_created_or_updated_says_where_it_stands() -> None:
    """Zulip's captures as its test suite sends them: what Zulip shows of them ("Priority:
    Urgent, Assignee: Satyam Bansal, Status: In Progress.") is in the message too."""
    standing = "Status: In Progress · Priority: Urgent · Assignee: Satyam Bansal"
    created = render(sample("issue_create_complex"))
    assert plain(created.text).rstrip().endswith(standing)
    updated = render(sample("issue_update"))
    seen = plain(updated.text)
    assert "Title: This is regarding the outage that we faced during" in seen
    assert seen.rstrip().endswith(standing)
    assert updated.card is not None and updated.item_card is not None
    assert {f.name: f.value for f in updated.card.fields}["Changed"] == "title"
    assert "Changed" not in {f.name for f in updated.item_card.fields}
    # Linear's "No priority" (0) is no fact worth a line; the status still is.
    assert plain(render(sample("issue_create")).text).rstrip().endswith("Status: Backlog")


def test_an_issue_created_then_completed_is_one_item_that_resolves() -> None:
    created_payload = sample("issue_create_complex")
    created_payload["actor"] = ACTOR
    created = render(created_payload)
    completed_payload = moved_to("Done", "completed")
    completed_payload["actor"] = ACTOR
    completed = render(completed_payload)
    assert created.item == completed.item == "WEB-44"
    assert (created.resolved, completed.resolved) == (False, True)
    assert completed.event == "issue.completed" and completed.default
    assert "Ada Lovelace moved WEB-44" in plain(completed.text)
    assert "to Done in Webhooks" in plain(completed.text)
    assert completed.actor is not None and completed.actor.login == "ada@example.com"
    assert completed.item_card is not None and completed.item_card.state == "Done"
    assert completed.item_card.color == "#1f883d"
    canceled = render(moved_to("Canceled", "canceled"))
    assert canceled.event == "issue.canceled" and canceled.resolved is True
    started = render(moved_to("In Review", "started"))
    assert started.event == "issue.updated" and started.resolved is None
    assert "status" in started.changed and "Status: In Review" in plain(started.text)


def test_an_update_says_what_changed_and_is_quiet_when_nothing_shown_did() -> None:
    notice = render(sample("issue_update"))
    assert notice.event == "issue.updated" and not notice.default
    assert notice.changed == frozenset({"title"}) and notice.quiet is None
    assert "Title: This is regarding the outage that we faced during" in plain(notice.text)
    silent = sample("issue_update")
    silent["updatedFrom"] = {"updatedAt": "2023-04-11T10:13:05.980Z", "sortOrder": -1}
    assert render(silent).quiet is not None and not render(silent).default


def test_a_comment_is_in_its_issues_thread() -> None:
    notice = render(sample("comment_create"))
    assert notice.event == "comment.created" and notice.default
    assert notice.item == "WEB-46" and notice.project == "WEB" and notice.resolved is None
    assert notice.actor is not None and notice.actor.name == "Satyam Bansal"
    assert "Satyam Bansal commented on WEB-46 Thorough Impact Analysis" in plain(notice.text)
    assert "> Performing a thorough impact analysis" in notice.text
    assert links(notice.text)[0][0] == "https://linear.app/webhooks/issue/WEB-46#comment-c7cafc52"


def test_a_removed_issue_and_other_types() -> None:
    removed = sample("issue_create_complex")
    removed["action"] = "remove"
    notice = render(removed)
    assert notice.event == "issue.removed" and links(notice.text) == []
    label = {"type": "IssueLabel", "action": "create", "data": {"name": "Bug"}, "actor": ACTOR}
    notice = render(label)
    assert notice.event == "issuelabel.created" and not notice.default
    assert "Ada Lovelace: issuelabel.created: Bug" in plain(notice.text)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_outside_text_stays_text(hostile: str) -> None:
    payload = sample("issue_update")
    payload["actor"] = dict(ACTOR, name=hostile)
    data = payload["data"]
    data.update(title=hostile, description=hostile, priorityLabel=hostile)
    data["labels"][0]["name"] = hostile
    data["team"]["name"] = hostile
    payload["updatedFrom"]["title"] = hostile
    payload["url"] = "javascript:alert(1)"
    baseline = sample("issue_update")
    baseline["actor"] = ACTOR
    notice = render(payload)
    assert_inert(notice.text, baseline=render(baseline).text)
    assert notice.card is not None and notice.card.url is None
    assert_defused(notice.card.title)
    comment = sample("comment_create")
    comment["data"]["body"] = hostile
    comment["data"]["issue"]["title"] = hostile
    assert_inert(render(comment).text, baseline=render(sample("comment_create")).text)


@pytest.mark.parametrize("name", ["issue_create_complex", "issue_update", "comment_create"])
def test_broken_payloads_are_unrenderable_or_rendered_with_what_is_there(name: str) -> None:
    survives(render, sample(name))
    bad: Any = []
    with pytest.raises(Unrenderable):
        NOTIFIER.notice("Issue.create", bad)
    with pytest.raises(Unrenderable):
        NOTIFIER.notice(None, {"data": {}})
