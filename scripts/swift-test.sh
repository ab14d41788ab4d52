#!/usr/bin/env bash
# The Swift API on Linux: the Swift package in ios/ (generated bindings + async layer) built with
# Swift 6 in a Debian trixie chroot (scripts/swift-chroot.sh) against the host-built
# libhybridflow_ffi.so, and its XCTest suite run against the real edge model and cloud. Expects
# the workspace built and HYBRIDFLOW_CLOUD_URL set (scripts/test.sh does both). Ends with one
# "test result: … N passed; M failed" line.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$HYBRIDFLOW_ROOT/scripts/swift-chroot.sh" setup
lib="$CARGO_TARGET_DIR/release"
build="$CARGO_TARGET_DIR/swift-build"
mkdir -p "$build"
log_file="$(mktemp)"
set +e
"$HYBRIDFLOW_ROOT/scripts/swift-chroot.sh" run \
  HYBRIDFLOW_EDGE_MODEL="${HYBRIDFLOW_EDGE_MODEL:-$HYBRIDFLOW_MODELS/smollm2-135m-instruct-q8_0/SmolLM2-135M-Instruct.Q8_0.gguf}" \
  HYBRIDFLOW_CLOUD_URL="${HYBRIDFLOW_CLOUD_URL:?HYBRIDFLOW_CLOUD_URL is not set}" \
  swift test --package-path "$HYBRIDFLOW_ROOT/ios" --build-path "$build" \
    -Xlinker -L"$lib" -Xlinker -rpath -Xlinker "$lib" "$@" 2>&1 | tee "$log_file"
status=${PIPESTATUS[0]}
set -e
# XCTest prints one summary per suite; the last one covers all tests.
summary="$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" "$log_file" | tail -1 || true)"
rm -f "$log_file"
if [[ -z "$summary" ]]; then
  echo "test result: FAILED. 0 passed; 1 failed (Swift: the package did not build or the tests did not run)"
  exit 1
fi
total=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*with ([0-9]+) failures?.*/\1/' <<<"$summary")
echo "test result: $( ((failed == 0 && status == 0)) && echo ok || echo FAILED ). $((total - failed)) passed; $failed failed (Swift XCTest)"
exit "$status"
