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
log_file="$(mktemp)"
set +e
cargo test --release --locked --workspace -- --test-threads=1 2>&1 | tee "$log_file"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite (cargo prints one per test binary, the last may be empty).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log_file"
rm -f "$log_file"
exit "$status"
