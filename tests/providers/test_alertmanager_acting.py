"""Silencing an alert group from the channel (SPEC §20), Alertmanager's and Grafana's: what
a group's card offers while it fires and once resolved, the matchers its silence takes, and
each silence as the one documented call to the stand-ins of their APIs
(services/sandbox/alertmanager.py), served on loopback over real HTTP, with their answers
sorted into the kinds of refusal.

Groups from the providers' samples (their README.md says where each comes from):
Alertmanager's `firing.json` and `resolved.json` (one group's lifecycle, Zulip's captures),
Grafana's `group_firing.json`, `group_resolved.json` (one Grafana 9 group) and
`legacy_alerting.json` (a pre-8 rule, no group). None of them has `groupLabels` (their
routes grouped by nothing): the matchers are their `commonLabels`; one test gives the
firing group the `groupLabels` a route grouping by `alertname` would send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.sandbox import FakeAlertmanager, FakeGrafana
from shared.kernel.embedded import free_port
from shared.providers.acting import (
    ActionRefused,
    ActionUnavailable,
    Credentials,
    Link,
    LinkRejected,
)
from shared.providers.alertmanager.acting import ACTING as ALERTMANAGER
from shared.providers.alertmanager.notify import NOTIFIER as ALERTMANAGER_NOTIFIER
from shared.providers.catalog import CATALOG, provider_module
from shared.providers.grafana.acting import ACTING as GRAFANA
from shared.providers.grafana.notify import NOTIFIER as GRAFANA_NOTIFIER
from shared.providers.notify import Notice
from tests.providers.samples import load
from tests.support import served

ADA = Link(chat_user_id="u_ada", kind="mapping", provider_user="ada@example.com")
GRAFANA_TOKEN = "glsa_test_token"
SILENCES = "/api/v2/silences"
GRAFANA_SILENCES = "/api/alertmanager/grafana/api/v2/silences"
FIRING_MATCHERS = [
    {"name": "alertname", "value": "High CPU Temperature", "isRegex": False, "isEqual": True},
    {"name": "severity", "value": "critical", "isRegex": False, "isEqual": True},
]


def alertmanager_notice(name: str, **changes: Any) -> Notice:
    payload = load("alertmanager", name)
    payload.update(changes)
    return ALERTMANAGER_NOTIFIER.notice(None, payload)


def grafana_notice(name: str) -> Notice:
    return GRAFANA_NOTIFIER.notice(None, load("grafana", name))


@pytest.fixture(scope="module")
async def served_alertmanager() -> AsyncIterator[FakeAlertmanager]:
    async with served(FakeAlertmanager()) as fake:
        yield fake


@pytest.fixture(scope="module")
async def served_grafana() -> AsyncIterator[FakeGrafana]:
    async with served(FakeGrafana(tokens={GRAFANA_TOKEN})) as fake:
        yield fake


@pytest.fixture
def alertmanager(served_alertmanager: FakeAlertmanager) -> FakeAlertmanager:
    """The module's stand-in as a fresh one: no requests, no silences, up, no proxy."""
    served_alertmanager.requests.clear()
    served_alertmanager.silences.clear()
    served_alertmanager.unavailable = False
    served_alertmanager.token = None
    return served_alertmanager


@pytest.fixture
def grafana(served_grafana: FakeGrafana) -> FakeGrafana:
    served_grafana.requests.clear()
    served_grafana.silences.clear()
    return served_grafana


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


def firing_target(api: FakeAlertmanager) -> dict[str, Any]:
    """The firing sample's target, its `externalURL` the stand-in's."""
    target = ALERTMANAGER.target(alertmanager_notice("firing", externalURL=api.base_url))
    assert target is not None
    return dict(target)


# -- offers and target --------------------------------------------------------------------


def test_a_firing_group_offers_its_silences_and_a_resolved_one_nothing() -> None:
    firing, resolved = alertmanager_notice("firing"), alertmanager_notice("resolved")
    assert [(a.id, a.label) for a in ALERTMANAGER.offers(firing)] == [
        ("silence:1h", "Silence 1 h"),
        ("silence:4h", "Silence 4 h"),
        ("silence:24h", "Silence 24 h"),
    ]
    assert ALERTMANAGER.offers(resolved) == ()
    assert GRAFANA.offers(grafana_notice("group_firing")) == ALERTMANAGER.offers(firing)
    assert GRAFANA.offers(grafana_notice("group_resolved")) == ()


def test_the_silence_matches_the_group_labels_else_what_its_alerts_share() -> None:
    assert ALERTMANAGER.target(alertmanager_notice("firing")) == {
        "matchers": FIRING_MATCHERS,
        "external_url": "http://ops1:9093",
    }
    grouped = alertmanager_notice("firing", groupLabels={"alertname": "High CPU Temperature"})
    assert ALERTMANAGER.target(grouped) == {
        "matchers": FIRING_MATCHERS[:1],
        "external_url": "http://ops1:9093",
    }
    # The resolved group names the same silence (sync keeps the root's target).
    resolved = ALERTMANAGER.target(alertmanager_notice("resolved"))
    assert resolved == ALERTMANAGER.target(alertmanager_notice("firing"))
    # An address the caller's egress check would not know for one is not kept.
    for odd in ("HTTP://169.254.169.254", "ops1:9093", None):
        target = ALERTMANAGER.target(alertmanager_notice("firing", externalURL=odd))
        assert target is not None and target["external_url"] is None
    # A group with no label at all cannot be silenced: no target, so no buttons.
    assert ALERTMANAGER.target(alertmanager_notice("firing", commonLabels={})) is None


def test_grafana_groups_are_silenced_alike_and_its_legacy_rules_not_at_all() -> None:
    assert GRAFANA.target(grafana_notice("group_firing")) == {
        "matchers": [
            {"name": "alertname", "value": "Test alert", "isRegex": False, "isEqual": True},
            {"name": "test", "value": "true", "isRegex": False, "isEqual": True},
        ],
        "external_url": "https://grafana.example.com/",
    }
    legacy = grafana_notice("legacy_alerting")
    assert GRAFANA.target(legacy) is None and GRAFANA.offers(legacy) == ()


def test_each_provider_is_found_by_its_name_with_its_settings_optional_in_the_catalog() -> None:
    for acting in (ALERTMANAGER, GRAFANA):
        module = provider_module(acting.name, "acting")
        assert module is not None and module.ACTING is acting
        optional = {s.name for s in CATALOG[acting.name].settings if not s.required}
        assert set(acting.settings) <= optional
    # Alertmanager needs no setting to act: its group's externalURL says where it is.
    assert ALERTMANAGER.settings == ()
    assert "api_url" in {s.name for s in CATALOG["alertmanager"].settings if not s.required}
    assert GRAFANA.settings == ("api_url", "api_token")
    assert ALERTMANAGER.link == GRAFANA.link == "mapping"


# -- Alertmanager -------------------------------------------------------------------------


@pytest.mark.parametrize(("action_id", "hours"), [("silence:1h", 1), ("silence:4h", 4)])
async def test_a_silence_is_one_post_of_the_group_matchers_for_its_hours(
    alertmanager: FakeAlertmanager, client: httpx.AsyncClient, action_id: str, hours: int
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    settings = {"api_url": alertmanager.base_url}
    outcome = await ALERTMANAGER.perform(
        client, Credentials(settings), firing_target(alertmanager), action_id, ADA
    )
    after = datetime.now(UTC)
    [request] = alertmanager.requests
    assert (request.method, request.path) == ("POST", SILENCES)
    assert "authorization" not in request.headers  # no api_token: nothing sent
    assert request.headers["content-type"] == "application/json"
    body = request.body
    assert set(body) == {"matchers", "startsAt", "endsAt", "createdBy", "comment"}
    assert body["matchers"] == FIRING_MATCHERS
    assert body["startsAt"].endswith("Z") and body["endsAt"].endswith("Z")
    starts = datetime.fromisoformat(body["startsAt"])
    ends = datetime.fromisoformat(body["endsAt"])
    assert before <= starts <= after and ends - starts == timedelta(hours=hours)
    assert body["createdBy"] == "ada@example.com"
    assert body["comment"] == "from chat by ada@example.com"
    [silence_id] = alertmanager.silences
    assert outcome.reference == silence_id
    assert outcome.text == f"silenced for {hours} h until {ends:%H:%M} UTC"
    listed = (await client.get(alertmanager.base_url + SILENCES)).json()
    assert [(s["id"], s["status"]["state"]) for s in listed] == [(silence_id, "active")]


async def test_without_api_url_the_group_s_own_alertmanager_is_called(
    alertmanager: FakeAlertmanager, client: httpx.AsyncClient
) -> None:
    outcome = await ALERTMANAGER.perform(
        client, Credentials({}), firing_target(alertmanager), "silence:24h", ADA
    )
    [request] = alertmanager.requests
    assert request.path == SILENCES and outcome.text.startswith("silenced for 24 h until ")


async def test_api_url_wins_over_the_group_s_address(
    alertmanager: FakeAlertmanager, client: httpx.AsyncClient
) -> None:
    target = firing_target(alertmanager) | {"external_url": f"http://127.0.0.1:{free_port()}"}
    await ALERTMANAGER.perform(
        client, Credentials({"api_url": alertmanager.base_url + "/"}), target, "silence:1h", ADA
    )
    assert [r.path for r in alertmanager.requests] == [SILENCES]


async def test_an_api_token_is_sent_as_bearer_and_one_refused_is_the_link_refused(
    alertmanager: FakeAlertmanager, client: httpx.AsyncClient
) -> None:
    alertmanager.token = "proxy-secret"
    settings = {"api_url": alertmanager.base_url, "api_token": "proxy-secret"}
    await ALERTMANAGER.perform(
        client, Credentials(settings), firing_target(alertmanager), "silence:1h", ADA
    )
    assert alertmanager.requests[0].headers["authorization"] == "Bearer proxy-secret"
    with pytest.raises(LinkRejected) as refused:
        await ALERTMANAGER.perform(
            client,
            Credentials(settings | {"api_token": "wrong"}),
            firing_target(alertmanager),
            "silence:1h",
            ADA,
        )
    assert refused.value.upstream_status == 401
    assert len(alertmanager.silences) == 1


async def test_alertmanager_s_refusal_is_said_in_its_words(
    alertmanager: FakeAlertmanager, client: httpx.AsyncClient
) -> None:
    # A group whose only shared label is empty: a silence on it would match every alert.
    notice = alertmanager_notice("firing", externalURL=alertmanager.base_url)
    target = ALERTMANAGER.target(notice)
    assert target is not None
    emptied = dict(target) | {
        "matchers": [{"name": "team", "value": "", "isRegex": False, "isEqual": True}]
    }
    with pytest.raises(ActionRefused) as refused:
        await ALERTMANAGER.perform(client, Credentials({}), emptied, "silence:1h", ADA)
    assert refused.value.upstream_status == 400
    assert refused.value.message == (
        "silence: HTTP 400 invalid silence: matcher set 0: at least one matcher must not "
        "match the empty string"
    )
    assert alertmanager.silences == {}


async def test_an_outage_or_no_answer_is_unavailable(
    alertmanager: FakeAlertmanager, client: httpx.AsyncClient
) -> None:
    alertmanager.unavailable = True
    with pytest.raises(ActionUnavailable) as down:
        await ALERTMANAGER.perform(
            client, Credentials({}), firing_target(alertmanager), "silence:1h", ADA
        )
    assert down.value.upstream_status == 503
    nobody = {"api_url": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(ActionUnavailable) as unreached:
        await ALERTMANAGER.perform(
            client, Credentials(nobody), firing_target(alertmanager), "silence:1h", ADA
        )
    assert unreached.value.upstream_status is None


async def test_what_is_no_silence_or_has_no_address_calls_nothing(
    alertmanager: FakeAlertmanager, client: httpx.AsyncClient
) -> None:
    with pytest.raises(ActionRefused):
        await ALERTMANAGER.perform(
            client, Credentials({}), firing_target(alertmanager), "resolve", ADA
        )
    addressless = firing_target(alertmanager) | {"external_url": None}
    with pytest.raises(ActionRefused, match="api_url"):
        await ALERTMANAGER.perform(client, Credentials({}), addressless, "silence:1h", ADA)
    assert alertmanager.requests == []


async def test_the_stand_in_checks_a_silence_as_alertmanager_does(
    alertmanager: FakeAlertmanager, client: httpx.AsyncClient
) -> None:
    now = datetime.now(UTC)
    silence = {
        "matchers": FIRING_MATCHERS,
        "startsAt": (now + timedelta(hours=1)).isoformat(),
        "endsAt": now.isoformat(),
        "createdBy": "ada",
        "comment": "c",
    }
    url = alertmanager.base_url + SILENCES
    backwards = await client.post(url, json=silence)
    assert backwards.status_code == 400
    assert backwards.json() == "Failed to create silence: start time must be before end time"
    unnamed = silence | {
        "endsAt": (now + timedelta(hours=2)).isoformat(),
        "matchers": [{"name": "", "value": "x", "isRegex": False}],
    }
    answer = await client.post(url, json=unnamed)
    assert (answer.status_code, answer.json()) == (
        400,
        'invalid silence: invalid label matcher 0 in set 0: invalid label name ""',
    )
    untyped = silence | {"matchers": [{"name": "a", "value": "b"}]}
    answer = await client.post(url, json=untyped)
    assert (answer.status_code, answer.json()["code"]) == (422, 602)
    assert answer.json()["message"] == "matchers.0.isRegex in body is required"
    assert alertmanager.silences == {}


# -- Grafana ------------------------------------------------------------------------------


def grafana_target() -> dict[str, Any]:
    target = GRAFANA.target(grafana_notice("group_firing"))
    assert target is not None
    return dict(target)


async def test_a_grafana_silence_goes_to_its_alertmanager_with_the_service_account(
    grafana: FakeGrafana, client: httpx.AsyncClient
) -> None:
    settings = {"api_url": grafana.base_url, "api_token": GRAFANA_TOKEN}
    outcome = await GRAFANA.perform(
        client, Credentials(settings), grafana_target(), "silence:4h", ADA
    )
    [request] = grafana.requests
    assert (request.method, request.path) == ("POST", GRAFANA_SILENCES)
    assert request.headers["authorization"] == f"Bearer {GRAFANA_TOKEN}"
    assert request.body["matchers"] == grafana_target()["matchers"]
    assert request.body["createdBy"] == "ada@example.com"
    ends = datetime.fromisoformat(request.body["endsAt"])
    assert ends - datetime.fromisoformat(request.body["startsAt"]) == timedelta(hours=4)
    [silence_id] = grafana.silences
    assert outcome.reference == silence_id and outcome.text.startswith("silenced for 4 h")


async def test_grafana_refuses_a_bad_token_and_a_bad_silence_in_its_words(
    grafana: FakeGrafana, client: httpx.AsyncClient
) -> None:
    wrong = {"api_url": grafana.base_url, "api_token": "glsa_revoked"}
    with pytest.raises(LinkRejected) as rejected:
        await GRAFANA.perform(client, Credentials(wrong), grafana_target(), "silence:1h", ADA)
    assert rejected.value.message == "silence: HTTP 401 Invalid API key"
    settings = {"api_url": grafana.base_url, "api_token": GRAFANA_TOKEN}
    regex = grafana_target() | {
        "matchers": [{"name": "job", "value": "(", "isRegex": True, "isEqual": True}]
    }
    with pytest.raises(ActionRefused) as refused:
        await GRAFANA.perform(client, Credentials(settings), regex, "silence:1h", ADA)
    assert refused.value.upstream_status == 400
    assert refused.value.message.startswith(
        "silence: HTTP 400 silence failed validation: invalid silence: invalid label matcher 0 "
        'in set 0: invalid regular expression "("'
    )
    assert grafana.silences == {}
