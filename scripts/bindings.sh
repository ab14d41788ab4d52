#!/usr/bin/env bash
# The uniffi bindings, generated from the built library by the pinned uniffi-bindgen.
#   scripts/bindings.sh generate      rewrite the copies the Android and iOS packages ship, and
#                                     the API reference page (docs/api-reference.md)
#   scripts/bindings.sh check         fail if those copies differ from a fresh generation
#   scripts/bindings.sh jvm <dir>     Kotlin for the JVM (tests, jvm-chat) into <dir>
# Needs the workspace built (scripts/setup.sh).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$HYBRIDFLOW_ROOT"

library="$CARGO_TARGET_DIR/release/libhybridflow_ffi.so"
bindgen="$CARGO_TARGET_DIR/release/uniffi-bindgen"
android_kotlin=android/hybridflow/src/main/kotlin/dev/hybridflow/hybridflow.kt
swift_sources=ios/Sources/HybridFlow/HybridFlow.swift
swift_header=ios/include/hybridflowFFI.h
swift_modulemap=ios/include/module.modulemap
api_reference=docs/api-reference.md

generate() { # <language> <config> <out-dir>
  "$bindgen" generate --library "$library" --crate hybridflow_ffi --no-format \
    --language "$1" --config "bindings/$2" --out-dir "$3" >/dev/null
}

# Writes the packaged files under <root> (the repository, or a scratch copy to compare with).
generate_packaged() {
  local root=$1 scratch
  scratch="$(mktemp -d)"
  generate kotlin uniffi-android.toml "$scratch/android"
  generate swift uniffi-jvm.toml "$scratch/swift"
  mkdir -p "$(dirname "$root/$android_kotlin")" "$(dirname "$root/$swift_sources")" "$(dirname "$root/$swift_header")"
  cp "$scratch/android/dev/hybridflow/hybridflow.kt" "$root/$android_kotlin"
  cp "$scratch/swift/HybridFlow.swift" "$root/$swift_sources"
  cp "$scratch/swift/hybridflowFFI.h" "$root/$swift_header"
  # The XCFramework's Headers/ carries the header with this module map (see ios/build-xcframework.sh).
  cp "$scratch/swift/hybridflowFFI.modulemap" "$root/$swift_modulemap"
  mkdir -p "$(dirname "$root/$api_reference")"
  "$bindgen" reference "$library" "$root/$api_reference"
  rm -rf "$scratch"
}

case "${1:-}" in
  generate)
    generate_packaged "$HYBRIDFLOW_ROOT"
    log "bindings written: $android_kotlin $swift_sources $swift_header $swift_modulemap $api_reference"
    ;;
  check)
    fresh="$(mktemp -d)"
    trap 'rm -rf "$fresh"' EXIT
    generate_packaged "$fresh"
    status=0
    for file in "$android_kotlin" "$swift_sources" "$swift_header" "$swift_modulemap" "$api_reference"; do
      if ! diff -q "$fresh/$file" "$file" >/dev/null 2>&1; then
        log "stale: $file differs from a fresh generation (run scripts/bindings.sh generate)"
        status=1
      fi
    done
    exit "$status"
    ;;
  jvm)
    generate kotlin uniffi-jvm.toml "${2:?usage: bindings.sh jvm <out-dir>}"
    ;;
  *)
    sed -n '2,6p' "$0" >&2
    exit 2
    ;;
esac
