"""Settings: production refuses to start without secrets; dev generates and keeps them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.kernel.consumers import heartbeat_ms
from shared.kernel.crypto import SecretBox
from shared.kernel.settings import ConfigurationError, GatewaySettings, Settings


def test_production_refuses_to_start_without_admin_token_and_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOKHUB_ENV", "production")
    monkeypatch.delenv("HOOKHUB_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("HOOKHUB_ENCRYPTION_KEYS", raising=False)
    with pytest.raises(ConfigurationError, match="HOOKHUB_ADMIN_TOKEN, HOOKHUB_ENCRYPTION_KEYS"):
        Settings()
    monkeypatch.setenv("HOOKHUB_ADMIN_TOKEN", "t")
    with pytest.raises(ConfigurationError, match="HOOKHUB_ENCRYPTION_KEYS"):
        Settings()


def test_serve_in_production_without_secrets_exits_with_a_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "serve", "gateway"],
        env={"HOOKHUB_ENV": "production", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 2
    assert "refuses to start without HOOKHUB_ADMIN_TOKEN" in result.stderr


def test_dev_generates_secrets_once_and_keeps_them(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).resolve_dev_secrets()
    second = Settings(data_dir=tmp_path).resolve_dev_secrets()
    assert first.admin_token.startswith("hh_admin_")
    assert first.admin_token == second.admin_token
    assert first.encryption_key_list == second.encryption_key_list
    assert (tmp_path / "admin_token").stat().st_mode & 0o077 == 0, "not readable by others"
    SecretBox(first.encryption_key_list)  # a usable key
    assert "127.0.0.0/8" in first.egress_allow_cidrs


def test_an_earlier_runs_secrets_are_tightened(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    (data_dir / "admin_token").write_text("hh_admin_earlier\n")
    (data_dir / "admin_token").chmod(0o644)
    settings = Settings(data_dir=data_dir).resolve_dev_secrets()
    assert settings.admin_token == "hh_admin_earlier"
    assert (data_dir / "admin_token").stat().st_mode & 0o777 == 0o600
    assert (data_dir / "encryption_key").stat().st_mode & 0o777 == 0o600
    Settings(data_dir=tmp_path / "fresh").resolve_dev_secrets()
    assert (tmp_path / "fresh").stat().st_mode & 0o077 == 0


def test_explicit_values_win_over_generated_ones(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, admin_token="mine").resolve_dev_secrets()
    assert settings.admin_token == "mine"
    assert not (tmp_path / "admin_token").exists()


def test_environment_prefix_and_per_service_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKHUB_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("HOOKHUB_INCOMING_MAX_BODY_BYTES", "2048")
    settings = GatewaySettings()
    assert settings.kafka_bootstrap == "k1:9092,k2:9092"
    assert settings.incoming_max_body_bytes == 2048
    assert settings.port_for("gateway") == 8081
    assert Settings(topic_namespace="t1").topic("hookhub.chat.events") == "t1.hookhub.chat.events"
    assert Settings().topic("hookhub.chat.events") == "hookhub.chat.events"


def test_the_consumer_session_timeout_and_its_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().kafka_session_timeout_ms == 10_000  # Kafka's own default
    assert heartbeat_ms(Settings()) == 3_000
    monkeypatch.setenv("HOOKHUB_KAFKA_SESSION_TIMEOUT_MS", "6000")
    assert heartbeat_ms(Settings()) == 2_000
    monkeypatch.setenv("HOOKHUB_KAFKA_SESSION_TIMEOUT_MS", "500")
    with pytest.raises(ValidationError):
        Settings()


def test_the_public_url_follows_the_http_port_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOKHUB_PUBLIC_URL", raising=False)
    monkeypatch.delenv("HOOKHUB_HTTP_PORT", raising=False)
    assert Settings().public_url == "http://127.0.0.1:8080"
    monkeypatch.setenv("HOOKHUB_HTTP_PORT", "28080")
    assert Settings().public_url == "http://127.0.0.1:28080"
    assert GatewaySettings().public_url == "http://127.0.0.1:28080"
    monkeypatch.setenv("HOOKHUB_PUBLIC_URL", "https://hooks.example.com")
    assert Settings().public_url == "https://hooks.example.com"


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("30d", 30 * 86_400),
        ("12h", 43_200),
        ("15m", 900),
        ("90s", 90),
        ("3600", 3600),
        ("1d12h", 129_600),
        ("2w", 1_209_600),
    ],
)
def test_the_delivery_retention_is_a_duration(given: str, seconds: int) -> None:
    assert Settings(delivery_retention=given).delivery_retention.total_seconds() == seconds


def test_the_delivery_retention_defaults_to_30_days_and_is_never_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().delivery_retention.days == 30
    monkeypatch.setenv("HOOKHUB_DELIVERY_RETENTION", "7d")
    assert Settings().delivery_retention.days == 7
    for refused in ("0d", "-1h", "3x", "d", ""):
        with pytest.raises(ValidationError, match="delivery_retention"):
            Settings(delivery_retention=refused)
