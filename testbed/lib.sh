# Shared helpers for the testbed scripts. Sourced, never run.
# Every service listens on 127.0.0.1 only; state lives under testbed/.state (git-ignored).

TESTBED_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$TESTBED_DIR/.." && pwd)"
STATE_DIR="${TESTBED_STATE_DIR:-$TESTBED_DIR/.state}"
mkdir -p "$STATE_DIR/logs" "$STATE_DIR/pids"

# Ports: override with the environment variables if they clash with something on the machine.
KAFKA_PORT="${TESTBED_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${TESTBED_KAFKA_CONTROLLER_PORT:-19093}"
PG_PORT="${TESTBED_PG_PORT:-15432}"
REGISTRY_PORT="${TESTBED_REGISTRY_PORT:-18081}"
DAGSTER_PORT="${TESTBED_DAGSTER_PORT:-13000}"
MARQUEZ_PORT="${TESTBED_MARQUEZ_PORT:-15000}"
MARQUEZ_ADMIN_PORT="${TESTBED_MARQUEZ_ADMIN_PORT:-15001}"
OPENMETADATA_PORT="${TESTBED_OPENMETADATA_PORT:-18585}"
PG_USER=lineage
PG_PASSWORD=lineage
# Bearer tokens of the OpenMetadata contract server (fixed test strings, not secrets): admin, and read-only.
OPENMETADATA_JWT="${TESTBED_OPENMETADATA_JWT:-testbed-openmetadata-admin-token}"
OPENMETADATA_READONLY_JWT="${TESTBED_OPENMETADATA_READONLY_JWT:-testbed-openmetadata-readonly-token}"

log() { printf '[testbed] %s\n' "$*" >&2; }
die() { printf '[testbed] error: %s\n' "$*" >&2; exit 1; }

# pid_alive NAME: true when the pid file of NAME points at a running process.
pid_alive() {
  local f="$STATE_DIR/pids/$1.pid"
  [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# start_bg NAME CMD...: start CMD detached in its own session, log to logs/NAME.log, record its pid.
start_bg() {
  local name="$1"; shift
  setsid "$@" >>"$STATE_DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$STATE_DIR/pids/$name.pid"
}

# stop_bg NAME: TERM the process group of NAME, wait up to 30 s, then KILL it.
stop_bg() {
  local name="$1" f="$STATE_DIR/pids/$1.pid" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# wait_until NAME TIMEOUT_SECONDS CMD...: poll CMD every half second until it succeeds.
wait_until() {
  local name="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS >= deadline )); then
      log "$name not ready after ${timeout}s; last lines of $STATE_DIR/logs/$name.log:"
      tail -n 40 "$STATE_DIR/logs/$name.log" >&2 2>/dev/null || true
      die "$name did not become ready"
    fi
    if [[ -f "$STATE_DIR/pids/$name.pid" ]] && ! pid_alive "$name"; then
      log "$name exited during start-up; last lines of its log:"
      tail -n 40 "$STATE_DIR/logs/$name.log" >&2 2>/dev/null || true
      die "$name failed to start"
    fi
    sleep 0.5
  done
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ensure_venv_requirements FILE STAMP_NAME: create testbed/.venv if missing and pip-install FILE
# into it when FILE (or the python) changed since the last successful install, recorded in
# .venv/STAMP_NAME. Installs are serialized by a lock, as several services share the venv.
TESTBED_VENV="$TESTBED_DIR/.venv"
TESTBED_PYTHON="${TESTBED_PYTHON:-python3}"
ensure_venv_requirements() {
  local requirements="$1" stamp="$TESTBED_VENV/$2" want
  want="$({ sha256sum <"$requirements"; "$TESTBED_PYTHON" --version; } | sha256sum | cut -d' ' -f1)"
  if [[ -x "$TESTBED_VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  if [[ ! -x "$TESTBED_VENV/bin/python" ]]; then
    log "creating venv $TESTBED_VENV"
    rm -rf "$TESTBED_VENV"
    "$TESTBED_PYTHON" -m venv "$TESTBED_VENV" || die "python3 -m venv failed (install Debian package 'python3-venv')"
  fi
  log "installing $requirements into $TESTBED_VENV"
  (
    flock 9
    "$TESTBED_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  ) 9>"$TESTBED_VENV/.pip.lock" || die "pip install -r $requirements failed"
  echo "$want" >"$stamp"
}
