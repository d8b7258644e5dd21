"""Every provider of the catalog through a real gateway and oauth service, onto a real broker.

For each provider whose webhooks are `Declared`: an integration made through
`POST /api/integrations` with the entry's example settings, its documented sample signed
for that integration's `webhook_url` accepted and published once per event, the same
request again acknowledged and not published, a forgery (another secret) refused, an
unknown integration a 404; and each handshake probe answered for an integration only. The
providers are read from `CATALOG` at collection: one added under shared/providers/ is
covered with no change here (SPEC §15).

One gateway, one oauth service and one tap on `hookhub.provider.events` for the module;
what was published is read up to the topic's end once a test's requests are answered (a
2xx comes after the broker's ack), never waited for with a timer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from services.oauth.app import definition as oauth_definition
from shared.domain.platform import create_app
from shared.kernel.envelopes import Topic
from shared.kernel.ids import utcnow
from shared.kernel.settings import GatewaySettings, ServiceSettings
from shared.providers.base import InboundRequest
from shared.providers.catalog import CATALOG, Entry, Probe, Sample
from shared.providers.declared import Declared
from tests.support import KafkaTap, RunningService, admin_headers, refreshed, serve

DECLARED = [e for e in CATALOG.values() if isinstance(e.webhooks, Declared)]
PROBED = [e for e in DECLARED if e.handshake_probe is not None]
UNKNOWN = "int_0000000000000000000000"  # an id no integration has
_PLACEHOLDER = "http://hookhub.test/api/webhooks/{provider}/" + UNKNOWN


def _ids(entries: list[Entry]) -> list[str]:
    return [e.provider for e in entries]


def _probe(entry: Entry, settings: Mapping[str, str], url: str, now: datetime) -> Probe:
    assert entry.handshake_probe is not None
    return entry.handshake_probe(settings, url, now)


def handed_over(entry: Entry) -> tuple[dict[str, str], dict[str, str]] | None:
    """For a provider whose handshake hands settings over: the settings its integration is
    made with, and those its probe is made for. Either the probe hands over what the
    settings hold (the integration is made without it), or it brings a value of its own to
    an integration holding none of its optional secrets. None: it hands nothing over."""
    settings = entry.examples()
    url = _PLACEHOLDER.format(provider=entry.provider)
    now = datetime.now(UTC)
    stores = _probe(entry, settings, url, now).stores
    if stores:
        return {k: v for k, v in settings.items() if k not in stores}, settings
    optional = {s.name for s in entry.settings if s.secret and not s.required}
    bare = {k: v for k, v in settings.items() if k not in optional}
    return (bare, bare) if _probe(entry, bare, url, now).stores else None


# Providers whose handshake hands settings over (kept sealed, once): found from each
# probe, so the providers merged later that store something are covered by name.
STORING = [e for e in PROBED if handed_over(e) is not None]


class Tap(KafkaTap):
    """The module's one tap: `caught_up` reads every partition to the end offsets of the
    moment it is called, which hold whatever a request answered before it published."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.records = []
        # The broker holds a fetch of an idle partition this long: short, so reading up to
        # the end costs a round trip, not half a second.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
        )

    async def caught_up(self) -> list[dict[str, Any]]:
        consumer = self._consumer
        partitions = sorted(consumer.assignment(), key=lambda p: p.partition)
        ends = await consumer.end_offsets(partitions)
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            await self.poll(0.2)
        return self.values()


@pytest.fixture(scope="module")
async def oauth(gateway_settings: GatewaySettings) -> AsyncIterator[RunningService]:
    settings = ServiceSettings.model_validate(gateway_settings.model_dump())
    async with serve(create_app(oauth_definition(), settings)) as running:
        yield running


@pytest.fixture(scope="module")
async def published(
    gateway: RunningService, gateway_settings: GatewaySettings
) -> AsyncIterator[Tap]:
    tap = Tap(gateway_settings.kafka_bootstrap, gateway_settings.topic(Topic.PROVIDER_EVENTS))
    async with tap:
        yield tap


async def create(
    oauth: RunningService, entry: Entry, settings: Mapping[str, str], **fields: Any
) -> dict[str, Any]:
    """An integration of `entry` made through the API, as a user makes one: 201, its
    webhook URL, the secrets sealed (named, never shown), the other settings as `config`."""
    answer = await oauth.client.post(
        "/api/integrations",
        json={
            "provider": entry.provider,
            "workspace_id": "ws_catalog",
            "settings": dict(settings),
            **fields,
        },
        headers=admin_headers(),
    )
    assert answer.status_code == 201, answer.text
    doc: dict[str, Any] = answer.json()
    assert doc["webhook_url"] == f"http://hookhub.test/api/webhooks/{entry.provider}/{doc['id']}"
    for name, value in settings.items():
        setting = entry.setting(name)
        assert setting is not None, f"{name} is not a setting of {entry.provider}"
        assert name in doc["settings_configured"], (name, doc["settings_configured"])
        if setting.secret:
            assert name not in doc["config"], f"secret {name} shown in config"
            assert value not in answer.text or len(value) < 8, f"secret {name} returned"
        else:
            assert doc["config"][name] == value, (name, doc["config"])
    return doc


def path_of(url: str, query: Mapping[str, str] | None = None) -> str:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    if query:
        path += ("&" if parts.query else "?") + urlencode(query)
    return path


def expected_events(
    entry: Entry, doc: Mapping[str, Any], url: str, body: bytes, headers: Mapping[str, str]
) -> list[Any]:
    """(event_type, delivery_id) of each event the signed sample carries, as the provider's
    own parse finds them for this integration (its `config`) at `url`: what the envelopes
    say."""
    assert isinstance(entry.webhooks, Declared)
    parsed = entry.webhooks.parse(
        InboundRequest(
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
            received_at=utcnow(),
            query=dict(httpx.URL(url).params),
            url=url,
            config=doc["config"],
        )
    )
    return sorted((e.event_type, e.delivery_id) for e in (parsed.events or (parsed,)))


def error_code(answer: httpx.Response) -> str | None:
    """The error's code; None for a HEAD, whose answer has no body."""
    if answer.request.method == "HEAD":
        return None
    return str(answer.json()["error"]["code"])


@pytest.mark.parametrize("entry", DECLARED, ids=_ids(DECLARED))
async def test_the_documented_sample_is_published_once_a_forgery_never(
    entry: Entry, gateway: RunningService, oauth: RunningService, published: Tap
) -> None:
    settings = entry.examples()
    doc = await create(oauth, entry, settings)
    url = entry.sender_url(settings, doc["webhook_url"])
    body, headers = entry.signed_sample(settings, url, utcnow())
    expected = expected_events(entry, doc, url, body, headers)

    first = await gateway.client.post(path_of(url), content=body, headers=headers)
    assert first.status_code == 200, first.text
    again = await gateway.client.post(path_of(url), content=body, headers=headers)
    assert again.status_code == 200, again.text
    other = entry.examples()
    elsewhere = entry.sender_url(other, doc["webhook_url"])
    forged_body, forged_headers = entry.signed_sample(other, elsewhere, utcnow())
    forged = await gateway.client.post(
        path_of(elsewhere), content=forged_body, headers=forged_headers
    )
    assert forged.status_code == 401, forged.text
    assert error_code(forged) == "invalid_signature"
    unknown = f"/api/webhooks/{entry.provider}/{UNKNOWN}"
    stranger = await gateway.client.post(unknown, content=body, headers=headers)
    assert stranger.status_code == 404, stranger.text
    assert error_code(stranger) == "unknown_integration"

    envelopes = [v for v in await published.caught_up() if v["integration_id"] == doc["id"]]
    assert sorted((v["event_type"], v["delivery_id"]) for v in envelopes) == expected
    assert {(v["provider"], v["workspace_id"]) for v in envelopes} == {
        (entry.provider, "ws_catalog")
    }


@pytest.mark.parametrize("entry", DECLARED, ids=_ids(DECLARED))
async def test_a_method_that_is_no_handshake_of_the_provider_is_a_405_with_allow(
    entry: Entry, gateway: RunningService
) -> None:
    assert isinstance(entry.webhooks, Declared)
    allowed = ", ".join(("POST", *entry.webhooks.handshake_methods))
    refused = [m for m in ("GET", "HEAD") if m not in entry.webhooks.handshake_methods]
    for method in refused:
        answer = await gateway.client.request(method, f"/api/webhooks/{entry.provider}/{UNKNOWN}")
        assert answer.status_code == 405, (method, answer.text)
        assert answer.headers["allow"] == allowed, method


async def send(gateway: RunningService, url: str, probe: Probe) -> httpx.Response:
    return await gateway.client.request(
        probe.method,
        path_of(url, probe.query),
        content=probe.body,
        headers=dict(probe.headers),
    )


def check_answer(answer: httpx.Response, probe: Probe) -> None:
    assert answer.status_code == probe.status, answer.text
    if probe.answer is not None:
        assert answer.content == probe.answer, answer.content
    for name, value in probe.answer_headers.items():
        got = answer.headers.get(name)
        assert got is not None, f"no {name} in the answer: {dict(answer.headers)}"
        if name.lower() == "content-type" and ";" not in value:
            got = got.split(";")[0].strip()  # text/plain; charset=utf-8 is text/plain
        assert got.lower() == value.lower(), (name, got)


@pytest.mark.parametrize("entry", PROBED, ids=_ids(PROBED))
async def test_the_handshake_is_answered_for_an_enabled_integration_only(
    entry: Entry, gateway: RunningService, oauth: RunningService
) -> None:
    settings = entry.examples()
    now = utcnow()
    stores = _probe(entry, settings, _PLACEHOLDER.format(provider=entry.provider), now).stores
    # What the handshake hands over is not known before it: the integration is made
    # without it, as a user makes one.
    given = {k: v for k, v in settings.items() if k not in stores}
    doc = await create(oauth, entry, given)
    probe = _probe(entry, settings, doc["webhook_url"], now)
    check_answer(await send(gateway, doc["webhook_url"], probe), probe)
    if stores:
        shown = await oauth.client.get(f"/api/integrations/{doc['id']}", headers=admin_headers())
        assert set(stores) <= set(shown.json()["settings_configured"]), shown.json()
        assert not set(stores) & set(shown.json()["config"]), "kept sealed"
        # The sample signed with what was handed over is accepted at once.
        url = entry.sender_url(settings, doc["webhook_url"])
        body, headers = entry.signed_sample(settings, url, utcnow())
        accepted = await gateway.client.post(path_of(url), content=body, headers=headers)
        assert accepted.status_code == 200, accepted.text

    unknown = _PLACEHOLDER.format(provider=entry.provider)
    stranger = await send(gateway, unknown, _probe(entry, settings, unknown, now))
    assert stranger.status_code == 404, stranger.text
    assert error_code(stranger) in ("unknown_integration", None)
    off = await create(oauth, entry, given, enabled=False)
    disabled = await send(
        gateway, off["webhook_url"], _probe(entry, settings, off["webhook_url"], now)
    )
    assert disabled.status_code == 403, disabled.text
    assert error_code(disabled) in ("integration_disabled", None)


@pytest.mark.parametrize("entry", STORING, ids=_ids(STORING))
async def test_a_handshake_hands_its_settings_over_once(
    entry: Entry, gateway: RunningService, oauth: RunningService
) -> None:
    """What a handshake hands over is kept sealed; a second handshake cannot replace it:
    409 `handshake_refused`, and the integration still verifies with the first."""
    found = handed_over(entry)
    assert found is not None
    given, settings = found
    doc = await create(oauth, entry, given)
    url = doc["webhook_url"]
    probe = _probe(entry, settings, url, utcnow())
    check_answer(await send(gateway, url, probe), probe)
    shown = await oauth.client.get(f"/api/integrations/{doc['id']}", headers=admin_headers())
    assert set(probe.stores) <= set(shown.json()["settings_configured"]), shown.json()
    assert not set(probe.stores) & set(shown.json()["config"]), "kept sealed"
    again = await send(gateway, url, _probe(entry, settings, url, utcnow()))
    assert again.status_code == 409, again.text
    assert error_code(again) == "handshake_refused"
    assert "null" in again.json()["error"]["message"], "it says how to clear the setting"
    if set(probe.stores) <= set(settings):  # the values handed over are the settings'
        sent_to = entry.sender_url(settings, url)
        body, headers = entry.signed_sample(settings, sent_to, utcnow())
        kept = await gateway.client.post(path_of(sent_to), content=body, headers=headers)
        assert kept.status_code == 200, kept.text
    # The operator clears what was handed over: the provider's next handshake is taken.
    cleared = await oauth.client.patch(
        f"/api/integrations/{doc['id']}",
        json={"settings": dict.fromkeys(probe.stores)},
        headers=admin_headers(),
    )
    assert cleared.status_code == 200, cleared.text
    assert not set(probe.stores) & set(cleared.json()["settings_configured"])
    await refreshed(cast(Any, gateway.app).state.integration_cache)
    retaken = await send(gateway, url, _probe(entry, settings, url, utcnow()))
    check_answer(retaken, probe)


# A lone UTF-16 surrogate, as JSON escapes it: the standard library's parser takes it, no
# UTF-8 encoder writes it again (orjson, BSON, every consumer of the envelope).
LONE = "\ud800"


def _json_sample(entry: Entry) -> bool:
    """Whether the entry's sample is a JSON body a test can change and still sign: not
    Google's (Calendar's notifications have no body), not Mailgun's (its signing reads the
    body it signs, and refuses the changed one as the gateway does)."""
    if entry.sample is None or hasattr(getattr(entry.webhooks, "scheme", None), "signed_body"):
        return False
    try:
        return isinstance(json.loads(entry.sample.body(entry.provider)), dict | list)
    except ValueError:
        return False


JSON_SAMPLES = [e for e in DECLARED if _json_sample(e)]


def with_value(entry: Entry, path: tuple[str | int, ...], value: str) -> Sample:
    """The entry's documented sample with `value` at `path` of its JSON body (added there
    when absent), written as `json.dumps` does, escaping a surrogate: the probe's body."""
    sample = entry.sample
    assert sample is not None
    stamped = sample.stamped

    def changed(body: bytes, now: datetime) -> bytes:
        document = json.loads(stamped(body, now) if stamped is not None else body)
        # A body that is an array of events (SendGrid's, HubSpot's): its first one.
        parent = document[0] if isinstance(document, list) else document
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = value
        return json.dumps(document, separators=(",", ":")).encode()

    return dataclasses.replace(sample, stamped=changed)


# Microsoft Graph authenticates a notification by the clientState inside it: a body that
# cannot be read has none to check (401), like any request whose signature cannot match.
REFUSED_AS = {"microsoft": (401, "invalid_signature")}


def assert_refused(entry: Entry, answer: httpx.Response) -> None:
    status, code = REFUSED_AS.get(entry.provider, (400, "malformed_webhook"))
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert "surrogate" in answer.json()["error"]["message"]


async def post_sample(
    gateway: RunningService, oauth: RunningService, entry: Entry, sample: Sample
) -> tuple[dict[str, Any], httpx.Response]:
    """`sample` signed as the provider signs it, for a new integration of `entry`."""
    settings = entry.examples()
    doc = await create(oauth, entry, settings)
    url = entry.sender_url(settings, doc["webhook_url"])
    body, headers = entry.signed_sample(settings, url, utcnow(), sample)
    return doc, await gateway.client.post(path_of(url), content=body, headers=headers)


@pytest.mark.parametrize("entry", JSON_SAMPLES, ids=_ids(JSON_SAMPLES))
async def test_a_lone_surrogate_only_in_the_payload_is_a_400_and_publishes_nothing(
    entry: Entry, gateway: RunningService, oauth: RunningService, published: Tap
) -> None:
    """Answered 200, such an envelope was dead-lettered by sync and delivery as undecodable:
    a 2xx for an event that was lost. Refused before any 2xx instead."""
    doc, answer = await post_sample(gateway, oauth, entry, with_value(entry, ("probe",), LONE))
    assert_refused(entry, answer)
    assert not [v for v in await published.caught_up() if v["integration_id"] == doc["id"]]


# Where each provider names its event (and Stripe its id) in the body, per its declaration:
# the probe's `{"id": "evt_ls1", "type": "\ud800"}` and the like, on the documented samples.
NAMED_BY_A_SURROGATE: dict[str, list[tuple[str | int, ...]]] = {
    "stripe": [("type",), ("id",)],
    "standard_webhooks": [("type",)],
    "pagerduty": [("event", "event_type")],
    "zoom": [("event",)],
    "meta": [("object",)],
    "microsoft": [("value", 0, "changeType"), ("value", 0, "id")],
}


@pytest.mark.parametrize(
    ("provider", "path"),
    [(p, path) for p, paths in NAMED_BY_A_SURROGATE.items() for path in paths],
    ids=[
        f"{p}-{'.'.join(map(str, path))}"
        for p, paths in NAMED_BY_A_SURROGATE.items()
        for path in paths
    ],
)
async def test_a_lone_surrogate_as_the_event_name_or_id_is_a_400_not_a_500(
    provider: str,
    path: tuple[str | int, ...],
    gateway: RunningService,
    oauth: RunningService,
    published: Tap,
) -> None:
    entry = CATALOG[provider]
    doc, answer = await post_sample(gateway, oauth, entry, with_value(entry, path, LONE))
    assert_refused(entry, answer)
    assert not [v for v in await published.caught_up() if v["integration_id"] == doc["id"]]
    # A surrogate pair is one character (😀): taken as it is.
    _, paired = await post_sample(
        gateway, oauth, entry, with_value(entry, ("probe",), "\U0001f600")
    )
    assert paired.status_code == 200, paired.text


async def test_twilio_checks_the_signature_before_the_form(
    gateway: RunningService, oauth: RunningService, published: Tap
) -> None:
    """Twilio signs the URL and the form's parameters, so the form is read to verify: junk
    that is no UTF-8 form, under a made-up signature, was a 400 `malformed_webhook` and
    recorded as malformed. Nothing is malformed before it is known to be Twilio's: 401."""
    entry = CATALOG["twilio"]
    doc = await create(oauth, entry, entry.examples())
    form = {"content-type": "application/x-www-form-urlencoded"}
    for headers in (form, {**form, "x-twilio-signature": "c2lnbmVk"}):
        answer = await gateway.client.post(
            path_of(doc["webhook_url"]), content=b"Body=caf%E9&%FF", headers=headers
        )
        assert answer.status_code == 401, answer.text
        assert error_code(answer) == "invalid_signature"
    await cast(Any, gateway.app).state.provider_ingress.writer.written()
    shown = await oauth.client.get(f"/api/integrations/{doc['id']}", headers=admin_headers())
    assert shown.json()["last_webhook_error"]["code"] == "invalid_signature"
    assert not [v for v in await published.caught_up() if v["integration_id"] == doc["id"]]


def notifications(entry: Entry, count: int) -> Sample:
    """Graph's documented notification, `count` times in one body, each with its own id."""
    sample = entry.sample
    assert sample is not None

    def repeated(body: bytes, now: datetime) -> bytes:
        document = json.loads(body)
        [item] = document["value"]
        document["value"] = [{**item, "id": f"{item['id']}-{n}"} for n in range(count)]
        return json.dumps(document, separators=(",", ":")).encode()

    return dataclasses.replace(sample, stamped=repeated)


async def test_a_split_body_is_published_in_one_batch_and_answered_for_all_of_it(
    gateway: RunningService, oauth: RunningService, published: Tap
) -> None:
    """One Graph POST of 5,000 notifications, on an integration allowed one request a
    second, was published an envelope at a time: it outlasted the edge's wait, a 504 after
    3,904 were published. The events are handed to Kafka together: one publish, and the
    2xx covers every one of them."""
    entry = CATALOG["microsoft"]
    count = 1000
    settings = entry.examples()
    doc = await create(oauth, entry, settings, rate_limit_per_second=1)
    body, headers = entry.signed_sample(
        settings, doc["webhook_url"], utcnow(), notifications(entry, count)
    )
    registry = cast(Any, gateway.app).state.runtime.registry
    labels = {"topic": str(Topic.PROVIDER_EVENTS)}

    def publishes() -> float:
        return registry.get_sample_value("hookhub_kafka_publish_seconds_count", labels) or 0.0

    before = publishes()
    answer = await gateway.client.post(path_of(doc["webhook_url"]), content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert publishes() - before == 1
    envelopes = [v for v in await published.caught_up() if v["integration_id"] == doc["id"]]
    assert sorted(v["delivery_id"] for v in envelopes) == sorted(
        f"lsgTZMr9KwAAA-{n}" for n in range(count)
    )
    # Each carries its own notification, not the body (which each once carried whole).
    assert all(v["payload"]["id"] == v["delivery_id"] for v in envelopes)
    # The same body again: every event a duplicate, nothing published, still a 200.
    again = await gateway.client.post(path_of(doc["webhook_url"]), content=body, headers=headers)
    assert again.status_code == 200, again.text
    assert publishes() - before == 1


@pytest.mark.parametrize("challenge", ["\u0661\u0662\u0663", "\uff11\uff12\uff13", "12\u00b3"])
async def test_metas_handshake_echoes_ascii_digits_only(
    challenge: str, gateway: RunningService, oauth: RunningService
) -> None:
    """`str.isdigit` took Arabic-Indic (`١٢٣`), full-width and superscript digits for Meta's
    "int"."""
    entry = CATALOG["meta"]
    settings = entry.examples()
    doc = await create(oauth, entry, settings)
    probe = dataclasses.replace(
        _probe(entry, settings, doc["webhook_url"], utcnow()),
        query={
            "hub.mode": "subscribe",
            "hub.challenge": challenge,
            "hub.verify_token": settings["verify_token"],
        },
    )
    answer = await send(gateway, doc["webhook_url"], probe)
    assert answer.status_code == 400, answer.text
    assert challenge not in answer.text
