#!/usr/bin/env bash
# The mobile targets type-checked: `cargo check` of the FFI crate and the core for every ABI the
# Android package ships and for the iOS device, with the features their packages are built with,
# so the code behind `cfg(target_os = "android")` (logcat logging, the bundled TLS roots),
# `cfg(target_os = "ios")` (os_log) and the `metal` feature compiles at least once here.
# No NDK and no iOS SDK exist on this machine, so the C that build scripts compile (aws-lc, ring,
# oniguruma, esaxx, the oslog wrapper) is compiled against stand-ins: for Android, Debian's cross
# gcc for the same CPU with glibc's headers in place of bionic's (`_GNU_SOURCE` exposes what bionic
# always declares, such as pthread_rwlock_t); for iOS, clang for arm64-apple-ios over a sysroot of
# glibc's aarch64 headers plus declarations of the few Apple APIs that C includes
# (scripts/ios-sdk-standin/). `cargo check` links nothing, so no object built this way ships.
# Left out, with the reason (android/README.md): the ggml engine (llama-cpp-sys-2's build script
# requires the NDK's android.toolchain.cmake; the iOS package leaves it out too), so also the lean
# Android library, which has ggml alone. Ends with one
# "test result" line.
set -euo pipefail
source "$(dirname "$0")/env.sh"
ensure_apt_packages gcc-aarch64-linux-gnu g++-aarch64-linux-gnu gcc-arm-linux-gnueabi g++-arm-linux-gnueabi \
  libc6-dev-arm64-cross clang llvm
cd "$HYBRIDFLOW_ROOT"

passed=0 failed=0 failures=""
record() { # <target> <status of its check>
  if (($2 == 0)); then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=" $1"; fi
}

check_android() { # <rust target> <gcc prefix, empty for the host's>
  local target=$1 gcc=$2 var=${1//-/_} status=0
  ensure_rust_target "$target"
  log "type-checking hybridflow-ffi for $target"
  env "CC_$var=${gcc}gcc" "CXX_$var=${gcc}g++" "AR_$var=${gcc}ar" \
    "CFLAGS_$var=-D_GNU_SOURCE" "CXXFLAGS_$var=-D_GNU_SOURCE" \
    cargo check --locked --target "$target" -p hybridflow-ffi --no-default-features --features mistralrs >&2 || status=$?
  record "$target" "$status"
}

# The iOS SDK stand-in, in the cache: glibc's aarch64 headers, and Apple's declarations on top.
ios_sysroot() {
  local root="$HYBRIDFLOW_CACHE/ios-sdk-standin" include
  include="$root/usr/include"
  rm -rf "$root" && mkdir -p "$include"
  ln -s /usr/aarch64-linux-gnu/include/* "$include/" && rm "$include/sys"
  mkdir "$include/sys" && ln -s /usr/aarch64-linux-gnu/include/sys/* "$include/sys/"
  cp -r "$HYBRIDFLOW_ROOT/scripts/ios-sdk-standin/." "$include/"
  printf '%s\n' "$root"
}

# As ios/build-xcframework.sh builds it. aws-lc-sys builds with cc-rs, not CMake (whose iOS
# platform accepts only a real SDK); the Metal kernels are not precompiled (that needs `xcrun
# metal`); clang's Darwin `__nonnull` keyword macro would hide glibc's attribute macro.
check_ios() {
  local target=aarch64-apple-ios var=aarch64_apple_ios status=0 sysroot
  ensure_rust_target "$target"
  sysroot="$(ios_sysroot)"
  log "type-checking hybridflow-ffi for $target (iOS SDK stand-in: $sysroot)"
  env SDKROOT="$sysroot" IPHONEOS_DEPLOYMENT_TARGET=15.0 AWS_LC_SYS_CMAKE_BUILDER=0 MISTRALRS_METAL_PRECOMPILE=0 \
    "CC_$var=clang" "CXX_$var=clang++" "AR_$var=llvm-ar" \
    "CFLAGS_$var=-U__nonnull -D_GNU_SOURCE" "CXXFLAGS_$var=-U__nonnull -D_GNU_SOURCE" \
    cargo check --locked --target "$target" -p hybridflow-ffi --no-default-features --features metal >&2 || status=$?
  record "$target" "$status"
}

check_android aarch64-linux-android aarch64-linux-gnu-
check_android armv7-linux-androideabi arm-linux-gnueabi-  # softfp, as Android armeabi-v7a
check_android x86_64-linux-android ""
check_ios

echo "test result: $( ((failed == 0)) && echo ok || echo FAILED ). $passed passed; $failed failed (Android and iOS targets type-checked${failures:+; failed:$failures})"
((failed == 0))
