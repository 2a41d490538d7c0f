#!/usr/bin/env bash
# Run the sample jobs against a Dagster instance with SQLite storage in its own DAGSTER_HOME
# (no webserver, no daemon, no PostgreSQL needed), with the testbed venv's `dagster` CLI.
# Default layout: Dagster's DEFAULT run-sharded SQLite storage (dagster.yaml without a storage
# section); --layout consolidated: ConsolidatedSqliteEventLogStorage. See run_jobs_sqlite.py.
# Usage: testbed/dagster/run_jobs_sqlite.sh [--home DIR] [--layout run-sharded|consolidated]
#          [--repeat N] [--if-empty]
#   --home: DAGSTER_HOME (default $STATE_DIR/dagster-sqlite/<layout>); the event log is in
#           DIR/history/runs/.
#   --if-empty: do nothing when DIR already holds runs.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

layout=run-sharded home="" if_empty=0 args=()
while (( $# )); do
  case "$1" in
    --home) home="$2"; shift 2 ;;
    --layout) layout="$2"; args+=(--layout "$2"); shift 2 ;;
    --repeat) args+=(--repeat "$2"); shift 2 ;;
    --if-empty) if_empty=1; shift ;;
    *) die "unknown argument $1" ;;
  esac
done
home="${home:-$STATE_DIR/dagster-sqlite/$layout}"

PY="$TESTBED_DIR/.venv/bin/python"
[[ -x "$PY" ]] || die "no $TESTBED_DIR/.venv; run testbed/up.sh dagster first"
if (( if_empty )) && [[ -f "$home/history/runs.db" ]]; then
  runs="$("$PY" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from runs").fetchone()[0])' "$home/history/runs.db" 2>/dev/null || echo 0)"
  if (( runs > 0 )); then
    log "$home already holds $runs runs; sample jobs not run again"
    exit 0
  fi
fi
exec "$PY" "$TESTBED_DIR/dagster/run_jobs_sqlite.py" --home "$home" "${args[@]}"
