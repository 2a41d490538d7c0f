#!/usr/bin/env bash
# Dagster 1.13 on 127.0.0.1:$DAGSTER_PORT: dagster-webserver (GraphQL + REST) and dagster-daemon (launches
# the runs that the QueuedRunCoordinator queues), both loading testbed/dagster/workspace.yaml.
# Runs, event logs and schedules are stored in the PostgreSQL database `dagster` (services/postgres.sh).
# Python packages: testbed/.venv, (re)installed from testbed/dagster/requirements.txt when it changes.
# DAGSTER_HOME: $STATE_DIR/dagster/home, dagster.yaml rendered from testbed/dagster/dagster.yaml.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

DG_DIR="$TESTBED_DIR/dagster"
VENV="$TESTBED_VENV"
REQUIREMENTS="$DG_DIR/requirements.txt"
WORKSPACE="$DG_DIR/workspace.yaml"
LOCATION=lineage_sample
export DAGSTER_HOME="$STATE_DIR/dagster/home"
GRAPHQL_URL="http://127.0.0.1:$DAGSTER_PORT/graphql"

# render_instance_config: $DAGSTER_HOME/dagster.yaml from the template (re-rendered on every start).
render_instance_config() {
  mkdir -p "$DAGSTER_HOME" "$STATE_DIR/dagster/storage"
  sed -e "s|__PG_HOST__|127.0.0.1|" -e "s|__PG_PORT__|$PG_PORT|" \
      -e "s|__PG_USER__|$PG_USER|" -e "s|__PG_PASSWORD__|$PG_PASSWORD|" -e "s|__PG_DB__|dagster|" \
      -e "s|__LOCAL_ARTIFACT_DIR__|$STATE_DIR/dagster/storage|g" \
      "$DG_DIR/dagster.yaml" >"$DAGSTER_HOME/dagster.yaml.tmp"
  mv "$DAGSTER_HOME/dagster.yaml.tmp" "$DAGSTER_HOME/dagster.yaml"
}

gql() { # gql QUERY: POST a GraphQL query, print the JSON answer.
  curl -sf --max-time 10 -H 'Content-Type: application/json' \
    --data "$(jq -cn --arg q "$1" '{query: $q}')" "$GRAPHQL_URL"
}

graphql_up() { gql '{ version }' | jq -e '.data.version | strings' >/dev/null; }

# location_status: LOADED, LOADING, ERROR (the location failed to load), MISSING.
location_status() {
  gql '{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } } } } } }' |
    jq -r --arg loc "$LOCATION" '
      [.data.workspaceOrError.locationEntries[]? | select(.name == $loc)] as $e
      | if ($e | length) == 0 then "MISSING"
        elif $e[0].locationOrLoadError.__typename == "PythonError" then "ERROR"
        else $e[0].loadStatus end'
}

location_loaded() { [[ "$(location_status)" == LOADED ]]; }

location_error() {
  gql '{ workspaceOrError { ... on Workspace { locationEntries { name
        locationOrLoadError { ... on PythonError { message stack } } } } } }' |
    jq -r --arg loc "$LOCATION" '.data.workspaceOrError.locationEntries[]
      | select(.name == $loc) | .locationOrLoadError | .message, (.stack // [] | join(""))'
}

# daemon_healthy: the daemon's run coordinator (dequeues QUEUED runs) sent a recent heartbeat.
daemon_healthy() {
  gql '{ instance { daemonHealth { daemonStatus(daemonType: "QUEUED_RUN_COORDINATOR") { healthy } } } }' |
    jq -e '.data.instance.daemonHealth.daemonStatus.healthy == true' >/dev/null
}

ready() { graphql_up && location_loaded && daemon_healthy; }

start() {
  if pid_alive dagster-webserver && pid_alive dagster-daemon && ready; then
    log "dagster already running on :$DAGSTER_PORT"; return
  fi
  if ! pid_alive dagster-webserver && port_open "$DAGSTER_PORT"; then
    die "port $DAGSTER_PORT is taken by another process (set TESTBED_DAGSTER_PORT)"
  fi
  port_open "$PG_PORT" || die "postgres is not running on :$PG_PORT (testbed/up.sh postgres)"
  command -v jq >/dev/null || die "jq not found (install Debian package 'jq')"
  ensure_venv_requirements "$REQUIREMENTS" .requirements.sha256
  render_instance_config
  # Create/migrate the schema once up front, so webserver and daemon do not race on it.
  "$VENV/bin/dagster" instance migrate >>"$STATE_DIR/logs/dagster-migrate.log" 2>&1 \
    || { tail -n 30 "$STATE_DIR/logs/dagster-migrate.log" >&2; die "dagster instance migrate failed"; }

  if ! pid_alive dagster-webserver; then
    log "starting dagster-webserver on 127.0.0.1:$DAGSTER_PORT"
    start_bg dagster-webserver "$VENV/bin/dagster-webserver" -h 127.0.0.1 -p "$DAGSTER_PORT" -w "$WORKSPACE"
  fi
  if ! pid_alive dagster-daemon; then
    log "starting dagster-daemon"
    start_bg dagster-daemon "$VENV/bin/dagster-daemon" run -w "$WORKSPACE"
  fi

  wait_until dagster-webserver 120 graphql_up
  local deadline=$((SECONDS + 180)) status
  while :; do
    status="$(location_status || echo UNKNOWN)"
    [[ "$status" == LOADED ]] && break
    if [[ "$status" == ERROR ]]; then
      location_error >&2 || true
      die "code location $LOCATION failed to load (see above; fix it and run dagster.sh start again)"
    fi
    (( SECONDS < deadline )) || die "code location $LOCATION not loaded after 180s (status $status)"
    pid_alive dagster-webserver || die "dagster-webserver exited; see $STATE_DIR/logs/dagster-webserver.log"
    sleep 0.5
  done
  wait_until dagster-daemon 120 daemon_healthy
  log "dagster ready: $GRAPHQL_URL (location $LOCATION loaded, daemon healthy)"
}

stop() {
  stop_bg dagster-daemon
  stop_bg dagster-webserver
}

"${1:?usage: dagster.sh start|stop}"
