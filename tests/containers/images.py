"""The pipeline's images built with podman where no image registry is reachable.

Everything comes from the project's files and the package registries this machine reaches:
- `localhost/sales-debian:bookworm`: a debootstrap tree of Debian bookworm with this machine's
  CA bundle, imported with `podman import` (the tree is cached as a tarball in .stack/containers);
- `localhost/sales-python:3.11-bookworm`: Debian's Python 3.11 on it (the Dockerfile's
  PYTHON_IMAGE);
- `localhost/sales-uv:<version>`: the uv binary of the PyPI package at the Dockerfile's version
  (its UV_IMAGE);
- the four services from the project's Dockerfile, unchanged, with those two build-args;
- `localhost/sales-kafka:<version>` from the jars that devstack resolves with Maven;
- `localhost/sales-postgres:15-bookworm` from Debian's postgresql-15.

`python -m tests.containers.images` builds them all. Re-runs are quick: the imported images
carry a hash of what made them, and podman caches the layers of everything it builds.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devstack import kafka as devstack_kafka
from devstack.config import StackConfig
from sales_common.services import SERVICES

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "containers"
CACHE = REPO / ".stack" / "containers"
CONTAINERS_CONF = DEPLOY / "containers.conf"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "bookworm"
DEBOOTSTRAP_INCLUDE = ("ca-certificates",)
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_LOCAL_CAS = Path("/usr/local/share/ca-certificates")

BASE_IMAGE = "localhost/sales-debian:bookworm"
PYTHON_IMAGE = "localhost/sales-python:3.11-bookworm"
POSTGRES_IMAGE = "localhost/sales-postgres:15-bookworm"
RECIPE_LABEL = "sales.recipe"


class ImageError(RuntimeError):
    pass


def podman_env() -> dict[str, str]:
    """The environment of every podman call: the project's containers.conf (runc, ulimits)."""
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(
    *args: str, check: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise ImageError(f"podman {' '.join(args)}: {result.stderr.strip()[-2000:]}")
    return result


def build(*args: str) -> None:
    """`podman build` with its output in .stack/containers/build.log (long; only the tail
    of a failure is shown)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    log = CACHE / "build.log"
    with log.open("a") as out:
        out.write(f"\n$ podman build {' '.join(args)}\n")
        out.flush()
        result = subprocess.run(
            ["podman", "build", "--format", "docker", *args],
            env=podman_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        tail = log.read_text().splitlines()[-40:]
        raise ImageError("podman build failed:\n" + "\n".join(tail))


def image_label(image: str, label: str) -> str | None:
    found = podman(
        "image", "inspect", "--format", f'{{{{index .Labels "{label}"}}}}', image, check=False
    )
    if found.returncode != 0:
        return None
    return found.stdout.strip()


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:16]


def _host_cas() -> list[Path]:
    return sorted(HOST_LOCAL_CAS.glob("*.crt")) if HOST_LOCAL_CAS.is_dir() else []


def base_recipe() -> str:
    """What the debootstrap base depends on: suite, packages and this machine's CAs."""
    parts = [DEBIAN_SUITE.encode(), ",".join(DEBOOTSTRAP_INCLUDE).encode()]
    parts += [HOST_CA_BUNDLE.read_bytes()] + [p.read_bytes() for p in _host_cas()]
    return _digest(*parts)


def _debootstrap_tarball(recipe: str) -> Path:
    tarball = CACHE / f"debian-{DEBIAN_SUITE}-{recipe}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is missing (apt-get install debootstrap)")
    CACHE.mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob(f"debian-{DEBIAN_SUITE}-*.tar"):
        stale.unlink()
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        root = Path(work) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(DEBOOTSTRAP_INCLUDE)}",
                DEBIAN_SUITE,
                str(root),
                DEBIAN_MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # The machine's CA bundle, and its local CAs where update-ca-certificates finds them
        # again (installing Java regenerates the bundle): TLS to the package registries from
        # inside a build goes through the same interception as on the host.
        shutil.copy2(HOST_CA_BUNDLE, root / "etc/ssl/certs/ca-certificates.crt")
        local = root / "usr/local/share/ca-certificates"
        local.mkdir(parents=True, exist_ok=True)
        for ca in _host_cas():
            shutil.copy2(ca, local / ca.name)
        # No downloaded package lists or .debs in the image.
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True)
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
    return tarball


def base_image() -> str:
    recipe = base_recipe()
    if image_label(BASE_IMAGE, RECIPE_LABEL) == recipe:
        return BASE_IMAGE
    tarball = _debootstrap_tarball(recipe)
    podman(
        "import",
        "--change",
        f"LABEL {RECIPE_LABEL}={recipe}",
        "--change",
        f"ENV SSL_CERT_FILE={HOST_CA_BUNDLE}",
        "--change",
        "ENV LANG=C.UTF-8",
        "--change",
        'CMD ["/bin/bash"]',
        str(tarball),
        BASE_IMAGE,
    )
    return BASE_IMAGE


def dockerfile_default(arg: str) -> str:
    """The default value of a build-arg of the project's Dockerfile."""
    text = (REPO / "Dockerfile").read_text()
    match = re.search(rf"^ARG {arg}=(\S+)$", text, re.M)
    if match is None:
        raise ImageError(f"the Dockerfile has no default for {arg}")
    return match.group(1)


def uv_version() -> str:
    return dockerfile_default("UV_IMAGE").rsplit(":", 1)[1]


def uv_image() -> str:
    """The Dockerfile's UV_IMAGE (only /uv is used) from the uv package on PyPI."""
    version = uv_version()
    image = f"localhost/sales-uv:{version}"
    if image_label(image, RECIPE_LABEL) == version:
        return image
    found = subprocess.run(
        [
            "uv",
            "run",
            "--no-project",
            "--with",
            f"uv=={version}",
            "python",
            "-c",
            "import uv; print(uv.find_uv_bin())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    binary = Path(found.stdout.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as work:
        shutil.copy2(binary, Path(work) / "uv")
        tarball = Path(work) / "uv.tar"
        subprocess.run(["tar", "-C", work, "-cf", str(tarball), "uv"], check=True)
        podman("import", "--change", f"LABEL {RECIPE_LABEL}={version}", str(tarball), image)
    return image


def python_image() -> str:
    build("--build-arg", f"BASE_IMAGE={base_image()}", "-t", PYTHON_IMAGE, str(DEPLOY / "python"))
    return PYTHON_IMAGE


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", devstack_kafka.POM.read_text())
    if match is None:
        raise ImageError("kafka-pom.xml names no kafka.version")
    return match.group(1)


def kafka_image() -> str:
    """Kafka from the jars devstack resolves with Maven (into .stack/kafka/libs)."""
    config = StackConfig(root=REPO / ".stack")
    devstack_kafka.install(config)
    context = CACHE / "kafka-context"
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(DEPLOY / "kafka", context)
    shutil.copytree(
        devstack_kafka.libs_dir(config), context / "libs", ignore=shutil.ignore_patterns(".*")
    )
    image = f"localhost/sales-kafka:{kafka_version()}"
    build("--build-arg", f"BASE_IMAGE={base_image()}", "-t", image, str(context))
    return image


def postgres_image() -> str:
    build(
        "--build-arg",
        f"BASE_IMAGE={base_image()}",
        "-t",
        POSTGRES_IMAGE,
        str(DEPLOY / "postgres"),
    )
    return POSTGRES_IMAGE


def service_image(service: str, tag: str, python: str, uv: str) -> str:
    """One service from the project's Dockerfile, as compose.yaml names it."""
    image = f"sales-pipeline/{service}:{tag}"
    build(
        "--build-arg",
        f"SERVICE={service}",
        "--build-arg",
        f"PYTHON_IMAGE={python}",
        "--build-arg",
        f"UV_IMAGE={uv}",
        "-f",
        str(REPO / "Dockerfile"),
        "-t",
        image,
        str(REPO),
    )
    return image


@dataclass(frozen=True)
class Images:
    kafka: str
    postgres: str
    services: dict[str, str]
    seconds: dict[str, float]


def build_all(tag: str) -> Images:
    """Every image, in the order a cold build needs them; seconds taken by each step."""
    if shutil.which("podman") is None:
        raise ImageError("podman is missing (apt-get install podman runc)")
    seconds: dict[str, float] = {}
    started = time.monotonic()

    def lap(step: str) -> None:
        nonlocal started
        seconds[step] = round(time.monotonic() - started, 1)
        started = time.monotonic()

    base_image()
    lap("debian")
    python, uv = python_image(), uv_image()
    lap("python+uv")
    services = {service: service_image(service, tag, python, uv) for service in SERVICES}
    lap("services")
    kafka = kafka_image()
    lap("kafka")
    postgres = postgres_image()
    lap("postgres")
    return Images(kafka=kafka, postgres=postgres, services=services, seconds=seconds)


def main() -> None:
    tag = sys.argv[1] if len(sys.argv) > 1 else "dev"
    images = build_all(tag)
    for name in (*images.services.values(), images.kafka, images.postgres):
        print(name)
    print(f"seconds: {images.seconds}")


if __name__ == "__main__":
    main()
