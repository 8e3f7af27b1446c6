"""The Helm chart, checked with the real helm binary and the Kubernetes API schemas."""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from sales_common.acls import AclNames, Grant, table
from sales_common.server import GRACEFUL_SHUTDOWN_S
from sales_common.settings import TopicSettings

from tests.conftest import REPO
from tests.deploy import crd_schemas
from tests.deploy.settings_env import SERVICE_SETTINGS, assert_sets_only_what_it_reads

CHART = REPO / "charts" / "sales-pipeline"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
KUBERNETES_VERSION = "1.32.0"
SERVICE_NAMES = tuple(SERVICE_SETTINGS)
CONSUMERS = ("validator", "loader")
KAFKA_CLIENTS = ("ingest", "validator", "loader")
# kube-score checks left out, each justified in the chart README ("kube-score").
KUBE_SCORE_IGNORED = ("container-image-pull-policy",)


def run_helm(helm: str, *args: str) -> str:
    result = subprocess.run([helm, *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def refusal(helm: str, values: Path | None, *sets: str) -> str:
    """What helm says when the chart refuses these values (it must refuse them)."""
    args = [helm, "template", "sales", str(CHART), "--kube-version", KUBERNETES_VERSION]
    args += ["-f", str(values)] if values else []
    result = subprocess.run(
        [*args, *(x for s in sets for x in ("--set", s))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0, "the chart rendered values it must refuse"
    return result.stderr


@cache
def _render(helm: str, values: Path | None, extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    args = ["template", "sales", str(CHART), "--namespace", "shop"]
    args += ["--kube-version", KUBERNETES_VERSION]
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


def container(workload: dict[str, Any]) -> dict[str, Any]:
    spec = (
        workload["spec"]["template"]["spec"] if "template" in workload["spec"] else workload["spec"]
    )
    (only,) = spec["containers"]
    found: dict[str, Any] = only
    return found


def env(workload: dict[str, Any]) -> dict[str, Any]:
    """Name -> literal value, or the secretKeyRef for a value from a Secret."""
    return {
        e["name"]: e.get("value", e.get("valueFrom", {}).get("secretKeyRef"))
        for e in container(workload)["env"]
    }


def scenario(name: str) -> Path:
    return CHART / "ci" / f"{name}-values.yaml"


def is_custom(doc: dict[str, Any]) -> bool:
    group = doc["apiVersion"].rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def validation_errors(doc: dict[str, Any], schemas: crd_schemas.Schemas) -> list[str]:
    if is_custom(doc):
        return crd_schemas.errors(schemas, doc)
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{doc['kind']}/{doc['metadata']['name']}: {error}"]
    return []


@pytest.mark.parametrize("values", SCENARIOS, ids=lambda p: p.stem)
def test_lint_render_and_validate_every_object_of_every_scenario(
    helm: str, crd_files: list[Path], values: Path
) -> None:
    run_helm(
        helm,
        "lint",
        str(CHART),
        "-f",
        str(values),
        "--strict",
        "--kube-version",
        KUBERNETES_VERSION,
    )
    docs = render(helm, values)
    assert set(deployments(docs)) == set(SERVICE_NAMES)
    schemas = crd_schemas.load(crd_files)
    assert [e for doc in docs for e in validation_errors(doc, schemas)] == []


def test_an_injected_wrong_field_or_type_fails_validation(helm: str, crd_files: list[Path]) -> None:
    schemas = crd_schemas.load(crd_files)
    docs = render(helm, scenario("operators")) + render(helm, scenario("everything"))
    targets = {
        kind: next(d for d in docs if d["kind"] == kind)
        for kind in (
            "Deployment",
            "Kafka",
            "KafkaUser",
            "Cluster",
            "ScaledObject",
            "TriggerAuthentication",
            "ServiceMonitor",
            "PrometheusRule",
        )
    }
    for kind, doc in targets.items():
        assert validation_errors(doc, schemas) == [], kind
        misspelt = copy.deepcopy(doc)
        misspelt["spec"]["replicaz"] = 2
        assert validation_errors(misspelt, schemas), f"{kind}: an unknown field passed"
    user = copy.deepcopy(targets["KafkaUser"])
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Reed"]
    assert validation_errors(user, schemas), "a misspelt ACL operation passed"
    user["spec"]["authorization"]["acls"][0] = {"resource": {"type": "topic", "nam": "x"}}
    assert validation_errors(user, schemas), "a misspelt ACL resource field passed"
    kafka = copy.deepcopy(targets["Kafka"])
    kafka["spec"]["kafka"]["listeners"][0]["port"] = "9093"
    assert validation_errors(kafka, schemas), "a listener port as a string passed"
    scaled = copy.deepcopy(targets["ScaledObject"])
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 1000
    assert validation_errors(scaled, schemas), "a trigger metadata value as a number passed"
    cluster = copy.deepcopy(targets["Cluster"])
    cluster["spec"]["instances"] = "three"
    assert validation_errors(cluster, schemas), "instances as a string passed"
    deployment = copy.deepcopy(targets["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    assert validation_errors(deployment, schemas), "a misspelt container field passed"


@pytest.mark.parametrize("values", SCENARIOS, ids=lambda p: p.stem)
def test_kube_score_finds_nothing_but_the_justified(
    helm: str, kube_score: str, values: Path, tmp_path: Path
) -> None:
    docs = render(helm, values)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    ignored = [x for check in KUBE_SCORE_IGNORED for x in ("--ignore-test", check)]
    result = subprocess.run(
        [kube_score, "score", "--output-format", "ci", *ignored, str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = [
        line for line in result.stdout.splitlines() if line.startswith(("[CRITICAL]", "[WARNING]"))
    ]
    # KEDA's ScaledObject owns these replica counts through an HPA made at run time, which
    # kube-score cannot see (it reads the Deployment alone: no replicas field, so "1").
    keda_scaled = set(by_kind(docs, "ScaledObject"))
    unexplained = [
        f
        for f in findings
        if not (f.endswith("Deployment few replicas") and f.split()[1] in keda_scaled)
    ]
    assert unexplained == [], result.stdout


def test_schema_rejects_unknown_keys_and_wrong_types(helm: str) -> None:
    for bad in (
        "ingest.replica=2",
        "ingest.replicas=two",
        "strimzi.enable=true",
        "global.kafka.securityProtocol=TLS",
    ):
        result = subprocess.run(
            [
                helm,
                "template",
                "sales",
                str(CHART),
                "--kube-version",
                KUBERNETES_VERSION,
                "-f",
                str(SCENARIOS[0]),
                "--set",
                bad,
            ],
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
            (container,) = pod["containers"]
            pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            assert pod["terminationGracePeriodSeconds"] > pause + GRACEFUL_SHUTDOWN_S
            assert "checksum/config" in deployment["spec"]["template"]["metadata"]["annotations"]
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
            assert container["resources"]["limits"]["ephemeral-storage"]
            assert container["resources"]["requests"]["ephemeral-storage"]
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
    assert "jwtSecret is required" in refusal(helm, None, "global.secrets.create.enabled=true")
    docs = render(
        helm,
        None,
        "global.secrets.create.enabled=true",
        f"global.secrets.create.jwtSecret={jwt}",
        f"global.secrets.create.piiHmacKey={pii}",
        f"global.secrets.create.piiEncryptionKey={pii}",
        "global.secrets.create.dashboardClients=clients-json",
        "global.secrets.create.postgresDsn=postgresql://sales:pw@db:5432/sales",
    )
    created = by_kind(docs, "Secret")
    assert created["sales-sales-secrets"]["stringData"]["jwt-secret"] == jwt
    assert base.exists()


def test_network_policies(helm: str) -> None:
    docs = render(helm, scenario("defaults"))
    policies = {
        name.removeprefix("sales-"): p for name, p in by_kind(docs, "NetworkPolicy").items()
    }
    assert set(policies) == {*SERVICE_NAMES, "sales-topics", "sales-migrate"}
    for name in SERVICE_NAMES:
        policy = policies[name]
        open_rules = [r for r in policy["spec"]["ingress"] if "from" not in r]
        assert bool(open_rules) == (name in ("ingest", "dashboard")), name
        # /metrics only from the scraper: never every namespace's every pod.
        for rule in policy["spec"]["ingress"]:
            for peer in rule.get("from", []):
                assert peer.get("namespaceSelector") != {} or peer.get("podSelector"), name
    ports = {
        name: {p["port"] for r in policy["spec"]["egress"] for p in r.get("ports", [])}
        for name, policy in policies.items()
    }
    assert ports["validator"] == {53, 9092}
    assert ports["dashboard"] == {53, 5432}
    assert ports["sales-topics"] == {53, 9092}
    assert ports["sales-migrate"] == {53, 5432}
    assert all(policy["spec"]["ingress"] == [] for n, policy in policies.items() if "sales-" in n)
    # External servers: ipBlock peers and their own port reach every Kafka client.
    external = render(helm, scenario("everything"))
    for name in ("sales-ingest", "sales-validator", "sales-loader", "sales-sales-topics"):
        egress = by_kind(external, "NetworkPolicy")[name]["spec"]["egress"]
        kafka_rule = next(r for r in egress if {"port": 9094} in r["ports"])
        assert kafka_rule["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}], name


def test_strimzi_bootstrap_user_and_ca_reach_every_kafka_client(helm: str) -> None:
    docs = render(helm, scenario("operators"))
    (kafka,) = by_kind(docs, "Kafka").values()
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert (listener["port"], listener["tls"], listener["authentication"]["type"]) == (
        9093,
        True,
        "scram-sha-512",
    )
    users = by_kind(docs, "KafkaUser")
    assert set(users) == {f"sales-pipeline-{name}" for name in KAFKA_CLIENTS}
    for name in KAFKA_CLIENTS:
        user = users[f"sales-pipeline-{name}"]
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "sales-kafka"
        variables = env(deployments(docs)[name])
        p = name.upper()
        assert variables[f"{p}_KAFKA__BOOTSTRAP_SERVERS"] == "sales-kafka-kafka-bootstrap:9093"
        assert variables[f"{p}_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
        # Each service as its own principal: its KafkaUser's name and Secret.
        assert variables[f"{p}_KAFKA__SASL_USERNAME"] == user["metadata"]["name"]
        assert variables[f"{p}_KAFKA__SASL_PASSWORD"]["name"] == user["metadata"]["name"]
        ca_file = Path(variables[f"{p}_KAFKA__SSL_CAFILE"])
        pod = deployments(docs)[name]["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "kafka-ca")
        assert volume["secret"]["secretName"] == "sales-kafka-cluster-ca-cert"
        mounts = {
            m["name"]: m["mountPath"] for m in container(deployments(docs)[name])["volumeMounts"]
        }
        assert Path(mounts["kafka-ca"]) / volume["secret"]["items"][0]["path"] == ca_file
    for scaled in by_kind(docs, "ScaledObject").values():
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["metadata"]["bootstrapServers"] == "sales-kafka-kafka-bootstrap:9093"
            assert trigger["metadata"]["sasl"] == "scram_sha512"
            assert trigger["metadata"]["tls"] == "enable"


def service_env(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """A service's env: its container's and its ConfigMap's."""
    variables = env(deployments(docs)[name])
    configmaps = by_kind(docs, "ConfigMap")
    for source in container(deployments(docs)[name]).get("envFrom", []):
        variables |= configmaps[source["configMapRef"]["name"]]["data"]
    return variables


def kafka_user_grants(user: dict[str, Any]) -> frozenset[Grant]:
    """A Strimzi KafkaUser's ACLs as grants of sales_common.acls' table."""
    assert user["spec"]["authorization"]["type"] == "simple"
    grants = set()
    for acl in user["spec"]["authorization"]["acls"]:
        assert acl.get("type", "allow") == "allow"
        assert acl.get("host", "*") == "*"
        resource = acl["resource"]
        for operation in acl["operations"]:
            grants.add(
                Grant(resource["type"], resource["name"], resource["patternType"], operation)
            )
    return frozenset(grants)


@pytest.mark.parametrize(
    "sets",
    [
        (),
        (
            "global.kafka.topics.raw.name=shop.raw",
            "global.kafka.topics.validatedPriority.name=shop.fast.validated",
            "validator.consumer.groupId=shop-validator",
            "validator.config.TRANSACTIONAL_ID_PREFIX=shop-validator",
            "loader.consumer.groupId=shop-loader",
        ),
    ],
    ids=["defaults", "renamed"],
)
def test_the_kafka_users_carry_the_acl_table_of_the_services(
    helm: str, sets: tuple[str, ...]
) -> None:
    docs = render(helm, scenario("operators"), *sets)
    (kafka,) = by_kind(docs, "Kafka").values()
    assert kafka["spec"]["kafka"]["authorization"] == {"type": "simple"}
    # The names the services are configured with, read back from their env.
    variables = {name: service_env(docs, name) for name in KAFKA_CLIENTS}
    names = AclNames(
        validator_group_id=variables["validator"]["VALIDATOR_GROUP_ID"],
        validator_transactional_id_prefix=variables["validator"].get(
            "VALIDATOR_TRANSACTIONAL_ID_PREFIX", "validator"
        ),
        loader_group_id=variables["loader"]["LOADER_GROUP_ID"],
    )
    for name in KAFKA_CLIENTS:
        topics = TopicSettings(
            **{
                role: variables[name][f"{name.upper()}_KAFKA__TOPICS__{role.upper()}"]
                for role in TopicSettings().names()
            }
        )
        user = by_kind(docs, "KafkaUser")[f"sales-pipeline-{name}"]
        assert kafka_user_grants(user) == table(topics, names)[name], name
    if sets:
        assert Grant("transactionalId", "shop-validator-", "prefix", "Write") in kafka_user_grants(
            by_kind(docs, "KafkaUser")["sales-pipeline-validator"]
        )


def test_external_kafka_takes_a_user_per_service(helm: str) -> None:
    docs = render(
        helm,
        scenario("everything"),
        "global.kafka.sasl.users.validator.username=shop-validator",
        "global.kafka.sasl.users.validator.existingSecret=kafka-validator",
    )
    validator = env(deployments(docs)["validator"])
    assert validator["VALIDATOR_KAFKA__SASL_USERNAME"] == "shop-validator"
    assert validator["VALIDATOR_KAFKA__SASL_PASSWORD"] == {
        "name": "kafka-validator",
        "key": "password",
    }
    # The others, and the topics Job, keep the shared user.
    assert env(deployments(docs)["loader"])["LOADER_KAFKA__SASL_USERNAME"] == "sales"
    assert env(by_kind(docs, "Job")["sales-sales-topics"])["KAFKA_SASL_USERNAME"] == "sales"


def test_cloudnativepg_secrets_exist_before_migrations_and_its_ca_is_verified(helm: str) -> None:
    docs = render(helm, scenario("operators"))
    (cluster,) = by_kind(docs, "Cluster").values()
    assert "helm.sh/hook" not in cluster["metadata"].get("annotations", {})
    migrate = by_kind(docs, "Job")["sales-sales-migrate"]
    hooks = migrate["metadata"]["annotations"]["helm.sh/hook"].split(",")
    # The Cluster (and so its -app Secret) is made with the release, before post-install
    # hooks; a pre-install hook would wait for a Secret that cannot exist yet.
    assert "pre-install" not in hooks
    assert "post-install" in hooks
    assert "pre-upgrade" in hooks
    variables = env(migrate)
    assert variables["MIGRATE_POSTGRES__DSN"] == {"name": "sales-pg-app", "key": "uri"}
    assert variables["MIGRATE_POSTGRES__SSLMODE"] == "verify-full"
    assert variables["MIGRATE_POSTGRES__SSLROOTCERT"] == "/etc/sales/postgres-ca/ca.crt"
    for name in ("ingest", "loader", "dashboard"):
        pod = deployments(docs)[name]["spec"]["template"]["spec"]
        assert {
            "name": "postgres-ca",
            "secret": {"secretName": "sales-pg-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]},
        } in pod["volumes"], name
        assert (
            env(deployments(docs)[name])[f"{name.upper()}_POSTGRES__DSN"]["name"] == "sales-pg-app"
        )
    # Without the operator the schema is applied before anything else starts.
    plain = by_kind(render(helm, scenario("defaults")), "Job")["sales-sales-migrate"]
    assert plain["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"


def test_renamed_topics_reach_every_service_the_topics_job_and_the_scaler(helm: str) -> None:
    docs = render(helm, scenario("everything"))
    expected = {
        "RAW": "shop.sales.raw",
        "VALIDATED": "shop.sales.validated",
        "REJECTED": "shop.sales.rejected",
        "RAW_PRIORITY": "shop.express.raw",  # named
        "VALIDATED_PRIORITY": "shop.sales.validated.priority",  # derived, as the services do
        "REJECTED_PRIORITY": "shop.sales.rejected.priority",
    }
    for name in ("ingest", "validator", "loader"):
        variables = env(deployments(docs)[name])
        got = {k: variables[f"{name.upper()}_KAFKA__TOPICS__{k}"] for k in expected}
        assert got == expected, name
    script = container(by_kind(docs, "Job")["sales-sales-topics"])["args"][0]
    assert all(f"{topic}:" in script for topic in expected.values())
    scaled = by_kind(docs, "ScaledObject")
    assert {t["metadata"]["topic"] for t in scaled["sales-validator"]["spec"]["triggers"]} == {
        "shop.sales.raw",
        "shop.express.raw",
    }
    operators = render(helm, scenario("operators"), "global.kafka.topics.raw.name=shop.raw")
    topics = {t["spec"]["topicName"] for t in by_kind(operators, "KafkaTopic").values()}
    assert {"shop.raw", "shop.raw.priority", "sales.validated.priority"} <= topics
    assert env(deployments(operators)["validator"])["VALIDATOR_KAFKA__TOPICS__RAW"] == "shop.raw"


def test_the_topics_job_runs_first_with_the_services_sasl_ssl_settings(helm: str) -> None:
    docs = render(helm, scenario("everything"))
    job = by_kind(docs, "Job")["sales-sales-topics"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    variables = env(job)
    assert variables["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert variables["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert variables["KAFKA_SASL_USERNAME"] == "sales"
    assert variables["KAFKA_SASL_PASSWORD"] == {"name": "kafka-user", "key": "password"}
    assert variables["KAFKA_CA_FILE"] == "/etc/sales/kafka-ca/ca.crt"
    script = container(job)["args"][0]
    assert '--command-config "$config"' in script
    assert "sasl.jaas.config=" in script
    assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


def test_the_migrations_job_runs_the_configured_loader_image(helm: str) -> None:
    docs = render(helm, scenario("everything"))
    migrate = by_kind(docs, "Job")["sales-sales-migrate"]
    assert container(migrate)["image"] == "ghcr.io/example/mirror/sales-loader:0.1.1"
    assert container(migrate)["image"] == container(deployments(docs)["loader"])["image"]
    assert migrate["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    digest = container(deployments(docs)["ingest"])["image"]
    assert digest.startswith("ghcr.io/example/sales-pipeline/ingest:0.1.0@sha256:")


def test_lag_scaling_is_capped_at_the_partitions(helm: str) -> None:
    docs = render(helm, scenario("operators"), "validator.autoscaling.maxReplicas=20")
    scaled = by_kind(docs, "ScaledObject")
    assert set(scaled) == {f"sales-{n}" for n in CONSUMERS}
    assert scaled["sales-validator"]["spec"]["maxReplicaCount"] == 6  # sales.raw's partitions
    assert scaled["sales-loader"]["spec"]["maxReplicaCount"] == 6
    for name in CONSUMERS:
        assert "replicas" not in deployments(docs)[name]["spec"]
        groups = {
            t["metadata"]["topic"]: t["metadata"]["consumerGroup"]
            for t in scaled[f"sales-{name}"]["spec"]["triggers"]
        }
        group = env(deployments(docs)[name])[f"{name.upper()}_GROUP_ID"]
        # Each lane is a consumer group of its own (validator/consumer.py, loader/consumer.py).
        assert groups == {
            topic: f"{group}.express" if topic.endswith(".priority") else group for topic in groups
        }
        assert set(groups.values()) == {group, f"{group}.express"}
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    both = refusal(helm, scenario("operators"), "validator.autoscaling.enabled=true")
    assert "choose one" in both


def test_monitoring_objects_carry_the_labels_kube_prometheus_stack_selects(helm: str) -> None:
    docs = render(helm, scenario("everything"))
    monitors = by_kind(docs, "ServiceMonitor")
    assert len(monitors) == 4
    for obj in [*monitors.values(), *by_kind(docs, "PrometheusRule").values()]:
        assert obj["metadata"]["labels"]["release"] == "monitoring"
    for doc in docs:  # GitOps: global labels and annotations on everything
        assert doc["metadata"]["labels"]["team"] == "sales", doc["metadata"]["name"]
        assert doc["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "1"
    (rule,) = by_kind(docs, "PrometheusRule").values()
    summaries = [r["annotations"]["summary"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert "More than 20% of rows are rejected" in summaries


def test_pods_take_scheduling_and_volume_extras_and_roll_on_chart_made_secrets(
    helm: str,
) -> None:
    docs = render(helm, scenario("everything"))
    ingest = deployments(docs)["ingest"]
    pod = ingest["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "sales-high"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert {"name": "spool", "emptyDir": {"sizeLimit": "20Gi"}} in pod["volumes"]
    assert {"name": "spool", "mountPath": "/spool"} in container(ingest)["volumeMounts"]
    assert (
        ingest["spec"]["template"]["metadata"]["annotations"]["example.com/scrape-team"] == "sales"
    )
    assert ingest["spec"]["template"]["metadata"]["labels"]["tier"] == "edge"
    account = by_kind(docs, "ServiceAccount")["sales-ingest"]
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
    loader = deployments(docs)["loader"]["spec"]["template"]["spec"]["affinity"]
    assert "nodeAffinity" in loader
    assert "podAntiAffinity" in loader

    def secret_checksum(jwt: str) -> str:
        made = render(
            helm,
            None,
            "global.secrets.create.enabled=true",
            f"global.secrets.create.jwtSecret={jwt}",
            "global.secrets.create.piiHmacKey=" + "p" * 40,
            "global.secrets.create.piiEncryptionKey=" + "q" * 40,
            "global.secrets.create.dashboardClients=clients-json",
            "global.secrets.create.postgresDsn=postgresql://sales:pw@db:5432/sales",
        )
        annotations = deployments(made)["ingest"]["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/secrets"])

    assert secret_checksum("a" * 40) != secret_checksum("b" * 40)


def test_hooks_and_optional_objects(helm: str) -> None:
    docs = render(helm, scenario("defaults"))
    jobs = by_kind(docs, "Job")
    migrate = jobs["sales-sales-migrate"]
    assert migrate["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert container(migrate)["args"] == ["migrate"]
    assert "sales-sales-topics" in jobs
    assert not by_kind(docs, "ServiceMonitor")
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    assert not by_kind(docs, "Pod")  # the test Pod needs tests.clientSecret
    everything = render(helm, scenario("everything"))
    assert set(by_kind(everything, "Ingress")) == {"sales-ingest", "sales-dashboard"}
    assert "sales-sales-dashboard" in by_kind(everything, "ConfigMap")
    test_pod = by_kind(everything, "Pod")["sales-sales-test"]
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = container(test_pod)["args"][0]
    assert "/oauth/token" in script
    assert "/api/v1/uploads" in script
    assert '"complete"' in script
    operators = render(helm, scenario("operators"))
    topics = {t["spec"]["topicName"] for t in by_kind(operators, "KafkaTopic").values()}
    assert topics == {
        f"sales.{name}{lane}"
        for name in ("raw", "validated", "rejected")
        for lane in ("", ".priority")
    }
    assert "sales-sales-topics" not in by_kind(operators, "Job")
    assert by_kind(operators, "KafkaNodePool")


def test_the_scheduled_intake_runs_the_client_on_the_volume(helm: str) -> None:
    docs = render(helm, scenario("everything"))
    cron = by_kind(docs, "CronJob")["sales-sales-sync"]
    assert (cron["spec"]["schedule"], cron["spec"]["timeZone"]) == ("30 1 * * *", "Europe/Berlin")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"  # runs never overlap
    job = cron["spec"]["jobTemplate"]
    pod = job["spec"]["template"]["spec"]
    (sync,) = pod["containers"]
    assert sync["command"] == ["sales-pipeline", "sync", "/intake"]
    assert sync["image"] == container(deployments(docs)["ingest"])["image"]
    assert pod["volumes"] == [
        {"name": "intake", "persistentVolumeClaim": {"claimName": "sales-intake"}}
    ]
    variables = env(job["spec"]["template"] | {"spec": pod})
    assert variables["SALES_CLIENT_SECRET"] == {"name": "sales-sync-client", "key": "client-secret"}
    assert variables["SALES_INGEST_URL"] == "http://sales-ingest:8000"
    assert sync["securityContext"]["readOnlyRootFilesystem"] is True
    policy = by_kind(docs, "NetworkPolicy")["sales-sales-sync"]
    assert policy["spec"]["ingress"] == []
    # Without a client or a folder, the chart refuses rather than rendering a job that fails.
    assert "sync.clientSecret" in refusal(helm, None, "sync.enabled=true")


def test_sales_raw_keeps_its_customer_ids_only_as_long_as_configured(helm: str) -> None:
    operators = render(helm, scenario("operators"), "global.kafka.rawRetentionMs=7200000")
    topics = {
        t["spec"]["topicName"]: t["spec"]["config"]
        for t in by_kind(operators, "KafkaTopic").values()
    }
    assert topics["sales.raw"]["retention.ms"] == 7200000
    assert topics["sales.raw.priority"]["retention.ms"] == 7200000
    assert "retention.ms" not in topics["sales.validated"]  # the public topic: the broker's
    job = by_kind(render(helm, scenario("defaults")), "Job")["sales-sales-topics"]
    script = container(job)["args"][0]
    assert "sales.raw:6:86400000" in script
    assert "sales.validated:6: " in script
    assert "kafka-configs.sh" in script  # also applied to topics made before


def published_strimzi_errors(models: Path, docs: list[dict[str, Any]]) -> list[str]:
    """Strimzi's objects against its published CRDs (types, enums, required fields); the
    hand-written subset (ci/crd-schemas) adds the check for fields the CRDs would prune."""
    strimzi = [d for d in docs if d["apiVersion"].startswith("kafka.strimzi.io/")]
    result = subprocess.run(
        ["node", str(Path(__file__).with_name("strimzi_check.mjs")), str(models)],
        input="".join(json.dumps(d) + "\n" for d in strimzi),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.stdout.splitlines()


def test_strimzi_objects_match_strimzis_published_crds(helm: str, strimzi_models: Path) -> None:
    docs = [d for s in ("operators", "everything") for d in render(helm, scenario(s))]
    kinds = {d["kind"] for d in docs if d["apiVersion"].startswith("kafka.strimzi.io/")}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"} <= kinds
    assert published_strimzi_errors(strimzi_models, docs) == []
    user = copy.deepcopy(next(d for d in docs if d["kind"] == "KafkaUser"))
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Reed"]
    kafka = copy.deepcopy(next(d for d in docs if d["kind"] == "Kafka"))
    kafka["spec"]["kafka"]["listeners"][0]["port"] = "9093"
    refused = published_strimzi_errors(strimzi_models, [user, kafka])
    assert len(refused) == 2, refused
