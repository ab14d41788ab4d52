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
cargo test --release --locked --workspace --no-fail-fast -- --test-threads=1 2>&1 | tee "$log_file"
status=${PIPESTATUS[0]}
set -e

# The packaged Kotlin and Swift bindings must match what the generator makes of this build.
if scripts/bindings.sh check; then
  echo "test result: ok. 1 passed; 0 failed (bindings match a fresh generation)" | tee -a "$log_file"
else
  echo "test result: FAILED. 0 passed; 1 failed (bindings are stale)" | tee -a "$log_file"
  status=1
fi

# The Kotlin API on the JVM, against the same library and models.
set +e
scripts/kotlin-test.sh 2>&1 | tee -a "$log_file"
kotlin_status=${PIPESTATUS[0]}
set -e
((kotlin_status == 0)) || status=1

# The Swift API on Linux (Swift 6 in a Debian trixie chroot), against the same library and models.
set +e
scripts/swift-test.sh 2>&1 | tee -a "$log_file"
swift_status=${PIPESTATUS[0]}
set -e
((swift_status == 0)) || status=1

# The core on ARM: cross-built for aarch64, the edge model under qemu as old and new cores.
set +e
scripts/arm-check.sh 2>&1 | tee -a "$log_file"
arm_status=${PIPESTATUS[0]}
set -e
((arm_status == 0)) || status=1

# The Android ABIs type-checked, so the code behind cfg(target_os = "android") compiles.
set +e
scripts/mobile-check.sh 2>&1 | tee -a "$log_file"
mobile_status=${PIPESTATUS[0]}
set -e
((mobile_status == 0)) || status=1

# One closing line for the whole suite: cargo prints one per test binary, JUnit its own summary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     /^OK \([0-9]+ tests?\)/ { gsub(/[()]/, ""); p += $2 }
     /^Tests run: [0-9]+, +Failures: [0-9]+/ { gsub(/,/, ""); p += $3 - $5; f += $5 }
     END { printf "%d passed, %d failed\n", p, f }' "$log_file"
rm -f "$log_file"
exit "$status"
