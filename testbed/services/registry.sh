#!/usr/bin/env bash
# The Schema Registry role of lineage-bus itself (`lineage-bus registry`, Confluent API), on
# 127.0.0.1:$REGISTRY_PORT with its state in Kafka's `_schemas` topic. Needs Kafka.
# (No Confluent-compatible registry installs from the package registries this machine reaches;
# in production point lineage-bus at Confluent, Karapace or Apicurio instead.)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

NAME=registry
BIN="${LINEAGE_BUS_BIN:-$REPO_DIR/target/debug/lineage-bus}"
URL="http://127.0.0.1:$REGISTRY_PORT"

ready() { curl -fsS -o /dev/null "$URL/subjects"; }

start() {
  if pid_alive "$NAME" && ready; then log "registry already running on $URL"; return; fi
  stop_bg "$NAME"
  port_open "$REGISTRY_PORT" && die "registry: port $REGISTRY_PORT is already in use (set TESTBED_REGISTRY_PORT)"
  port_open "$KAFKA_PORT" || die "registry: Kafka is not running on 127.0.0.1:$KAFKA_PORT (use testbed/up.sh registry, which starts it first)"
  if [[ -z "${LINEAGE_BUS_BIN:-}" ]]; then
    log "registry: building lineage-bus (cargo build --bin lineage-bus)"
    (cd "$REPO_DIR" && cargo build --quiet --bin lineage-bus) || die "registry: cargo build failed"
  fi
  [[ -x "$BIN" ]] || die "registry: $BIN not found"
  log "starting registry on $URL"
  LINEAGE_BUS__KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT" \
  LINEAGE_BUS__KAFKA__REPLICATION_FACTOR=1 \
  LINEAGE_BUS__REGISTRY__LISTEN="127.0.0.1:$REGISTRY_PORT" \
  LINEAGE_BUS__ADMIN__LISTEN="127.0.0.1:$((REGISTRY_PORT + 1))" \
    start_bg "$NAME" "$BIN" registry
  wait_until "$NAME" 60 ready
  log "registry ready on $URL"
}

stop() { stop_bg "$NAME"; }

"${1:?usage: registry.sh start|stop}"
