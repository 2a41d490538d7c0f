#!/usr/bin/env bash
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
start() { die "kafka: not written yet"; }
stop() { :; }
"${1:?usage: kafka.sh start|stop}"
