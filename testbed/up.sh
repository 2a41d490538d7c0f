#!/usr/bin/env bash
# Start testbed services on loopback and wait until each is ready. Idempotent.
# Usage: testbed/up.sh [kafka|postgres|registry|dagster|marquez|openmetadata|all]...   (default: all)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ALL=(postgres kafka registry marquez openmetadata dagster)
targets=("$@"); [[ ${#targets[@]} -eq 0 ]] && targets=(all)

expand() {
  case "$1" in
    all) echo "${ALL[@]}" ;;
    registry) echo kafka registry ;;          # the registry stores its state in Kafka
    marquez|dagster) echo postgres "$1" ;;    # both keep their state in PostgreSQL
    kafka|postgres) echo "$1" ;;
    openmetadata) echo openmetadata ;;        # the contract server keeps a journal file, no database
    *) die "unknown service '$1' (expected one of: ${ALL[*]} all)" ;;
  esac
}

declare -A seen=()
for t in "${targets[@]}"; do
  for s in $(expand "$t"); do
    [[ -n "${seen[$s]:-}" ]] && continue
    seen[$s]=1
    "$TESTBED_DIR/services/$s.sh" start
  done
done
log "ready: ${!seen[*]}"
