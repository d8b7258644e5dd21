"""`make`'s installer: the project with its extras into the virtualenv, by uv where it can
be told all that pip's configuration says, else by pip (docs/development.md).

    .venv/bin/python deploy/install.py '.[embedded]'

uv resolves and downloads in parallel: the project and its `embedded` extra installed in
under 30 s on a 2-core machine where pip took 75 s, most of a fresh `make run`. uv reads
no pip configuration, so pip's (`pip config list`: pip.conf and the `PIP_*` variables)
is passed on as uv's options: `index-url`, `extra-index-url`, `find-links` and
`constraint` as themselves (every index's versions weighed together, as pip does: uv's
`--index-strategy unsafe-best-match`), `cert` as `SSL_CERT_FILE`, `default-timeout` as
`UV_HTTP_TIMEOUT`. Any other setting (`trusted-host`, `client-cert`, …), uv failing to
install or to finish, or `HOOKHUB_PIP=1`: pip installs, as configured.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# pip settings that change nothing of what is installed, or from where.
_QUIET = {"disable-pip-version-check", "no-cache-dir", "progress-bar", "quiet", "verbose"}
_QUIET |= {"root-user-action", "no-input", "no-color", "timeout"}


def pip_config() -> dict[str, str]:
    """pip's settings by name, as `pip config list` prints them (`global.find-links='…'`,
    `:env:.find-links='…'`); a variable's after the file's, so it wins, as in pip."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, str] = {}
    for line in listed.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            found[name.rpartition(".")[2]] = value.strip().strip("'\"")
    return found


def uv_arguments(config: dict[str, str]) -> tuple[list[str], dict[str, str]] | None:
    """uv's options and variables saying what `config` says, or None where uv cannot."""
    options: list[str] = []
    env: dict[str, str] = {}
    for key, value in config.items():
        if key in ("index-url", "extra-index-url", "find-links", "constraint"):
            for each in value.split():
                options += [f"--{key}", each]
        elif key == "cert":
            env["SSL_CERT_FILE"] = value
        elif key == "default-timeout":
            env["UV_HTTP_TIMEOUT"] = value
        elif key not in _QUIET:
            return None
    return options, env


def by_uv(requirement: str) -> bool:
    """Whether uv installed `requirement` (False: it could not, pip is to)."""
    if os.environ.get("HOOKHUB_PIP") == "1":
        return False
    config = pip_config()
    translated = uv_arguments(config)
    if translated is None:
        return False
    options, env = translated
    got = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "uv"], check=False)
    uv = Path(sys.executable).parent / "uv"
    if got.returncode != 0 or not uv.exists():
        return False
    # pip takes the best version across all its indexes; uv, by default, the first index's.
    command = [str(uv), "pip", "install", "--quiet", "--python", sys.executable]
    command += ["--index-strategy", "unsafe-best-match", "--compile-bytecode", *options]
    # The command is this script's own: the requirement is make's, the options pip's config.
    done = subprocess.run(  # noqa: S603
        [*command, "-e", requirement], env={**os.environ, **env}, check=False
    )
    return done.returncode == 0


def main() -> int:
    requirement = sys.argv[1]
    if by_uv(requirement):
        return 0
    print("installing with pip (docs/development.md)", file=sys.stderr)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "-e", requirement]
    return subprocess.run(pip, check=False).returncode  # noqa: S603


if __name__ == "__main__":
    sys.exit(main())
