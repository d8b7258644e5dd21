"""Benchmark "github": verified GitHub webhooks accepted per second by one gateway.

One `hookhub serve gateway` process and a GitHub integration (created through the oauth
service, which is then stopped). The body is the 7.3 KB `push` payload of the real corpus,
signed with X-Hub-Signature-256; every request carries its own X-GitHub-Delivery, so each
is verified, parsed, checked against the dedupe window and published to
`hookhub.provider.events` (acks=all). The baseline gets the same bytes on the same path.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench.harness import BenchError, BenchmarkResult, Harness, create_integration
from bench.incoming import kafka_check
from bench.loadgen import SEQ, Target
from shared.envelopes import Topic

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
        url = f"{gateway.url}/api/webhooks/github/{integration_id}"
        headers = signed_headers(body, "push", SEQ.decode(), secret)
        _post_once(url, body, headers)
        ours = harness.load(
            "hookhub gateway",
            Target(url, body, headers),
            watch=[
                ("gateway", gateway.child),
                ("kafka", infrastructure.broker),
                ("mongo", infrastructure.mongo),
            ],
        )
        notes = [
            f"body: the {len(body):,}-byte corpus push payload, "
            "a new X-GitHub-Delivery per request",
            kafka_check(infrastructure, Topic.PROVIDER_EVENTS, ours.ok),
        ]
        gateway.stop()
        baseline = harness.baseline()
        base = harness.load(
            "baseline (bare FastAPI)",
            Target(baseline.url + urlsplit(url).path, body, headers),
            watch=[("baseline", baseline.child)],
        )
        return BenchmarkResult(self.name, self.title, ours, base, notes)


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


def _post_once(url: str, body: bytes, headers: dict[str, str]) -> None:
    once = {**headers, "X-GitHub-Delivery": str(uuid.uuid4())}
    response = httpx.post(url, content=body, headers=once, timeout=10)
    if response.status_code != 200:
        raise BenchError(
            f"a single webhook was not accepted: {response.status_code} {response.text}"
        )


BENCHMARK = GitHubWebhooks()
