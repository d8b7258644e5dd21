"""docker-compose.yml, deploy/ (Kubernetes) and the Dockerfile agree with the code.

No Docker engine or cluster is needed: the files are read as data and checked against
`SERVICE_PORTS`, the settings model and the edge's route table, and docker-compose.yml is
validated against the Compose specification's JSON schema.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from services.edge import ROUTES
from shared.settings import SERVICE_PORTS, ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
NAMESPACE = "hookhub"
EDGE_PORT = 8080
SERVICES = sorted(SERVICE_PORTS)
# Settings a service reads besides the `Settings` fields: provider app credentials (SPEC §3).
PROVIDER_SETTING = re.compile(
    r"^HOOKHUB_(SLACK|DISCORD|GITHUB|JIRA|GOOGLE|TELEGRAM)_[A-Z_]+$",
)
KNOWN_SETTINGS = {f"HOOKHUB_{name.upper()}" for name in ServiceSettings.model_fields} | {
    "HOOKHUB_HOST",  # services/cli.py
}


# -- loading ------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def compose_services() -> dict[str, dict[str, Any]]:
    services = load_compose()["services"]
    assert isinstance(services, dict)
    return services


def manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


def load_manifests(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def applied_manifests() -> list[dict[str, Any]]:
    """Every resource `kubectl apply -k deploy/` creates (the Secret template excluded)."""
    docs = []
    for name in load_kustomization()["resources"]:
        docs.extend(load_manifests(DEPLOY / name))
    return docs


def load_kustomization() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


def resources(kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for doc in applied_manifests():
        if doc["kind"] == kind:
            name = doc["metadata"]["name"]
            assert name not in found, f"two {kind} resources named {name}"
            found[name] = doc
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: one container expected"
    first: dict[str, Any] = containers[0]
    return first


def deployment_running(args_prefix: list[str]) -> Iterator[dict[str, Any]]:
    for deployment in resources("Deployment").values():
        if container(deployment).get("args", [])[: len(args_prefix)] == args_prefix:
            yield deployment


def named_port(deployment: dict[str, Any], port: int | str) -> int:
    """Resolves a probe's or Service's target port (a number or a container port name)."""
    if isinstance(port, int):
        return port
    for item in container(deployment).get("ports", []):
        if item.get("name") == port:
            number: int = item["containerPort"]
            return number
    raise AssertionError(f"{deployment['metadata']['name']} has no container port named {port}")


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def environment_of(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    assert isinstance(env, dict)
    return env


def compose_service_running(name: str) -> tuple[str, dict[str, Any]]:
    matches = [
        (key, svc)
        for key, svc in compose_services().items()
        if command_of(svc)[:2] == ["serve", name]
    ]
    assert len(matches) == 1, f"expected one compose service running `serve {name}`: {matches}"
    return matches[0]


def healthcheck_command(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return test
    assert test[0] in ("CMD", "CMD-SHELL"), test
    return " ".join(test[1:])


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# -- docker compose -----------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    if not checker.exists():
        pytest.fail(f"{checker} is missing: install the dev dependencies (pip install -e .[dev])")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", SERVICES)
def test_compose_runs_each_service_from_the_one_image(name: str) -> None:
    key, service = compose_service_running(name)
    assert command_of(service) == ["serve", name, "--host", "0.0.0.0"]
    build = service.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    assert context in (".", "./"), f"{key} must be built from the repository's Dockerfile"
    # A fixed host port would make `docker compose up --scale <service>=N` fail: only the
    # edge publishes a port.
    assert not service.get("ports"), f"{key} publishes ports; only the edge should"


@pytest.mark.parametrize("name", SERVICES)
def test_compose_healthcheck_probes_the_service_readiness(name: str) -> None:
    key, service = compose_service_running(name)
    assert "healthcheck" in service, f"{key} has no healthcheck"
    assert not service["healthcheck"].get("disable", False)
    command = healthcheck_command(service)
    assert f"http://127.0.0.1:{SERVICE_PORTS[name]}/readyz" in command
    assert "curl" not in command and "wget" not in command, "the image has neither"


def test_every_compose_service_has_a_healthcheck() -> None:
    for key, service in compose_services().items():
        assert "healthcheck" in service, f"{key} has no healthcheck"
        assert healthcheck_command(service).strip(), f"{key}: empty healthcheck"


def test_compose_dependencies_wait_for_health() -> None:
    services = compose_services()
    gateway_key, _ = compose_service_running("gateway")
    for name in SERVICES:
        key, service = compose_service_running(name)
        depends = service.get("depends_on")
        assert isinstance(depends, dict), f"{key}: depends_on must name conditions"
        needed = {"kafka", "mongo"} | ({gateway_key} if name != "gateway" else set())
        assert needed <= set(depends), f"{key} must wait for {sorted(needed - set(depends))}"
        for target, rule in depends.items():
            assert target in services, f"{key} depends on unknown service {target}"
            assert rule.get("condition") == "service_healthy", f"{key} -> {target}"
            assert "healthcheck" in services[target], f"{key} waits on {target}: no healthcheck"


def test_compose_wires_services_to_kafka_and_mongo() -> None:
    services = compose_services()
    kafka_env = environment_of(services["kafka"])
    assert "PLAINTEXT://kafka:9092" in str(kafka_env["KAFKA_ADVERTISED_LISTENERS"]).split(",")
    assert "broker" in str(kafka_env["KAFKA_PROCESS_ROLES"])
    assert "controller" in str(kafka_env["KAFKA_PROCESS_ROLES"])
    assert str(kafka_env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == "1"
    assert services["mongo"]["image"].startswith("mongo:")
    for name in SERVICES:
        key, service = compose_service_running(name)
        env = environment_of(service)
        assert env["HOOKHUB_KAFKA_BOOTSTRAP"] == "kafka:9092", key
        assert urlsplit(env["HOOKHUB_MONGO_URI"]).hostname == "mongo", key
        assert str(env["HOOKHUB_KAFKA_REPLICATION_FACTOR"]) == "1", "one broker, one replica"
        assert env["HOOKHUB_ENV"] in ("dev", "${HOOKHUB_ENV:-dev}"), "dev unless told otherwise"
        for variable in env:
            assert variable in KNOWN_SETTINGS or PROVIDER_SETTING.match(variable), (
                f"{key}: {variable} is not a hookhub setting"
            )


def test_compose_services_share_one_data_dir() -> None:
    volumes = set()
    for name in SERVICES:
        key, service = compose_service_running(name)
        data_dir = environment_of(service)["HOOKHUB_DATA_DIR"]
        mounts = {
            target: source
            for source, _, target in (str(m).partition(":") for m in service.get("volumes", []))
        }
        assert data_dir in mounts, f"{key}: nothing mounted at HOOKHUB_DATA_DIR {data_dir}"
        volumes.add(mounts[data_dir])
    assert len(volumes) == 1, f"the services must share one data volume, not {volumes}"
    assert volumes.pop() in load_compose()["volumes"], "the data volume must be a named volume"


def test_compose_edge_routes_to_every_service() -> None:
    services = compose_services()
    edges = [(k, s) for k, s in services.items() if command_of(s)[:1] == ["edge"]]
    assert len(edges) == 1, "expected one compose service running `edge`"
    edge = edges[0][1]
    assert f"{EDGE_PORT}:{EDGE_PORT}" in [str(p) for p in edge.get("ports", [])]
    env = environment_of(edge)
    for name, port in SERVICE_PORTS.items():
        url = urlsplit(env[f"HOOKHUB_{name.upper()}_URL"])
        target_key, _ = compose_service_running(name)
        assert (url.scheme, url.hostname, url.port) == ("http", target_key, port), name
        assert edge["depends_on"][target_key]["condition"] == "service_healthy"


# -- Kubernetes -----------------------------------------------------------------------------


def test_every_manifest_is_namespaced_and_labelled() -> None:
    for path in manifest_files():
        docs = load_manifests(path)
        assert docs, f"{path.name} is empty"
        for doc in docs:
            meta = doc["metadata"]
            where = f"{path.name}: {doc['kind']}/{meta['name']}"
            if doc["kind"] != "Namespace":
                assert meta.get("namespace") == NAMESPACE, where
            assert meta.get("labels", {}).get("app.kubernetes.io/name") == "hookhub", where


def test_kustomization_lists_existing_files_and_leaves_out_the_secret() -> None:
    kustomization = load_kustomization()
    assert kustomization.get("namespace") == NAMESPACE
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    for name in listed:
        assert (DEPLOY / name).is_file(), f"kustomization lists missing {name}"
    assert "secret.example.yaml" not in listed, "the Secret template must not be applied"
    unlisted = {p.name for p in manifest_files()} - set(listed) - {"secret.example.yaml"}
    assert not unlisted, f"manifests not in kustomization.yaml: {sorted(unlisted)}"
    kinds = {doc["kind"] for doc in applied_manifests()}
    assert "Secret" not in kinds


@pytest.mark.parametrize("name", SERVICES)
def test_k8s_deployment_per_service(name: str) -> None:
    deployments = list(deployment_running(["serve", name]))
    assert len(deployments) == 1, f"expected one Deployment running `serve {name}`"
    deployment = deployments[0]
    main = container(deployment)
    assert main["args"] == ["serve", name, "--host", "0.0.0.0"]
    ports = [p["containerPort"] for p in main["ports"]]
    assert ports == [SERVICE_PORTS[name]]

    readiness = main["readinessProbe"]["httpGet"]
    liveness = main["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz"
    assert liveness["path"] == "/healthz"
    assert named_port(deployment, readiness["port"]) == SERVICE_PORTS[name]
    assert named_port(deployment, liveness["port"]) == SERVICE_PORTS[name]

    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == SERVICE_PORTS[name]

    sources = {
        ref["configMapRef"]["name"] if "configMapRef" in ref else ref["secretRef"]["name"]
        for ref in main["envFrom"]
    }
    assert sources == {"hookhub-config", "hookhub-secrets"}


@pytest.mark.parametrize("name", SERVICES)
def test_k8s_service_exposes_the_service_port(name: str) -> None:
    (deployment,) = deployment_running(["serve", name])
    service = resources("Service")[name]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(service["spec"]["selector"], pod_labels)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (port,) = service["spec"]["ports"]
    assert port["port"] == SERVICE_PORTS[name]
    assert named_port(deployment, port["targetPort"]) == SERVICE_PORTS[name]


def test_k8s_labels_are_consistent() -> None:
    for name, deployment in resources("Deployment").items():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["app.kubernetes.io/name"] == "hookhub"
        assert pod_labels["app.kubernetes.io/component"] == name
        assert deployment["metadata"]["labels"]["app.kubernetes.io/component"] == name
        assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    # No two deployments' selectors may overlap.
    selectors = [d["spec"]["selector"]["matchLabels"] for d in resources("Deployment").values()]
    for i, a in enumerate(selectors):
        for b in selectors[i + 1 :]:
            assert not (selects(a, b) or selects(b, a)), (a, b)


def test_k8s_pods_are_hardened_and_bounded() -> None:
    dockerfile_user = re.search(r"^USER\s+(\d+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert dockerfile_user, "the Dockerfile must switch to a numeric non-root user"
    for name, deployment in resources("Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == int(dockerfile_user.group(1)), name
        main = container(deployment)
        security = main["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be an emptyDir"
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(main["resources"][bound]), f"{name} {bound}"
        assert main["image"].split(":")[0] == "hookhub", name


def test_k8s_edge_routes_to_every_service() -> None:
    (edge,) = deployment_running(["edge"])
    main = container(edge)
    assert main["args"] == ["edge"]
    assert [p["containerPort"] for p in main["ports"]] == [EDGE_PORT]
    env = {item["name"]: item["value"] for item in main["env"]}
    services = resources("Service")
    for name, port in SERVICE_PORTS.items():
        url = urlsplit(env[f"HOOKHUB_{name.upper()}_URL"])
        assert url.scheme == "http"
        assert url.port == port, name
        host = (url.hostname or "").split(".")
        assert host[0] == name, url
        assert host[1:] in (
            [],
            [NAMESPACE],
            [NAMESPACE, "svc"],
            [NAMESPACE, "svc", "cluster", "local"],
        )
        service = services[host[0]]
        assert port in [p["port"] for p in service["spec"]["ports"]]
        (target,) = deployment_running(["serve", name])
        assert selects(
            service["spec"]["selector"], target["spec"]["template"]["metadata"]["labels"]
        )
    # The route table only names services the edge knows how to reach.
    assert {owner for _, owner in ROUTES} <= set(SERVICE_PORTS)


def test_ingress_sends_everything_to_the_edge() -> None:
    ingresses = resources("Ingress")
    assert ingresses, "no Ingress"
    edge_service = resources("Service")["edge"]
    (edge,) = deployment_running(["edge"])
    assert selects(edge_service["spec"]["selector"], edge["spec"]["template"]["metadata"]["labels"])
    edge_ports = {p.get("name"): p["port"] for p in edge_service["spec"]["ports"]}
    for ingress in ingresses.values():
        spec = ingress["spec"]
        backends = [spec["defaultBackend"]] if "defaultBackend" in spec else []
        paths = [path for rule in spec["rules"] for path in rule["http"]["paths"]]
        assert any(p["path"] == "/" and p["pathType"] == "Prefix" for p in paths)
        backends += [path["backend"] for path in paths]
        for backend in backends:
            assert backend["service"]["name"] == "edge"
            port = backend["service"]["port"]
            number = port["number"] if "number" in port else edge_ports[port["name"]]
            assert number in edge_ports.values()
            target = next(p for p in edge_service["spec"]["ports"] if p["port"] == number)
            assert named_port(edge, target["targetPort"]) == EDGE_PORT


def test_hpas_target_gateway_and_delivery() -> None:
    hpas = resources("HorizontalPodAutoscaler")
    deployments = resources("Deployment")
    targets = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in hpas.values()}
    assert {"gateway", "delivery"} <= targets
    partitions = int(resources("ConfigMap")["hookhub-config"]["data"]["HOOKHUB_KAFKA_PARTITIONS"])
    for hpa in hpas.values():
        ref = hpa["spec"]["scaleTargetRef"]
        assert ref["kind"] == "Deployment" and ref["name"] in deployments
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        # Replicas past the partition count would receive no partitions.
        assert hpa["spec"]["maxReplicas"] <= partitions, ref["name"]
        # An applied `replicas` would fight the autoscaler on every `kubectl apply`.
        assert "replicas" not in deployments[ref["name"]]["spec"], ref["name"]


def test_every_deployment_has_a_disruption_budget() -> None:
    budgets = resources("PodDisruptionBudget").values()
    for name, deployment in resources("Deployment").items():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], pod_labels)]
        assert len(matching) == 1, f"{name}: {len(matching)} PodDisruptionBudgets"


def test_configmap_and_secret_hold_known_settings() -> None:
    config = resources("ConfigMap")["hookhub-config"]["data"]
    assert config["HOOKHUB_ENV"] == "production"
    for key in ("HOOKHUB_KAFKA_BOOTSTRAP", "HOOKHUB_MONGO_URI", "HOOKHUB_PUBLIC_URL"):
        assert config.get(key), key
    assert int(config["HOOKHUB_KAFKA_REPLICATION_FACTOR"]) >= 1
    for key in config:
        assert key in KNOWN_SETTINGS, f"{key} is not a hookhub setting"
    assert "HOOKHUB_ADMIN_TOKEN" not in config and "HOOKHUB_ENCRYPTION_KEYS" not in config

    (secret,) = load_manifests(DEPLOY / "secret.example.yaml")
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "hookhub-secrets"
    assert {"HOOKHUB_ADMIN_TOKEN", "HOOKHUB_ENCRYPTION_KEYS"} <= set(secret["stringData"])


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds() -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl
    result = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert len(built) == len(applied_manifests())
    assert all(doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE for doc in built)


# -- image ----------------------------------------------------------------------------------


def test_dockerfile_is_one_non_root_image_for_every_command() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim|^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    assert re.search(r'^ENTRYPOINT \["hookhub"\]$', text, re.MULTILINE)
    assert re.search(r"pip install \.(\s|$)", text), "the project is installed non-editable"
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")
