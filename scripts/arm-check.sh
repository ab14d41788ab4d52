#!/usr/bin/env bash
# The core on ARM: the FFI library and the edge smoke program cross-built for aarch64 with the
# baseline features of Android's arm64-v8a (ARMv8.0 + NEON: no fp16, no dotprod), then the real
# edge model run under qemu as the oldest core arm64-v8a must support (cortex-a53) and as a recent
# one (max), compared with the x86 build's greedy answer. A kernel compiled for fp16 or dotprod
# would die here with SIGILL, as it would on many Android phones. Ends with one "test result" line.
set -euo pipefail
source "$(dirname "$0")/env.sh"
ensure_apt_packages qemu-user-static gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross
ensure_rust_target aarch64-unknown-linux-gnu
target=aarch64-unknown-linux-gnu
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++ AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
cd "$HYBRIDFLOW_ROOT"
log "cross-building the FFI library and xtask for $target (a first build takes ~15 minutes)"
cargo build --release --locked --target "$target" -p hybridflow-ffi -p xtask --no-default-features >&2
library="$CARGO_TARGET_DIR/$target/release/libhybridflow_ffi.so"
smoke="$CARGO_TARGET_DIR/$target/release/xtask"
file "$library" | grep -q "ARM aarch64" || { echo "test result: FAILED. 0 passed; 1 failed (ARM: $library is not an aarch64 library)"; exit 1; }

text() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["text"])'; }
reference="$("$CARGO_TARGET_DIR/release/xtask" edge-smoke 2>/dev/null | text)"
log "x86-64: $reference"
passed=0 failed=0
for cpu in cortex-a53 max; do
  if answer="$(qemu-aarch64-static -L /usr/aarch64-linux-gnu -cpu "$cpu" "$smoke" edge-smoke 2>/dev/null | text)"; then
    if [[ "$answer" == "$reference" ]]; then
      log "aarch64 ($cpu): same greedy answer"
      passed=$((passed + 1))
    else
      log "aarch64 ($cpu) answered differently: $answer"
      failed=$((failed + 1))
    fi
  else
    log "aarch64 ($cpu): the edge smoke program failed (status $?; an illegal instruction is 132)"
    failed=$((failed + 1))
  fi
done
stripped="$(mktemp)"
aarch64-linux-gnu-strip -o "$stripped" "$library"
log "aarch64 libhybridflow_ffi.so: $(($(stat -c %s "$library") / 1000000)) MB, $(($(stat -c %s "$stripped") / 1000000)) MB stripped"
rm -f "$stripped"
echo "test result: $( ((failed == 0)) && echo ok || echo FAILED ). $passed passed; $failed failed (ARM under qemu: cortex-a53 and max vs x86-64)"
((failed == 0))
