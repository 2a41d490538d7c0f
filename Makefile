# lineage-bus: the commands the README names. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
CARGO ?= cargo
VENV_PY := testbed/.venv/bin/python

.PHONY: help demo test test-rust test-contract lint fmt build up down env topics schema-release load-ingest load-process bench-process

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

demo: ## The main job on the local testbed: services up, every role running, sample Dagster jobs, summary
	testbed/up.sh all
	$(CARGO) build --quiet --bin lineage-bus
	source <(testbed/env.sh) && scripts/demo.sh

test: ## Every test, against the real testbed services (starts them, runs the sample jobs once)
	testbed/up.sh all
	testbed/dagster/run_jobs.sh --if-empty
	testbed/dagster/run_jobs_sqlite.sh --if-empty
	testbed/dagster/run_jobs_sqlite.sh --if-empty --layout consolidated
	testbed/peer/setup.sh >/dev/null  # dagster-openlineage, the golden test's peer
	$(MAKE) --no-print-directory topics test-rust test-contract  # tests on the catalog topics need them

test-rust: ## Rust unit and integration tests (the testbed must be up)
	source <(testbed/env.sh) && $(CARGO) test --workspace --all-targets --no-fail-fast

test-contract: ## Tests of the Marquez and OpenMetadata contract servers (used when the real ones cannot run)
	$(VENV_PY) -m pytest -q -p no:cacheprovider testbed/marquez_contract/test_contract.py \
	  testbed/openmetadata_contract/test_contract.py

load-ingest: ## Requests/s of Dagster's external-asset endpoint and of `ingest` (testbed up; 2000 rows into Dagster)
	source <(testbed/env.sh) && $(CARGO) run --release -p load-tests --bin ingest_load

load-process: ## Records/s per core of the processor alone and of `process` through the real Kafka, beside dagster-openlineage's converter (testbed up)
	$(CARGO) build --release -p lineage-bus -p load-tests
	source <(testbed/env.sh) && target/release/processor_throughput --events $${EVENTS:-200000}

bench-process: ## Criterion: records/s per core of the processor alone (decode, join, OpenLineage JSON, OpenMetadata Avro)
	$(CARGO) bench -p lineage-processors --bench processor

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings

fmt: ## Format the Rust code
	$(CARGO) fmt --all

build: ## Release build of the binary
	$(CARGO) build --release --bin lineage-bus

up: ## Start the testbed services (Kafka, PostgreSQL, registry, Marquez, Dagster)
	testbed/up.sh all

down: ## Stop every testbed service
	testbed/down.sh

env: ## Print the testbed's addresses as shell exports
	@testbed/env.sh

topics: ## Create or reconcile the topics on the testbed Kafka
	source <(testbed/env.sh) && LINEAGE_BUS__KAFKA__BOOTSTRAP_SERVERS=$$KAFKA_BOOTSTRAP \
	  LINEAGE_BUS__SCHEMA_REGISTRY__URL=$$SCHEMA_REGISTRY_URL \
	  LINEAGE_BUS__KAFKA__REPLICATION_FACTOR=1 $(CARGO) run --quiet --bin lineage-bus -- topics apply

schema-release: ## Record the working .avsc files as the next released versions
	scripts/schema-release.sh
