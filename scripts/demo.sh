#!/usr/bin/env bash
# The main job on the local testbed (run by `make demo`, with the testbed's addresses exported
# by testbed/env.sh): every lineage-bus role in one process (`lineage-bus up`: topics applied,
# Dagster producer, OpenMetadata producer, processor, OpenLineage sink into the testbed's
# Marquez, OpenMetadata sink into the testbed's OpenMetadata), the sample Dagster jobs run once
# (when Dagster holds no runs yet), and a summary once everything is delivered; then a graceful
# stop. About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${LINEAGE_BUS_BIN:-target/debug/lineage-bus}"
ADMIN="127.0.0.1:${DEMO_ADMIN_PORT:-19464}"
LOG="testbed/.state/logs/demo-lineage-bus.log"
TENANT=demo
export LINEAGE_BUS__KAFKA__BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP"
export LINEAGE_BUS__KAFKA__REPLICATION_FACTOR=1
export LINEAGE_BUS__SCHEMA_REGISTRY__URL="$SCHEMA_REGISTRY_URL"
export LINEAGE_BUS__TENANT__ID="$TENANT"
export LINEAGE_BUS__ADMIN__LISTEN="$ADMIN"
export LINEAGE_BUS__INGEST__LISTEN="127.0.0.1:${DEMO_INGEST_PORT:-13030}"   # Dagster's external-asset API
export LINEAGE_BUS__UP__EMBEDDED_REGISTRY=false          # the testbed runs the registry
export LINEAGE_BUS__PRODUCERS__DAGSTER__POSTGRES_URL="$DAGSTER_PG_URL"
export LINEAGE_BUS__PRODUCERS__DAGSTER__GRAPHQL__URL="$DAGSTER_GRAPHQL_URL"   # the asset graph
export LINEAGE_BUS__PRODUCERS__OPENMETADATA__URL="$OPENMETADATA_URL"
export LINEAGE_BUS__PRODUCERS__OPENMETADATA__JWT_TOKEN="$OPENMETADATA_JWT"
export LINEAGE_BUS__SINKS__OPENLINEAGE__URL="$MARQUEZ_URL"
export LINEAGE_BUS__SINKS__OPENMETADATA__URL="$OPENMETADATA_URL"
export LINEAGE_BUS__SINKS__OPENMETADATA__JWT_TOKEN="$OPENMETADATA_JWT"

step() { printf '\n==> %s\n' "$*"; }
# metric NAME [LABEL_TEXT...]: the sum of a metric's series (those containing every LABEL_TEXT).
metric() {
  local name=$1; shift
  curl -fsS "http://$ADMIN/metrics" | awk -v m="$name" -v labels="$*" '
    BEGIN { n = split(labels, want, " ") }
    { split($1, parts, "{") }
    parts[1] == m { ok = 1; for (i = 1; i <= n; i++) if (index($1, want[i]) == 0) ok = 0; if (ok) s += $2 }
    END { printf "%d", s }'
}
om() { curl -fsS -H "Authorization: Bearer $OPENMETADATA_JWT" "$OPENMETADATA_URL$1"; }

# The warehouse tables the sample assets write, as OpenMetadata's database connector would have
# ingested them (the contract server's fixture endpoint; a real OpenMetadata has them already).
if [[ "${OPENMETADATA_KIND:-}" == contract ]]; then
  step "OpenMetadata catalog: the warehouse tables of the sample assets (service 'warehouse')"
  curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' \
    --data @scripts/demo-catalog.json "$OPENMETADATA_URL/contract/tables"
fi

step "lineage-bus up: topics, producers, processor, OpenLineage and OpenMetadata sinks (log: $LOG)"
started=$SECONDS
"$BIN" up >"$LOG" 2>&1 &
UP_PID=$!
trap 'kill -TERM $UP_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fs -o /dev/null "http://$ADMIN/health/ready" && break
  kill -0 "$UP_PID" 2>/dev/null || { tail -n 30 "$LOG"; echo "lineage-bus up exited" >&2; exit 1; }
  sleep 1
done
curl -fsS -o /dev/null "http://$ADMIN/health/ready" || { tail -n 30 "$LOG"; echo "lineage-bus up never became ready" >&2; exit 1; }

step "the sample Dagster jobs (testbed/dagster/sample_project; skipped when Dagster already holds runs)"
testbed/dagster/run_jobs.sh --if-empty

step "waiting until every role has caught up"
previous=-1
for _ in $(seq 1 20); do   # at most a minute (a busy shared Dagster never goes idle)
  lag=$(metric lineage_bus_producer_dagster_lag_rows)
  catalog_polls=$(metric lineage_bus_producer_openmetadata_polls_total)
  sink_lag=$(metric lineage_bus_sink_consumer_lag_records)
  done_now=$(( $(metric lineage_bus_processor_records_total) + $(metric lineage_bus_sink_records_total) ))
  if (( lag == 0 && catalog_polls > 0 && sink_lag == 0 && done_now == previous )); then break; fi
  previous=$done_now
  sleep 3
done

step "summary (after $(( SECONDS - started )) s)"
events=$(psql "$DAGSTER_PG_URL" -Atc "select count(*) from event_logs")
jobs=$(curl -fsS "$MARQUEZ_URL/api/v1/namespaces/dagster/jobs?limit=1000" | jq '.totalCount // (.jobs | length)')
pipelines=$(om "/api/v1/pipelines?service=$TENANT&limit=1" | jq '.paging.total')
edges=0
for fqn in $(jq -r '.tables[] | "\(.service).\(.database).\(.schema).\(.name)"' scripts/demo-catalog.json); do
  n=$(om "/api/v1/lineage/table/name/$fqn?upstreamDepth=1&downstreamDepth=0" | jq '.upstreamEdges | length')
  edges=$(( edges + n ))
done
cat <<SUMMARY
Dagster events in event_logs          $events (all runs so far; the lines below count this demo run)
published to dagster.events           $(metric lineage_bus_producer_dagster_records_published_total)
processed by the processor            $(metric lineage_bus_processor_records_total 'outcome="processed"')
delivered to Marquez                  $(metric lineage_bus_sink_records_total 'sink="openlineage"' 'outcome="delivered"') (dead-lettered: $(metric lineage_bus_sink_records_total 'sink="openlineage"' 'outcome="dead_lettered"'))
written to OpenMetadata               $(metric lineage_bus_sink_records_total 'sink="openmetadata"' 'outcome="delivered"') (dead-lettered: $(metric lineage_bus_sink_records_total 'sink="openmetadata"' 'outcome="dead_lettered"'))

Marquez ($MARQUEZ_KIND) $MARQUEZ_URL: $jobs jobs in namespace dagster
  jobs:    $MARQUEZ_URL/api/v1/namespaces/dagster/jobs
  runs:    $MARQUEZ_URL/api/v1/namespaces/dagster/jobs/transform_job/runs
  lineage: $MARQUEZ_URL/api/v1/lineage?nodeId=job:dagster:transform_job
OpenMetadata ($OPENMETADATA_KIND) $OPENMETADATA_URL: $pipelines pipelines in service $TENANT, $edges lineage edges into the warehouse tables
  pipelines: $OPENMETADATA_URL/api/v1/pipelines?service=$TENANT&fields=tasks
  lineage:   $OPENMETADATA_URL/api/v1/lineage/table/name/warehouse.warehouse_db.analytics.daily_revenue?upstreamDepth=3
  (Authorization: Bearer \$OPENMETADATA_JWT)
Dagster UI ${DAGSTER_GRAPHQL_URL%/graphql}
Stop the testbed with: make down
SUMMARY
