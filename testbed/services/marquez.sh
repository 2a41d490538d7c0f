#!/usr/bin/env bash
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
start() { die "marquez: not written yet"; }
stop() { :; }
"${1:?usage: marquez.sh start|stop}"
