#!/usr/bin/env bash
# The main job on the local testbed (run by `make demo`, with the testbed's addresses exported
# by testbed/env.sh): applies the topic catalog and registers the schemas, runs the sample
# Dagster jobs so the event log fills, and prints where everything is.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${LINEAGE_BUS_BIN:-target/debug/lineage-bus}"
export LINEAGE_BUS__KAFKA__BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP"
export LINEAGE_BUS__KAFKA__REPLICATION_FACTOR=1
export LINEAGE_BUS__SCHEMA_REGISTRY__URL="$SCHEMA_REGISTRY_URL"

step() { printf '\n==> %s\n' "$*"; }

step "topics apply: create the topics and register their Avro schemas"
"$BIN" topics apply

step "running the sample Dagster jobs (testbed/dagster/sample_project)"
testbed/dagster/run_jobs.sh

step "summary"
events=$(psql "$DAGSTER_PG_URL" -Atc "select count(*) from event_logs")
runs=$(psql "$DAGSTER_PG_URL" -Atc "select status || ' ' || count(*) from runs group by status order by status" | paste -sd, -)
subjects=$(curl -fsS "$SCHEMA_REGISTRY_URL/subjects")
cat <<SUMMARY
Dagster      ${DAGSTER_GRAPHQL_URL%/graphql}   runs: $runs; $events events in event_logs
Registry     $SCHEMA_REGISTRY_URL   subjects: $subjects
Kafka        $KAFKA_BOOTSTRAP   topics: $("$BIN" topics list | tail -n +2 | awk '{print $1}' | paste -sd' ' -)
Marquez      $MARQUEZ_URL   ($MARQUEZ_KIND; lineage appears here once the pipeline roles run)

Built so far: registry, topics apply/list, check-config, up. The producers, processor and
sinks arrive with their issues; until then the events wait in Dagster's storage.
Stop everything with: make down
SUMMARY
