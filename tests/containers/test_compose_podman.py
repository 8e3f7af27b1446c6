"""The images and compose.yaml for real, with podman: the Dockerfile built unchanged (base images
by build-arg), Kafka from the Maven-resolved jars, PostgreSQL from Debian's packages, the stack
started from compose.yaml, and the seed files uploaded through the published ports.

Secrets are generated for the run into a `.env` file (mode 0600) beside a copy of compose.yaml,
as a user would write theirs; containers, volumes and the network are removed afterwards.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from functools import partial
from secrets import token_urlsafe

import httpx
import pytest
from devstack.pipeline import free_port
from devstack.processes import wait_until
from devstack.secrets import StackSecrets, generate
from sales_cli.client import PipelineClient
from sales_common.services import SERVICES

from tests.conftest import ARTIFACTS, DATA
from tests.containers.images import Images, build_all, podman
from tests.containers.stack import ComposeStack, remove_project
from tests.helpers import run_cli

pytestmark = [pytest.mark.containers, pytest.mark.timeout(2400)]

PROJECT = "sales-containers-test"
TAG = "containers-test"
LONG_RUNNING = ["kafka", "postgres", *SERVICES]
ONE_SHOTS = ["topics", "acls", "migrate"]
TIMINGS: dict[str, float] = {}


def env_file(secrets: StackSecrets) -> str:
    """A user's .env for compose.yaml. Single quotes: the argon2 hashes hold `$`, which
    compose would otherwise try to interpolate."""
    values = {
        "POSTGRES_PASSWORD": secrets.postgres_password,
        "JWT_SECRET": secrets.jwt_secret,
        "PII_HMAC_KEY": secrets.pii_hmac_key,
        "PII_ENCRYPTION_KEY": secrets.pii_encryption_key,
        "DASHBOARD_CLIENTS": secrets.clients_json(),
        # Kafka's admin and the services' principals (compose's `acls` one-shot makes them).
        **{
            f"KAFKA_{name}_PASSWORD": token_urlsafe(32)
            for name in ("ADMIN", "INGEST", "VALIDATOR", "LOADER")
        },
    }
    return "".join(f"{key}='{value}'\n" for key, value in values.items())


@pytest.fixture(scope="module")
def images() -> Images:
    started = time.monotonic()
    built = build_all(TAG)
    TIMINGS["build_s"] = round(time.monotonic() - started, 1)
    return built


@pytest.fixture(scope="module")
def stack(
    images: Images, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ComposeStack, PipelineClient, StackSecrets]]:
    workdir = tmp_path_factory.mktemp("compose")
    secrets = generate()
    dotenv = workdir / ".env"
    dotenv.touch(mode=0o600)
    dotenv.write_text(env_file(secrets))
    ingest, dashboard = free_port(), free_port()
    stack = ComposeStack(
        project=PROJECT,
        workdir=workdir,
        env={
            "TAG": TAG,
            "KAFKA_IMAGE": images.kafka,
            "POSTGRES_IMAGE": images.postgres,
            "INGEST_PUBLISH": f"127.0.0.1:{ingest}",
            "DASHBOARD_PUBLISH": f"127.0.0.1:{dashboard}",
        },
        services=list(SERVICES),  # and what they depend on; not the monitoring profile
    )
    remove_project(f"label=io.podman.compose.project={PROJECT}", f"{PROJECT}_default")
    volumes_before = set(podman("volume", "ls", "-q").stdout.split())
    client = PipelineClient(f"http://127.0.0.1:{ingest}", f"http://127.0.0.1:{dashboard}")
    started = time.monotonic()
    try:
        stack.up(timeout_s=300)
        for url in (client.ingest_url, client.dashboard_url):
            wait_until(partial(ready, url), 120, f"{url}/readyz", interval_s=0.5)
        for service in SERVICES:  # compose.yaml's healthchecks: /readyz inside each container
            wait_until(partial(stack.healthy, service), 120, f"{service} healthy", 1)
        TIMINGS["start_s"] = round(time.monotonic() - started, 1)
        yield stack, client, secrets
    finally:
        client.close()
        stack.save_logs(ARTIFACTS / "containers")
        started = time.monotonic()
        stack.down()
        TIMINGS["down_s"] = round(time.monotonic() - started, 1)
        left = podman("ps", "-a", "-q", "--filter", f"label=io.podman.compose.project={PROJECT}")
        assert left.stdout.split() == [], "containers left behind"
        assert set(podman("volume", "ls", "-q").stdout.split()) <= volumes_before, "volumes left"
        (ARTIFACTS / "containers").mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "containers" / "timings.json").write_text(
            json.dumps({**TIMINGS, "image_build_s": images.seconds}, indent=2)
        )


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def cli(
    client: PipelineClient, secrets: StackSecrets, client_id: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """The sales-pipeline client, as `make run` uses it, pointed at the published ports."""
    return run_cli(
        client.ingest_url, client.dashboard_url, client_id, secrets.client_secrets[client_id], *args
    )


def test_seed_files_give_the_expected_outcomes(
    stack: tuple[ComposeStack, PipelineClient, StackSecrets],
) -> None:
    _, client, secrets = stack
    upload = cli(client, secrets, "uploader", "upload", "--wait", "--json", str(DATA / "sales.csv"))
    assert upload.returncode == 0, upload.stderr
    (result,) = json.loads(upload.stdout)
    assert (result["status"], result["rows_total"]) == ("complete", 6)
    assert (result["valid_count"], result["rejected_count"]) == (3, 3)
    assert Decimal(result["valid_amount"]) == Decimal("2499.83")

    viewer = client.token("viewer", secrets.client_secrets["viewer"])
    detail = client.upload_detail(result["upload_id"], viewer)
    reasons = {
        row["row_number"]: [v["rule"] for v in row["violations"]] for row in detail["rejections"]
    }
    assert reasons == {4: ["required"], 5: ["prefix", "number"], 6: ["prefix", "range"]}
    summary = client.summary(viewer)
    assert Decimal(summary["total_sales"]) == Decimal("2499.83")
    assert (summary["valid_count"], summary["rejected_count"]) == (3, 3)

    refused = cli(client, secrets, "uploader", "upload", str(DATA / "invalid.csv"))
    assert refused.returncode == 5, refused.stderr
    assert "422" in refused.stderr
    assert "missing required columns: product" in refused.stderr


def test_containers_run_non_root_on_a_read_only_root(
    stack: tuple[ComposeStack, PipelineClient, StackSecrets],
) -> None:
    compose, _, _ = stack
    for service in LONG_RUNNING:
        container = compose.container(service)
        state = compose.inspect(service)
        assert state["State"]["Running"], service
        assert state["HostConfig"]["ReadonlyRootfs"], service
        # The processes themselves, seen from the host: no root among them.
        users = podman("top", container, "user", "pid").stdout.split()[2::2]
        assert users, service
        assert "root" not in users, (service, users)
        # A write outside the tmpfs and volume mounts is refused by the kernel.
        write = podman("exec", container, "touch", "/probe", check=False)
        assert write.returncode != 0, service
        assert "Read-only file system" in write.stderr, (service, write.stderr)
        whoami = podman("exec", container, "id", "-u").stdout.strip()
        assert whoami != "0", service
    for service in ONE_SHOTS:
        state = compose.inspect(service)
        assert state["State"]["ExitCode"] == 0, service
        assert state["HostConfig"]["ReadonlyRootfs"], service
        assert state["Config"]["User"] not in ("", "0", "root"), (service, state["Config"]["User"])


def test_compose_healthchecks_pass_inside_the_containers(
    stack: tuple[ComposeStack, PipelineClient, StackSecrets],
) -> None:
    compose, _, _ = stack
    for service in LONG_RUNNING:
        assert compose.healthy(service), service


def test_the_stack_is_named_by_service_on_its_own_network(
    stack: tuple[ComposeStack, PipelineClient, StackSecrets],
) -> None:
    compose, _, _ = stack
    networks = compose.inspect("loader")["NetworkSettings"]["Networks"]
    assert list(networks) == [f"{PROJECT}_default"]
    # Only the two published ports reach the host, on loopback.
    published = {
        (service, port, binding["HostIp"])
        for service in LONG_RUNNING
        for port, bindings in (compose.inspect(service)["HostConfig"]["PortBindings"] or {}).items()
        for binding in bindings or []
        if binding.get("HostPort")
    }
    assert published == {
        ("ingest", "8000/tcp", "127.0.0.1"),
        ("dashboard", "8000/tcp", "127.0.0.1"),
    }
