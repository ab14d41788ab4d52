#!/usr/bin/env bash
# Builds llama.cpp's OpenAI-compatible `llama-server` (the test cloud) and `llama-bench` (the
# benchmark reference) from the source vendored in the llama-cpp-python sdist on PyPI.
# Cached outside the clone: a second run is a no-op.
set -euo pipefail
source "$(dirname "$0")/env.sh"

LLAMA_CPP_PYTHON_VERSION=0.3.36
prefix="$HYBRIDFLOW_CACHE/llama.cpp-$LLAMA_CPP_PYTHON_VERSION"
if [[ -x "$prefix/bin/llama-server" && -x "$prefix/bin/llama-bench" ]]; then
  exit 0
fi

ensure_apt_packages cmake ninja-build
work="$HYBRIDFLOW_CACHE/build/llama.cpp-$LLAMA_CPP_PYTHON_VERSION"
mkdir -p "$work"
if [[ ! -d "$work/src" ]]; then
  log "downloading llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist (vendors llama.cpp)"
  # Only this package as source: its build dependencies may stay wheels (no cmake bootstrap).
  pip download --quiet --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$work/sdist"
  tar -xzf "$work/sdist/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" -C "$work"
  mv "$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp" "$work/src"
  rm -rf "$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION" "$work/sdist"
fi

log "building llama-server and llama-bench (cached in $prefix)"
# No web UI (it would be fetched from a model hub), no TLS (loopback only), native SIMD like our build.
cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >"$work/cmake.log"
cmake --build "$work/build" --target llama-server llama-bench -j "$(nproc)" >"$work/build.log"
mkdir -p "$prefix/bin"
cp "$work/build/bin/llama-server" "$work/build/bin/llama-bench" "$prefix/bin/"
log "llama.cpp ready: $prefix/bin"
