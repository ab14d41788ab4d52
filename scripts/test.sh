#!/usr/bin/env bash
# The whole test suite: set up (idempotent), then every test of the workspace against the real
# models. Serial: several tests measure the process's CPU time to prove decoding stopped.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$HYBRIDFLOW_ROOT/scripts/setup.sh"

cd "$HYBRIDFLOW_ROOT"
HYBRIDFLOW_CLOUD_URL="$(scripts/cloud-server.sh start)"
export HYBRIDFLOW_CLOUD_URL
trap 'scripts/cloud-server.sh stop' EXIT
cargo test --release --locked --workspace -- --test-threads=1
