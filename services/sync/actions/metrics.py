"""The actions' Prometheus metrics (names in docs/operations.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from shared.kernel.metrics import LATENCY_BUCKETS


class ActionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.actions = Counter(
            "hookhub_actions",
            "Action requests, by provider, action and outcome (created, replayed, refused, "
            "rate_limited, unavailable, not_connected, in_progress, key_reused, unsupported)",
            ["provider", "action", "outcome"],
            registry=registry,
        )
        self.link_asks = Counter(
            "hookhub_link_asks",
            "Asks to link an account for a click, by provider, who clicked (chat, or the "
            "network) and how the ask was said (private: to them alone; public: in the "
            "thread, naming no secret, where the network let hookhub say nothing privately)",
            ["provider", "clicked_in", "said"],
            registry=registry,
        )
        self.provider_seconds = Histogram(
            "hookhub_action_provider_seconds",
            "Time the provider took to answer an action's call, by provider, action and outcome",
            ["provider", "action", "outcome"],
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
