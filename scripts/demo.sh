#!/usr/bin/env bash
# The main job on the local testbed (run by `make demo`, with the testbed's addresses exported
# by testbed/env.sh): applies the topic catalog and registers the schemas, starts every
# lineage-bus role in one process (`lineage-bus up`: Dagster producer, OpenMetadata producer,
# processor, OpenLineage sink into the testbed's Marquez), runs the sample Dagster jobs, waits
# for the lineage to arrive, prints a summary, and stops the pipeline gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${LINEAGE_BUS_BIN:-target/debug/lineage-bus}"
ADMIN="127.0.0.1:${DEMO_ADMIN_PORT:-19464}"
LOG="testbed/.state/logs/demo-lineage-bus.log"
export LINEAGE_BUS__KAFKA__BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP"
export LINEAGE_BUS__KAFKA__REPLICATION_FACTOR=1
export LINEAGE_BUS__SCHEMA_REGISTRY__URL="$SCHEMA_REGISTRY_URL"
export LINEAGE_BUS__TENANT__ID=demo
export LINEAGE_BUS__ADMIN__LISTEN="$ADMIN"
export LINEAGE_BUS__UP__EMBEDDED_REGISTRY=false          # the testbed runs the registry
export LINEAGE_BUS__PRODUCERS__DAGSTER__POSTGRES_URL="$DAGSTER_PG_URL"
export LINEAGE_BUS__PRODUCERS__OPENMETADATA__URL="$OPENMETADATA_URL"
export LINEAGE_BUS__PRODUCERS__OPENMETADATA__JWT_TOKEN="$OPENMETADATA_JWT"
export LINEAGE_BUS__SINKS__OPENLINEAGE__URL="$MARQUEZ_URL"

step() { printf '\n==> %s\n' "$*"; }
# metric NAME [LABEL_TEXT]: the sum of a metric's series (those containing LABEL_TEXT).
metric() {
  curl -fsS "http://$ADMIN/metrics" |
    awk -v m="$1" -v l="${2:-}" 'index($1, m) == 1 && index($1, l) > 0 {s += $2} END {printf "%d", s}'
}

step "lineage-bus up: topics, producers, processor, OpenLineage sink (log: $LOG)"
"$BIN" up >"$LOG" 2>&1 &
UP_PID=$!
trap 'kill -TERM $UP_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fsS -o /dev/null "http://$ADMIN/health/ready" && break
  kill -0 "$UP_PID" 2>/dev/null || { tail -n 30 "$LOG"; echo "lineage-bus up exited" >&2; exit 1; }
  sleep 1
done
curl -fsS -o /dev/null "http://$ADMIN/health/ready" || { tail -n 30 "$LOG"; echo "lineage-bus up never became ready" >&2; exit 1; }

step "running the sample Dagster jobs (testbed/dagster/sample_project)"
testbed/dagster/run_jobs.sh

step "waiting for the lineage to reach Marquez"
total=$(psql "$DAGSTER_PG_URL" -Atc "select count(*) from event_logs")
previous=-1
for _ in $(seq 1 120); do
  lag=$(metric lineage_bus_producer_dagster_lag_rows)
  delivered=$(metric lineage_bus_sink_records_total 'outcome="delivered"')
  if (( lag == 0 )) && (( delivered == previous )) && (( delivered > 0 )); then break; fi
  previous=$delivered
  sleep 3
done

step "summary"
jobs=$(curl -fsS "$MARQUEZ_URL/api/v1/namespaces/dagster/jobs?limit=1000" | jq '.totalCount // (.jobs | length)')
cat <<SUMMARY
Dagster events in event_logs   $total
published to dagster.events    $(metric lineage_bus_producer_dagster_records_published_total)
processed by the processor     $(metric lineage_bus_processor_records_total 'outcome="processed"')
OpenLineage / OpenMetadata out $(curl -fsS "http://$ADMIN/metrics" | awk '/^lineage_bus_processor_outputs_total/ {printf "%s=%s ", $1, $2}')
delivered to Marquez           $(metric lineage_bus_sink_records_total 'outcome="delivered"')
Marquez ($MARQUEZ_KIND)        $MARQUEZ_URL: $jobs jobs in namespace dagster
  jobs:    $MARQUEZ_URL/api/v1/namespaces/dagster/jobs
  lineage: $MARQUEZ_URL/api/v1/lineage?nodeId=job:dagster:transform_job
Dagster UI ${DAGSTER_GRAPHQL_URL%/graphql}
Stop the testbed with: make down
SUMMARY
