#!/usr/bin/env bash
# The Swift API on Linux: the Swift package in ios/ (generated bindings + async layer) built with
# Swift 6 in a Debian trixie chroot (scripts/swift-chroot.sh) against the host-built
# libhybridflow_ffi.so, and its XCTest suite run against the real edge model and cloud; then the
# iOS sample's model layer (sample-apps/ios-chat) with its tests. Expects
# the workspace built and HYBRIDFLOW_CLOUD_URL set (scripts/test.sh does both). Ends with one
# "test result: … N passed; M failed" line.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$HYBRIDFLOW_ROOT/scripts/swift-chroot.sh" setup
lib="$CARGO_TARGET_DIR/release"
build="$CARGO_TARGET_DIR/swift-build"
mkdir -p "$build"
log_file="$(mktemp)"
cloud_url="${HYBRIDFLOW_CLOUD_URL:?HYBRIDFLOW_CLOUD_URL is not set}"
# swift test <package dir> <build dir> [more flags], in the chroot, linked to the host-built library.
swift_test() {
  local package=$1 build_dir=$2
  shift 2
  "$HYBRIDFLOW_ROOT/scripts/swift-chroot.sh" run HYBRIDFLOW_EDGE_MODEL="$HYBRIDFLOW_EDGE_MODEL" HYBRIDFLOW_CLOUD_URL="$cloud_url" \
    swift test --package-path "$package" --build-path "$build_dir" \
      -Xlinker -L"$lib" -Xlinker -rpath -Xlinker "$lib" "$@" 2>&1 | tee -a "$log_file"
  return "${PIPESTATUS[0]}"
}
set +e
swift_test "$HYBRIDFLOW_ROOT/ios" "$build" "$@"
status=$?
# The iOS sample's model layer (sample-apps/ios-chat, Linux build: ChatModel and its tests).
# --allow-shlib-undefined: Debian trixie's libswiftObservation.so names a runtime symbol
# (swift::threading::fatal) that the linker cannot see; it is reached only on a fatal error.
swift_test "$HYBRIDFLOW_ROOT/sample-apps/ios-chat" "$build-sample" -Xlinker --allow-shlib-undefined "$@"
sample_status=$?
((sample_status == 0)) || status=$sample_status
set -e
# XCTest prints one summary per suite; the last one of each package covers all its tests.
summaries="$(grep -E "Test Suite '(All|Selected) tests' (passed|failed)" -A1 "$log_file" | grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" || true)"
rm -f "$log_file"
if (( $(grep -c . <<<"$summaries") < 2 )); then
  echo "test result: FAILED. 0 passed; 1 failed (Swift: a package did not build or its tests did not run)"
  exit 1
fi
total=0 failed=0
while read -r line; do
  total=$((total + $(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$line")))
  failed=$((failed + $(sed -E 's/.*with ([0-9]+) failures?.*/\1/' <<<"$line")))
done <<<"$summaries"
echo "test result: $( ((failed == 0 && status == 0)) && echo ok || echo FAILED ). $((total - failed)) passed; $failed failed (Swift XCTest: the SDK and the iOS sample's model layer)"
exit "$status"
