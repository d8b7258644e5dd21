"""Benchmark "github": verified GitHub webhooks accepted per second by one gateway.

One `hookhub serve gateway` process and a GitHub integration (created through the oauth
service, which is then stopped). The body is the 7.3 KB `push` payload of the real corpus,
signed with X-Hub-Signature-256; every request carries its own X-GitHub-Delivery, so each
is verified, parsed, checked against the dedupe window and published to
`hookhub.provider.events` (acks=all). The baseline gets the same bytes on the same path; so
does the minimal correct gateway (`bench/minimal.py`), checking X-Hub-Signature-256.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from pathlib import Path

from bench import minimal
from bench.harness import (
    BenchError,
    BenchmarkResult,
    Harness,
    Measurement,
    Server,
    create_integration,
    kafka_check,
    post_once,
)
from bench.incoming import watching
from bench.loadgen import SEQ, Target
from shared.kernel.embedded import ChildProcess
from shared.kernel.envelopes import Topic

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus" / "github" / "push"
PAYLOAD = CORPUS / "payload.json"


class GitHubWebhooks:
    name = "github"
    title = "verified GitHub webhooks"

    def run(self, harness: Harness) -> BenchmarkResult:
        if not PAYLOAD.exists():
            raise BenchError(f"the GitHub push payload is not at {PAYLOAD}")
        body = PAYLOAD.read_bytes()
        secret = uuid.uuid4().hex
        infrastructure = harness.infrastructure()
        oauth = harness.start_service("oauth")
        integration_id = github_integration(oauth.url, infrastructure.admin_token, secret)
        oauth.stop()
        gateway = harness.start_service("gateway")
        headers = signed_headers(body, "push", SEQ.decode(), secret)
        ours = measure(harness, gateway, integration_id, body, headers)
        notes = [
            f"body: the {len(body):,}-byte corpus push payload, "
            "a new X-GitHub-Delivery per request",
            kafka_check(infrastructure, Topic.PROVIDER_EVENTS, ours.ok),
        ]
        gateway.stop()
        path = f"/api/webhooks/github/{integration_id}"
        floor, floor_notes = minimal.measure(
            harness,
            "github",
            Target(gateway.url + path, body, headers),
            minimal.github_scheme(secret),
            Topic.PROVIDER_EVENTS,
            ours,
        )
        baseline = harness.baseline()
        base = harness.load(
            "baseline (bare FastAPI)",
            Target(baseline.url + path, body, headers),
            watch=[("baseline", baseline.child)],
        )
        return BenchmarkResult(
            self.name, self.title, ours, base, [*notes, *floor_notes], minimal=floor
        )


def measure(
    harness: Harness,
    gateway: Server,
    integration_id: str,
    body: bytes,
    headers: dict[str, str],
    label: str = "hookhub gateway",
    more: Sequence[tuple[str, ChildProcess]] = (),
) -> Measurement:
    """The run's load of signed `body` on the integration's webhook URL of a running
    gateway, once one was accepted (as `bench.incoming.measure`)."""
    url = f"{gateway.url}/api/webhooks/github/{integration_id}"
    post_once(Target(url, body, headers))
    return harness.load(label, Target(url, body, headers), watch=watching(harness, gateway, more))


def signed_headers(body: bytes, event: str, delivery: str, secret: str) -> dict[str, str]:
    """A GitHub webhook's headers for `body`, signed with the integration's secret."""
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256="
        + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


def github_integration(
    oauth_url: str, admin_token: str, secret: str, workspace_id: str = "ws_bench"
) -> str:
    """A GitHub integration whose webhooks are signed with `secret`; its id."""
    settings = {"webhook_secret": secret}
    return create_integration(oauth_url, admin_token, "github", workspace_id, settings)


BENCHMARK = GitHubWebhooks()
