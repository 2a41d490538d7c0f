#!/usr/bin/env bash
# Print the testbed's endpoints as shell exports: eval "$(testbed/env.sh)"
set -euo pipefail
source "$(dirname "$0")/lib.sh"
# MARQUEZ_KIND: which Marquez serves MARQUEZ_URL, as written by services/marquez.sh (real|contract),
# "unknown" when that instance is not running.
marquez_name=marquez; [[ "$MARQUEZ_PORT" != 15000 ]] && marquez_name="marquez-$MARQUEZ_PORT"
marquez_kind=unknown
if pid_alive "$marquez_name" && [[ -f "$STATE_DIR/$marquez_name.kind" ]]; then
  marquez_kind="$(cat "$STATE_DIR/$marquez_name.kind")"
fi
openmetadata_kind=unknown
if pid_alive openmetadata && [[ -f "$STATE_DIR/openmetadata.kind" ]]; then
  openmetadata_kind="$(cat "$STATE_DIR/openmetadata.kind")"
fi
cat <<VARS
export KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
export SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
export DAGSTER_GRAPHQL_URL=http://127.0.0.1:$DAGSTER_PORT/graphql
export DAGSTER_PG_URL=postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/dagster
export DAGSTER_SQLITE_HOME=$STATE_DIR/dagster-sqlite/run-sharded
export DAGSTER_SQLITE_CONSOLIDATED_HOME=$STATE_DIR/dagster-sqlite/consolidated
export MARQUEZ_URL=http://127.0.0.1:$MARQUEZ_PORT
export MARQUEZ_KIND=$marquez_kind
export OPENMETADATA_URL=http://127.0.0.1:$OPENMETADATA_PORT
export OPENMETADATA_KIND=$openmetadata_kind
export OPENMETADATA_JWT=$OPENMETADATA_JWT
export OPENMETADATA_READONLY_JWT=$OPENMETADATA_READONLY_JWT
VARS
