"""deploy/install.py: pip's configuration said to uv, or pip where it cannot be; and what
runs imports only what `make run` installs."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[2]


def _installer() -> ModuleType:
    path = ROOT / "deploy" / "install.py"
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


# What `make run` installs (`pip install ".[embedded]"`): the project's dependencies and the
# embedded stack's, and what they require in turn.
RUN_EXTRAS = ("embedded",)
OURS = {"shared", "services", "bench", "tests", "deploy"}


def _installed_for_run() -> set[str]:
    """The distributions `make run` brings in, by canonical name: the closure of the
    project's run requirements over what each installed one requires."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"]]
    for extra in RUN_EXTRAS:
        wanted += project["optional-dependencies"][extra]
    pending = [(Requirement(text), "") for text in wanted]
    seen: set[str] = set()
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        extras = sorted(requirement.extras)
        if name in seen and not extras:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            pending += [(Requirement(text), wanted_extra) for wanted_extra in ("", *extras)]
    return seen


def _imported(root: Path) -> dict[str, str]:
    """Every top-level module imported below `root` (lazily or not), with one file that
    imports it."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_what_runs_imports_only_what_make_run_installs() -> None:
    """A module `make run` or `make sandbox` imports comes from a distribution that
    `pip install ".[embedded]"` installs: PyJWT came only with the test tools (twilio), so a
    fresh checkout's `make sandbox` died importing the Teams stand-in (issue #61's trial)."""
    installed = _installed_for_run()
    providers = importlib.metadata.packages_distributions()
    missing = []
    for root in ("shared", "services"):
        for module, where in _imported(ROOT / root).items():
            if module in sys.stdlib_module_names or module in OURS or module == "__future__":
                continue
            dists = {canonicalize_name(d) for d in providers.get(module, [])}
            if not dists & installed:
                missing.append(f"{module} ({where}; from {sorted(dists) or 'nothing installed'})")
    assert not missing, "imported but not installed by make run: " + ", ".join(missing)
