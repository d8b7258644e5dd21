"""The Grafana dashboard and the Prometheus alert rules in deploy/monitoring: valid, and
every metric they query is one the services really export."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from services.cli import SERVICES, load_definition
from shared.domain.platform import create_app

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RULES = MONITORING / "alerts.yaml"
# The kubelet's (cAdvisor) metrics the saturation panels read; everything else is ours.
KUBERNETES_METRICS = {"container_cpu_usage_seconds_total", "container_memory_working_set_bytes"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
}
# PromQL words that look like metric names.
PROMQL = {
    "sum", "max", "min", "avg", "by", "without", "rate", "increase", "delta", "and", "or",
    "unless", "histogram_quantile", "max_over_time", "offset",
}  # fmt: skip
# A Prometheus rules file (what promtool checks, as a schema where promtool is missing).
RULES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["groups"],
    "additionalProperties": False,
    "properties": {
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "rules"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "interval": {"type": "string"},
                    "rules": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["alert", "expr", "labels", "annotations"],
                            "additionalProperties": False,
                            "properties": {
                                "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                                "expr": {"type": "string", "minLength": 1},
                                "for": {"type": "string", "pattern": "^[0-9]+[smhd]$"},
                                "labels": {
                                    "type": "object",
                                    "required": ["severity"],
                                    "properties": {
                                        "severity": {"enum": ["info", "warning", "critical"]}
                                    },
                                },
                                "annotations": {
                                    "type": "object",
                                    "required": ["summary", "description"],
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


@functools.cache
def exported() -> frozenset[str]:
    """Every series name the services' registries can export."""
    names: set[str] = set()
    for service in SERVICES:
        definition = load_definition(service)
        with tempfile.TemporaryDirectory() as data_dir:
            app = create_app(definition, definition.settings_class(data_dir=Path(data_dir)))
        for family in app.state.runtime.registry.collect():
            names.add(family.name)
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
            names.update(sample.name for sample in family.samples)
    return frozenset(names)


def metric_names(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_strings = re.sub(r'"[^"]*"', "", without_labels)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    without_grouping = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_ranges
    )
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_grouping))
    return {w for w in words if w not in PROMQL and not w.isdigit()}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_the_metric_names_are_checked_against_something() -> None:
    assert {"hookhub_http_requests_total", "hookhub_kafka_consumer_lag"} <= exported()
    assert "hookhub_no_such_metric" not in exported()
    assert metric_names('sum by (group) (rate(hookhub_x_total{a="b"}[5m])) > 0') == {
        "hookhub_x_total"
    }


def test_every_dashboard_query_uses_metrics_the_code_exports() -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    for expr in exprs:
        unknown = metric_names(expr) - exported() - KUBERNETES_METRICS
        assert not unknown, f"{expr}: {sorted(unknown)} not exported by any service"


def test_the_dashboard_covers_each_signal() -> None:
    used = {name for expr in dashboard_exprs() for name in metric_names(expr)}
    for name in (
        "hookhub_http_requests_total",
        "hookhub_http_request_duration_seconds_bucket",
        "hookhub_gateway_webhooks_total",
        "hookhub_delivery_attempts_total",
        "hookhub_delivery_attempt_seconds_bucket",
        "hookhub_kafka_consumer_lag",
        "hookhub_sync_queue_depth",
        "hookhub_sync_provider_rate_limited_total",
        "hookhub_notification_batch_seconds_bucket",
        "hookhub_import_jobs",
        "hookhub_import_messages_total",
    ):
        assert name in used, name
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and dashboard["title"]


def test_every_rule_uses_metrics_the_code_exports() -> None:
    for rule in rules():
        unknown = metric_names(rule["expr"]) - exported()
        assert not unknown, f"{rule['alert']}: {sorted(unknown)} not exported by any service"


def test_the_alerts_asked_for_are_there() -> None:
    alerts = {rule["alert"] for rule in rules()}
    assert {
        "HookhubConsumerLagGrowing",
        "HookhubDeadLettersRising",
        "HookhubEndpointAutoDisabled",
        "HookhubIntegrationInError",
        "HookhubDiscordGatewayDown",
    } <= alerts


def test_rules_file_matches_the_rules_schema() -> None:
    data = yaml.safe_load(RULES.read_text())
    jsonschema.validate(data, RULES_SCHEMA)
    broken = {"groups": [{"name": "x", "rules": [{"alert": "A", "expr": "up", "labels": {}}]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, RULES_SCHEMA)


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (Debian's prometheus package; .ci/run installs it)",
)
def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: sum(\n")
    result = subprocess.run(
        [promtool, "check", "rules", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
