#!/usr/bin/env bash
# OpenMetadata on 127.0.0.1:$OPENMETADATA_PORT: the OpenMetadata CONTRACT server (testbed/openmetadata_contract),
# because the real OpenMetadata server cannot be had here (see below and testbed/openmetadata_contract/README.md).
#
# What was tried for the real one: org.open-metadata:openmetadata-service and openmetadata-dist are not on the
# Maven Central this workplace reaches (maven-metadata.xml and every pom answer 404; `mvn dependency:get` reports
# them missing), no other reachable registry ships the server (PyPI has only the ingestion client), and
# OpenMetadata also needs Elasticsearch/OpenSearch, which no Debian package provides. Only the
# openmetadata-spec jar (JSON Schemas) resolves. TESTBED_OPENMETADATA=real re-checks Maven Central and fails
# loudly; the default (auto/contract) starts the contract server.
#
# The contract server validates every request body against the official OpenMetadata JSON Schemas in
# $REPO_DIR/../shared/openmetadata-spec (or OPENMETADATA_SPEC_DIR) and requires `Authorization: Bearer
# $OPENMETADATA_JWT` (testbed/env.sh exports it; a fixed test token). State: an append-only journal
# $STATE_DIR/openmetadata-contract/openmetadata.jsonl (deleting it while stopped = dropping the database).
# The running kind is written to $STATE_DIR/openmetadata.kind and exported by env.sh as OPENMETADATA_KIND.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

NAME=openmetadata
MODE="${TESTBED_OPENMETADATA:-auto}"
URL="http://127.0.0.1:$OPENMETADATA_PORT"
KIND_FILE="$STATE_DIR/$NAME.kind"
CONTRACT_REQ="$TESTBED_DIR/openmetadata_contract/requirements.txt"
JOURNAL="$STATE_DIR/openmetadata-contract/openmetadata.jsonl"
SPEC_DIR="${OPENMETADATA_SPEC_DIR:-$REPO_DIR/../shared/openmetadata-spec}"
CENTRAL=https://repo1.maven.org/maven2/org/open-metadata

ready() { curl -fsS -o /dev/null -H "Authorization: Bearer $OPENMETADATA_JWT" "$URL/api/v1/tables?limit=1"; }

# real_available: true when the OpenMetadata server artifact resolves from Maven Central.
real_available() {
  local a
  for a in openmetadata-service openmetadata-dist; do
    [[ "$(curl -sS -o /dev/null -w '%{http_code}' --max-time 20 "$CENTRAL/$a/maven-metadata.xml" || true)" == 200 ]] && return 0
  done
  return 1
}

start_contract() {
  [[ -f "$SPEC_DIR/Table.schema.json" ]] || die "openmetadata: the OpenMetadata schemas are missing: $SPEC_DIR/Table.schema.json (the shared/openmetadata-spec beside the repo, or set OPENMETADATA_SPEC_DIR)"
  ensure_venv_requirements "$CONTRACT_REQ" .openmetadata-contract-requirements.sha256
  mkdir -p "$(dirname "$JOURNAL")"
  log "starting $NAME (OpenMetadata CONTRACT server) on $URL (journal $JOURNAL)"
  start_bg "$NAME" env PYTHONPATH="$TESTBED_DIR" OPENMETADATA_SPEC_DIR="$SPEC_DIR" \
    "$TESTBED_VENV/bin/python" -m openmetadata_contract --host 127.0.0.1 --port "$OPENMETADATA_PORT" \
    --journal "$JOURNAL" --jwt-token "$OPENMETADATA_JWT" --readonly-token "$OPENMETADATA_READONLY_JWT"
  echo contract >"$KIND_FILE"
  wait_until "$NAME" 120 ready   # replaying a long journal takes a few seconds
  log "$NAME ready on $URL (OpenMetadata CONTRACT server)"
}

start() {
  case "$MODE" in real|contract|auto) ;; *) die "TESTBED_OPENMETADATA must be real, contract or auto (got '$MODE')" ;; esac
  if pid_alive "$NAME"; then
    wait_until "$NAME" 120 ready
    log "$NAME already running on $URL ($(cat "$KIND_FILE" 2>/dev/null || echo unknown))"; return
  fi
  port_open "$OPENMETADATA_PORT" && die "openmetadata: port $OPENMETADATA_PORT is already in use by another process (set TESTBED_OPENMETADATA_PORT)"
  command -v curl >/dev/null || die "curl not found (install Debian package 'curl')"
  rm -f "$KIND_FILE"
  if [[ "$MODE" == real ]]; then
    real_available || die "openmetadata: TESTBED_OPENMETADATA=real, but org.open-metadata:openmetadata-service/openmetadata-dist do not resolve from Maven Central ($CENTRAL: 404), and no search engine installs here"
    die "openmetadata: the OpenMetadata server now resolves from Maven Central; running it (with OpenSearch) is not scripted yet"
  fi
  [[ "$MODE" == auto ]] && log "openmetadata: the real OpenMetadata server is not resolvable here (openmetadata-service/openmetadata-dist: 404 on Maven Central; no Elasticsearch/OpenSearch package); starting the OpenMetadata CONTRACT server instead (testbed/openmetadata_contract)"
  start_contract
}

stop() { stop_bg "$NAME"; rm -f "$KIND_FILE"; }

"${1:?usage: openmetadata.sh start|stop}"
