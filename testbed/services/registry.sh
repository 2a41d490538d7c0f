#!/usr/bin/env bash
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
start() { die "registry: not written yet"; }
stop() { :; }
"${1:?usage: registry.sh start|stop}"
