"""Deployment files: docker-compose accepts the stack, the pieces point at each other, k8s manifests are sound.

`docker-compose config` needs Debian's `docker-compose` package (no Docker
daemon); that test skips when the binary is missing. The rest reads the files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streams.config import parse_config
from streams.observability import names
from streams.observability.generate import REPO_ROOT
from streams.settings import Settings

DEPLOY = REPO_ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
CONFIG_FILE = DEPLOY / "callpulse.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
GRAFANA = REPO_ROOT / "grafana"


def _yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


COMPOSE = _yaml(COMPOSE_FILE)
SERVICES = COMPOSE["services"]
WORKERS = {name: service for name, service in SERVICES.items() if name.startswith("worker-")}


def _compose(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed (Debian package docker-compose)")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CALLPULSE_", "COMPOSE_"))}
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), *args], capture_output=True, text=True, timeout=120, env=env
    )


def _mount_target(service: dict, source: str) -> str:
    for volume in service["volumes"]:
        parts = volume.split(":")
        if parts[0] == source:
            return parts[1]
    raise AssertionError(f"{source} is not mounted")


def _mount_source(service: dict, target: str) -> str:
    for volume in service["volumes"]:
        source, mounted, *_ = volume.split(":")
        if mounted == target:
            return source
    raise AssertionError(f"nothing mounted at {target}")


# --- docker-compose ----------------------------------------------------------------


def test_docker_compose_accepts_the_file():
    result = _compose("config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_docker_compose_resolves_the_simulator_profile():
    result = _compose("--profile", "sim", "config", "--services")
    assert result.returncode == 0, result.stderr
    assert "simulator" in result.stdout.split()


def test_kafka_runs_in_kraft_mode_from_the_official_image():
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert "zookeeper" not in str(COMPOSE).lower()


def test_at_least_two_workers_with_their_own_state_volumes():
    assert len(WORKERS) >= 2
    volumes = [_mount_source(worker, "/var/lib/callpulse") for worker in WORKERS.values()]
    assert len(set(volumes)) == len(volumes), "two workers must never share a state directory"
    for worker in WORKERS.values():
        env = worker["environment"]
        assert env["CALLPULSE_BROKER"] == "kafka://kafka:9092"
        assert env["CALLPULSE_DATA_DIR"] == "/var/lib/callpulse"
        assert worker["build"]["dockerfile"] == "deploy/Dockerfile"


def test_simulator_is_optional_and_runs_callpulse_simulate():
    simulator = SERVICES["simulator"]
    assert simulator["profiles"] == ["sim"]
    assert simulator["command"][0] == "simulate"
    assert simulator["environment"]["CALLPULSE_BROKER"] == "kafka://kafka:9092"


def test_every_callpulse_variable_is_one_the_worker_reads():
    known = {f"CALLPULSE_{name.upper()}" for name in Settings.model_fields}
    used = {key for service in WORKERS.values() for key in service["environment"] if key.startswith("CALLPULSE_")}
    statefulset = next(doc for doc in _docs(K8S / "statefulset.yaml") if doc["kind"] == "StatefulSet")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    used |= {item["name"] for item in container["env"] if item["name"].startswith("CALLPULSE_")}
    assert used - known == set()


def test_prometheus_scrapes_every_compose_worker():
    prometheus = _yaml(DEPLOY / "prometheus/prometheus.yml")
    job = next(job for job in prometheus["scrape_configs"] if job["job_name"] == names.SCRAPE_JOB)
    targets = {target for config in job["static_configs"] for target in config["targets"]}
    assert targets == {f"{name}:6066" for name in WORKERS}
    assert _mount_target(SERVICES["prometheus"], "./prometheus") == "/etc/prometheus"


def test_alertmanager_starts_through_the_render_script():
    alertmanager = SERVICES["alertmanager"]
    assert _mount_target(alertmanager, "./alertmanager") == "/etc/alertmanager"
    assert alertmanager["entrypoint"][-1] == "/etc/alertmanager/render-config.sh"
    assert (DEPLOY / "alertmanager/render-config.sh").exists()


def test_grafana_loads_the_provisioning_and_dashboards_from_the_repository():
    grafana = SERVICES["grafana"]
    assert _mount_target(grafana, "../grafana/provisioning") == "/etc/grafana/provisioning"
    dashboards_path = _mount_target(grafana, "../grafana/dashboards")
    provider = _yaml(GRAFANA / "provisioning/dashboards/callpulse.yaml")["providers"][0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == dashboards_path
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (GRAFANA / "dashboards" / Path(home).relative_to(dashboards_path)).exists()


def test_grafana_datasource_has_the_uid_the_dashboards_use():
    (datasource,) = _yaml(GRAFANA / "provisioning/datasources/prometheus.yaml")["datasources"]
    assert datasource["uid"] == names.DATASOURCE_UID
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in SERVICES


def test_published_ports_are_local_only():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


# --- worker image ------------------------------------------------------------------


def test_dockerfile_builds_a_non_root_worker_image():
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert "pip install --no-cache-dir ." in text
    assert re.search(r'^ENTRYPOINT \["callpulse"\]$', text, re.M)
    assert re.search(r'^CMD \["worker"\]$', text, re.M)
    assert re.search(r"^USER callpulse", text, re.M)
    assert "CALLPULSE_DATA_DIR=/var/lib/callpulse" in text
    assert 'VOLUME ["/var/lib/callpulse"]' in text


def test_dockerfile_copies_only_files_that_exist():
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO_ROOT / source).exists(), f"{source} is missing: the image cannot build"


# --- configuration -----------------------------------------------------------------


def test_compose_config_file_is_valid():
    config = parse_config(_yaml(CONFIG_FILE), str(CONFIG_FILE))
    assert config.queues, "the example shows per-queue overrides"


# --- Kubernetes --------------------------------------------------------------------

EXPECTED_KINDS = {
    "namespace.yaml": ["Namespace"],
    "configmap.yaml": ["ConfigMap"],
    "service.yaml": ["Service", "Service"],
    "statefulset.yaml": ["StatefulSet"],
    "poddisruptionbudget.yaml": ["PodDisruptionBudget"],
    "podmonitor.yaml": ["PodMonitor"],
    "kustomization.yaml": ["Kustomization"],
}


@pytest.mark.parametrize("file_name, kinds", EXPECTED_KINDS.items())
def test_manifest_parses_with_the_expected_kinds(file_name, kinds):
    docs = _docs(K8S / file_name)
    assert [doc["kind"] for doc in docs] == kinds
    for doc in docs:
        assert doc.get("apiVersion")


def test_every_manifest_is_listed_or_documented():
    listed = set(_yaml(K8S / "kustomization.yaml")["resources"])
    assert listed <= set(EXPECTED_KINDS)
    assert set(EXPECTED_KINDS) - listed == {"kustomization.yaml", "podmonitor.yaml"}


def _by_kind(kind: str, name: str | None = None) -> dict:
    for path in K8S.glob("*.yaml"):
        for doc in _docs(path):
            if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name):
                return doc
    raise AssertionError(f"no {kind} {name or ''}")


STATEFULSET = _by_kind("StatefulSet")
POD = STATEFULSET["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]
ENV = {item["name"]: item for item in CONTAINER["env"]}


def test_statefulset_keeps_state_per_worker_behind_a_headless_service():
    headless = _by_kind("Service", STATEFULSET["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    (claim,) = STATEFULSET["spec"]["volumeClaimTemplates"]
    mounts = {mount["name"]: mount["mountPath"] for mount in CONTAINER["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == ENV["CALLPULSE_DATA_DIR"]["value"]
    assert STATEFULSET["spec"]["replicas"] >= 2
    labels = STATEFULSET["spec"]["template"]["metadata"]["labels"]
    assert STATEFULSET["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_statefulset_runs_as_non_root():
    assert POD["securityContext"]["runAsNonRoot"] is True
    assert CONTAINER["securityContext"]["allowPrivilegeEscalation"] is False


def test_kafka_credentials_come_from_a_secret():
    for variable in ("CALLPULSE_KAFKA_SASL_USERNAME", "CALLPULSE_KAFKA_SASL_PASSWORD"):
        assert "secretKeyRef" in ENV[variable]["valueFrom"], variable
        assert "value" not in ENV[variable]
    assert ENV["CALLPULSE_KAFKA_SECURITY_PROTOCOL"]["value"] in {"SASL_SSL", "SASL_PLAINTEXT"}


def test_configmap_carries_the_same_config_as_compose():
    configmap = _by_kind("ConfigMap", "callpulse-config")
    text = configmap["data"]["callpulse.yaml"]
    assert text == CONFIG_FILE.read_text(encoding="utf-8")
    parse_config(yaml.safe_load(text))
    volumes = {volume["name"]: volume for volume in POD["volumes"]}
    mount = next(m for m in CONTAINER["volumeMounts"] if m["mountPath"] == ENV["CALLPULSE_CONFIG"]["value"])
    assert volumes[mount["name"]]["configMap"]["name"] == "callpulse-config"


def test_podmonitor_scrapes_under_the_job_the_rules_use():
    monitor = _by_kind("PodMonitor")
    label = monitor["spec"]["jobLabel"]
    assert STATEFULSET["spec"]["template"]["metadata"]["labels"][label] == names.SCRAPE_JOB
    ports = {port["name"] for port in CONTAINER["ports"]}
    assert {endpoint["port"] for endpoint in monitor["spec"]["podMetricsEndpoints"]} <= ports


def test_probes_use_the_worker_health_endpoints():
    assert CONTAINER["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert CONTAINER["livenessProbe"]["httpGet"]["path"] == "/healthz"
