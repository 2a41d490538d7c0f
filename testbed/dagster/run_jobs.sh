#!/usr/bin/env bash
# Launch the sample jobs through the running testbed Dagster (testbed/up.sh dagster), report a few
# runless events, wait for every run, print a summary. Exits non-zero on an unexpected outcome.
# Usage: testbed/dagster/run_jobs.sh [--if-empty] [--timeout SECONDS]
#   --if-empty: do nothing when Dagster already holds runs (tests need the event log filled once).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

DSN="postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/dagster"
if [[ "${1:-}" == "--if-empty" ]]; then
  shift
  runs="$(psql "$DSN" -Atc "select count(*) from runs" 2>/dev/null || echo 0)"
  if (( runs > 0 )); then
    log "dagster already holds $runs runs; sample jobs not run again"
    exit 0
  fi
fi

PY="$TESTBED_DIR/.venv/bin/python"
[[ -x "$PY" ]] || die "no $TESTBED_DIR/.venv; run testbed/up.sh dagster first"
exec "$PY" "$TESTBED_DIR/dagster/run_jobs.py" \
  --url "http://127.0.0.1:$DAGSTER_PORT" \
  --pg-dsn "$DSN" "$@"
