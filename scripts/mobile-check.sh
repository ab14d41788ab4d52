#!/usr/bin/env bash
# The Android targets type-checked: `cargo check` of the FFI crate and the core for every ABI the
# Android package ships, so the code behind `cfg(target_os = "android")` (logcat logging, the
# bundled TLS roots) compiles at least once here. No NDK exists on this machine: the C that build
# scripts compile (aws-lc, oniguruma, esaxx) is compiled by Debian's cross gcc for the same CPU,
# with glibc's headers in place of bionic's (`_GNU_SOURCE` exposes what bionic always declares,
# such as pthread_rwlock_t). `cargo check` links nothing, so no object built this way ships.
# Left out, with the reason (android/README.md, ios/README.md): the ggml engine (llama-cpp-sys-2's
# build script requires the NDK's android.toolchain.cmake) and aarch64-apple-ios (aws-lc-sys
# configures CMake for iOS, which requires an iOS SDK). Ends with one "test result" line.
set -euo pipefail
source "$(dirname "$0")/env.sh"
ensure_apt_packages gcc-aarch64-linux-gnu g++-aarch64-linux-gnu gcc-arm-linux-gnueabi g++-arm-linux-gnueabi
cd "$HYBRIDFLOW_ROOT"

passed=0 failed=0 failures=""
check() { # <rust target> <gcc prefix, empty for the host's>
  local target=$1 gcc=$2 var=${1//-/_}
  rustup target list --installed | grep -q "^$target\$" || rustup target add "$target" >&2
  log "type-checking hybridflow-ffi for $target"
  if env "CC_$var=${gcc}gcc" "CXX_$var=${gcc}g++" "AR_$var=${gcc}ar" \
      "CFLAGS_$var=-D_GNU_SOURCE" "CXXFLAGS_$var=-D_GNU_SOURCE" \
      cargo check --locked --target "$target" -p hybridflow-ffi --no-default-features >&2; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=" $target"
  fi
}
check aarch64-linux-android aarch64-linux-gnu-
check armv7-linux-androideabi arm-linux-gnueabi-  # softfp, as Android armeabi-v7a
check x86_64-linux-android ""

echo "test result: $( ((failed == 0)) && echo ok || echo FAILED ). $passed passed; $failed failed (Android targets type-checked${failures:+; failed:$failures})"
((failed == 0))
