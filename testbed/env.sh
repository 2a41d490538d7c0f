#!/usr/bin/env bash
# Print the testbed's endpoints as shell exports: eval "$(testbed/env.sh)"
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cat <<VARS
export KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
export SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT
export DAGSTER_GRAPHQL_URL=http://127.0.0.1:$DAGSTER_PORT/graphql
export DAGSTER_PG_URL=postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/dagster
export MARQUEZ_URL=http://127.0.0.1:$MARQUEZ_PORT
VARS
