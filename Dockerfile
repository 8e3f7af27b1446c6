# syntax=docker/dockerfile:1.7
# One image definition for the four services: `docker build --build-arg SERVICE=ingest .`
# Built from the repository root; dependencies come from uv.lock.

# Both base images are build-args (defaults from Docker Hub and GHCR); `make test-containers`
# builds this same file with podman from local stand-ins (deploy/containers/).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
ARG SERVICE
# The validator's and the loader's per-row paths (libs/native) are Rust, which maturin builds
# here: cargo and a linker in this stage only, from Debian (rustc-web: the crate's rust-version
# follows it). Unpinned: libc6-dev must match the base's libc6, whatever its security update.
# hadolint ignore=DL3008
RUN if [ "$SERVICE" = validator ] || [ "$SERVICE" = loader ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends cargo-web rustc-web gcc libc6-dev \
      && rm -rf /var/lib/apt/lists/*; \
    fi
# Third-party dependencies first, in their own cached layer: only uv.lock changes rebuild it.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY libs/native/pyproject.toml libs/native/
COPY services/ingest/pyproject.toml services/ingest/
COPY services/validator/pyproject.toml services/validator/
COPY services/loader/pyproject.toml services/loader/
COPY services/dashboard/pyproject.toml services/dashboard/
COPY tools/devstack/pyproject.toml tools/devstack/
COPY tools/cli/pyproject.toml tools/cli/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package "sales-${SERVICE}"
COPY libs/common libs/common
COPY libs/native libs/native
COPY services/${SERVICE} services/${SERVICE}
# The client, which ingest's image carries for the scheduled intake (small; unused elsewhere).
COPY tools/cli tools/cli
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "sales-${SERVICE}"

FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
ARG PORT=8000
RUN groupadd --system --gid 10001 sales \
 && useradd --system --uid 10001 --gid sales --no-create-home --shell /usr/sbin/nologin sales \
 && touch /var/log/sales.log && chown sales:sales /var/log/sales.log
COPY --from=build --chown=root:root /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SERVICE=${SERVICE} \
    LOG_FILE=/var/log/sales.log
USER 10001:10001
EXPOSE ${PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os,urllib.request; s=os.environ['SERVICE'].upper(); urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get(s + '_PORT', '8000'), timeout=2)"]
# Exec form: the Python process is PID 1 and receives SIGTERM itself.
# `docker run IMAGE migrate` applies the database migrations (sales_common.schema, in every
# image) with MIGRATE_POSTGRES__DSN and exits.
ENTRYPOINT ["python", "-m", "sales_common.entrypoint"]
