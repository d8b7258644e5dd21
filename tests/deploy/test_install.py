"""deploy/install.py: pip's configuration said to uv, or pip where it cannot be."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest


def _installer() -> ModuleType:
    path = Path(__file__).parents[2] / "deploy" / "install.py"
    spec = importlib.util.spec_from_file_location("hookhub_install", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


install = _installer()


def test_pip_s_sources_are_said_to_uv_as_its_own_options() -> None:
    # As `pip config list` printed it on this project's CI machines.
    config = {
        "cert": "/etc/ssl/certs/ca-certificates.crt",
        "default-timeout": "180",
        "disable-pip-version-check": "1",
        "find-links": "/opt/wheels",
        "constraint": "/etc/xdg/pip/constraints.txt",
        "extra-index-url": "file:///opt/pypi/simple file:///opt/pypi-more/simple",
    }
    options, env = install.uv_arguments(config)
    assert options == [
        "--find-links",
        "/opt/wheels",
        "--constraint",
        "/etc/xdg/pip/constraints.txt",
        "--extra-index-url",
        "file:///opt/pypi/simple",
        "--extra-index-url",
        "file:///opt/pypi-more/simple",
    ]
    assert env == {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt", "UV_HTTP_TIMEOUT": "180"}


@pytest.mark.parametrize("key", ["trusted-host", "client-cert", "no-binary", "pre"])
def test_a_setting_uv_cannot_be_told_leaves_it_to_pip(key: str) -> None:
    assert install.uv_arguments({"find-links": "/opt/wheels", key: "x"}) is None


def test_a_variable_wins_over_the_file_as_in_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = (
        "global.index-url='https://a.example/simple'\n:env:.index-url='https://b.example/simple'\n"
    )

    class Done:
        stdout = listed

    monkeypatch.setattr(install.subprocess, "run", lambda *a, **k: Done())
    # pip's printout given (make asks the real pip): its last word on a setting is kept.
    assert install.pip_config() == {"index-url": "https://b.example/simple"}
