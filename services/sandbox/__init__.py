"""The providers' stand-ins (SPEC §2): Slack, Discord, Telegram, GitHub, GitLab, Jira
(Atlassian) and Google, each speaking its provider's wire format on loopback. The tests
drive them directly; `hookhub run --sandbox` serves them seeded, wired to the stack, with
the page at `/sandbox/` and its JSON API (services/sandbox/app.py). `FAKES` is every OAuth
provider's one stand-in, by provider name (Telegram has no OAuth:
services/sandbox/telegram.py). The APIs acted on from the channel (SPEC §20): Alertmanager's
and Grafana's silences, Sentry's issues, PagerDuty's incidents, Opsgenie's alerts, and
GitHub's, GitLab's and Jira's issues. Pub/Sub's REST API, where a destination publishes
(SPEC §21; the tests', where gcloud's emulator is not installed: services/sandbox/pubsub.py)."""

from __future__ import annotations

from services.sandbox.alertmanager import FakeAlertmanager, FakeGrafana
from services.sandbox.atlassian import FakeAtlassian
from services.sandbox.discord import FakeDiscord
from services.sandbox.github import FakeGitHub
from services.sandbox.gitlab import FakeGitLab
from services.sandbox.google import FakeGoogle
from services.sandbox.oauth_server import FakeAuthorizationServer
from services.sandbox.opsgenie import FakeOpsgenie
from services.sandbox.pagerduty import FakePagerDuty
from services.sandbox.sentry import FakeSentry
from services.sandbox.slack import FakeSlack

__all__ = [
    "FAKES",
    "FakeAlertmanager",
    "FakeAtlassian",
    "FakeDiscord",
    "FakeGitHub",
    "FakeGitLab",
    "FakeGoogle",
    "FakeGrafana",
    "FakeOpsgenie",
    "FakePagerDuty",
    "FakeSentry",
    "FakeSlack",
]

FAKES: dict[str, type[FakeAuthorizationServer]] = {
    fake.provider: fake
    for fake in (FakeSlack, FakeDiscord, FakeGitHub, FakeAtlassian, FakeGoogle, FakeGitLab)
}
