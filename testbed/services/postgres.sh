#!/usr/bin/env bash
# PostgreSQL from Debian's packages: a private cluster on 127.0.0.1:$PG_PORT with the
# databases `dagster` and `marquez`, owned by user lineage/lineage.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
DATA="$STATE_DIR/postgres"
DATABASES=(dagster marquez marquez_replay)

as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
ready() { as_pg "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

start() {
  [[ -x "$PG_BIN/postgres" ]] || die "PostgreSQL server binaries not found (install Debian package 'postgresql')"
  if ready; then log "postgres already running on :$PG_PORT"; return; fi
  if [[ ! -f "$DATA/PG_VERSION" ]]; then
    log "initdb $DATA"
    mkdir -p "$DATA"
    [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$DATA"
    as_pg "$PG_BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    cat >>"$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$DATA'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  fi
  log "starting postgres on 127.0.0.1:$PG_PORT"
  touch "$STATE_DIR/logs/postgres.log"
  [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$STATE_DIR/logs/postgres.log"
  as_pg "$PG_BIN/pg_ctl" -D "$DATA" -l "$STATE_DIR/logs/postgres.log" -w -t 60 start >/dev/null
  wait_until postgres 60 ready
  local psql=(as_pg "$PG_BIN/psql" -v ON_ERROR_STOP=1 -qAt -h "$DATA" -p "$PG_PORT" -U postgres -d postgres)
  if [[ -z "$("${psql[@]}" -c "select 1 from pg_roles where rolname='$PG_USER'")" ]]; then
    "${psql[@]}" -c "create role $PG_USER login superuser password '$PG_PASSWORD'"
  fi
  for db in "${DATABASES[@]}"; do
    if [[ -z "$("${psql[@]}" -c "select 1 from pg_database where datname='$db'")" ]]; then
      "${psql[@]}" -c "create database $db owner $PG_USER"
    fi
  done
}

stop() {
  [[ -f "$DATA/postmaster.pid" ]] || return 0
  log "stopping postgres"
  as_pg "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null || true
}

"${1:?usage: postgres.sh start|stop}"
