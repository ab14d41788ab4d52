#!/usr/bin/env bash
# Builds ios/build/HybridFlowFFI.xcframework: the Rust library for iPhone (arm64), the
# simulator (arm64 + x86_64, one fat library) and the generated C header with its module map.
# Needs macOS with Xcode and rustup. Uses the `metal` feature: the model runs on the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
out=ios/build
rm -rf "$out/HybridFlowFFI.xcframework" "$out/headers" "$out/simulator"
mkdir -p "$out/headers" "$out/simulator"

for target in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios; do
  rustup target add "$target"
  # IPHONEOS_DEPLOYMENT_TARGET matches Package.swift's platforms.
  IPHONEOS_DEPLOYMENT_TARGET=15.0 cargo build --release --locked -p hybridflow-ffi --no-default-features --features metal --target "$target"
done

cp ios/include/hybridflowFFI.h ios/include/module.modulemap "$out/headers/"
lipo -create \
  "$target_dir/aarch64-apple-ios-sim/release/libhybridflow_ffi.a" \
  "$target_dir/x86_64-apple-ios/release/libhybridflow_ffi.a" \
  -output "$out/simulator/libhybridflow_ffi.a"
xcodebuild -create-xcframework \
  -library "$target_dir/aarch64-apple-ios/release/libhybridflow_ffi.a" -headers "$out/headers" \
  -library "$out/simulator/libhybridflow_ffi.a" -headers "$out/headers" \
  -output "$out/HybridFlowFFI.xcframework"
echo "built $out/HybridFlowFFI.xcframework"
