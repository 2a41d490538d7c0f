#!/usr/bin/env bash
# Copies each working schema in schemas/avro/ to schemas/avro/released/<name>/v<N+1>.avsc when
# it differs from the newest released version. Run after `cargo test -p lineage-schemas`
# passed (it checks BACKWARD compatibility against the newest release).
set -euo pipefail
cd "$(dirname "$0")/../schemas/avro"
for file in *.avsc; do
  name="${file%.avsc}"
  dir="released/$name"
  mkdir -p "$dir"
  latest="$(ls "$dir" | sed -n 's/^v\([0-9]*\)\.avsc$/\1/p' | sort -n | tail -n 1)"
  if [[ -n "$latest" ]] && cmp -s "$file" "$dir/v$latest.avsc"; then
    echo "$name: unchanged (v$latest)"
    continue
  fi
  next=$(( ${latest:-0} + 1 ))
  cp "$file" "$dir/v$next.avsc"
  echo "$name: released as v$next"
done
