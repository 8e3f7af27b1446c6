"""The Helm chart, checked with the real helm binary and the Kubernetes API schemas."""

from __future__ import annotations

import secrets
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from sales_common.server import GRACEFUL_SHUTDOWN_S

from tests.conftest import REPO
from tests.deploy.settings_env import SERVICE_SETTINGS, assert_sets_only_what_it_reads

CHART = REPO / "charts" / "sales-pipeline"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
KUBERNETES_VERSION = "1.32.0"
CUSTOM_KINDS = {
    "ServiceMonitor",
    "PrometheusRule",
    "KafkaTopic",
    "Kafka",
    "KafkaNodePool",
    "Cluster",
}
SERVICE_NAMES = tuple(SERVICE_SETTINGS)


def run_helm(helm: str, *args: str) -> str:
    result = subprocess.run([helm, *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


@cache
def _render(helm: str, values: Path | None, extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    args = ["template", "sales", str(CHART), "--namespace", "shop"]
    if values:
        args += ["-f", str(values)]
    documents = yaml.safe_load_all(run_helm(helm, *args, *extra))
    return [d for d in documents if d]


def render(helm: str, values: Path | None = None, *sets: str) -> list[dict[str, Any]]:
    extra: tuple[str, ...] = tuple(x for s in sets for x in ("--set", s))
    return _render(helm, values, extra)


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name.removeprefix("sales-"): d for name, d in by_kind(docs, "Deployment").items()}


@pytest.mark.parametrize("values", SCENARIOS, ids=lambda p: p.stem)
def test_lint_and_render_every_scenario(helm: str, values: Path) -> None:
    run_helm(helm, "lint", str(CHART), "-f", str(values), "--strict")
    docs = render(helm, values)
    assert set(deployments(docs)) == set(SERVICE_NAMES)
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_schema_rejects_unknown_keys_and_wrong_types(helm: str) -> None:
    for bad in (
        "ingest.replica=2",
        "ingest.replicas=two",
        "strimzi.enable=true",
        "global.kafka.securityProtocol=TLS",
    ):
        result = subprocess.run(
            [helm, "template", "sales", str(CHART), "-f", str(SCENARIOS[0]), "--set", bad],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode != 0, f"{bad} was accepted"
        assert "values don't meet the specifications of the schema" in result.stderr


def test_services_can_be_switched_off(helm: str) -> None:
    docs = render(helm, CHART / "ci" / "defaults-values.yaml", "dashboard.enabled=false")
    assert set(deployments(docs)) == {"ingest", "validator", "loader"}


def test_pods_are_restricted_probed_and_roll_on_config_change(helm: str) -> None:
    for values in SCENARIOS:
        for name, deployment in deployments(render(helm, values)).items():
            pod = deployment["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
            assert pod["terminationGracePeriodSeconds"] > GRACEFUL_SHUTDOWN_S
            assert "checksum/config" in deployment["spec"]["template"]["metadata"]["annotations"]
            (container,) = pod["containers"]
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
            assert container["resources"]["limits"]
            assert container["resources"]["requests"]
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/tmp", "/var/log"} <= mounts, name


def test_every_setting_a_service_needs_is_set_and_every_name_is_real(helm: str) -> None:
    for values in SCENARIOS:
        docs = render(helm, values)
        configmaps = by_kind(docs, "ConfigMap")
        for name, deployment in deployments(docs).items():
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            names = {e["name"] for e in container["env"]}
            for source in container.get("envFrom", []):
                names |= set(configmaps[source["configMapRef"]["name"]]["data"])
            assert_sets_only_what_it_reads(f"{values.stem}/{name}", names, name)


def test_the_migrations_job_sets_only_what_sales_migrate_reads(helm: str) -> None:
    for values in SCENARIOS:
        job = by_kind(render(helm, values), "Job")["sales-sales-migrate"]
        (container,) = job["spec"]["template"]["spec"]["containers"]
        names = {e["name"] for e in container["env"]}
        assert_sets_only_what_it_reads(f"{values.stem}/migrate", names, "migrate")
        assert "MIGRATE_POSTGRES__DSN" in names, values.stem


def test_no_secret_value_is_rendered_with_existing_secrets(helm: str) -> None:
    docs = render(helm, CHART / "ci" / "external-secrets-values.yaml")
    assert by_kind(docs, "Secret") == {}
    for deployment in deployments(docs).values():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        for env in container["env"]:
            if any(word in env["name"] for word in ("SECRET", "KEY", "DSN", "PASSWORD", "CLIENTS")):
                assert "valueFrom" in env, f"{env['name']} is a literal"
                assert "value" not in env


def test_quick_start_secrets_come_only_from_install_time_values(helm: str) -> None:
    jwt, pii = secrets.token_urlsafe(40), secrets.token_urlsafe(40)
    base = CHART / "ci" / "defaults-values.yaml"
    missing = subprocess.run(
        [helm, "template", "sales", str(CHART), "--set", "global.secrets.create.enabled=true"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode != 0
    assert "jwtSecret is required" in missing.stderr
    docs = render(
        helm,
        None,
        "global.secrets.create.enabled=true",
        f"global.secrets.create.jwtSecret={jwt}",
        f"global.secrets.create.piiHmacKey={pii}",
        "global.secrets.create.dashboardClients=clients-json",
        "global.secrets.create.postgresDsn=postgresql://sales:pw@db:5432/sales",
    )
    created = by_kind(docs, "Secret")
    assert created["sales-sales-secrets"]["stringData"]["jwt-secret"] == jwt
    assert base.exists()


def test_network_policies(helm: str) -> None:
    docs = render(helm, CHART / "ci" / "defaults-values.yaml")
    policies = {
        name.removeprefix("sales-"): p for name, p in by_kind(docs, "NetworkPolicy").items()
    }
    assert set(policies) == set(SERVICE_NAMES)
    for name, policy in policies.items():
        open_rules = [r for r in policy["spec"]["ingress"] if "from" not in r]
        assert bool(open_rules) == (name in ("ingest", "dashboard")), name
        egress_ports = {p["port"] for r in policy["spec"]["egress"] for p in r.get("ports", [])}
        assert egress_ports <= {53, 9092, 5432}, name
    assert {p["port"] for r in policies["validator"]["spec"]["egress"] for p in r["ports"]} == {
        53,
        9092,
    }
    assert {p["port"] for r in policies["dashboard"]["spec"]["egress"] for p in r["ports"]} == {
        53,
        5432,
    }


def test_hooks_and_optional_objects(helm: str) -> None:
    docs = render(helm, CHART / "ci" / "defaults-values.yaml")
    jobs = by_kind(docs, "Job")
    migrate = jobs["sales-sales-migrate"]
    assert migrate["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert migrate["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    assert "sales-sales-topics" in jobs
    assert not by_kind(docs, "ServiceMonitor")
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    everything = render(helm, CHART / "ci" / "everything-values.yaml")
    assert len(by_kind(everything, "ServiceMonitor")) == 4
    assert set(by_kind(everything, "Ingress")) == {"sales-ingest", "sales-dashboard"}
    assert by_kind(everything, "PrometheusRule")
    assert "sales-sales-dashboard" in by_kind(everything, "ConfigMap")
    operators = render(helm, CHART / "ci" / "operators-values.yaml")
    topics = {t["spec"]["topicName"] for t in by_kind(operators, "KafkaTopic").values()}
    assert topics == {
        f"sales.{name}{lane}"
        for name in ("raw", "validated", "rejected")
        for lane in ("", ".priority")
    }
    assert "sales-sales-topics" not in by_kind(operators, "Job")
    assert by_kind(operators, "Kafka")
    assert by_kind(operators, "KafkaNodePool")
    assert by_kind(operators, "Cluster")
