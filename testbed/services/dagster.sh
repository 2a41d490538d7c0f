#!/usr/bin/env bash
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
start() { die "dagster: not written yet"; }
stop() { :; }
"${1:?usage: dagster.sh start|stop}"
