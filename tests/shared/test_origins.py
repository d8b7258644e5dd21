"""The origins a policy of ours may name: the portal's frame ancestors and its logo's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.kernel.http.origins import frame_ancestors, origin_of_url
from shared.kernel.settings import Settings


def test_frame_ancestors_are_https_origins_loopback_or_self_normalised() -> None:
    assert frame_ancestors("") == ""
    assert (
        frame_ancestors("  https://Chat.Example.com https://chat.example.com:8443\n'self' ")
        == "https://chat.example.com https://chat.example.com:8443 'self'"
    )
    assert frame_ancestors("http://localhost:3000 http://127.0.0.1 http://[::1]:80") == (
        "http://localhost:3000 http://127.0.0.1 http://[::1]:80"
    )
    assert frame_ancestors("https://a.example https://a.example") == "https://a.example"


@pytest.mark.parametrize(
    "value",
    [
        "http://chat.example.com",  # not https, not this machine
        "https://chat.example.com/",  # a path
        "https://chat.example.com/settings",
        "https://*.example.com",  # a wildcard
        "*",
        "https:",
        "chat.example.com",
        "https://chat.example.com:99999",
        "https://chat.example.com:0",
        "https://-chat.example.com",
        "https://user@chat.example.com",
        "https://chat.example.com;script-src",  # a second directive
        "https://chat.example.com,https://other.example",
        "'none'",
        "'unsafe-inline'",
        "self",
        "data:",
    ],
)
def test_anything_else_is_refused_by_name(value: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        frame_ancestors(f"https://fine.example {value}")
    with pytest.raises(ValidationError, match="portal_frame_ancestors"):
        Settings(portal_frame_ancestors=value)


def test_the_edge_refuses_to_start_with_a_bad_value() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "edge", "--port", "1"],
        env={"HOOKHUB_PORTAL_FRAME_ANCESTORS": "https://chat.example.com/settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode != 0
    assert "portal_frame_ancestors" in result.stderr
    assert "is not an origin" in result.stderr


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://cdn.example.com/brand/logo.svg?v=2", "https://cdn.example.com"),
        ("https://CDN.example.com:8443/logo.png", "https://cdn.example.com:8443"),
        ("http://localhost:3000/logo.png", "http://localhost:3000"),
        ("http://cdn.example.com/logo.png", None),
        ("https://user:pass@cdn.example.com/logo.png", None),
        ("https://cdn.example.com/a logo.png", None),
        ('https://cdn.example.com/"logo.png', None),
        ("javascript:alert(1)", None),
        ("data:image/svg+xml,<svg/>", None),
        ("//cdn.example.com/logo.png", None),
        ("/console/favicon.svg", None),
        ("https://cdn.example.com/" + "a" * 2048, None),
        ("https://cdn.exämple.com/logo.png", None),
        ("", None),
    ],
)
def test_a_logo_s_origin(url: str, origin: str | None) -> None:
    assert origin_of_url(url) == origin
