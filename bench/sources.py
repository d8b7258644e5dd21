"""Benchmark "sources": verified webhooks of catalog providers per second by one gateway.

Two tables, each against bare FastAPI answering the same requests in the same run and
against a minimal correct gateway (`bench/minimal.py`) checking the same signature:

- **Stripe**: the sample `setup_intent.created` event of the catalog, each request with its
  own event `id` (the delivery id Stripe retries with) and so its own `Stripe-Signature`,
  made by the client as Stripe makes it (`t=<now>,v1=` HMAC-SHA256 of `{t}.{body}`).
- **generic hmac**: the generic source configured as a typical sender signs
  (`X-Signature: sha256=<hex>` of the body, the event name in `X-Event-Type`, the delivery
  id in `X-Delivery-Id`, a new one per request).

Every request is verified, parsed, checked against the dedupe window and published to
`hookhub.provider.events` (acks=all), as in the `github` benchmark.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from bench import minimal
from bench.harness import (
    BenchError,
    BenchmarkResult,
    Harness,
    create_integration,
    kafka_check,
    post_once,
)
from bench.loadgen import SEQ, Target
from shared.kernel.envelopes import Topic
from shared.providers.catalog import CATALOG


class CatalogSources:
    name = "sources"
    title = "verified Stripe and generic-hmac webhooks"

    def run(self, harness: Harness) -> list[BenchmarkResult]:
        infrastructure = harness.infrastructure()
        oauth = harness.start_service("oauth")
        stripe_secret = "whsec_" + secrets.token_urlsafe(24)
        hmac_secret = secrets.token_hex(32)
        schemes = {
            "stripe": minimal.stripe_scheme(stripe_secret),
            "hmac": minimal.hmac_scheme(hmac_secret, "X-Signature", "sha256="),
        }
        stripe_id = create_integration(
            oauth.url,
            infrastructure.admin_token,
            "stripe",
            "ws_bench",
            {"signing_secret": stripe_secret},
        )
        hmac_id = create_integration(
            oauth.url,
            infrastructure.admin_token,
            "hmac",
            "ws_bench",
            {
                "secret": hmac_secret,
                "header": "X-Signature",
                "prefix": "sha256=",
                "event_header": "X-Event-Type",
                "id_header": "X-Delivery-Id",
            },
        )
        oauth.stop()
        gateway = harness.start_service("gateway")
        stripe_target = _stripe_target(
            f"{gateway.url}/api/webhooks/stripe/{stripe_id}", stripe_secret
        )
        hmac_target = _hmac_target(f"{gateway.url}/api/webhooks/hmac/{hmac_id}", hmac_secret)
        watch = [
            ("gateway", gateway.child),
            ("kafka", infrastructure.broker),
            ("mongo", infrastructure.mongo),
        ]
        ours = {}
        for label, target in (("stripe", stripe_target), ("hmac", hmac_target)):
            post_once(target)
            ours[label] = harness.load(f"hookhub gateway ({label})", target, watch=watch)
        published = ours["stripe"].ok + ours["hmac"].ok
        check = kafka_check(infrastructure, Topic.PROVIDER_EVENTS, published)
        gateway.stop()
        floors = {
            label: minimal.measure(
                harness, label, target, schemes[label], Topic.PROVIDER_EVENTS, ours[label]
            )
            for label, target in (("stripe", stripe_target), ("hmac", hmac_target))
        }
        baseline = harness.baseline()
        results = []
        for label, target, what in (
            ("stripe", stripe_target, "Stripe's sample event, its own id and signature each"),
            (
                "hmac",
                hmac_target,
                "a 90-byte JSON event, X-Signature sha256=<hex>, its own X-Delivery-Id each",
            ),
        ):
            base_target = Target(
                baseline.url + urlsplit(target.url).path,
                target.body,
                target.headers,
                signer=target.signer,
            )
            base = harness.load(
                f"baseline (bare FastAPI, {label})",
                base_target,
                watch=[("baseline", baseline.child)],
            )
            floor, floor_notes = floors[label]
            results.append(
                BenchmarkResult(
                    f"sources-{label}",
                    f"verified {'Stripe' if label == 'stripe' else 'generic-hmac'} webhooks",
                    ours[label],
                    base,
                    [f"body: {what}", check, *floor_notes],
                    minimal=floor,
                )
            )
        return results


def _stripe_target(url: str, secret: str) -> Target:
    entry = CATALOG["stripe"]
    assert entry.sample is not None
    body = entry.sample.body("stripe").replace(
        b'"evt_1NG8Du2eZvKYlo2CUI79vXWy"', b'"evt_' + SEQ + b'"'
    )
    if SEQ not in body:
        raise BenchError("the Stripe sample's event id was not found to vary")
    return Target(url, body, {"Content-Type": "application/json"}, signer=f"stripe:{secret}")


def _hmac_target(url: str, secret: str) -> Target:
    body = b'{"type": "order.created", "data": {"order": {"id": 1001, "total": "12.50"}}}'
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Signature": signature,
        "X-Event-Type": "order.created",
        "X-Delivery-Id": SEQ.decode(),
    }
    return Target(url, body, headers)


BENCHMARK = CatalogSources()
