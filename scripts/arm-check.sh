#!/usr/bin/env bash
# The core on ARM: the FFI library and the edge smoke program cross-built for aarch64 with the
# baseline features of Android's arm64-v8a (ARMv8.0 + NEON: no fp16, no dotprod), then the real
# edge model run under qemu as the oldest core arm64-v8a must support (cortex-a53) and as a recent
# one (max), compared with the x86 build's greedy answer. A kernel compiled for fp16 or dotprod
# would die here with SIGILL, as it would on many Android phones. Twice: the default library
# (mistral.rs), and the lean Android library (ggml alone, whose CPU backend comes in per-ISA
# variants chosen at run time: the check names the one each core got). Each build must refuse or
# report what it lacks. Prints both libraries' stripped sizes. Ends with one "test result" line.
set -euo pipefail
source "$(dirname "$0")/env.sh"
ensure_apt_packages qemu-user-static gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross clang
ensure_rust_target aarch64-unknown-linux-gnu
target=aarch64-unknown-linux-gnu

# The C and C++ of build scripts compiled by clang: ggml's newest CPU variant asks for
# `-march=armv9.2-a+…+sme`, which bookworm's cross gcc 12 does not know. Linked by the cross ld.
wrappers="$HYBRIDFLOW_CACHE/aarch64-clang"
mkdir -p "$wrappers"
for compiler in clang clang++; do
  printf '#!/bin/sh\nexec %s --target=aarch64-linux-gnu --ld-path=/usr/bin/aarch64-linux-gnu-ld "$@"\n' "$compiler" \
    >"$wrappers/aarch64-linux-gnu-$compiler"
  chmod +x "$wrappers/aarch64-linux-gnu-$compiler"
done
export CC_aarch64_unknown_linux_gnu="$wrappers/aarch64-linux-gnu-clang" CXX_aarch64_unknown_linux_gnu="$wrappers/aarch64-linux-gnu-clang++"
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
cd "$HYBRIDFLOW_ROOT"
library="$CARGO_TARGET_DIR/$target/release/libhybridflow_ffi.so"
smoke="$CARGO_TARGET_DIR/$target/release/xtask"

# The aarch64 edge smoke program under qemu as <cpu>, with edge-smoke's options after it.
smoke_on() { local cpu=$1; shift; qemu-aarch64-static -L /usr/aarch64-linux-gnu -cpu "$cpu" "$smoke" edge-smoke "$@"; }

# One field of edge-smoke's JSON line.
field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])[sys.argv[1]])' "$1"; }
passed=0 failed=0
loader_trace="$(mktemp)"
trap 'rm -f "$loader_trace"' EXIT

# What a library lacks is refused or reported, not crashed on: the other engine is a typed
# configuration error; a GPU request loads on the CPU and says why.
check_absent_parts() { # <the engine the build lacks> <its refusal> <why the GPU is not used>
  local other=$1 refusal=$2 gpu_reason=$3 output state
  if output="$(smoke_on cortex-a53 --engine "$other" 2>&1)"; then
    log "aarch64: the $other engine, absent from this build, was not refused"
    failed=$((failed + 1))
  elif grep -q "$refusal" <<<"$output"; then
    log "aarch64: the absent $other engine is refused ($refusal)"
    passed=$((passed + 1))
  else
    log "aarch64: asking for the absent $other engine failed otherwise: $output"
    failed=$((failed + 1))
  fi
  state="$(mktemp -d)"
  output="$(smoke_on cortex-a53 --vulkan-state-dir "$state" 2>/dev/null)" || true
  if [[ "$(field device <<<"$output" 2>/dev/null)" == CPU && "$(field gpu_unavailable <<<"$output" 2>/dev/null)" == *"$gpu_reason"* ]]; then
    log "aarch64: a GPU request runs on the CPU and says why: $(field gpu_unavailable <<<"$output")"
    passed=$((passed + 1))
  else
    log "aarch64: a GPU request gave: ${output:-nothing}"
    failed=$((failed + 1))
  fi
  rm -rf "$state"
}

# ggml picks its CPU variant at run time: the ARMv8.0 baseline on a Cortex-A53 (no dotprod, no
# fp16), a newer one on qemu's `max` core (it has SVE2 and SME).
check_cpu_variant() { # <qemu cpu> <the variant loaded>
  local cpu=$1 variant=$2
  if [[ $cpu == cortex-a53 && $variant == libggml-cpu-armv8.0_1.so ]] || [[ $cpu == max && -n $variant && $variant != libggml-cpu-armv8.0_1.so ]]; then
    log "aarch64 ($cpu), ggml: CPU variant $variant"
    passed=$((passed + 1))
  else
    log "aarch64 ($cpu), ggml: unexpected CPU variant '${variant}'"
    failed=$((failed + 1))
  fi
}

# On ARM the smoke program runs with the build's default engine, which must be the one expected.
check_build() { # <engine: mistral-rs|ggml> <its display name> <cargo features of the two crates>
  local engine=$1 name=$2 features=$3 reference stripped output status
  log "cross-building the FFI library and xtask for $target with $features (a first build takes ~15 minutes)"
  # A dangling link to a ggml library left by an earlier build makes llama-cpp-sys-2's build fail.
  find "$CARGO_TARGET_DIR/$target/release" -maxdepth 2 -xtype l -name 'lib*.so*' -delete 2>/dev/null || true
  if ! cargo build --release --locked --target "$target" -p hybridflow-ffi -p xtask --no-default-features --features "$features" >&2; then
    log "$engine: the cross-build failed"
    failed=$((failed + 2))
    return
  fi
  if ! file "$library" | grep -q "ARM aarch64"; then
    log "$engine: $library is not an aarch64 library"
    failed=$((failed + 2))
    return
  fi
  reference="$("$CARGO_TARGET_DIR/release/xtask" edge-smoke --engine "$engine" 2>/dev/null | field text)"
  log "x86-64, $engine: $reference"
  for cpu in cortex-a53 max; do
    status=0
    # The loader's trace (stderr) names the libraries loaded; the last ggml CPU variant is the one
    # ggml chose for this CPU.
    output="$(LD_DEBUG=files smoke_on "$cpu" 2>"$loader_trace")" || status=$?
    if ((status != 0)); then
      log "aarch64 ($cpu), $engine: the edge smoke program failed (status $status; an illegal instruction is 132)"
      failed=$((failed + 1))
    elif [[ "$(field engine <<<"$output")" != "$name" ]]; then
      log "aarch64 ($cpu): the default engine of this build is $(field engine <<<"$output"), not $name"
      failed=$((failed + 1))
    elif [[ "$(field text <<<"$output")" == "$reference" ]]; then
      log "aarch64 ($cpu), $engine: same greedy answer"
      passed=$((passed + 1))
    else
      log "aarch64 ($cpu), $engine answered differently: $(field text <<<"$output")"
      failed=$((failed + 1))
    fi
    if [[ $engine == ggml ]]; then
      check_cpu_variant "$cpu" "$(grep -o 'libggml-cpu-[^ ]*\.so' "$loader_trace" | tail -1)"
    fi
  done
  if [[ $engine == mistral-rs ]]; then
    check_absent_parts ggml "this build has no ggml engine" "no ggml engine"
  else
    check_absent_parts mistral-rs "this build has no mistral.rs engine" "no Vulkan backend"
    # As an app ships them: ggml's CPU variants beside the library, not only in the build tree.
    if compgen -G "$(dirname "$library")/libggml-cpu-*.so" >/dev/null; then
      log "aarch64, ggml: CPU variants beside the library: $(cd "$(dirname "$library")" && echo libggml-cpu-*.so)"
      passed=$((passed + 1))
    else
      log "aarch64, ggml: no CPU variant beside $library"
      failed=$((failed + 1))
    fi
  fi
  stripped="$(mktemp)"
  aarch64-linux-gnu-strip -o "$stripped" "$library"
  log "aarch64 libhybridflow_ffi.so with $engine: $(($(stat -c %s "$library") / 1000000)) MB, $(($(stat -c %s "$stripped") / 1000000)) MB stripped (release profile; the shipped one is docs/benchmarks.md's mobile profile)"
  rm -f "$stripped"
}

check_build mistral-rs mistral.rs hybridflow-ffi/mistralrs,xtask/mistralrs
check_build ggml ggml hybridflow-ffi/ggml,xtask/ggml
echo "test result: $( ((failed == 0)) && echo ok || echo FAILED ). $passed passed; $failed failed (ARM under qemu: cortex-a53 and max vs x86-64, mistral.rs and ggml)"
((failed == 0))
