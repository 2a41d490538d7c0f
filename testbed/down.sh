#!/usr/bin/env bash
# Stop every testbed service (in reverse start order), then check that nothing is left: no
# process running from this checkout's state, venv or build directories, no testbed port open.
# Usage: testbed/down.sh [--purge]   (--purge also deletes the state under testbed/.state)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

for s in dagster openmetadata marquez registry kafka postgres; do
  "$TESTBED_DIR/services/$s.sh" stop
done

leftovers="$(pgrep -af -- "$STATE_DIR/|$REPO_DIR/target/|$TESTBED_DIR/.venv/" || true)"
open_ports=()
for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$PG_PORT" "$REGISTRY_PORT" "$DAGSTER_PORT" "$MARQUEZ_PORT" "$MARQUEZ_ADMIN_PORT" "$OPENMETADATA_PORT"; do
  port_open "$port" && open_ports+=("$port")
done
if [[ -n "$leftovers" || ${#open_ports[@]} -gt 0 ]]; then
  [[ -n "$leftovers" ]] && log "processes left behind:" && printf '%s\n' "$leftovers" >&2
  [[ ${#open_ports[@]} -gt 0 ]] && log "ports still open: ${open_ports[*]}"
  die "testbed did not stop cleanly"
fi

if [[ "${1:-}" == "--purge" ]]; then
  log "purging $STATE_DIR"
  rm -rf "$STATE_DIR"
fi
log "stopped; no testbed process or port left"
