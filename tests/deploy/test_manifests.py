"""docker-compose.yml, the Helm chart (deploy/chart) and the Dockerfile agree with the code.

No Docker engine or cluster is needed: the chart is rendered with `helm template` for each
overlay, every rendered object is validated against the Kubernetes API's schemas
(kubernetes-validate) and the ScaledObjects against KEDA's CRD schema (vendored in
schemas/), and the result is checked against `SERVICE_PORTS`, the settings model, the
services' Kafka subscribers and the edge's route table. docker-compose.yml is validated
against the Compose specification's JSON schema.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services.edge import ROUTES
from shared.settings import SERVICE_PORTS, ServiceSettings
from tests.support import consumed

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "chart"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMAS = Path(__file__).parent / "schemas"
NAMESPACE = "hookhub"
EDGE_PORT = 8080
SERVICES = sorted(SERVICE_PORTS)
# The chart's values alone, and with each overlay.
OVERLAYS = {
    "default": [],
    "dev": [CHART / "values-dev.yaml"],
    "production": [CHART / "values-production.yaml"],
}
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a recent one.
KUBERNETES_VERSIONS = ("1.27", "1.32")
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


def tool(name: str) -> str:
    """helm or kubectl, installed next to the venv's Python by `make test` (deploy/tools.py)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{path} is missing: `make test` puts it there (deploy/tools.py)")
    return str(path)


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """Every object `helm install` would create with this overlay, hooks included."""
    command = [tool("helm"), "template", "hookhub", str(CHART), "--namespace", NAMESPACE]
    for values in OVERLAYS[overlay]:
        command += ["--values", str(values)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def values(overlay: str) -> dict[str, Any]:
    """The chart's values as helm merges them for an overlay (maps merged, the rest replaced)."""

    def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(base)
        for key, value in top.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
        return out

    merged: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in OVERLAYS[overlay]:
        merged = merge(merged, yaml.safe_load(path.read_text()))
    return merged


def resources(kind: str, overlay: str = "production") -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for doc in render(overlay):
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


def deployment_running(args_prefix: list[str], overlay: str = "production") -> list[dict[str, Any]]:
    return [
        deployment
        for deployment in resources("Deployment", overlay).values()
        if container(deployment).get("args", [])[: len(args_prefix)] == args_prefix
    ]


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


# -- Kubernetes: the chart -----------------------------------------------------------------

ALL_OVERLAYS = pytest.mark.parametrize("overlay", sorted(OVERLAYS))
# The ScaledObject's schema, from KEDA's CRD (schemas/keda-scaledobject.json says how).
KEDA_SCHEMA = json.loads((SCHEMAS / "keda-scaledobject.json").read_text())


def schema_errors(doc: dict[str, Any], version: str) -> list[str]:
    """What is wrong with one rendered object, by the API's schemas (strict: unknown
    fields count) or, for a ScaledObject, KEDA's."""
    if doc["kind"] == "ScaledObject":
        validator = jsonschema.Draft7Validator(KEDA_SCHEMA)
        return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{list(exc.path)}: {exc.message}"]
    return []


@ALL_OVERLAYS
def test_helm_lint_passes(overlay: str) -> None:
    command = [tool("helm"), "lint", "--strict", str(CHART)]
    for path in OVERLAYS[overlay]:
        command += ["--values", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@ALL_OVERLAYS
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_matches_its_schema(overlay: str, version: str) -> None:
    docs = render(overlay)
    assert {"Deployment", "Service", "ScaledObject", "Job", "ConfigMap"} <= {
        d["kind"] for d in docs
    }
    for doc in docs:
        errors = schema_errors(doc, version)
        assert not errors, f"{doc['kind']}/{doc['metadata']['name']}: {errors}"


def test_the_schema_checks_catch_mistakes() -> None:
    """The checks above can fail: a misspelt field, a number where KEDA takes a string."""
    deployment = copy.deepcopy(resources("Deployment")["gateway"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    assert schema_errors(deployment, KUBERNETES_VERSIONS[-1])
    scaled = copy.deepcopy(resources("ScaledObject")["delivery"])
    assert not schema_errors(scaled, KUBERNETES_VERSIONS[-1])
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 1000
    assert schema_errors(scaled, KUBERNETES_VERSIONS[-1])
    scaled = copy.deepcopy(resources("ScaledObject")["delivery"])
    scaled["spec"]["cooldownperiod"] = 300
    assert schema_errors(scaled, KUBERNETES_VERSIONS[-1])


@ALL_OVERLAYS
def test_every_object_is_namespaced_and_labelled(overlay: str) -> None:
    for doc in render(overlay):
        meta = doc["metadata"]
        where = f"{doc['kind']}/{meta['name']}"
        if doc["kind"] != "Namespace":
            assert meta.get("namespace") == NAMESPACE, where
        assert meta.get("labels", {}).get("app.kubernetes.io/name") == "hookhub", where


@ALL_OVERLAYS
def test_the_chart_never_renders_the_secret(overlay: str) -> None:
    assert not resources("Secret", overlay), "the Secret is made by the operator"
    secret_name = values(overlay)["secretName"]
    for deployment in deployment_running(["serve"], overlay):
        refs = [
            r["secretRef"]["name"] for r in container(deployment)["envFrom"] if "secretRef" in r
        ]
        assert refs == [secret_name]


def test_every_service_has_its_values_entry() -> None:
    services = values("default")["services"]
    assert sorted(services) == SERVICES
    for name, entry in services.items():
        assert entry["port"] == SERVICE_PORTS[name], name
    assert values("default")["edge"]["port"] == EDGE_PORT


@ALL_OVERLAYS
@pytest.mark.parametrize("name", SERVICES)
def test_k8s_deployment_per_service(overlay: str, name: str) -> None:
    deployments = deployment_running(["serve", name], overlay)
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


@ALL_OVERLAYS
@pytest.mark.parametrize("name", SERVICES)
def test_k8s_service_exposes_the_service_port(overlay: str, name: str) -> None:
    (deployment,) = deployment_running(["serve", name], overlay)
    service = resources("Service", overlay)[name]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(service["spec"]["selector"], pod_labels)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (port,) = service["spec"]["ports"]
    assert port["port"] == SERVICE_PORTS[name]
    assert named_port(deployment, port["targetPort"]) == SERVICE_PORTS[name]


@ALL_OVERLAYS
def test_k8s_labels_are_consistent(overlay: str) -> None:
    deployments = resources("Deployment", overlay)
    for name, deployment in deployments.items():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["app.kubernetes.io/name"] == "hookhub"
        assert pod_labels["app.kubernetes.io/component"] == name
        assert deployment["metadata"]["labels"]["app.kubernetes.io/component"] == name
        assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    # No two deployments' selectors may overlap.
    selectors = [d["spec"]["selector"]["matchLabels"] for d in deployments.values()]
    for i, a in enumerate(selectors):
        for b in selectors[i + 1 :]:
            assert not (selects(a, b) or selects(b, a)), (a, b)


@ALL_OVERLAYS
def test_k8s_pods_are_hardened_and_bounded(overlay: str) -> None:
    dockerfile_user = re.search(r"^USER\s+(\d+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert dockerfile_user, "the Dockerfile must switch to a numeric non-root user"
    pods = {name: d["spec"]["template"] for name, d in resources("Deployment", overlay).items()}
    pods.update({name: j["spec"]["template"] for name, j in resources("Job", overlay).items()})
    for name, template in pods.items():
        pod = template["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == int(dockerfile_user.group(1)), name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        (main,) = pod["containers"]
        security = main["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(main["resources"][bound]), f"{name} {bound}"
        assert main["image"].split(":")[0] == "hookhub", name
    for name, deployment in resources("Deployment", overlay).items():
        pod = deployment["spec"]["template"]["spec"]
        mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be an emptyDir"


@ALL_OVERLAYS
def test_the_grace_period_outlasts_the_bounded_stop(overlay: str) -> None:
    """Kubernetes waits out preStop and then the stop (HOOKHUB_SHUTDOWN_SECONDS) before it
    sends SIGKILL: a replica scaled down hands its leases and deliveries back first."""
    config = resources("ConfigMap", overlay)["hookhub-config"]["data"]
    bound = float(config["HOOKHUB_SHUTDOWN_SECONDS"])
    for name, deployment in resources("Deployment", overlay).items():
        pod = deployment["spec"]["template"]["spec"]
        pre_stop = container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep", name
        assert pod["terminationGracePeriodSeconds"] >= float(pre_stop[1]) + bound + 5, name


@ALL_OVERLAYS
def test_k8s_edge_routes_to_every_service(overlay: str) -> None:
    (edge,) = deployment_running(["edge"], overlay)
    main = container(edge)
    assert main["args"] == ["edge"]
    assert [p["containerPort"] for p in main["ports"]] == [EDGE_PORT]
    assert main["readinessProbe"]["httpGet"]["path"] == "/healthz"
    env = {item["name"]: item["value"] for item in main["env"]}
    services = resources("Service", overlay)
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
        (target,) = deployment_running(["serve", name], overlay)
        assert selects(
            service["spec"]["selector"], target["spec"]["template"]["metadata"]["labels"]
        )
    # The route table only names services the edge knows how to reach, and the sandbox
    # (`hookhub run --sandbox`, dev only: never deployed; without it, its paths are 404s).
    assert {owner for _, owner in ROUTES} <= {*SERVICE_PORTS, "sandbox"}


@ALL_OVERLAYS
def test_ingress_sends_everything_to_the_edge(overlay: str) -> None:
    ingresses = resources("Ingress", overlay)
    assert ingresses, "no Ingress"
    edge_service = resources("Service", overlay)["edge"]
    (edge,) = deployment_running(["edge"], overlay)
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


@ALL_OVERLAYS
def test_consumers_scale_on_the_lag_of_what_they_consume(overlay: str) -> None:
    """Every service with Kafka subscribers has a ScaledObject with one Kafka trigger per
    (consumer group, topic) its code subscribes, and nothing else; at most one replica
    per partition."""
    scaled = resources("ScaledObject", overlay)
    partitions = int(
        resources("ConfigMap", overlay)["hookhub-config"]["data"]["HOOKHUB_KAFKA_PARTITIONS"]
    )
    consumers = {name for name in SERVICES if consumed(name)}
    assert {"delivery", "sync"} <= consumers
    for name in consumers:
        assert name in scaled, f"{name} consumes Kafka and has no ScaledObject"
        spec = scaled[name]["spec"]
        kafka = [t for t in spec["triggers"] if t["type"] == "kafka"]
        pairs = {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in kafka}
        assert pairs == consumed(name), name
        for trigger in kafka:
            meta = trigger["metadata"]
            assert (
                meta["bootstrapServers"]
                == (
                    resources("ConfigMap", overlay)["hookhub-config"]["data"][
                        "HOOKHUB_KAFKA_BOOTSTRAP"
                    ]
                )
            )
            assert int(meta["lagThreshold"]) > 0
            assert meta["allowIdleConsumers"] == "false"
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions, name
        assert spec["cooldownPeriod"] > 0
        window = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
        assert window["stabilizationWindowSeconds"] > 0
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert name not in resources("HorizontalPodAutoscaler", overlay), f"{name}: two scalers"
        assert "replicas" not in resources("Deployment", overlay)[name]["spec"], name
    for name, item in scaled.items():
        if name not in consumers:
            assert not [t for t in item["spec"]["triggers"] if t["type"] == "kafka"], name


def test_partitions_bound_the_consumers_replicas() -> None:
    """A max above the partition count renders as the partition count."""
    command = [tool("helm"), "template", "hookhub", str(CHART), "--namespace", NAMESPACE]
    command += ["--set", "kafka.partitions=4", "--set", "services.delivery.scaling.max=40"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    (delivery,) = [
        d for d in docs if d["kind"] == "ScaledObject" and d["metadata"]["name"] == "delivery"
    ]
    assert delivery["spec"]["maxReplicaCount"] == 4


def test_the_importer_scales_on_its_job_queue() -> None:
    from services.importer import jobs

    (trigger,) = resources("ScaledObject")["importer"]["spec"]["triggers"]
    assert trigger["type"] == "mongodb"
    meta = trigger["metadata"]
    assert meta["collection"] == jobs.COLLECTION
    assert json.loads(meta["query"]) == {"status": {"$in": list(jobs.ACTIVE)}}
    # The URI comes from the Deployment's environment (hookhub-config or the Secret).
    assert meta["connectionStringFromEnv"] == "HOOKHUB_MONGO_URI"


@ALL_OVERLAYS
def test_request_services_scale_on_cpu_or_stay_fixed(overlay: str) -> None:
    hpas = resources("HorizontalPodAutoscaler", overlay)
    deployments = resources("Deployment", overlay)
    assert "gateway" in hpas
    for name, hpa in hpas.items():
        assert not consumed(name) if name in SERVICE_PORTS else True
        ref = hpa["spec"]["scaleTargetRef"]
        assert ref["kind"] == "Deployment" and ref["name"] == name in deployments
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert "replicas" not in deployments[name]["spec"], name
    scaled = set(hpas) | set(resources("ScaledObject", overlay))
    for name, deployment in deployments.items():
        if name not in scaled:
            assert deployment["spec"]["replicas"] >= 1, name


@ALL_OVERLAYS
def test_every_deployment_has_a_disruption_budget(overlay: str) -> None:
    budgets = resources("PodDisruptionBudget", overlay).values()
    for name, deployment in resources("Deployment", overlay).items():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], pod_labels)]
        assert len(matching) == 1, f"{name}: {len(matching)} PodDisruptionBudgets"


def test_production_spreads_replicas_over_nodes_and_zones() -> None:
    for name, deployment in resources("Deployment", "production").items():
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in spread}
        assert {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= keys, name
        for item in spread:
            assert (
                item["labelSelector"]["matchLabels"]
                == deployment["spec"]["selector"]["matchLabels"]
            )


@ALL_OVERLAYS
def test_configmap_holds_known_settings(overlay: str) -> None:
    config = resources("ConfigMap", overlay)["hookhub-config"]["data"]
    for key in ("HOOKHUB_KAFKA_BOOTSTRAP", "HOOKHUB_MONGO_URI", "HOOKHUB_PUBLIC_URL"):
        assert config.get(key), key
    assert int(config["HOOKHUB_KAFKA_REPLICATION_FACTOR"]) >= 1
    for key in config:
        assert key in KNOWN_SETTINGS, f"{key} is not a hookhub setting"
    assert "HOOKHUB_ADMIN_TOKEN" not in config and "HOOKHUB_ENCRYPTION_KEYS" not in config
    # Valid for the services: the settings model takes every value.
    ServiceSettings.model_validate(
        {k.removeprefix("HOOKHUB_").lower(): v for k, v in config.items()}
        | {"admin_token": "x", "encryption_keys": "x"}
    )


def test_production_runs_in_production_mode() -> None:
    config = resources("ConfigMap", "production")["hookhub-config"]["data"]
    assert config["HOOKHUB_ENV"] == "production"
    assert int(config["HOOKHUB_KAFKA_REPLICATION_FACTOR"]) == 3


def test_secret_template_holds_the_required_secrets() -> None:
    (secret,) = [d for d in yaml.safe_load_all((DEPLOY / "secret.example.yaml").read_text()) if d]
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "hookhub-secrets"
    assert {"HOOKHUB_ADMIN_TOKEN", "HOOKHUB_ENCRYPTION_KEYS"} <= set(secret["stringData"])


@ALL_OVERLAYS
def test_topics_job_creates_the_topics_before_the_services(overlay: str) -> None:
    (job,) = resources("Job", overlay).values()
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    main = job["spec"]["template"]["spec"]["containers"][0]
    assert main["args"] == ["topics", "ensure"]
    env = {item["name"]: item["value"] for item in main["env"]}
    config = resources("ConfigMap", overlay)["hookhub-config"]["data"]
    for key in (
        "HOOKHUB_KAFKA_BOOTSTRAP",
        "HOOKHUB_KAFKA_PARTITIONS",
        "HOOKHUB_KAFKA_REPLICATION_FACTOR",
    ):
        assert env[key] == config[key], key
    for key in env:
        assert key in KNOWN_SETTINGS, key


# -- image ----------------------------------------------------------------------------------


def test_dockerfile_is_one_non_root_image_for_every_command() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim|^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    assert re.search(r'^ENTRYPOINT \["hookhub"\]$', text, re.MULTILINE)
    assert re.search(r"pip install \.(\s|$)", text), "the project is installed non-editable"
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")
