#!/usr/bin/env bash
# Creates (or updates) the peer's venv testbed/.venv-peer from testbed/peer/requirements.txt and
# prints its python. Idempotent: nothing is installed when the requirements did not change.
# Used by the golden test (tests/golden_dagster_openlineage.rs) and the processor_throughput
# load test; `make test` runs it before the Rust tests.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
TESTBED_VENV="$TESTBED_DIR/.venv-peer" ensure_venv_requirements "$TESTBED_DIR/peer/requirements.txt" .peer-requirements
echo "$TESTBED_DIR/.venv-peer/bin/python"
