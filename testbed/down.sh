#!/usr/bin/env bash
# Stop every testbed service (in reverse start order). Leaves no process behind.
# Usage: testbed/down.sh [--purge]   (--purge also deletes the state under testbed/.state)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

for s in dagster marquez registry kafka postgres; do
  "$TESTBED_DIR/services/$s.sh" stop
done
if [[ "${1:-}" == "--purge" ]]; then
  log "purging $STATE_DIR"
  rm -rf "$STATE_DIR"
fi
