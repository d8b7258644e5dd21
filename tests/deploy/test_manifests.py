"""docker-compose.yml, the Helm chart (deploy/chart) and the Dockerfile agree with the code.

No Docker engine or cluster is needed: the chart is rendered with `helm template` for each
overlay, every rendered object is validated against the Kubernetes API's schemas
(kubernetes-validate) and the ScaledObjects against KEDA's CRD schema (vendored in
schemas/), and the result is checked against `SERVICE_PORTS`, the settings model, the
services' Kafka subscribers and the edge's route table. docker-compose.yml is validated
against the Compose specification's JSON schema. The trace pipeline (compose's `tracing`
profile, the chart's `tracing` values) is checked end to end on paper: the services' OTLP
endpoint reaches the collector's receiver, and the collector's exporter reaches Jaeger.
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
from shared.kernel.settings import SERVICE_PORTS, ServiceSettings
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
# Tracing: the standard OpenTelemetry variables compose passes through from the host (empty:
# unset), and each service's name (docs/operations.md, "Traces").
OTEL_PASSED_THROUGH = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_RESOURCE_ATTRIBUTES",
)
OTEL_VARIABLES = {*OTEL_PASSED_THROUGH, "OTEL_SERVICE_NAME"}
COLLECTOR_CONFIG = CHART / "files" / "otel-collector.yaml"
TRACING_COMPONENTS = ("otel-collector", "jaeger")
# Compose services without a healthcheck, and why (nothing may wait for their health).
NO_HEALTHCHECK = {"otel-collector": "the image is the collector binary alone: no shell, no wget"}


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


def helm_template(*args: str) -> subprocess.CompletedProcess[str]:
    command = [tool("helm"), "template", "hookhub", str(CHART), "--namespace", NAMESPACE, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@functools.cache
def render_with(*args: str) -> tuple[dict[str, Any], ...]:
    """Every object `helm install` would create with these arguments, hooks included."""
    result = helm_template(*args)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """Every object `helm install` would create with this overlay, hooks included."""
    return render_with(*(arg for values in OVERLAYS[overlay] for arg in ("--values", str(values))))


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
    return of_kind(kind, render(overlay))


def of_kind(kind: str, docs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for doc in docs:
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
    services = compose_services()
    for key, service in services.items():
        if key in NO_HEALTHCHECK:
            assert "healthcheck" not in service, f"{key}: NO_HEALTHCHECK is out of date"
            for other, spec in services.items():
                rule = (spec.get("depends_on") or {}).get(key, {})
                assert rule.get("condition") != "service_healthy", f"{other} waits on {key}"
            continue
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
            known = variable in KNOWN_SETTINGS or variable in OTEL_VARIABLES
            assert known or PROVIDER_SETTING.match(variable), (
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


# -- docker compose: tracing ----------------------------------------------------------------


def collector_config() -> dict[str, Any]:
    config = yaml.safe_load(COLLECTOR_CONFIG.read_text())
    assert isinstance(config, dict)
    return config


def collector_receiver_port(protocol: str) -> int:
    """The port the collector's OTLP receiver listens on for `grpc` or `http`."""
    endpoint = collector_config()["receivers"]["otlp"]["protocols"][protocol]["endpoint"]
    host, _, port = str(endpoint).rpartition(":")
    assert host == "0.0.0.0", f"the {protocol} receiver must listen beyond localhost: {endpoint}"
    return int(port)


def test_collector_config_receives_otlp_and_batches_it_on() -> None:
    config = collector_config()
    assert {collector_receiver_port("grpc"), collector_receiver_port("http")} == {4317, 4318}
    service = config["service"]
    assert set(service["pipelines"]) == {"traces"}
    traces = service["pipelines"]["traces"]
    for section in ("receivers", "processors", "exporters"):
        for component in traces[section]:
            assert component in config[section], f"{section}: {component} is not configured"
    for extension in service["extensions"]:
        assert extension in config["extensions"], extension
    # Memory first (refuse before the OOM killer steps in), batching last.
    assert traces["processors"][0] == "memory_limiter"
    assert traces["processors"][-1] == "batch"
    (exporter,) = traces["exporters"]
    assert exporter.split("/")[0] == "otlp_grpc"
    assert config["exporters"][exporter]["endpoint"].startswith("${env:TRACES_BACKEND_ENDPOINT")


@pytest.mark.parametrize("name", SERVICES)
def test_compose_passes_tracing_through(name: str) -> None:
    key, service = compose_service_running(name)
    env = environment_of(service)
    for variable in OTEL_PASSED_THROUGH:
        assert env[variable] == f"${{{variable}:-}}", f"{key}: {variable} from the host, or empty"
    assert env["OTEL_SERVICE_NAME"] == f"hookhub-{name}"


def test_compose_tracing_profile_runs_a_collector_before_jaeger() -> None:
    services = compose_services()
    tracing = {k: s for k, s in services.items() if "tracing" in s.get("profiles", [])}
    assert set(tracing) == set(TRACING_COMPONENTS)
    # Off by default: nothing else is in a profile, and nothing waits for them.
    for key, service in services.items():
        if key not in tracing:
            assert not service.get("profiles"), key
            assert not set(service.get("depends_on") or {}) & set(tracing), key
    collector, jaeger = tracing["otel-collector"], tracing["jaeger"]
    assert re.fullmatch(r"otel/opentelemetry-collector-contrib:\d+\.\d+\.\d+", collector["image"])
    assert re.fullmatch(r"jaegertracing/jaeger:2\.\d+\.\d+", jaeger["image"])
    # It runs the chart's config file...
    (config_flag,) = [a for a in command_of(collector) if a.startswith("--config=")]
    mounts = {
        target: source for source, target, *_ in (str(m).split(":") for m in collector["volumes"])
    }
    assert (ROOT / mounts[config_flag.removeprefix("--config=")]).resolve() == COLLECTOR_CONFIG
    # ...takes OTLP from the services (and the host)...
    published = {str(p) for p in collector["ports"]}
    for protocol in ("grpc", "http"):
        port = collector_receiver_port(protocol)
        assert f"{port}:{port}" in published
    # ...and sends it to Jaeger's OTLP/gRPC receiver, once Jaeger is up.
    assert environment_of(collector)["TRACES_BACKEND_ENDPOINT"] == "jaeger:4317"
    assert collector["depends_on"]["jaeger"]["condition"] == "service_healthy"
    assert "16686:16686" in [str(p) for p in jaeger["ports"]]


def test_compose_says_how_to_start_tracing() -> None:
    """The command at the top of docker-compose.yml points the services at the collector."""
    found = re.search(
        r"OTEL_EXPORTER_OTLP_ENDPOINT=(\S+) docker compose --profile tracing up",
        COMPOSE_FILE.read_text(),
    )
    assert found, "docker-compose.yml must say how to start the tracing profile"
    url = urlsplit(found.group(1))
    assert (url.scheme, url.hostname, url.port) == (
        "http",
        "otel-collector",
        collector_receiver_port("http"),
    )


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
    docs = render_with("--set", "kafka.partitions=4", "--set", "services.delivery.scaling.max=40")
    assert of_kind("ScaledObject", docs)["delivery"]["spec"]["maxReplicaCount"] == 4


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


# -- Kubernetes: tracing ------------------------------------------------------------------

TRACING_WITH_COLLECTOR = (
    *("--set", "tracing.enabled=true"),
    *("--set", "tracing.collector.enabled=true", "--set", "tracing.jaeger.enabled=true"),
    *("--set", "tracing.sampler=parentbased_traceidratio", "--set", "tracing.samplerArg=0.25"),
    *("--set-string", "tracing.resourceAttributes=deployment.environment.name=test"),
)
OWN_COLLECTOR = "http://otel-collector.observability.svc:4318"
TRACING_WITH_ENDPOINT = (
    "--set",
    "tracing.enabled=true",
    "--set",
    f"tracing.endpoint={OWN_COLLECTOR}",
)


def env_of(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(workload).get("env", [])}


def otel_env(workload: dict[str, Any]) -> dict[str, str]:
    """The OTEL_* variables of a Deployment's or Job's container."""
    env = env_of(workload).items()
    return {name: item["value"] for name, item in env if name.startswith("OTEL_")}


def serving(name: str, docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    deployments = of_kind("Deployment", docs).values()
    (deployment,) = [d for d in deployments if container(d).get("args", [])[:2] == ["serve", name]]
    return deployment


def target_port(service: dict[str, Any], port: int | None) -> int | str:
    """Which container port a Service sends its `port` to."""
    (target,) = [p["targetPort"] for p in service["spec"]["ports"] if p["port"] == port]
    assert isinstance(target, int | str)
    return target


@ALL_OVERLAYS
def test_tracing_is_off_by_default(overlay: str) -> None:
    docs = render(overlay)
    for doc in docs:
        assert doc["metadata"]["name"] not in TRACING_COMPONENTS, f"{doc['kind']} rendered"
    for workload in [*of_kind("Deployment", docs).values(), *of_kind("Job", docs).values()]:
        assert not otel_env(workload), workload["metadata"]["name"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_tracing_objects_match_their_schemas(version: str) -> None:
    for docs in (render_with(*TRACING_WITH_COLLECTOR), render_with(*TRACING_WITH_ENDPOINT)):
        for doc in docs:
            where = f"{doc['kind']}/{doc['metadata']['name']}"
            assert not schema_errors(doc, version), (where, schema_errors(doc, version))
            assert doc["metadata"].get("namespace") == NAMESPACE, where
            assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "hookhub", where


def test_tracing_with_the_collector_points_every_service_at_it() -> None:
    docs = render_with(*TRACING_WITH_COLLECTOR)
    collector = of_kind("Deployment", docs)["otel-collector"]
    collector_service = of_kind("Service", docs)["otel-collector"]
    assert selects(
        collector_service["spec"]["selector"], collector["spec"]["template"]["metadata"]["labels"]
    )
    for name in SERVICES:
        deployment = serving(name, docs)
        env = otel_env(deployment)
        assert env["OTEL_SERVICE_NAME"] == f"hookhub-{name}"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
        url = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert (url.scheme, url.hostname) == ("http", f"otel-collector.{NAMESPACE}.svc")
        port = named_port(collector, target_port(collector_service, url.port))
        assert port == collector_receiver_port("http"), f"{name} sends OTLP/HTTP to {port}"
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
        attributes = dict(pair.split("=", 1) for pair in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))
        assert attributes["k8s.deployment.name"] == name
        assert attributes["k8s.namespace.name"] == NAMESPACE
        assert attributes["deployment.environment.name"] == "test"
        # $(K8S_POD_NAME) is expanded by Kubernetes only from a variable defined before it.
        names = [item["name"] for item in container(deployment)["env"]]
        assert attributes["k8s.pod.name"] == "$(K8S_POD_NAME)"
        assert names.index("K8S_POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")
        pod_name = env_of(deployment)["K8S_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"]
        assert pod_name == "metadata.name"


def test_the_release_collector_runs_the_compose_config_into_jaeger() -> None:
    docs = render_with(*TRACING_WITH_COLLECTOR)
    deployments, services = of_kind("Deployment", docs), of_kind("Service", docs)
    config_map = of_kind("ConfigMap", docs)["otel-collector"]
    assert yaml.safe_load(config_map["data"]["config.yaml"]) == collector_config()
    collector = deployments["otel-collector"]
    main = container(collector)
    # The ConfigMap is mounted where --config points.
    (config_flag,) = [a for a in main["args"] if a.startswith("--config=")]
    path = Path(config_flag.removeprefix("--config="))
    pod = collector["spec"]["template"]["spec"]
    (volume,) = [
        v["name"] for v in pod["volumes"] if v.get("configMap", {}).get("name") == "otel-collector"
    ]
    (mount,) = [m["mountPath"] for m in main["volumeMounts"] if m["name"] == volume]
    assert (Path(mount), path.name) == (path.parent, "config.yaml")
    # The probes ask the health_check extension.
    health = int(collector_config()["extensions"]["health_check"]["endpoint"].rpartition(":")[2])
    for probe in ("livenessProbe", "readinessProbe"):
        assert named_port(collector, main[probe]["httpGet"]["port"]) == health, probe
    # The exporter reaches Jaeger's OTLP/gRPC receiver.
    backend = env_of(collector)["TRACES_BACKEND_ENDPOINT"]["value"]
    host, _, port = backend.rpartition(":")
    assert host.split(".")[:2] == ["jaeger", NAMESPACE]
    jaeger = deployments["jaeger"]
    assert named_port(jaeger, target_port(services["jaeger"], int(port))) == 4317
    assert selects(
        services["jaeger"]["spec"]["selector"], jaeger["spec"]["template"]["metadata"]["labels"]
    )
    assert 16686 in [p["port"] for p in services["jaeger"]["spec"]["ports"]]
    # One Jaeger: its traces live in its memory.
    assert jaeger["spec"]["replicas"] == 1
    # The same pinned images as compose, in pods as locked down as hookhub's.
    compose = compose_services()
    for name in TRACING_COMPONENTS:
        pod = deployments[name]["spec"]["template"]["spec"]
        (main,) = pod["containers"]
        assert main["image"] == compose[name]["image"], name
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert main["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert main["securityContext"]["capabilities"]["drop"] == ["ALL"], name
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(main["resources"][bound]), f"{name} {bound}"


def test_tracing_with_an_endpoint_sends_there_and_runs_no_collector() -> None:
    docs = render_with(*TRACING_WITH_ENDPOINT)
    assert not [d for d in docs if d["metadata"]["name"] in TRACING_COMPONENTS]
    for name in SERVICES:
        env = otel_env(serving(name, docs))
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == OWN_COLLECTOR, name
        assert env["OTEL_SERVICE_NAME"] == f"hookhub-{name}"
        assert "OTEL_TRACES_SAMPLER_ARG" not in env, "an empty samplerArg is not set"


def test_tracing_with_nowhere_to_send_is_refused() -> None:
    result = helm_template("--set", "tracing.enabled=true")
    assert result.returncode != 0 and "tracing.endpoint" in result.stderr
    result = helm_template(
        "--set", "tracing.enabled=true", "--set", "tracing.collector.enabled=true"
    )
    assert result.returncode != 0 and "tracing.collector.exportTo" in result.stderr


# -- image ----------------------------------------------------------------------------------


def test_dockerfile_is_one_non_root_image_for_every_command() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim|^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    assert re.search(r'^ENTRYPOINT \["hookhub"\]$', text, re.MULTILINE)
    assert re.search(r"pip install \.(\s|$)", text), "the project is installed non-editable"
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")
