"""The acting contract's shared pieces (SPEC §20): a provider's answer sorted into the kind
of error it is, and a root's offers as sync keeps them."""

from __future__ import annotations

import httpx
import pytest

from shared.providers.acting import (
    ActionRefused,
    ActionUnavailable,
    LinkRejected,
    Offered,
    answer_error,
)
from shared.providers.notify import Card, CardAction


def _answer(status: int, body: object = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, ActionRefused),
        (403, ActionRefused),
        (404, ActionRefused),
        (409, ActionRefused),
        (401, LinkRejected),
        (429, ActionUnavailable),
        (500, ActionUnavailable),
        (503, ActionUnavailable),
    ],
)
def test_an_answer_is_the_kind_of_error_its_status_says(status: int, kind: type) -> None:
    error = answer_error(_answer(status, {"error": {"message": "Incident Already Resolved"}}), "x")
    assert isinstance(error, kind)
    assert error.upstream_status == status
    assert "Incident Already Resolved" in error.message


def test_retry_after_is_kept_and_a_list_of_messages_gives_its_first() -> None:
    error = answer_error(
        _answer(429, {"errorMessages": ["slow down"]}, **{"retry-after": "7"}), "x"
    )
    assert isinstance(error, ActionUnavailable)
    assert error.retry_after == 7.0
    assert error.message == "x: HTTP 429 slow down"
    plain = answer_error(httpx.Response(502, text="bad gateway"), "y")
    assert plain.message == "y: HTTP 502 bad gateway"


def test_offers_round_trip_and_name_their_actions() -> None:
    offered = Offered(
        "pagerduty",
        (CardAction("acknowledge", "Acknowledge", "primary"), CardAction("resolve", "Resolve")),
        {"incident_id": "PT4KHLK"},
    )
    again = Offered.from_doc(offered.to_doc())
    assert again == offered
    assert again.offers("resolve") == CardAction("resolve", "Resolve")
    assert again.offers("silence:1h") is None


def test_a_card_shows_its_actions_only_when_it_has_some_and_defuses_their_labels() -> None:
    assert "actions" not in Card(title="t").as_dict()
    card = Card(title="t", actions=(CardAction("ack", "Ack <@U123>"),))
    [action] = card.as_dict()["actions"]
    assert action["id"] == "ack"
    assert action["label"] != "Ack <@U123>"  # a mention from outside is broken


def test_a_json_string_or_a_field_error_is_the_message() -> None:
    said = answer_error(
        _answer(400, "Failed to create silence: start time must be before end time"), "silence"
    )
    assert said.message == (
        "silence: HTTP 400 Failed to create silence: start time must be before end time"
    )
    field = answer_error(_answer(400, {"assignedTo": ["Cannot assign to non-team member"]}), "a")
    assert field.message == "a: HTTP 400 assignedTo: Cannot assign to non-team member"
